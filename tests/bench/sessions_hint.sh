#!/bin/bash
# Session lines with a block= hint (the SHA-256 of the connection's session block E, first 8 bytes): with
# the generator's hinted lines every connection decrypts the same messages as with the same lines unhinted;
# a hint selects the line (two lines of the same material, told apart only by the hint, give the hinted
# line's device id, where without the hint neither is taken); a wrong hint is rejected by the trial
# decryption and never decrypts with the wrong line; a cloudmon export writes the hints back.
set -u
gen=${1:?usage: sessions_hint.sh SPARKWIRE_GEN CLOUDMON}
cm=${2:?usage: sessions_hint.sh SPARKWIRE_GEN CLOUDMON}
tmp=$(mktemp -d /tmp/sparkwire-hint.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$gen" -o "$tmp/g" -n 12 -m 4 -s 7 2>/dev/null || { echo "FAIL: generator exit $?"; exit 1; }
python3 - "$cm" "$tmp" <<'PY'
import json, os, re, subprocess, sys
cm, tmp = sys.argv[1], sys.argv[2]
cap = os.path.join(tmp, "g", "capture.pcap")
ok = True
def check(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok &= bool(cond)

def run(lines, extra=()):
    kf = os.path.join(tmp, "kf")
    with open(kf, "w") as f:
        f.write("".join(l + "\n" for l in lines))
    p = subprocess.run([cm, "-r", cap, "-k", kf, "--json", *extra], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        print("cloudmon exit %d: %s" % (p.returncode, p.stderr.strip()))
        return None
    return [json.loads(l) for l in p.stdout.splitlines()]

def per_conn(out):
    """conn -> (device id of its messages, messages) """
    d = {}
    for l in out:
        if l["type"] == "message":
            d.setdefault(l["conn"], []).append(l)
    return d

sess = [l.split() for l in open(os.path.join(tmp, "g", "sessions")) if l.startswith("session ")]
check(len(sess) == 12 and all(len(s) == 4 and re.fullmatch(r"block=[0-9a-f]{16}", s[3]) for s in sess),
      "the generator writes a block= hint on each of its %d session lines" % len(sess))
hinted = [" ".join(s) for s in sess]
plain = [" ".join(s[:3]) for s in sess]

a, b = run(plain), run(hinted)
check(a is not None and b is not None, "cloudmon reads hinted and unhinted session lines")
ma = [l for l in a or [] if l["type"] == "message"]
mb = [l for l in b or [] if l["type"] == "message"]
check(len(ma) >= 12 * 4 and ma == mb, "hinted lines decrypt the same %d messages as unhinted ones" % len(ma))
check(a == b, "and every output line is the same")

# the hint selects: two lines of one connection's material under two ids; unhinted, both fit alike and
# neither is taken; with the hint on either, that line is taken (its id on the messages)
first = per_conn(b)
conn0 = min(first)
id0 = first[conn0][0]["device_id"]
s0 = next(s for s in sess if s[1] == id0)
others = [" ".join(s[:3]) for s in sess if s[1] != id0]
twin = "ffffffffffffffffffffffff"
both = run(others + ["session %s %s" % (id0, s0[2]), "session %s %s" % (twin, s0[2])])
check(both is not None and conn0 not in per_conn(both),
      "two lines that fit alike without a hint: the connection is not decrypted")
for who, lines in (("its own id", ["session %s %s %s" % (id0, s0[2], s0[3]), "session %s %s" % (twin, s0[2])]),
                   ("the twin id", ["session %s %s" % (id0, s0[2]), "session %s %s %s" % (twin, s0[2], s0[3])])):
    out = run(others + lines)
    got = per_conn(out or [])
    want = twin if who == "the twin id" else id0
    check(conn0 in got and {m["device_id"] for m in got[conn0]} == {want} and
          [dict(m, device_id=0) for m in got[conn0]] == [dict(m, device_id=0) for m in first[conn0]],
          "the hint on the line of %s selects it: the same %d messages, under %s" % (who, len(first[conn0]), want))

# a wrong hint: connection 0's hint on another device's line. The trial rejects that line and finds the
# right one; with the right line absent, the connection stays undecrypted (never decrypted with the wrong line)
s1 = next(s for s in sess if s[1] != id0)
wrong = [" ".join(s[:3]) for s in sess if s[1] not in (id0, s1[1])] + ["session %s %s %s" % (s1[1], s1[2], s0[3])]
out = run(wrong + ["session %s %s" % (id0, s0[2])])
check(out is not None and [l for l in out if l["type"] == "message"] == ma,
      "a wrong hint falls back to the trial: the same %d messages, each under its own device" % len(ma))
out = run(wrong)
got = per_conn(out or [])
check(out is not None and conn0 not in got and any(m["device_id"] == s1[1] for c in got.values() for m in c),
      "without the right line the hinted connection is not decrypted; the wrong line's own connection is")
v = [l for l in out or [] if l["type"] == "verdict" and l["conn"] == conn0]
check(v and all(l["device_id"] != s1[1] for l in v if "device_id" in l), "and is never given the wrong line's id")

# what cloudmon exports carries the hints, which load back
exp = os.path.join(tmp, "exported")
run(hinted, ("-q", "--export-sessions", exp))
back = sorted(l.split() for l in open(exp) if l.startswith("session "))
check(back == sorted(sess), "--export-sessions writes the same %d lines, hints included" % len(back))

# malformed hints stop the load with the line named
for bad in ("block=12", "block=zz" + "0" * 14, "blk=" + "0" * 16):
    kf = os.path.join(tmp, "bad")
    open(kf, "w").write("session %s %s %s\n" % (s0[1], s0[2], bad))
    p = subprocess.run([cm, "-r", cap, "-k", kf, "-q"], capture_output=True, text=True, timeout=60)
    check(p.returncode != 0 and "bad:1:" in p.stderr and "block=" in p.stderr and p.stderr.count("\n") == 1,
          "malformed hint %s: one line naming the line and the fix (%s)" % (bad, p.stderr.strip()[-60:]))
sys.exit(0 if ok else 1)
PY
