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

    def run(self, args, plugin=True, check_rc=True):
        # no extcap helpers (they are not needed, and under the sanitizer preload they hang -G plugins)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home, "LANG": "C.UTF-8",
               "WIRESHARK_PLUGIN_DIR": self.plugdir if plugin else self.emptydir,
               "WIRESHARK_EXTCAP_DIR": self.emptydir, "WIRESHARK_CONFIG_DIR": self.home}
        if self.sanitized and plugin:
            libs = []
            for lib in ("libasan.so", "libubsan.so"):
                p = subprocess.run(["gcc", "-print-file-name=" + lib], capture_output=True,
                                   text=True).stdout.strip()
                if p and os.path.isabs(p):
                    libs.append(p)
            env["LD_PRELOAD"] = " ".join(libs)
            env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
            env["UBSAN_OPTIONS"] = os.environ.get("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        cmd = [self.tshark] + args
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env"] + \
                  ["%s=%s" % kv for kv in env.items()] + cmd
            env = None
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=self.tmp, timeout=120)
        for bad in ("AddressSanitizer", "runtime error:", "Segmentation fault", "LeakSanitizer"):
            check(bad not in r.stderr, "tshark %s: %s in stderr:\n%s" % (" ".join(args), bad, r.stderr[-3000:]))
        if check_rc and r.returncode != 0:
            raise Fail("tshark %s exited %d:\n%s" % (" ".join(args), r.returncode, r.stderr[-3000:]))
        return r

    def fields(self, cap, fields, extra=(), plugin=True, two_pass=True):
        """One row per frame: [frame.number, field1, field2, ...] (multiple values joined with ',')."""
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

    def pkt(self, d, flags, data=b"", seq=None, advance=True):
        src, dst = (self.dev, self.srv) if d == 0 else (self.srv, self.dev)
        sq = self.seq[d] if seq is None else seq
        tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], sq, self.seq[1 - d], 5 << 4, flags, 65535, 0, 0) + data
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
    cap = sh.write("v6heur.pcap", handshake_capture(rng, sport=7000, split=False, ipv6=True).bytes())
    rows = sh.fields(cap, ["spark.step", "spark.direction", "ipv6.src"])
    steps = [(r[1], r[2], r[3]) for r in rows if r[1]]
    check(steps[:3] == [("nonce", "1", "fd00::1"), ("id-block", "0", "fd00::2"), ("session-block", "1", "fd00::1")],
          "IPv6 on port 7000: %r" % rows)


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
    check(by[9][1] == "34", "frame 9 should report 34 missing bytes: %r" % by[9])
    check("gap" in by[9][2].split(","), "frame 9 should carry the finding gap: %r" % by[9])
    out = sh.run(["-2", "-r", cap, "-q", "-z", "expert,warn"]).stdout
    check("missing from the capture" in out, "no expert info about the missing bytes:\n" + out)


def test_heuristic(sh):
    rng = random.Random(3)
    cap = sh.write("heur.pcap", handshake_capture(rng, sport=7000, split=False).bytes())
    rows = sh.fields(cap, ["spark.step"])
    steps = [s for r in rows for s in r[1].split(",") if s]
    check(steps[:5] == ["nonce", "id-block", "session-block", "hello", "hello"],
          "the heuristic should find the handshake on port 7000: %r" % steps)
    rows = sh.fields(cap, ["spark.step"], extra=["--disable-heuristic", "spark_tcp"])
    check(not any(r[1] for r in rows), "with the heuristic disabled nothing on port 7000 is Spark")
    # Decode As works on the same capture with the heuristic off
    rows = sh.fields(cap, ["spark.step"], extra=["--disable-heuristic", "spark_tcp", "-d", "tcp.port==7000,spark"])
    steps = [s for r in rows for s in r[1].split(",") if s]
    check(steps[:3] == ["nonce", "id-block", "session-block"], "Decode As tcp.port==7000,spark: %r" % steps)
    # a text banner of 40 bytes on another port is not taken
    c = Capture(sport=8080)
    c.open()
    c.pkt(1, PSH | ACK, b"HTTP/1.1 400 Bad Request\r\nServer: x\r\n\r\n")
    c.pkt(0, PSH | ACK, rnd(256, rng))
    c.close()
    cap = sh.write("banner.pcap", c.bytes())
    rows = sh.fields(cap, ["spark.step"])
    check(not any(r[1] for r in rows), "a text banner on port 8080 must not be taken for a nonce: %r" % rows)


def test_port_pref(sh):
    """spark.tcp.port adds the port to the Spark port table (the heuristic is off to show the table)."""
    rng = random.Random(4)
    cap = sh.write("port.pcap", handshake_capture(rng, sport=7000, split=False).bytes())
    off = ["--disable-heuristic", "spark_tcp"]
    rows = sh.fields(cap, ["spark.step"], extra=off)
    check(not any(r[1] for r in rows), "port 7000 is not Spark by default: %r" % rows)
    rows = sh.fields(cap, ["spark.step"], extra=off + ["-o", "spark.tcp.port:7000"])
    steps = [s for r in rows for s in r[1].split(",") if s]
    check(steps[:3] == ["nonce", "id-block", "session-block"], "spark.tcp.port:7000 should take port 7000: %r"
          % steps)


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
    root = os.environ.get("SPARKWIRE_SOURCE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                   "..", "..")
    return os.path.join(root, "samples")


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


TESTS = {
    "plugin-loads": test_plugin_loads,
    "stock-tshark": test_stock_tshark,
    "handshake-shape": test_handshake_shape,
    "retransmission": test_retransmission,
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
    "samples-filtered": test_samples_filtered,
    "samples-messages": test_samples_messages,
    "samples-ota": test_samples_ota,
    "samples-wrong-keys": test_samples_wrong_keys,
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
