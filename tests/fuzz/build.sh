#!/bin/bash
# Builds the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined) into OUTDIR:
#   fuzz-key fuzz-keyfile fuzz-tracker fuzz-cloudmon fuzz-firmware
# usage: tests/fuzz/build.sh OUTDIR       exit 77 when clang or libFuzzer is missing
# Debian 12: apt-get install clang libclang-rt-14-dev (libFuzzer's runtime).
set -eu
out=${1:?usage: build.sh OUTDIR}
src=$(cd "$(dirname "$0")/../.." && pwd)
CC=${FUZZ_CC:-clang}
mkdir -p "$out/obj"
out=$(cd "$out" && pwd)
if ! command -v "$CC" >/dev/null; then
    echo "fuzz: $CC not found (apt-get install clang libclang-rt-14-dev)"
    exit 77
fi
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$out/probe.c"
if ! "$CC" -fsanitize=fuzzer,address,undefined "$out/probe.c" -o "$out/probe" 2>"$out/probe.err"; then
    echo "fuzz: $CC cannot link libFuzzer (apt-get install libclang-rt-14-dev): $(head -n 3 "$out/probe.err")"
    exit 77
fi
pkgs="openssl glib-2.0 json-c libcoap-3-notls libpcap"
cflags="-g -O1 -std=c11 -D_GNU_SOURCE -DSPARKWIRE_VERSION=\"fuzz\" -DFUZZ_SOURCE_ROOT=\"$src\" -Wall -Wextra \
 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
 -I$src/keyring/include -I$src/monitor -I$src/firmware/core $(pkg-config --cflags $pkgs)"
libs="$(pkg-config --libs $pkgs) -lm"
lib_src="$(echo $src/keyring/src/*.c $src/keyring/tracker/*.c $src/keyring/conn/*.c) $src/monitor/decode.c $src/monitor/frag.c
 $src/monitor/pcapng.c $src/monitor/mon.c $(echo $src/firmware/core/*.c)
 $src/firmware/port/openssl/crypto_openssl.c"
objs=()
for f in $lib_src; do
    o="$out/obj/$(echo "${f#$src/}" | tr / _).o"
    if [ ! -f "$o" ] || [ "$f" -nt "$o" ] || [ -n "$(find "$src/keyring/include" "$src/monitor" "$src/firmware/core" "$src/keyring/tracker" "$src/keyring/conn" -name '*.h' -newer "$o" 2>/dev/null | head -n 1)" ]; then
        $CC $cflags -fsanitize=fuzzer-no-link -c "$f" -o "$o"
    fi
    objs+=("$o")
done
for t in key keyfile tracker cloudmon pcapng firmware; do
    $CC $cflags -fsanitize=fuzzer -I"$src/tests/fuzz" "$src/tests/fuzz/fuzz_$t.c" "${objs[@]}" $libs -o "$out/fuzz-$t"
done
echo "fuzz: built $out/fuzz-{key,keyfile,tracker,cloudmon,pcapng,firmware}"
