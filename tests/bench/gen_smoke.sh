#!/bin/bash
# Smoke test of the capture generator: 2 devices x 3 messages, twice with the same seed (same bytes),
# then cloudmon (when built) must report 2 connections, both with verdict ok, with the generated keyfile.
set -u
gen=${1:?usage: gen_smoke.sh SPARKWIRE_GEN [CLOUDMON]}
cm=${2:-}
tmp=$(mktemp -d /tmp/sparkwire-gen-smoke.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$gen" -o "$tmp/a" -n 2 -m 3 -s 7 || fail "generator exit $?"
"$gen" -o "$tmp/b" -n 2 -m 3 -s 7 2>/dev/null || fail "generator exit $? (second run)"
[ -s "$tmp/a/capture.pcap" ] || fail "no capture written"
cmp -s "$tmp/a/capture.pcap" "$tmp/b/capture.pcap" || fail "same seed, different captures"
cmp -s "$tmp/a/keys/device-00.der" "$tmp/b/keys/device-00.der" || fail "same seed, different keys"
grep -c '^device ' "$tmp/a/keyfile" | grep -qx 2 || fail "keyfile does not name 2 devices: $(cat "$tmp/a/keyfile")"
echo "ok   generator: same seed, same capture and keys; keyfile names 2 devices"
if [ -z "$cm" ] || [ ! -x "$cm" ]; then
    echo "cloudmon not built: generator checked alone"
    exit 0
fi
out=$("$cm" -r "$tmp/a/capture.pcap" -k "$tmp/a/keyfile" --json) || fail "cloudmon exit $?"
summary=$(printf '%s\n' "$out" | tail -n 1)
echo "$summary"
python3 - "$summary" <<'PY' || exit 1
import json, sys
s = json.loads(sys.argv[1])
ok = s.get("type") == "summary" and s.get("connections") == 2 and s.get("verdicts") == {"ok": 2} \
    and s.get("messages", 0) >= 2 * (3 + 2)
print(("ok  " if ok else "FAIL") + " cloudmon: 2 connections, verdicts %s, %s messages" % (s.get("verdicts"), s.get("messages")))
sys.exit(0 if ok else 1)
PY
