#!/bin/bash
# The sparkkeys command on good and bad input: output and exit status (0 fine, 1 problem, 2 usage/I/O).
#   test_cli.sh SPARKKEYS FIXTURE_DIR
set -u
K=$1
F=$2
tmp=$(mktemp -d /tmp/sparkkeys-cli.XXXXXX)
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
run 0 "$K" --help; has "sparkkeys show"; has "sparkkeys new --device ID --out DIR"
run 0 "$K" --version; has "sparkkeys (sparkwire)"
run 2 "$K"; has "Usage:"
run 2 "$K" frobnicate; has 'unknown command "frobnicate"'
for c in show match check import new; do
    run 0 "$K" "$c" --help; has "Usage:"; has "sparkkeys $c"
done
run 2 "$K" show --no-such-option; has "sparkkeys show"

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
run 1 "$K" show "$F/device.pkcs8.der"; has "problem: PKCS#8"; has "fix: openssl rsa -in $F/device.pkcs8.der -inform DER -traditional -outform DER"
run 1 "$K" show "$F/short-int.der"; has "instead of"; has "particle keys doctor DEVICE_ID"
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
run 1 "$K" show "$F/dct.bin"; has "a flash dump? read its keys with \`sparkkeys import"
run 2 "$K" show "$tmp/missing.der"; has "No such file"
run 2 "$K" show; has "name a key file"
run 1 "$K" show "$F/device.der" "$F/ec.pem"; has "verdict: fine"; has "EC private key"

# every server public key: the published Particle cloud key or not, either way with its fingerprint
run 0 "$K" show "$F/particle-cloud.der"; has "role: server public key"
has "note: the published Particle cloud key (fingerprint aa8aba3c973ed4b668999047a09597948f36eefde525352e705fe8ef98c1677e)"
hasnt "not the published"; has "verdict: fine"
run 0 "$K" show "$F/server.pub.der"; has "note: not the published Particle cloud key (fingerprint $server_fp"
has "fix: device in DFU mode: \`particle keys server\` writes the Particle cloud key"
# a wrongly stored server key: convert, then the command that writes it to the device
run 1 "$K" show "$F/server.rsapub.der"; has "-pubout -outform DER -out $F/server.rsapub-spki.der, then device in DFU mode"
has "particle keys server $F/server.rsapub-spki.der --host ADDRESS"
has "Core: dfu-util -d 1d50:607f -a 1 -i 0 -s 0x00001000:leave -D $F/server.rsapub-spki.der; Photon: dfu-util -d 2b04:d006 -a 1 -i 0 -s 2082:leave"
# broken numbers, with the reason and a new key as the fix
run 1 "$K" show "$F/broken-e1.der"; has "broken key (public exponent 1"; has "particle keys doctor"
run 1 "$K" show "$F/broken-qinv.der"; has "qinv is not the inverse of q mod p"
# over 8,192 bits: one line, at once (the RSA-16384 key is made of random numbers: checking it would fail slowly)
start=$(date +%s)
run 1 timeout 20 "$K" show "$F/rsa16384-fake.der"; has "RSA-16384: larger than 8192 bits, refused"
[ $(( $(date +%s) - start )) -le 5 ] || { echo "FAIL: refusing RSA-16384 took more than 5 s"; fails=$((fails + 1)); }
run 1 "$K" show "$F/rsa8192.pub.der"; has "RSA-8192"; hasnt "larger than"
# not a regular file: one line, exit 2, and no waiting on a FIFO without a writer
mkfifo "$tmp/fifo"
run 2 timeout 10 "$K" show "$tmp/fifo"; has "$tmp/fifo: a named pipe (FIFO), not a regular file: give the path of the key file itself"
[ "$(wc -l <<<"$out")" = 1 ] || { echo "FAIL: more than one line for a FIFO"; fails=$((fails + 1)); }
run 2 timeout 10 "$K" show "$tmp"; has "a folder, not a regular file"
run 2 timeout 10 "$K" show /dev/null; has "a device, not a regular file"
run 2 timeout 10 "$K" import "$tmp/fifo" --out "$tmp/ff"; has "not a regular file: give the path of the dump itself"
run 2 timeout 10 "$K" check "$tmp/fifo"; has "not a regular file: give the path of the keyfile itself"
ln -s "$F/device.der" "$tmp/link.der"
run 0 "$K" show "$tmp/link.der"; has "fingerprint: $device_fp"

