#!/bin/bash
# Fuzz smoke test: builds the libFuzzer targets (build.sh), replays every regression input under
# tests/fuzz/regress/<target>/ (each must run clean), then fuzzes each target for FUZZ_SECONDS (default 12)
# from its seed corpus (copied: the repository's corpus is not changed). Any crash, leak, timeout or
# sanitizer report fails the test and leaves the input in the work folder, named in the output.
# usage: tests/fuzz/run.sh [BUILD_OUT]      targets: FUZZ_TARGETS="key keyfile tracker cloudmon pcapng firmware"
# A longer run: FUZZ_SECONDS=600 tests/fuzz/run.sh /tmp/fuzz   (see docs/robustness.md)
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
out=${1:-${SPARKWIRE_BUILD_ROOT:-$src/build}/tests/fuzz/clang}
secs=${FUZZ_SECONDS:-12}
targets=${FUZZ_TARGETS:-key keyfile tracker cloudmon pcapng firmware}
export SPARKWIRE_SOURCE_ROOT="$src"
"$here/build.sh" "$out" >"${TMPDIR:-/tmp}/fuzz-build.$$" 2>&1
rc=$?
cat "${TMPDIR:-/tmp}/fuzz-build.$$"
rm -f "${TMPDIR:-/tmp}/fuzz-build.$$"
[ "$rc" = 77 ] && exit 77
[ "$rc" = 0 ] || { echo "FAIL: the fuzz targets do not build"; exit 1; }
work=$(mktemp -d /tmp/sparkwire-fuzz.XXXXXX)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:allocator_may_return_null=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
fail=0
for t in $targets; do
    bin="$out/fuzz-$t"
    # regression inputs: each one run once
    if [ -d "$here/regress/$t" ] && [ -n "$(ls -A "$here/regress/$t")" ]; then
        if "$bin" -runs=1 "$here/regress/$t"/* >"$work/$t-regress.log" 2>&1; then
            echo "ok   $t: $(ls "$here/regress/$t" | wc -l) regression inputs replayed clean"
        else
            echo "FAIL $t: a regression input fails again:"; tail -n 30 "$work/$t-regress.log"; fail=1
        fi
    fi
    [ "$secs" = 0 ] && continue
    mkdir -p "$work/$t-corpus" "$work/$t-artifacts"
    cp "$here/corpus/$t"/* "$work/$t-corpus/" 2>/dev/null
    if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
            -artifact_prefix="$work/$t-artifacts/" "$work/$t-corpus" >"$work/$t.log" 2>&1; then
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$')
        cov=$(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -n 1)
        echo "ok   $t: ${secs}s, ${execs:-?} runs, ${cov:-cov ?}, no crash"
    else
        echo "FAIL $t: the fuzzer found a problem; input in $work/$t-artifacts/:"
        ls "$work/$t-artifacts/"
        grep -m1 -A25 'ERROR: \|runtime error:\|==ERROR\|deadly signal\|timeout' "$work/$t.log" | head -n 40
        fail=1
    fi
done
[ "$fail" = 0 ] && rm -rf "$work"
exit "$fail"
