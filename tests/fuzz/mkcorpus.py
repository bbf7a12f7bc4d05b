#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/ from the sample captures,
their keyfiles and keys, and the hex vectors of section 8 of docs/protocol.md (or of the file PROTOCOL_MD
names). usage: mkcorpus.py [SOURCE_ROOT]"""
import hashlib
import os
import re
import struct
import sys

SRC = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(SRC, "tests", "fuzz", "corpus")
SAMPLES = os.path.join(SRC, "samples")
KF_SEL = {"healthy": 1, "healthy-g1": 2, "mid-session": 3}


def put(target, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def pcap_records(path):
    with open(path, "rb") as f:
        b = f.read()
    magic = struct.unpack("<I", b[:4])[0]
    e = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    nano = magic in (0xa1b23c4d, 0x4d3cb2a1)
    dlt = struct.unpack(e + "I", b[20:24])[0]
    off, out = 24, []
    while off + 16 <= len(b):
        s, us, cl, _ = struct.unpack(e + "IIII", b[off:off + 16])
        out.append((s + us / (1e9 if nano else 1e6), b[off + 16:off + 16 + cl]))
        off += 16 + cl
    return dlt, out


def tcp_of(dlt, pkt):
    """(src, dst, sport, dport, seq, flags, payload) for IPv4/TCP, else None."""
    if dlt == 1:
        if len(pkt) < 14 or pkt[12:14] != b"\x08\x00":
            return None
        ip = pkt[14:]
    elif dlt == 113:
        ip = pkt[16:]
    elif dlt == 276:
        ip = pkt[20:]
    elif dlt in (101, 228):
        ip = pkt
    else:
        return None
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
        return None
    ihl = (ip[0] & 15) * 4
    tot = struct.unpack(">H", ip[2:4])[0]
    tcp = ip[ihl:tot]
    if len(tcp) < 20:
        return None
    sp, dp, seq = struct.unpack(">HHI", tcp[:8])
    doff = (tcp[12] >> 4) * 4
    return ip[12:16], ip[16:20], sp, dp, seq, tcp[13], tcp[doff:]


def samples():
    for name in sorted(os.listdir(SAMPLES)):
        cap = os.path.join(SAMPLES, name, "capture.pcap")
        if os.path.isfile(cap):
            yield name, cap


def tracker_and_cloudmon():
    for name, cap in samples():
        dlt, recs = pcap_records(cap)
        sel = KF_SEL.get(name, 1)
        # cloudmon: the packets as records (Ethernet is link selector 0)
        dsel = {1: 0, 113: 1, 276: 2, 0: 3, 108: 4, 101: 5, 228: 6}.get(dlt, 0)
        body = bytearray([dsel, sel])
        last = recs[0][0] if recs else 0
        for t, p in recs:
            dt = min(255, max(0, int((t - last) * 100)))
            last = t
            body += struct.pack(">HB", len(p), dt) + p
        put("cloudmon", bytes(body))
        put("cloudmon", bytes(body[:2 + 3 * 8 + sum(len(p) for _, p in recs[:8])]))
        # tracker: the streams of each connection, in packet order
        conns = {}
        for t, p in recs:
            x = tcp_of(dlt, p)
            if not x:
                continue
            src, dst, sp, dp, seq, flags, pay = x
            key = tuple(sorted([(src, sp), (dst, dp)]))
            c = conns.setdefault(key, {"client": None, "ops": [], "next": {}})
            if flags & 0x02 and not flags & 0x10:
                c["client"] = (src, sp)
                c["ops"].append((7, b""))
            if c["client"] is None:
                c["client"] = (src, sp) if dp == 5683 else (dst, dp)
            d = 0 if (src, sp) == c["client"] else 1
            if pay:
                exp = c["next"].get(d)
                if exp is None or seq == exp:
                    c["ops"].append((d, pay))
                    c["next"][d] = seq + len(pay)
            if flags & 0x04:
                c["ops"].append((6, b"\x00\x00" if d == 0 else b"\x00\x01"))
            elif flags & 0x01:
                c["ops"].append((4 + d, b""))
        for c in conns.values():
            body = bytearray([sel])
            for op, data in c["ops"]:
                if op in (0, 1):
                    body += struct.pack(">BH", op, len(data)) + data
                elif op == 6:
                    body += struct.pack(">B", 6) + data
                else:
                    body += struct.pack(">BH", op, 0)
            put("tracker", bytes(body))
            # and the same with a gap in each direction after the handshake
            put("tracker", bytes(body) + b"\x02\x00\x10\x03\x00\x20")
            # firmware: the cloud->device stream as the handshake (mode 3) and, after it, as frames (mode 1)
            s2d = b"".join(d for op, d in c["ops"] if op == 1)
            if len(s2d) > 424:
                put("firmware", b"\x01" + s2d[424:])
                put("firmware", b"\x05" + s2d[424:])
            put("firmware", b"\x03" + s2d[:600])


def keys_and_keyfiles():
    kd = os.path.join(SAMPLES, "keys")
    for f in sorted(os.listdir(kd)):
        with open(os.path.join(kd, f), "rb") as fh:
            put("key", fh.read())
    extra = os.path.join(SRC, "tests", "keyring", "data", "particle-cloud.der")
    if os.path.isfile(extra):
        with open(extra, "rb") as fh:
            put("key", fh.read())
    for name, _ in samples():
        kf = os.path.join(SAMPLES, name, "keyfile")
        if os.path.isfile(kf):
            with open(kf, "rb") as fh:
                put("keyfile", fh.read())
    put("keyfile", b"# comment\n\nserver-private keys/server-private.pem\nserver-public keys/server-public.der\n"
                   b"device * keys/other-device.der\n"
                   b"session 53ff6c065067544816300187 " + b"ab" * 40 + b"\n")
    put("keyfile", b"device 53ff6c065067544816300187 keys/53ff6c065067544816300187.der\n"
                   b"device 53ff6c065067544816300187 keys/55ff6d065075555332071787.der\n")
    put("keyfile", b"server-private keys/server-public.der\nbogus line\n")


def protocol_vectors():
    path = os.environ.get("PROTOCOL_MD", os.path.join(SRC, "docs", "protocol.md"))
    text = open(path, encoding="utf-8").read()
    start = text.find("\n## 8. Test vectors")
    if start < 0:
        sys.exit("%s: no section '## 8. Test vectors'" % path)
    sec = text[start:]
    blocks = re.findall(r"```\n([0-9a-f\s]+)\n```", sec)
    if len(blocks) < 10:
        sys.exit("%s: section 8 holds %d hex blocks, expected 10 (keys, blocks, frames)" % (path, len(blocks)))
    for block in blocks:
        data = bytes.fromhex("".join(block.split()))
        if len(data) >= 100:
            put("key", data)
        put("firmware", b"\x01" + struct.pack(">H", len(data)) + data)
    # CoAP messages of docs/protocol.md section 4 (plaintexts): mode 0 (parser) and mode 2 (sealed, in session)
    msgs = [bytes.fromhex(h) for h in (
        "500297b2b168ffffffffff0000", "510212340168", "41010001016264", "41020002026266046272657704636f66666565",
        "41010003036276047465737068", "600000ff", "40000004", "610203050545", "5144000706ff00000006",
        "5102000aff0b6532616d6c65ff3231", "41030009096273ff01", "410200080862756c", "4102000b0b6263ff0000")]
    for m in msgs:
        put("firmware", b"\x00" + m)
    put("firmware", b"\x02" + b"".join(bytes([len(m)]) + m for m in msgs))


if __name__ == "__main__":
    tracker_and_cloudmon()
    keys_and_keyfiles()
    protocol_vectors()
    for t in sorted(os.listdir(OUT)):
        print("%-10s %d seeds" % (t, len(os.listdir(os.path.join(OUT, t)))))
