#!/usr/bin/env python3
"""Adds a flood of fake handshakes to a capture of genuine devices (one written by sparkwire-gen:
Ethernet, IPv4, cloud on port 5683).

  flood.py IN OUT [--rate N] [--addrs K] [--strangers S] [--seed X] [--burst SEC] [--fakes-only]

Over the span of IN's connection starts, N fake handshakes a second (default 10,000) come from K flooding
addresses (10.66.x.y, default 16): SYN, SYN-ACK, ACK, the cloud's 40-byte nonce, 256 random bytes as the
id block, and the cloud's RST. S more a second (default 0) come each from an address of its own (10.77.x.y)
and send their id block before the nonce arrives, as no device does. Writes OUT (time-ordered) and prints
one JSON line: {"fakes": n, "flooders": n, "strangers": n, "span": seconds}."""
import argparse
import json
import random
import struct
import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcaptool import read_pcap, write_pcap, csum  # noqa: E402

CLOUD = (bytes([10, 0, 0, 1]), 5683)
MACS = b"\x02\0\0\0\0\1\x02\0\0\0\0\2"


def frame(src, dst, seq, ack, flags, payload):
    h = struct.pack(">HHIIBBHHH", src[1], dst[1], seq & 0xffffffff, ack & 0xffffffff, 5 << 4, flags, 64240, 0, 0)
    ip = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(h) + len(payload), 1, 0x4000, 64, 6, 0,
                               src[0], dst[0]))
    ip[10:12] = struct.pack(">H", csum(bytes(ip)))
    pseudo = src[0] + dst[0] + struct.pack(">BBH", 0, 6, len(h) + len(payload))
    tcp = bytearray(h + payload)
    tcp[16:18] = struct.pack(">H", csum(pseudo + bytes(tcp)))
    return MACS + b"\x08\x00" + bytes(ip) + bytes(tcp)


def fake(rnd, t0, dev, early):
    """One fake handshake from dev starting at t0: its packets as [time, frame]."""
    ds, cs = rnd.getrandbits(32), rnd.getrandbits(32)
    nonce = bytes(rnd.getrandbits(8) for _ in range(40))
    idb = bytes(rnd.getrandbits(8) for _ in range(256))
    out = [[t0, frame(dev, CLOUD, ds, 0, 0x02, b"")],
           [t0 + 20e-6, frame(CLOUD, dev, cs, ds + 1, 0x12, b"")],
           [t0 + 40e-6, frame(dev, CLOUD, ds + 1, cs + 1, 0x10, b"")]]
    t_nonce, t_id = (t0 + 80e-6, t0 + 60e-6) if early else (t0 + 60e-6, t0 + 100e-6)
    out.append([t_nonce, frame(CLOUD, dev, cs + 1, ds + 1, 0x18, nonce)])
    out.append([t_id, frame(dev, CLOUD, ds + 1, cs + 41, 0x18, idb)])
    out.append([t0 + 300e-6, frame(CLOUD, dev, cs + 41, ds + 257, 0x14, b"")])
    return out


def at(t, burst):
    return t - (t % burst) if burst else t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--rate", type=float, default=10000)
    ap.add_argument("--addrs", type=int, default=16)
    ap.add_argument("--strangers", type=float, default=0)
    ap.add_argument("--seed", type=int, default=5683)
    ap.add_argument("--fakes-only", action="store_true", help="write only the fake handshakes")
    ap.add_argument("--burst", type=float, default=0, help="fakes start in bursts this many seconds apart "
                    "(tcpreplay keeps the capture's timing better when it sleeps less often)")
    a = ap.parse_args()
    link, pkts = read_pcap(a.inp)
    if link != 1:
        sys.exit("flood.py: %s: Ethernet captures only" % a.inp)
    syns = [ts for ts, b in pkts if len(b) > 47 and b[23] == 6 and b[14 + 20 + 13] & 0x12 == 0x02]
    start, end = min(syns), max(syns) + 0.5
    rnd = random.Random(a.seed)
    fakes, strangers = [], 0
    n = int((end - start) * a.rate)
    for i in range(n):
        k = i % a.addrs
        dev = (bytes([10, 66, k >> 8, k & 255]), 1024 + (i // a.addrs) % 60000)
        fakes += fake(rnd, at(start + i / a.rate, a.burst), dev, False)
    m = int((end - start) * a.strangers)
    for i in range(m):
        dev = (bytes([10, 77, (i >> 8) & 255, i & 255]), 2048 + i % 60000)
        fakes += fake(rnd, at(start + (i + 0.5) / a.strangers, a.burst), dev, True)
        strangers += 1
    allp = sorted(([] if a.fakes_only else pkts) + fakes, key=lambda p: p[0])
    write_pcap(a.out, 1, allp)
    print(json.dumps({"fakes": n + m, "flooders": n, "strangers": strangers, "span": end - start,
                      "packets": len(allp)}))


if __name__ == "__main__":
    main()
