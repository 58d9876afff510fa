#!/usr/bin/env python3
"""Write the hand-made seed inputs into fuzz/corpus/<target>/seed-*.

Run from anywhere: python3 fuzz/make_seeds.py. Each target's input layout is
described at the top of fuzz/fuzz_targets/<target>.rs; the leading byte of
pg_backend, mysql_packets, json_mask, http_frames and jwt_parse inputs is a
configuration byte, not protocol data.
"""
import base64
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- PostgreSQL ------------------------------------------------------------
def cstr(s):
    return s.encode() + b"\0"


def pg(tag, body):
    return tag.encode() + struct.pack(">i", len(body) + 4) + body


def startup(params):
    body = struct.pack(">i", 196608) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return struct.pack(">i", len(body) + 4) + body


START = startup([("user", "alice"), ("database", "bank"), ("application_name", "psql")])
write("pg_frontend", "startup_query", START + pg("Q", cstr("SELECT name, ssn FROM customers WHERE id = 1")) + pg("X", b""))
write("pg_frontend", "ssl_request", struct.pack(">ii", 8, 80877103))
write("pg_frontend", "cancel_request", struct.pack(">iiii", 16, 80877102, 4242, 0x12345678))
write("pg_frontend", "password", START + pg("p", cstr("eyJhbGciOiJFZERTQSJ9.e30.c2ln")))
write("pg_frontend", "extended", START
      + pg("P", cstr("s1") + cstr("SELECT * FROM accounts WHERE id = $1") + struct.pack(">hi", 1, 23))
      + pg("B", cstr("") + cstr("s1") + struct.pack(">hh", 1, 0) + struct.pack(">h", 1) + struct.pack(">i", 2) + b"42" + struct.pack(">hh", 1, 1))
      + pg("D", b"P" + cstr(""))
      + pg("E", cstr("") + struct.pack(">i", 0))
      + pg("C", b"S" + cstr("s1"))
      + pg("S", b""))
write("pg_frontend", "function_call", START
      + pg("F", struct.pack(">I", 952) + struct.pack(">hh", 1, 1) + struct.pack(">h", 2)
           + struct.pack(">i", 4) + struct.pack(">i", 16401) + struct.pack(">i", 4) + struct.pack(">i", 0x40000)
           + struct.pack(">h", 1)))


def field(name, oid, fmt=0):
    return cstr(name) + struct.pack(">ihihih", 16400, 1, oid, -1, -1, fmt)


def datarow(values):
    out = struct.pack(">h", len(values))
    for v in values:
        out += struct.pack(">i", -1) if v is None else struct.pack(">i", len(v)) + v
    return out


login = (pg("R", struct.pack(">i", 0))
         + pg("S", cstr("client_encoding") + cstr("UTF8"))
         + pg("S", cstr("standard_conforming_strings") + cstr("on"))
         + pg("K", struct.pack(">ii", 4242, 0x12345678))
         + pg("Z", b"I"))
write("pg_backend", "login_rows", bytes([0x05]) + login
      + pg("T", struct.pack(">h", 3) + field("name", 25) + field("ssn", 1043) + field("balance", 20, 1))
      + pg("D", datarow([b"Ann", b"123-45-6789", struct.pack(">q", 4111111111111111)]))
      + pg("D", datarow([b"Bo", None, struct.pack(">q", 5)]))
      + pg("C", cstr("SELECT 2")) + pg("Z", b"I"))
write("pg_backend", "error_notice", bytes([0x1c])
      + pg("E", b"SERROR\0VERROR\0C23505\0Mduplicate key value violates unique constraint\0DKey (ssn)=(123-45-6789) already exists.\0\0")
      + pg("N", b"SNOTICE\0C00000\0Mcard 4111 1111 1111 1111 seen\0\0")
      + pg("A", struct.pack(">i", 7) + cstr("jobs") + cstr("alice@example.com")))
write("pg_backend", "copy_out", bytes([0x8d])
      + pg("H", b"\0" + struct.pack(">hhh", 2, 0, 0))
      + pg("d", b"Ann\t123-45-6789\n") + pg("d", b"\"Bo\",\"555-12-3456\"\n")
      + pg("c", b"") + pg("C", cstr("COPY 2")))
