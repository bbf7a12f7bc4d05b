#!/usr/bin/env python3
"""Rewrites a capture to test cloudmon's TCP reassembly, and makes small captures for the tests.

  pcaptool.py mutate IN OUT OP[,OP...]   ops: split:N  reorder  dup  overlap  drop:K  truncate:BYTES
                                         flip:SEED (overwrite up to 3 random bytes in every packet)
  pcaptool.py synth OUT LINK [ipv6]      a made-up Spark-shaped connection on link type LINK
                                         (en10mb, vlan, sll, sll2, null, loop, raw)
  pcaptool.py info IN                    link type and counts

Plain struct parsing of classic pcap files (microsecond or nanosecond, either byte order)."""
import random
import struct
import sys

DLT = {"null": 0, "en10mb": 1, "vlan": 1, "raw": 101, "loop": 108, "sll": 113, "sll2": 276}


def read_pcap(path):
    data = open(path, "rb").read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        sys.exit("%s: not a classic pcap file (convert pcapng with: editcap -F pcap)" % path)
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    _, _, _, _, snap, link = struct.unpack(e + "HHiIII", data[4:24])
    pkts, off = [], 24
    while off + 16 <= len(data):
        s, frac, caplen, wirelen = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        pkts.append([s + frac / (1e9 if nano else 1e6), data[off:off + caplen]])
        off += caplen
    return link & 0xffff, pkts


def write_pcap(path, link, pkts):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, link))
        for ts, b in pkts:
            s = int(ts)
            us = int(round((ts - s) * 1e6))
            if us >= 1000000:
                s, us = s + 1, us - 1000000
            f.write(struct.pack("<IIII", s, us, len(b), len(b)))
            f.write(b)


def ip_offset(link, b):
    """Offset of the IP header in a frame, or None."""
    if link == 1:
        off, et = 14, struct.unpack(">H", b[12:14])[0]
        while et in (0x8100, 0x88a8, 0x9100):
            et = struct.unpack(">H", b[off + 2:off + 4])[0]
            off += 4
        return off if et in (0x0800, 0x86dd) else None
    if link == 113:
        return 16
    if link == 276:
        return 20
    if link in (0, 108):
        return 4
    if link in (101, 12, 14, 228, 229):
        return 0
    return None


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


class Seg:
    """A TCP segment inside a frame, with enough to rebuild it."""

    def __init__(self, link, ts, frame):
        self.ts, self.frame, self.tcp = ts, frame, None
        o = ip_offset(link, frame)
        if o is None:
            return
        v = frame[o] >> 4
        if v == 4:
            ihl = (frame[o] & 15) * 4
            if frame[o + 9] != 6:
                return
            total = struct.unpack(">H", frame[o + 2:o + 4])[0]
            t = o + ihl
            end = o + total
            self.flow = (frame[o + 12:o + 16], frame[o + 16:o + 20])
        elif v == 6:
            if frame[o + 6] != 6:
                return
            t = o + 40
            end = o + 40 + struct.unpack(">H", frame[o + 4:o + 6])[0]
            self.flow = (frame[o + 8:o + 24], frame[o + 24:o + 40])
        else:
            return
        self.ipo, self.ver, self.tcpo = o, v, t
        hl = (frame[t + 12] >> 4) * 4
        self.tcp = True
        self.ports = struct.unpack(">HH", frame[t:t + 4])
        self.seq = struct.unpack(">I", frame[t + 4:t + 8])[0]
        self.flags = frame[t + 13]
        self.hdr = frame[:t + hl]
        self.payload = frame[t + hl:end]

    def key(self):
        return (self.flow[0], self.ports[0], self.flow[1], self.ports[1])

    def build(self, seq, payload, flags=None):
        h = bytearray(self.hdr)
        o, t = self.ipo, self.tcpo
        h[t + 4:t + 8] = struct.pack(">I", seq & 0xffffffff)
        if flags is not None:
            h[t + 13] = flags
        if self.ver == 4:
            h[o + 2:o + 4] = struct.pack(">H", len(h) - o + len(payload))
            h[o + 10:o + 12] = b"\0\0"
            ihl = (h[o] & 15) * 4
            h[o + 10:o + 12] = struct.pack(">H", csum(bytes(h[o:o + ihl])))
        else:
            h[o + 4:o + 6] = struct.pack(">H", len(h) - o - 40 + len(payload))
        return bytes(h) + payload


