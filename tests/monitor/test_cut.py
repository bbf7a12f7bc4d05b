#!/usr/bin/env python3
"""cloudmon on captures that lack bytes or never had a connection: packets cut by the snapshot length (the
missing bytes are gaps, never judged, and one warning says why), a SYN refused by an RST, and a link type it
does not read (named by its DLT number)."""
import os
import struct
from cmtest import *


def read_records(path):
    data = open(path, "rb").read()
    assert struct.unpack("<I", data[:4])[0] == 0xa1b2c3d4, "little-endian microsecond pcap expected"
    head, recs, o = data[:24], [], 24
    while o + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[o:o + 16])
        recs.append((sec, usec, orig, data[o + 16:o + 16 + incl]))
        o += 16 + incl
    return head, recs


def write_records(path, head, recs, snap=None):
    with open(path, "wb") as f:
        f.write(head)
        for sec, usec, orig, b in recs:
            if snap is not None:
                b = b[:snap]
            f.write(struct.pack("<IIII", sec, usec, len(b), orig) + b)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def tcp_frame(src, dst, sp, dp, seq, ack, flags):
    tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 5 << 4, flags, 65495 if flags & 2 else 0, 0, 0)
    tcp = tcp[:16] + struct.pack("!H", csum(struct.pack("!4s4sBBH", src, dst, 0, 6, len(tcp)) + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return b"\0" * 12 + b"\x08\x00" + ip + tcp


d = tmpdir()
healthy = os.path.join(SAMPLES, "healthy", "capture.pcap")
keyfile = os.path.join(SAMPLES, "healthy", "keyfile")
if not os.path.isfile(healthy):
    skip("samples/healthy is missing")
head, recs = read_records(healthy)

# ---- snapshot length 80: every segment with data loses bytes ----
cut = os.path.join(d, "cut80.pcap")
write_records(cut, head, recs, snap=80)
for mode in ("--json", "--batch"):
    rc, out, err = run(["-r", cut, "-k", keyfile, mode])
    lines = [l for l in err.splitlines() if l.strip()]
    check(rc == 0, "snaplen 80 %s: exit 0 (%d)" % (mode, rc))
    check(len(lines) == 1 and "snapshot length (80 bytes)" in lines[0] and "-s 0" in lines[0],
          "snaplen 80 %s: one warning line naming the 80-byte snapshot length and -s 0: %r" % (mode, err[:300]))
rc, out, err = run(["-r", cut, "-k", keyfile, "--json"])
objs = jsonl(out)
verdicts = [o for o in objs if o["type"] == "verdict"]
gaps = [o for o in objs if o["type"] == "finding" and o["finding"] == "gap"]
check(verdicts and all(v["verdict"] != "not-spark" for v in verdicts),
      "snaplen 80: no not-spark verdict judged on bytes never captured: %s" % [v["verdict"] for v in verdicts])
check(verdicts and not verdicts[-1]["proven"] and "the handshake could not be read" in verdicts[-1]["evidence"]
      and "missing from the capture" in verdicts[-1]["evidence"],
      "snaplen 80: the final verdict says the handshake could not be read: %r" % (verdicts[-1]["evidence"] if verdicts else None))
check(len(gaps) >= 3 and "26 bytes" in gaps[0]["evidence"],
      "snaplen 80: the cut bytes are gap findings (the nonce lost 26 bytes): %r" % (gaps[0]["evidence"] if gaps else None))
steps = [o["step"] for o in objs if o["type"] == "step"]
check(steps[:3] == ["nonce", "id-block", "session-block"], "snaplen 80: handshake blocks still found by their size: %s" % steps[:3])

# whole packets: no warning
rc, out, err = run(["-r", healthy, "-k", keyfile, "--json"])
check(rc == 0 and err.strip() == "", "healthy sample: nothing on stderr (%r)" % err[:200])

# ---- connection refused: SYN, then RST-ACK from the cloud port ----
refused = os.path.join(d, "refused.pcap")
a = bytes([10, 0, 0, 2])
b = bytes([10, 0, 0, 1])
frames = [tcp_frame(a, b, 40000, 5683, 1000, 0, 0x02), tcp_frame(b, a, 5683, 40000, 0, 1001, 0x14)]
write_records(refused, struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1),
              [(1700000000, 10 * i, len(f), f) for i, f in enumerate(frames)])
rc, out, err = run(["-r", refused, "--json"])
objs = jsonl(out)
verdicts = [o for o in objs if o["type"] == "verdict"]
check(rc == 0 and err == "", "refused: exit 0, nothing on stderr (%d, %r)" % (rc, err[:200]))
check(len(verdicts) == 1 and verdicts[0]["verdict"] == "refused" and verdicts[0]["final"],
      "refused: one final refused verdict: %s" % [(v["verdict"], v["final"]) for v in verdicts])
ev = verdicts[0]["evidence"] if verdicts else ""
check("refused" in ev and "RST" in ev and "accepted" not in ev,
      "refused: the evidence says the connection was refused, not accepted: %r" % ev)
# the same SYN answered by a SYN-ACK, then reset by the cloud before any byte: not a refusal
frames = [tcp_frame(a, b, 40000, 5683, 1000, 0, 0x02), tcp_frame(b, a, 5683, 40000, 5000, 1001, 0x12),
          tcp_frame(a, b, 40000, 5683, 1001, 5001, 0x10), tcp_frame(b, a, 5683, 40000, 5001, 1001, 0x14)]
accepted = os.path.join(d, "accepted-reset.pcap")
write_records(accepted, struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1),
              [(1700000000, 10 * i, len(f), f) for i, f in enumerate(frames)])
rc, out, err = run(["-r", accepted, "--json"])
verdicts = [o for o in jsonl(out) if o["type"] == "verdict"]
check(verdicts and "refused" not in verdicts[-1]["evidence"],
      "accepted then reset: not called refused: %r" % (verdicts[-1]["evidence"] if verdicts else None))

# ---- USER0 (DLT 147): named by number, with the supported types ----
user0 = os.path.join(d, "user0.pcap")
write_records(user0, head[:20] + struct.pack("<I", 147), recs)
rc, out, err = run(["-r", user0])
lines = [l for l in err.splitlines() if l.strip()]
check(rc != 0 and len(lines) == 1, "user0: one error line and a non-zero exit (%d, %r)" % (rc, err[:300]))
check("user0.pcap" in err and "DLT 147" in err and "USER0" in err and "not supported" in err
      and "Ethernet (DLT 1)" in err and "unknown" not in err,
      "user0: names DLT 147 and the supported link types: %r" % err[:400])
done()
