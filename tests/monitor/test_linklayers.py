#!/usr/bin/env python3
"""cloudmon finds the cloud connection behind every link-layer wrapping with its default filter, and gives
the same story as on the plain capture: QinQ (two and three VLAN tags), IPv6 extension headers, IPv4 and
IPv6 fragments (out of order, repeated), a pcapng file whose interfaces have different link types (checked
against tshark), and a frame whose IP length claims more than the frame holds."""
import os
import struct
import subprocess
from cmtest import *
import pcaptool as pt

d = tmpdir()
HEALTHY = os.path.join(SAMPLES, "healthy")
cap, kf = os.path.join(HEALTHY, "capture.pcap"), os.path.join(HEALTHY, "keyfile")


def story(path, extra=()):
    rc, out, err = run(["-r", path, "--json"] + list(extra))
    objs = jsonl(out) if rc == 0 else []
    return rc, err, objs


def final_verdicts(objs):
    return sorted((o["verdict"], o["proven"]) for o in objs if o["type"] == "verdict" and o["final"])


rc, err, ref = story(cap, ["-k", kf])
check(rc == 0 and final_verdicts(ref) == [("ok", True)], "healthy sample: ok (proven) as reference")
ref_shape = shape_by_dir(ref)


def same_as_ref(name, path, want_err=None):
    rc, err, objs = story(path, ["-k", kf])
    check(rc == 0, "%s: exit 0 (%d %s)" % (name, rc, err.strip()[:200]))
    if want_err is None:
        check(err == "", "%s: nothing on stderr (%r)" % (name, err[:200]))
    else:
        check(want_err in err, "%s: stderr says %r (%r)" % (name, want_err, err[:300]))
    check(shape_by_dir(objs) == ref_shape, "%s: same steps, messages, findings and verdicts as the plain capture" % name)
    return objs


# ---- VLAN stacks ----
for tags in ((0x88a8, 0x8100), (0x88a8, 0x9100, 0x8100)):
    p = os.path.join(d, "vlan%d.pcap" % len(tags))

    def qinq(link, b, tags=tags):
        macs, ip = pt.split_frame(link, b)
        return [pt.eth(macs, tags, ip)]
    pt.rewrite(cap, p, qinq)
    same_as_ref("%d VLAN tags %s" % (len(tags), "/".join("%04x" % t for t in tags)), p)

# ---- IPv4 fragments, last first, one repeated before the datagram is whole ----
p = os.path.join(d, "frag4.pcap")


def fr4(link, b):
    macs, ip = pt.split_frame(link, b)
    hl, proto = pt.tcp_of(ip)
    if proto != 6 or len(ip) - hl <= 48:
        return [pt.eth(macs, (), ip)]
    frs = pt.frag4(ip, 48)
    held.append(len(frs))           # all but the one completing the datagram, plus the repeat
    return [pt.eth(macs, (0x8100,), f) for f in frs[:1] + frs]
held = []
pt.rewrite(cap, p, fr4)
link, pk = pt.read_pcap(p)
check(len(pk) > 60, "IPv4 fragments: the capture now has %d frames (47 before)" % len(pk))
objs = same_as_ref("IPv4 fragments behind a VLAN tag, out of order and repeated", p)


def summary_of(objs):
    return objs[-1] if objs and objs[-1]["type"] == "summary" else {}


sm = summary_of(objs)
check(sm.get("fragments_held") == sum(held) and "fragments_ignored" not in sm,
      "IPv4 fragments: the summary counts %d fragments held for reassembly (%r)" % (sum(held), sm))
check(sm.get("tcp_packets") == summary_of(ref).get("tcp_packets"),
      "IPv4 fragments: each reassembled datagram counts as one TCP packet")
check(summary_of(ref).get("fragments_held") == 0, "the plain capture holds no fragments")
rc, out, _ = run(["-r", p, "-k", kf])
check(rc == 0 and "; %d IP fragments held for reassembly" % sum(held) in out,
      "IPv4 fragments: the text summary says so (%r)" % out.strip().splitlines()[-1:])

