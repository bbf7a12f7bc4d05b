#!/bin/bash
# Soak test: cloudmon captures live on loopback for DURATION seconds (default 600) while devices
# connect and fail in loops against the lab cloud: a healthy G2 device, a healthy G1 device, a device
# the cloud has no key for, a device holding the wrong server key and a device that goes silent after
# the nonce. Every 10 s it samples cloudmon's resident memory and its count of live connections
# (connections seen in its JSON Lines minus those with a final verdict). At the end the device loops
# stop, the last connections close, and the live count must be back to 0 (no connection leaks) and the
# resident memory of the second half must stay within 10% of the first sample after warm-up.
#
# usage: tests/bench/soak.sh BUILD_DIR [DURATION_SEC]     (needs root for the capture on lo)
# Not part of `meson test`: it runs for minutes. Exit 0 pass, 1 fail, 77 skipped.
set -u
build=${1:?usage: soak.sh BUILD_DIR [DURATION_SEC]}
duration=${2:-600}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$build" && pwd)
cm="$build/monitor/cloudmon" dev="$build/firmware/sparkdev" cloud="$build/firmware/sparkcloud"
for x in "$cm" "$dev" "$cloud"; do
    [ -x "$x" ] || { echo "soak: $x is not built" >&2; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "soak: needs root to capture on lo; skipped" >&2; exit 77; }

keys="$src/samples/keys"
tmp=$(mktemp -d /tmp/sparkwire-soak.XXXXXX)
port=$((20000 + RANDOM % 20000))
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT

cat >"$tmp/keyfile" <<EOF
server-private  $keys/server-private.pem
server-public   $keys/server-public.der
device  53ff6c065067544816300187  $keys/53ff6c065067544816300187.der
device  55ff6d065075555332071787  $keys/55ff6d065075555332071787.der
EOF
# The cloud knows the G2 and G1 devices only.
mkdir "$tmp/cloudkeys"
cp "$keys/53ff6c065067544816300187.pub.pem" "$keys/55ff6d065075555332071787.pub.pem" "$tmp/cloudkeys/"

"$cm" -i lo --cloud-port "$port" --json --idle 20 --history 100 -k "$tmp/keyfile" >"$tmp/cm.jsonl" 2>"$tmp/cm.err" &
cmpid=$!
pids+=("$cmpid")
for _ in $(seq 50); do grep -q "listening on" "$tmp/cm.err" && break; sleep 0.1; done
grep -q "listening on" "$tmp/cm.err" || { echo "soak: cloudmon did not start: $(cat "$tmp/cm.err")" >&2; exit 1; }

"$cloud" --server-key "$keys/server-private.pem" --keys-dir "$tmp/cloudkeys" --connections 10000 \
    --time-limit $((duration + 60)) --id-timeout 2 --hello-timeout 2 --handshake-timeout 6 --reply-timeout 2 \
    --describe --call brew=coffee "127.0.0.1:$port" 2>"$tmp/cloud.log" &
pids+=("$!")
for _ in $(seq 50); do grep -q "listening on" "$tmp/cloud.log" && break; sleep 0.1; done
grep -q "listening on" "$tmp/cloud.log" || { echo "soak: sparkcloud did not start: $(cat "$tmp/cloud.log")" >&2; exit 1; }

stopfile="$tmp/stop"
loop() {   # name, then sparkdev arguments
    local name=$1 n=0
    shift
    while [ ! -e "$stopfile" ]; do
        timeout 15 "$dev" "$@" "127.0.0.1:$port" 2>>"$tmp/dev-$name.log"
        n=$((n + 1))
        echo "$n" >"$tmp/count-$name"
        sleep 0.2
    done
}
loop g2 --id 53ff6c065067544816300187 --key "$keys/53ff6c065067544816300187.der" \
    --server-key "$keys/server-public.der" --function brew --event soak/t:21.5:300:3 --run-time 2 &
pids+=("$!")
loop g1 --id 55ff6d065075555332071787 --key "$keys/55ff6d065075555332071787.der" \
    --server-key "$keys/server-public.der" --generation g1 --run-time 1.5 &
pids+=("$!")
loop unknown --id 30ff71065067555011111111 --key "$keys/30ff71065067555011111111.der" \
    --server-key "$keys/server-public.der" --io-timeout 3000 &
pids+=("$!")
loop wrongserver --id 53ff6c065067544816300187 --key "$keys/53ff6c065067544816300187.der" \
    --server-key "$keys/other-server-public.der" --io-timeout 3000 &
