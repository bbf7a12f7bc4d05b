#!/bin/bash
# Makes the key material the keyring tests read, with the openssl command line only (never with
# libkeyring itself), so that the tests compare libkeyring against an independent implementation.
#   mkfixtures.sh OUTDIR STAMP
set -eu
out=$1
stamp=$(realpath -m "$2")
rm -rf "$out"
mkdir -p "$out"
cd "$out"

ossl() { openssl "$@" 2>/dev/null; }
hex() { od -An -v -tx1 "$1" | tr -d ' \n'; }
unhex() { printf "$(printf '%s' "$1" | sed 's/../\\x&/g')"; }
be16() { unhex "$(printf '%04x' "$1")"; }

# Lengths of the nine INTEGERs of a PKCS#1 private key DER, one line.
int_lengths() {
    openssl asn1parse -inform DER -in "$1" | awk '/INTEGER/ { sub(/.*l= */, ""); sub(/ .*/, ""); printf "%s ", $0 }'
}
# True when every number has its nominal size (the layout devices read, docs/protocol.md 5.1).
nominal() {
    set -- $(int_lengths "$1")
    [ "$2" -eq 129 ] && [ "$4" -ge 128 ] && [ "$5" -ge 64 ] && [ "$6" -ge 64 ] && [ "$7" -ge 64 ] &&
        [ "$8" -ge 64 ] && [ "$9" -ge 64 ]
}
# A 1024-bit PKCS#1 DER device key with the nominal layout (or, with "short", one with a short number).
device_key() {
    want=$2
    i=0
    while [ $i -lt 3000 ]; do
        i=$((i + 1))
        ossl genrsa -traditional -out "$1.tmp.pem" 1024
        ossl rsa -in "$1.tmp.pem" -traditional -outform DER -out "$1"
        rm -f "$1.tmp.pem"
        if nominal "$1"; then
            [ "$want" = nominal ] && return 0
        else
            [ "$want" = short ] && return 0
        fi
    done
    echo "mkfixtures: no $want key after $i tries" >&2
    exit 1
}

# ---- keys -------------------------------------------------------------------------------------
ossl genrsa -traditional -out server.pem 2048
ossl pkey -in server.pem -out server.pkcs8.pem
ossl rsa -in server.pem -pubout -outform DER -out server.pub.der
ossl rsa -in server.pem -pubout -out server.pub.pem
ossl rsa -in server.pem -RSAPublicKey_out -outform DER -out server.rsapub.der
ossl genrsa -traditional -out server2.pem 2048
ossl rsa -in server2.pem -pubout -outform DER -out server2.pub.der

device_key device.der nominal
device_key device2.der nominal
device_key short-int.der short
ossl rsa -inform DER -in device.der -traditional -out device.pem
ossl pkcs8 -topk8 -nocrypt -inform DER -in device.der -outform DER -out device.pkcs8.der
ossl pkey -inform DER -in device.der -out device.pkcs8.pem
ossl rsa -inform DER -in device.der -pubout -out device.pub.pem
ossl rsa -inform DER -in device.der -pubout -outform DER -out device.pub.der
cp device.pem device.cer
ossl rsa -inform DER -in device2.der -pubout -out device2.pub.pem

ossl genrsa -traditional -3 -out e3.pem 1024
ossl rsa -in e3.pem -traditional -outform DER -out e3.der
ossl genrsa -traditional -out small.pem 512
ossl rsa -in small.pem -traditional -outform DER -out small.der

# password protected: PKCS#8 encrypted PEM, traditional encrypted PEM, encrypted PKCS#8 DER
ossl pkey -inform DER -in device.der -aes128 -passout pass:secret -out enc.pem
ossl rsa -inform DER -in device.der -traditional -aes128 -passout pass:secret -out enc-trad.pem
ossl pkcs8 -topk8 -inform DER -in device.der -outform DER -v2 aes128 -passout pass:secret -out enc.der

# not RSA
ossl ecparam -genkey -name prime256v1 -out ec.pem
ossl ec -in ec.pem -pubout -out ec.pub.pem
ossl pkcs8 -topk8 -nocrypt -in ec.pem -outform DER -out ec.pkcs8.der
ossl ec -in ec.pem -outform DER -out ec.der

# damaged
head -c 300 device.der > truncated.der
printf 'hello, this is not a key\n' > text.txt
: > empty.der

