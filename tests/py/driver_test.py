"""Drive the gateway with a real PostgreSQL driver (psycopg 3).

Exercises what psql does not: the extended protocol with server-side
prepared statements, binary results, pipelining, COPY in both directions
from a driver, and SQLSTATE-coded errors surfacing as exceptions.

Usage: driver_test.py HOST PORT DATABASE ANALYST_TOKEN DBA_TOKEN
Prints one JSON object with what it observed; exits non-zero on a failed check.
"""

import json
import sys

import psycopg

host, port, db, analyst_token, dba_token = sys.argv[1:6]
observed = {}


def connect(user, token):
    return psycopg.connect(
        host=host, port=port, dbname=db, user=user, password=token,
        sslmode="require", autocommit=True, prepare_threshold=0,
    )


def check(cond, what):
    if not cond:
        print(json.dumps(observed, default=str))
        raise SystemExit(f"FAILED: {what}")


with connect("alice", analyst_token) as conn:
    # Extended protocol, server-side prepared (prepare_threshold=0), parameters.
    for _ in range(3):
        row = conn.execute(
            "select name, ssn, card_number, id from customers where id = %s", (1,),
            prepare=True,
        ).fetchone()
    observed["prepared_row"] = row
    check(row[1].startswith("***-**-") and len(row[1]) == 11, "ssn masked through prepared statement")
    check(row[3] == 1, "unmasked integer column still decodes as int")

    # Binary result format: masked columns arrive as text, others decode.
    with conn.cursor(binary=True) as cur:
        cur.execute("select ssn, id, balance from customers order by id limit 2")
        rows = cur.fetchall()
    observed["binary_rows"] = rows
    check(all(r[0].startswith("***-**-") for r in rows), "ssn masked in binary format")
    check(rows[0][1] == 1, "binary int decodes")

    # Derived column: lineage through a function and alias.
    row = conn.execute("select upper(ssn) as s, lower(email) as e from customers limit 1").fetchone()
    observed["derived"] = row
    # A computed value of a masked column is redacted whole (a partial mask
    # of it would show other digits of the original).
    check("*" in row[0] or row[0].startswith("[REDACTED"), "derived ssn masked")
    check(row[1].startswith("tok_"), "derived email tokenized")

    # A blocked statement raises InsufficientPrivilege (42501) and the
    # connection stays usable.
    try:
        conn.execute("delete from customers where id = %s", (1,))
        check(False, "delete should be blocked for analysts")
    except psycopg.errors.InsufficientPrivilege as e:
        observed["blocked"] = str(e).splitlines()[0]
        check("analysts-read-only" in str(e), "block names the rule")
    check(conn.execute("select 1").fetchone()[0] == 1, "session usable after a block")

    # Pipeline mode: several statements in flight, one blocked in the middle.
    results = []
    try:
        with conn.pipeline():
            c1 = conn.execute("select count(*) from customers")
            c2 = conn.execute("select card_number from customers limit 1")
        results = [c1.fetchone()[0], c2.fetchone()[0]]
    except psycopg.Error as e:  # pragma: no cover - reported below
        results = [f"error: {e}"]
    observed["pipeline"] = results
    check(isinstance(results[0], int) and results[0] > 0, "pipelined count")
    check(str(results[1]).count("*") >= 8, "pipelined card masked")

    # Analysts may COPY out (a read, masked line by line: a whole table's
    # columns cannot be traced, so every value is redacted) but not in.
    import re
    with conn.cursor() as cur:
        lines = []
        with cur.copy("copy customers to stdout") as copy:
            for data in copy:
                lines.append(bytes(data).decode())
    observed["analyst_copy_out_lines"] = len(lines)
    check(len(lines) > 0, "an analyst's copy out runs")
    check(not any(re.search(r"\b\d{3}-\d{2}-\d{4}\b", l) for l in lines), "an analyst's copy out is masked")
    try:
        with conn.cursor() as cur:
            with cur.copy("copy customers (name) from stdin") as copy:
                copy.write_row(("x",))
        check(False, "copy in should be blocked for analysts")
    except psycopg.errors.InsufficientPrivilege:
        pass

with connect("dana", dba_token) as conn:
    # COPY TO from a driver is masked too (text format).
    with conn.cursor() as cur:
        lines = []
        with cur.copy("copy (select id, ssn from customers order by id limit 3) to stdout") as copy:
            for data in copy:
                lines.append(bytes(data).decode())
    observed["copy_out"] = lines
    check(all("***-**-" in l for l in lines), "copy out masked")
    conn.execute("drop table if exists driver_scratch")
    conn.execute("create table driver_scratch(id int, note text)")
    with conn.cursor() as cur:
        with cur.copy("copy driver_scratch from stdin") as copy:
            copy.write_row((1, "first"))
            copy.write_row((2, "second"))
    n = conn.execute("select count(*) from driver_scratch").fetchone()[0]
    observed["copy_in_rows"] = n
    check(n == 2, "copy in through the gateway")
    try:
        conn.execute("delete from driver_scratch")
        check(False, "delete without where should be blocked")
    except psycopg.errors.InsufficientPrivilege as e:
        check("no-unbounded-writes" in str(e), "unbounded delete names its rule")
    conn.execute("delete from driver_scratch where id = 1")
    check(conn.execute("select count(*) from driver_scratch").fetchone()[0] == 1, "delete with where runs")

    # A pipeline is one implicit transaction up to its Sync: a refused
    # statement in it rolls back what ran before it, as a server error
    # would (and psycopg raises the refusal).
    try:
        with conn.pipeline():
            conn.execute("insert into driver_scratch values (10, 'pipelined')")
            conn.execute("delete from driver_scratch")
        check(False, "a pipelined unbounded delete should be refused")
    except psycopg.errors.InsufficientPrivilege as e:
        check("no-unbounded-writes" in str(e), "pipelined refusal names its rule")
    n = conn.execute("select count(*) from driver_scratch where id = 10").fetchone()[0]
    observed["pipeline_partial_rows"] = n
    check(n == 0, "the insert before the refusal was rolled back")

    # Inside a transaction block, a refused statement leaves it failed.
    try:
        with conn.transaction():
            conn.execute("insert into driver_scratch values (11, 'in a block')")
            conn.execute("delete from driver_scratch")
        check(False, "an unbounded delete in a block should be refused")
    except psycopg.errors.InsufficientPrivilege:
        pass
    n = conn.execute("select count(*) from driver_scratch where id = 11").fetchone()[0]
    check(n == 0, "the transaction block was rolled back")
    conn.execute("drop table driver_scratch")

print(json.dumps(observed, default=str))
