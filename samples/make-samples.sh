#!/bin/bash
# Regenerates the sample captures: runs sparkdev against sparkcloud on loopback, one scenario at a time,
# captures each with tcpdump on lo, and writes samples/<scenario>/ with capture.pcap, keys/, keyfile and
# the logs of both sides. Needs root (or CAP_NET_RAW) for tcpdump.
#
#   samples/make-samples.sh [--build-dir DIR] [--out DIR] [SCENARIO...]
#
# Without --build-dir it configures and builds build-samples/ in the repository. Without scenarios it
# makes all of them. Each scenario talks on its own loopback address 127.0.0.N, port 5683.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=""
out="$here"
while [ $# -gt 0 ]; do
    case "$1" in
        --build-dir) build=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        --*) echo "make-samples.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) break ;;
    esac
done
all="healthy healthy-g1 device-key-mismatch-g1 device-key-mismatch-g2 server-key-mismatch unknown-device
     bad-signature not-spark stalled stalled-device mid-session bad-counter ota-complete ota-failed multi-device
     photon-g2 photon-g3"
scenarios=${*:-$all}

for tool in tcpdump openssl; do
    command -v $tool >/dev/null || { echo "make-samples.sh: $tool not found; install it (apt-get install -y $tool)" >&2; exit 2; }
done
if [ -z "$build" ]; then
    build="$root/build-samples"
    if [ ! -f "$build/build.ninja" ]; then
        meson setup "$build" "$root" -Dplugin=disabled -Dmonitor=false -Dtests=disabled >/dev/null
    fi
    ninja -C "$build" firmware/sparkdev firmware/sparkcloud >/dev/null
