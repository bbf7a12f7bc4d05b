#!/bin/bash
# Session lines without device ids to tell which applies: the generator's DIR/sessions alone (no server
# private key, so no id block is read) must decrypt every message of its capture, the same messages the
# full keyfile decrypts, with every connection ok. 40 devices: more session lines than any fixed number
# of candidates a tracker might try.
set -u
gen=${1:?usage: sessions_only.sh SPARKWIRE_GEN CLOUDMON}
cm=${2:?usage: sessions_only.sh SPARKWIRE_GEN CLOUDMON}
tmp=$(mktemp -d /tmp/sparkwire-sessions.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$gen" -o "$tmp/g" -n 40 -m 6 -s 11 --key-pool 4 2>/dev/null || { echo "FAIL: generator exit $?"; exit 1; }
[ "$(grep -c '^session ' "$tmp/g/sessions")" = 40 ] || { echo "FAIL: the generator wrote no 40 session lines"; exit 1; }
"$cm" -r "$tmp/g/capture.pcap" -k "$tmp/g/keyfile" --json >"$tmp/full.jsonl" || { echo "FAIL: cloudmon exit $?"; exit 1; }
"$cm" -r "$tmp/g/capture.pcap" -k "$tmp/g/sessions" --json >"$tmp/sess.jsonl" || { echo "FAIL: cloudmon exit $?"; exit 1; }
python3 - "$tmp/full.jsonl" "$tmp/sess.jsonl" <<'PY'
import json, sys
def load(p):
    lines = [json.loads(l) for l in open(p)]
    msgs = [l for l in lines if l["type"] == "message"]
    summ = [l for l in lines if l["type"] == "summary"][-1]
    return msgs, summ
full, fs = load(sys.argv[1])
sess, ss = load(sys.argv[2])
ok = True
def check(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok &= cond
check(fs["verdicts"] == {"ok": 40} and fs["messages"] == len(full) and len(full) >= 40 * (6 + 2),
      "full keyfile: %s messages, verdicts %s" % (len(full), fs["verdicts"]))
check(ss["verdicts"] == {"ok": 40}, "session lines only: verdicts %s" % ss["verdicts"])
check(ss["messages"] == fs["messages"], "session lines only: %s messages of %s" % (ss["messages"], fs["messages"]))
check(ss["findings"] == 0, "session lines only: %s findings" % ss["findings"])
check(sess == full, "every message line the same as with the full keyfile (device ids, kinds, contents)")
sys.exit(0 if ok else 1)
PY
