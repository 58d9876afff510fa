#!/usr/bin/env bash
# Proves the fake kube-apiserver against real kubectl, with no gateway in
# between: if these pass, a failure in a gateway test is the gateway's.
#
#   tests/kube/selftest.sh            # uses KUBECTL or scripts/kubectl.sh
#
# Every kubectl call is bounded by `timeout`; the fake server is stopped by
# its PID on exit.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
if [ -z "${KUBECTL:-}" ]; then
  KUBECTL=$("$ROOT/scripts/kubectl.sh")
fi
python3 -c 'import aiohttp' 2>/dev/null || pip install -q -r "$HERE/requirements.txt"

python3 "$HERE/test_spdy.py" 2>&1 | tail -1 | grep -q '^OK' || { python3 "$HERE/test_spdy.py"; exit 1; }

WORK=$(mktemp -d)
SERVER_PID=
PF_PID=
cleanup() {
  if [ -n "$PF_PID" ]; then kill "$PF_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { # expect FILE PATTERN WHAT
  grep -q -- "$2" "$1" || { echo "--- $1:"; cat "$1"; fail "$3"; }
}

TOKEN="upstream-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
python3 "$HERE/apiserver.py" --make-cert "$WORK/tls"
python3 "$HERE/apiserver.py" --cert "$WORK/tls/server.pem" --key "$WORK/tls/server.key" \
  --token "$TOKEN" --log "$WORK/requests.jsonl" >"$WORK/port" 2>"$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 50); do [ -s "$WORK/port" ] && break; sleep 0.1; done
PORT=$(head -1 "$WORK/port")
[ -n "$PORT" ] || { cat "$WORK/server.err"; fail "fake apiserver did not start"; }

# A private HOME keeps kubectl's discovery cache out of the way.
export HOME="$WORK/home"
mkdir -p "$HOME"
K=("$KUBECTL" --server "https://127.0.0.1:$PORT" --certificate-authority "$WORK/tls/ca.pem")
k() { timeout 30 "${K[@]}" --token "$TOKEN" "$@"; }
out="$WORK/out"

echo "fake apiserver on :$PORT, kubectl $("$KUBECTL" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"

k version -o json >"$out"
expect "$out" '"gitVersion": "v1.32.0-gatehouse-fake"' "kubectl version sees the server"

k get ns >"$out"
expect "$out" '^prod  *Active' "get ns prints a table"

k get pods -n prod >"$out"
expect "$out" '^NAME  *READY  *STATUS  *RESTARTS  *AGE' "get pods table header"
expect "$out" '^web-1  *1/1  *Running' "get pods lists web-1"

k get pod web-1 -n prod -o json >"$out"
python3 - "$out" <<'EOF'
import json, sys
pod = json.load(open(sys.argv[1]))
assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "web-1", pod
EOF

k get configmap -n prod -o yaml >"$out"
expect "$out" '123-45-6789' "configmap data carries the fake SSN"
expect "$out" 'jane.doe@example.com' "configmap data carries the fake email"

k get deploy,svc -n prod >"$out"
expect "$out" 'deployment.apps/web' "apps/v1 deployments are discovered"

k delete pod web-1 -n prod >"$out"
expect "$out" 'pod "web-1" deleted' "delete pod"
if k get pod web-1 -n prod >"$out" 2>&1; then fail "web-1 still there after delete"; fi
expect "$out" 'NotFound' "get after delete is NotFound"

cat >"$WORK/web-1.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: prod
  labels: {app: web}
spec:
  containers:
  - name: web
    image: nginx:1.27
EOF
k apply -f "$WORK/web-1.yaml" >"$out"
expect "$out" 'pod/web-1 created' "apply recreates web-1"
k run web-3 -n prod --image=busybox >"$out"
expect "$out" 'pod/web-3 created' "kubectl run"

# logs -f streams until the client gives up.
set +e
timeout 3 "${K[@]}" --token "$TOKEN" logs -f web-1 -n prod >"$out"
rc=$?
set -e
[ "$rc" = 124 ] || fail "logs -f should still be streaming when timeout ends it (rc=$rc)"
[ "$(grep -c 'seq=' "$out")" -ge 6 ] || fail "logs -f streamed too few lines"
expect "$out" 'ssn=123-45-6789' "log lines carry fake PII"

