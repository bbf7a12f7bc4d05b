#!/usr/bin/env python3
"""Runs tshark with the spark.so plugin on captures and checks what it shows.

  spark_tshark.py PLUGIN TEST      TEST: one of the names in TESTS (see the bottom of this file)

tshark ignores plugin folders when run as root, so as root it runs as nobody, with a private copy of the
plugin, the captures and the keys in a world-readable temporary folder. Exit 77 (skip) only when tshark
is missing."""
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SKIP = 77


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


# ---- tshark in a private folder -------------------------------------------------------------------

class Shark:
    def __init__(self, plugin):
        self.tshark = shutil.which("tshark")
        if not self.tshark:
            print("SKIP: tshark is not installed (apt-get install tshark)")
            sys.exit(SKIP)
        ver = subprocess.run(["pkg-config", "--modversion", "wireshark"], capture_output=True, text=True)
        parts = (ver.stdout.strip() or "4.0").split(".")
        self.plugver = parts[0] + "." + parts[1]
        self.tmp = tempfile.mkdtemp(prefix="spark-ws-")
        self.plugdir = os.path.join(self.tmp, "plugins")
        epan = os.path.join(self.plugdir, self.plugver, "epan")
        os.makedirs(epan)
        shutil.copy(plugin, os.path.join(epan, "spark.so"))
        self.emptydir = os.path.join(self.tmp, "noplugins")
        os.makedirs(self.emptydir)
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.home)
        self.sanitized = os.environ.get("SPARKWIRE_SANITIZED") == "1"
        self._booleans = None
        self.fix_perms()

    def fix_perms(self):
        for root, dirs, files in os.walk(self.tmp):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
        os.chmod(self.tmp, 0o755)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def copy_in(self, src, name):
        dst = self.path(name)
        if os.path.isdir(src):
            shutil.copytree(src, dst)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(src, dst)
        self.fix_perms()
        return dst

    def write(self, name, data):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        self.fix_perms()
        return p

    def run(self, args, plugin=True, check_rc=True, home=None, cmd=None):
        """tshark ARGS (or CMD) as nobody when root; plugin=None: no WIRESHARK_PLUGIN_DIR (personal folder)."""
        # no extcap helpers (they are not needed, and under the sanitizer preload they hang -G plugins)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home or self.home, "LANG": "C.UTF-8",
               "WIRESHARK_EXTCAP_DIR": self.emptydir, "WIRESHARK_CONFIG_DIR": home or self.home}
        if plugin is not None:
            env["WIRESHARK_PLUGIN_DIR"] = self.plugdir if plugin else self.emptydir
        if self.sanitized and plugin is not False:
            libs = []
            for lib in ("libasan.so", "libubsan.so"):
                p = subprocess.run(["gcc", "-print-file-name=" + lib], capture_output=True,
                                   text=True).stdout.strip()
                if p and os.path.isabs(p):
                    libs.append(p)
            env["LD_PRELOAD"] = " ".join(libs)
            env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
            env["UBSAN_OPTIONS"] = os.environ.get("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        cmd = cmd or [self.tshark] + args
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env"] + \
                  ["%s=%s" % kv for kv in env.items()] + cmd
            env = None
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=self.tmp, timeout=120)
        for bad in ("AddressSanitizer", "runtime error:", "Segmentation fault", "LeakSanitizer"):
            check(bad not in r.stderr, "tshark %s: %s in stderr:\n%s" % (" ".join(args), bad, r.stderr[-3000:]))
        if check_rc and r.returncode != 0:
            raise Fail("%s exited %d:\n%s" % (" ".join(cmd[-len(args) - 1:]), r.returncode,
                                              r.stdout[-1000:] + r.stderr[-3000:]))
        return r

    def booleans(self):
        """The names of the boolean fields (Wireshark 4.4 and later print them True/False, 4.0 prints 1/0)."""
        if self._booleans is None:
            out = self.run(["-G", "fields"]).stdout
            self._booleans = {c[2] for c in (l.split("\t") for l in out.splitlines())
                              if len(c) > 3 and c[0] == "F" and c[3] == "FT_BOOLEAN"}
            check("spark.nonce_ok" in self._booleans, "tshark -G fields lists no boolean spark field")
        return self._booleans

    def free_port(self, start=47000):
        """A TCP port no dissector of this Wireshark claims (4.4's UCI owns 7000, for one)."""
        out = self.run(["-G", "decodes"], plugin=False).stdout
        claimed = {int(c[1]) for c in (l.split("\t") for l in out.splitlines())
                   if len(c) > 2 and c[0] == "tcp.port" and c[1].isdigit()}
        check(len(claimed) > 10, "tshark -G decodes lists no TCP ports:\n" + out[:500])
        check(Capture().dev[1] not in claimed, "the captures' client port %d is claimed by a dissector"
              % Capture().dev[1])
        port = start
        while port in claimed or port == 5683:
            port += 1
        return port

    def fields(self, cap, fields, extra=(), plugin=True, two_pass=True):
        """One row per frame: [frame.number, field1, field2, ...] (multiple values joined with ',');
        boolean fields as 1/0 whatever this Wireshark prints."""
        args = ["-r", cap, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "frame.number"]
        if two_pass:
            args.insert(0, "-2")
        for f in fields:
            args += ["-e", f]
        args += list(extra)
        out = self.run(args, plugin=plugin).stdout
        rows = []
        for line in out.splitlines():
            cols = line.split("\t")
            cols += [""] * (len(fields) + 1 - len(cols))
            for i, f in enumerate(fields, 1):
                if f in self.booleans() and cols[i]:
                    cols[i] = ",".join({"True": "1", "False": "0"}.get(v, v) for v in cols[i].split(","))
            rows.append(cols)
        return rows

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- hand-made captures ---------------------------------------------------------------------------

SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10


def _csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return (~s) & 0xffff


class Capture:
    """An Ethernet/IPv4/TCP connection written as a classic pcap; the device is the client."""

    def __init__(self, cport=40001, sport=5683, t0=1700000000.0, ipv6=False):
        self.ipv6 = ipv6
        self.dev = ("fd00::2" if ipv6 else "10.0.0.2", cport)
        self.srv = ("fd00::1" if ipv6 else "10.0.0.1", sport)
        self.seq = {0: 1000, 1: 70000}   # 0 = device->cloud, 1 = cloud->device
        self.pkts = []
        self.t = t0

    def pkt(self, d, flags, data=b"", seq=None, advance=True, opts=b"", window=65535, csum=None):
        """csum: None leaves the checksum field 0 (as checksum offload does), "good" or "bad" fills it in."""
        src, dst = (self.dev, self.srv) if d == 0 else (self.srv, self.dev)
        sq = self.seq[d] if seq is None else seq
        tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], sq, self.seq[1 - d], (5 + len(opts) // 4) << 4, flags,
                          window, 0, 0) + opts + data
        if csum and not self.ipv6:
            pseudo = bytes(map(int, src[0].split("."))) + bytes(map(int, dst[0].split("."))) + \
                struct.pack("!BBH", 0, 6, len(tcp))
            v = _csum(pseudo + tcp) ^ (0 if csum == "good" else 1)
            tcp = tcp[:16] + struct.pack("!H", v) + tcp[18:]
        if self.ipv6:
            import ipaddress
            ip = struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + ipaddress.IPv6Address(src[0]).packed + \
                ipaddress.IPv6Address(dst[0]).packed
            ethertype = b"\x86\xdd"
        else:
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                             bytes(map(int, src[0].split("."))), bytes(map(int, dst[0].split("."))))
            ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
            ethertype = b"\x08\x00"
        eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02" + ethertype
        self.t += 0.01
        self.pkts.append((self.t, eth + ip + tcp))
        if seq is None and advance:
            self.seq[d] += len(data) + (1 if flags & (SYN | FIN) else 0)

    def skip(self, d, n):
        """n bytes of direction d that the capture missed."""
        self.seq[d] += n

    def open(self):
        self.pkt(0, SYN)
        self.pkt(1, SYN | ACK)
        self.pkt(0, ACK)

    def close(self, first=1):
        self.pkt(first, FIN | ACK)
        self.pkt(1 - first, FIN | ACK)
        self.pkt(first, ACK)

    def bytes(self):
        out = [struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)]
        for t, p in self.pkts:
            out.append(struct.pack("<IIII", int(t), int(round((t % 1) * 1e6)), len(p), len(p)) + p)
        return b"".join(out)


def rnd(n, rng):
    return bytes(rng.getrandbits(8) for _ in range(n))


def frame(body_len, rng):
    return struct.pack("!H", body_len) + rnd(body_len, rng)


# ---- tests on hand-made captures (no keys: the handshake's shape and the TCP handling) ------------

def steps_by_frame(rows):
    return {int(r[0]): r[1] for r in rows if r[1]}


