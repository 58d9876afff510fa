#!/usr/bin/env bash
# MySQL path benchmark: sysbench oltp_point_select (server-side prepared
# statements) straight at the demo's MariaDB, then through the gateway, in
# one run, and the ratio. Needs the release binary, MariaDB and sysbench
# (apt-get install mariadb-server mariadb-client sysbench).
#
#   cargo build --release -p gatehouse
#   bash scripts/bench-mysql.sh [SECONDS] [THREADS]
set -euo pipefail
secs=${1:-15}
threads=${2:-8}
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/target/release/gatehouse"
[ -x "$bin" ] || bin="${CARGO_TARGET_DIR:-$root/target}/release/gatehouse"
work=$(mktemp -d)
cd "$work"
"$bin" demo --env-file "$work/demo.env" >"$work/demo.out" 2>"$work/demo.err" &
demo=$!
trap 'kill -INT $demo 2>/dev/null; wait $demo 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do [ -s "$work/demo.env" ] && break; sleep 0.5; done
grep -q GATEHOUSE_MYSQL_PORT "$work/demo.env" || { echo "the demo has no MariaDB target"; exit 1; }
set -a; . "$work/demo.env"; set +a
target_port=$(awk '/type = "mysql"/{m=1} m && /^port/{print $3; exit}' "$GATEHOUSE_CONFIG")
pw=$(cat "$work/.gatehouse/demo-target.pw")
# sysbench 1.0's --mysql-ssl reads cacert.pem, client-cert.pem and
# client-key.pem from the working folder; the gateway asks for no client
# certificate, so a throwaway pair is enough.
cp "$GATEHOUSE_CA_FILE" cacert.pem
openssl req -x509 -newkey rsa:2048 -nodes -keyout client-key.pem -out client-cert.pem \
  -subj /CN=bench -days 1 2>/dev/null
common=(--mysql-host=127.0.0.1 --tables=1 --table-size=10000 --threads="$threads" --time="$secs" --report-interval=0)
sysbench oltp_point_select "${common[@]}" --mysql-db=bank --mysql-port="$target_port" --mysql-user=gatehouse_app --mysql-password="$pw" prepare >/dev/null
run() { sysbench oltp_point_select "${common[@]}" "$@" run | awk '/queries:/{gsub(/[()]/,"",$3); print $3}'; }
direct=$(run --mysql-db=bank --mysql-port="$target_port" --mysql-user=gatehouse_app --mysql-password="$pw")
gateway=$(run --mysql-db="$GATEHOUSE_MYSQL_DATABASE" --mysql-port="$GATEHOUSE_MYSQL_PORT" --mysql-user=alice --mysql-password="$GATEHOUSE_ANALYST_TOKEN" --mysql-ssl=on)
printf 'sysbench oltp_point_select, %s threads, %s s\n' "$threads" "$secs"
printf '  direct MariaDB           %10.0f qps  1.00\n' "$direct"
printf '  through gatehouse (TLS)  %10.0f qps  %.2f\n' "$gateway" "$(echo "$gateway / $direct" | bc -l)"
