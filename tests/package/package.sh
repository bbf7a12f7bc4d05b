#!/usr/bin/env bash
# The Debian packages: built out of tree with dpkg-buildpackage, unpacked into a throwaway root, their
# dependencies resolved by apt (simulated: the machine is not changed), and used as installed: in a
# private mount namespace the packages' files stand in the system folders, where tshark, run as a normal
# user, loads the plugin from the system plugin folder and cloudmon reads a sample. lintian finds no error.
# usage: package.sh SOURCE_ROOT
set -euo pipefail
src=$(readlink -f "$1")
for tool in dpkg-buildpackage dh lintian fakeroot tshark unshare; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed (make test installs it)"; exit 77; }
done
if [ "$(id -u)" != 0 ]; then
    echo "SKIP: the installed-files check needs root (bind mounts over the system folders)"
    exit 77
fi
tmp=$(mktemp -d /tmp/sparkwire-package.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# 1. out of tree: a copy of the source without build folders or VCS data
mkdir "$tmp/src"
tar -C "$src" --exclude='./build*' --exclude=./.git --exclude=./tests/fuzz/corpus-run -cf - . | tar -C "$tmp/src" -xf -
echo "== dpkg-buildpackage -us -uc -b"
if ! (cd "$tmp/src" && dpkg-buildpackage -us -uc -b -j2 >"$tmp/build.log" 2>&1); then
    tail -n 40 "$tmp/build.log"
    echo "FAIL: dpkg-buildpackage"
    exit 1
fi
main_deb=$(ls "$tmp"/sparkwire_*.deb)
plugin_deb=$(ls "$tmp"/wireshark-plugin-spark_*.deb)
echo "built: $(basename "$main_deb") $(basename "$plugin_deb")"

# 2. what the packages hold and depend on
dpkg-deb -c "$main_deb" | awk '{ print $6 }' >"$tmp/main.list"
dpkg-deb -c "$plugin_deb" | awk '{ print $6 }' >"$tmp/plugin.list"
keys=sparkkeys
for f in usr/bin/cloudmon usr/bin/$keys usr/bin/sparkdev usr/bin/sparkcloud \
         usr/share/man/man1/cloudmon.1.gz usr/share/man/man1/$keys.1.gz usr/share/man/man1/sparkdev.1.gz \
         usr/share/man/man1/sparkcloud.1.gz usr/share/bash-completion/completions/cloudmon \
         usr/share/bash-completion/completions/sparkkeys usr/share/bash-completion/completions/sparkdev \
         usr/share/bash-completion/completions/sparkcloud; do
    grep -qx "./$f" "$tmp/main.list" || fail "sparkwire lacks /$f"
done
echo "the key command is packaged as /usr/bin/$keys"
plugindir=$(pkg-config --variable=plugindir wireshark)/epan
grep -qx ".$plugindir/spark.so" "$tmp/plugin.list" || fail "the plugin package lacks $plugindir/spark.so"
grep -q 'spark.so' "$tmp/main.list" && fail "spark.so is in the sparkwire package"
wslib=$(dpkg -S "$(readlink -f "$(pkg-config --variable=libdir wireshark)/libwireshark.so")" | cut -d: -f1)
wsver=$(dpkg-query -W -f '${Version}' "$wslib")
depends=$(dpkg-deb -f "$plugin_deb" Depends)
echo "plugin Depends: $depends"
[[ $depends == *"$wslib (>= $wsver)"* ]] || fail "the plugin does not depend on $wslib (>= $wsver)"
[[ $depends == *"$wslib (<< "* ]] || fail "the plugin does not stop at the next Wireshark series"
echo "== apt-get install --simulate"
if ! apt-get install --simulate -q "$main_deb" "$plugin_deb" >"$tmp/apt.log" 2>&1; then
    cat "$tmp/apt.log"
    fail "apt cannot install the packages"
fi

# 3. lintian: no errors
echo "== lintian"
chmod -R a+rX "$tmp"
setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env \
    lintian --tag-display-limit 0 "$main_deb" "$plugin_deb" >"$tmp/lintian.log" 2>&1 || true
cat "$tmp/lintian.log"
grep -q '^E: ' "$tmp/lintian.log" && fail "lintian reports errors"

# 4. as installed: unpack, then in a private mount namespace put the packages' folders over the system's
root="$tmp/root"
dpkg -x "$main_deb" "$root"
dpkg -x "$plugin_deb" "$root"
mkdir "$tmp/work"
cp "$src/samples/healthy/capture.pcap" "$tmp/work/"
cp -r "$src/samples/healthy/keys" "$src/samples/healthy/keyfile" "$tmp/work/"
chmod -R a+rX "$tmp/work" "$root"
want=$(awk -F'\t' '$1 == "healthy" { print $3; exit }' "$src/samples/expected.tsv" 2>/dev/null || true)
[ -n "$want" ] || want=ok
user=nobody
cat >"$tmp/smoke.sh" <<INNER
set -eu
mount --bind "$root$plugindir" "$plugindir"
cd "$tmp/work"
echo "== tshark -G plugins (as $user)"
setpriv --reuid=$user --regid=nogroup --clear-groups --reset-env tshark -G plugins | grep spark.so
echo "== tshark on the sample (as $user)"
setpriv --reuid=$user --regid=nogroup --clear-groups --reset-env \
    tshark -n -r capture.pcap -o spark.keyfile:$tmp/work/keyfile -Y spark.verdict -T fields -e spark.verdict
echo "== cloudmon -r (as $user)"
setpriv --reuid=$user --regid=nogroup --clear-groups --reset-env \
    "$root/usr/bin/cloudmon" -r capture.pcap -k keyfile --batch
INNER
echo "== smoke test in a private mount namespace"
if ! unshare --mount --propagation private bash "$tmp/smoke.sh" >"$tmp/smoke.log" 2>&1; then
    cat "$tmp/smoke.log"
    fail "the smoke test failed"
else
    cat "$tmp/smoke.log"
    grep -q "$plugindir/spark.so" "$tmp/smoke.log" ||
        fail "tshark did not load spark.so from the system plugin folder"
    grep -qx "$want" "$tmp/smoke.log" || fail "tshark with the installed plugin did not show spark.verdict $want"
    sed -n '/== cloudmon/,$p' "$tmp/smoke.log" | grep -qE "verdicts: (.* )?$want 1\$" ||
        fail "the packaged cloudmon did not give the one connection the verdict $want"
fi
echo "$fails failures"
exit $((fails > 0))