def test_plugin_loads(sh):
    out = sh.run(["-G", "plugins"]).stdout
    check(any(l.split("\t")[0].strip() == "spark.so" for l in out.splitlines()),
          "tshark -G plugins does not list spark.so:\n" + out)
    fields = sh.run(["-G", "fields"]).stdout
    names = {l.split("\t")[2] for l in fields.splitlines() if l.startswith("F\t")}
    for f in ("spark.step", "spark.direction", "spark.device_id", "spark.nonce", "spark.nonce_ok",
              "spark.id_block", "spark.session_block", "spark.signature_valid", "spark.signature_ok",
              "spark.frame.length", "spark.verdict", "spark.verdict.evidence", "spark.verdict.proven",
              "spark.verdict.candidate", "spark.finding", "spark.generation", "spark.response_time",
              "spark.response_to", "spark.response_in", "spark.msg.kind", "spark.event.name",
              "spark.event.data", "spark.event.ttl", "spark.event.public", "spark.function.name",
              "spark.function.arg", "spark.function.result", "spark.variable.name", "spark.variable.value",
              "spark.time", "spark.ota.chunk_index", "spark.ota.crc_ok"):
        check(f in names, "field %s is not registered" % f)
    prefs = sh.run(["-G", "defaultprefs"]).stdout
    check("spark.keyfile" in prefs, "preference spark.keyfile is missing")
    heur = sh.run(["-G", "heuristic-decodes"]).stdout
    check(any(l.split("\t")[:2] == ["tcp", "spark"] for l in heur.splitlines()),
          "no Spark heuristic on tcp:\n" + heur)


def handshake_capture(rng, sport=5683, split=True, ipv6=False):
    """A complete handshake shape: nonce in 2 segments, id block, session block in 3 segments, two Hellos,
    then two frames in one segment and one frame across two segments; closed by the device."""
    c = Capture(sport=sport, ipv6=ipv6)
    c.open()
    n = rnd(40, rng)
    if split:
        c.pkt(1, PSH | ACK, n[:25])
        c.pkt(1, PSH | ACK, n[25:])
    else:
        c.pkt(1, PSH | ACK, n)
    c.pkt(0, PSH | ACK, rnd(256, rng))
    b = rnd(384, rng)
    if split:
        c.pkt(1, ACK, b[:200])
        c.pkt(1, ACK, b[200:300])
        c.pkt(1, PSH | ACK, b[300:])
    else:
        c.pkt(1, PSH | ACK, b)
    c.pkt(0, PSH | ACK, frame(16, rng))
    c.pkt(1, PSH | ACK, frame(16, rng))
    c.pkt(0, PSH | ACK, frame(16, rng) + frame(32, rng))
    f = frame(48, rng)
    c.pkt(0, PSH | ACK, f[:20])
    c.pkt(0, PSH | ACK, f[20:])
    c.close(first=0)
    return c


def test_handshake_shape(sh, ipv6=False):
    rng = random.Random(5683)
    cap = sh.write("shape.pcap", handshake_capture(rng, ipv6=ipv6).bytes())
    rows = sh.fields(cap, ["spark.step", "spark.direction", "spark.pdu.first_frame", "spark.pdu.completed_in",
                           "spark.frame.length", "spark.verdict"])
    by = {int(r[0]): r for r in rows}
    # frames: 1-3 TCP handshake, 4-5 nonce, 6 id block, 7-9 session block, 10 hello, 11 hello,
    # 12 two frames, 13-14 one frame, 15-17 FIN
    check(by[4][1] == "" and by[4][4] == "5", "frame 4 (first part of the nonce) should point at frame 5: %r"
          % by[4])
    check(by[5][1] == "nonce" and by[5][2] == "1", "frame 5 should complete the nonce (cloud->device): %r" % by[5])
    check(by[5][3] == "4", "the nonce should start in frame 4: %r" % by[5])
    check(by[6][1] == "id-block" and by[6][2] == "0", "frame 6 should be the id block (device->cloud): %r" % by[6])
    check(by[7][4] == "9" and by[8][4] == "9", "frames 7, 8 should point at frame 9: %r %r" % (by[7], by[8]))
    check(by[9][1] == "session-block" and by[9][3] == "7", "frame 9 should complete the session block: %r"
          % by[9])
    check(by[10][1] == "hello" and by[10][2] == "0" and by[10][5] == "16", "frame 10: device hello: %r" % by[10])
    check(by[11][1] == "hello" and by[11][2] == "1", "frame 11: cloud hello: %r" % by[11])
    check(by[12][1] == "frame,frame" and by[12][5] == "16,32", "frame 12 should hold two frames: %r" % by[12])
    check(by[13][1] == "" and by[13][4] == "14", "frame 13 should point at frame 14: %r" % by[13])
    check(by[14][1] == "frame" and by[14][5] == "48" and by[14][3] == "13",
          "frame 14 should complete a 48-byte frame begun in 13: %r" % by[14])
    for r in rows:
        check(int(r[0]) < 4 or int(r[0]) > 14 or r[1] or r[4], "frame %s shows nothing: %r" % (r[0], r))


def test_ipv6(sh):
    """The same over IPv6, on the port and through the heuristic."""
    test_handshake_shape(sh, ipv6=True)
    rng = random.Random(6)
    port = sh.free_port()
    cap = sh.write("v6heur.pcap", handshake_capture(rng, sport=port, split=False, ipv6=True).bytes())
    rows = sh.fields(cap, ["spark.step", "spark.direction", "ipv6.src"])
    steps = [(r[1], r[2], r[3]) for r in rows if r[1]]
    check(steps[:3] == [("nonce", "1", "fd00::1"), ("id-block", "0", "fd00::2"), ("session-block", "1", "fd00::1")],
          "IPv6 on port %d: %r" % (port, rows))


def test_retransmission(sh):
    rng = random.Random(7)
    c = Capture()
    c.open()
    n = rnd(40, rng)
    c.pkt(1, PSH | ACK, n)
    c.pkt(1, PSH | ACK, n, seq=c.seq[1] - 40)            # the nonce again: a retransmission
    idb = rnd(256, rng)
    c.pkt(0, PSH | ACK, idb[:100])
    c.pkt(0, PSH | ACK, idb[50:], seq=c.seq[0] - 50)     # overlaps 50 bytes already seen
    c.seq[0] += 256 - 100
    c.pkt(1, PSH | ACK, rnd(384, rng))
    c.close()
    cap = sh.write("retrans.pcap", c.bytes())
    for extra in ([], ["-o", "tcp.analyze_sequence_numbers:FALSE"]):
        rows = sh.fields(cap, ["spark.step"], extra=extra)
        steps = [s for r in rows for s in r[1].split(",") if s]
        check(steps == ["nonce", "id-block", "session-block"],
              "retransmitted bytes must not make steps twice (%r): %r" % (extra, steps))
    for extra in ([], ["-o", "tcp.analyze_sequence_numbers:FALSE"]):
        rows = sh.fields(cap, ["spark.step", "spark.retransmitted", "spark.id_block", "spark.nonce"], extra=extra)
        by = {int(r[0]): r for r in rows}
        check(by[5][2] == "40", "frame 5 repeats the 40 nonce bytes: %r" % by[5])
        check(by[4][4] == n.hex(), "the nonce field must hold the nonce bytes: %r" % by[4])
        check(by[7][1] == "id-block" and by[7][2] == "50",
              "frame 7 completes the id block after 50 old bytes (%r): %r" % (extra, by[7]))
        check(by[7][3] == idb.hex(), "the id block must be the device's 256 bytes, overlap removed (%r)" % extra)


def test_tcp_header(sh):
    """The TCP header as libkeyring reads it for the plugin (as for cloudmon): the window scale option of
    both SYNs widens the RST window past 64 KiB; a copy whose checksum is valid beats one whose checksum is
    bad; with the checksum left to offload, the copies are candidates no key here can judge (disputed)."""
    rng = random.Random(21)
    ws7 = b"\x01\x03\x03\x07"                                # NOP, window scale 7

    def rst_capture(opts):
        c = Capture(t0=1700000100.0)
        c.pkt(0, SYN, opts=opts)
        c.pkt(1, SYN | ACK, opts=opts)
        c.pkt(0, ACK)
        c.pkt(1, PSH | ACK, rnd(40, rng))
        c.pkt(0, PSH | ACK, rnd(256, rng))
        c.pkt(1, PSH | ACK, rnd(384, rng), window=1000)      # 1000 << 7 = 128000 bytes when scaled
        c.pkt(0, RST, seq=c.seq[0] + 100000, advance=False)
        return c

    for opts, want in ((ws7, "reset by the device"), (b"", "RST ignored: ")):
        cap = sh.write("wscale.pcap", rst_capture(opts).bytes())
        closes = [r[1] for r in sh.fields(cap, ["spark.close"]) if r[1]]
        check(len(closes) == 1 and closes[0].startswith(want),
              "an RST 100000 bytes ahead with window scale %r: %r" % (opts.hex(), closes))
    idb = rnd(256, rng)
    other = bytes(b ^ 0x5a for b in idb[:100])
    for first, second, want in (("bad", "good", idb.hex()), (None, None, None)):
        c = Capture(t0=1700000200.0)
        c.open()
        c.pkt(1, PSH | ACK, rnd(40, rng))
        c.pkt(0, PSH | ACK, other, advance=False, csum=first)
        c.pkt(0, PSH | ACK, idb[:100], csum=second)
        c.pkt(0, PSH | ACK, idb[100:])
        c.pkt(1, PSH | ACK, rnd(384, rng))
        cap = sh.write("csum.pcap", c.bytes())
        rows = sh.fields(cap, ["spark.step", "spark.id_block", "spark.note"])
        ids = [(r[2], r[3]) for r in rows if "id-block" in r[1].split(",")]
        if want:
            check(len(ids) == 1 and ids[0][0] == want and "disputed" not in ids[0][1],
                  "the copy whose checksum is valid is the id block: %r" % ids)
        else:
            check(len(ids) == 1 and "disputed" in ids[0][1], "copies no key can judge are disputed: %r" % ids)