# ---- fragments that disagree: the datagram is dropped and said so ----
p = os.path.join(d, "frag4-evil.pcap")
evil_done = []
evil_n = []


def fr4_evil(link, b):
    macs, ip = pt.split_frame(link, b)
    hl, proto = pt.tcp_of(ip)
    if proto != 6 or len(ip) - hl <= 200 or evil_done:
        return [pt.eth(macs, (), ip)]
    evil_done.append(1)
    frs = pt.frag4(ip, 64)
    evil_n.append(len(frs) + 1)
    bad = bytearray(frs[-1])                         # the first fragment, other bytes at the end
    bad[-1] ^= 0xff
    return [pt.eth(macs, (), f) for f in frs[-1:] + [bytes(bad)] + frs[:-1]]
pt.rewrite(cap, p, fr4_evil)
rc, err, objs = story(p, ["-k", kf])
check(rc == 0 and "1 fragmented datagrams were not reassembled: 1 with overlapping fragments that disagree" in err,
      "disagreeing fragments: the datagram is dropped with a warning (%r)" % err.strip()[:300])
check(any(o["type"] == "finding" and o["finding"] == "gap" for o in objs),
      "disagreeing fragments: their bytes are a gap, never taken from either copy")
check(summary_of(objs).get("fragments_held") == evil_n[0],
      "disagreeing fragments: all %d of them were held, none completed a datagram" % evil_n[0])

# ---- IPv6: extension headers, fragments ----
v6 = os.path.join(d, "v6.pcap")
tool("synth", v6, "en10mb", "ipv6")
rc, err, ref6 = story(v6)
check(rc == 0 and ref6 and ref6[-1]["packets"] == 17, "IPv6 synthetic reference: 17 packets")
ref6_shape = shape_by_dir(ref6)
ident = [0]


def v6case(name, fn):
    p = os.path.join(d, name.replace(" ", "_") + ".pcap")
    pt.rewrite(v6, p, fn)
    rc, err, objs = story(p)
    check(rc == 0 and err == "", "IPv6 %s: exit 0, nothing on stderr (%d %r)" % (name, rc, err[:200]))
    check(shape_by_dir(objs) == ref6_shape, "IPv6 %s: same story as plain IPv6" % name)
    return objs


v6case("extension headers", lambda link, b: [pt.eth(b[:12], (), pt.ext6(pt.split_frame(link, b)[1]))])


def fr6(link, b):
    macs, ip = pt.split_frame(link, b)
    if len(ip) - 40 <= 64:
        return [pt.eth(macs, (0x88a8, 0x8100), ip)]
    ident[0] += 1
    return [pt.eth(macs, (0x88a8, 0x8100), f) for f in pt.frag6(ip, 64, ident[0])]
v6case("fragments behind QinQ", fr6)

# ---- a pcapng file with Ethernet and raw IP interfaces ----
raw = os.path.join(d, "raw.pcap")
tool("synth", raw, "raw")
mixed = os.path.join(d, "mixed.pcapng")
mc = subprocess.run(["mergecap", "-F", "pcapng", "-w", mixed, v6, raw], capture_output=True)
if not check(mc.returncode == 0, "mergecap writes the mixed capture (%s)" % mc.stderr.decode()[:200]):
    done()
ts = subprocess.run(["tshark", "-r", mixed, "-T", "fields", "-e", "frame.protocols"], capture_output=True)
check(ts.returncode == 0 and ts.stdout.decode().count("\n") == 34, "tshark reads the mixed-link pcapng: 34 frames")
rc, err, objs = story(mixed)
check(rc == 0 and err == "", "mixed-link pcapng: read without error (%d %r)" % (rc, err[:200]))
summ = objs[-1] if objs else {}
check(summ.get("packets") == 34 and summ.get("connections") == 2,
      "mixed-link pcapng: 34 packets, 2 connections (%s)" % summ)
