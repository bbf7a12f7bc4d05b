#!/bin/bash
# sparkwire benchmarks, one command:  tests/bench/run.sh BUILD_DIR
#
# Every figure is measured in this run, on captures made by sparkwire-gen, and printed beside the
# reference it is compared with (ratios, not absolute times):
#   read     cloudmon -r with full decryption vs `tcpdump -r FILE -w /dev/null` (the read floor) and vs
#            tshark with the plugin and keys, same capture
#   plugin   tshark with the plugin and keys vs tshark without the plugin
#   rsa      RSA operations per handshake (counted by librsacount.so, LD_PRELOAD) and time per handshake
#            vs `openssl speed rsa1024 rsa2048`; for tshark one pass and two passes (-2, re-dissection)
#   memory   bytes per tracked connection: 100k libkeyring trackers fed a nonce (tracker-mem), and
#            cloudmon's peak RSS on a capture of 100k connections open after their nonce
#   live     tests/bench/live.sh in a network namespace of its own: the rate tcpreplay reaches alone, and
#            cloudmon -i lo while tcpreplay replays a capture at rising rates up to its top speed: the
#            highest rate at which cloudmon counts every packet, drops none and gives every verdict right
#            (root only; skipped otherwise)
# Sizes: BENCH_DEVICES (default 1000) x BENCH_MESSAGES (default 100) for the read and plugin figures,
# BENCH_CONNS (default 100000) for memory. Not part of `meson test`.
set -u
build=${1:?usage: tests/bench/run.sh BUILD_DIR}
build=$(cd "$build" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
N=${BENCH_DEVICES:-1000}
M=${BENCH_MESSAGES:-100}
CONNS=${BENCH_CONNS:-100000}
gen="$build/tests/bench/sparkwire-gen"
cm="$build/monitor/cloudmon"
plugin="$build/dissector/spark.so"
shim="$build/tests/bench/librsacount.so"
trmem="$build/tests/bench/tracker-mem"
for x in "$gen" "$cm"; do
    [ -x "$x" ] || { echo "run.sh: $x is not built (configure with -Dfirmware=true -Dmonitor=true -Dtests=enabled)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/sparkwire-bench.XXXXXX)
chmod 755 "$work"
trap 'chmod -R a+rX "$work"' EXIT
out="$work/results.txt"
say() { echo "$*" | tee -a "$out"; }
# seconds (wall) and peak RSS (kB) of a command: sets T and RSS
measure() {
    local tf="$work/time.$$"
    /usr/bin/time -f "%e %M" -o "$tf" "$@" >/dev/null 2>"$work/last.err"
    local rc=$?
    read -r T RSS <"$tf"
    return $rc
}
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f' % (a/b) if b > 0 else 'inf')" "$1" "$2"; }

say "# sparkwire benchmarks $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
say "command: tests/bench/run.sh $1   (BENCH_DEVICES=$N BENCH_MESSAGES=$M BENCH_CONNS=$CONNS)"

# ---- captures ----
"$gen" -o "$work/main" -n "$N" -m "$M" -s 1 2>>"$out" || exit 1
"$gen" -o "$work/hs" -n "$N" -m 0 -s 2 2>>"$out" || exit 1
cap="$work/main/capture.pcap"
npk=$(tcpdump -r "$cap" 2>/dev/null | wc -l)
say "capture: $N devices x $M messages: $npk packets, $(stat -c %s "$cap") bytes; handshake capture: $N handshakes"

# ---- read: cloudmon vs tcpdump ----
measure tcpdump -r "$cap" -w /dev/null; t_tcpdump=$T
measure "$cm" -r "$cap" --json; t_cm_nokeys=$T
measure "$cm" -r "$cap" -k "$work/main/keyfile" --json; t_cm=$T; rss_cm=$RSS
tail -n 1 "$work/last.err" | grep -q . && say "cloudmon stderr: $(tail -n 1 "$work/last.err")"
"$cm" -r "$cap" -k "$work/main/keyfile" --json | tail -n 1 >"$work/cm-summary.json"
say "read: tcpdump -r -w /dev/null ${t_tcpdump}s; cloudmon -r --json without keys ${t_cm_nokeys}s, with keys ${t_cm}s (peak RSS ${rss_cm} kB)"
say "read: cloudmon with keys / tcpdump = $(ratio "$t_cm" "$t_tcpdump"); $(python3 -c "print('%.0f' % ($npk / max($t_cm, 0.001)))") packets/s"
say "read: cloudmon summary: $(cat "$work/cm-summary.json")"

# ---- JSON Lines output rate and -q (summary only) ----
"$cm" -r "$cap" --json >"$work/nokeys.jsonl"; nj=$(wc -l <"$work/nokeys.jsonl")
"$cm" -r "$cap" -k "$work/main/keyfile" --json --export-sessions "$work/sessions" >"$work/keys.jsonl"
nk=$(wc -l <"$work/keys.jsonl")
measure "$cm" -q -r "$cap"; t_q_nokeys=$T
measure "$cm" -q -r "$cap" -k "$work/main/keyfile"; t_q=$T
measure "$cm" -q -r "$cap" -k "$work/main/sessions"; t_q_sess=$T
lps() { python3 -c "import sys; n,t=float(sys.argv[1]),float(sys.argv[2]); print('%.0f' % (n/t) if t > 0 else 'inf')" "$1" "$2"; }
say "json: without keys $nj lines in ${t_cm_nokeys}s = $(lps "$nj" "$t_cm_nokeys") lines/s; with keys $nk lines in ${t_cm}s = $(lps "$nk" "$t_cm") lines/s (goal >= 1000000)"
say "json: the writing alone (--json minus -q, without keys: $(python3 -c "print('%.3f' % max($t_cm_nokeys - $t_q_nokeys, 0.001))")s) = $(lps "$nj" "$(python3 -c "print(max($t_cm_nokeys - $t_q_nokeys, 0.001))")") lines/s"
say "quiet: cloudmon -q without keys / tcpdump = $(ratio "$t_q_nokeys" "$t_tcpdump"); with keys $(ratio "$t_q" "$t_tcpdump"); with the generator's session lines only $(ratio "$t_q_sess" "$t_tcpdump") (goal <= 3); session-lines summary: $("$cm" -q --json -r "$cap" -k "$work/main/sessions" | tail -n 1)"

# ---- tshark ----
ts_run() {   # plugin(yes|no) then tshark arguments; output to /dev/null, timed
    local pdir="$work/ws/noplugins"
    [ "$1" = yes ] && pdir="$work/ws/plugins"
    shift
    local envs=(HOME="$work/ws/home" WIRESHARK_CONFIG_DIR="$work/ws/home" WIRESHARK_PLUGIN_DIR="$pdir"
                WIRESHARK_EXTCAP_DIR="$work/ws/noplugins" LANG=C.UTF-8 PATH="$PATH")
    [ -n "${TS_PRELOAD:-}" ] && envs+=(LD_PRELOAD="$TS_PRELOAD" SPARKWIRE_RSA_COUNT="$TS_COUNT")
    if [ "$(id -u)" = 0 ]; then
        measure setpriv --reuid=65534 --regid=65534 --clear-groups env -i "${envs[@]}" tshark "$@"
    else
        measure env -i "${envs[@]}" tshark "$@"
    fi
}
have_ts=0
if command -v tshark >/dev/null && [ -f "$plugin" ]; then
    wsver=$(pkg-config --modversion wireshark 2>/dev/null | cut -d. -f1,2)
    mkdir -p "$work/ws/plugins/${wsver:-4.0}/epan" "$work/ws/noplugins" "$work/ws/home"
    cp "$plugin" "$work/ws/plugins/${wsver:-4.0}/epan/spark.so"
    [ -f "$shim" ] && cp "$shim" "$work/ws/librsacount.so"
    touch "$work/ws/rsa.txt"
    chmod -R a+rX "$work"
    chmod a+w "$work/ws/rsa.txt" "$work/ws/home"
    ts_run yes -G plugins
    if grep -q spark "$work/last.err" || setpriv --reuid=65534 --regid=65534 --clear-groups env -i HOME="$work/ws/home" \
            WIRESHARK_PLUGIN_DIR="$work/ws/plugins" tshark -G plugins 2>/dev/null | grep -q spark.so; then
        have_ts=1
    else
        say "tshark: the plugin does not load (tshark -G plugins does not list spark.so): tshark figures skipped"
    fi
fi
if [ "$have_ts" = 1 ]; then
    kf="$work/main/keyfile"
    ts_run no -n -r "$cap"; t_ts_plain=$T
    ts_run yes -n -r "$cap"; t_ts_nokeys=$T
    ts_run yes -n -r "$cap" -o "spark.keyfile:$kf"; t_ts=$T; rss_ts=$RSS
    ts_run yes -n -2 -r "$cap" -o "spark.keyfile:$kf"; t_ts2=$T
    say "tshark: without the plugin ${t_ts_plain}s; plugin, no keys ${t_ts_nokeys}s; plugin and keys ${t_ts}s (peak RSS ${rss_ts} kB); two passes (-2) ${t_ts2}s"
    say "ratio: tshark+plugin+keys / cloudmon+keys = $(ratio "$t_ts" "$t_cm"); cloudmon+keys / tcpdump = $(ratio "$t_cm" "$t_tcpdump")"
    say "ratio: tshark+plugin+keys / tshark without plugin = $(ratio "$t_ts" "$t_ts_plain") (plugin overhead); plugin without keys / without plugin = $(ratio "$t_ts_nokeys" "$t_ts_plain")"
else
    say "tshark: not measured (tshark or the plugin missing)"
fi

# ---- RSA per handshake ----
read -r _ _ _ sign1024 _ _ < <(openssl speed -seconds 2 rsa1024 2>/dev/null | grep '^rsa 1024')
read -r _ _ _ sign2048 verify2048 _ < <(openssl speed -seconds 2 rsa2048 2>/dev/null | grep '^rsa 2048')
sign1024=${sign1024%s}; sign2048=${sign2048%s}; verify2048=${verify2048%s}
say "openssl speed: RSA 1024 private op ${sign1024}s, RSA 2048 private op ${sign2048}s, RSA 2048 public op ${verify2048}s"
hs="$work/hs/capture.pcap"
measure "$cm" -r "$hs" --json; t_h0=$T
measure "$cm" -r "$hs" -k "$work/hs/keyfile" --json; t_h1=$T
"$gen" -o "$work/one" -n 1 --syn-only -s 3 2>/dev/null
measure "$cm" -r "$work/one/capture.pcap" -k "$work/hs/keyfile" --json; t_load=$T
expect=$(python3 -c "print('%.6f' % ($sign2048 + $sign1024 + $verify2048))")
per=$(python3 -c "print('%.6f' % (($t_h1 - $t_load - $t_h0) / $N))")
say "rsa: cloudmon, $N handshakes: ${t_h0}s without keys, ${t_h1}s with keys, of which ${t_load}s load the keyfile ($((N + 2)) keys): ${per}s of key work per handshake; openssl's minimum (one 2048 private + one 1024 private + one 2048 public) ${expect}s: ratio $(ratio "$per" "$expect")"
if [ -f "$shim" ]; then
    rm -f "$work/rsa-cm.txt"
    SPARKWIRE_RSA_COUNT="$work/rsa-cm.txt" LD_PRELOAD="$shim" "$cm" -r "$hs" -k "$work/hs/keyfile" --json >/dev/null
    say "rsa: cloudmon operations for $N handshakes: $(cat "$work/rsa-cm.txt")"
    if [ "$have_ts" = 1 ]; then
        cp "$work/hs/capture.pcap" "$work/hs/keyfile" "$work/ws/" && cp -r "$work/hs/keys" "$work/ws/" && chmod -R a+rX "$work/ws"
        : >"$work/ws/rsa.txt"
        TS_PRELOAD="$work/ws/librsacount.so" TS_COUNT="$work/ws/rsa.txt" ts_run yes -n -r "$work/ws/capture.pcap" -o "spark.keyfile:$work/ws/keyfile"
        t_ts_h=$T
        say "rsa: tshark one pass, $N handshakes (${t_ts_h}s): $(tail -n 1 "$work/ws/rsa.txt")"
        : >"$work/ws/rsa.txt"
        TS_PRELOAD="$work/ws/librsacount.so" TS_COUNT="$work/ws/rsa.txt" ts_run yes -n -2 -r "$work/ws/capture.pcap" -o "spark.keyfile:$work/ws/keyfile"
        say "rsa: tshark two passes (-2) (${T}s): $(tail -n 1 "$work/ws/rsa.txt")"
        : >"$work/ws/rsa.txt"
        TS_PRELOAD="$work/ws/librsacount.so" TS_COUNT="$work/ws/rsa.txt" ts_run yes -n -r "$work/ws/capture.pcap" -o "spark.keyfile:$work/ws/keyfile" -V
        say "rsa: tshark one pass with the tree (-V): $(tail -n 1 "$work/ws/rsa.txt")"
    fi
fi

# ---- memory per connection ----
if [ -x "$trmem" ]; then
    say "memory: tracker-mem: $("$trmem" "$CONNS")"
fi
"$gen" -o "$work/syn" -n "$CONNS" --syn-only -s 3 2>>"$out"
"$gen" -o "$work/syn1" -n 1 --syn-only -s 3 2>/dev/null
measure "$cm" -r "$work/syn1/capture.pcap" --json --max-conns 1000000 --idle 1000000000; rss1=$RSS
measure "$cm" -r "$work/syn/capture.pcap" --json --max-conns 1000000 --idle 1000000000; rssn=$RSS; tn=$T
say "memory: cloudmon, $CONNS connections open after their nonce: peak RSS ${rssn} kB (1 connection: ${rss1} kB): $(python3 -c "print('%.0f' % (($rssn - $rss1) * 1024 / $CONNS))") bytes per connection; ${tn}s"
measure "$cm" -r "$work/syn/capture.pcap" --json --max-conns 1000000 --idle 1000000000 -k "$work/hs/keyfile"
say "memory: the same with a keyfile (server key and $N device lines): peak RSS ${RSS} kB"

# ---- live ----
if [ "$(id -u)" != 0 ] || ! command -v tcpreplay >/dev/null || ! command -v unshare >/dev/null; then
    say "live: skipped (needs root, tcpreplay and unshare)"
else
    # 200 devices x 400 messages: about 600 packets per handshake, as a fleet of connected devices sends
    "$gen" -o "$work/live" -n 200 -m 400 -s 5 2>/dev/null
    unshare -n "$src/tests/bench/live.sh" "$cm" "$work/live/capture.pcap" "$work/live/keyfile" 2>&1 | tee -a "$out"
    # a flood of fake handshakes beside the devices, under the live RSA budget: see tests/monitor/test_flood.py
fi
say "raw output in $work"