def test_gap(sh):
    rng = random.Random(11)
    c = Capture()
    c.open()
    c.pkt(1, PSH | ACK, rnd(40, rng))
    c.pkt(0, PSH | ACK, rnd(256, rng))
    c.pkt(1, PSH | ACK, rnd(384, rng))
    c.pkt(0, PSH | ACK, frame(16, rng))
    c.pkt(1, PSH | ACK, frame(16, rng))
    c.skip(1, 34)                                        # a 34-byte cloud frame the capture missed
    c.pkt(1, PSH | ACK, frame(32, rng))
    c.close()
    cap = sh.write("gap.pcap", c.bytes())
    rows = sh.fields(cap, ["spark.gap", "spark.finding", "spark.step"])
    by = {int(r[0]): r for r in rows}
    # frame 9 may only be out of order: the hole is given up at frame 11, where the device acknowledges
    # the missing bytes (frame 10 is the cloud's FIN)
    check(by[9][1] == "" and by[11][1] == "34", "frame 11 should report 34 missing bytes: %r" % by[11])
    check("gap" in by[11][2].split(","), "frame 11 should carry the finding gap: %r" % by[11])
    out = sh.run(["-2", "-r", cap, "-q", "-z", "expert,warn"]).stdout
    check("missing from the capture" in out, "no expert info about the missing bytes:\n" + out)


def test_heuristic(sh):
    rng = random.Random(3)
    port = sh.free_port()
    cap = sh.write("heur.pcap", handshake_capture(rng, sport=port, split=False).bytes())
    rows = sh.fields(cap, ["spark.step"])
    steps = [s for r in rows for s in r[1].split(",") if s]
    check(steps[:5] == ["nonce", "id-block", "session-block", "hello", "hello"],
          "the heuristic should find the handshake on port %d: %r" % (port, steps))
    rows = sh.fields(cap, ["spark.step"], extra=["--disable-heuristic", "spark_tcp"])
    check(not any(r[1] for r in rows), "with the heuristic disabled nothing on port %d is Spark" % port)
    # Decode As works on the same capture with the heuristic off
    rows = sh.fields(cap, ["spark.step"], extra=["--disable-heuristic", "spark_tcp", "-d", "tcp.port==%d,spark" % port])
    steps = [s for r in rows for s in r[1].split(",") if s]
    check(steps[:3] == ["nonce", "id-block", "session-block"], "Decode As tcp.port==%d,spark: %r" % (port, steps))
    # a text banner of 40 bytes on another port is not taken
    c = Capture(sport=sh.free_port(port + 1))
    c.open()
    c.pkt(1, PSH | ACK, b"HTTP/1.1 400 Bad Request\r\nServer: x\r\n\r\n")
    c.pkt(0, PSH | ACK, rnd(256, rng))
    c.close()
    cap = sh.write("banner.pcap", c.bytes())
    rows = sh.fields(cap, ["spark.step"])
    check(not any(r[1] for r in rows), "a text banner on a free port must not be taken for a nonce: %r" % rows)


def test_port_pref(sh):
    """spark.tcp.port adds the port to the Spark port table (the heuristic is off to show the table)."""
    rng = random.Random(4)
    port = sh.free_port()
    cap = sh.write("port.pcap", handshake_capture(rng, sport=port, split=False).bytes())
    off = ["--disable-heuristic", "spark_tcp"]
    rows = sh.fields(cap, ["spark.step"], extra=off)
    check(not any(r[1] for r in rows), "port %d is not Spark by default: %r" % (port, rows))
    rows = sh.fields(cap, ["spark.step"], extra=off + ["-o", "spark.tcp.port:%d" % port])
    steps = [s for r in rows for s in r[1].split(",") if s]
    check(steps[:3] == ["nonce", "id-block", "session-block"], "spark.tcp.port:%d should take port %d: %r"
          % (port, port, steps))


def test_not_spark(sh):
    rng = random.Random(8)
    c = Capture()
    c.open()
    c.pkt(1, PSH | ACK, b"HTTP/1.1 302 Found\r\nLocation: http://portal.example/login\r\n\r\n")
    c.pkt(0, PSH | ACK, rnd(256, rng))
    c.close()
    cap = sh.write("portal.pcap", c.bytes())
    rows = sh.fields(cap, ["spark.step", "spark.verdict"])
    verdicts = [v for r in rows for v in r[2].split(",") if v]
    check(verdicts and verdicts[-1] == "not-spark", "a captive portal on 5683 should be not-spark: %r" % rows)


def test_stock_tshark(sh):
    """The 'before': without the plugin, Wireshark calls the handshake CoAP, and much of it malformed."""
    rng = random.Random(5)
    cap = sh.write("stock.pcap", handshake_capture(rng, split=False).bytes())
    out = sh.run(["-r", cap], plugin=False).stdout
    check("CoAP" in out, "stock tshark should show CoAP on port 5683:\n" + out)
    check("Spark" not in out, "stock tshark must not know Spark:\n" + out)
    plugins = sh.run(["-G", "plugins"], plugin=False).stdout
    check("spark.so" not in plugins, "the stock run must not load spark.so")
    out = sh.run(["-r", cap]).stdout
    check("Spark" in out and "Nonce" in out, "with the plugin the same capture is Spark:\n" + out)
    # a real failing capture: stock tshark's expert infos call it malformed CoAP; the plugin names the cause
    cap, kf = sample_in(sh, "device-key-mismatch-g1")
    out = sh.run(["-r", cap, "-q", "-z", "expert"], plugin=False).stdout
    check("Malformed" in out and "CoAP" in out, "stock tshark should report malformed CoAP:\n" + out)
    out = sh.run(["-r", cap, "-o", "spark.keyfile:" + kf, "-q", "-z", "expert"]).stdout
    check("Malformed" not in out and "Verdict device-key-mismatch (" in out,
          "with the plugin: no malformed CoAP, the verdict instead:\n" + out)


def test_bad_keyfile(sh):
    rng = random.Random(6)
    cap = sh.write("bk.pcap", handshake_capture(rng).bytes())
    kf = sh.write("bad/keyfile", "server-private keys/none.pem\ndevise 0123 nothing\n")
    r = sh.run(["-r", cap, "-o", "spark.keyfile:" + kf], check_rc=False)
    lines = [l for l in r.stderr.splitlines() if "keyfile" in l]
    check(len(lines) >= 1, "a bad keyfile must be reported on stderr:\n" + r.stderr)
    check(kf in lines[0], "the error must name the keyfile: %r" % lines[0])
    check("Nonce" in r.stdout, "the capture must still be dissected without keys:\n" + r.stdout)
    out = sh.run(["-2", "-r", cap, "-o", "spark.keyfile:" + kf, "-q", "-z", "expert,error"], check_rc=False).stdout
    check("was not loaded" in out, "the keyfile error must also be an expert info:\n" + out)


def test_capture_ends(sh):
    """A capture that stops mid-handshake: the second pass knows the capture ended and says incomplete,
    on the connection's last frame."""
    rng = random.Random(12)
    c = Capture()
    c.open()
    c.pkt(1, PSH | ACK, rnd(40, rng))
    c.pkt(0, PSH | ACK, rnd(256, rng))
    cap = sh.write("ends.pcap", c.bytes())
    rows = sh.fields(cap, ["spark.verdict", "spark.verdict.final"])
    check([r[1] for r in rows] == ["", "", "", "", "incomplete"] and rows[-1][2] == "1",
          "the last frame should carry the final verdict incomplete: %r" % rows)


# ---- decryption with the specification's test vectors --------------------------------------------

def vectors_capture():
    import vectors as v
    rng = random.Random(82)
    c = Capture()
    c.open()
    c.pkt(1, PSH | ACK, bytes.fromhex(v.NONCE))
    c.pkt(0, PSH | ACK, rnd(256, rng))          # the id block (no server private key for these vectors)
    blk = bytes.fromhex(v.SESSION_BLOCK)
    c.pkt(1, ACK, blk[:128])
    c.pkt(1, PSH | ACK, blk[128:])
    for d, hx in v.FRAMES:
        c.pkt(0 if d == "d2s" else 1, PSH | ACK, bytes.fromhex(hx))
    c.close(first=0)
    return c


def vectors_setup(sh):
    import vectors as v
    cap = sh.write("vec/capture.pcap", vectors_capture().bytes())
    sh.write("vec/keys/device.der", bytes.fromhex(v.DEVICE_PRIVATE_DER))
    sh.write("vec/keys/other-device.der", bytes.fromhex(v.OTHER_DEVICE_PRIVATE_DER))
    sh.write("vec/keys/cloud.der", bytes.fromhex(v.SERVER_PUBLIC_DER))
    sh.write("vec/keys/other-cloud.der", bytes.fromhex(v.SERVER_PUBLIC_8_1_DER))
    return cap