# ---- match -----------------------------------------------------------------------------------
run 0 "$K" match "$F/device.der" "$F/device.pub.pem"; has "yes:"; has "$device_fp"
run 0 "$K" match "$F/server.pem" "$F/server.pub.der"; has "yes:"
run 0 "$K" match "$F/device.pkcs8.pem" "$F/device.pub.der"; has "yes:"
run 1 "$K" match "$F/device.der" "$F/device2.pub.pem"; has "no:"; has "do NOT belong together"; has "$device_fp"
run 1 "$K" match "$F/device.der" "$F/server.pub.der"; has "no:"; has "sizes differ"
run 1 "$K" match "$F/device.der" "$F/ec.pub.pem"; has "EC"
run 2 "$K" match "$F/device.der"; has "give two key files"
run 2 "$K" match "$F/device.der" "$tmp/missing.pem"; has "No such file"

# a mismatch comes with the command that makes the pair
run 1 "$K" match "$F/device.der" "$F/device2.pub.pem"
has "fix: openssl rsa -in $F/device.der -inform DER -pubout -out $F/device.pub.pem, then give the cloud the device's public key: \`particle keys send DEVICE_ID $F/device.pub.pem\`"
run 1 "$K" match "$F/server.pem" "$F/server2.pub.der"; has "server-key-mismatch"
has "fix: give the device the cloud's public key: openssl rsa -in $F/server.pem -pubout -outform DER"; has "particle keys server"
run 1 "$K" match "$F/particle-cloud.der" "$F/server.pub.der"; has "particle keys server $F/particle-cloud.der"

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
has "note: not the published Particle cloud key (fingerprint $server_fp"
has "note: no copy of the cloud's record for this device (53ff6d065067544809140287.pub.pem beside the key)"
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
has "fix: openssl rsa -in $tmp/kf/keys/device.der -inform DER -pubout -out $tmp/kf/keys/53ff6d065067544809140287.pub.pem, then give the cloud the device's public key: \`particle keys send 53ff6d065067544809140287 "
rm "$tmp/kf/keys/53ff6d065067544809140287.pub.pem"
# server keys that do not belong together
sed -i 's|keys/server.pub.der|keys/server2.pub.der|' "$tmp/kf/keyfile"
run 1 "$K" check "$tmp/kf/keyfile"; has "do NOT belong together"; has "server-key-mismatch"; has "PROBLEMS found"
has "fix: if server-private is the cloud's key"; has "particle keys server $tmp/kf/keys/server2.pub.der --host ADDRESS"
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
# device-server-key and device-public lines: named by their kind, compared with the cloud's key and the device key
fp() { openssl pkey -pubin -inform "$2" -in "$1" -pubout -outform DER 2>/dev/null | sha256sum | cut -c1-64; }
server2_fp=$(fp "$F/server2.pub.der" DER)
device2_fp=$(fp "$F/device2.pub.pem" PEM)
cp "$F/particle-cloud.der" "$F/device2.pub.pem" "$tmp/kf/keys/"
dsk='device-server-key 53ff6d065067544809140287 keys/server2.pub.der'
printf 'server-public keys/server.pub.der\ndevice 53ff6d065067544809140287 keys/device.der\n%s\n' "$dsk" > "$tmp/kf/dsk1"
run 1 "$K" check "$tmp/kf/dsk1"
has "line 3: device-server-key 53ff6d065067544809140287 $tmp/kf/keys/server2.pub.der: RSA-2048 public, SubjectPublicKeyInfo DER, fingerprint $server2_fp (the server key in the device's flash)"
has "problem (line 3): 53ff6d065067544809140287 holds server key $server2_fp, the cloud's server-public is $server_fp: the cloud cannot open its id block (server-key-mismatch)"
has "  fix: device in DFU mode: \`particle keys server $tmp/kf/keys/server.pub.der --host ADDRESS --port 5683\`"
has "Core: dfu-util -d 1d50:607f -a 1 -i 0 -s 0x00001000:leave -D $tmp/kf/keys/server.pub.der"; has "PROBLEMS found"
# no server-public line: the device's copy is compared with the published Particle cloud key
printf 'device 53ff6d065067544809140287 keys/device.der\n%s\n' "$dsk" > "$tmp/kf/dsk2"
run 1 "$K" check "$tmp/kf/dsk2"
has "problem (line 2): 53ff6d065067544809140287 holds server key $server2_fp, the published Particle cloud key is aa8aba3c973ed4b668999047a09597948f36eefde525352e705fe8ef98c1677e"
has "  fix: device in DFU mode: \`particle keys server\` writes the Particle cloud key and address"
printf 'device-server-key 53ff6d065067544809140287 keys/particle-cloud.der\n' > "$tmp/kf/dsk3"
run 0 "$K" check "$tmp/kf/dsk3"; has "pair (line 1): 53ff6d065067544809140287 holds the Particle cloud's server key"; has "fine"
# only the cloud's private key: the fix makes its public half first, and never sends the private file
printf 'server-private keys/server.pem\n%s\n' "$dsk" > "$tmp/kf/dsk4"
run 1 "$K" check "$tmp/kf/dsk4"; has "the cloud's server-public is $server_fp"
has "fix: openssl rsa -in $tmp/kf/keys/server.pem -pubout -outform DER -out $tmp/kf/keys/server.pem.pub.der, then device in DFU mode: \`particle keys server $tmp/kf/keys/server.pem.pub.der "
# the same key on both lines: a pair
printf 'server-public keys/server.pub.der\ndevice-server-key 53ff6d065067544809140287 keys/server.pub.der\n' > "$tmp/kf/dsk5"
run 0 "$K" check "$tmp/kf/dsk5"; has "pair (line 2): 53ff6d065067544809140287 holds the cloud's server key (fingerprint $server_fp)"
# a server key bound to a cloud address: the line says so
printf 'server-public keys/server.pub.der cloud=[2001:db8::1]:5683\n' > "$tmp/kf/bound"
run 0 "$K" check "$tmp/kf/bound"; has "line 1: server-public $tmp/kf/keys/server.pub.der cloud=[2001:db8::1]:5683: RSA-2048 public"
# device-public: the cloud's record of the device key, against the device's own key
printf 'device 53ff6d065067544809140287 keys/device.der\ndevice-public 53ff6d065067544809140287 keys/device2.pub.pem\n' > "$tmp/kf/dp1"
run 1 "$K" check "$tmp/kf/dp1"
has "line 2: device-public 53ff6d065067544809140287 $tmp/kf/keys/device2.pub.pem: RSA-1024 public, SubjectPublicKeyInfo PEM (BEGIN PUBLIC KEY), fingerprint $device2_fp (the cloud's record of the device's key)"
has "problem (line 2): the cloud's record for 53ff6d065067544809140287 (fingerprint $device2_fp) is not the device key's public half ($device_fp)"
has "fix: openssl rsa -in $tmp/kf/keys/device.der -inform DER -pubout -out 53ff6d065067544809140287.pub.pem, then give the cloud the device's public key: \`particle keys send 53ff6d065067544809140287 53ff6d065067544809140287.pub.pem\`"
printf 'device-public 53ff6d065067544809140287 keys/device2.pub.pem\n' > "$tmp/kf/dp2"
run 0 "$K" check "$tmp/kf/dp2"; has "note (line 1): no device line for 53ff6d065067544809140287"
run 2 "$K" check "$tmp/kf/none"; has "No such file"
run 2 "$K" check; has "give one keyfile"

