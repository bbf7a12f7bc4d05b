#!/usr/bin/env python3
"""Runs the bad-input table (badinput.tsv): every bad key, keyfile, capture and command line must give a
clear error naming the thing (the row's pattern), the row's exit status (non-zero below 128 for errors),
and nothing may crash or print a sanitizer report. usage: badinput.py BUILD_DIR"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SPARKWIRE_BUILD_ROOT", "build"))
SAMPLES = os.path.join(SRC, "samples")
TOOLS = {"KR": "keyring/tool/sparkkeys", "CM": "monitor/cloudmon", "DEV": "firmware/sparkdev",
         "CLOUD": "firmware/sparkcloud"}


def sh(cmd, cwd):
    subprocess.run(cmd, shell=True, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def write_refused(path):
    """A connection refused: the device's SYN and the host's RST-ACK, nothing else (Ethernet, IPv4)."""
    import struct

    def csum(b):
        if len(b) % 2:
            b += b"\0"
        s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        while s >> 16:
            s = (s & 0xffff) + (s >> 16)
        return (~s) & 0xffff

    def pkt(src, dst, sp, dp, seq, ack, flags):
        tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 5 << 4, flags, 65495 if flags & 2 else 0, 0, 0)
        pseudo = struct.pack("!4s4sBBH", src, dst, 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        return b"\0" * 12 + b"\x08\x00" + ip + tcp

    a, b = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])
    frames = [pkt(a, b, 38910, 5683, 1000, 0, 0x02), pkt(b, a, 5683, 38910, 0, 1001, 0x14)]
    out = struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1700000000, 10 * i, len(f), len(f)) + f
    with open(path, "wb") as fh:
        fh.write(out)


def fixtures(t):
    keys = os.path.join(SAMPLES, "keys")
    with open(os.path.join(keys, "53ff6c065067544816300187.der"), "rb") as f:
        der = f.read()
    open(os.path.join(t, "trunc.der"), "wb").write(der[:300])
    open(os.path.join(t, "text.pem"), "w").write("hello world, not a key\n")
    open(os.path.join(t, "empty.der"), "wb").close()
    sh("openssl genrsa -out rsa512.pem 512", t)
    sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem", t)
    sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -aes128 -pass pass:secret -out pw.pem", t)
    cap = os.path.join(SAMPLES, "healthy", "capture.pcap")
    with open(cap, "rb") as f:
        pcap = f.read()
    open(os.path.join(t, "trunc.pcap"), "wb").write(pcap[:10])
    open(os.path.join(t, "cut.pcap"), "wb").write(pcap[:len(pcap) // 2 + 7])
    write_refused(os.path.join(t, "refused.pcap"))
    have_editcap = shutil.which("editcap") is not None
    if have_editcap:
        sh("editcap -s 80 %s snap.pcap" % cap, t)
        sh("editcap -T user0 %s user0.pcap" % cap, t)
    ks = keys + "/"
    kf = {
        "unknown.kf": "server-private %sserver-private.pem\nfrobnicate x y\n" % ks,
        "missing.kf": "device 53ff6c065067544816300187 %snope.der\n" % ks,
        "badhex.kf": "session 53ff6c065067544816300187 %s\n" % ("zz" * 40),
        "badid.kf": "device 53ffzz %s53ff6c065067544816300187.der\n" % ks,
        "dup.kf": "server-private %sserver-private.pem\ndevice 53ff6c065067544816300187 %s53ff6c065067544816300187.der\n"
                  "device 53ff6c065067544816300187 %sother-device.der\n" % (ks, ks, ks),
        "pubpriv.kf": "server-private %sserver-public.der\n" % ks,
        "eckey.kf": "device 53ff6c065067544816300187 %s/ec.pem\n" % t,
    }
    for name, text in kf.items():
        open(os.path.join(t, name), "w").write(text)
    return have_editcap


def main():
    t = tempfile.mkdtemp(prefix="sparkwire-badinput-")
    try:
        have_editcap = fixtures(t)
        env = dict(os.environ, T=t, K=os.path.join(SAMPLES, "keys"), S=SAMPLES)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        built = {}
        for var, rel in TOOLS.items():
            p = os.path.join(BUILD, rel)
            built[var] = os.access(p, os.X_OK)
            env[var] = p
        failures, known, fixed, ran, skipped = [], [], [], 0, 0
        for line in open(os.path.join(HERE, "badinput.tsv"), encoding="utf-8"):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.split("\t")
            name, want_exit, lines, pattern, cmd = cols[:5]
            known_bug = cols[5] if len(cols) > 5 else ""
            tools = [v for v in TOOLS if "$" + v + " " in cmd + " "]
            if any(not built[v] for v in tools) or (not have_editcap and ("snap.pcap" in cmd or "user0.pcap" in cmd)):
                skipped += 1
                print("skip %s (tool or fixture missing)" % name)
                continue
            ran += 1
            try:
                r = subprocess.run(["bash", "-c", cmd], env=env, cwd=t, capture_output=True, timeout=30)
                rc, out, err = r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")
            except subprocess.TimeoutExpired:
                rc, out, err = 124, "", "(hung: killed after 30 s)"
            problems = []
            if rc >= 124 or rc < 0:
                problems.append("crashed or hung (exit %d)" % rc)
            if re.search(r"ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer", err):
                problems.append("sanitizer report")
            if want_exit == "nz" and rc == 0:
                problems.append("exit 0 where an error was expected")
            if want_exit == "0" and rc != 0:
                problems.append("exit %d where 0 was expected" % rc)
            errlines = [l for l in err.splitlines() if l.strip()]
            if lines == "1" and len(errlines) != 1:
                problems.append("%d lines on stderr, not one" % len(errlines))
            if not re.search(pattern, out + err, re.I):
                problems.append("output does not match /%s/" % pattern)
            shown = (err.strip() or out.strip()).splitlines()
            shown = shown[0] if shown else "(no output)"
            if problems and known_bug:
                known.append(name)
                print("KNOWN %s: %s [%s] -> %s" % (name, "; ".join(problems), known_bug[len("known bug: "):], shown))
            elif problems:
                failures.append(name)
                print("FAIL %s: %s\n     command: %s\n     exit %d, stderr: %s\n     stdout: %s" %
                      (name, "; ".join(problems), cmd, rc, err.strip()[:600], out.strip()[:300]))
            else:
                if known_bug:
                    fixed.append(name)
                print("ok   %s (exit %d): %s" % (name, rc, shown[:160]))
        print("badinput: %d rows run, %d skipped, %d failed, %d known bugs still there%s" %
              (ran, skipped, len(failures), len(known),
               ("; fixed now (drop their known-bug mark): " + ", ".join(fixed)) if fixed else ""))
        return 1 if failures else 0
    finally:
        shutil.rmtree(t, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
