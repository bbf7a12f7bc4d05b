#!/bin/sh
# Generates the fixed key set the samples use (run once; the keys are committed so captures stay
# reproducible). Device keys: RSA 1024, PKCS#1 DER laid out as docs/protocol.md 5.1 expects (every number at
# its nominal length), plus the cloud's copy of the public half as <id>.pub.pem. Server keys: RSA 2048,
# private PEM + public SPKI DER.
set -eu
dir=${1:-$(dirname "$0")/keys}
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# True when a PKCS#1 DER private key has the fixed layout of docs/protocol.md 5.1.
layout_ok() {
    python3 - "$1" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read()
ok = b[0:2] == b'\x30\x82' and b[4:11] == bytes.fromhex('02010002818100') and b[139:144] == bytes.fromhex('0203010001')
p = 144
def num(p, nominal):
    if b[p] != 2: return None
    if nominal == 128:
        if b[p+1:p+4] == b'\x81\x81\x00': return p + 4 + 128
        if b[p+1:p+3] == b'\x81\x80': return p + 3 + 128
    else:
        if b[p+1:p+3] == b'\x41\x00': return p + 3 + 64
        if b[p+1] == 0x40: return p + 2 + 64
    return None
p = num(p, 128) if ok else None
for _ in range(5):
    if p is None: break
    p = num(p, 64)
sys.exit(0 if p == len(b) else 1)
PY
}

device_key() { # id
    while :; do
        openssl genrsa -traditional -out "$tmp/k.pem" 1024 2>/dev/null
        openssl rsa -traditional -in "$tmp/k.pem" -outform DER -out "$tmp/k.der" 2>/dev/null
        layout_ok "$tmp/k.der" && break
    done
    cp "$tmp/k.der" "$dir/$1.der"
    openssl rsa -in "$tmp/k.der" -inform DER -pubout -out "$dir/$1.pub.pem" 2>/dev/null
}

server_key() { # name
    openssl genrsa -out "$dir/$1-private.pem" 2048 2>/dev/null
    openssl rsa -in "$dir/$1-private.pem" -pubout -outform DER -out "$dir/$1-public.der" 2>/dev/null
}

# Devices that the cloud knows.
for id in 53ff6c065067544816300187 55ff6d065075555332071787 48ff6a065067555028341587 \
          36ff70065067555051412287; do
    [ -f "$dir/$id.der" ] || device_key "$id"
done
# A device the cloud has never heard of.
[ -f "$dir/30ff71065067555011111111.der" ] || device_key 30ff71065067555011111111
# A device private key that is not the one the cloud holds (replaced key, "keys doctor" gone wrong).
[ -f "$dir/other-device.der" ] || device_key other-device
[ -f "$dir/server-private.pem" ] || server_key server
# Another cloud: its public key flashed by mistake, or its private key used by an impostor.
[ -f "$dir/other-server-private.pem" ] || server_key other-server
chmod a+r "$dir"/*
