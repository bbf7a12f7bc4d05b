#!/usr/bin/env python3
"""The screen, driven in tmux: the list, the detail view, help, filter, sort, the too-small screen, and
a clean exit with the summary."""
import os
import re
import shutil
import subprocess
import time
from cmtest import *

tmux = shutil.which("tmux")
if not tmux:
    skip("tmux is not installed")
d = tmpdir()
cases = [c for c in samples() if c[2]]
if cases:
    name, cap, kf = ([c for c in cases if c[0] == "healthy"] or cases)[0]
    args = ["-r", cap, "-k", kf]
else:
    cap = os.path.join(d, "synth.pcap")
    tool("synth", cap, "en10mb")
    args = ["-r", cap]
sock = "cloudmon-test-%d" % os.getpid()
T = [tmux, "-L", sock]


def tm(*a):
    return subprocess.run(T + list(a), capture_output=True, timeout=10).stdout.decode("utf-8", "replace")


def screen():
    return tm("capture-pane", "-p", "-t", "cm")


def wait_for(text, secs=60):
    end = time.time() + secs
    s = ""
    while time.time() < end:
        s = screen()
        if text in s:
            return settled(s)
        time.sleep(0.1)
    return s


def settled(s):
    """The screen once two captures 0.15 s apart agree: a capture can fall between two lines of one redraw."""
    for _ in range(20):
        time.sleep(0.15)
        again = screen()
        if again == s:
            break
        s = again
    return s


def keys(*k):
    tm("send-keys", "-t", "cm", *k)


out = os.path.join(d, "after.txt")
cmd = "cd %s && TERM=xterm-256color %s %s; echo EXIT=$? > %s; sleep 30" % (
    d, CLOUDMON, " ".join("'%s'" % a for a in args), out)
tm("new-session", "-d", "-s", "cm", "-x", "150", "-y", "40", cmd)
# the server stays when its last session is killed: a new session then never races a server shutting down
tm("set-option", "-s", "exit-empty", "off")
try:
    s = wait_for("[end of file]")
    check("[end of file]" in s, "the file is read to its end")
    check("DEVICE" in s and "VERDICT" in s and "STEP" in s, "the list has its column headers")
    rows = [l for l in s.splitlines() if l[:5].strip().isdigit()]
    check(len(rows) >= 1, "the list shows connections (%d)" % len(rows))
    check("F1/? help" in s, "the footer names the keys")
    first = rows[0] if rows else ""
    keys("Enter")
    s = wait_for("Connection 1")
    check("Connection 1" in s and ("Messages" in s or "Nonce" in s), "Enter opens the detail view of connection 1")
    check("Nonce (40)" in s and "|<-" in s, "the detail view draws the handshake ladder with the nonce")
    check("device" in s and "cloud" in s, "the ladder has device and cloud columns")
    keys("G")
    s = wait_for("Verdict:")
    check("Verdict:" in s and "Evidence:" in s, "G scrolls to the end of the detail view: the verdict and its evidence")
    keys("?")
    s = wait_for("cloudmon keys")
    check("cloudmon keys" in s, "? shows the help")
    for label in ("? F1", "q", "Up k", "Down j", "Enter", "Tab", "/", "s", "p", "w"):
        if not check(("  " + label + " ") in s, "help lists the key %r" % label):
            break
    check("device-key-mismatch" in s, "help explains the verdict codes")
    keys("Escape")
    time.sleep(0.3)
    keys("Escape")
    time.sleep(0.3)   # longer than the screen's escape delay: an Esc right before "/" would read as Alt-/
    s = wait_for("VERDICT")
    check("VERDICT" in s and "Verdict:" not in s, "Esc goes back to the list")
    keys("/")
    for ch in "zzzz-nothing":
        keys(ch)
    keys("Enter")
    s = wait_for("No connection matches")
    check("No connection matches" in s and "filter: zzzz-nothing" in s, "/ filters the list")
    keys("/")
    for _ in range(12):
        keys("BSpace")
    keys("Enter")
    s = wait_for("   1 ")
    check("No connection matches" not in s, "clearing the filter shows the connections again")
    keys("s")
    s = wait_for("sort: last activity")
    check("sort: last activity" in s, "s changes the sort order")
    keys("w")
    s = wait_for("saved ")
    saved = [f for f in os.listdir(d) if f.startswith("cloudmon-") and f.endswith(".pcap")]
    check("saved " in s and len(saved) == 1, "w saves the captured packets (%s)" % saved)
    if saved:
        rc, o, e = run(["-r", os.path.join(d, saved[0]), "--json"] + args[2:])
        rc0, o0, e0 = run(args + ["--json"])
        check(rc == 0 and shape(jsonl(o)) == shape(jsonl(o0)), "the saved capture gives the same results")
    tm("resize-window", "-t", "cm", "-x", "40", "-y", "8")
    s = wait_for("too small")
    check("Terminal too small" in s, "a small terminal gets the 'too small' screen")
    tm("resize-window", "-t", "cm", "-x", "150", "-y", "40")
    s = wait_for("VERDICT")
    check("VERDICT" in s, "after enlarging, the list is back")
    keys("q")
    end = time.time() + 10
    while time.time() < end and not os.path.exists(out):
        time.sleep(0.1)
    s = screen()
    check(os.path.exists(out) and open(out).read().strip() == "EXIT=0", "q quits with exit 0")
    check("summary: " in s, "a summary is printed after the screen closes")
    # NO_COLOR: the same screen without colour escapes
    tmux_stop_cloudmon(T)
    tm("kill-session", "-t", "cm")
    cmd = "cd %s && NO_COLOR=1 TERM=xterm-256color %s %s; sleep 30" % (d, CLOUDMON, " ".join("'%s'" % a for a in args))
    tm("new-session", "-d", "-s", "cm", "-x", "150", "-y", "40", cmd)
    wait_for("[end of file]")
    esc = tm("capture-pane", "-p", "-e", "-t", "cm")
    check("[end of file]" in esc and not re.search("\x1b\\[(?:[0-9;]*;)?(?:3|4|9|10)[0-7]m", esc),
          "NO_COLOR: no colour escapes on the screen")
    keys("q")
finally:
    tmux_stop_cloudmon(T)
    subprocess.run(T + ["kill-server"], capture_output=True)
done()