# a device read of the key slot: the DER then 0xFF up to 1024 bytes
ff() { dd if=/dev/zero bs=1024 count="$1" 2>/dev/null | tr '\000' '\377'; }
{ cat device.der; ff 1; } | head -c 1024 > device-slot.der
# trailing bytes that are not erased flash
{ cat device.der; printf 'JUNK'; } > device-junk.der

# a server public key as spark-cli wrote it to a device: DER, 0xFF up to 384, the address record
{ cat server.pub.der; ff 1; } | head -c 384 > cloud384.tmp
{ cat cloud384.tmp; printf '\001\017device.spark.io\000'; ff 1; } | head -c 512 > server-cli.der
rm -f cloud384.tmp
# the fingerprint of server.pub.der, computed by openssl
openssl dgst -sha256 -r server.pub.der | cut -c1-64 > server.pub.sha256

# ---- the published Particle cloud public key (docs/protocol.md 5.3): its 2048-bit modulus, put into the
# 294-byte SubjectPublicKeyInfo the devices hold; its SHA-256 must be the published fingerprint
particle_mod="
beccbe43db8eea1527a6bb526de1512ba0abcca1647748ad7c66fc807ff699a5
25f2f2dae043cf3a26a49ba187030e9a8d239abcea99ea68d35a14b1260fbdaa
6d6f0cacc4772cd1c5c8b1d17b68e025737b52896820bd06c6f0e60030c0e0cf
f61b3a45e9c45b551706a3d34ac6d5b8d21702b5277d8de4d47dd3edc01d8a7c
251e214a51ae5706dd60bca13490aacc099e3b3a414c3c9df3fdfdb727c15981
9854604a627aa49abfdf921b3efca7e4a4b33a9a5f57938eeb196495224a2cd5
60f5f9d003508369c06b53f0f0daf813821fccbb5fe2c1df3ae97f5de27db950
803c5833ef8cf3803f1101d268865f3c5ee6c18e322b28cbb5cc1ba8505ea70d
"
particle_mod=$(printf '%s' "$particle_mod" | tr -d ' \n')
unhex "30820122300d06092a864886f70d01010105000382010f003082010a0282010100${particle_mod}0203010001" > particle-cloud.der
[ "$(openssl dgst -sha256 -r particle-cloud.der | cut -c1-64)" = aa8aba3c973ed4b668999047a09597948f36eefde525352e705fe8ef98c1677e ] ||
    { echo "mkfixtures: particle-cloud.der does not have the published fingerprint" >&2; exit 1; }

# ---- broken keys: a real key's numbers with one of them changed, written by openssl asn1parse -genconf
ints=($(openssl asn1parse -inform DER -in device.der | awk -F: '/INTEGER/ { print $NF }'))
# ints: version n e d p q dp dq qinv (hex)
rsa_der() {   # rsa_der OUT N E D P Q DP DQ QINV
    local out=$1
    shift
    printf 'asn1=SEQUENCE:k\n[k]\nv=INTEGER:0\nn=INTEGER:0x%s\ne=INTEGER:0x%s\nd=INTEGER:0x%s\np=INTEGER:0x%s\nq=INTEGER:0x%s\ndp=INTEGER:0x%s\ndq=INTEGER:0x%s\nqi=INTEGER:0x%s\n' "$@" > genconf.tmp
    openssl asn1parse -genconf genconf.tmp -out "$out" > /dev/null
    rm -f genconf.tmp
}
rsa_der rebuilt.der "${ints[1]}" "${ints[2]}" "${ints[3]}" "${ints[4]}" "${ints[5]}" "${ints[6]}" "${ints[7]}" "${ints[8]}"
cmp -s rebuilt.der device.der || { echo "mkfixtures: asn1parse -genconf does not rebuild device.der" >&2; exit 1; }
rsa_der broken-e1.der "${ints[1]}" 01 "${ints[3]}" "${ints[4]}" "${ints[5]}" "${ints[6]}" "${ints[7]}" "${ints[8]}"
rsa_der broken-e2.der "${ints[1]}" 010002 "${ints[3]}" "${ints[4]}" "${ints[5]}" "${ints[6]}" "${ints[7]}" "${ints[8]}"
rsa_der broken-d0.der "${ints[1]}" "${ints[2]}" 00 "${ints[4]}" "${ints[5]}" "${ints[6]}" "${ints[7]}" "${ints[8]}"
rsa_der broken-dp.der "${ints[1]}" "${ints[2]}" "${ints[3]}" "${ints[4]}" "${ints[5]}" "${ints[7]}" "${ints[7]}" "${ints[8]}"
rsa_der broken-qinv.der "${ints[1]}" "${ints[2]}" "${ints[3]}" "${ints[4]}" "${ints[5]}" "${ints[6]}" "${ints[7]}" "${ints[6]}"
rm -f rebuilt.der

