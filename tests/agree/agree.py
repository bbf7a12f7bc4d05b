#!/usr/bin/env python3
"""Both frontends, one story: every sample, every adversity case and a seeded set of damaged captures go
through tshark with the plugin and through cloudmon --json; each connection must get the same final
verdict from both (its code and whether a key proved it), and where the damage leaves the wire's meaning
intact, the sample's verdict.

  agree.py PLUGIN CLOUDMON          (AGREE_VERBOSE=1 prints every connection's verdicts)

Cases: the samples as captured; tests/monitor's adversity rewrites; two VLAN tags; IPv4 fragments; IPv6
with extension headers; segments reversed in pairs and windows; timestamps in ms and s; an RST outside
the window and an exact one after every packet; a bogus IP length on every pure ACK; a garbage copy before
every data segment; a plausible damaged frame length prefix in each direction; each side's Hello read from a
garbage copy before its real copy comes (read again: the verdict as captured, as strongly proven); each
Hello's length prefix damaged and the segment sent again; bit flips; editcap -E at
three rates with fixed seeds; the capture ending inside the handshake; a SYN flood next to a live session;
a pcapng with two link types.
The cases are built here from the samples (plain struct-level pcap rewriting, tests/monitor/pcaptool.py).
Variants of one sample go into one capture (one tshark and one cloudmon run per sample): each variant's
device gets its own address 10.V.V.K, so every connection is told apart by its device end. Cases that
need the capture to end at a point (truncation) or a crowd of connections (the SYN flood) get captures of
their own. To add a case: write a function that returns variants (see VARIANT_CASES) or captures."""
import ipaddress
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("SPARKWIRE_SOURCE_ROOT", os.path.abspath(os.path.join(HERE, "..", "..")))
sys.path.insert(0, os.path.join(SRC, "tests", "monitor"))
sys.path.insert(0, os.path.join(SRC, "tests", "dissector"))
import pcaptool  # noqa: E402
import spark_tshark  # noqa: E402

SAMPLES = os.path.join(SRC, "samples")
failures = []
counts = {"connections": 0, "with_expectation": 0, "captures": 0}


def check(cond, what):
    if not cond:
        print("FAIL", what)
        failures.append(what)
    return cond


# ---- packets ----------------------------------------------------------------------------------------

class Pkt:
    """One frame of a sample, parsed enough to rewrite its device address, sequence numbers and payload."""

    def __init__(self, link, ts, frame):
        self.link, self.ts, self.frame = link, ts, bytes(frame)
        try:
            self.seg = pcaptool.Seg(link, ts, frame)
        except (IndexError, struct.error):
            self.seg = pcaptool.Seg(-1, ts, b"")     # damaged beyond parsing: kept as it is
        self.orig_len = None            # wire length when the capture cut the frame

    @property
    def tcp(self):
        return self.seg.tcp is not None and self.seg.ver == 4

    def copy(self, frame=None, ts=None):
        p = Pkt(self.link, self.ts if ts is None else ts, self.frame if frame is None else frame)
        p.orig_len = self.orig_len
        return p


def set_ip(frame, o, src, dst):
    b = bytearray(frame)
    b[o + 12:o + 16] = src
    b[o + 16:o + 20] = dst
    b[o + 10:o + 12] = b"\0\0"
    ihl = (b[o] & 15) * 4
    b[o + 10:o + 12] = struct.pack(">H", pcaptool.csum(bytes(b[o:o + ihl])))
    return bytes(b)


def readdress(pkts, cloud_port, dev_ip):
    """The device end of every TCP packet gets dev_ip (the cloud keeps its address)."""
    out = []
    for p in pkts:
        s = p.seg
        if not p.tcp:
            out.append(p)
            continue
        o = s.ipo
        src, dst = p.frame[o + 12:o + 16], p.frame[o + 16:o + 20]
        if s.ports[1] == cloud_port:
            src = dev_ip
        elif s.ports[0] == cloud_port:
            dst = dev_ip
        out.append(p.copy(set_ip(p.frame, o, src, dst)))
    return out


def write_pcap(path, link, pkts):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, link))
        for p in pkts:
            s = int(p.ts)
            us = int(round((p.ts - s) * 1e6))
            if us >= 1000000:
                s, us = s + 1, us - 1000000
            f.write(struct.pack("<IIII", s, us, len(p.frame), p.orig_len or len(p.frame)))
            f.write(p.frame)