def mutate(link, pkts, ops):
    segs = [Seg(link, ts, b) for ts, b in pkts]
    for op in ops:
        name, _, arg = op.partition(":")
        out = []
        if name == "split":
            n = int(arg)
            for s in segs:
                if not s.tcp or len(s.payload) <= n:
                    out.append(s)
                    continue
                fin = s.flags & 1
                for i in range(0, len(s.payload), n):
                    last = i + n >= len(s.payload)
                    fl = s.flags if last else (s.flags & ~1 & 0xff)
                    ns = Seg(link, s.ts, s.build(s.seq + i, s.payload[i:i + n], fl))
                    out.append(ns)
                _ = fin
        elif name == "reorder":
            # swap neighbouring data segments of the same connection and direction
            out = list(segs)
            i = 0
            while i + 1 < len(out):
                a, b = out[i], out[i + 1]
                if a.tcp and b.tcp and a.payload and b.payload and a.key() == b.key() and not (a.flags | b.flags) & 5:
                    out[i], out[i + 1] = b, a
                    i += 2
                else:
                    i += 1
        elif name == "dup":
            # every data segment is sent again later (a retransmission), after the next packet
            pend = None
            for s in segs:
                out.append(s)
                if pend is not None:
                    out.append(pend)
                    pend = None
                if s.tcp and s.payload:
                    pend = Seg(link, s.ts, s.frame)
            if pend is not None:
                out.append(pend)
        elif name == "overlap":
            # before each data segment, send one that covers the end of the previous and the start of this one
            prev = {}
            for s in segs:
                if s.tcp and s.payload and not s.flags & 5:
                    p = prev.get(s.key())
                    if p is not None and (p.seq + len(p.payload)) & 0xffffffff == s.seq and len(p.payload) > 1 and len(s.payload) > 1:
                        h1, h2 = len(p.payload) // 2, len(s.payload) // 2
                        data = p.payload[h1:] + s.payload[:h2]
                        out.append(Seg(link, s.ts, s.build(p.seq + h1, data, s.flags & ~1 & 0xff)))
                    prev[s.key()] = s
                out.append(s)
        elif name == "drop":
            k, n = int(arg), 0
            for s in segs:
                if s.tcp and s.payload:
                    n += 1
                    if n == k:
                        continue
                out.append(s)
        elif name == "flip":
            rnd = random.Random(int(arg))
            for s in segs:
                b = bytearray(s.frame)
                for _ in range(rnd.randint(0, 3)):
                    if b:
                        b[rnd.randrange(len(b))] = rnd.randrange(256)
                out.append(Seg(link, s.ts, bytes(b)))
        elif name == "truncate":
            data = b"".join(struct.pack("<IIII", 0, 0, len(s.frame), len(s.frame)) + s.frame for s in segs)
            return None, int(arg)
        else:
            sys.exit("unknown op " + op)
        segs = out
    # each packet keeps its time, but never earlier than the packet before it (capture order)
    out, last = [], None
    for s in segs:
        t = s.ts if last is None or s.ts >= last else last
        out.append([t, s.frame])
        last = t
    return out


def frame_for(linkname, ip, v6):
    et = b"\x86\xdd" if v6 else b"\x08\x00"
    if linkname == "en10mb":
        return b"\x02\0\0\0\0\1\x02\0\0\0\0\2" + et + ip
    if linkname == "vlan":
        return b"\x02\0\0\0\0\1\x02\0\0\0\0\2\x81\x00\x00\x2a" + et + ip
    if linkname == "sll":
        return struct.pack(">HHH8s", 0, 1, 6, b"\x02\0\0\0\0\1\0\0") + et + ip
    if linkname == "sll2":
        return et + b"\0\0" + struct.pack(">IHBB8s", 1, 1, 0, 6, b"\x02\0\0\0\0\1\0\0") + ip
    if linkname == "null":
        return struct.pack("<I", 30 if v6 else 2) + ip
    if linkname == "loop":
        return struct.pack(">I", 30 if v6 else 2) + ip
    return ip


def synth(path, linkname, v6):
    rnd = random.Random(5683)
    dev = (b"\xfd\0\0\0\0\0\0\0\0\0\0\0\0\0\0\2" if v6 else b"\x0a\0\0\2", 40001)
    cld = (b"\xfd\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1" if v6 else b"\x0a\0\0\1", 5683)
    seqs = {0: 1000, 1: 900000}
    pkts, t = [], 1700000000.0

    def tcp(src, dst, seq, flags, payload):
        ack = seqs[1 - (0 if src is dev else 1)] if flags & 0x10 else 0
        h = struct.pack(">HHIIBBHHH", src[1], dst[1], seq & 0xffffffff, ack & 0xffffffff, 5 << 4, flags, 65535, 0, 0)
        if v6:
            ip = struct.pack(">IHBB16s16s", 6 << 28, len(h) + len(payload), 6, 64, src[0], dst[0])
        else:
            ip = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(h) + len(payload), 1, 0x4000, 64, 6, 0, src[0], dst[0]))
            ip[10:12] = struct.pack(">H", csum(bytes(ip)))
            ip = bytes(ip)
        return frame_for(linkname, ip + h + payload, v6)

    def send(d, payload, flags=0x18):
        nonlocal t
        t += 0.01
        src, dst = (dev, cld) if d == 0 else (cld, dev)
        pkts.append([t, tcp(src, dst, seqs[d], flags, payload)])
        seqs[d] += len(payload) + (1 if flags & 3 else 0)

    send(0, b"", 0x02)
    send(1, b"", 0x12)
    send(0, b"", 0x10)
    send(1, bytes(rnd.getrandbits(8) for _ in range(40)))
    send(0, bytes(rnd.getrandbits(8) for _ in range(256)))
    send(1, bytes(rnd.getrandbits(8) for _ in range(384)))
    send(0, b"\x00\x10" + bytes(rnd.getrandbits(8) for _ in range(16)))
    send(1, b"\x00\x10" + bytes(rnd.getrandbits(8) for _ in range(16)))
    for i in range(6):
        n = 16 * (1 + i % 3)
        send(i % 2, struct.pack(">H", n) + bytes(rnd.getrandbits(8) for _ in range(n)))
    send(0, b"", 0x11)
    send(1, b"", 0x11)
    send(0, b"", 0x10)
    write_pcap(path, DLT[linkname], pkts)