VEC_FIELDS = ["spark.step", "spark.session_block.opened", "spark.signature_valid", "spark.signature_ok",
              "spark.frame.state", "coap.opt.uri_path_recon", "coap.mid", "spark.msg.kind",
              "spark.function.name", "spark.function.arg", "spark.function.result", "spark.response_to",
              "spark.verdict"]


def vec_rows(sh, cap, keyfile, extra=(), two_pass=True):
    args = list(extra)
    if keyfile:
        args = ["-o", "spark.keyfile:" + keyfile] + args
    rows = sh.fields(cap, VEC_FIELDS, extra=args, two_pass=two_pass)
    return {int(r[0]): dict(zip(["frame"] + VEC_FIELDS, r)) for r in rows}


def test_decrypt_vectors(sh):
    """A first-generation session from the specification's vectors, opened with the device key."""
    cap = vectors_setup(sh)
    kf = sh.write("vec/keyfile", "# test vectors\nserver-public keys/cloud.der\ndevice * keys/device.der\n")
    by = vec_rows(sh, cap, kf)
    # 1-3 SYN, 4 nonce, 5 id block, 6-7 session block, 8 hello, 9 call, 10 ack, 11 return, 12-14 FIN
    check(by[7]["spark.step"] == "session-block", "frame 7 completes the session block: %r" % by[7])
    check(by[7]["spark.session_block.opened"] == "1", "the device key opens the session block: %r" % by[7])
    check(by[7]["spark.signature_valid"] == "1" and by[7]["spark.signature_ok"] == "1",
          "the cloud's signature verifies: %r" % by[7])
    check(by[8]["coap.opt.uri_path_recon"] == "/h" and by[8]["coap.mid"] == "38834",
          "the device Hello decrypts to CoAP POST /h, id 0x97b2: %r" % by[8])
    check(by[9]["coap.opt.uri_path_recon"] == "/f/brew", "the call decrypts to /f/brew: %r" % by[9])
    check(by[9]["spark.function.name"] == "brew" and by[9]["spark.function.arg"] == "32,240",
          "function brew(32,240): %r" % by[9])
    check(by[11]["spark.function.result"] == "456", "the function returns 456: %r" % by[11])
    check(by[11]["spark.response_to"] == "9", "the return answers the call in frame 9: %r" % by[11])
    check(by[10]["spark.msg.kind"] == "empty-ack", "frame 10 is an empty ack: %r" % by[10])
    # same answers in one pass and through a display filter
    one = vec_rows(sh, cap, kf, two_pass=False)
    for n in (7, 8, 9, 10, 11):
        for f in ("spark.step", "coap.opt.uri_path_recon", "spark.function.name", "spark.function.result",
                  "spark.signature_ok"):
            check(one[n][f] == by[n][f], "one pass differs at frame %d %s: %r vs %r" % (n, f, one[n][f], by[n][f]))
    flt = vec_rows(sh, cap, kf, extra=["-Y", 'spark.function.name == "brew"'])
    check(sorted(flt) == [9, 11], "filter spark.function.name == brew: frames %r" % sorted(flt))
    check(flt[11]["spark.function.result"] == "456", "filtered run shows the same result: %r" % flt[11])
    flt = vec_rows(sh, cap, kf, extra=["-Y", "coap"])
    check(sorted(flt) == [8, 9, 10, 11], "filter coap matches the decrypted frames only: %r" % sorted(flt))


def test_decrypt_session_line(sh):
    """A session line (40 bytes of session material) decrypts without any RSA key."""
    cap = vectors_setup(sh)
    m = "ead9e1e2014903b9e76632f6fa5afa66" "9522a567e100cd3cfe5215473921b63d" "97b197250038fa09"
    import vectors as v
    kf = sh.write("vec/keyfile-session", "session %s %s\n" % (v.DEVICE_ID, m))
    by = vec_rows(sh, cap, kf)
    check(by[9]["coap.opt.uri_path_recon"] == "/f/brew", "the session line decrypts the call: %r" % by[9])
    check(by[11]["spark.function.result"] == "456", "and the return: %r" % by[11])


def test_no_keys(sh):
    """Without keys nothing is decrypted and nothing is handed to CoAP; the steps are still named."""
    cap = vectors_setup(sh)
    by = vec_rows(sh, cap, None)
    steps = [by[n]["spark.step"] for n in sorted(by) if by[n]["spark.step"]]
    check(steps == ["nonce", "id-block", "session-block", "hello", "hello", "frame", "frame"],
          "steps without keys: %r" % steps)
    for n in sorted(by):
        check(by[n]["coap.mid"] == "", "frame %d must not reach CoAP without keys: %r" % (n, by[n]))
    check(by[8]["spark.frame.state"] == "0", "frames are not decrypted: %r" % by[8])


def test_wrong_keys(sh):
    """Another device's key does not open the session block; another cloud's key does not verify it."""
    cap = vectors_setup(sh)
    kf = sh.write("vec/keyfile-wrong", "server-public keys/other-cloud.der\ndevice * keys/other-device.der\n")
    by = vec_rows(sh, cap, kf)
    check(by[7]["spark.session_block.opened"] == "0", "the wrong device key must not open it: %r" % by[7])
    check(by[7]["spark.signature_valid"] == "0", "the wrong cloud key must not verify it: %r" % by[7])
    for n in sorted(by):
        check(by[n]["coap.mid"] == "", "frame %d must not decrypt with wrong keys: %r" % (n, by[n]))
    out = sh.run(["-2", "-r", cap, "-o", "spark.keyfile:" + kf, "-q", "-z", "expert"]).stdout
    check("Session key block not opened" in out, "an expert info must say the session block was not opened:\n"
          + out)


# ---- the samples (captures of the lab device and cloud, with their keyfiles) ------------------------

def samples_dir():
    return os.path.join(source_root(), "samples")


def read_expected():
    path = os.path.join(samples_dir(), "expected.tsv")
    if not os.path.exists(path):
        raise Fail("%s is missing" % path)
    lines = [l.rstrip("\n") for l in open(path) if l.strip()]
    head = lines[0].split("\t")
    rows = [dict(zip(head, l.split("\t"))) for l in lines[1:]]
    check(rows, "expected.tsv has no scenarios")
    return rows


def sample_in(sh, scenario):
    """Copies one scenario (capture, keyfile, keys) into the private folder; returns (capture, keyfile)."""
    dst = "samples/" + scenario
    if not os.path.exists(sh.path(dst)):
        sh.copy_in(os.path.join(samples_dir(), scenario), dst)
    return sh.path(dst + "/capture.pcap"), sh.path(dst + "/keyfile")


def connections(sh, cap, keyfile=None, two_pass=True, extra=()):
    """Per TCP connection that shows Spark, in the order they start: last verdict, device ids, findings."""
    args = list(extra)
    if keyfile:
        args = ["-o", "spark.keyfile:" + keyfile] + args
    rows = sh.fields(cap, ["tcp.stream", "spark.verdict", "spark.device_id", "spark.finding", "spark.step",
                           "coap.mid", "spark.msg.kind"], extra=args, two_pass=two_pass)
    conns = {}
    order = []
    for r in rows:
        stream, verdict, ids, finds, steps, mid, kind = r[1:8]
        if not (verdict or ids or finds or steps) or stream == "":
            continue
        if stream not in conns:
            conns[stream] = {"verdict": "", "ids": set(), "findings": set(), "decrypted": 0, "steps": set()}
            order.append(stream)
        c = conns[stream]
        if mid or kind:
            c["decrypted"] += 1
        c["steps"].update(x for x in steps.split(",") if x)
        if verdict:
            c["verdict"] = verdict.split(",")[-1]
        c["ids"].update(i for i in ids.split(",") if i)
        c["findings"].update(f for f in finds.split(",") if f)
    return [conns[k] for k in order]


def test_samples_keys(sh):
    """Every sample with its keyfile: the verdict, the device id and the findings of expected.tsv."""
    for row in read_expected():
        cap, kf = sample_in(sh, row["scenario"])
        conns = connections(sh, cap, kf)
        want_v = row["verdicts"].split(",")
        want_ids = row["device_ids"].split(",")
        want_f = set() if row["findings"] in ("-", "") else set(row["findings"].split(","))
        got_v = [c["verdict"] for c in conns]
        check(got_v == want_v, "%s: verdicts %r, expected %r" % (row["scenario"], got_v, want_v))
        for i, c in enumerate(conns):
            # the id travels only inside the id block: when the device never sent one (stalled-device), or
            # sealed it to a cloud key the keyfile does not hold (server-key-mismatch), no key reveals it
            if not c["ids"] and (c["verdict"] == "server-key-mismatch" or "id-block" not in c["steps"]):
                continue
            check(c["ids"] == {want_ids[i]}, "%s: connection %d device id %r, expected %s"
                  % (row["scenario"], i, sorted(c["ids"]), want_ids[i]))
        got_f = set().union(*[c["findings"] for c in conns])
        check(got_f == want_f, "%s: findings %r, expected %r" % (row["scenario"], sorted(got_f), sorted(want_f)))
        if "ok" in want_v and row["scenario"] != "mid-session":
            check(all(c["decrypted"] > 0 for c in conns), "%s: the keyfile decrypts every session: %r"
                  % (row["scenario"], conns))