def read_sample(name):
    link, raw = pcaptool.read_pcap(os.path.join(SAMPLES, name, "capture.pcap"))
    return link, [Pkt(link, ts, b) for ts, b in raw]


def cloud_end(pkts, cloud_port=5683):
    for p in pkts:
        if p.tcp and p.seg.ports[1] == cloud_port:
            return "%d.%d.%d.%d:%d" % (tuple(p.seg.flow[1]) + (cloud_port,))
    return None


def device_ports(pkts, cloud_port=5683):
    """Device ports in the order their connections start."""
    order = []
    for p in pkts:
        if p.tcp:
            port = p.seg.ports[0] if p.seg.ports[1] == cloud_port else p.seg.ports[1]
            if port not in order:
                order.append(port)
    return order


def rebuild(p, seq=None, payload=None, flags=None, ack=None):
    s = p.seg
    f = s.build(s.seq if seq is None else seq, s.payload if payload is None else payload, flags)
    if ack is not None:
        b = bytearray(f)
        b[s.tcpo + 8:s.tcpo + 12] = struct.pack(">I", ack & 0xffffffff)
        f = bytes(b)
    return p.copy(f)


def ack_of(p):
    return struct.unpack(">I", p.frame[p.seg.tcpo + 8:p.seg.tcpo + 12])[0]


def from_cloud(p, cloud_port=5683):
    return p.seg.ports[0] == cloud_port


# ---- variants that keep the wire's meaning (expected: the sample's verdict) ----------------------------

def v_identity(pkts):
    return [("as captured", pkts, True)]


def v_adversity(pkts):
    """tests/monitor's adversity rewrites: split, reorder, duplicate, overlap."""
    out = []
    raw = [[p.ts, p.frame] for p in pkts]
    for ops in ["split:1", "reorder", "split:7,reorder", "dup", "overlap", "split:3,reorder,dup,overlap"]:
        m = pcaptool.mutate(pkts[0].link, raw, ops.split(","))
        out.append(("adversity " + ops, [Pkt(pkts[0].link, ts, b) for ts, b in m], True))
    return out


def reversed_windows(pkts, w):
    """Runs of data segments one side sent back to back (nothing from the other side in between) reversed
    in windows of w; each keeps the time of its slot."""
    out = list(pkts)
    runs, run, side = [], [], None
    for i, p in enumerate(pkts):
        if not p.tcp:
            continue
        data = bool(p.seg.payload) and not p.seg.flags & 7
        if data and run and from_cloud(p) == side:
            run.append(i)
            continue
        runs.append(run)
        run, side = ([i] if data else []), from_cloud(p)
    runs.append(run)
    for r in runs:
        for k in range(0, len(r) - w + 1, w):
            group = r[k:k + w]
            for a, b in zip(group, reversed(group)):
                out[a] = pkts[b].copy(ts=pkts[a].ts)
    return out


def v_reorder(pkts):
    return [("reversed in pairs", reversed_windows(pkts, 2), True),
            ("reversed in windows of 4", reversed_windows(pkts, 4), True)]


def v_timestamps(pkts):
    return [("timestamps in ms", [p.copy(ts=int(p.ts * 1000) / 1000.0) for p in pkts], True),
            ("timestamps in s", [p.copy(ts=float(int(p.ts))) for p in pkts], True)]


def next_seq(pkts, upto):
    """Per side (True = cloud): the next sequence number after packets [0, upto)."""
    nxt = {}
    for p in pkts[:upto]:
        if p.tcp:
            n = p.seg.seq + len(p.seg.payload) + (1 if p.seg.flags & 3 else 0)
            nxt[from_cloud(p)] = n & 0xffffffff
    return nxt


def v_rst(pkts):
    """An RST after every packet: outside the window (ignored: the sample's verdict), and exact (the
    connection survives it when new bytes follow: the sample's verdict; else only agreement)."""
    out = []
    for i, p in enumerate(pkts):
        if not p.tcp or p.seg.flags & 2:
            continue
        nxt = next_seq(pkts, i + 1)
        side = from_cloud(p)
        if side not in nxt:
            continue
        more = any(q.tcp and q.seg.payload for q in pkts[i + 1:])
        for name, seq, keep in (("outside the window", nxt[side] + 200000, True), ("exact", nxt[side], more)):
            rst = rebuild(p, seq=seq, payload=b"", flags=0x14, ack=ack_of(p))
            rst.ts = p.ts
            v = pkts[:i + 1] + [rst] + pkts[i + 1:]
            out.append(("RST %s after packet %d" % (name, i + 1), v, keep))
    return out


