#!/usr/bin/env python3
"""Every --json line is valid UTF-8 JSON: the writer on hostile strings (control characters, quotes,
backslashes, broken, overlong and surrogate UTF-8, random bytes), and cloudmon on every sample (with
and without keys) and on damaged copies of them.  usage: test_json.py CLOUDMON JSON_LINES_HELPER"""
import json
import random
import subprocess
from cmtest import *

helper = sys.argv[2]


def expected(b):
    """What the writer promises: valid UTF-8 kept, every other byte as the text \\xNN."""
    out, i = [], 0
    while i < len(b):
        for n in (4, 3, 2, 1):
            try:
                ch = b[i:i + n].decode("utf-8", "strict")
            except UnicodeDecodeError:
                continue
            if len(ch) == 1:
                out.append(ch)
                i += n
                break
        else:
            out.append("\\x%02x" % b[i])
            i += 1
    return "".join(out)


def strict_lines(data, what):
    """Each line: strict UTF-8, then json.loads; returns the objects (None on the first bad line)."""
    objs = []
    for k, line in enumerate(data.split(b"\n")[:-1]):
        try:
            objs.append(json.loads(line.decode("utf-8", "strict")))
        except (UnicodeDecodeError, ValueError) as e:
            check(False, "%s: line %d is not valid UTF-8 JSON: %s: %r" % (what, k + 1, e, line[:200]))
            return None
    return objs


rng = random.Random(15)
hostile = [b"", b"plain", b'"quoted" and \\back\\slash', bytes(range(0, 32)), b"\x7f\x80\xff\xfe",
           b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
           "caf\u00e9 \u20ac \U0001f600".encode(), b"\xe2\x82", b"\xf0\x9f\x98", b"a\x00b", b"\\u0000",
           b"</script><b>&amp;", "\u2028\u2029".encode()]
hostile += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) for _ in range(2000)]
hostile += [bytes(rng.choice(b"\x00\x1f\"\\\x80\xbf\xc2\xe0\xed\xf0\xf4\xff aZ") for _ in range(rng.randrange(1, 40)))
            for _ in range(2000)]
p = subprocess.run([helper], input=b"".join(h.hex().encode() + b"\n" for h in hostile), capture_output=True,
                   timeout=60)
objs = strict_lines(p.stdout, "writer")
check(p.returncode == 0 and objs is not None and len(objs) == len(hostile),
      "the writer gives one valid UTF-8 JSON line per hostile string (%d)" % len(hostile))
if objs:
    wrong = [(h, o) for h, o in zip(hostile, objs) if o["s"] != expected(h) or o["n"] != len(h)]
    check(not wrong, "each string reads back exactly (valid UTF-8 as is, other bytes as \\xNN): %d wrong %s"
          % (len(wrong), wrong[:2]))
    check(all(o["x"] == -0.25 and o["t"] == 1700000000.5 and o["a"] == ['"', True] for o in objs),
          "numbers, times, arrays and booleans read back")
    raw_ctl = [l for l in p.stdout.split(b"\n") if any(c < 0x20 for c in l)]
    check(not raw_ctl, "no raw control byte in any line (%d)" % len(raw_ctl))

# cloudmon on every sample, with and without keys, and with --show-keys
total = 0
for name, cap, kf in samples():
    for args in ([], ["-k", kf] if kf else None, ["-k", kf, "--show-keys"] if kf else None):
        if args is None:
            continue
        pr = subprocess.run([CLOUDMON, "-r", cap, "--json"] + args, capture_output=True, timeout=60)
        objs = strict_lines(pr.stdout, "%s %s" % (name, " ".join(args)))
        if objs is None or pr.returncode != 0 or not objs or objs[-1].get("type") != "summary":
            check(False, "%s %s: cloudmon ends with a summary (exit %d)" % (name, args, pr.returncode))
        else:
            total += len(objs)
check(total > 500, "every line of every sample's --json is valid UTF-8 JSON (%d lines)" % total)

# damaged copies: random bytes changed in the samples with keys, so decrypted garbage reaches the outputs
d = tmpdir()
bad = 0
with_keys = [s for s in samples() if s[2]]
for k in range(24 if with_keys else 0):
    name, cap, kf = with_keys[k % len(with_keys)]
    data = bytearray(open(cap, "rb").read())
    for _ in range(rng.randrange(1, 30)):
        i = rng.randrange(24 + 16, len(data))
        data[i] = rng.randrange(256)
    mut = os.path.join(d, "mut%d.pcap" % k)
    open(mut, "wb").write(bytes(data))
    pr = subprocess.run([CLOUDMON, "-r", mut, "-k", kf, "--json", "--show-keys"], capture_output=True, timeout=60)
    if pr.returncode not in (0, 2) or strict_lines(pr.stdout, "damaged %s #%d" % (name, k)) is None:
        bad += 1
check(bad == 0, "damaged captures: every line still valid UTF-8 JSON, exit 0 or 2 (%d bad)" % bad)
done()
