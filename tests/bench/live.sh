#!/bin/bash
# The live capture figures of tests/bench/run.sh, measured on the loopback of a network namespace of its
# own so that no other traffic shares it:   unshare -n tests/bench/live.sh CLOUDMON CAPTURE KEYFILE
#   1. the rate tcpreplay reaches alone (--topspeed, with --preload-pcap, with --loop 5);
#   2. cloudmon -i lo -k KEYFILE --json (TPACKET_V3 blocks, then --immediate-mode) while tcpreplay replays
#      CAPTURE at rising rates: what tcpreplay achieved, packets counted, packets dropped by the capture,
#      verdicts, and the messages decrypted against a read of the same file. cloudmon is stopped only once
#      its output has stopped growing: a capture stopped earlier leaves packets unread in the kernel's
#      buffer, which no counter reports.
# Needs root and tcpreplay.
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

# one run: mode (blocks or --immediate-mode), tcpreplay options; prints one line, returns 0 when clean
one() {
    local mode=$1 loops=$2
    shift 2
    local mopt=()
    [ "$mode" = blocks ] || mopt=("$mode")
    "$cm" -i lo --json -k "$kf" "${mopt[@]}" >"$tmp/out.jsonl" 2>"$tmp/err" &
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
print('live ($mode): tcpreplay $* --loop $loops (achieved ${achieved:-?}): counted %d of %d, dropped by the capture %s, '
      'verdicts %s, messages %d of %d%s' % (s['packets'], want, s['dropped_by_capture'],
      json.dumps(s['verdicts'], separators=(',', ':')), s['messages'], msgs, '' if clean else ' <- not clean'))
sys.exit(0 if clean else 1)"
}

for mode in blocks --immediate-mode; do
    best=none
    for rate in 10000 50000 100000 top top2; do
        case $rate in
        top) args=(--topspeed); loops=1 ;;
        top2) args=(--topspeed); loops=2 ;;
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
