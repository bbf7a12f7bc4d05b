#!/usr/bin/env python3
"""Progress while reading a file: on standard error (rewriting one line) when standard output is not a
terminal but standard error is, silent under -q or when standard error is not a terminal; in the
screen's header. On a capture made by sparkwire-gen (2,500 handshakes: over the half second before the
first progress line even on a fast machine).
usage: test_progress.py CLOUDMON SPARKWIRE_GEN"""
import os
import pty
import re
import select
import shutil
import subprocess
import time
from cmtest import *

gen = sys.argv[2]
d = tmpdir()
subprocess.run([gen, "-o", d, "-n", "2500", "-m", "20", "-s", "3"], check=True, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL, timeout=300)
cap, kf = os.path.join(d, "capture.pcap"), os.path.join(d, "keyfile")
PROG = re.compile(r"\rcloudmon: \S+capture\.pcap: (\d+)% ([\d.]+[kM]?) packets/s(?: (\d+)s left)? \x1b\[K")


def with_pty_stderr(args):
    """Runs cloudmon with standard error on a terminal and standard output in a file."""
    master, slave = pty.openpty()
    outf = open(os.path.join(d, "out"), "wb")
    t0 = time.time()
    p = subprocess.Popen([CLOUDMON] + args, stdout=outf, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    data = b""
    while True:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        elif p.poll() is not None:
            break
    p.wait(timeout=120)
    os.close(master)
    outf.close()
    return p.returncode, data.decode("utf-8", "replace"), time.time() - t0


rc, err, secs = with_pty_stderr(["-r", cap, "-k", kf, "--json"])
found = PROG.findall(err)
pcts = [int(x[0]) for x in found]
check(rc == 0 and len(found) >= 1, "stderr a terminal, stdout a file: progress lines (%d in %.1f s)" % (len(found), secs))
check(pcts == sorted(pcts) and all(0 <= x <= 100 for x in pcts), "the percentage only grows, 0 to 100: %s" % pcts)
check(any(x[2] for x in found), "the time left is shown")
check(err.endswith("\r\x1b[K"), "the progress line is cleared at the end")
lines = open(os.path.join(d, "out"), "rb").read().splitlines()
check(lines and b"summary" in lines[-1] and not any(b"\r" in l for l in lines), "standard output has only the JSON")

rc, err, _ = with_pty_stderr(["-r", cap, "-k", kf, "-q"])
check(rc == 0 and "packets/s" not in err, "-q: no progress")
p = subprocess.run([CLOUDMON, "-r", cap, "-k", kf, "--json"], capture_output=True, timeout=120)
check(p.returncode == 0 and b"packets/s" not in p.stderr, "standard error not a terminal: no progress")

tmux = shutil.which("tmux")
if tmux:
    T = [tmux, "-L", "cm-prog-%d" % os.getpid()]
    subprocess.run(T + ["new-session", "-d", "-s", "cm", "-x", "200", "-y", "20",
                        "TERM=xterm %s -r %s -k %s; sleep 30" % (CLOUDMON, cap, kf)], timeout=10)
    seen, end = [], time.time() + 60
    try:
        while time.time() < end:
            s = subprocess.run(T + ["capture-pane", "-p", "-t", "cm"], capture_output=True, timeout=10).stdout.decode()
            m = re.search(r"\[(\d+)% [\d.]+[kM]? packets/s", s)
            if m:
                seen.append(int(m.group(1)))
            if "[end of file]" in s:
                break
            time.sleep(0.05)
    finally:
        tmux_stop_cloudmon(T)
        subprocess.run(T + ["kill-server"], timeout=10)
    check(len(seen) >= 1 and seen == sorted(seen), "the screen's header shows the progress while reading: %s" % seen[:10])
else:
    check(False, "tmux is installed")
done()