def test_samples_no_keys(sh):
    """Every sample without keys: the verdict inferred from the wire, and nothing decrypted."""
    for row in read_expected():
        cap, _ = sample_in(sh, row["scenario"])
        conns = connections(sh, cap)
        got = [c["verdict"] for c in conns]
        want = row["verdicts_without_keys"].split(",")
        check(got == want, "%s without keys: verdicts %r, expected %r" % (row["scenario"], got, want))
        check(all(c["decrypted"] == 0 for c in conns), "%s without keys: frames decrypted: %r"
              % (row["scenario"], conns))
    # inferred verdicts name their candidate causes
    cap, _ = sample_in(sh, "server-key-mismatch")
    rows = sh.fields(cap, ["spark.verdict.candidate", "spark.verdict.proven"], extra=["-Y", "spark.verdict"])
    cands = set(rows[-1][1].split(","))
    check(cands == {"server-key-mismatch", "unknown-device", "nonce-mismatch"} and rows[-1][2] == "0",
          "id-block-rejected must list its candidates and be inferred: %r" % rows)


def test_samples_one_pass(sh):
    """tshark without -2 (one pass, as a live capture is seen) gives every sample's verdict too, and the same
    decrypted session as two passes (the second pass renders what the first found, no crypto again)."""
    for row in read_expected():
        cap, kf = sample_in(sh, row["scenario"])
        one = [c["verdict"] for c in connections(sh, cap, kf, two_pass=False)]
        check(one == row["verdicts"].split(","), "%s in one pass: verdicts %r, expected %s"
              % (row["scenario"], one, row["verdicts"]))
    cap, kf = sample_in(sh, "healthy")
    f = ["spark.step", "spark.msg.kind", "spark.msg.summary", "coap.mid", "coap.opt.uri_path_recon"]
    a = sh.fields(cap, f, extra=["-o", "spark.keyfile:" + kf], two_pass=False)
    b = sh.fields(cap, f, extra=["-o", "spark.keyfile:" + kf])
    check(a == b, "healthy: one pass and two passes differ")


def test_summary_without_tree(sh):
    """Summary lines are the same whether or not a tree is built: tshark's single pass without a tree leaves
    Wireshark's CoAP dissector out (nothing it adds would show), a display filter builds a tree and calls it;
    tshark -2 calls it on the first pass, and its second pass shows the same with or without a tree. The
    decrypted frames still say CoAP and the message in the Protocol and Info columns."""
    for row in read_expected():
        cap, kf = sample_in(sh, row["scenario"])
        keys = ["-o", "spark.keyfile:" + kf]
        plain = sh.run(["-n", "-r", cap] + keys).stdout
        tree = sh.run(["-n", "-r", cap, "-Y", "frame"] + keys).stdout
        two = sh.run(["-n", "-2", "-r", cap] + keys).stdout
        two_tree = sh.run(["-n", "-2", "-r", cap, "-Y", "frame"] + keys).stdout
        check(plain and plain == tree, "%s: summary lines differ when a tree is built" % row["scenario"])
        check(two and two == two_tree, "%s: -2: summary lines differ when a tree is built" % row["scenario"])
        if row["scenario"] == "healthy":
            coap = [l for l in plain.splitlines() if " CoAP " in l]
            mids = sh.fields(cap, ["coap.mid"], extra=keys + ["-Y", "coap"])
            check(coap and len(coap) == len(mids), "healthy: %d summary lines say CoAP, %d frames hold CoAP"
                  % (len(coap), len(mids)))


def test_samples_filtered(sh):
    """A display filter on spark.verdict keeps exactly the frames that carry the verdicts."""
    for row in read_expected():
        cap, kf = sample_in(sh, row["scenario"])
        want = row["verdicts"].split(",")[0]
        flt = [c["verdict"] for c in connections(sh, cap, kf, extra=["-Y", 'spark.verdict == "%s"' % want])]
        check(flt and set(flt) == {want} and len(flt) == row["verdicts"].count(want),
              "%s filtered: verdicts %r, expected %s"
              % (row["scenario"], flt, row["verdicts"]))


def _cloud_log(scenario):
    return open(os.path.join(samples_dir(), scenario, "sparkcloud.log")).read()


def test_samples_messages(sh):
    """The healthy session decrypted: what the lab cloud logged is what the plugin shows, and CoAP parses it."""
    import re
    import datetime
    cap, kf = sample_in(sh, "healthy")
    log = _cloud_log("healthy")
    f = ["spark.msg.kind", "coap.opt.uri_path_recon", "spark.event.name", "spark.event.data", "spark.event.ttl",
         "spark.event.public", "spark.function.name", "spark.function.arg", "spark.function.result",
         "spark.variable.name", "spark.variable.value", "spark.time", "spark.response_to", "spark.direction",
         "coap.code"]
    rows = sh.fields(cap, f, extra=["-o", "spark.keyfile:" + kf, "-Y", "spark.msg.kind"])
    recs = [dict(zip(["frame"] + f, r)) for r in rows]
    kinds = [r["spark.msg.kind"] for r in recs]
    check(kinds[:2] == ["hello", "hello"], "the session opens with the two Hellos: %r" % kinds[:4])
    check(recs[0]["coap.opt.uri_path_recon"] == "/h" and recs[0]["spark.direction"] == "0",
          "the device Hello is CoAP POST /h: %r" % recs[0])
    for m in re.finditer(r'event (public|private) "([^"]+)" data "([^"]*)" ttl (\d+)', log):
        pub, name, data, ttl = m.groups()
        hit = [r for r in recs if r["spark.event.name"] == name and r["spark.direction"] == "0"]
        check(hit, "event %s from the log is not shown" % name)
        r = hit[0]
        check(r["spark.event.data"] == data and r["spark.event.ttl"] == ttl and
              r["spark.event.public"] == ("1" if pub == "public" else "0"),
              "event %s: data %r ttl %r public %r, log says %r %r %r" % (name, r["spark.event.data"],
              r["spark.event.ttl"], r["spark.event.public"], data, ttl, pub))
        want_uri = "/%s/%s" % ("e" if pub == "public" else "E", name)
        check(r["coap.opt.uri_path_recon"] == want_uri, "event %s: CoAP URI %r, expected %r"
              % (name, r["coap.opt.uri_path_recon"], want_uri))
    m = re.search(r'function (\w+)\("([^"]*)"\) returned (-?\d+)', log)
    check(m, "the healthy log has no function call")
    fname, farg, fres = m.groups()
    call = [r for r in recs if r["spark.msg.kind"] == "function-call" and r["spark.function.name"] == fname]
    ret = [r for r in recs if r["spark.msg.kind"] == "function-return"]
    check(call and call[0]["spark.function.arg"] == farg, "function call %s(%s) not shown: %r" % (fname, farg, call))
    check(ret and ret[0]["spark.function.result"] == fres, "function result %s not shown: %r" % (fres, ret))
    check(ret[0]["spark.response_to"] == call[0]["frame"], "the return must point at the call's frame: %r %r"
          % (ret[0], call[0]))
    for m in re.finditer(r'variable (\w+) = ("?)([^"(]*?)\2 \((\w+)\)', log):
        name, _, value, _ = m.groups()
        vals = [r["spark.variable.value"] for r in recs
                if r["spark.msg.kind"] == "variable-value" and r["spark.variable.name"] == name]
        check(vals and vals[0] == value, "variable %s = %s from the log: shown %r" % (name, value, vals))
    m = re.search(r"time request answered \((\d+)\)", log)
    check(m, "the healthy log has no time answer")
    when = datetime.datetime.fromtimestamp(int(m.group(1)), datetime.timezone.utc)
    t = [r["spark.time"] for r in recs if r["spark.msg.kind"] == "time-response"]
    check(t and when.strftime("%H:%M:%S") in t[0] and str(when.year) in t[0],
          "time answer %s: shown %r" % (when.isoformat(), t))
    check("ping" in kinds, "the device ping is shown: %r" % kinds)


def test_samples_ota(sh):
    """Firmware updates: chunk indexes and CRC checks, and the failed update's findings as expert infos."""
    cap, kf = sample_in(sh, "ota-complete")
    rows = sh.fields(cap, ["spark.msg.kind", "spark.ota.chunk_index", "spark.ota.crc_ok"],
                     extra=["-o", "spark.keyfile:" + kf, "-Y", 'spark.msg.kind == "chunk"'])
    check([r[2] for r in rows] == ["0", "1", "2", "3"], "ota-complete: chunk indexes %r" % rows)
    check(all(r[3] == "1" for r in rows), "ota-complete: every chunk's CRC matches: %r" % rows)
    cap, kf = sample_in(sh, "ota-failed")
    rows = sh.fields(cap, ["spark.ota.chunk_index", "spark.ota.crc_ok"],
                     extra=["-o", "spark.keyfile:" + kf, "-Y", 'spark.msg.kind == "chunk"'])
    check(any(r[1] == "1" and r[2] == "0" for r in rows), "ota-failed: chunk 1 with a bad CRC: %r" % rows)
    out = sh.run(["-2", "-r", cap, "-o", "spark.keyfile:" + kf, "-q", "-z", "expert"]).stdout
    check("ota-incomplete" in out and "ota-chunk-error" in out, "ota findings must be expert infos:\n" + out)