def v_bogus_length(pkts):
    """One pure ACK whose IP total length claims 1500 bytes (the frame is whole, not cut)."""
    out = []
    for i, p in enumerate(pkts):
        if p.tcp and not p.seg.payload and p.seg.flags == 0x10:
            b = bytearray(p.frame)
            b[p.seg.ipo + 2:p.seg.ipo + 4] = struct.pack(">H", 1500)
            v = list(pkts)
            v[i] = p.copy(bytes(b))
            out.append(("bogus IP length at packet %d" % (i + 1), v, True))
    return out


def v_garbage_first(pkts):
    """A garbage copy of a data segment 1 us before the real one: the copies are candidates until their meaning
    decides (the copy that opens with the key, the nonce the id block echoes, the copy whose length prefix
    frames a frame that decrypts), so the verdict stands, as strongly proven as captured."""
    out = []
    rnd = random.Random(5)
    for i, p in enumerate(pkts):
        if p.tcp and p.seg.payload and not p.seg.flags & 5:
            junk = bytes(rnd.randrange(256) for _ in p.seg.payload)
            g = rebuild(p, payload=junk)
            g.ts = p.ts - 1e-6
            out.append(("garbage copy before packet %d" % (i + 1), pkts[:i] + [g] + pkts[i:], "exact"))
    return out


def v_prefix(pkts):
    """A frame length prefix with one bit flipped that stays plausible (0x0010 read as 0x0110), in each
    direction's first frame after the handshake that has 256 more bytes behind it: the frames it swallows
    are found again by decryption, so the session and its verdict go on."""
    out = []
    port = device_ports(pkts)[0]    # the first connection's device port
    for cloud in (False, True):
        idx = [i for i, p in enumerate(pkts) if p.tcp and p.seg.payload and from_cloud(p) == cloud and
               port in p.seg.ports]
        skip = 424 if cloud else 256
        for i in idx:
            n = len(pkts[i].seg.payload)
            if skip <= 0 and pkts[i].seg.payload[:2] == b"\x00\x10":
                later = sum(len(pkts[j].seg.payload) for j in idx if j > i)
                if later >= 256:
                    pl = b"\x01" + pkts[i].seg.payload[1:]
                    out.append(("length prefix 0x0010 read as 0x0110 (%s)" % ("cloud" if cloud else "device"),
                                pkts[:i] + [rebuild(pkts[i], payload=pl)] + pkts[i + 1:], True))
                    break
            skip -= n
    return out


def first_frames(pkts):
    """Per side (True = cloud): the index of the first connection's first data segment after the handshake
    when it holds exactly one frame (its Hello), and the index of the other side's next segment."""
    port = device_ports(pkts)[0]
    out = {}
    for cloud in (False, True):
        skip = 424 if cloud else 256
        for i, p in enumerate(pkts):
            if not (p.tcp and p.seg.payload and from_cloud(p) == cloud and port in p.seg.ports):
                continue
            pl = p.seg.payload
            if skip <= 0:
                if len(pl) >= 18 and 2 + (pl[0] << 8 | pl[1]) == len(pl):
                    nxt = next((j for j in range(i + 1, len(pkts)) if pkts[j].tcp and
                                port in pkts[j].seg.ports and from_cloud(pkts[j]) != cloud), None)
                    if nxt is not None:
                        out[cloud] = (i, nxt)
                break
            skip -= len(pl)
    return out


def between(pkts, i, j):
    """A time after packet i and before packet j."""
    return pkts[i].ts + (pkts[j].ts - pkts[i].ts) / 2


def v_copy_after_read(pkts):
    """A conflicting copy that comes after the frame was read: each side's Hello arrives first with its length
    prefix right and the rest garbage, and its real bytes come again before the other side answers, when the
    garbage frame has been read (and failed). The real copy decrypts and the garbage did not, so the frame
    is read again from it: the verdict is the one as captured, as strongly proven."""
    out = []
    rnd = random.Random(11)
    for cloud, (i, nxt) in sorted(first_frames(pkts).items()):
        pl = pkts[i].seg.payload
        junk = pl[:2] + bytes(rnd.randrange(256) for _ in pl[2:])
        g = rebuild(pkts[i], payload=junk)
        real = pkts[i].copy(ts=between(pkts, i, nxt))
        out.append(("the %s Hello read from garbage, its real copy after" % ("cloud" if cloud else "device"),
                    pkts[:i] + [g, real] + pkts[i + 1:], "exact"))
    return out


