#!/usr/bin/env bash
# Fuzz Gatehouse's decoders of untrusted bytes with cargo-fuzz (libFuzzer).
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Defaults: 600 seconds for each of the targets in fuzz/fuzz_targets/ (all of
# them: pg_frontend pg_backend mysql_packets sql_classify http_frames
# json_mask jwt_parse), so about 70 minutes of fuzzing plus the build.
#
# Needs: Rust nightly (`rustup toolchain install nightly`), cargo-fuzz
# (`cargo install cargo-fuzz`), a C compiler and libclang (pg_query builds
# PostgreSQL's parser from C; aws-lc-rs builds its own C too).
# The first build takes about 15-20 minutes on 2 cores; later ones are
# incremental. Everything builds into fuzz/target (its own workspace, never
# the main build's target/).
#
# Sanitizer: AddressSanitizer (cargo-fuzz's default). It links fine with the
# C parts (pg_query, aws-lc) here; if it ever fails to link on a machine, run
# with FUZZ_SANITIZER=none (libFuzzer still catches panics, aborts, timeouts
# and OOMs; only C-side memory errors go unnoticed).
#
# What it does per target: runs it for SECONDS with the corpus in
# fuzz/corpus/<target> (new inputs that reach new code are kept there, then
# the corpus is minimised, seeds kept, so it stays small); a crash,
# timeout or out-of-memory input is saved under fuzz/artifacts/<target>/ and
# its path printed. The script goes on with the other targets and exits 1
# at the end if any target failed.
#
# Reproduce a failure:  cargo +nightly fuzz run <target> <artifact path>
# Environment knobs:
#   FUZZ_SANITIZER  address (default) | none
#   FUZZ_MAX_LEN    largest input libFuzzer generates (default 4096)
#   FUZZ_RSS_MB     memory limit per target in MB (default 2048)
#   FUZZ_CMIN       1 (default) to minimise each corpus after its run, 0 not to
#   FUZZ_KEEP_GOING 1 to keep fuzzing a target after a crash/timeout/OOM
#                   (libFuzzer -fork=1 -ignore_crashes=1 ...), e.g. while a
#                   known crash is not fixed yet; every new artifact is
#                   still reported and still fails the script. Default 0.
#
# Only the hand-written seeds (fuzz/corpus/*/seed-*, made by
# fuzz/make_seeds.py) are in git; what a run adds stays in the same folders
# on this machine (fuzz/.gitignore) so the next run starts from it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${1:-600}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
all_targets=(pg_frontend pg_backend mysql_packets sql_classify http_frames json_mask jwt_parse)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

sanitizer="${FUZZ_SANITIZER:-address}"
max_len="${FUZZ_MAX_LEN:-4096}"
rss_mb="${FUZZ_RSS_MB:-2048}"
cmin="${FUZZ_CMIN:-1}"
keep_going="${FUZZ_KEEP_GOING:-0}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: Rust nightly is missing: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi

# The fuzz crate is its own workspace with its own target dir.
unset CARGO_TARGET_DIR
fuzz=(cargo +nightly fuzz)
flags=(--sanitizer "$sanitizer")
bin_dir="fuzz/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

# Minimise a corpus in place, keeping the hand-written seed-* files as they
# are (cargo fuzz cmin would rename them): libFuzzer's -merge=1 keeps, of the
# other inputs, those that add coverage over the seeds and each other.
minimize() {
    local t="$1" corpus="$2" log="$3" tmp
    tmp="$(mktemp -d)"
    mkdir "$tmp/out" "$tmp/in"
    find "$corpus" -maxdepth 1 -type f -name 'seed-*' -exec cp -t "$tmp/out" {} +
    find "$corpus" -maxdepth 1 -type f ! -name 'seed-*' -exec mv -t "$tmp/in" {} +
    if "$bin_dir/$t" -merge=1 -max_len="$max_len" -rss_limit_mb="$rss_mb" -timeout=10 \
        "$tmp/out" "$tmp/in" >>"$log" 2>&1; then
        find "$tmp/out" -maxdepth 1 -type f ! -name 'seed-*' -exec mv -t "$corpus" {} +
    else
        echo "   (minimising failed; corpus left as it was, see $log)"
        find "$tmp/in" -maxdepth 1 -type f -exec mv -t "$corpus" {} +
    fi
    rm -rf "$tmp"
}

# What an input does to a target: the panic site and message, or the
# sanitizer's / libFuzzer's verdict, on one line.
why() {
    timeout 60 "$bin_dir/$1" "$2" 2>&1 \
        | grep -m1 -A1 -E "panicked at|ERROR: AddressSanitizer|ERROR: LeakSanitizer|ERROR: libFuzzer" \
        | tr '\n' ' ' | sed -E 's/thread .* panicked at /panic at /; s/ +$//' || true
}

echo "== building ${targets[*]} (sanitizer: $sanitizer)"
for t in "${targets[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then
        echo "fuzz.sh: no target $t (have: ${all_targets[*]})" >&2
        exit 2
    fi
done
if [ "${#targets[@]}" -eq "${#all_targets[@]}" ]; then
    "${fuzz[@]}" build "${flags[@]}"
else
    for t in "${targets[@]}"; do "${fuzz[@]}" build "${flags[@]}" "$t"; done
fi

failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    artifacts="fuzz/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    log="$(mktemp -t "fuzz-$t.XXXXXX.log")"
    echo "== $t: ${seconds}s, corpus $corpus, log $log"
    before="$(ls "$artifacts")"
    extra=()
    if [ "$keep_going" = 1 ]; then
        extra=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    status=0
    # -timeout: one input taking over 10 s is a hang worth reporting.
    "${fuzz[@]}" run "${flags[@]}" "$t" "$corpus" -- \
        -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb="$rss_mb" \
        -timeout=10 -print_final_stats=1 "${extra[@]}" \
        >"$log" 2>&1 || status=$?
    execs="$(grep -oE '(stat::number_of_executed_units: *|^#)[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)"
    cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)"
    new_artifacts="$(comm -13 <(printf '%s\n' "$before" | sort) <(ls "$artifacts" | sort) | sed "s|^|$root/$artifacts/|")"
    if [ "$status" -ne 0 ] || [ -n "$new_artifacts" ]; then
        kind="$(grep -oE 'ERROR: libFuzzer: [a-z -]+|panicked at [^:]+:[0-9]+:[0-9]+' "$log" | sort | uniq -c | sort -rn | head -5 || true)"
        echo "!! $t FAILED (exit $status)"
        [ -n "$kind" ] && printf '   %s\n' "$kind"
        for a in $new_artifacts; do
            echo "   input: $a"
            echo "          $(why "$t" "$a")"
        done
        grep -A12 -m1 -E "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer" "$log" | sed 's/^/   /' || true
        echo "   full log: $log"
        if [ -n "$new_artifacts" ]; then
            for a in $new_artifacts; do failed+=("$t: $a"); done
        else
            failed+=("$t: exit $status, no artifact; see $log")
        fi
        summary+=("$t: FAILED, ${execs:-?} executions, $cov")
    else
        summary+=("$t: ok, ${execs:-?} executions, $cov")
    fi
    if [ "$cmin" = 1 ] && { [ "$status" -eq 0 ] || [ "$keep_going" = 1 ]; }; then
        minimize "$t" "$corpus" "$log"
    fi
done

echo
echo "== summary (${seconds}s per target)"
printf '   %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "== failing targets:"
    printf '   %s\n' "${failed[@]}"
    echo "   reproduce: cargo +nightly fuzz run <target> <input>"
    exit 1
fi
