#!/usr/bin/env python3
"""Analyze > Follow > Spark Stream on a selected packet, checked without the GUI.

  follow_conv.py PLUGIN FOLLOW_CONV

FOLLOW_CONV (follow_conv.c) loads the plugin as Wireshark does, makes the first pass over a capture, then
selects every packet again and prints what the Spark follower's conversation filter gives for it. Every
frame of a followed Spark connection must give "tcp.stream eq N" with tshark's tcp.stream of that frame;
frames of other TCP connections, UDP datagrams, frames of a connection the full table did not follow and
frames the first pass has not reached give none. sharkd, which calls the same filter for packets showing
the Spark layer, must list it too. Run as nobody when root, like tshark (spark_tshark.py).
Exit 77 (skip) only when tshark is missing."""
import json
import os
import random
import shutil
import signal
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spark_tshark import (ACK, FIN, PSH, SYN, Capture, Fail, Shark, check, handshake_capture,  # noqa: E402
                          read_expected, rnd, sample_in)


def conv_filters(sh, harness, cap, extra=()):
    """{frame: (filter or None, stream or None, spark among the frame's protocols)} from follow_conv."""
    # leaks checked in the ASan build (follow_conv keeps the plugin loaded to the end: see fc_keep_plugin)
    asan = ["env", "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1"] if sh.sanitized else []
    r = sh.run(list(extra) + [cap], cmd=asan + [harness] + list(extra) + [cap])
    rows = {}
    for line in r.stdout.splitlines():
        n, filt, stream, layer = line.split("\t")
        rows[int(n)] = (None if filt == "-" else filt, None if stream == "-" else int(stream), layer == "1")
    check(rows and sorted(rows) == list(range(1, len(rows) + 1)), "follow_conv printed no frames:\n" + r.stdout)
    return rows