def test_samples_wrong_keys(sh):
    """The healthy capture with another device's and another cloud's keys: the handshake still completes on
    the wire (ok), nothing decrypts, and the expert infos say which key failed."""
    cap, _ = sample_in(sh, "healthy")
    src = os.path.join(samples_dir(), "keys")
    for k in ("other-device.der", "other-server-private.pem", "other-server-public.der"):
        sh.copy_in(os.path.join(src, k), "samples/healthy/wrong/" + k)
    kf = sh.write("samples/healthy/wrong/keyfile", "server-private other-server-private.pem\n"
                  "server-public other-server-public.der\ndevice * other-device.der\n")
    conns = connections(sh, cap, kf)
    check([c["verdict"] for c in conns] == ["ok"], "healthy with wrong keys: %r" % conns)
    coap = sh.fields(cap, ["coap.mid"], extra=["-o", "spark.keyfile:" + kf, "-Y", "coap"])
    check(coap == [], "nothing may decrypt with wrong keys: %d frames" % len(coap))
    out = sh.run(["-2", "-r", cap, "-o", "spark.keyfile:" + kf, "-q", "-z", "expert"]).stdout
    check("Device ID block not opened" in out and "Session key block not opened" in out,
          "the expert infos must say which blocks did not open:\n" + out)
    # the server keys alone: the id block opens (device id known), the session has no key
    kf = sh.write("samples/healthy/server-only", "server-private keys/server-private.pem\n"
                  "server-public keys/server-public.der\n")
    out = sh.run(["-2", "-r", cap, "-o", "spark.keyfile:" + kf, "-q", "-z", "expert,warn"]).stdout
    check("No key for device 53ff6c065067544816300187" in out, "the expert infos must name the device without a "
          "key:\n" + out)
    conns = connections(sh, cap, kf)
    check(conns[0]["ids"] == {"53ff6c065067544816300187"} and conns[0]["decrypted"] == 0,
          "server keys only: the id is known, nothing decrypts: %r" % conns)


# ---- Wireshark's conventions ----------------------------------------------------------------------

def test_conventions(sh):
    """Every spark field has a description; expert infos stay within 100 characters; spark.device_id appears
    at most once per packet; the decrypted CoAP is a protocol layer of its own (Protocol column, io,phs)."""
    out = sh.run(["-G", "fields"]).stdout
    spark = [c for c in (l.split("\t") for l in out.splitlines())
             if len(c) > 7 and c[0] == "F" and c[2].startswith("spark.")]
    check(len(spark) > 60, "too few spark fields: %d" % len(spark))
    # expert info fields (spark.expert.*) are made by Wireshark from the expert table: their description is
    # their name (the expert summary), and Wireshark gives none of them, its own included, a blurb
    bare = [c[2] for c in spark if not (c[1].strip() if c[2].startswith("spark.expert.") else c[7].strip())]
    check(not bare, "spark fields without a description: %r" % bare)
    sep = "\x1f"
    for row in read_expected():
        cap, kf = sample_in(sh, row["scenario"])
        for keys in (["-o", "spark.keyfile:" + kf], []):
            out = sh.run(["-2", "-r", cap, "-Y", "spark", "-T", "fields", "-E", "occurrence=a", "-E",
                          "aggregator=" + sep, "-e", "frame.number", "-e", "_ws.expert.message", "-e",
                          "spark.device_id"] + keys).stdout
            for line in out.splitlines():
                cols = (line.split("\t") + ["", ""])[:3]
                for msg in (m for m in cols[1].split(sep) if m):
                    check(len(msg) <= 100, "%s frame %s: expert info of %d characters: %s"
                          % (row["scenario"], cols[0], len(msg), msg))
                ids = [i for i in cols[2].split(sep) if i]
                check(len(ids) <= 1, "%s frame %s: spark.device_id %d times" % (row["scenario"], cols[0], len(ids)))
    cap, kf = sample_in(sh, "healthy")
    out = sh.run(["-r", cap, "-o", "spark.keyfile:" + kf, "-q", "-z", "io,phs"]).stdout
    lines = [l for l in out.splitlines() if "frames:" in l]
    depth = {l.split()[0]: len(l) - len(l.lstrip()) for l in lines}
    check("spark" in depth and "coap" in depth and depth["coap"] > depth["spark"],
          "-z io,phs must count CoAP under Spark:\n" + out)
    rows = sh.fields(cap, ["_ws.col.Protocol", "_ws.col.Info", "coap.mid"], extra=["-o", "spark.keyfile:" + kf])
    dec = [r for r in rows if r[3]]
    check(dec and all(r[1] == "CoAP" for r in dec), "decrypted frames must show CoAP as protocol: %r" % dec[:3])
    check(any("Hello" in r[2] for r in dec), "the Info column stays Spark's (Hello): %r" % dec[:3])
    check(all(r[1] != "CoAP" for r in rows if not r[3]), "frames without decrypted CoAP must not say CoAP")


# ---- Follow ---------------------------------------------------------------------------------------

def parse_follow_yaml(out):
    """[(packet, peer, bytes)] from tshark -z follow,...,yaml output."""
    import base64
    recs, cur, b64 = [], None, None
    for line in out.splitlines():
        t = line.strip()
        if t.startswith("- packet:"):
            cur = [int(t.split(":")[1]), None, b""]
            recs.append(cur)
            b64 = None
        elif cur is not None and t.startswith("peer:"):
            cur[1] = int(t.split(":")[1])
        elif cur is not None and t.startswith("data: !!binary"):
            b64 = []
        elif b64 is not None and t and not t.startswith(("-", "=")) and ":" not in t:
            b64.append(t)
            cur[2] = base64.b64decode("".join(b64))
    return recs


def test_follow(sh):
    """tshark -z follow,spark,MODE,N gives each decrypted frame's plaintext (CoAP), per direction, in order."""
    cap, kf = sample_in(sh, "healthy")
    keys = ["-o", "spark.keyfile:" + kf]
    out = sh.run(["-r", cap, "-q", "-z", "follow,spark,yaml,0"] + keys).stdout
    recs = parse_follow_yaml(out)
    rows = sh.fields(cap, ["coap.mid", "spark.direction", "tcp.srcport"], extra=keys + ["-Y", "coap"])
    want = [(int(r[0]), int(m)) for r in rows for m in r[1].split(",")]
    got = [(p, int.from_bytes(d[2:4], "big")) for p, _, d in recs]
    check(len(want) > 10 and got == want, "follow yaml: (frame, CoAP message id) %r, the CoAP layer says %r"
          % (got[:6], want[:6]))
    check(all(d and d[0] >> 6 == 1 for _, _, d in recs), "every followed record is CoAP version 1")
    dirs = {int(r[0]): r[2].split(",")[0] for r in rows}
    peer_of_dir = {}
    for p, peer, _ in recs:
        peer_of_dir.setdefault(dirs[p], set()).add(peer)
    check(len(peer_of_dir) == 2 and all(len(v) == 1 for v in peer_of_dir.values()) and
          peer_of_dir["0"] != peer_of_dir["1"], "each direction must be one peer: %r" % peer_of_dir)
    out = sh.run(["-r", cap, "-q", "-z", "follow,spark,ascii,0"] + keys).stdout
    check("Follow: spark,ascii" in out and "motion/open" in out, "follow ascii must show the plaintext:\n" + out)
    out = sh.run(["-r", cap, "-q", "-z", "follow,spark,hex,0"] + keys).stdout
    check("Follow: spark,hex" in out and "6f 74 69 6f 6e" in out, "follow hex:\n" + out[:2000])
    out = sh.run(["-r", cap, "-q", "-z", "follow,spark,yaml,0"]).stdout
    check(parse_follow_yaml(out) == [], "without keys nothing is followed:\n" + out)


# ---- keys the Wireshark way: the key table, a session-secrets file, the export --------------------

def decrypted(sh, cap, extra):
    return [r[0] for r in sh.fields(cap, ["coap.mid"], extra=extra + ["-Y", "coap"])]


def uat_row(*cols):
    return "uat:spark_keys:" + ",".join('"%s"' % c for c in cols)