pids+=("$!")
loop silent --id 53ff6c065067544816300187 --key "$keys/53ff6c065067544816300187.der" \
    --server-key "$keys/server-public.der" --stop-after nonce --run-time 4 &
pids+=("$!")

counts() {   # seen ended
    python3 - "$tmp/cm.jsonl" <<'EOF'
import json, sys
seen, ended = set(), set()
for line in open(sys.argv[1], errors="replace"):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    c = j.get("conn")
    if c is None:
        continue
    seen.add(c)
    if j.get("type") == "verdict" and j.get("final"):
        ended.add(c)
print(len(seen), len(ended))
EOF
}

echo "soak: cloudmon pid $cmpid on lo port $port for ${duration}s; samples every 10 s"
printf '%6s %10s %8s %8s %6s\n' "t_s" "rss_kb" "seen" "ended" "live"
samples="$tmp/samples"
: >"$samples"
start=$(date +%s)
while :; do
    now=$(($(date +%s) - start))
    [ "$now" -ge "$duration" ] && break
    sleep 10
    now=$(($(date +%s) - start))
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$cmpid/status" 2>/dev/null)
    [ -n "$rss" ] || { echo "soak: cloudmon died: $(cat "$tmp/cm.err")" >&2; exit 1; }
    read -r seen ended < <(counts)
    printf '%6d %10d %8d %8d %6d\n' "$now" "$rss" "$seen" "$ended" $((seen - ended)) | tee -a "$samples"
done

touch "$stopfile"
wait "${pids[@]:2}" 2>/dev/null
sleep 8    # the cloud's last timers (2 s) and the FIN exchange; cloudmon linger is harmless
read -r seen ended < <(counts)
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$cmpid/status")
kill -TERM "$cmpid"
wait "$cmpid"
cmrc=$?
runs=0
for f in "$tmp"/count-*; do runs=$((runs + $(cat "$f"))); done
connected=$(cat "$tmp"/dev-*.log | grep -c "connected to ")   # runs whose TCP connect succeeded
asan=$(grep -c "ERROR: AddressSanitizer\|runtime error:" "$tmp/cm.err")
verdicts=$(tail -n 1 "$tmp/cm.jsonl")

echo "soak: device runs $runs ($connected connected); cloudmon saw $seen connections, $ended ended; after the devices stopped: live $((seen - ended))"
echo "soak: final RSS ${rss} kB; cloudmon exit $cmrc; summary: $verdicts"
echo "soak: $(echo "$verdicts" | python3 -c "
import json, sys
s = json.load(sys.stdin)
b = s.get('rsa_budget', {})
print('live capture (TPACKET_V3 blocks): %s packets, dropped by the capture %s; RSA budget %s operations a second: '
      '%s handshakes started at once, %s waited, %s skipped, %s operations' % (s.get('packets'), s.get('dropped_by_capture'),
      b.get('rate'), b.get('granted'), b.get('waited'), b.get('skipped'), b.get('operations')))" 2>/dev/null)"
fail=0
if [ $((seen - ended)) -ne 0 ]; then echo "FAIL: $((seen - ended)) connections still live after every device stopped"; fail=1; fi
if [ "$seen" -ne "$connected" ]; then echo "FAIL: cloudmon saw $seen connections for $connected device connections"; fail=1; fi
if [ "$cmrc" -ne 0 ] || [ "$asan" -ne 0 ]; then echo "FAIL: cloudmon exit $cmrc, sanitizer lines $asan"; fail=1; fi
if ! echo "$verdicts" | grep -q '"dropped_by_capture":0'; then echo "FAIL: the capture dropped packets"; fail=1; fi
if ! echo "$verdicts" | grep -q '"skipped":0'; then echo "FAIL: handshakes of the device loops were skipped for the RSA budget"; fail=1; fi
python3 - "$samples" <<'EOF' || fail=1
import sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
if len(rows) < 4:
    print("soak: too few samples to judge memory"); sys.exit(0)
rss = [r[1] for r in rows]
warm = rss[len(rss) // 4]
half = rss[len(rss) // 2:]
growth = (max(half) - warm) / warm * 100
print("soak: RSS after warm-up %d kB, second half min %d max %d kB, growth %.1f%%" % (warm, min(half), max(half), growth))
if growth > 10:
    print("FAIL: RSS grows by more than 10% after warm-up"); sys.exit(1)
EOF
echo "soak: logs in $tmp"
[ "$fail" = 0 ] && echo "soak: PASS" || echo "soak: FAIL"
exit "$fail"