def tcp_streams(sh, cap, extra=()):
    """{frame: (tcp.stream or None, the frame's TCP ports, or its UDP ports)} as tshark sees them."""
    rows = sh.fields(cap, ["tcp.stream", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport"], extra)
    return {int(r[0]): (int(r[1]) if r[1] else None, {int(p) for p in r[2:6] if p}) for r in rows}


def expect(rows, streams, followed, what):
    """followed(frame, stream, ports): the frame is on a followed Spark connection."""
    check(sorted(rows) == sorted(streams), "%s: follow_conv and tshark see different frames" % what)
    n_spark = 0
    for n, (stream, ports) in sorted(streams.items()):
        filt, got, _ = rows[n]
        if stream is not None and followed(n, stream, ports):
            n_spark += 1
            check(filt == "tcp.stream eq %d" % stream and got == stream,
                  "%s: frame %d (tcp.stream %d) gives %r, stream %r" % (what, n, stream, filt, got))
        else:
            check(filt is None, "%s: frame %d (tcp.stream %r, ports %r) is not on a followed Spark connection, "
                  "yet the filter is %r" % (what, n, stream, sorted(ports), filt))
    return n_spark


def test_samples(sh, harness):
    """Every frame of every sample is on a Spark connection (captured on the cloud port)."""
    for row in read_expected():
        cap, kf = sample_in(sh, row["scenario"])
        keys = ["-o", "spark.keyfile:" + kf]
        rows = conv_filters(sh, harness, cap, keys)
        n = expect(rows, tcp_streams(sh, cap, keys), lambda *_: True, row["scenario"])
        check(n == len(rows) and any(layer for _, _, layer in rows.values()),
              "%s: no frame shows the Spark layer the GUI asks for" % row["scenario"])
    cap, _ = sample_in(sh, "multi-device")
    rows = conv_filters(sh, harness, cap)
    expect(rows, tcp_streams(sh, cap), lambda *_: True, "multi-device without keys")
    check(len({s for _, s, _ in rows.values()}) == 3, "multi-device: three connections, three streams")


def udp(c, sport, dport, data):
    """A UDP datagram from the device to the cloud's address, in the capture of connection c."""
    u = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(u), 1, 0, 64, 17, 0, bytes([10, 0, 0, 2]),
                     bytes([10, 0, 0, 1]))
    c.t += 0.01
    c.pkts.append((c.t, b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip + u))


def mixed_capture(sh, rng):
    """Spark on 5683, Spark on another port (the heuristic), a text protocol on a third, CoAP over UDP."""
    heur, text = sh.free_port(), sh.free_port(48000)
    spark = handshake_capture(rng)
    other = handshake_capture(rng, sport=heur, split=False)
    t = Capture(cport=40003, sport=text, t0=1700000000.005)
    t.open()
    t.pkt(0, PSH | ACK, b"HELLO there\r\n")
    t.pkt(1, PSH | ACK, b"220 a text service that is not Spark, with a banner of some length\r\n")
    t.pkt(0, ACK)
    udp(t, 40004, 5683, b"\x40\x01\x12\x34")
    t.close()
    for i, c in enumerate((other, t)):
        for p in c.pkts:
            spark.pkts.append((p[0] + 0.003 * (i + 1), p[1]))
    spark.pkts.sort(key=lambda p: p[0])
    return sh.write("mixed.pcap", spark.bytes()), {5683, heur}


def test_mixed(sh, harness):
    rng = random.Random(7)
    cap, spark_ports = mixed_capture(sh, rng)
    streams = tcp_streams(sh, cap)
    rows = conv_filters(sh, harness, cap)
    on_spark = lambda n, s, ports: bool(ports & spark_ports)  # noqa: E731
    check(expect(rows, streams, on_spark, "mixed") >= 30, "mixed: the Spark frames are missing")
    check(len({s for s, _ in streams.values() if s is not None}) == 3 and
          any(s is None for s, _ in streams.values()), "mixed: three TCP streams and a UDP datagram expected")
    check(all(not layer for n, (_, _, layer) in rows.items() if not on_spark(n, *streams[n])),
          "mixed: a frame of no Spark connection shows the Spark layer")
    # the first pass stopped halfway: the frames it did not reach give no filter
    half = len(rows) // 2
    rows = conv_filters(sh, harness, cap, ["-n", str(half)])
    n = expect(rows, streams, lambda n, s, ports: n <= half and bool(ports & spark_ports), "first pass to %d" % half)
    check(n > 5 and any(s is not None and ports & spark_ports for f, (s, ports) in streams.items() if f > half),
          "first pass to %d: Spark frames on both sides of the stop expected" % half)


def test_sharkd(sh, _):
    """sharkd, Wireshark's own caller of conversation filters: for a packet showing the Spark layer it lists
    the Spark follower with the filter of that packet's stream."""
    cap, _ = sample_in(sh, "healthy")
    streams = tcp_streams(sh, cap)
    shown = [int(r[0]) for r in sh.fields(cap, ["frame.protocols"]) if "spark" in r[1].split(":")]
    reqs = ['{"jsonrpc":"2.0","id":1000000,"method":"load","params":{"file":"%s"}}' % cap] + \
        ['{"jsonrpc":"2.0","id":%d,"method":"frame","params":{"frame":%d}}' % (n, n) for n in shown]
    sh.write("sharkd.in", "\n".join(reqs) + "\n")
    out = sh.run(["sharkd"], cmd=["sh", "-c", "exec sharkd - < sharkd.in"]).stdout
    got = {}
    for line in out.splitlines():
        r = json.loads(line) if line.startswith("{") else {}
        if r.get("id") in shown and isinstance(r.get("result"), dict):
            got[r["id"]] = [f for f in r["result"].get("fol", []) if f[0] == "Spark"]
    check(len(shown) > 5 and sorted(got) == shown, "sharkd answered for frames %r, asked %r" % (sorted(got), shown))
    for n in shown:
        check(got[n] == [["Spark", "tcp.stream eq %d" % streams[n][0]]],
              "sharkd, frame %d: the Spark follower says %r" % (n, got[n]))


def test_table_full(sh, harness):
    """spark.max_conns 1: the second session finds the table full of a session with data: not followed."""
    rng = random.Random(12)
    pkts = []
    for i in range(2):
        c = Capture(cport=40100 + i, t0=1700000000.0 + i)
        c.open()
        c.pkt(1, PSH | ACK, rnd(40, rng))
        c.pkt(0, PSH | ACK, rnd(256, rng))
        c.pkt(1, PSH | ACK, rnd(384, rng))
        c.pkt(0, FIN | ACK)
        pkts += c.pkts
    c.pkts = sorted(pkts, key=lambda p: p[0])
    cap = sh.write("two.pcap", c.bytes())
    cap_pref = ["-o", "spark.max_conns:1"]
    rows = conv_filters(sh, harness, cap, cap_pref)
    n = expect(rows, tcp_streams(sh, cap, cap_pref), lambda n, s, ports: 40100 in ports, "max_conns 1")
    check(n == 7, "max_conns 1: the first session's 7 frames are followed, got %d" % n)
    expect(conv_filters(sh, harness, cap), tcp_streams(sh, cap), lambda *_: True, "no cap")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: follow_conv.py PLUGIN FOLLOW_CONV")
    sh = Shark(sys.argv[1])
    # a folder of its own: the private folder's files are made 0644 at each write
    bindir = tempfile.mkdtemp(prefix="spark-fc-")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("FAIL follow-conv: stopped (SIGTERM)"))
    try:
        harness = os.path.join(bindir, "follow_conv")
        shutil.copy(sys.argv[2], harness)
        for p in (bindir, harness):
            os.chmod(p, 0o755)
        for test in (test_mixed, test_table_full, test_sharkd, test_samples):
            test(sh, harness)
    except Fail as e:
        print("FAIL follow-conv: %s" % e)
        return 1
    finally:
        sh.close()
        shutil.rmtree(bindir, ignore_errors=True)
    print("ok follow-conv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
