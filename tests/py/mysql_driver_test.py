"""Drive the gateway's MySQL listener with real Python drivers.

- mysql-connector-python (Oracle's Connector/Python, pure-Python mode) with
  server-side prepared statements (`cursor(prepared=True)`): COM_STMT_PREPARE
  / EXECUTE / CLOSE and binary-protocol rows.
- PyMySQL: the text protocol, as most Python code uses it.

Both send the caller's token as a mysql_clear_password password over TLS.

Usage: mysql_driver_test.py HOST PORT DATABASE ANALYST_TOKEN DBA_TOKEN
Prints one JSON object with what it observed; exits non-zero on a failed check.
"""

import json
import ssl
import sys

import mysql.connector
import pymysql

host, port, db, analyst_token, dba_token = sys.argv[1:6]
port = int(port)
observed = {}


def check(cond, what):
    if not cond:
        print(json.dumps(observed, default=str))
        raise SystemExit(f"FAILED: {what}")


def connector(user, token):
    return mysql.connector.connect(
        host=host, port=port, database=db, user=user, password=token,
        auth_plugin="mysql_clear_password", ssl_disabled=False,
        ssl_verify_cert=False, use_pure=True, autocommit=True,
    )


# --- Connector/Python: server-side prepared statements, binary rows -------
conn = connector("alice", analyst_token)
cur = conn.cursor(prepared=True)
for i in (1, 2, 1):
    cur.execute("select id, name, ssn, card_number, balance, date_of_birth from customers where id = %s", (i,))
    row = cur.fetchone()
observed["prepared_row"] = row
check(row[0] == 1 and isinstance(row[0], int), "unmasked INT decodes as int in binary rows")
check(isinstance(row[2], str) and row[2].startswith("***-**-") and len(row[2]) == 11, "ssn masked in binary rows")
check(isinstance(row[3], str) and row[3][-4:].isdigit() and row[3].startswith("*"), "card masked in binary rows")
check(str(row[4]).replace(".", "").isdigit(), "decimal balance still decodes")
check(row[5] == "[redacted]" or isinstance(row[5], str), "masked DATE arrives as a string")

# A masked numeric column (BIGINT) is announced as a string and decodes as one.
cur.execute("select card_number, id from cards_numeric where id = %s", (1,))
row = cur.fetchone()
observed["numeric_masked_binary"] = row
check(isinstance(row[0], str) and row[0].endswith("1111") and row[0].startswith("*"), "masked BIGINT decodes as str (binary)")
check(row[1] == 1, "id beside it still an int")

# A blocked statement through a prepared statement: refused at PREPARE.
try:
    cur.execute("delete from customers where id = %s", (1,))
    check(False, "prepared delete by an analyst must fail")
except mysql.connector.Error as e:
    observed["prepared_block"] = [e.errno, e.sqlstate, e.msg]
    check(e.errno == 1142 and e.sqlstate == "42000", "ERR 1142/42000")
    check("analysts-read-only" in e.msg, "names the rule")
# The session is still usable.
cur.execute("select count(*) from customers where id < %s", (5,))
check(cur.fetchone()[0] == 4, "session usable after a block")
cur.close()
conn.close()

# --- PyMySQL: text protocol ----------------------------------------------
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
p = pymysql.connect(host=host, port=port, user="alice", password=analyst_token,
                    database=db, ssl=ctx, autocommit=True)
with p.cursor() as c:
    c.execute("select id, upper(ssn) as s, lower(email) as e from customers where id = %s", (3,))
    row = c.fetchone()
    observed["pymysql_derived"] = row
    check("*" in row[1] or row[1].startswith("[REDACTED"), "derived ssn masked (lineage through a function)")
    check(row[2].startswith("tok_"), "derived email tokenized")
    c.execute("select card_number from cards_numeric where id = 1")
    row = c.fetchone()
    observed["numeric_masked_text"] = row
    check(isinstance(row[0], str) and row[0].endswith("1111"), "masked BIGINT decodes as str (text)")
    try:
        c.execute("update customers set phone = '1' where id = 1")
        check(False, "update by an analyst must fail")
    except pymysql.err.OperationalError as e:
        observed["pymysql_block"] = list(e.args)
        check(e.args[0] == 1142 and "analysts-read-only" in e.args[1], "ERR 1142 names the rule")
    c.execute("select 1")
    check(c.fetchone()[0] == 1, "session usable after a block")
p.close()

# --- DBA: prepared write within the rules ---------------------------------
conn = connector("dana", dba_token)
cur = conn.cursor(prepared=True)
cur.execute("update accounts set kind = %s where id = %s", ("savings", 2))
observed["dba_update_rowcount"] = cur.rowcount
check(cur.rowcount in (0, 1), "prepared update ran")
cur.close()
conn.close()

print(json.dumps(observed, default=str))
