#!/usr/bin/env bash
# How much of MariaDB's own test suite (the statements of mysql-test/main,
# from Debian's source package of the installed series) gatehouse's MySQL
# classifier reads with its parser, and which forms it leaves to the
# keyword fallback. Not part of CI (it downloads ~115 MB of sources).
# PostgreSQL's figure comes from its regression suite run through the
# gateway (crates/gatehouse/tests/pg_regress.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/mysql-coverage
mkdir -p "$dir"
if [ ! -d "$dir/mysql-test/main" ]; then
  grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ || {
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > /etc/apt/sources.list.d/gatehouse-src.sources
    apt-get update -qq
  }
  # The newest source version the main archive (not security) still holds.
  version=$(apt-cache showsrc mariadb | awk '/^Version:/ {print $2}' | sort -V | head -1)
  (cd "$dir" && apt-get source --download-only "mariadb=$version" >/dev/null)
  tarball=$(ls "$dir"/mariadb_*.orig.tar.gz | head -1)
  top=$(tar tzf "$tarball" | head -1 | cut -d/ -f1)
  tar xzf "$tarball" -C "$dir" --wildcards "$top/mysql-test/main/*.test"
  mv "$dir/$top/mysql-test" "$dir/mysql-test"
fi
python3 scripts/mysqltest-statements.py "$dir/mysql-test/main" > "$dir/statements.nul"
cargo run --release -q -p gatehouse-core --example sql_coverage -- mysql "$dir/statements.nul"
