#!/bin/bash
# Mutation test in the manner of Wireshark's own fuzz testing: every sample capture is damaged with
# `editcap -E 0.02` (ROUNDS seeds each, default 5) and read by cloudmon (-r, with the sample's keyfile)
# and by tshark with the plugin and keys (as nobody; in a sanitized build with the sanitizer runtimes
# preloaded), each under `timeout 20`. Pass: no crash (exit < 128), no hang (timeout), no sanitizer report
# on stderr. cloudmon may exit 2 for a damaged capture, with one line saying so.
# usage: mutate.sh BUILD_DIR        env: ROUNDS, SPARKWIRE_SANITIZED
set -u
build=$(cd "${1:?usage: mutate.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${ROUNDS:-5}
cm="$build/monitor/cloudmon"
plugin="$build/dissector/spark.so"
command -v editcap >/dev/null || { echo "SKIP: editcap missing (apt-get install wireshark-common)"; exit 77; }
have_cm=0; [ -x "$cm" ] && have_cm=1
have_ts=0; command -v tshark >/dev/null && [ -f "$plugin" ] && have_ts=1
[ "$have_cm$have_ts" = 00 ] && { echo "SKIP: neither cloudmon nor the plugin is built"; exit 77; }

tmp=$(mktemp -d /tmp/sparkwire-mutate.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
cp -r "$src/samples" "$tmp/samples"
ver=$(pkg-config --modversion wireshark 2>/dev/null | cut -d. -f1,2)
mkdir -p "$tmp/plugins/${ver:-4.0}/epan" "$tmp/home" "$tmp/empty"
[ "$have_ts" = 1 ] && cp "$plugin" "$tmp/plugins/${ver:-4.0}/epan/spark.so"
preload=""
if [ "${SPARKWIRE_SANITIZED:-0}" = 1 ]; then
    preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
fi
export ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

fail=0 runs=0
bad() { echo "FAIL: $*"; fail=1; }
check() {   # what, exit code, stderr file
    local what=$1 rc=$2 err=$3
    runs=$((runs + 1))
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then bad "$what: hung (killed after 20 s)"; return; fi
    if [ "$rc" -ge 128 ]; then bad "$what: crashed (exit $rc): $(tail -n 5 "$err")"; return; fi
    if grep -q "ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer" "$err"; then
        bad "$what: sanitizer report:"; grep -m1 -A15 "ERROR: \|runtime error:" "$err"; return
    fi
}

for dir in "$tmp"/samples/*/; do
    name=$(basename "$dir")
    [ -f "$dir/capture.pcap" ] || continue
    kf="$dir/keyfile"
    for seed in $(seq "$rounds"); do
        m="$tmp/$name-$seed.pcap"
        editcap -E 0.02 --seed "$seed" "$dir/capture.pcap" "$m" >/dev/null 2>&1 || { bad "editcap on $name"; continue; }
        chmod a+r "$m"
        if [ "$have_cm" = 1 ]; then
            timeout -k 2 20 "$cm" -r "$m" -k "$kf" --json >/dev/null 2>"$tmp/err"
            rc=$?
            check "cloudmon -r $name seed $seed" "$rc" "$tmp/err"
            if [ "$rc" != 0 ] && [ "$rc" != 2 ]; then bad "cloudmon -r $name seed $seed: exit $rc (expected 0 or 2)"; fi
            if [ "$rc" = 2 ] && [ "$(wc -l <"$tmp/err")" -ne 1 ]; then bad "cloudmon -r $name seed $seed: exit 2 without exactly one error line: $(cat "$tmp/err")"; fi
        fi
        if [ "$have_ts" = 1 ]; then
            chmod -R a+rX "$tmp"
            envs=(HOME="$tmp/home" WIRESHARK_CONFIG_DIR="$tmp/home" WIRESHARK_PLUGIN_DIR="$tmp/plugins"
                  WIRESHARK_EXTCAP_DIR="$tmp/empty" PATH="$PATH" LANG=C.UTF-8)
            [ -n "$preload" ] && envs+=(LD_PRELOAD="$preload" ASAN_OPTIONS="detect_leaks=0" UBSAN_OPTIONS="$UBSAN_OPTIONS")
            runner=(env -i)
            [ "$(id -u)" = 0 ] && runner=(setpriv --reuid=65534 --regid=65534 --clear-groups env -i)
            timeout -k 2 20 "${runner[@]}" "${envs[@]}" tshark -n -2 -V -r "$m" -o "spark.keyfile:$kf" >/dev/null 2>"$tmp/err"
            check "tshark+plugin $name seed $seed" "$?" "$tmp/err"
        fi
    done
done
echo "mutate: $runs runs on $(ls "$tmp"/*.pcap | wc -l) mutated captures ($rounds per sample)"
[ "$fail" = 0 ] && echo "mutate: no crash, no hang, no sanitizer report"
exit "$fail"
