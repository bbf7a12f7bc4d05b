#!/bin/bash
# sparkwire benchmarks, one command:  tests/bench/run.sh BUILD_DIR
#
# Every figure is measured in this run, on captures made by sparkwire-gen, and printed beside the
# reference it is compared with (ratios, not absolute times). Times are CPU seconds; the commands a ratio
# compares are timed together, in alternation (tests/bench/alternate.py: BENCH_ROUNDS rounds, default 9, each
# command once a round, medians), so a drift in the machine's speed weighs on both sides of a ratio alike.
# Each goal is one line "GOAL name = ratio (goal <= or >= G): met | NOT met":
#   read     cloudmon -q -r with full decryption by the generator's session lines vs `tcpdump -r FILE -w
#            /dev/null` (the read floor); --json lines per second; with the full keyfile, CPU against
#            openssl's RSA cost per handshake x handshakes + 0.3 s
#   plugin   tshark with the plugin and keys vs cloudmon --json with the same keys, and tshark with the
#            plugin and session lines vs tshark without the plugin
#   rsa      RSA operations per handshake (counted by librsacount.so, LD_PRELOAD) and time per handshake
#            vs `openssl speed rsa1024 rsa2048`; for tshark one pass and two passes (-2, re-dissection)
#   memory   bytes per open connection against the goal of 2048: 100k connections through libkeyring's
#            connection layer after their nonce and after their id block (tracker-mem), and cloudmon's peak
#            RSS less an idle cloudmon's on captures of 100k and of 1,000,000 connections open after their nonce
#   live     tests/bench/live.sh in a network namespace of its own: the rate tcpreplay reaches alone, and
#            cloudmon -i lo while tcpreplay replays a capture at rising rates up to its top speed: the
#            highest rate at which cloudmon counts every packet, drops none and gives every verdict right
#            (root only; skipped otherwise)
# Sizes: BENCH_DEVICES (default 1000) x BENCH_MESSAGES (default 100) for the read and plugin figures,
# BENCH_CONNS (default 100000) and BENCH_MILLION (default 1000000, 0 skips it) for memory; BENCH_LIVE=0 skips
# the live part; BENCH_ROUNDS (default 9) rounds of alternated timing. Not part of `meson test`.
set -u
build=${1:?usage: tests/bench/run.sh BUILD_DIR}
build=$(cd "$build" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
N=${BENCH_DEVICES:-1000}
M=${BENCH_MESSAGES:-100}
CONNS=${BENCH_CONNS:-100000}
ROUNDS=${BENCH_ROUNDS:-9}
gen="$build/tests/bench/sparkwire-gen"
cm="$build/monitor/cloudmon"
plugin="$build/dissector/spark.so"
shim="$build/tests/bench/librsacount.so"
trmem="$build/tests/bench/tracker-mem"
peak="$build/tests/memory/peak-rss"
for x in "$gen" "$cm" "$peak"; do
    [ -x "$x" ] || { echo "run.sh: $x is not built (configure with -Dfirmware=true -Dmonitor=true -Dtests=enabled)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/sparkwire-bench.XXXXXX)
chmod 755 "$work"
trap 'chmod -R a+rX "$work"' EXIT
out="$work/results.txt"
say() { echo "$*" | tee -a "$out"; }
# A command as one line of tests/bench/alternate.py's command file
cmd_line() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }
# CPU seconds (user + system, from the child's rusage: the machine is shared, wall times vary with the load)
# and peak RSS (kB) of one run of a command, timed by alternate.py: sets T, W (wall seconds) and RSS; its
# standard error in last.err
measure() {
    local rc
    cmd_line "$@" >"$work/one.cmds"
    python3 "$src/tests/bench/alternate.py" 1 "$work/one.cmds" "$work/one.out" || return 1
    mv "$work/one.out.err0" "$work/last.err"
    read -r T W RSS rc <"$work/one.out"
    return "${rc:-1}"
}
# Commands timed together in alternation: alt_add queues one, alt_run times the queue (ROUNDS rounds) and
# sets ALT_T[i] (median CPU seconds) and ALT_RSS[i] (largest peak RSS, kB), i in the order they were queued
alt_add() { cmd_line "$@" >>"$work/alt.cmds"; }
alt_run() {
    local t w r c
    ALT_T=(); ALT_RSS=()
    python3 "$src/tests/bench/alternate.py" "$ROUNDS" "$work/alt.cmds" "$work/alt.out" || exit 1
    while read -r t w r c; do ALT_T+=("$t"); ALT_RSS+=("$r"); done <"$work/alt.out"
    : >"$work/alt.cmds"
}
# The ratio of the commands queued as IA and IB in the last alt_run, round by round: "; rounds: LOW to HIGH,
# K of R within the goal" (how far the machine's noise moves it)
per_round() {
    python3 -c "
import sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
a, b, op, g = rows[int(sys.argv[2])], rows[int(sys.argv[3])], sys.argv[4], float(sys.argv[5])
r = [x / y for x, y in zip(a, b) if y > 0]
k = sum(1 for x in r if (x <= g if op == '<=' else x >= g))
print('; rounds: %.2f to %.2f, %d of %d within the goal' % (min(r), max(r), k, len(r)) if r else '')
" "$work/alt.out.rounds" "$@"
}
# "name: A / B = R (goal OP G): met|NOT met", the medians' ratio; with IA IB (the two commands' places in the
# last alt_run) also the ratio round by round
goal() {
    local name=$1 a=$2 b=$3 op=$4 g=$5 r spread=""
    r=$(ratio "$a" "$b")
    [ $# -ge 7 ] && spread=$(per_round "$6" "$7" "$op" "$g")
    if python3 -c "import sys; r, g = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if (r <= g if sys.argv[3] == '<=' else r >= g) else 1)" "$r" "$g" "$op"; then
        say "GOAL $name = $r (goal $op $g): met$spread"
    else
        say "GOAL $name = $r (goal $op $g): NOT met$spread"
    fi
}
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f' % (a/b) if b > 0 else 'inf')" "$1" "$2"; }

say "# sparkwire benchmarks $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
say "command: tests/bench/run.sh $1   (BENCH_DEVICES=$N BENCH_MESSAGES=$M BENCH_CONNS=$CONNS BENCH_MILLION=${BENCH_MILLION:-1000000} BENCH_LIVE=${BENCH_LIVE:-1})"
say "times: CPU seconds (user + system), medians of $ROUNDS rounds of the commands compared, run in alternation; load at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- captures ----
"$gen" -o "$work/main" -n "$N" -m "$M" -s 1 2>>"$out" || exit 1
"$gen" -o "$work/hs" -n "$N" -m 0 -s 2 2>>"$out" || exit 1
cap="$work/main/capture.pcap"
npk=$(tcpdump -r "$cap" 2>/dev/null | wc -l)
say "capture: $N devices x $M messages: $npk packets, $(stat -c %s "$cap") bytes; handshake capture: $N handshakes"

# ---- openssl's RSA cost, for the budget of a run with the full keyfile ----
read -r _ _ _ sign1024 _ _ < <(openssl speed -seconds 2 rsa1024 2>/dev/null | grep '^rsa 1024')
read -r _ _ _ sign2048 verify2048 _ < <(openssl speed -seconds 2 rsa2048 2>/dev/null | grep '^rsa 2048')
sign1024=${sign1024%s}; sign2048=${sign2048%s}; verify2048=${verify2048%s}
say "openssl speed: RSA 1024 private op ${sign1024}s, RSA 2048 private op ${sign2048}s, RSA 2048 public op ${verify2048}s"
expect=$(python3 -c "print('%.6f' % ($sign2048 + $sign1024 + $verify2048))")

# ---- read: cloudmon -q (summary only) vs tcpdump ----
kf="$work/main/keyfile"
ses="$work/main/sessions"
alt_add tcpdump -r "$cap" -w /dev/null
alt_add "$cm" -q -r "$cap"
alt_add "$cm" -q -r "$cap" -k "$ses"
alt_add "$cm" -q -r "$cap" -k "$kf"
alt_run
t_tcpdump=${ALT_T[0]}; t_q_nokeys=${ALT_T[1]}; t_q_sess=${ALT_T[2]}; t_q=${ALT_T[3]}; rss_cm=${ALT_RSS[3]}
sum_kf=$("$cm" -q --json -r "$cap" -k "$kf" | tail -n 1)
sum_ses=$("$cm" -q --json -r "$cap" -k "$ses" | tail -n 1)
say "read: tcpdump -r FILE -w /dev/null ${t_tcpdump}s; cloudmon -q -r FILE: without keys ${t_q_nokeys}s, with the session lines ${t_q_sess}s, with the keyfile ${t_q}s (peak RSS ${rss_cm} kB)"
say "read: summary with the keyfile:      $sum_kf"
say "read: summary with the session lines: $sum_ses"
msgs() { python3 -c "import json, sys; print(json.loads(sys.argv[1]).get('messages', -1))" "$1"; }
[ "$(msgs "$sum_kf")" = "$(msgs "$sum_ses")" ] && say "read: the session lines decrypt the same $(msgs "$sum_ses") messages as the keyfile" \
    || say "read: the session lines decrypt $(msgs "$sum_ses") messages, the keyfile $(msgs "$sum_kf"): NOT the same"
say "read: cloudmon -q without keys / tcpdump = $(ratio "$t_q_nokeys" "$t_tcpdump"); with the keyfile / tcpdump = $(ratio "$t_q" "$t_tcpdump")"
goal "1. cloudmon -q -r FILE -k SESSIONS / tcpdump -r FILE -w /dev/null" "$t_q_sess" "$t_tcpdump" "<=" 3 2 0

# ---- JSON Lines ----
lps() { python3 -c "import sys; n,t=float(sys.argv[1]),float(sys.argv[2]); print('%.0f' % (n/t) if t > 0 else 'inf')" "$1" "$2"; }
"$cm" -r "$cap" --json >"$work/nokeys.jsonl"; nj=$(wc -l <"$work/nokeys.jsonl")
"$cm" -r "$cap" -k "$ses" --json >"$work/sessions.jsonl"; ns=$(wc -l <"$work/sessions.jsonl")
"$cm" -r "$cap" -k "$kf" --json >"$work/keys.jsonl"; nk=$(wc -l <"$work/keys.jsonl")
alt_add "$cm" -r "$cap" --json
alt_add "$cm" -r "$cap" -k "$ses" --json
alt_add "$cm" -r "$cap" -k "$kf" --json
alt_run
t_cm_nokeys=${ALT_T[0]}; t_cm_sess=${ALT_T[1]}; t_cm=${ALT_T[2]}
say "json: without keys $nj lines in ${t_cm_nokeys}s = $(lps "$nj" "$t_cm_nokeys") lines/s; with the session lines $ns lines in ${t_cm_sess}s = $(lps "$ns" "$t_cm_sess") lines/s; with the keyfile $nk lines in ${t_cm}s = $(lps "$nk" "$t_cm") lines/s"
goal "2a. cloudmon --json lines/s without keys / 1000000" "$(lps "$nj" "$t_cm_nokeys")" 1000000 ">=" 1
goal "2b. cloudmon --json -k SESSIONS lines/s / 1000000" "$(lps "$ns" "$t_cm_sess")" 1000000 ">=" 1
budget=$(python3 -c "print('%.3f' % ($expect * $N + 0.3))")
say "json: with the keyfile: RSA budget = openssl's cost per handshake ${expect}s x $N handshakes + 0.3 s = ${budget}s"
goal "2c. cloudmon --json -k KEYFILE CPU / (openssl RSA per handshake x $N + 0.3 s)" "$t_cm" "$budget" "<=" 1
say "read: $(python3 -c "print('%.0f' % ($npk / max($t_cm, 0.001)))") packets/s with the keyfile and --json"

# ---- tshark ----
ts_argv() {  # plugin(yes|no) then tshark arguments: the command line in TS_ARGV
    local pdir="$work/ws/noplugins"
    [ "$1" = yes ] && pdir="$work/ws/plugins"
    shift
    local envs=(HOME="$work/ws/home" WIRESHARK_CONFIG_DIR="$work/ws/home" WIRESHARK_PLUGIN_DIR="$pdir"
                WIRESHARK_EXTCAP_DIR="$work/ws/noplugins" LANG=C.UTF-8 PATH="$PATH")
    [ -n "${TS_PRELOAD:-}" ] && envs+=(LD_PRELOAD="$TS_PRELOAD" SPARKWIRE_RSA_COUNT="$TS_COUNT")
    if [ "$(id -u)" = 0 ]; then
        TS_ARGV=(setpriv --reuid=65534 --regid=65534 --clear-groups env -i "${envs[@]}" tshark "$@")
    else
        TS_ARGV=(env -i "${envs[@]}" tshark "$@")
    fi
}
ts_run() { ts_argv "$@"; measure "${TS_ARGV[@]}"; }   # output to /dev/null, timed
ts_add() { ts_argv "$@"; alt_add "${TS_ARGV[@]}"; }   # queued for alt_run
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
    ts_add no -n -r "$cap"
    ts_add yes -n -r "$cap"
    ts_add yes -n -r "$cap" -o "spark.keyfile:$ses"
    ts_add yes -n -r "$cap" -o "spark.keyfile:$kf"
    alt_add "$cm" -r "$cap" -k "$ses" --json
    alt_add "$cm" -r "$cap" -k "$kf" --json
    alt_run
    t_ts_plain=${ALT_T[0]}; t_ts_nokeys=${ALT_T[1]}; t_ts_sess=${ALT_T[2]}; t_ts=${ALT_T[3]}; rss_ts=${ALT_RSS[3]}
    t_cm3_sess=${ALT_T[4]}; t_cm3=${ALT_T[5]}
    ts_run yes -n -2 -r "$cap" -o "spark.keyfile:$kf"; t_ts2=$T
    say "tshark: without the plugin ${t_ts_plain}s; plugin, no keys ${t_ts_nokeys}s; plugin and session lines ${t_ts_sess}s; plugin and keyfile ${t_ts}s (peak RSS ${rss_ts} kB); two passes (-2) ${t_ts2}s"
    say "ratio: plugin and keyfile / tshark without the plugin = $(ratio "$t_ts" "$t_ts_plain"); plugin without keys / without the plugin = $(ratio "$t_ts_nokeys" "$t_ts_plain")"
    say "tshark: in the same rounds, cloudmon --json with the session lines ${t_cm3_sess}s, with the keyfile ${t_cm3}s"
    goal "3. tshark with the plugin and keyfile / cloudmon --json -k KEYFILE" "$t_ts" "$t_cm3" ">=" 10 3 5
    goal "3'. tshark with the plugin and session lines / cloudmon --json -k SESSIONS" "$t_ts_sess" "$t_cm3_sess" ">=" 10 2 4
    goal "4. tshark with the plugin and session lines / tshark without the plugin" "$t_ts_sess" "$t_ts_plain" "<=" 1.15 2 0
else
    say "tshark: not measured (tshark or the plugin missing)"
fi

# ---- RSA per handshake ----
hs="$work/hs/capture.pcap"
measure "$cm" -r "$hs" --json; t_h0=$T
measure "$cm" -r "$hs" -k "$work/hs/keyfile" --json; t_h1=$T
"$gen" -o "$work/one" -n 1 --syn-only -s 3 2>/dev/null
measure "$cm" -r "$work/one/capture.pcap" -k "$work/hs/keyfile" --json; t_load=$T
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

# ---- memory per connection (goal: at most 2048 bytes an open connection before the session block) ----
if [ -x "$trmem" ]; then
    "$trmem" "$CONNS" | while read -r line; do say "memory: tracker-mem: $line"; done
fi
# cloudmon's peak RSS with every connection open after its nonce, less that of an idle cloudmon (the same
# command on a capture of one such connection), per connection; the summary line shows none was evicted
# cloudmon's own peak RSS, through tests/memory's launcher: a child forked by the measuring Python counts
# the interpreter's memory (about 14 MB) as its own until it executes, more than an idle cloudmon's
cm_rss() {
    measure "$peak" "$cm" "$@" --json --max-conns 1000000 --idle 1000000000
    RSS=$(sed -n 's/^peak-rss-kb //p' "$work/last.err" | tail -n 1)
}
cm_mem() {   # capture, connections, label
    cm_rss -r "$work/syn1/capture.pcap"; local rss1=$RSS
    cm_rss -r "$1"; local rssn=$RSS tn=$T
    local per; per=$(python3 -c "print('%.0f' % (($rssn - $rss1) * 1024 / $2))")
    say "memory: cloudmon, $3 connections open after their nonce (--max-conns 1000000): peak RSS ${rssn} kB (idle cloudmon: ${rss1} kB): $per bytes per connection (goal <= 2048: $([ "$per" -le 2048 ] && echo met || echo NOT met)); ${tn}s"
    say "memory: cloudmon summary: $("$cm" -q --json -r "$1" --max-conns 1000000 --idle 1000000000 | tail -n 1)"
}
"$gen" -o "$work/syn" -n "$CONNS" --syn-only -s 3 2>>"$out"
"$gen" -o "$work/syn1" -n 1 --syn-only -s 3 2>/dev/null
cm_mem "$work/syn/capture.pcap" "$CONNS" "$CONNS"
cm_rss -r "$work/syn/capture.pcap" -k "$work/hs/keyfile"
say "memory: the same with a keyfile (server key and $N device lines): peak RSS ${RSS} kB"
MILLION=${BENCH_MILLION:-1000000}   # 0 skips the run with a million connections
if [ "$MILLION" -gt 0 ]; then
    "$gen" -o "$work/syn-m" -n "$MILLION" --syn-only -s 5 2>>"$out"
    cm_mem "$work/syn-m/capture.pcap" "$MILLION" "$MILLION"
    rm -rf "$work/syn-m"
fi

# ---- live ----
if [ "${BENCH_LIVE:-1}" = 0 ]; then
    say "live: skipped (BENCH_LIVE=0)"
elif [ "$(id -u)" != 0 ] || ! command -v tcpreplay >/dev/null || ! command -v unshare >/dev/null; then
    say "live: skipped (needs root, tcpreplay and unshare)"
else
    # 200 devices x 400 messages: about 600 packets per handshake, as a fleet of connected devices sends
    "$gen" -o "$work/live" -n 200 -m 400 -s 5 2>/dev/null
    unshare -n "$src/tests/bench/live.sh" "$cm" "$work/live/capture.pcap" "$work/live/keyfile" 2>&1 | tee -a "$out"
    # a flood of fake handshakes beside the devices, under the live RSA budget: see tests/monitor/test_flood.py
fi
say "raw output in $work"
