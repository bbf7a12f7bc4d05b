#!/bin/bash
# Cross-builds firmware/core for the Spark Core's STM32F103 (Cortex-M3) in a temporary folder and checks
# that the image links, is an ARM ELF, and fits 128 KB of flash and 20 KB of RAM with room for a stack.
# Skipped (exit 77) when the arm-none-eabi toolchain is not installed.
set -euo pipefail
src=${SPARKWIRE_SOURCE_ROOT:?SPARKWIRE_SOURCE_ROOT not set}
if ! command -v arm-none-eabi-gcc >/dev/null; then
    echo "SKIP: arm-none-eabi-gcc not found (apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi)"
    exit 77
fi
if [ ! -e "$(arm-none-eabi-gcc -print-file-name=nano.specs)" ]; then
    echo "FAIL: newlib nano missing (apt-get install -y libnewlib-arm-none-eabi)"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson setup "$tmp/build" "$src" --cross-file "$src/firmware/cross/stm32f103.ini" >"$tmp/setup.log" 2>&1 || {
    cat "$tmp/setup.log"; echo "FAIL: meson setup of the cross build"; exit 1; }
ninja -C "$tmp/build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; echo "FAIL: cross build"; exit 1; }
elf="$tmp/build/firmware/cross/sparkcore.elf"
grep -A3 "Memory region" "$tmp/build.log" || true
arm-none-eabi-readelf -h "$elf" | grep -q "Machine:.*ARM" || { echo "FAIL: $elf is not an ARM ELF"; exit 1; }
arm-none-eabi-readelf -A "$elf" | grep -q "Tag_CPU_arch: v7" || { echo "FAIL: $elf is not built for ARMv7-M"; exit 1; }
read -r text data bss _ < <(arm-none-eabi-size "$elf" | tail -n1)
flash=$((text + data))
ram=$((data + bss))
echo "sparkcore.elf: flash $flash bytes (text $text + data $data), RAM $ram bytes (data $data + bss $bss)"
# The whole stack must leave most of the chip to the application: at most 64 KB of flash, and RAM with
# room for a 4 KB stack (the linker script asserts that too).
[ "$text" -gt 4000 ] || { echo "FAIL: text of $text bytes is too small to hold the core"; exit 1; }
[ "$flash" -le 65536 ] || { echo "FAIL: flash use $flash > 65536"; exit 1; }
[ "$ram" -le $((20480 - 4096)) ] || { echo "FAIL: RAM use $ram leaves no 4 KB stack in 20 KB"; exit 1; }
arm-none-eabi-nm "$elf" | grep -q " T sw_device_poll" || { echo "FAIL: the core is not linked in"; exit 1; }
if arm-none-eabi-nm "$elf" | grep -qE " T (malloc|_malloc_r)$"; then
    echo "FAIL: the image uses the heap"; exit 1
fi
echo "PASS"