# ---- import ----------------------------------------------------------------------------------
run 0 "$K" import "$F/core.bin" --out "$tmp/imp" --device 53FF6D065067544809140287
has "Spark Core external flash dump, 2097152 bytes"
has "device private key at 0x2000: RSA-1024 private key"
has "server public key at 0x1000: RSA-2048 public key"
has "server address at 0x1180: domain device.spark.io, port 5683"
has "device  53ff6d065067544809140287  53ff6d065067544809140287.der"
has "device-server-key  53ff6d065067544809140287  53ff6d065067544809140287-server-key.der"
has "not the published Particle cloud key (fingerprint $server_fp"
has "fix: device in DFU mode: \`particle keys server\` writes the Particle cloud key"
cmp -s "$tmp/imp/53ff6d065067544809140287.der" "$F/device.der" || { echo "FAIL: imported device key differs"; fails=$((fails + 1)); }
cmp -s "$tmp/imp/53ff6d065067544809140287-server-key.der" "$F/server.pub.der" || { echo "FAIL: imported server key differs"; fails=$((fails + 1)); }
# the keyfile text: the device's server key on its own line, no server-public for a key that is not Particle's
want=$(printf 'device  53ff6d065067544809140287  53ff6d065067544809140287.der\ndevice-server-key  53ff6d065067544809140287  53ff6d065067544809140287-server-key.der')
got=$(grep -v '^#' "$tmp/imp/keyfile")
[ "$got" = "$want" ] || { echo "FAIL: imported keyfile is"; echo "$got" | sed 's/^/    /'; fails=$((fails + 1)); }
[ "$(stat -c %a "$tmp/imp/53ff6d065067544809140287.der")" = 600 ] || { echo "FAIL: imported private key not 0600"; fails=$((fails + 1)); }
cmp -s "$tmp/imp/53ff6d065067544809140287.pub.pem" "$F/device.pub.pem" || { echo "FAIL: public PEM differs from openssl's"; fails=$((fails + 1)); }
run 0 "$K" import "$F/core-backup.bin" --out "$tmp/backup"
has "also found at 0x80000: RSA-1024 private key (a device key?), fingerprint"; has "not the key in the device key slot"
has "also found at 0x82000: RSA-1024 private key (a device key?), fingerprint $device_fp: the same key as the device key slot"
has "also found at 0x81000: RSA-2048 public key"
run 0 "$K" import "$F/dct.bin" --out "$tmp/dct"; has "Photon/P1 DCT dump"; has "IPv4 10.1.2.3, port 5684"; has "device  *  device.der"
has "# device-server-key  ID  device-server-key.der   (import again with --device ID"; hasnt "server-public  "
# the published Particle cloud key in the slot: said so, and listed as server-public too
run 0 "$K" import "$F/core-particle.bin" --out "$tmp/part" --device 53ff6d065067544809140287
has "the published Particle cloud key (fingerprint aa8aba3c973ed4b668999047a09597948f36eefde525352e705fe8ef98c1677e)"
want=$(printf 'device  53ff6d065067544809140287  53ff6d065067544809140287.der\ndevice-server-key  53ff6d065067544809140287  53ff6d065067544809140287-server-key.der\nserver-public  53ff6d065067544809140287-server-key.der   # the published Particle cloud key')
got=$(grep -v '^#' "$tmp/part/keyfile")
[ "$got" = "$want" ] || { echo "FAIL: Particle keyfile is"; echo "$got" | sed 's/^/    /'; fails=$((fails + 1)); }
cmp -s "$tmp/part/53ff6d065067544809140287-server-key.der" "$F/particle-cloud.der" || { echo "FAIL: Particle key differs"; fails=$((fails + 1)); }
run 0 "$K" import "$F/dct-particle.bin" --out "$tmp/dctp"; has "Photon/P1 DCT dump"; has "the published Particle cloud key"
has "server-public  device-server-key.der"
# a short read of a Core (4,352 bytes from address 0) is a Core read that ends inside the server key
run 1 "$K" import "$F/core-4352.bin" --out "$tmp/short4352"
has "Spark Core external flash dump, 4352 bytes"; hasnt "Photon"
has "server public key at 0x1000: the dump ends inside it"
has "fix: read the whole external flash from address 0: dfu-util -d 1d50:607f -a 1 -s 0x00000000:2097152 -U core-flash.bin"
# a blank server key slot has a fix
run 1 "$K" import "$F/core-noserver.bin" --out "$tmp/nosrv" --device 53ff6d065067544809140287
has "server public key at 0x1000: blank"; has "fix: device in DFU mode: \`particle keys server\` writes the Particle cloud key"
hasnt "device-server-key  53ff"
# a PKCS#8 key in a Core: convert, then the Core's command (not the Photon's) writes it back
run 1 "$K" import "$F/core-pkcs8.bin" --out "$tmp/p8c" --device 53ff6d065067544809140287
has "-traditional -outform DER -out $tmp/p8c/53ff6d065067544809140287-pkcs1.der, then write"
has "dfu-util -d 1d50:607f -a 1 -i 0 -s 0x00002000:leave -D $tmp/p8c/53ff6d065067544809140287-pkcs1.der"; hasnt "2b04:d006"
run 1 "$K" import "$F/core-blank.bin" --out "$tmp/blank"; has "blank (erased flash, all 0xFF)"; has "particle keys doctor DEVICE_ID"
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