# ---- keys over 8192 bits, without drawing primes (that takes minutes): a 16384-bit private key made of
# random numbers (refused before any check) and public keys of 8192 and 8193 bits
rnd() { openssl rand -hex "$1"; }
big_odd() {   # big_odd BITS: hex of a BITS-bit odd number with its top bit set
    local bits=$1 bytes=$(( ($1 + 7) / 8 )) top
    local h=$(rnd "$bytes")
    top=$(( bits - (bytes - 1) * 8 ))                      # bits used in the first byte
    local first=$(( (0x${h:0:2} | (1 << (top - 1))) & ((1 << top) - 1) ))
    local last=$(( 0x${h: -2} | 1 ))
    printf '%02x%s%02x' "$first" "${h:2:$(( ${#h} - 4 ))}" "$last"
}
rsa_der rsa16384-fake.der "$(big_odd 16384)" 010001 "$(big_odd 16380)" "$(big_odd 8192)" "$(big_odd 8192)" \
    "$(big_odd 8190)" "$(big_odd 8190)" "$(big_odd 8190)"
for bits in 8192 8193; do
    printf 'asn1=SEQUENCE:k\n[k]\nn=INTEGER:0x%s\ne=INTEGER:0x010001\n' "$(big_odd $bits)" > genconf.tmp
    openssl asn1parse -genconf genconf.tmp -out "rsa$bits.rsapub.der" > /dev/null
    rm -f genconf.tmp
    ossl rsa -RSAPublicKey_in -inform DER -in "rsa$bits.rsapub.der" -pubout -outform DER -out "rsa$bits.pub.der"
done
[ -s rsa8193.pub.der ] || { echo "mkfixtures: openssl wrote no rsa8193.pub.der" >&2; exit 1; }