# ---- link-layer wrappings (VLAN stacks, IPv6 extension headers, IP fragments) ----

def split_frame(link, b):
    """(link header as Ethernet addresses, IP packet) for a frame of any supported link type."""
    o = ip_offset(link, b)
    return (b[:12] if link == 1 else b"\x02\0\0\0\0\1\x02\0\0\0\0\2"), b[o:]


def eth(macs, tags, ip):
    et = b"\x86\xdd" if ip[0] >> 4 == 6 else b"\x08\x00"
    return macs + b"".join(struct.pack(">HH", t, 100 + i) for i, t in enumerate(tags)) + et + ip


def tcp_of(ip):
    """(IP header length, protocol) of an IPv4/IPv6 packet without extension headers."""
    return ((ip[0] & 15) * 4, ip[9]) if ip[0] >> 4 == 4 else (40, ip[6])


def frag4(ip, size):
    """IPv4 fragments of size bytes of IP payload (a multiple of 8), last first."""
    hl, _ = tcp_of(ip)
    body, out = ip[hl:], []
    for off in range(0, len(body), size):
        chunk = body[off:off + size]
        more = off + size < len(body)
        h = bytearray(ip[:hl])
        h[2:4] = struct.pack(">H", hl + len(chunk))
        h[6:8] = struct.pack(">H", (off // 8) | (0x2000 if more else 0))
        h[10:12] = b"\0\0"
        h[10:12] = struct.pack(">H", csum(bytes(h)))
        out.append(bytes(h) + chunk)
    return out[::-1]


def frag6(ip, size, ident):
    """IPv6 fragments (fragment header right after the IPv6 header), last first."""
    body, out = ip[40:], []
    for off in range(0, len(body), size):
        chunk = body[off:off + size]
        more = off + size < len(body)
        fh = struct.pack(">BBHI", ip[6], 0, off | (1 if more else 0), ident)
        h = bytearray(ip[:40])
        h[4:6] = struct.pack(">H", 8 + len(chunk))
        h[6] = 44
        out.append(bytes(h) + fh + chunk)
    return out[::-1]


def ext6(ip):
    """The same IPv6 packet with hop-by-hop and destination options headers in front of TCP."""
    h = bytearray(ip[:40])
    hop = bytes([60, 0, 1, 4, 0, 0, 0, 0])           # next: destination options; PadN
    dst = bytes([ip[6], 0, 1, 4, 0, 0, 0, 0])
    h[6] = 0
    h[4:6] = struct.pack(">H", len(ip) - 40 + 16)
    return bytes(h) + hop + dst + ip[40:]


def move_port(ip, old, new):
    """The same IP packet (no extension headers) with TCP port old replaced by new on either side."""
    hl, _ = tcp_of(ip)
    t = bytearray(ip)
    for o in (hl, hl + 2):
        if t[o:o + 2] == struct.pack(">H", old):
            t[o:o + 2] = struct.pack(">H", new)
    return bytes(t)


def rewrite(src, dst, fn):
    link, pkts = read_pcap(src)
    out = []
    for ts, b in pkts:
        for f in fn(link, b):
            out.append([ts, f])
    write_pcap(dst, 1, out)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd = sys.argv[1]
    if cmd == "mutate":
        link, pkts = read_pcap(sys.argv[2])
        ops = sys.argv[4].split(",")
        if ops[0].startswith("truncate:"):
            data = open(sys.argv[2], "rb").read()
            open(sys.argv[3], "wb").write(data[:len(data) - int(ops[0].split(":")[1])])
            return
        write_pcap(sys.argv[3], link, mutate(link, pkts, ops))
    elif cmd == "synth":
        synth(sys.argv[2], sys.argv[3], len(sys.argv) > 4 and sys.argv[4] == "ipv6")
    elif cmd == "info":
        link, pkts = read_pcap(sys.argv[2])
        segs = [Seg(link, ts, b) for ts, b in pkts]
        print(link, len(pkts), sum(1 for s in segs if s.tcp and s.payload))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
