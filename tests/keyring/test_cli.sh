#!/bin/bash
# The keyring command on good and bad input: output and exit status (0 fine, 1 problem, 2 usage/I/O).
#   test_cli.sh KEYRING FIXTURE_DIR
set -u
K=$1
F=$2
tmp=$(mktemp -d /tmp/keyring-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
n=0

# run WANT_STATUS COMMAND...: runs it, output in $out, checks the status
run() {
    local want=$1
    shift
    n=$((n + 1))
    out=$("$@" 2>&1)
    local got=$?
    if [ "$got" != "$want" ]; then
        echo "FAIL: exit $got (want $want): $*"
        echo "$out" | sed 's/^/    /'
        fails=$((fails + 1))
        return 1
    fi
    return 0
}
# has TEXT: the last output contains TEXT
has() {
    if ! grep -qF -- "$1" <<<"$out"; then
        echo "FAIL: output lacks \"$1\""
        echo "$out" | sed 's/^/    /'
        fails=$((fails + 1))
    fi
}
hasnt() {
    if grep -qF -- "$1" <<<"$out"; then
        echo "FAIL: output has \"$1\""
        echo "$out" | sed 's/^/    /'
        fails=$((fails + 1))
    fi
}
expected() { awk -v k="$1" '$1 == k { print $2 }' "$F/expected.txt"; }
device_fp=$(expected device_fp)
server_fp=$(expected server_fp)

# ---- general ---------------------------------------------------------------------------------
run 0 "$K" --help; has "keyring show"; has "keyring new --device ID --out DIR"
run 0 "$K" --version; has "keyring (sparkwire)"
run 2 "$K"; has "Usage:"
run 2 "$K" frobnicate; has 'unknown command "frobnicate"'
for c in show match check import new; do
    run 0 "$K" "$c" --help; has "Usage:"; has "keyring $c"
done
run 2 "$K" show --no-such-option; has "keyring show"

# ---- show ------------------------------------------------------------------------------------
run 0 "$K" show "$F/device.der"
has "type: RSA-1024 private key, exponent 65537"
has "encoding: PKCS#1 RSAPrivateKey DER, "
has "fingerprint: $device_fp"
has "role: device private key (guessed from size and kind)"
has "verdict: fine"
run 0 "$K" show "$F/device-slot.der"; has "trailing: "; has "all 0xFF"
run 0 "$K" show "$F/server.pub.der"; has "role: server public key"; has "fingerprint: $server_fp"
run 0 "$K" show "$F/device.cer"; has "PKCS#1 RSAPrivateKey PEM"
run 0 "$K" show "$F/server-cli.der"; has "fingerprint: $server_fp"
has "0xFF and a server address record: domain device.spark.io port 5683"; has "verdict: fine"
run 1 "$K" show "$F/device.pkcs8.der"; has "problem: PKCS#8"; has "fix: openssl rsa -in $F/device.pkcs8.der -traditional -outform DER"
run 1 "$K" show "$F/short-int.der"; has "instead of"; has "genrsa -traditional"
run 1 "$K" show "$F/e3.der"; has "exponent 3"
run 1 "$K" show "$F/small.der"; has "RSA-512"
run 1 "$K" show "$F/server.pub.pem"; has "fix: openssl rsa -pubin -in $F/server.pub.pem -outform DER"
run 1 "$K" show "$F/server.rsapub.der"; has "RSAPublicKey"
run 0 "$K" show --role device-public "$F/device.pub.pem"; has "role: device public key"; hasnt "guessed"
run 1 "$K" show --role device "$F/server.pem"; has "RSA-2048"
# a key of the wrong size for an explicit server role is a problem, not a warning (it still loads)
run 1 "$K" show --role server-private "$F/device.der"
has "problem: RSA-1024: server keys are RSA-2048"; has "verdict: PROBLEM"; hasnt "with warnings"
run 1 "$K" show --role server-public "$F/device.pub.pem"; has "problem: RSA-1024"; has "verdict: PROBLEM"
run 0 "$K" show "$F/device.der"; has "role: device private key"; hasnt "problem:"
run 2 "$K" show --role bogus "$F/device.der"; has 'unknown role "bogus"'
run 1 "$K" show "$F/truncated.der"; has "truncated DER"
run 1 "$K" show "$F/enc.pem"; has "password"
run 1 "$K" show "$F/ec.pem"; has "EC private key"
run 1 "$K" show "$F/text.txt"; has "not a key"
run 1 "$K" show "$F/dct.bin"; has "a flash dump? read its keys with \`keyring import"
run 2 "$K" show "$tmp/missing.der"; has "No such file"
run 2 "$K" show; has "name a key file"
run 1 "$K" show "$F/device.der" "$F/ec.pem"; has "verdict: fine"; has "EC private key"

# ---- match -----------------------------------------------------------------------------------
run 0 "$K" match "$F/device.der" "$F/device.pub.pem"; has "yes:"; has "$device_fp"
run 0 "$K" match "$F/server.pem" "$F/server.pub.der"; has "yes:"
run 0 "$K" match "$F/device.pkcs8.pem" "$F/device.pub.der"; has "yes:"
run 1 "$K" match "$F/device.der" "$F/device2.pub.pem"; has "no:"; has "do NOT belong together"; has "$device_fp"
run 1 "$K" match "$F/device.der" "$F/server.pub.der"; has "no:"; has "sizes differ"
run 1 "$K" match "$F/device.der" "$F/ec.pub.pem"; has "EC"
run 2 "$K" match "$F/device.der"; has "give two key files"
run 2 "$K" match "$F/device.der" "$tmp/missing.pem"; has "No such file"

# ---- check -----------------------------------------------------------------------------------
mkdir -p "$tmp/kf/keys"
cp "$F/server.pem" "$F/server.pub.der" "$F/server2.pub.der" "$F/device.der" "$F/device2.der" \
   "$F/device.pkcs8.der" "$tmp/kf/keys/"
cat > "$tmp/kf/keyfile" <<EOF
# lab
server-private keys/server.pem
server-public  keys/server.pub.der
device 53ff6d065067544809140287 keys/device.der
device * keys/device2.der
session 53ff6d065067544809140287 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627
EOF
run 0 "$K" check "$tmp/kf/keyfile"
has "line 2: server-private $tmp/kf/keys/server.pem: RSA-2048 private"
has "line 4: device 53ff6d065067544809140287 $tmp/kf/keys/device.der: RSA-1024 private"
has "line 5: device * "
has "line 6: session 53ff6d065067544809140287: key 000102030405060708090a0b0c0d0e0f"
has "pair: server-private (line 2) and server-public (line 3) belong together"
has "5 entries, fine"
# the cloud's copy of the device key beside it: matching, then not
cp "$F/device.pub.pem" "$tmp/kf/keys/53ff6d065067544809140287.pub.pem"
run 0 "$K" check "$tmp/kf/keyfile"; has "is its public half: match"
cp "$F/device2.pub.pem" "$tmp/kf/keys/53ff6d065067544809140287.pub.pem"
run 1 "$K" check "$tmp/kf/keyfile"; has "is NOT this key's public half"; has "device-key-mismatch"
rm "$tmp/kf/keys/53ff6d065067544809140287.pub.pem"
# server keys that do not belong together
sed -i 's|keys/server.pub.der|keys/server2.pub.der|' "$tmp/kf/keyfile"
run 1 "$K" check "$tmp/kf/keyfile"; has "do NOT belong together"; has "server-key-mismatch"; has "PROBLEMS found"
sed -i 's|keys/server2.pub.der|keys/server.pub.der|' "$tmp/kf/keyfile"
# a PKCS#8 device key: readable by the tools, a warning for the device
sed -i 's|keys/device2.der|keys/device.pkcs8.der|' "$tmp/kf/keyfile"
run 0 "$K" check "$tmp/kf/keyfile"; has "warning: for writing to a device: PKCS#8"; has "with warnings"
# a keyfile whose server-private line names an RSA-1024 key: the same rating as show --role (exit 1)
printf 'server-private keys/device.der\n' > "$tmp/kf/small-server"
run 1 "$K" check "$tmp/kf/small-server"; has "small-server:1:"; has "RSA-1024"; hasnt "with warnings"
# bad lines: exit 1 with FILE:LINE
printf 'server-private keys/server.pem\ndevise * keys/device.der\n' > "$tmp/kf/bad1"
run 1 "$K" check "$tmp/kf/bad1"; has "$tmp/kf/bad1:2: unknown keyword \"devise\""
printf 'device * keys/nothere.der\n' > "$tmp/kf/bad2"
run 1 "$K" check "$tmp/kf/bad2"; has "bad2:1: key file $tmp/kf/keys/nothere.der does not exist"
printf 'device 53ff keys/device.der\n' > "$tmp/kf/bad3"
run 1 "$K" check "$tmp/kf/bad3"; has "bad3:1: bad device id"
printf 'session 53ff6d065067544809140287 0011zz\n' > "$tmp/kf/bad4"
run 1 "$K" check "$tmp/kf/bad4"; has "bad4:1: session material must be 80 hex digits"
printf 'device 53ff6d065067544809140287 keys/device.der\ndevice 53ff6d065067544809140287 keys/device2.der\n' > "$tmp/kf/bad5"
run 1 "$K" check "$tmp/kf/bad5"; has "bad5:2: duplicate device"
run 2 "$K" check "$tmp/kf/none"; has "No such file"
run 2 "$K" check; has "give one keyfile"

# ---- import ----------------------------------------------------------------------------------
run 0 "$K" import "$F/core.bin" --out "$tmp/imp" --device 53FF6D065067544809140287
has "Spark Core external flash dump, 2097152 bytes"
has "device private key at 0x2000: RSA-1024 private key"
has "server public key at 0x1000: RSA-2048 public key"
has "server address at 0x1180: domain device.spark.io, port 5683"
has "device  53ff6d065067544809140287  53ff6d065067544809140287.der"
cmp -s "$tmp/imp/53ff6d065067544809140287.der" "$F/device.der" || { echo "FAIL: imported device key differs"; fails=$((fails + 1)); }
cmp -s "$tmp/imp/server-public.der" "$F/server.pub.der" || { echo "FAIL: imported server key differs"; fails=$((fails + 1)); }
cmp -s "$tmp/imp/53ff6d065067544809140287.pub.pem" "$F/device.pub.pem" || { echo "FAIL: public PEM differs from openssl's"; fails=$((fails + 1)); }
run 0 "$K" check "$tmp/imp/keyfile"; has "is its public half: match"; has "fine"
run 0 "$K" import "$F/core-backup.bin" --out "$tmp/backup"
has "also found at 0x80000: RSA-1024 private key (a device key?), fingerprint"; has "not the key in the device key slot"
has "also found at 0x82000: RSA-1024 private key (a device key?), fingerprint $device_fp: the same key as the device key slot"
has "also found at 0x81000: RSA-2048 public key"
run 0 "$K" import "$F/dct.bin" --out "$tmp/dct"; has "Photon/P1 DCT dump"; has "IPv4 10.1.2.3, port 5684"; has "device  *  device.der"
run 1 "$K" import "$F/core-blank.bin" --out "$tmp/blank"; has "blank (erased flash, all 0xFF)"
run 1 "$K" import "$F/core-garbage.bin" --out "$tmp/garbage"; has "not a valid key"
run 1 "$K" import "$F/core-pkcs8.bin" --out "$tmp/p8"; has "PKCS#8"
run 1 "$K" import "$F/core-tooshort.bin" --out "$tmp/short"; has "not in the dump"
run 1 "$K" import "$F/device.der" --out "$tmp/x"; has "too short"
run 2 "$K" import "$F/core.bin"; has "--out DIR"
run 2 "$K" import "$F/core.bin" --out "$tmp/y" --layout floppy; has "unknown layout"
run 2 "$K" import "$F/core.bin" --out "$tmp/y" --device 12; has "bad device id"
run 2 "$K" import "$tmp/missing.bin" --out "$tmp/y"; has "No such file"
touch "$tmp/file"
run 2 "$K" import "$F/core.bin" --out "$tmp/file/sub"; has "cannot create"

# ---- new -------------------------------------------------------------------------------------
run 0 "$K" new --device 0123456789ABCDEF01234567 --out "$tmp/new"
has "wrote $tmp/new/0123456789abcdef01234567.der"
has "keyfile line: device  0123456789abcdef01234567  0123456789abcdef01234567.der"
run 0 "$K" new --device 53ff6d065067544809140287 --out "$tmp/new"
run 0 "$K" check "$tmp/new/keyfile"; has "2 entries, fine"; has "is its public half: match"
run 0 "$K" show "$tmp/new/0123456789abcdef01234567.der"; has "verdict: fine"; has "PKCS#1 RSAPrivateKey DER"
for id in 0123456789abcdef01234567 53ff6d065067544809140287; do
    run 0 openssl rsa -check -noout -inform DER -in "$tmp/new/$id.der"; has "RSA key ok"
    # PKCS#1 (traditional), 1024 bits, e = 65537, and the cloud's PEM is its public half
    run 0 openssl asn1parse -inform DER -in "$tmp/new/$id.der"; has "prim: INTEGER           :010001"
    hasnt "rsaEncryption"
    run 0 openssl rsa -noout -text -inform DER -in "$tmp/new/$id.der"; has "Private-Key: (1024 bit, 2 primes)"
    a=$(openssl rsa -inform DER -in "$tmp/new/$id.der" -pubout 2>/dev/null)
    b=$(cat "$tmp/new/$id.pub.pem")
    [ "$a" = "$b" ] || { echo "FAIL: $id.pub.pem is not the public half"; fails=$((fails + 1)); }
done
run 2 "$K" new --device 0123456789abcdef01234567 --out "$tmp/new"; has "already exists"
run 0 "$K" new --device 0123456789abcdef01234567 --out "$tmp/new" --force; hasnt "added to"
run 2 "$K" new --device xyz --out "$tmp/new"; has "bad device id"
run 2 "$K" new --out "$tmp/new"; has "--device ID"
[ "$(grep -c '^device' "$tmp/new/keyfile")" = 2 ] || { echo "FAIL: keyfile lines duplicated"; fails=$((fails + 1)); }

echo "$n commands, $fails failure(s)"
[ "$fails" = 0 ]
