#!/bin/bash
# The live capture figures of tests/bench/run.sh, measured on the loopback of a network namespace of its
# own so that no other traffic shares it:   unshare -n tests/bench/live.sh CLOUDMON CAPTURE KEYFILE
#   1. the rate tcpreplay reaches alone (--topspeed, with --preload-pcap, with --loop 5);
#   2. cloudmon -i lo -k KEYFILE --json --rsa-budget 0 (every handshake opened, so that a message missing is a
#      packet lost, not a handshake the budget skipped at top speed) while tcpreplay replays CAPTURE at rising
#      rates, in three designs one after the other: the capture thread (the default: a thread drains the
#      kernel's TPACKET_V3 ring into cloudmon's queue, the main thread decodes), TPACKET_V3 blocks alone
#      (--queue-mb 0: the one thread reads the ring and decodes), and --immediate-mode --queue-mb 0. For each
#      run: what tcpreplay achieved, packets counted, packets dropped (by the kernel or the queue), verdicts,
#      and the messages decrypted against a read of the same file;
#   3. the replays longer than the kernel's ring holds (--topspeed --loop 3, then --loop 5) LONG_RUNS times
#      each (default 3) with the thread and with blocks alone, alternately.
# cloudmon is stopped only once its output has stopped growing: a capture stopped earlier leaves packets
# unread in the kernel's buffer, which no counter reports. Needs root and tcpreplay.
set -u
cm=${1:?usage: live.sh CLOUDMON CAPTURE KEYFILE} cap=${2:?} kf=${3:?}
ip link set lo up || { echo "live: cannot bring lo up (run inside unshare -n as root)"; exit 2; }
tmp=$(mktemp -d /tmp/sparkwire-live.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
lpk=$(tcpdump -r "$cap" 2>/dev/null | wc -l)
read -r ref_ok ref_msgs < <("$cm" -r "$cap" -k "$kf" -q --json | tail -n 1 | python3 -c "
import json, sys
s = json.load(sys.stdin)
print(s['verdicts'].get('ok', 0), s['messages'])")
echo "live: capture of $lpk packets; read from the file: $ref_ok connections ok, $ref_msgs messages"
for opts in "--topspeed" "--topspeed --preload-pcap" "--topspeed --preload-pcap --loop 5"; do
    echo "live: tcpreplay alone, $opts: $(tcpreplay -i lo $opts "$cap" 2>&1 | grep -Eo '[0-9.]+ pps')"
done

# one run: design (thread, blocks, immediate), loops, tcpreplay options; prints one line, returns 0 when clean
one() {
    local mode=$1 loops=$2
    shift 2
    local mopt=()
    case $mode in
    blocks) mopt=(--queue-mb 0) ;;
    immediate) mopt=(--immediate-mode --queue-mb 0) ;;
    esac
    "$cm" -i lo --json -k "$kf" --rsa-budget 0 "${mopt[@]}" >"$tmp/out.jsonl" 2>"$tmp/err" &
    local pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$tmp/err" && break; sleep 0.1; done
    sleep 1
    tcpreplay -i lo --preload-pcap --loop "$loops" "$@" "$cap" >"$tmp/replay" 2>&1
    local last=-1 n
    for _ in $(seq 120); do sleep 1; n=$(stat -c %s "$tmp/out.jsonl"); [ "$n" = "$last" ] && break; last=$n; done
    kill -INT "$pid"
    wait "$pid"
    local achieved
    achieved=$(grep -Eo '[0-9.]+ pps' "$tmp/replay" | head -n 1)
    tail -n 1 "$tmp/out.jsonl" | python3 -c "
import json, sys
s = json.load(sys.stdin)
want, msgs, oks = $lpk * $loops, $ref_msgs * $loops, $ref_ok * $loops
clean = s['packets'] == want and s['dropped_by_capture'] == 0 and s['verdicts'] == {'ok': oks} and s['messages'] == msgs
q = ' (queue %d)' % s['dropped_by_queue'] if 'dropped_by_queue' in s else ''
print('live ($mode): tcpreplay $* --loop $loops (achieved ${achieved:-?}): counted %d of %d, dropped %s%s, '
      'verdicts %s, messages %d of %d%s' % (s['packets'], want, s['dropped_by_capture'], q,
      json.dumps(s['verdicts'], separators=(',', ':')), s['messages'], msgs, '' if clean else ' <- not clean'))
sys.exit(0 if clean else 1)"
}

for mode in thread blocks immediate; do
    best=none
    for rate in 10000 50000 100000 top top2 top3 top5; do
        case $rate in
        top) args=(--topspeed); loops=1 ;;
        top[0-9]) args=(--topspeed); loops=${rate#top} ;;
        *) args=(--pps "$rate"); loops=1 ;;
        esac
        if one "$mode" "$loops" "${args[@]}"; then
            best="$rate (achieved $(grep -Eo '[0-9.]+ pps' "$tmp/replay" | head -n 1), --loop $loops)"
        else
            break
        fi
    done
    echo "live ($mode): highest replay rate with every packet counted, none dropped, every verdict right: $best"
done

# the long replays, alternately with and without the thread
runs=${LONG_RUNS:-3}
for loops in 3 5; do
    declare -A clean=([thread]=0 [blocks]=0)
    for i in $(seq "$runs"); do
        for mode in thread blocks; do
            one "$mode" "$loops" --topspeed && clean[$mode]=$((clean[$mode] + 1))
        done
    done
    for mode in thread blocks; do
        echo "live ($mode): --topspeed --loop $loops ($((lpk * loops)) packets) clean in ${clean[$mode]} of $runs runs"
    done
done
