#!/usr/bin/env python3
"""Verify a Gatehouse evidence pack without Gatehouse.

An independent implementation of the checks `gatehouse evidence verify`
makes, written from the pack's specification (SPEC.md, in every pack and in
crates/evidence/SPEC.md), so an examiner need not trust the vendor's binary.
It needs Python 3.9+ and one well-known package, `cryptography` (PyPI), for
Ed25519:

    python3 -m pip install cryptography
    python3 verify_pack.py PACK_FOLDER --public-key gateway.pub

It checks the manifest's signature, every file's size and SHA-256 (and that
none was added or removed), every event's hash and its link to the one
before, every checkpoint's signature, numbering, link and the event hash it
signed, both anchors of the segment, the unsigned tail against the policy
the last checkpoint signed, that each session recording is exactly that
session's events, and that each terminal recording is the file whose
SHA-256 the chain recorded. It names every problem, prints
"RESULT: VERIFIED" or "RESULT: FAILED (N problem(s))", and exits 0 only
when everything holds (1 when something fails, 2 on a usage error).
"""

import argparse
import decimal
import hashlib
import json
import math
import os
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_public_key,
    )
except ImportError:  # pragma: no cover - told to the user
    sys.stderr.write(
        "verify_pack.py needs the `cryptography` package: python3 -m pip install cryptography\n"
    )
    sys.exit(2)

FORMAT = "gatehouse.evidence.pack.v1"
EVENT_DOMAIN = "gatehouse.audit.event.v1"
CHECKPOINT_V1 = "gatehouse.audit.checkpoint.v1"
CHECKPOINT_V2 = "gatehouse.audit.checkpoint.v2"
MANIFEST_DOMAIN = "gatehouse.evidence.manifest.v1"
GENESIS = "0" * 64
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
EVENTS = "events.jsonl"
CHECKPOINTS = "checkpoints.jsonl"
REPORT = "report.html"
MAX_PROBLEMS = 50

# ---------------------------------------------------------------------------
# Encodings (SPEC.md, "Hash encoding")


def u64(n):
    return int(n).to_bytes(8, "big")


def enc_str(s):
    b = s.encode("utf-8")
    return u64(len(b)) + b


def enc_opt(s):
    return b"\x00" if s is None else b"\x01" + enc_str(s)


def sha256_hex(b):
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------------------
# Canonical JSON (RFC 8785, with exact 64-bit integers)


def es_number(f):
    """ECMAScript Number.prototype.toString for a finite double."""
    if f == 0 or math.isnan(f) or math.isinf(f):
        return "0"
    sign = "-" if f < 0 else ""
    d = decimal.Decimal(repr(abs(f)))  # shortest round-trip digits
    _, digits, exp = d.as_tuple()
    digits = "".join(map(str, digits)).lstrip("0")
    stripped = digits.rstrip("0")
    exp += len(digits) - len(stripped)
    digits = stripped or "0"
    k = len(digits)
    n = exp + k  # the decimal point sits after the first n digits
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        body = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("-" if e < 0 else "+") + str(abs(e))
    return sign + body


