#!/usr/bin/env python3
"""Extract the SQL statements from MariaDB's own test suite (mysqltest
`.test` files) for measuring how much of it gatehouse's MySQL classifier
reads (see scripts/sql-coverage.sh).

Usage: mysqltest-statements.py DIR > statements.nul
Writes statements separated by NUL bytes. Skips mysqltest's own commands
(`--echo`, `let`, `connect`, …), statements that use mysqltest variables
($x), and follows `delimiter` changes.
"""

import pathlib
import re
import sys

COMMANDS = {
    "let", "eval", "connect", "connection", "disconnect", "source", "error", "echo", "if",
    "while", "end", "}", "inc", "dec", "sleep", "real_sleep", "send", "reap", "die", "exit",
    "perl", "write_file", "append_file", "remove_file", "remove_files_wildcard", "copy_file",
    "move_file", "file_exists", "mkdir", "rmdir", "chmod", "exec", "exec_in_background",
    "system", "vertical_results", "horizontal_results", "skip", "character_set", "delimiter",
    "shutdown_server", "change_user", "query_vertical", "query_horizontal", "sorted_result",
    "replace_result", "replace_column", "replace_regex", "send_eval", "send_quit", "ping",
    "sync_slave_with_master", "sync_with_master", "save_master_pos", "wait_for_slave_to_stop",
    "result_format", "list_files", "list_files_write_file", "list_files_append_file",
    "cat_file", "diff_files", "output", "lowercase_result", "start_timer", "end_timer",
    "query", "dirty_close", "enable_abort_on_error", "disable_abort_on_error", "lowercase",
    "copy_files_wildcard", "send_shutdown", "assert", "partially_sorted_result",
}


def statements(text):
    delimiter = ";"
    buf = []
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#") or line.startswith("--")):
            continue
        m = re.match(r"(?i)^delimiter\s+(\S+)", line)
        if not buf and m:
            d = m.group(1)
            delimiter = d[: -len(delimiter)] if d.endswith(delimiter) and d != delimiter else d
            continue
        buf.append(raw)
        joined = "\n".join(buf).rstrip()
        if joined.endswith(delimiter):
            stmt = joined[: -len(delimiter)].strip()
            buf = []
            if not stmt:
                continue
            first = re.split(r"[\s(;]", stmt, maxsplit=1)[0].lower()
            if first in COMMANDS or first.startswith("disable_") or first.startswith("enable_"):
                continue
            if "$" in stmt:
                continue
            yield stmt


def main():
    out = sys.stdout.buffer
    for path in sorted(pathlib.Path(sys.argv[1]).glob("*.test")):
        text = path.read_text(errors="replace")
        for s in statements(text):
            out.write(s.encode() + b"\0")


if __name__ == "__main__":
    main()