write("pg_backend", "sasl", bytes([0x00])
      + pg("R", struct.pack(">i", 10) + cstr("SCRAM-SHA-256-PLUS") + cstr("SCRAM-SHA-256") + b"\0")
      + pg("R", struct.pack(">i", 11) + b"r=abc,s=c2FsdA==,i=4096")
      + pg("R", struct.pack(">i", 12) + b"v=c2lnbmF0dXJl")
      + pg("t", struct.pack(">hii", 2, 23, 25)))

# ---- MySQL -----------------------------------------------------------------
def my(seq, payload):
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def lenenc(b):
    if isinstance(b, str):
        b = b.encode()
    assert len(b) < 251
    return bytes([len(b)]) + b


CAPS = 0x000FA68D | (1 << 19) | (1 << 20) | (1 << 21) | (1 << 15) | (1 << 9) | (1 << 3)
hs = (b"\x0a" + cstr("5.5.5-10.11.6-MariaDB-0+deb12u1") + struct.pack("<I", 7) + b"12345678" + b"\0"
      + struct.pack("<H", CAPS & 0xFFFF) + bytes([45]) + struct.pack("<H", 2) + struct.pack("<H", CAPS >> 16)
      + bytes([21]) + b"\0" * 10 + b"abcdefghijkl\0" + cstr("mysql_clear_password"))
resp = (struct.pack("<IIB", CAPS, 1 << 24, 45) + b"\0" * 23 + cstr("alice") + lenenc("eyJ.token.sig")
        + cstr("bank") + cstr("mysql_clear_password")
        + lenenc(lenenc("_client_name") + lenenc("libmysql") + lenenc("program_name") + lenenc("mysql")))
write("mysql_packets", "handshake_query", bytes([0x05]) + my(0, hs) + my(1, resp)
      + my(0, b"\x03" + b"SELECT name, ssn FROM customers WHERE id = 1")
      + my(0, b"\x03" + b"KILL QUERY 42"))


def coldef(name, typ, charset=45, flags=0):
    return (lenenc("def") + lenenc("bank") + lenenc("c") + lenenc("customers") + lenenc(name) + lenenc(name)
            + b"\x0c" + struct.pack("<HIBHB", charset, 255, typ, flags, 0) + b"\0\0")


write("mysql_packets", "text_result", bytes([0x15])
      + my(1, b"\x03") + my(2, coldef("name", 0xfd)) + my(3, coldef("ssn", 0xfd)) + my(4, coldef("balance", 0x08, 63))
      + my(5, b"\xfe\0\0\x02\0")
      + my(6, lenenc("Ann") + lenenc("123-45-6789") + lenenc("4111111111111111"))
      + my(7, lenenc("Bo") + b"\xfb" + lenenc("5"))
      + my(8, b"\xfe\0\0\x02\0"))
write("mysql_packets", "prepared_execute", bytes([0x2d])
      + my(0, b"\x16SELECT * FROM customers WHERE id = ? AND ssn = ?")
      + my(1, b"\x00" + struct.pack("<IHH", 2, 2, 2) + b"\0\0")
      + my(0, b"\x17" + struct.pack("<IBI", 2, 0, 1) + b"\x00" + b"\x01" + b"\x08\x00\xfd\x00"
           + struct.pack("<q", 1) + lenenc("123-45-6789"))
      + my(1, coldef("name", 0xfd)) + my(2, coldef("ssn", 0xfd)) + my(3, coldef("balance", 0x08, 63))
      + my(4, b"\x00\x00" + lenenc("Ann") + lenenc("123-45-6789") + struct.pack("<q", 4111111111111111)))
write("mysql_packets", "err_ok", bytes([0x04])
      + my(1, b"\xff" + struct.pack("<H", 1062) + b"#23000" + b"Duplicate entry '123-45-6789' for key 'ssn'")
      + my(1, b"\x00\x01\x00\x02\x00\x00\x00Rows matched: 1")
      + my(1, b"\xfe" + cstr("caching_sha2_password") + b"0123456789abcdefghij\0"))