_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def canon_str(s):
    out = ['"']
    for c in s:
        esc = _SHORT_ESCAPES.get(c)
        if esc is not None:
            out.append(esc)
        elif ord(c) < 0x20:
            out.append("\\u%04x" % ord(c))
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def canonical(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        if -(2**63) <= v < 2**64:
            return str(v)
        return es_number(float(v))  # gatehouse reads such integers as doubles
    if isinstance(v, float):
        return es_number(v)
    if isinstance(v, str):
        return canon_str(v)
    if isinstance(v, list):
        return "[" + ",".join(canonical(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v.keys(), key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(canon_str(k) + ":" + canonical(v[k]) for k in keys) + "}"
    raise ValueError("not a JSON value: %r" % (v,))


# ---------------------------------------------------------------------------
# Records


class Corrupt(Exception):
    pass


def _req(obj, key, kind):
    if key not in obj:
        raise Corrupt("missing field `%s`" % key)
    v = obj[key]
    if kind == "u64" and not (isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64):
        raise Corrupt("`%s` is not an unsigned integer" % key)
    if kind == "str" and not isinstance(v, str):
        raise Corrupt("`%s` is not a string" % key)
    if kind == "opt" and v is not None and not isinstance(v, str):
        raise Corrupt("`%s` is not a string or null" % key)
    return v


def _json_object(line):
    try:
        v = json.loads(line)
    except ValueError as x:
        raise Corrupt(str(x))
    if not isinstance(v, dict):
        raise Corrupt("not an object")
    return v


def parse_event(line):
    e = _json_object(line)
    for k, kind in [("seq", "u64"), ("ts", "str"), ("kind", "str"), ("prev_hash", "str"), ("hash", "str")]:
        _req(e, k, kind)
    for k in ("session_id", "subject", "connection"):
        e.setdefault(k, None)
        _req(e, k, "opt")
    if "data" not in e:
        raise Corrupt("missing field `data`")
    return e


def event_hash(e):
    b = (
        enc_str(EVENT_DOMAIN)
        + u64(e["seq"])
        + enc_str(e["prev_hash"])
        + enc_str(e["ts"])
        + enc_str(e["kind"])
        + enc_opt(e["session_id"])
        + enc_opt(e["subject"])
        + enc_opt(e["connection"])
        + enc_str(canonical(e["data"]))
    )
    return sha256_hex(b)


def parse_checkpoint(line):
    c = _json_object(line)
    for k, kind in [("seq", "u64"), ("event_seq", "u64"), ("event_hash", "str"), ("ts", "str"),
                    ("prev_hash", "str"), ("hash", "str"), ("signature", "str")]:
        _req(c, k, kind)
    for k in ("checkpoint_every", "checkpoint_interval_ms"):
        if c.get(k) is not None:
            _req(c, k, "u64")
    return c


def checkpoint_payload(c):
    v2 = c.get("checkpoint_every") is not None or c.get("checkpoint_interval_ms") is not None
    b = (
        enc_str(CHECKPOINT_V2 if v2 else CHECKPOINT_V1)
        + u64(c["seq"])
        + u64(c["event_seq"])
        + enc_str(c["event_hash"])
        + enc_str(c["ts"])
        + enc_str(c["prev_hash"])
    )
    if v2:
        b += u64(c.get("checkpoint_every") or 0) + u64(c.get("checkpoint_interval_ms") or 0)
    return b


def ed25519_ok(key, message, signature_hex):
    """None when the signature is not 64 hex bytes, else whether it verifies."""
    try:
        sig = bytes.fromhex(signature_hex.strip())
    except ValueError:
        return None
    if len(sig) != 64:
        return None
    try:
        key.verify(sig, message)
        return True
    except InvalidSignature:
        return False


def check_checkpoint_signature(c, key):
    payload = checkpoint_payload(c)
    ok = ed25519_ok(key, payload, c["signature"])
    if ok is None:
        return "its signature is not a 64-byte hex Ed25519 signature: it was edited"
    if not ok:
        return ("its signature does not verify with the given public key: the checkpoint was forged or "
                "edited, or this is not the key the trail was signed with")
    if sha256_hex(payload) != c["hash"]:
        return "its stored hash does not match its signed content: the hash column was edited"
    return None


# ---------------------------------------------------------------------------
# The segment (SPEC.md, "Verifying")


class Segment:
    def __init__(self):
        self.first_seq = None
        self.last_seq = None
        self.events = 0
        self.checkpoints = 0
        self.start = "empty"
        self.closing = None  # (checkpoint seq, event seq)
        self.unsigned_tail = 0
        self.problems = []  # (is_checkpoint_problem, text)
        self.truncated = False

    def problem(self, seq, reason, checkpoint=None):
        if len(self.problems) >= MAX_PROBLEMS:
            self.truncated = True
            return
        if checkpoint is not None:
            reason = "checkpoint %d: %s" % (checkpoint, reason)
        self.problems.append((checkpoint is not None, "event %d: %s" % (seq, reason)))


def read_lines(path):
    with open(path, "rb") as f:
        for i, raw in enumerate(f.read().decode("utf-8", errors="replace").split("\n")):
            if raw.strip():
                yield i + 1, raw.rstrip("\r")


def verify_segment(events_path, checkpoints_path, key):
    r = Segment()
    good = []
    previous = None
    for lineno, line in read_lines(checkpoints_path):
        r.checkpoints += 1
        try:
            cp = parse_checkpoint(line)
        except Corrupt as x:
            r.problem(0, "a checkpoint cannot be read: line %d of the checkpoints file is not a valid record (%s)"
                      % (lineno, x))
            previous = None
            continue
        ok = True
        reason = check_checkpoint_signature(cp, key)
        if reason:
            r.problem(cp["event_seq"], reason, cp["seq"])
            ok = False
        if previous is None:
            if cp["seq"] == 1 and cp["prev_hash"] != GENESIS:
                r.problem(cp["event_seq"], "it is checkpoint 1 but does not link to the genesis value", cp["seq"])
                ok = False
        else:
            if cp["seq"] != previous["seq"] + 1:
                r.problem(cp["event_seq"], "it follows checkpoint %d in the checkpoint list: checkpoints were "
                          "deleted, duplicated or reordered" % previous["seq"], cp["seq"])
                ok = False
            elif cp["prev_hash"] != previous["hash"]:
                r.problem(cp["event_seq"], "it does not link to checkpoint %d: a checkpoint was replaced"
                          % previous["seq"], cp["seq"])
                ok = False
            if cp["event_seq"] <= previous["event_seq"]:
                r.problem(cp["event_seq"], "it covers event %d which is not after event %d covered by checkpoint %d"
                          % (cp["event_seq"], previous["event_seq"], previous["seq"]), cp["seq"])
                ok = False
        if ok:
            good.append(cp)
        previous = cp
    by_event = {cp["event_seq"]: cp for cp in good}

    prev = None  # (seq, hash)
    resync = False
    for lineno, line in read_lines(events_path):
        r.events += 1
        try:
            e = parse_event(line)
        except Corrupt as x:
            seq = prev[0] + 1 if prev else 0
            r.problem(seq, "line %d of the events file is not a valid record (%s)" % (lineno, x))
            resync = True
            continue
        seq = e["seq"]
        if prev is None and not resync:
            r.first_seq = seq
            r.start = anchor_start(e, by_event, good, r)
        elif not resync:
            pseq, phash = prev
            if seq != pseq + 1:
                if seq > pseq + 1:
                    if seq == pseq + 2:
                        reason = ("event %d is missing: event %d is followed by event %d; an event was deleted"
                                  % (pseq + 1, pseq, seq))
                    else:
                        reason = ("events %d to %d are missing: event %d is followed by event %d; events were deleted"
                                  % (pseq + 1, seq - 1, pseq, seq))
                else:
                    reason = "event %d appears after event %d: events were duplicated or reordered" % (seq, pseq)
                r.problem(pseq + 1, reason)
            elif e["prev_hash"] != phash:
                r.problem(seq, "its prev_hash does not match the hash of event %d: an event was inserted, replaced "
                          "or rewritten here" % pseq)
        else:
            if r.first_seq is None:
                r.first_seq = seq
                r.start = "unanchored"
            resync = False
        try:
            computed = event_hash(e)
        except (ValueError, UnicodeEncodeError):
            computed = None
        if computed != e["hash"]:
            r.problem(seq, "its content does not match its hash: a field of this event was edited")
        cp = by_event.get(seq)
        if cp is not None:
            if cp["event_hash"] == e["hash"]:
                r.closing = (cp["seq"], cp["event_seq"])
            else:
                r.problem(seq, "event %d's hash differs from the one this checkpoint signed: this event or an "
                          "earlier one was rewritten and the hashes after it recomputed" % seq, cp["seq"])
        r.last_seq = seq
        prev = (seq, e["hash"])

    if r.first_seq is not None and r.last_seq is not None:
        first, last = r.first_seq, r.last_seq
        for cp in good:
            if cp["event_seq"] > last:
                r.problem(last + 1, "it covers event %d, but the segment ends at event %d: events %d to %d were "
                          "removed" % (cp["event_seq"], last, last + 1, cp["event_seq"]), cp["seq"])
            elif cp["event_seq"] + 1 < first:
                r.problem(first, "it covers event %d, before the segment (which starts at event %d); it does not "
                          "belong to it" % (cp["event_seq"], first), cp["seq"])
    elif r.checkpoints > 0:
        r.problem(0, "the segment has checkpoints but no events: its events were removed")
    if r.last_seq is not None:
        covered = r.closing[1] if r.closing else max((r.first_seq or 0) - 1, 0)
        r.unsigned_tail = max(r.last_seq - covered, 0)
        closing = next((cp for cp in good if r.closing and cp["seq"] == r.closing[0]), None)
        if closing is not None and closing.get("checkpoint_every") is not None \
                and closing.get("checkpoint_interval_ms") is not None:
            every = closing["checkpoint_every"]
            if r.unsigned_tail > every:
                r.problem(covered + 1, "events %d to %d (%d) follow it unsigned, more than the %d after which it "
                          "promised the next checkpoint: the checkpoints covering them were deleted before the export"
                          % (covered + 1, r.last_seq, r.unsigned_tail, every), closing["seq"])
    return r


def anchor_start(e, by_event, good, r):
    seq = e["seq"]
    if seq == 1:
        if e["prev_hash"] == GENESIS:
            return "genesis"
        r.problem(1, "its prev_hash is not the genesis value (64 zeros): it was rewritten")
        return "unanchored"
    cp = by_event.get(seq - 1)
    if cp is not None and cp["event_hash"] == e["prev_hash"]:
        return ("checkpoint", cp["seq"], cp["event_seq"])
    if cp is not None:
        r.problem(seq, "it signed event %d's hash, but the segment's first event (event %d) links to a different "
                  "hash: the first event was replaced or rewritten" % (cp["event_seq"], seq), cp["seq"])
        return "unanchored"
    earlier = [c["event_seq"] for c in good if c["event_seq"] < seq]
    note = " (the nearest earlier one covers event %d)" % max(earlier) if earlier else ""
    r.problem(seq, "the segment starts at event %d but no signed checkpoint covers event %d%s: its start is not "
              "anchored, so events before it may have been removed" % (seq, seq - 1, note))
    return "unanchored"


# ---------------------------------------------------------------------------
# The pack


def safe_relative(path):
    if not path or "\\" in path or path.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def list_files(root):
    """Every entry that is not a folder, relative to root, '/'-separated."""
    out = []

    def walk(d, prefix):
        for entry in sorted(os.scandir(d), key=lambda x: x.name):
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                walk(entry.path, rel + "/")
            else:
                out.append(rel)

    walk(root, "")
    return out


def hash_file(path):
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                break
            size += len(chunk)
            h.update(chunk)
    return size, h.hexdigest()


def load_public_key(path):
    text = open(path, "rb").read().decode("utf-8", errors="replace").strip()
    if text.startswith("-----BEGIN"):
        key = load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("%s is not an Ed25519 public key" % path)
        return key
    raw = bytes.fromhex(text)
    if len(raw) != 32:
        raise ValueError("%s is neither a PEM public key nor 64 hex characters" % path)
    return Ed25519PublicKey.from_public_bytes(raw)


def fingerprint(key):
    return "SHA256:" + sha256_hex(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


class Result:
    def __init__(self):
        self.checks = []  # (ok, area, detail)
        self.problems = []
        self.notes = []

    def fail(self, area, text):
        self.problems.append("%s: %s" % (area, text))

    def check(self, area, ok, detail):
        self.checks.append((ok, area, detail))


def closing_text(c):
    return "checkpoint %d (event %d)" % c if c else "no checkpoint"


def verify_pack(folder, key):
    v = Result()
    fp = fingerprint(key)
    mpath = os.path.join(folder, MANIFEST)
    try:
        mbytes = open(mpath, "rb").read()
    except OSError as x:
        v.fail("manifest", "%s cannot be read (%s): nothing in the pack can be trusted without it" % (MANIFEST, x))
        v.check("manifest", False, "missing")
        return v, None
    signature_ok = False
    try:
        sig = open(os.path.join(folder, SIGNATURE), "rb").read().decode("utf-8", errors="replace")
    except OSError as x:
        v.fail("manifest", "%s cannot be read (%s): the manifest is unsigned" % (SIGNATURE, x))
        sig = None
    if sig is not None:
        message = enc_str(MANIFEST_DOMAIN) + u64(len(mbytes)) + mbytes
        ok = ed25519_ok(key, message, sig)
        if ok is None:
            v.fail("manifest", "%s: the signature file does not hold a 64-byte hex Ed25519 signature" % SIGNATURE)
        elif not ok:
            v.fail("manifest", "%s: the manifest's signature does not verify with the given public key: the manifest "
                   "or its signature was altered, or this is not the gateway's key" % SIGNATURE)
        signature_ok = bool(ok)
    try:
        m = json.loads(mbytes)
        files = m["files"]
        segment = m["segment"]
        period = m["period"]
        sessions = m["sessions"]
        named_key = m["signing_key"]["fingerprint"]
    except (ValueError, KeyError, TypeError) as x:
        v.fail("manifest", "%s is not a valid manifest (%s)" % (MANIFEST, x))
        v.check("manifest", False, "unreadable")
        return v, None
    if m.get("format") != FORMAT:
        v.fail("manifest", 'format is "%s", this verifier reads "%s"' % (m.get("format"), FORMAT))
    key_ok = named_key == fp
    if not key_ok:
        v.fail("key", "the public key given (%s) is not the key the manifest names (%s): verify with the gateway's "
               "own public key, obtained from the institution" % (fp, named_key))
    v.check("key", key_ok, "public key %s (Ed25519)" % fp)
    v.check("manifest", signature_ok, "signature valid" if signature_ok else "signature does not verify")

    # Files.
    listed = {}
    for f in files:
        if not safe_relative(f.get("path", "")):
            v.fail("files", 'the manifest lists "%s", which is not a path inside the pack' % f.get("path"))
            continue
        listed[f["path"]] = f
    present = set(p for p in list_files(folder) if p not in (MANIFEST, SIGNATURE))
    file_problems = 0
    for path in sorted(listed):
        entry = listed[path]
        if path not in present:
            v.fail("files", "%s is listed in the manifest but missing from the pack: it was deleted" % path)
            file_problems += 1
            continue
        size, sha = hash_file(os.path.join(folder, *path.split("/")))
        if sha != entry.get("sha256"):
            v.fail("files", "%s: its SHA-256 is %s but the manifest says %s (size %d, manifest %s): the file was "
                   "altered after the pack was signed" % (path, sha, entry.get("sha256"), size, entry.get("size")))
            file_problems += 1
        elif size != entry.get("size"):
            v.fail("files", "%s: its size is %d but the manifest says %s" % (path, size, entry.get("size")))
            file_problems += 1
    for path in sorted(present - set(listed)):
        v.fail("files", "%s is in the pack but not in the signed manifest: it was added after signing" % path)
        file_problems += 1
    for required in (EVENTS, CHECKPOINTS, REPORT):
        if required not in listed:
            v.fail("files", "the manifest does not list %s, which every pack has" % required)
            file_problems += 1
    v.check("files", file_problems == 0, "%d files listed; %s" % (
        len(listed), "all present, sizes and SHA-256 match, none added" if file_problems == 0
        else "%d problem(s)" % file_problems))

    # The chain segment.
    epath = os.path.join(folder, EVENTS)
    cpath = os.path.join(folder, CHECKPOINTS)
    if os.path.isfile(epath) and os.path.isfile(cpath):
        r = verify_segment(epath, cpath, key)
        for _, p in r.problems:
            v.fail("chain", p)
        if r.truncated:
            v.fail("chain", "more problems were found than are listed")
        found = (r.first_seq, r.last_seq, r.events)
        want = (segment.get("first_seq"), segment.get("last_seq"), segment.get("events"))
        if found != want:
            v.fail("chain", "the manifest says events %s–%s (%s events) but %s holds %s (%d events)" % (
                want[0], want[1], want[2], EVENTS,
                "events %d–%d" % (r.first_seq, r.last_seq) if r.first_seq is not None else "no events", r.events))
        manifest_closing = tuple(segment["closing_checkpoint"]) if segment.get("closing_checkpoint") else None
        if r.closing != manifest_closing:
            v.fail("checkpoints", "the manifest says the segment closes at %s but the verified checkpoints close it "
                   "at %s" % (closing_text(manifest_closing), closing_text(r.closing)))
        v.check("chain", not r.problems, "events %s–%s (%d events)" % (r.first_seq, r.last_seq, r.events))
        cp_problems = sum(1 for is_cp, _ in r.problems if is_cp)
        v.check("checkpoints", cp_problems == 0, "%d checkpoints; closes at %s" % (r.checkpoints,
                                                                                   closing_text(r.closing)))
        if r.unsigned_tail > 0:
            v.notes.append("the last %d event(s) of the segment (events %d–%d) are after the last signed checkpoint"
                           % (r.unsigned_tail, r.last_seq + 1 - r.unsigned_tail, r.last_seq))
        if r.first_seq is not None:
            a, b = r.first_seq, r.last_seq
            pf, pl = period.get("first_seq"), period.get("last_seq")
            if pf < a or pl > b or pf > pl:
                v.fail("period", "the period's events %d–%d are not inside the segment %d–%d" % (pf, pl, a, b))
    else:
        for path, name in ((epath, EVENTS), (cpath, CHECKPOINTS)):
            if not os.path.isfile(path):
                v.fail("chain", "%s cannot be read" % name)
        v.check("chain", False, "cannot be checked")

    # Session recordings are exactly their events, and terminal recordings
    # are the files the chain recorded.
    session_problems = check_sessions(folder, m, v)
    v.check("sessions", session_problems == 0, "%d session recordings" % len(sessions))
    recording_problems = check_terminal_recordings(folder, m, v)
    v.check("recordings", recording_problems == 0, "%d terminal recordings" % len(m.get("recordings") or []))
    v.check("period", not any(p.startswith("period:") for p in v.problems),
            "events %s–%s" % (period.get("first_seq"), period.get("last_seq")))
    return v, m


def period_events(folder, m):
    first, last = m["period"]["first_seq"], m["period"]["last_seq"]
    try:
        lines = list(read_lines(os.path.join(folder, EVENTS)))
    except OSError:
        return
    for _, line in lines:
        try:
            e = parse_event(line)
        except Corrupt:
            continue
        if first <= e["seq"] <= last:
            yield e, line


def check_sessions(folder, m, v):
    ids = set(s["id"] for s in m["sessions"])
    expected = {}
    for e, line in period_events(folder, m):
        sid = e["session_id"]
        if sid in ids:
            expected.setdefault(sid, []).append((e["seq"], hashlib.sha256(line.encode()).digest()))
    problems = 0
    for s in m["sessions"]:
        if not safe_relative(s["events_file"]):
            v.fail("sessions", 'the manifest names "%s" as a recording, which is not a path inside the pack'
                   % s["events_file"])
            problems += 1
            continue
        want = expected.get(s["id"], [])
        try:
            text = open(os.path.join(folder, *s["events_file"].split("/")), "rb").read().decode("utf-8", "replace")
        except OSError as x:
            v.fail("sessions", "%s cannot be read (%s)" % (s["events_file"], x))
            problems += 1
            continue
        got = text.split("\n")
        if got and got[-1] == "":
            got.pop()
        if len(got) != len(want):
            v.fail("sessions", "%s holds %d events but %s has %d for session %s"
                   % (s["events_file"], len(got), EVENTS, len(want), s["id"]))
            problems += 1
        for i, ((seq, h), g) in enumerate(zip(want, got)):
            if hashlib.sha256(g.encode()).digest() != h:
                v.fail("sessions", "%s line %d: it is not event %d of session %s as it stands in %s"
                       % (s["events_file"], i + 1, seq, s["id"], EVENTS))
                problems += 1
                break
    return problems


def check_terminal_recordings(folder, m, v):
    """Each `recordings` entry of the manifest: the file is in the pack and
    its SHA-256 is the one the chain's `recording` event recorded."""
    entries = m.get("recordings") or []
    if not entries:
        return 0
    recorded = {}
    for e, _ in period_events(folder, m):
        if e["kind"] == "recording" and isinstance(e["data"], dict):
            recorded[(e["session_id"], e["data"].get("file"))] = (e["seq"], e["data"].get("sha256"))
    problems = 0
    for r in entries:
        path = r.get("path", "")
        if not safe_relative(path):
            v.fail("recordings", 'the manifest names "%s" as a recording, which is not a path inside the pack' % path)
            problems += 1
            continue
        found = recorded.get((r.get("session"), r.get("file")))
        if found is None:
            v.fail("recordings", "%s: no recording event of session %s names %s in %s"
                   % (path, r.get("session"), r.get("file"), EVENTS))
            problems += 1
            continue
        full = os.path.join(folder, *path.split("/"))
        if not os.path.isfile(full):
            v.fail("recordings", "%s cannot be read (it is missing)" % path)
            problems += 1
            continue
        _, sha = hash_file(full)
        if sha != found[1]:
            v.fail("recordings", "%s: its SHA-256 is %s but event %d recorded %s: it is not the recording the "
                   "gateway made" % (path, sha, found[0], found[1]))
            problems += 1
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description="Verify a Gatehouse evidence pack offline (independent verifier).")
    ap.add_argument("pack", help="the pack folder")
    ap.add_argument("--public-key", required=True, help="the gateway's public key (PEM, or 64 hex characters)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.pack):
        sys.stderr.write("%s is not a folder; give the folder `gatehouse evidence` wrote\n" % args.pack)
        return 2
    try:
        key = load_public_key(args.public_key)
    except (OSError, ValueError) as x:
        sys.stderr.write("cannot read the public key: %s\n" % x)
        return 2
    v, _ = verify_pack(args.pack, key)
    ok = not v.problems
    if args.json:
        print(json.dumps({"verified": ok, "checks": [{"area": a, "ok": o, "detail": d} for o, a, d in v.checks],
                          "problems": v.problems, "notes": v.notes}, indent=2))
    else:
        print("evidence pack %s (independent verifier)" % args.pack)
        print("  public key   %s" % fingerprint(key))
        for o, a, d in v.checks:
            print("  %-4s %-11s %s" % ("ok" if o else "FAIL", a, d))
        for n in v.notes:
            print("  note: %s" % n)
        if v.problems:
            print("problems:")
            for p in v.problems:
                print("  - %s" % p)
        print("RESULT: VERIFIED" if ok else "RESULT: FAILED (%d problem(s))" % len(v.problems))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