def v_prefix_retransmitted(pkts):
    """A damaged length prefix (one flipped bit: 0x0010 read as 0x8010) on each side's Hello, and the segment
    again with its right prefix before the other side answers: the copy that frames a frame which decrypts
    wins, so the verdict is the one as captured, as strongly proven."""
    out = []
    for cloud, (i, nxt) in sorted(first_frames(pkts).items()):
        pl = pkts[i].seg.payload
        if pl[0] & 0x80:
            continue
        bad = rebuild(pkts[i], payload=bytes([pl[0] | 0x80]) + pl[1:])
        real = pkts[i].copy(ts=between(pkts, i, nxt))
        out.append(("the %s Hello's length prefix damaged, the segment sent again" % ("cloud" if cloud else "device"),
                    pkts[:i] + [bad, real] + pkts[i + 1:], "exact"))
    return out


# ---- damage (expected: the same verdict from both frontends) ------------------------------------------

def v_bitflips(pkts):
    out = []
    data = [i for i, p in enumerate(pkts) if p.tcp and p.seg.payload]
    for seed in range(1, 4):
        rnd = random.Random(seed)
        v = list(pkts)
        for i in rnd.sample(data, min(2, len(data))):
            pl = bytearray(v[i].seg.payload)
            pl[rnd.randrange(len(pl))] ^= 1 << rnd.randrange(8)
            v[i] = rebuild(v[i], payload=bytes(pl))
        out.append(("bit flips seed %d" % seed, v, False))
    return out


def v_editcap(pkts, tmp):
    editcap = shutil.which("editcap")
    if not editcap:
        return []
    src = os.path.join(tmp, "editcap-in.pcap")
    write_pcap(src, pkts[0].link, pkts)
    out = []
    for rate in ("0.001", "0.004", "0.02"):
        for seed in (1, 2):
            dst = os.path.join(tmp, "editcap-out.pcap")
            subprocess.run([editcap, "-F", "pcap", "-E", rate, "--seed", str(seed), src, dst], check=True,
                           capture_output=True)
            link, raw = pcaptool.read_pcap(dst)
            out.append(("editcap -E %s seed %d" % (rate, seed), [Pkt(link, ts, b) for ts, b in raw], False))
    return out


# ---- link layers (a variant may carry a step applied after its device got its address) -----------------

def qinq(pkts):
    """Every Ethernet frame with two VLAN tags (802.1ad outside, 802.1Q inside)."""
    out = []
    for p in pkts:
        if p.link != 1 or len(p.frame) < 14:
            out.append(p)
            continue
        f = p.frame[:12] + b"\x88\xa8\x00\x64" + b"\x81\x00\x00\xc8" + p.frame[12:]
        out.append(p.copy(f))
    return out


def ipv4_body(p):
    """The IPv4 header's offset and length, and what the header carries (TCP header and data)."""
    o = p.seg.ipo
    ihl = (p.frame[o] & 15) * 4
    total = struct.unpack(">H", p.frame[o + 2:o + 4])[0]
    return o, ihl, p.frame[o + ihl:o + total]