# ---- flash dumps ---------------------------------------------------------------------------------
put() {   # put FILE OFFSET DATAFILE
    dd if="$3" of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
# server address record: type 1, length 15, "device.spark.io", port 5683 at +66
{ printf '\001\017device.spark.io'; } > addr.bin
{ cat addr.bin; ff 1; } | head -c 66 > addr66.bin
{ cat addr66.bin; printf '\026\063'; ff 1; } | head -c 128 > addr.rec

ff 2048 > core.bin
put core.bin 4096 server.pub.der
put core.bin 4480 addr.rec
put core.bin 8192 device.der

cp core.bin core-backup.bin                  # backups written to free flash at 0x80000
put core-backup.bin 524288 device2.der
put core-backup.bin 528384 server2.pub.der
put core-backup.bin 532480 device.der
ff 2048 > core-blank.bin                     # never written
ff 16 > core-nodevice.bin                    # server key only
put core-nodevice.bin 4096 server.pub.der
head -c 12288 core.bin > core-short.bin      # a read of the first 12 KB
head -c 5000 core.bin > core-tooshort.bin    # ends before the device key
ff 16 > core-garbage.bin                     # device slot holds junk
put core-garbage.bin 4096 server.pub.der
printf 'this is not a key but it is not erased flash either' > junk.bin
put core-garbage.bin 8192 junk.bin
ff 16 > core-pkcs8.bin                       # device slot written with a PKCS#8 key
put core-pkcs8.bin 4096 server.pub.der
put core-pkcs8.bin 8192 device.pkcs8.der

ff 16 > dct.bin                               # Photon DCT, 16 KB
put dct.bin 34 device.der
put dct.bin 1250 device.pub.der
put dct.bin 2082 server.pub.der
# IPv4 record 10.1.2.3 port 5684
{ printf '\000\004\012\001\002\003'; ff 1; } | head -c 66 > ip66.bin
{ cat ip66.bin; printf '\026\064'; ff 1; } | head -c 128 > ip.rec
put dct.bin 2466 ip.rec

head -c 4352 core.bin > core-4352.bin          # a short Core read: ends inside the server key at 0x1000
ff 2048 > core-particle.bin                   # a Core holding the Particle cloud key and its address
put core-particle.bin 4096 particle-cloud.der
put core-particle.bin 4480 addr.rec
put core-particle.bin 8192 device.der
ff 2048 > core-noserver.bin                   # server key slot never written
put core-noserver.bin 8192 device.der
cp dct.bin dct-particle.bin
put dct-particle.bin 2082 particle-cloud.der

# ---- handshake known answers -------------------------------------------------------------------
nonce=00112233445566778899aabbccddeeff0123456789abcdef0f1e2d3c4b5a69788796a5b4c3d2e1f0
id=53ff6d065067544809140287
unhex "$nonce" > nonce.bin
unhex "$id" > id.bin
cat nonce.bin id.bin > idplain52.bin
cat nonce.bin id.bin device.pub.der > idplain214.bin
ossl pkeyutl -encrypt -pubin -inkey server.pub.pem -pkeyopt rsa_padding_mode:pkcs1 -in idplain52.bin -out idblock52.bin
ossl pkeyutl -encrypt -pubin -inkey server.pub.pem -pkeyopt rsa_padding_mode:pkcs1 -in idplain214.bin -out idblock214.bin
head -c 30 idplain52.bin > idplain30.bin
ossl pkeyutl -encrypt -pubin -inkey server.pub.pem -in idplain30.bin -out idblock30.bin
ossl pkeyutl -encrypt -pubin -inkey server2.pub.der -keyform DER -in idplain52.bin -out idblock-other.bin

m=0f0e0d0c0b0a09080706050403020100a0a1a2a3a4a5a6a7a8a9aaabacadaeafb1c2d3e4f5061728
unhex "$m" > m.bin
ossl pkeyutl -encrypt -pubin -inkey device.pub.pem -in m.bin -out e.bin
ossl pkeyutl -encrypt -pubin -inkey device2.pub.pem -in m.bin -out e-other.bin
{ cat m.bin; printf 'X'; } > m41.bin
ossl pkeyutl -encrypt -pubin -inkey device.pub.pem -in m41.bin -out e41.bin
openssl mac -digest SHA1 -macopt hexkey:"$m" -binary -in e.bin -out hmac.bin HMAC
ossl pkeyutl -sign -inkey server.pem -pkeyopt rsa_padding_mode:pkcs1 -in hmac.bin -out sig.bin
ossl pkeyutl -sign -inkey server2.pem -in hmac.bin -out sig-other.bin
# signed over other 20 bytes: right structure, wrong HMAC
printf 'twenty bytes, wrong.' > other20.bin
ossl pkeyutl -sign -inkey server.pem -in other20.bin -out sig-mismatch.bin
cat e.bin sig.bin > session.bin

# ---- session frames ---------------------------------------------------------------------------
# Each direction: messages encrypted with AES-128-CBC and PKCS#7, the IV of a frame being the first
# ciphertext block of the previous frame of that direction, the first IV M[16..31].
key=$(printf '%s' "$m" | cut -c1-32)
iv0=$(printf '%s' "$m" | cut -c33-64)
frames() {   # frames DIR MESSAGE...
    dir=$1
    shift
    iv=$iv0
    : > "$dir.frames"
    : > "$dir.plains"
    for msg in "$@"; do
        printf '%s' "$msg" > msg.tmp
        openssl enc -aes-128-cbc -K "$key" -iv "$iv" -in msg.tmp -out ct.tmp
        n=$(wc -c < ct.tmp)
        { be16 "$n"; cat ct.tmp; } >> "$dir.frames"
        { be16 "$(wc -c < msg.tmp)"; cat msg.tmp; } >> "$dir.plains"
        iv=$(head -c 16 ct.tmp | od -An -v -tx1 | tr -d ' \n')
    done
    rm -f msg.tmp ct.tmp
}
frames d2s 'P hello' 'exactly sixteen!' 'a longer message that spans several AES blocks of the frame' 'x' \
    'the fifth message, after which nothing'
frames s2d 'A cloud hello' '' 'the cloud answers with a fairly long message here' 'ok'

# ---- expected values, from openssl ------------------------------------------------------------
{
    echo "nonce $nonce"
    echo "id $id"
    echo "m $m"
    echo "hmac $(hex hmac.bin)"
    echo "server_fp $(ossl rsa -in server.pem -pubout -outform DER | openssl dgst -sha256 -r | cut -c1-64)"
    echo "device_fp $(openssl dgst -sha256 -r device.pub.der | cut -c1-64)"
    echo "device_pub $(hex device.pub.der)"
} > expected.txt

touch "$stamp"
