#!/usr/bin/env bash
# Readies a real OpenAI-compatible server for the gateway's tests:
# llama-cpp-python's server and a tiny random-weights model.
#
#   MODEL=$(bash scripts/llama.sh)    # prints the model's path on stdout
#
# Installs tests/llm/requirements.txt with pip when any pin is missing
# (llama-cpp-python builds from source: about 4 minutes on 2 cores), then
# makes target/llm/tiny.gguf with tests/llm/make_tiny_model.py when it is
# missing or was made by another version of the script or of llama.cpp.
# A second run does neither and takes about a second. Progress goes to
# stderr. Then:
#
#   GATEHOUSE_REQUIRE_LLAMA=1 cargo test -p gatehouse --test llm_real
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
requirements="$root/tests/llm/requirements.txt"
maker="$root/tests/llm/make_tiny_model.py"
work="$root/target/llm"
model="$work/tiny.gguf"
python=${PYTHON:-python3}

# Succeeds when every pin in requirements.txt is installed at its version
# and the server imports.
installed() {
  "$python" - "$requirements" <<'PY' 2>/dev/null
import importlib.metadata as md, re, sys
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;]+)", line)
    if not m or md.version(m.group(1)) != m.group(3):
        sys.exit(1)
import gguf, numpy, llama_cpp, llama_cpp.server.app  # noqa: E401,F401
PY
}

if ! installed; then
  echo "llama.sh: installing $(grep -v '^#' "$requirements" | xargs) (builds llama.cpp)" >&2
  started=$(date +%s)
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}" \
    "$python" -m pip install -q -r "$requirements" >&2
  installed || { echo "llama.sh: the install did not give a working llama_cpp.server" >&2; exit 1; }
  echo "llama.sh: installed in $(($(date +%s) - started)) s" >&2
fi

# The model is remade when the script that makes it or llama.cpp changes.
stamp="$("$python" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))') $(sha256sum "$maker" | cut -d' ' -f1)"
if [ ! -s "$model" ] || [ "$(cat "$model.stamp" 2>/dev/null)" != "$stamp" ]; then
  mkdir -p "$work"
  "$python" "$maker" "$model" >/dev/null
  echo "$stamp" >"$model.stamp"
fi
echo "$model"