def fragments(pkts):
    """Every IPv4 segment with data as two IP fragments (split at an 8-byte boundary)."""
    out = []
    for n, p in enumerate(pkts):
        if not p.tcp or len(p.seg.payload) < 16 or p.orig_len:
            out.append(p)
            continue
        o, ihl, body = ipv4_body(p)
        cut = (len(body) // 2) // 8 * 8
        for off, part, more in ((0, body[:cut], True), (cut, body[cut:], False)):
            h = bytearray(p.frame[o:o + ihl])
            h[2:4] = struct.pack(">H", ihl + len(part))
            h[4:6] = struct.pack(">H", (n * 7 + 1) & 0xffff)
            h[6:8] = struct.pack(">H", (0x2000 if more else 0) | (off // 8))
            h[10:12] = b"\0\0"
            h[10:12] = struct.pack(">H", pcaptool.csum(bytes(h)))
            out.append(p.copy(p.frame[:o] + bytes(h) + part))
    return out


V6_PREFIX = bytes.fromhex("20010db8") + bytes(8)


def v6_text(v4text):
    """The IPv6 address a variant's IPv4 address becomes (2001:db8::/96 + the IPv4 bytes)."""
    return str(ipaddress.IPv6Address(V6_PREFIX + ipaddress.IPv4Address(v4text).packed))


def ipv6_ext(pkts):
    """Every IPv4 TCP packet as IPv6 with a hop-by-hop and a destination options header before TCP."""
    out = []
    for p in pkts:
        if not p.tcp or p.orig_len:
            out.append(p)
            continue
        o, _, body = ipv4_body(p)
        ext = bytes([60, 0, 1, 4, 0, 0, 0, 0]) + bytes([6, 0, 1, 4, 0, 0, 0, 0])   # hop-by-hop, dest. options
        hdr = struct.pack(">IHBB", 6 << 28, len(ext) + len(body), 0, 64) + \
            V6_PREFIX + p.frame[o + 12:o + 16] + V6_PREFIX + p.frame[o + 16:o + 20]
        eth = p.frame[:o - 2] + b"\x86\xdd"
        out.append(p.copy(eth + hdr + ext + body))
    return out


def v_links(pkts):
    if pkts[0].link != 1:
        return []
    return [("two VLAN tags (QinQ)", pkts, True, qinq), ("IP fragments", pkts, True, fragments),
            ("IPv6 with extension headers", pkts, True, ipv6_ext, v6_text)]


VARIANT_CASES = [v_identity, v_links, v_adversity, v_reorder, v_timestamps, v_rst, v_bogus_length, v_garbage_first,
                 v_prefix, v_copy_after_read, v_prefix_retransmitted, v_bitflips]
# the samples each case runs on (None: all of them); the per-packet cases are many, so they run on a few
PER_PACKET = {"healthy", "unknown-device", "device-key-mismatch-g2", "stalled", "mid-session"}
CASE_SAMPLES = {
    v_rst: PER_PACKET, v_bogus_length: PER_PACKET, v_garbage_first: PER_PACKET,
}


# ---- the two frontends ---------------------------------------------------------------------------------

def dev_key(ip, port):
    return "%s:%s" % (ip, port)


def pair(a, b):
    """A connection by its two ends, in either order (the frontends name the device; damage may swap)."""
    return " ".join(sorted((a, b)))


def plugin_verdicts(sh, cap, kf):
    rows = sh.fields(cap, ["ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "spark.verdict",
                           "spark.verdict.final", "ipv6.src", "ipv6.dst", "spark.verdict.proven"],
                     extra=["-o", "spark.keyfile:" + kf, "-Y", "spark.verdict"])
    out = {}
    for r in rows:
        src, sport, dst, dport, verdicts, finals, src6, dst6, proven = r[1:10]
        src, dst = src6 or src, dst6 or dst
        key = pair(dev_key(src, sport), dev_key(dst, dport))
        for v, f, p in zip(verdicts.split(","), finals.split(","), proven.split(",")):
            if f == "1":
                out.setdefault(key, []).append(strength(v, p == "1"))
    return {k: sorted(v) for k, v in out.items()}


def strength(verdict, proven):
    """A final verdict as both frontends must give it: its code and whether a key proved it."""
    return "%s (%s)" % (verdict, "proven" if proven else "inferred")


def codes(verdicts):
    return [v.split(" ")[0] for v in verdicts] if verdicts else verdicts


def unbracket(end):
    """cloudmon writes IPv6 ends as [addr]:port; tshark gives the address and the port apart."""
    return end.replace("[", "").replace("]", "")


def cloudmon_verdicts(cloudmon, cap, kf):
    r = subprocess.run([cloudmon, "-r", cap, "-k", kf, "--json"], capture_output=True, timeout=300)
    check(r.returncode == 0, "cloudmon on %s exited %d: %s" % (cap, r.returncode, r.stderr[-500:]))
    out = {}
    text = r.stdout.decode("utf-8", "replace")
    for line in text.splitlines():
        o = json.loads(line)
        if o.get("type") == "verdict" and o.get("final"):
            out.setdefault(pair(unbracket(o["client"]), unbracket(o["server"])), []).append(
                strength(o["verdict"], o.get("proven")))
    return {k: sorted(v) for k, v in out.items()}


def compare(label, sh, cloudmon, cap, kf, expect_names):
    """expect: {device end: verdict or None}, names: {device end: variant}; every connection either
    frontend reports is compared."""
    expect, names = expect_names
    counts["captures"] += 1
    a = plugin_verdicts(sh, cap, kf)
    b = cloudmon_verdicts(cloudmon, cap, kf)
    keys = sorted(set(a) | set(b) | {k for k, v in expect.items() if v and " " in k})
    for k in keys:
        name = [names[e] for e in k.split(" ") if e in names]
        what = "%s: connection %s (%s)" % (label, k, name[0] if name else "?")
        counts["connections"] += 1
        if os.environ.get("AGREE_VERBOSE"):
            print("%s: plugin %s, cloudmon %s, expected %s" % (what, a.get(k), b.get(k), expect.get(k)))
        check(a.get(k) == b.get(k), "%s: plugin %s, cloudmon %s" % (what, a.get(k), b.get(k)))
        want = expect.get(k)
        if isinstance(want, tuple):
            # the verdict as captured (the identity variant's connection), as strongly proven
            counts["with_expectation"] += 1
            ref = a.get(want[1])
            check(ref and a.get(k) == ref and b.get(k) == ref,
                  "%s: the wire supports %s as captured, plugin %s, cloudmon %s" % (what, ref, a.get(k), b.get(k)))
        elif want:
            counts["with_expectation"] += 1
            check(codes(a.get(k)) == [want] and codes(b.get(k)) == [want],
                  "%s: the wire supports %s, plugin %s, cloudmon %s" % (what, want, a.get(k), b.get(k)))


# ---- building the captures -----------------------------------------------------------------------------

def expected_rows():
    lines = [l.rstrip("\n") for l in open(os.path.join(SAMPLES, "expected.tsv")) if l.strip()]
    head = lines[0].split("\t")
    return [dict(zip(head, l.split("\t"))) for l in lines[1:]]


def merge(variants, ports, verdicts, cloud=None):
    """One capture of all variants, each with its own device address; and what each connection should be."""
    pkts, expect, names = [], {}, {}
    for n, variant in enumerate(variants):
        name, vp, keep = variant[:3]
        ip = bytes([10, (n >> 8) & 255, n & 255, 1])
        text = "%d.%d.%d.%d" % tuple(ip)
        vp = readdress(vp, 5683, ip)
        if len(variant) > 3:
            vp = variant[3](vp)
        addr = variant[4] if len(variant) > 4 else (lambda t: t)
        for k, port in enumerate(ports):
            key = dev_key(addr(text), port)
            expect[key] = verdicts[k] if keep and k < len(verdicts) else None
            cend = dev_key(*cloud.rsplit(":", 1)) if cloud else None
            if keep == "exact":
                # the same as the first variant's (the capture as it is) connection of this port
                expect[key] = ("exact", pair(dev_key("10.0.0.1", port), cend) if cend else None)
            if cloud:
                cip, cport = cloud.rsplit(":", 1)
                expect[pair(key, dev_key(addr(cip), cport))] = expect[key]
            names[key] = name
        pkts += [(p.ts, n, i, p) for i, p in enumerate(vp)]
    pkts.sort(key=lambda x: (x[0], x[1], x[2]))
    return [x[3] for x in pkts], (expect, names)


def truncations(pkts):
    """The capture ends inside the handshake: after byte k of the handshake's 680 bytes (40 + 256 + 384),
    for every 40th byte and the bytes around each block's edges."""
    marks = sorted(set(range(1, 680, 40)) | {1, 39, 40, 41, 295, 296, 297, 679})
    stream = [i for i, p in enumerate(pkts) if p.tcp and p.seg.payload]
    out = []
    for k in marks:
        seen = 0
        for i in stream:
            n = len(pkts[i].seg.payload)
            if seen + n >= k:
                cut = k - seen
                last = pkts[i]
                keep = len(last.seg.hdr) + cut
                p = last.copy(last.frame[:keep])
                p.orig_len = len(last.frame)
                out.append(("capture ends after handshake byte %d" % k, pkts[:i] + [p]))
                break
            seen += n
    return out


def run_sample(sh, cloudmon, tmp, row):
    name = row["scenario"]
    link, pkts = read_sample(name)
    kf = sh.path("samples/%s/keyfile" % name)
    if not os.path.exists(kf):
        sh.copy_in(os.path.join(SAMPLES, name), "samples/" + name)
    ports = device_ports(pkts)
    verdicts = row["verdicts"].split(",")
    variants = []
    for case in VARIANT_CASES:
        if CASE_SAMPLES.get(case) is not None and name not in CASE_SAMPLES[case]:
            continue
        variants += case(pkts)
    variants += v_editcap(pkts, tmp)
    cloud = cloud_end(pkts)
    merged, expect = merge(variants, ports, verdicts, cloud)
    cap = sh.path("agree-%s.pcap" % name)
    write_pcap(cap, link, merged)
    os.chmod(cap, 0o644)
    compare("%s (%d variants)" % (name, len(variants)), sh, cloudmon, cap, kf, expect)
    if name == "healthy":
        for label, vp in truncations(pkts):
            # the capture ended inside the handshake: nothing decides more than that
            tp, texp = merge([(label, vp, True)], ports, ["incomplete"] * len(ports), cloud)
            cap = sh.path("agree-trunc.pcap")
            write_pcap(cap, link, tp)
            os.chmod(cap, 0o644)
            compare("%s, %s" % (name, label), sh, cloudmon, cap, kf, texp)
        syn_flood(sh, cloudmon, link, pkts, ports, verdicts, kf, cloud)
        if link == 1:
            mixed_links(sh, cloudmon, pkts, ports, verdicts, kf, cloud)


def write_mixed_pcapng(path, pkts):
    """Ethernet frames alternately on an Ethernet interface and, without their Ethernet header, on a raw IP
    interface of the same pcapng file."""
    def block(kind, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
    with open(path, "wb") as f:
        f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        f.write(block(1, struct.pack("<HHI", 1, 0, 262144)))
        f.write(block(1, struct.pack("<HHI", 101, 0, 262144)))
        for i, p in enumerate(pkts):
            iface, frame = (1, p.frame[14:]) if i % 2 and p.frame[12:14] in (b"\x08\x00", b"\x86\xdd") \
                else (0, p.frame)
            us = int(round(p.ts * 1e6))
            f.write(block(6, struct.pack("<IIIII", iface, us >> 32, us & 0xffffffff, len(frame), len(frame))
                          + frame))


def mixed_links(sh, cloudmon, pkts, ports, verdicts, kf, cloud):
    """A pcapng whose two interfaces have different link types (Ethernet and raw IP)."""
    merged, expect = merge([("mixed-link pcapng", pkts, True)], ports, verdicts, cloud)
    cap = sh.path("agree-mixed.pcapng")
    write_mixed_pcapng(cap, merged)
    os.chmod(cap, 0o644)
    compare("healthy in a pcapng of two link types", sh, cloudmon, cap, kf, expect)


def syn_flood(sh, cloudmon, link, pkts, ports, verdicts, kf, cloud):
    """1,100 SYNs in 0.8 s from other ports next to the live session: the session keeps its verdict."""
    syn = next(p for p in pkts if p.tcp and p.seg.flags == 0x02)
    t0 = next(p.ts for p in pkts if p.tcp and p.seg.payload)
    flood = []
    for i in range(1100):
        b = bytearray(syn.frame)
        b[syn.seg.tcpo:syn.seg.tcpo + 2] = struct.pack(">H", 20000 + i)
        b[syn.seg.tcpo + 4:syn.seg.tcpo + 8] = struct.pack(">I", (0x10000 * i + 77) & 0xffffffff)
        flood.append(syn.copy(bytes(b), ts=t0 + 0.8 * i / 1100))
    merged, expect = merge([("live session", pkts, True)], ports, verdicts, cloud)
    fl = readdress(flood, 5683, bytes([10, 255, 255, 1]))
    allp = sorted(merged + fl, key=lambda p: p.ts)
    cap = sh.path("agree-flood.pcap")
    write_pcap(cap, link, allp)
    os.chmod(cap, 0o644)
    compare("healthy next to a SYN flood", sh, cloudmon, cap, kf, expect)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: agree.py PLUGIN CLOUDMON")
    plugin, cloudmon = sys.argv[1], os.path.abspath(sys.argv[2])
    sh = spark_tshark.Shark(plugin)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("FAIL agree: stopped (SIGTERM)"))
    tmp = tempfile.mkdtemp(prefix="sparkwire-agree-")
    try:
        for row in expected_rows():
            run_sample(sh, cloudmon, tmp, row)
    except spark_tshark.Fail as e:
        check(False, str(e))
    finally:
        sh.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d captures, %d connections compared (%d with the verdict the wire supports)"
          % (counts["captures"], counts["connections"], counts["with_expectation"]))
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("ok: both frontends agree on every connection")


if __name__ == "__main__":
    main()