# ---- SQL -------------------------------------------------------------------
sqls = {
    "select": "SELECT c.name, c.ssn FROM customers c JOIN accounts a ON a.customer_id = c.id WHERE a.balance > 100;",
    "dml": "WITH moved AS (DELETE FROM accounts WHERE closed RETURNING *) INSERT INTO archive SELECT * FROM moved; UPDATE customers SET email = 'a@example.com' WHERE id = 7",
    "pg_specific": "COPY (SELECT * FROM customers) TO STDOUT WITH (FORMAT csv); DO $$ BEGIN PERFORM lo_open(16401, 262144); END $$; SET standard_conforming_strings = off; SELECT E'\\x27' /* c */ -- x\n",
    "mysql_specific": "SELECT /*!80000 SLEEP(1), */ `ssn` FROM `bank`.`customers` # tail\n; SET NAMES utf8mb4; LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t; /*M!100000 DROP TABLE x */",
    "ddl": "CREATE TABLE t (id bigint PRIMARY KEY, ssn text); GRANT SELECT ON t TO PUBLIC; PREPARE p AS DELETE FROM t WHERE id = $1; EXECUTE p(1)",
}
for name, s in sqls.items():
    write("sql_classify", name, s)

# ---- HTTP frames -----------------------------------------------------------
def ws_frame(opcode, payload, mask=None, fin=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    mbit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


SIZES = bytes([7, 1, 33, 2])
sse = (b"data: {\"choices\":[{\"delta\":{\"content\":\"SSN 123-45-6789\"}}]}\n\n"
       b": keep-alive\n\nevent: ping\r\nid: 7\r\nretry: 500\r\ndata: x\r\ndata:y\r\n\r\ndata: [DONE]\r\r")
write("http_frames", "sse_stream", bytes([0xf1]) + SIZES + sse)
key = b"\x37\xfa\x21\x3d"
client = (ws_frame(0x2, b"\x00ls -la\n", key, fin=False) + ws_frame(0x9, b"p", key)
          + ws_frame(0x0, b"more", key) + ws_frame(0x2, b"\x04" + b'{"Width":80,"Height":24}', key)
          + ws_frame(0x8, b"\x03\xe8bye", key))
write("http_frames", "ws_client_exec", bytes([0xf4]) + SIZES + client)
server = (ws_frame(0x2, b"\x01total 0\n") + ws_frame(0x2, b"\x03" + b'{"status":"Success"}')
          + ws_frame(0x1, b"1" + base64.b64encode(b"hello")) + ws_frame(0x8, b""))
write("http_frames", "ws_server_exec", bytes([0xf9]) + SIZES + server)

# ---- JSON masking ----------------------------------------------------------
doc = {"customers": [{"name": "Ann", "ssn": "123-45-6789", "email": "ann@example.com",
                      "card": "4111 1111 1111 1111", "balance": 1200},
                     {"name": "Bo", "ssn": None, "note": "IBAN DE89 3704 0044 0532 0130 00, call +1 415 555 0100"}],
       "a/b": {"~c": "routing 011000015"}, "skip": "123-45-6789"}
write("json_mask", "customers", bytes([0xfd]) + json.dumps(doc).encode())
write("json_mask", "array", bytes([0x21]) + json.dumps([{"card": "4111111111111111"}, "ssn: 078-05-1120", 123456789]).encode())

# ---- JWT -------------------------------------------------------------------
def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


hdr = b'{"alg":"EdDSA","kid":"k1","typ":"JWT"}'
claims = b'{"iss":"http://127.0.0.1:9/dev","sub":"alice","aud":"gatehouse","exp":4102444800,"iat":1700000000,"groups":["dba"],"email":"alice@example.com"}'
write("jwt_parse", "token_text", b"\x00" + b64u(hdr) + b"." + b64u(claims) + b"." + b64u(b"\x01" * 64))
write("jwt_parse", "header_payload", b"\x01" + hdr + b"\n" + claims)
write("jwt_parse", "signed_claims", b"\x02" + claims)
write("jwt_parse", "alg_none", b"\x01" + b'{"alg":"none","crit":["b64"]}' + b"\n" + claims)