fi
build=$(cd "$build" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
# Key paths in the logs stay short and free of local folders.
cd "$here"
dev="$build/firmware/sparkdev"
cloud="$build/firmware/sparkcloud"
[ -x "$dev" ] && [ -x "$cloud" ] || { echo "make-samples.sh: $build has no firmware/sparkdev or firmware/sparkcloud; build with -Dfirmware=true" >&2; exit 2; }

K=keys
SRV_PRIV="$K/server-private.pem"
SRV_PUB="$K/server-public.der"
D1=53ff6c065067544816300187
D2=55ff6d065075555332071787
D3=48ff6a065067555028341587
D4=36ff70065067555051412287
UNKNOWN=30ff71065067555011111111
PORT=5683

tmp=$(mktemp -d)
tcpdump_pid=""
cleanup() {
    if [ -n "$tcpdump_pid" ]; then kill -INT "$tcpdump_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# The cloud's key directory: public keys of the devices it knows (not the unknown one).
mkdir -p "$tmp/cloud-keys"
for id in $D1 $D2 $D3 $D4; do cp "$K/$id.pub.pem" "$tmp/cloud-keys/"; done

# A small firmware image for the update scenarios (4 chunks, the last one short).
python3 -c "
import sys
data = bytes(((i * i * 31 + i * 7 + 3) >> 2) & 0xff for i in range(900))
open(sys.argv[1], 'wb').write(data)" "$tmp/image.bin"

begin() { # scenario address
    sdir="$out/$1"
    addr=$2
    rm -rf "$sdir"
    mkdir -p "$sdir/keys"
    echo "== $1 ($addr:$PORT)"
}

capture_start() {
    rm -f "$tmp/tcpdump.err"
    tcpdump -i lo -U --immediate-mode -n -w "$sdir/capture.pcap" "tcp port $PORT and host $addr" 2>"$tmp/tcpdump.err" &
    tcpdump_pid=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$tmp/tcpdump.err" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "make-samples.sh: tcpdump did not start: $(cat "$tmp/tcpdump.err")" >&2
    exit 1
}

capture_stop() {
    sleep 0.5
    kill -INT "$tcpdump_pid"
    wait "$tcpdump_pid" || true
    tcpdump_pid=""
    chmod a+r "$sdir/capture.pcap"
}

cloud_start() { # args...
    "$cloud" --server-key "$SRV_PRIV" --keys-dir "$tmp/cloud-keys" --time-limit 150 --once "$@" "$addr:$PORT" \
        2>"$sdir/sparkcloud.log" &
    cloud_pid=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$sdir/sparkcloud.log" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "make-samples.sh: sparkcloud did not start: $(cat "$sdir/sparkcloud.log")" >&2
    exit 1
}

cloud_wait() {
    wait "$cloud_pid" || true
}

device() { # log-suffix args... (runs in the foreground)
    local log=$1; shift
    "$dev" "$@" "$addr:$PORT" 2>"$sdir/sparkdev$log.log" || true
}

keys() { # files to copy from samples/keys
    for f in "$@"; do cp "$K/$f" "$sdir/keys/"; done
}

keyfile() { # lines
    {
        echo "# sparkwire keyfile for the $(basename "$sdir") sample (format: docs/design.md)"
        printf '%s\n' "$@"
    } > "$sdir/keyfile"
}

all_keys_for() { # id [device key file]
    local id=$1 dkey=${2:-$1.der}
    keys server-private.pem server-public.der "$dkey"
    keyfile "server-private  keys/server-private.pem" "server-public   keys/server-public.der" \
            "device  $id  keys/$dkey"
}

APP=(--function brew=456 --function led --variable temperature:int:-98765 --variable ready:bool:true
     --variable ratio:double:0.3125 --variable label:string:kitchen --subscribe motion/open)
SCRIPT=(--describe --call brew=32,240 --read temperature --read ready --read ratio --read label)

for s in $scenarios; do
    case $s in
    healthy)
        begin healthy 127.0.0.11
        capture_start
        cloud_start "${SCRIPT[@]}" --signal --send-event motion/open/front=door --session-time 30
        device "" --id $D1 --key "$K/$D1.der" --server-key "$SRV_PUB" --generation g2 "${APP[@]}" \
            --event lake-depth/1:28m:1000:2:21600:private --event motion-detected::0:1 --run-time 17
        cloud_wait
        capture_stop
        all_keys_for $D1 ;;
    healthy-g1)
        begin healthy-g1 127.0.0.12
        capture_start
        cloud_start "${SCRIPT[@]}" --session-time 30
        device "" --id $D2 --key "$K/$D2.der" --server-key "$SRV_PUB" --generation g1 "${APP[@]}" \
            --event weather/us/mn/minneapolis:t=5F,d=-2F,p=15%:0:1:3600 --run-time 3
        cloud_wait
        capture_stop
        all_keys_for $D2 ;;
    device-key-mismatch-g1)
        # The device holds a private key that is not the one the cloud has on file; early firmware keeps
        # the socket and sends frames the cloud cannot decrypt until the cloud's 30 s Hello timeout.
        begin device-key-mismatch-g1 127.0.0.13
        capture_start
        cloud_start
        device "" --id $D2 --key "$K/other-device.der" --server-key "$SRV_PUB" --generation g1 --run-time 60
        cloud_wait
        capture_stop
        all_keys_for $D2 other-device.der ;;
    device-key-mismatch-g2)
        # The cloud holds another public key for the device; later firmware closes 250 ms after the
        # session block.
        begin device-key-mismatch-g2 127.0.0.14
        capture_start
        cloud_start --wrong-key "$K/other-device.pub.pem"
        device "" --id $D1 --key "$K/$D1.der" --server-key "$SRV_PUB" --generation g2 --run-time 10
        cloud_wait
        capture_stop
        all_keys_for $D1 ;;
    server-key-mismatch)
        begin server-key-mismatch 127.0.0.15
        capture_start
        cloud_start
        device "" --id $D1 --key "$K/$D1.der" --server-key "$K/other-server-public.der" --generation g2 --run-time 10
        cloud_wait
        capture_stop
        all_keys_for $D1
        keys other-server-public.der
        echo "# the server public key the device holds (not the cloud's): keys/other-server-public.der" >> "$sdir/keyfile" ;;
    unknown-device)
        begin unknown-device 127.0.0.16
        capture_start
        cloud_start
        device "" --id $UNKNOWN --key "$K/$UNKNOWN.der" --server-key "$SRV_PUB" --generation g2 --run-time 10
        cloud_wait
        capture_stop
        all_keys_for $UNKNOWN ;;
    bad-signature)
        begin bad-signature 127.0.0.17
        capture_start
        cloud_start --sign-key "$K/other-server-private.pem"
        device "" --id $D1 --key "$K/$D1.der" --server-key "$SRV_PUB" --generation g2 --run-time 10
        cloud_wait
        capture_stop
        all_keys_for $D1 ;;
    not-spark)
        begin not-spark 127.0.0.18
        capture_start
        cloud_start --captive-portal
        device "" --id $D1 --key "$K/$D1.der" --server-key "$SRV_PUB" --generation g2 --run-time 10
        cloud_wait
        capture_stop
        all_keys_for $D1 ;;
    stalled)
        # The cloud sends its nonce and nothing more; the device gives up after its 20 s read timeout.
        begin stalled 127.0.0.19
        capture_start
        cloud_start --stall
        device "" --id $D1 --key "$K/$D1.der" --server-key "$SRV_PUB" --generation g2 --run-time 60
        cloud_wait
        capture_stop
        all_keys_for $D1 ;;
    stalled-device)
        # The device reads the nonce and stalls; the cloud closes after its 30 s id-block timeout.
        begin stalled-device 127.0.0.20
        capture_start
        cloud_start
        device "" --id $D1 --key "$K/$D1.der" --server-key "$SRV_PUB" --generation g2 --stop-after nonce --run-time 60
        cloud_wait
        capture_stop
        all_keys_for $D1 ;;
    mid-session)
        # The capture starts after the handshake: the keyfile's session line carries the material.
        begin mid-session 127.0.0.21
        rm -f "$tmp/session.log"
        cloud_start --session-log "$tmp/session.log" --script-delay 2 "${SCRIPT[@]}" --session-time 30
        "$dev" --id $D3 --key "$K/$D3.der" --server-key "$SRV_PUB" --generation g2 "${APP[@]}" \
            --event lake-depth/1:29m:1000:4 --run-time 6 "$addr:$PORT" 2>"$sdir/sparkdev.log" &
        dpid=$!
        for _ in $(seq 100); do
            grep -q "handshake complete" "$sdir/sparkcloud.log" && break
            sleep 0.05
        done
        sleep 0.5
        capture_start
        wait $dpid || true
        cloud_wait
        capture_stop
        keys server-private.pem server-public.der $D3.der
        keyfile "server-private  keys/server-private.pem" "server-public   keys/server-public.der" \
                "device  $D3  keys/$D3.der" "session $(head -n1 "$tmp/session.log")" ;;
    bad-counter)
        # The device damages its third session frame: the cloud cannot decrypt it, sees the next message
        # id skip one, and closes (Bad Counter).
        begin bad-counter 127.0.0.22
        capture_start
        cloud_start --script-delay 1 --describe --session-time 10
        device "" --id $D1 --key "$K/$D1.der" --server-key "$SRV_PUB" --generation g2 "${APP[@]}" \
            --corrupt-frame 3 --event lake-depth/1:28m:300:3 --run-time 8
        cloud_wait
        capture_stop
        all_keys_for $D1 ;;
    ota-complete)
        begin ota-complete 127.0.0.23
        capture_start
        cloud_start --script-delay 0.5 --ota "$tmp/image.bin" --session-time 20
        device "" --id $D2 --key "$K/$D2.der" --server-key "$SRV_PUB" --generation g1 --ota-out "$tmp/received.bin" --run-time 20
        cloud_wait
        capture_stop
        cmp -n 900 "$tmp/image.bin" "$tmp/received.bin" || echo "make-samples.sh: warning: update image differs" >&2
        all_keys_for $D2 ;;
    ota-failed)
        # Chunk 1 goes out with a wrong CRC; the device reports it (4.00) and then stops answering; the
        # cloud gives up after its 10 s update timeout.
        begin ota-failed 127.0.0.24
        capture_start
        cloud_start --script-delay 0.5 --ota "$tmp/image.bin" --ota-bad-crc 1 --ota-timeout 10 --session-time 30
        device "" --id $D2 --key "$K/$D2.der" --server-key "$SRV_PUB" --generation g1 --ota-stall-after 2 --run-time 30
        cloud_wait
        capture_stop
        all_keys_for $D2 ;;
    multi-device)
        begin multi-device 127.0.0.25
        capture_start
        cloud_start --connections 3 "${SCRIPT[@]}" --session-time 30
        "$dev" --id $D1 --key "$K/$D1.der" --server-key "$SRV_PUB" --generation g2 "${APP[@]}" \
            --event lake-depth/1:28m:700:3 --run-time 5 "$addr:$PORT" 2>"$sdir/sparkdev-1.log" &
        p1=$!
        sleep 0.3
        "$dev" --id $D2 --key "$K/$D2.der" --server-key "$SRV_PUB" --generation g1 "${APP[@]}" \
            --event motion-detected::500:2 --run-time 5 "$addr:$PORT" 2>"$sdir/sparkdev-2.log" &
        p2=$!
        sleep 0.3
        "$dev" --id $D4 --key "$K/$D4.der" --server-key "$SRV_PUB" --generation g2 --platform 6 "${APP[@]}" \
            --event door/open::0:1 --run-time 5 "$addr:$PORT" 2>"$sdir/sparkdev-3.log" &
        p3=$!
        wait $p1 $p2 $p3 || true
        cloud_wait
        capture_stop
        keys server-private.pem server-public.der $D1.der $D2.der $D4.der
        keyfile "server-private  keys/server-private.pem" "server-public   keys/server-public.der" \
                "device  $D1  keys/$D1.der" "device  $D2  keys/$D2.der" "device  $D4  keys/$D4.der" ;;
    photon-g2)
        # A Photon with firmware 0.6 (g2): the cloud refuses its first event with ACK 4.00, the device drops
        # the connection and reconnects at once; on the second connection a fast OTA leaves chunk 1 out, the
        # device refuses UpdateDone, asks for the chunk (ChunkMissed) and ends the update itself.
        begin photon-g2 127.0.0.26
        capture_start
        cloud_start --connections 2 --refuse-events 1 --script-delay 1 --describe --ota "$tmp/image.bin" \
            --ota-fast --ota-skip-chunk 1 --session-time 20
        device "" --id $D4 --key "$K/$D4.der" --server-key "$SRV_PUB" --generation g2 --platform 6 "${APP[@]}" \
            --event burst:1:0:1 --ota-out "$tmp/received.bin" --run-time 20
        cloud_wait
        capture_stop
        cmp -n 900 "$tmp/image.bin" "$tmp/received.bin" || echo "make-samples.sh: warning: update image differs" >&2
        all_keys_for $D4 ;;
    photon-g3)
        # A Photon with firmware 0.8 (g3): little-endian message-id start, first token 0x01, a Signal answered
        # with the device's own message id; a fast OTA leaves chunk 2 out: the device refuses UpdateDone, gets
        # the chunk again and then waits for a second UpdateDone, which the cloud (like the original) never sends.
        begin photon-g3 127.0.0.27
        capture_start
        cloud_start --script-delay 0.5 --signal --describe --ota "$tmp/image.bin" --ota-fast --ota-skip-chunk 2 \
            --ota-timeout 2 --session-time 8
        device "" --id $D4 --key "$K/$D4.der" --server-key "$SRV_PUB" --generation g3 "${APP[@]}" \
            --event door/open::0:1 --run-time 10
        cloud_wait
        capture_stop
        all_keys_for $D4 ;;
    *)
        echo "make-samples.sh: unknown scenario '$s'; one of: $all" | tr -s ' \n' ' ' >&2
        echo >&2
        exit 2 ;;
    esac
    chmod -R a+rX "$sdir"
    printf '   %s: %s bytes, cloud: %s\n' "$s" "$(stat -c %s "$sdir/capture.pcap")" \
        "$(grep -o 'outcome: .*' "$sdir/sparkcloud.log" | tr '\n' ' ')"
done