# get -w: the list, then events for a label change, a create and a delete.
timeout 10 "${K[@]}" --token "$TOKEN" get pods -n prod -w --request-timeout=4s >"$WORK/watch" 2>&1 &
WATCH_PID=$!
sleep 1.5
k label pod web-2 -n prod tier=frontend >/dev/null
k run web-4 -n prod --image=busybox >/dev/null
k delete pod web-3 -n prod >/dev/null
wait "$WATCH_PID" || fail "get -w did not end cleanly at --request-timeout"
[ "$(grep -c '^web-2 ' "$WORK/watch")" -ge 2 ] || { cat "$WORK/watch"; fail "watch missed MODIFIED web-2"; }
expect "$WORK/watch" '^web-4 ' "watch saw ADDED web-4"
[ "$(grep -c '^web-3 ' "$WORK/watch")" -ge 2 ] || { cat "$WORK/watch"; fail "watch missed DELETED web-3"; }

# A raw JSON watch stream (what the gateway will relay) has typed events.
timeout 10 "${K[@]}" --token "$TOKEN" get --raw \
  "/api/v1/namespaces/prod/pods?watch=true&timeoutSeconds=1" >"$out"
expect "$out" '"type": "ADDED"' "raw watch stream"

# exec over WebSocket (v5.channel.k8s.io).
k exec web-1 -n prod -- echo hi >"$out"
[ "$(cat "$out")" = "hi" ] || fail "exec echo hi printed: $(cat "$out")"
k exec web-1 -n prod -- sh -c 'echo a; whoami' >"$out"
[ "$(tr '\n' ' ' <"$out")" = "a root " ] || fail "exec sh -c printed: $(cat "$out")"
set +e
k exec web-1 -n prod -- sh -c 'exit 3' >"$out" 2>&1
rc=$?
set -e
[ "$rc" = 3 ] || fail "exec exit status should reach kubectl (rc=$rc)"
printf 'echo piped\nwhoami\n' | k exec -i web-1 -n prod -- sh >"$out"
[ "$(tr '\n' ' ' <"$out")" = "piped root " ] || fail "exec -i printed: $(cat "$out")"

# exec -it through a real terminal (script(1) gives kubectl a pty).
(sleep 2; printf 'echo hello world\r'; sleep 0.5; printf 'whoami\r'; sleep 0.5
 printf 'stty size\r'; sleep 0.5; printf 'exit\r'; sleep 2) |
  timeout 20 script -qfec "stty cols 100 rows 30; $(printf '%q ' "${K[@]}") --token $TOKEN exec -it web-1 -n prod -- sh" /dev/null >"$out"
tr -d '\r' <"$out" >"$out.clean"
expect "$out.clean" '^\$ echo hello world' "exec -it echoes typed input after the prompt"
expect "$out.clean" '^hello world' "exec -it runs echo"
expect "$out.clean" '^root' "exec -it runs whoami"
expect "$out.clean" '^30 100' "exec -it passes the terminal size"