check(sorted(o["client"] for o in objs if o["type"] == "verdict" and o["final"]) == ["10.0.0.2:40001", "[fd00::2]:40001"],
      "mixed-link pcapng: one final verdict for the IPv6 Ethernet and one for the raw IPv4 connection")
rc, err, objs = story(mixed, ["-f", "ip6"])
check(rc == 0 and objs and objs[-1].get("connections") == 1, "mixed-link pcapng: -f applies per link type (ip6: 1 connection)")

# ---- a pcapng with nanosecond timestamps (if_tsresol 9): the same times and story ----
ns_pcap, ns_ng = os.path.join(d, "ns.pcap"), os.path.join(d, "ns.pcapng")
subprocess.run(["editcap", "-F", "nsecpcap", cap, ns_pcap], check=True)
subprocess.run(["editcap", "-F", "pcapng", ns_pcap, ns_ng], check=True)
objs = same_as_ref("nanosecond pcapng", ns_ng)
check([o.get("time") for o in objs][:5] == [o.get("time") for o in ref][:5], "nanosecond pcapng: the same times")

# ---- the default filter keeps the cloud port only, also for what the kernel filter had to pass ----
other = os.path.join(d, "other.pcap")


def to_443(link, b):
    macs, ip = pt.split_frame(link, b)
    return [pt.eth(macs, (0x88a8, 0x8100), pt.move_port(ip, 5683, 443))]
pt.rewrite(v6, other, to_443)
both = os.path.join(d, "both.pcapng")
subprocess.run(["mergecap", "-F", "pcapng", "-w", both, v6, other], check=True)
rc, err, objs = story(both)
check(rc == 0 and objs and objs[-1]["packets"] == 17 and objs[-1]["connections"] == 1,
      "default filter: the QinQ IPv6 connection on port 443 is left out (%s)" % (objs[-1] if objs else err))
rc, err, objs = story(both, ["-f", ""])
check(rc == 0 and objs and objs[-1]["packets"] == 34 and objs[-1]["connections"] == 2,
      "-f '': every packet, both connections (%s)" % (objs[-1] if objs else err))

# ---- a damaged pcapng: the packets before the damage, and one line naming it ----
data = open(mixed, "rb").read()
for name, bad, want in (("truncated", data[:-10], "ends inside a block (truncated)"),
                        ("bad block length", data[:-4] + b"\x01\x00\x00\x00", "two lengths differ")):
    p = os.path.join(d, "bad.pcapng")
    open(p, "wb").write(bad)
    rc, out, err = run(["-r", p, "--json"])
    objs = jsonl(out)
    check(rc == 2 and want in err and "after 33 packets" in err and err.count("\n") == 1,
          "pcapng %s: exit 2, one line (%r)" % (name, err.strip()))
    check(objs and objs[-1]["type"] == "summary" and objs[-1]["packets"] == 33,
          "pcapng %s: the 33 packets before the damage are reported" % name)

# ---- an ACK whose IP length claims 1500 bytes: bogus, not 1448 missing bytes ----
p = os.path.join(d, "bogus.pcap")
link, pkts = pt.read_pcap(cap)
segs = [pt.Seg(link, ts, b) for ts, b in pkts]
idx = next(i for i, s in enumerate(segs) if i > 3 and s.tcp and not s.payload and s.flags == 0x10)
b = bytearray(pkts[idx][1])
o = pt.ip_offset(link, b)
b[o + 2:o + 4] = struct.pack(">H", 1500)
pkts.insert(idx + 1, [pkts[idx][0], bytes(b)])
pt.write_pcap(p, link, pkts)
objs = same_as_ref("an ACK claiming an IP length of 1500", p, want_err="taken as bogus")
check(not any(o["type"] == "finding" and o["finding"] == "gap" for o in objs), "bogus IP length: no gap reported")

done()
