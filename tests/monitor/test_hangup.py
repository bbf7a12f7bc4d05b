#!/usr/bin/env python3
"""The screen ends when its terminal hangs up: cloudmon runs in a pseudo-terminal, the terminal's other
end is closed, and cloudmon must exit within seconds (not keep polling a dead terminal)."""
import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time
from cmtest import *

cases = [c for c in samples() if c[0] == "healthy"]
if not cases:
    skip("no healthy sample")
name, cap, kf = cases[0]
pid, master = pty.fork()
if pid == 0:
    os.environ["TERM"] = "xterm-256color"
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 150, 0, 0))
    # as under nohup: SIGHUP ignored (cloudmon keeps it so), so only the dead terminal can end the screen
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    os.execv(CLOUDMON, [CLOUDMON, "-r", cap, "-k", kf])
seen = b""
end = time.time() + 60
while time.time() < end and b"end of file" not in seen:
    r, _, _ = select.select([master], [], [], 0.5)
    if r:
        try:
            seen += os.read(master, 65536)
        except OSError:
            break
check(b"end of file" in seen, "the screen shows the end of the file")
os.close(master)
status = None
end = time.time() + 20
while time.time() < end:
    p, st = os.waitpid(pid, os.WNOHANG)
    if p == pid:
        status = st
        break
    time.sleep(0.1)
if status is None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
check(status is not None, "cloudmon exits when its terminal hangs up")
check(status is None or not os.WIFSIGNALED(status), "cloudmon ends by itself, not by a signal")
done()