def test_keys_table(sh):
    """The key table (-o uat:spark_keys:...) alone and merged with a keyfile decrypts as the keyfile does; a bad
    row is refused with its reason; session lines exported by the plugin (0600, never through a symlink)
    decrypt the capture alone through the session-file preference; the session key shows only when asked."""
    cap, kf = sample_in(sh, "healthy")
    dev = "53ff6c065067544816300187"
    keys = os.path.dirname(kf) + "/keys/"
    want = decrypted(sh, cap, ["-o", "spark.keyfile:" + kf])
    check(len(want) > 10, "the keyfile decrypts the healthy sample: %r" % want)
    table = ["-o", uat_row("server-private", "", "", keys + "server-private.pem"),
             "-o", uat_row("device", dev, "", keys + dev + ".der")]
    check(decrypted(sh, cap, table) == want, "the key table must decrypt as the keyfile does")
    srv = sh.write("samples/healthy/server-only", "server-private keys/server-private.pem\n")
    check(decrypted(sh, cap, ["-o", "spark.keyfile:" + srv]) == [], "server keys alone decrypt nothing")
    merged = ["-o", "spark.keyfile:" + srv, "-o", uat_row("device", dev, "", keys + dev + ".der")]
    check(decrypted(sh, cap, merged) == want, "keyfile + table must decrypt as the keyfile does")
    r = sh.run(["-r", cap, "-o", uat_row("bogus", "", "", keys + dev + ".der")], check_rc=False)
    check(r.returncode != 0 and "Key type 'bogus'" in r.stderr, "a bad row must be refused: %r" % r.stderr)
    r = sh.run(["-r", cap, "-o", uat_row("device", "", "", keys + dev + ".der")], check_rc=False)
    check(r.returncode != 0 and "needs a device id" in r.stderr, "a device row needs an id: %r" % r.stderr)
    # export, then decrypt with the exported session lines only
    outdir = sh.path("out")                # tshark runs as nobody when root: a folder it may write
    os.makedirs(outdir)
    if os.geteuid() == 0:
        os.chown(outdir, 65534, 65534)
    out = os.path.join(outdir, "exported.keys")
    sh.run(["-r", cap, "-o", "spark.keyfile:" + kf, "-o", "spark.export_sessions:" + out, "-q", "-z",
            "spark,devices"])
    check(os.path.exists(out), "the export file was not written")
    check(os.stat(out).st_mode & 0o777 == 0o600, "the export file must be 0600: %o" % os.stat(out).st_mode)
    lines = open(out).read().split("\n")
    check(len(lines) == 2 and lines[0].startswith("session %s " % dev) and len(lines[0].split()[2]) == 80,
          "one session line for the healthy connection: %r" % lines)
    hint = lines[0].split()[3:]
    check(len(hint) == 1 and len(hint[0]) == 22 and hint[0].startswith("block=") and
          all(c in "0123456789abcdef" for c in hint[0][6:]), "the line carries its block= hint: %r" % lines)
    check(decrypted(sh, cap, ["-o", "spark.session_file:" + out]) == want,
          "the exported session line must decrypt the capture without keys")
    # the hint is kept through the session file: two lines of that material, told apart only by the hint
    sess, twin = lines[0].split(), "ffffffffffffffffffffffff"
    plain = sh.write("twin-plain", "session %s %s\nsession %s %s\n" % (dev, sess[2], twin, sess[2]))
    check(decrypted(sh, cap, ["-o", "spark.session_file:" + plain]) == [],
          "two session lines of one material without a hint: neither may be taken")
    hinted = sh.write("twin-hinted", "session %s %s\nsession %s %s %s\n" % (dev, sess[2], twin, sess[2], sess[3]))
    check(decrypted(sh, cap, ["-o", "spark.session_file:" + hinted]) == want,
          "the block= hint must select its line through the session file")
    bad = sh.write("bad-session", "session %s %s\nserver-private keys/server-private.pem\n" % (dev, "00" * 40))
    r = sh.run(["-r", cap, "-o", "spark.session_file:" + bad, "-q", "-z", "spark,devices"], check_rc=False)
    check("bad-session:2 holds another line" in r.stderr, "a key line in the session file is refused: %r" % r.stderr)
    # never through a symlink
    target = sh.write("target", "keep\n")
    os.chmod(target, 0o666)
    link = os.path.join(outdir, "link.keys")
    os.symlink(target, link)
    r = sh.run(["-r", cap, "-o", "spark.keyfile:" + kf, "-o", "spark.export_sessions:" + link, "-q", "-z",
                "spark,devices"], check_rc=False)
    check(open(target).read() == "keep\n", "the export wrote through a symlink")
    check("was not written" in r.stderr, "the refused export must say so: %r" % r.stderr)
    # the session key: only when the preference asks
    rows = sh.fields(cap, ["spark.session.key"], extra=["-o", "spark.keyfile:" + kf])
    check(not any(r[1] for r in rows), "the session key must not show by default")
    rows = sh.fields(cap, ["spark.session.key", "spark.session.iv", "spark.session.salt"],
                     extra=["-o", "spark.keyfile:" + kf, "-o", "spark.show_session_key:TRUE"])
    shown = [r for r in rows if r[1]]
    hexs = lines[0].split()[2]
    check(len(shown) == 1 and [x.replace(":", "") for x in shown[0][1:]] == [hexs[:32], hexs[32:64], hexs[64:]],
          "with show_session_key the key, IV and salt are the exported ones: %r" % shown)


# ---- the connection cap ------------------------------------------------------------------------------

def test_max_conns(sh):
    """spark.max_conns uses the connection layer's eviction (as cloudmon --max-conns): two half-open
    connections (a SYN only), then four sessions one second apart, each sending its id block a minute later.
    With a cap of 2 the first two sessions each end one half-open connection to make room (an expert info
    says so); the last two find the table full of connections carrying protocol data, which are never
    ended for a new one: they are not followed, and their frames say so. Without a cap all are followed."""
    rng = random.Random(12)
    pkts = []
    for i in range(2):
        c = Capture(cport=40200 + i, t0=1700000000.0 - 2 + i * 0.5)
        c.pkt(0, SYN)
        pkts += c.pkts
    for i in range(4):
        c = Capture(cport=40100 + i, t0=1700000000.0 + i)
        c.open()
        c.pkt(1, PSH | ACK, rnd(40, rng))
        c.t += 60
        c.pkt(0, PSH | ACK, rnd(256, rng))
        c.pkt(1, PSH | ACK, rnd(384, rng))
        pkts += c.pkts
    c.pkts = sorted(pkts, key=lambda p: p[0])
    cap = sh.write("six.pcap", c.bytes())
    f = ["tcp.srcport", "tcp.dstport", "spark.step", "spark.released", "spark.verdict", "spark.verdict.final"]

    def per_conn(extra):
        conns = {}
        for r in sh.fields(cap, f, extra=extra):
            port = int(r[1]) if int(r[1]) != 5683 else int(r[2])
            c = conns.setdefault(port, {"steps": [], "released": [], "final": []})
            c["steps"] += [x for x in r[3].split(",") if x]
            c["released"] += [int(x) for x in r[4].split(",") if x]
            c["final"] += [v for v, fin in zip(r[5].split(","), r[6].split(",")) if v and fin == "1"]
        return [conns[p] for p in sorted(conns)]

    full = ["nonce", "id-block", "session-block"]
    for extra in ([], ["-o", "spark.max_conns:0"]):
        conns = per_conn(extra)
        check(len(conns) == 6 and [c["steps"] for c in conns[:4]] == [full] * 4 and
              not any(c["released"] for c in conns), "without a cap (%r) all are followed: %r" % (extra, conns))
    conns = per_conn(["-o", "spark.max_conns:2"])
    check([c["released"] for c in conns[:4]] == [[1], [1], [], []],
          "the first two sessions each end a half-open connection: %r" % conns)
    check([c["steps"] for c in conns[:4]] == [full, full, [], []],
          "the sessions that carry data are never ended; the last two are not followed: %r" % conns)
    check([len(c["final"]) for c in conns] == [1, 1, 0, 0, 1, 1],
          "the followed connections end with one final verdict, the others have none: %r" % conns)
    out = sh.run(["-2", "-r", cap, "-o", "spark.max_conns:2", "-q", "-z", "expert,note"]).stdout
    check("1 connection without protocol data ended to make room: more than 2 open" in out,
          "an expert info must say a connection was ended to make room:\n" + out)
    out = sh.run(["-2", "-r", cap, "-o", "spark.max_conns:2", "-q", "-z", "expert,warn"]).stdout
    check("not followed: the table of 2 connections is full of connections that carry protocol data" in out,
          "an expert info must say a connection was not followed:\n" + out)


def test_max_conns_claimed(sh):
    """A connection given to the plugin by Decode As (the heuristic off) whose SYN the capture missed is
    followed from its first bytes, which claim it; when the table (spark.max_conns) is full of half-open
    connections, one is ended to make room, and the frame that brought the claim says so, as a frame on the
    Spark port would."""
    rng = random.Random(13)
    port = sh.free_port()
    pkts = []
    for i in range(2):
        c = Capture(cport=40300 + i, t0=1700000000.0 - 2 + i * 0.5)
        c.pkt(0, SYN)
        pkts += c.pkts
    c = Capture(cport=40400, sport=port, t0=1700000000.0)
    c.pkt(1, PSH | ACK, rnd(40, rng))        # the capture starts after its SYN: the claim makes its entry
    c.pkt(0, PSH | ACK, rnd(256, rng))
    pkts += c.pkts
    c.pkts = sorted(pkts, key=lambda p: p[0])
    cap = sh.write("claimed.pcap", c.bytes())
    claim = ["--disable-heuristic", "spark_tcp", "-d", "tcp.port==%d,spark" % port]
    rows = sh.fields(cap, ["tcp.srcport", "spark.step", "spark.released"], extra=claim + ["-o", "spark.max_conns:2"])
    released = [(int(r[0]), int(r[3])) for r in rows if r[3]]
    claimed = [r for r in rows if int(r[1]) == port]
    check(claimed and any(r[2] for r in rows), "Decode As tcp.port==%d,spark follows the connection: %r" % (port, rows))
    check(released == [(int(claimed[0][0]), 1)],
          "the claimed connection's first bytes end one half-open connection, said on their frame: %r" % rows)
    out = sh.run(["-2", "-r", cap, "-o", "spark.max_conns:2", "-q", "-z", "expert,note"] + claim).stdout
    check("1 connection without protocol data ended to make room: more than 2 open" in out,
          "an expert info must say a connection was ended to make room:\n" + out)