# port-forward: kubectl tunnels SPDY/3.1 inside a WebSocket
# (SPDY/3.1+portforward.k8s.io). Port 8080 in the fake pod serves HTTP,
# 5432 echoes, anything else is refused inside the pod.
local_port() { # local_port FILE REMOTE -> the local port kubectl chose
  sed -n "s/^Forwarding from 127\.0\.0\.1:\([0-9]*\) -> $2\$/\1/p" "$1" | head -1
}
start_port_forward() { # start_port_forward OUT ERR PORTS... (sets PF_PID)
  local o=$1 e=$2
  shift 2
  : >"$o"  # empty before kubectl starts, so the wait below cannot see an old run
  timeout 60 "${K[@]}" --token "$TOKEN" port-forward pod/web-1 -n prod "$@" >"$o" 2>"$e" &
  PF_PID=$!
  for _ in $(seq 100); do
    [ "$(grep -c '^Forwarding from 127' "$o")" -ge $# ] && return 0
    kill -0 "$PF_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$o" "$e"
  fail "port-forward did not start"
}
stop_port_forward() { # kill timeout(1) by its PID; it passes the TERM to kubectl
  if [ -n "$PF_PID" ]; then
    kill "$PF_PID" 2>/dev/null || true
    wait "$PF_PID" 2>/dev/null || true
  fi
  PF_PID=
}
check_port_forward() { # check_port_forward TRANSPORT (for the messages)
  start_port_forward "$WORK/pf.out" "$WORK/pf.err" 0:8080 0:5432
  WEB_PORT=$(local_port "$WORK/pf.out" 8080)
  ECHO_PORT=$(local_port "$WORK/pf.out" 5432)
  [ -n "$WEB_PORT" ] && [ -n "$ECHO_PORT" ] || { cat "$WORK/pf.out"; fail "no local ports printed"; }
  for i in 1 2; do # a second connection shows the session outlives the first
    curl -sS -m 10 -i "http://127.0.0.1:$WEB_PORT/" >"$out" || fail "curl through port-forward ($1 $i)"
    expect "$out" '^HTTP/1.1 200 OK' "port-forward ($1) 8080 answers HTTP ($i)"
    expect "$out" 'customer ssn 123-45-6789' "port-forward ($1) 8080 body carries the fake SSN ($i)"
  done
  python3 - "$ECHO_PORT" "$1" <<'PY'
import os, socket, sys
port, transport = int(sys.argv[1]), sys.argv[2]
# A short line, then 1 MiB: far more than SPDY's 64 KiB initial stream window.
for payload in (b"ping ssn=123-45-6789\n", os.urandom(1 << 20)):
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := s.recv(65536):
            got += chunk
    assert bytes(got) == payload, f"echo returned {len(got)} of {len(payload)} bytes"
print(f"port-forward ({transport}) echo through :{port} ok")
PY
  kill -0 "$PF_PID" 2>/dev/null || { cat "$WORK/pf.err"; fail "port-forward ($1) exited early"; }
  stop_port_forward
  expect "$WORK/pf.out" '^Handling connection for' "port-forward ($1) logs each connection"
  # kubectl falls back from WebSocket to SPDY silently: check which one ran.
  grep '/portforward"' "$WORK/requests.jsonl" | tail -1 >"$out"
  case "$1" in
    websocket) expect "$out" '"upgrade": "websocket"' "port-forward went over WebSocket" ;;
    spdy) expect "$out" '"upgrade": "SPDY/3.1"' "port-forward went over plain SPDY" ;;
  esac
}
# kubectl 1.32 by default: SPDY/3.1 tunnelled in a WebSocket.
check_port_forward websocket
# Its fallback (and the only way before 1.31): a plain SPDY/3.1 upgrade.
KUBECTL_PORT_FORWARD_WEBSOCKETS=false check_port_forward spdy

# A port nothing listens on: the pod's error comes back on the error stream,
# and kubectl 1.32 then gives up the whole port-forward, as with a real pod.
start_port_forward "$WORK/pf2.out" "$WORK/pf2.err" 0:9999
NONE_PORT=$(local_port "$WORK/pf2.out" 9999)
[ -n "$NONE_PORT" ] || { cat "$WORK/pf2.out"; fail "no local port printed for 9999"; }
if curl -sS -m 10 "http://127.0.0.1:$NONE_PORT/" >"$out" 2>&1; then fail "closed pod port answered"; fi
for _ in $(seq 50); do kill -0 "$PF_PID" 2>/dev/null || break; sleep 0.1; done
stop_port_forward
expect "$WORK/pf2.err" 'error forwarding port 9999 to pod web-1' "a refused port reports the pod's error"

# Authentication: a wrong token is refused, and is all the server saw.
if timeout 10 "${K[@]}" --token wrong get ns >"$out" 2>&1; then fail "wrong token accepted"; fi
expect "$out" 'Unauthorized' "wrong token gets 401"

python3 - "$WORK/requests.jsonl" "$TOKEN" <<'EOF'
import hashlib, json, sys
entries = [json.loads(line) for line in open(sys.argv[1])]
want = hashlib.sha256(sys.argv[2].encode()).hexdigest()[:16]
bad = [e for e in entries if e["auth"] != "ok"]
wrong = hashlib.sha256(b"wrong").hexdigest()[:16]
assert len(bad) == 1 and bad[0]["token_sha256"] == wrong, bad
assert all(e["token_sha256"] == want for e in entries if e["auth"] == "ok")
assert any(e["upgrade"] == "websocket" and "v5.channel.k8s.io" in (e["ws_protocols"] or "")
           for e in entries), "no WebSocket exec seen"
assert any(e["upgrade"] == "websocket" and e["ws_protocols"] == "SPDY/3.1+portforward.k8s.io"
           and e["path"].endswith("/pods/web-1/portforward") for e in entries), "no tunnelled port-forward seen"
assert any(e["method"] == "POST" and e["upgrade"] == "SPDY/3.1"
           and e["path"].endswith("/pods/web-1/portforward") for e in entries), "no SPDY port-forward seen"
print(f"request log: {len(entries)} requests, all but the wrong-token one authenticated")
EOF
echo "selftest: all kubectl flows passed"
