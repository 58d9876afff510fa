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

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
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

# port-forward is not implemented: it must fail fast, not hang.
set +e
timeout 10 "${K[@]}" --token "$TOKEN" port-forward web-1 -n prod 0:80 >"$out" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || fail "port-forward should fail fast (rc=$rc)"

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
print(f"request log: {len(entries)} requests, all but the wrong-token one authenticated")
EOF
echo "selftest: all kubectl flows passed"