# ---- statistics per device --------------------------------------------------------------------------

def parse_devices(out):
    """{device id: (connections, {verdict: n}, messages, bytes)} from tshark -z spark,devices."""
    rows, on = {}, False
    for line in out.splitlines():
        cols = [c.strip() for c in line.split("|")]
        if cols[0] == "Device ID":
            on = True
            continue
        if on and len(cols) >= 5 and cols[1].isdigit():
            verdicts = {}
            for part in filter(None, (p.strip() for p in cols[2].split(","))):
                code, n = part.rsplit(" ", 1)
                verdicts[code] = int(n)
            rows[cols[0]] = (int(cols[1]), verdicts, int(cols[3]), int(cols[4]))
    return rows


def test_stats_devices(sh):
    """-z spark,devices: per device id its connections, final verdicts, messages and bytes, as the per-packet
    fields show them, on every sample (with keys, two passes) and in one pass on the healthy one."""
    for row in read_expected():
        cap, kf = sample_in(sh, row["scenario"])
        keys = ["-o", "spark.keyfile:" + kf]
        got = parse_devices(sh.run(["-2", "-r", cap, "-q", "-z", "spark,devices"] + keys).stdout)
        got = {k: v for k, v in got.items() if v[0] > 0}
        want = {}
        for c in connections(sh, cap, kf):
            dev = next(iter(c["ids"])) if c["ids"] else "(unknown)"
            n, verdicts = want.get(dev, (0, {}))
            if c["verdict"]:
                verdicts[c["verdict"]] = verdicts.get(c["verdict"], 0) + 1
            want[dev] = (n + 1, verdicts)
        check({k: v[:2] for k, v in got.items()} == want, "%s: -z spark,devices %r, the packets say %r"
              % (row["scenario"], got, want))
        msgs = sum(len([k for k in r[1].split(",") if k]) for r in sh.fields(cap, ["spark.msg.kind"], extra=keys))
        check(sum(v[2] for v in got.values()) == msgs, "%s: %d messages in the table, %d in the packets"
              % (row["scenario"], sum(v[2] for v in got.values()), msgs))
        check(all(v[3] > 0 for v in got.values()), "%s: a device row without bytes: %r" % (row["scenario"], got))
    cap, kf = sample_in(sh, "healthy")
    one = parse_devices(sh.run(["-r", cap, "-q", "-z", "spark,devices", "-o", "spark.keyfile:" + kf]).stdout)
    check(one.get("53ff6c065067544816300187", (0, {}))[:2] == (1, {"ok": 1}), "healthy in one pass: %r" % one)


# ---- installing -----------------------------------------------------------------------------------

def source_root():
    return os.environ.get("SPARKWIRE_SOURCE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                   "..", "..")


def test_install_plugin(sh):
    """make install-plugin as a normal user: spark.so alone in ~/.local/lib/wireshark/plugins/VER/epan, and
    tshark (no WIRESHARK_PLUGIN_DIR) loads it from there."""
    home = sh.path("insthome")
    os.makedirs(home)
    if os.geteuid() == 0:
        os.chown(home, 65534, 65534)
    make = shutil.which("make")
    check(make, "make is not installed")
    r = sh.run(["install-plugin"], home=home, cmd=[make, "-s", "-C", source_root(), "install-plugin",
               "BUILD=" + sh.path("nobuild"), "SPARK_SO=" + sh.path("plugins/%s/epan/spark.so" % sh.plugver)])
    want = os.path.join(".local", "lib", "wireshark", "plugins", sh.plugver, "epan", "spark.so")
    got = [os.path.relpath(os.path.join(d, f), home) for d, _, fs in os.walk(home) for f in fs]
    check(got == [want], "install-plugin must install only %s; found %r (%s)" % (want, got, r.stdout))
    check(os.stat(os.path.join(home, want)).st_mode & 0o777 == 0o644, "spark.so should be mode 0644")
    out = sh.run(["-G", "plugins"], plugin=None, home=home).stdout
    rows = [l.split("\t") for l in out.splitlines()]
    check(any(r[0].strip() == "spark.so" and r[-1].strip().startswith(home) for r in rows),
          "tshark does not load spark.so from the personal folder:\n" + out)
    # without the plugin built, one line says what to do
    r = sh.run(["install-plugin"], home=home, check_rc=False, cmd=[make, "-s", "-C", source_root(),
               "install-plugin", "BUILD=" + sh.path("nobuild"), "SPARK_SO=" + sh.path("nobuild/spark.so")])
    check(r.returncode != 0 and "build it first" in r.stdout + r.stderr, "a missing spark.so must be "
          "reported: %r" % (r.stdout + r.stderr))


def test_meson_install(sh):
    """meson install of the whole tree: with DESTDIR everything lands under it (spark.so in Wireshark's plugin
    folder); with another prefix every installed path, spark.so's too, is under that prefix."""
    build = os.environ.get("SPARKWIRE_BUILD_ROOT")
    check(build and os.path.isdir(build), "SPARKWIRE_BUILD_ROOT is not set (run through meson test)")
    dest = sh.path("destdir")
    r = subprocess.run(["meson", "install", "-C", build, "--no-rebuild", "--destdir", dest],
                       capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "meson install --destdir failed:\n" + r.stdout[-2000:] + r.stderr[-2000:])
    plugindir = subprocess.run(["pkg-config", "--variable=plugindir", "wireshark"], capture_output=True,
                               text=True).stdout.strip()
    check(os.path.isfile(dest + plugindir + "/epan/spark.so"), "spark.so is not in %s/epan under DESTDIR"
          % plugindir)
    check(any(os.listdir(os.path.join(d, "bin")) for d in (dest + "/usr/local", dest + "/usr")
              if os.path.isdir(os.path.join(d, "bin"))), "no command installed under DESTDIR")
    prefix = sh.path("prefix")
    tmpbuild = sh.path("prefixbuild")
    r = subprocess.run(["meson", "setup", tmpbuild, source_root(), "--prefix=" + prefix, "-Dfirmware=false",
                        "-Dmonitor=false", "-Dtests=disabled", "-Dplugin=enabled"],
                       capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "meson setup --prefix failed:\n" + r.stdout[-2000:] + r.stderr[-2000:])
    import json
    out = subprocess.run(["meson", "introspect", tmpbuild, "--installed"], capture_output=True, text=True).stdout
    paths = list(json.loads(out).values())
    check(any(p.endswith("/epan/spark.so") for p in paths), "spark.so is not installed: %r" % paths)
    outside = [p for p in paths if not p.startswith(prefix + "/")]
    check(not outside, "meson install with --prefix=%s writes outside it: %r" % (prefix, outside))


TESTS = {
    "plugin-loads": test_plugin_loads,
    "stock-tshark": test_stock_tshark,
    "handshake-shape": test_handshake_shape,
    "retransmission": test_retransmission,
    "tcp-header": test_tcp_header,
    "ipv6": test_ipv6,
    "gap": test_gap,
    "heuristic": test_heuristic,
    "port-pref": test_port_pref,
    "not-spark": test_not_spark,
    "bad-keyfile": test_bad_keyfile,
    "capture-ends": test_capture_ends,
    "decrypt-vectors": test_decrypt_vectors,
    "decrypt-session-line": test_decrypt_session_line,
    "no-keys": test_no_keys,
    "wrong-keys": test_wrong_keys,
    "samples-keys": test_samples_keys,
    "samples-no-keys": test_samples_no_keys,
    "samples-one-pass": test_samples_one_pass,
    "summary-without-tree": test_summary_without_tree,
    "samples-filtered": test_samples_filtered,
    "samples-messages": test_samples_messages,
    "samples-ota": test_samples_ota,
    "samples-wrong-keys": test_samples_wrong_keys,
    "conventions": test_conventions,
    "follow": test_follow,
    "keys-table": test_keys_table,
    "max-conns": test_max_conns,
    "max-conns-claimed": test_max_conns_claimed,
    "stats-devices": test_stats_devices,
    "install-plugin": test_install_plugin,
    "meson-install": test_meson_install,
}


def main():
    if len(sys.argv) < 3 or sys.argv[2] not in TESTS:
        sys.exit("usage: spark_tshark.py PLUGIN TEST   (TEST: %s)" % ", ".join(sorted(TESTS)))
    plugin, name = sys.argv[1], sys.argv[2]
    if not os.path.exists(plugin):
        sys.exit("spark_tshark.py: plugin %s not found (build it first: ninja -C BUILD)" % plugin)
    sh = Shark(plugin)
    # meson ends a test that runs too long with SIGTERM: still remove the private folder
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("FAIL %s: stopped (SIGTERM)" % name))
    try:
        TESTS[name](sh)
    except Fail as e:
        print("FAIL %s: %s" % (name, e))
        return 1
    finally:
        sh.close()
    print("ok %s" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
