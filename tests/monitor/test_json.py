#!/usr/bin/env python3
"""Every --json line is valid UTF-8 JSON: the writer on hostile strings (control characters, quotes,
backslashes, broken, overlong and surrogate UTF-8, random bytes), and cloudmon on every sample (with
and without keys), on damaged copies of them, and on a crafted event with hostile bytes in its name and
data.  usage: test_json.py CLOUDMON JSON_LINES_HELPER"""
import json
import random
import struct
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

# hostile strings from the wire: an event frame with control characters, quotes, a backslash and bytes
# that are not UTF-8 in its name and data, encrypted with the healthy sample's session and put into its
# device stream before the FIN; every line stays valid UTF-8 JSON and no raw control byte reaches
# the text lines either
def craft_hostile(cap, session, out):
    sys.path.insert(0, HERE)
    import pcaptool
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    link, pkts = pcaptool.read_pcap(cap)
    segs = [pcaptool.Seg(link, ts, fr) for ts, fr in pkts]
    dev = [x for x in segs if x.tcp and x.ports[1] == 5683]
    isn = [x for x in dev if x.flags & 2][0].seq + 1
    stream = bytearray()
    for x in dev:
        off = (x.seq - isn) & 0xffffffff
        if x.payload and off < 1 << 24:
            stream[off:off + len(x.payload)] = x.payload
    pos, iv = 256, session[16:32]
    while pos + 2 <= len(stream):
        n = stream[pos] << 8 | stream[pos + 1]
        iv = bytes(stream[pos + 2:pos + 18])
        pos += 2 + n
    name = b'bad\xff"\\\x01\x1b[31mname\xc0\x80'
    data = b'data \xfe\x00\x7f "q" \\ \xe2\x82 \xed\xa0\x80'
    coap = bytes([0x51, 0x02, 0x77, 0x77, 0x01, 0xb1]) + b"e" + bytes([0x0d, len(name) - 13]) + name + b"\xff" + data
    pad = 16 - len(coap) % 16
    enc = Cipher(algorithms.AES(session[:16]), modes.CBC(iv)).encryptor()
    ct = enc.update(coap + bytes([pad]) * pad) + enc.finalize()
    frame = struct.pack(">H", len(ct)) + ct
    end = isn + len(stream)
    fin = [x for x in dev if x.flags & 1][0]
    outp = []
    for x, (ts, fr) in zip(segs, pkts):
        if x is fin:
            outp.append([ts - 0.0005, fin.build(end, frame, 0x18)])
        if x.tcp and x.ports[1] == 5683 and ((x.seq - end) & 0xffffffff) < 1 << 24:
            fr = x.build(x.seq + len(frame), x.payload)
        outp.append([ts, fr])
    pcaptool.write_pcap(out, link, outp)


if "healthy" in {s[0] for s in samples()}:
    name, cap, kf = [s for s in samples() if s[0] == "healthy"][0]
    sess = os.path.join(d, "healthy.sessions")
    subprocess.run([CLOUDMON, "-r", cap, "-k", kf, "-q", "--export-sessions", sess], check=True, capture_output=True)
    m = bytes.fromhex([l.split()[2] for l in open(sess) if l.startswith("session ")][0])
    hostile_cap = os.path.join(d, "hostile-event.pcap")
    craft_hostile(cap, m, hostile_cap)
    pr = subprocess.run([CLOUDMON, "-r", hostile_cap, "-k", kf, "--json"], capture_output=True, timeout=60)
    objs = strict_lines(pr.stdout, "hostile event")
    ev = [o for o in objs or [] if o.get("type") == "message" and o.get("message") == "event" and "bad" in o.get("name", "")]
    check(pr.returncode == 0 and objs is not None and len(ev) == 1,
          "a crafted event with hostile bytes in its name and data: every line valid UTF-8 JSON (%d events found)" % len(ev))
    if ev:
        check(not any(ord(c) < 32 for k in ("name", "value", "summary") for c in ev[0].get(k, "")),
              "its name, value and summary hold no control character: %r" % ev[0].get("name"))
    pr = subprocess.run([CLOUDMON, "-r", hostile_cap, "-k", kf, "--batch"], capture_output=True, timeout=60)
    bad_lines = [l for l in pr.stdout.split(b"\n") if any(c < 0x20 and c != 0x09 for c in l)]
    check(pr.returncode == 0 and b"bad" in pr.stdout and not bad_lines,
          "the text lines carry it without raw control bytes (%d lines with them)" % len(bad_lines))
done()
