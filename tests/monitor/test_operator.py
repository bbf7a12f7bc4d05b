#!/usr/bin/env python3
"""The operator's outputs: -q, the device table and `device` records, --show-keys, --export-sessions
(0600, no symbolic link, the lines decrypt the same messages), and the screen's Devices view and
"N older connections not shown"."""
import re
import shutil
import stat
import subprocess
import time
from cmtest import *

d = tmpdir()
by = {s[0]: s for s in samples()}
if "multi-device" not in by or "healthy" not in by:
    skip("the samples are not there")
name, cap, kf = by["multi-device"]

# -q: the device table and the summary, nothing per event
rc, full, _ = run(["-r", cap, "-k", kf, "--batch"])
rc2, quiet, _ = run(["-r", cap, "-k", kf, "-q"])
ql = quiet.strip().splitlines()
check(rc == 0 and rc2 == 0 and ql[0] == "devices: 3" and ql[-1].startswith("summary: ") and len(ql) == 6
      and not any(" conn " in l for l in ql), "-q prints the device table and the summary only (%d lines)" % len(ql))
check(full.strip().splitlines()[-6:] == ql, "-q ends exactly as the full output does")
rc, jq, _ = run(["-r", cap, "-k", kf, "-q", "--json"])
objs = jsonl(jq)
check(rc == 0 and [o["type"] for o in objs] == ["device"] * 3 + ["summary"], "-q --json: device records and the summary")

# device records: what each device did
exp = {}
for line in open(os.path.join(SAMPLES, "expected.tsv")):
    w = line.rstrip("\n").split("\t")
    if w[0] == "multi-device":
        exp = dict(zip(w[3].split(","), w[2].split(",")))
devs = {o["device_id"]: o for o in objs if o["type"] == "device"}
js = jsonl(run(["-r", cap, "-k", kf, "--json"])[1])
msgs = {}
for o in js:
    if o["type"] == "message":
        msgs[o["device_id"]] = msgs.get(o["device_id"], 0) + 1
check(set(devs) == set(exp) and all(devs[i]["verdicts"] == {exp[i]: 1} and devs[i]["connections"] == 1
                                    and devs[i]["last_verdict"] == exp[i] for i in exp),
      "a device record per device with its connections and verdicts")
check(all(devs[i]["messages"] == msgs.get(i, 0) for i in devs), "device records count the messages (%s)" % msgs)
gens = sorted(o.get("generation") for o in devs.values())
check(gens == [1, 2, 2] and sum(1 for o in devs.values() if "platform_id" in o) == 2,
      "generation of each device, platform from the Hello where it has one: %s" % gens)
table = [l.split() for l in ql[2:-1]]
check(all(r[0] in devs and int(r[1]) == devs[r[0]]["connections"] and int(r[6]) == devs[r[0]]["messages"]
          and int(r[7]) == devs[r[0]]["bytes"] for r in table), "the table rows say what the records say")

# failed and unnamed devices
fc = by.get("server-key-mismatch")
if fc:
    o = jsonl(run(["-r", fc[1], "-k", fc[2], "-q", "--json"])[1])
    dv = [x for x in o if x["type"] == "device"]
    check(len(dv) == 1 and dv[0]["verdicts"] == {"server-key-mismatch": 1} and dv[0].get("client") == "127.0.0.1",
          "a device whose id is not known is named by its address: %s" % dv)

# --show-keys and --export-sessions
name, cap, kf = by["healthy"]
sess = os.path.join(d, "sessions")
rc, plain, _ = run(["-r", cap, "-k", kf, "--json", "--export-sessions", sess])
lines = [l.split() for l in open(sess) if l.startswith("session ")]
check(rc == 0 and len(lines) == 1 and len(lines[0][2]) == 80, "--export-sessions writes the session line")
check(stat.S_IMODE(os.stat(sess).st_mode) == 0o600, "the session file is 0600")
key = lines[0][2] if lines else "x" * 80
check("session_key" not in plain and '"iv"' not in plain, "without --show-keys: no session_key / iv fields")
rc, shown, _ = run(["-r", cap, "-k", kf, "--json", "--show-keys"])
sk = [o for o in jsonl(shown) if "session_key" in o]
check(len(sk) == 1 and sk[0]["session_key"] + sk[0]["iv"] + sk[0]["salt"] == key,
      "--show-keys: the session key, IV and salt once per connection, the same as the exported line")
rc, tb, _ = run(["-r", cap, "-k", kf, "--batch", "--show-keys"])
check(tb.count("[session key %s" % key[:32]) == 1, "--show-keys in the lines too")
# the exported line alone decrypts the same messages
skf = os.path.join(d, "sessions.keyfile")
open(skf, "w").write("session %s %s\n" % (lines[0][1], key))
m_full = [o["summary"] for o in jsonl(plain) if o["type"] == "message"]
m_sess = [o["summary"] for o in jsonl(run(["-r", cap, "-k", skf, "--json"])[1]) if o["type"] == "message"]
check(m_full and m_sess == m_full, "the exported session line decrypts the same %d messages" % len(m_full))
# a device with several decrypted connections: one session line for it, the later ones as comments, so
# the export loads back as a keyfile (a keyfile refuses a second session line for a device)
if "photon-g2" in by:
    pname, pcap, pkf = by["photon-g2"]
    psess = os.path.join(d, "sessions-photon")
    rc, _, _ = run(["-r", pcap, "-k", pkf, "-q", "--export-sessions", psess])
    plines = [l for l in open(psess) if not l.startswith("# session lines")]
    ids = [l.split()[1] for l in plines if l.startswith("session ")]
    again = [l for l in plines if l.startswith("# another connection: session ")]
    rc2, _, err2 = run(["-r", pcap, "-k", psess, "-q"])
    check(rc == 0 and ids and len(ids) == len(set(ids)) and again and rc2 == 0,
          "several connections of a device: %d session lines, %d as comments, the file loads as a keyfile (%s)"
          % (len(ids), len(again), err2.strip()[:120]))
# never through a symbolic link, never over something that is not a file
target = os.path.join(d, "victim")
open(target, "w").write("keep\n")
os.symlink(target, os.path.join(d, "link"))
rc, out, err = run(["-r", cap, "-k", kf, "-q", "--export-sessions", os.path.join(d, "link")])
check(rc == 2 and "symbolic link" in err and open(target).read() == "keep\n",
      "--export-sessions through a symbolic link: refused, the target untouched")
rc, out, err = run(["-r", cap, "-k", kf, "-q", "--export-sessions", d])
check(rc == 2 and "export-sessions" in err and len(err.strip().splitlines()) == 1, "--export-sessions DIR: one line")

# the screen: the Devices view, Enter opens a device's connections, older connections not shown
tmux = shutil.which("tmux")
if not tmux:
    check(False, "tmux is installed")
    done()
name, cap, kf = by["multi-device"]
T = [tmux, "-L", "cm-op-%d" % os.getpid()]


def tm(*a):
    return subprocess.run(T + list(a), capture_output=True, timeout=10).stdout.decode("utf-8", "replace")


def wait_for(text, secs=10):
    end, s = time.time() + secs, ""
    while time.time() < end:
        s = tm("capture-pane", "-p", "-t", "cm")
        if text in s:
            return settled(s)
        time.sleep(0.1)
    return s


def settled(s):
    """The screen once two captures 0.15 s apart agree: a capture can fall between two lines of one redraw."""
    for _ in range(20):
        time.sleep(0.15)
        again = tm("capture-pane", "-p", "-t", "cm")
        if again == s:
            break
        s = again
    return s


tm("new-session", "-d", "-s", "cm", "-x", "140", "-y", "30",
   "TERM=xterm-256color %s -r %s -k %s --history 1; sleep 30" % (CLOUDMON, cap, kf))
# the server stays when its last session is killed: a new session then never races a server shutting down
tm("set-option", "-s", "exit-empty", "off")
try:
    # the terminal may be caught between the status bar and the bottom line of one redraw: wait for both
    wait_for("[end of file]", 30)
    s = wait_for("older connections not shown", 10)
    check("[end of file]" in s and "2 older connections not shown" in s, "--history 1 with 3 connections: '2 older connections not shown'")
    tm("send-keys", "-t", "cm", "d")
    s = wait_for("LAST VERDICT")
    rows = [l for l in s.splitlines() if re.match(r"^[0-9a-f]{24} ", l)]
    check(len(rows) == 3 and all(" ok " in r for r in rows) and "PLATFORM" in s,
          "the Devices view: a row per device with its verdict (%d rows)" % len(rows))
    first = sorted(exp)[0]
    check(rows and rows[0].startswith(first), "sorted by device id first")
    tm("send-keys", "-t", "cm", "s")
    s = wait_for("sort: failed connections")
    check("sort: failed connections" in s, "s sorts the devices (by failed connections)")
    tm("send-keys", "-t", "cm", "Enter")
    s = wait_for("filter: ")
    conn_rows = [l for l in s.splitlines() if re.match(r"^\s+\d+ [0-9a-f]{24}", l)]
    check(len(conn_rows) == 1 and "filter: " in s, "Enter on a device lists its connections (%d)" % len(conn_rows))
    # --show-keys on the screen: the detail view shows the session material; without it, not
    hname, hcap, hkf = by["healthy"]
    for flag in ("", "--show-keys"):
        tmux_stop_cloudmon(T)
        tm("kill-session", "-t", "cm")
        tm("new-session", "-d", "-s", "cm", "-x", "140", "-y", "30",
           "TERM=xterm-256color %s -r %s -k %s %s; sleep 30" % (CLOUDMON, hcap, hkf, flag))
        wait_for("[end of file]", 30)
        tm("send-keys", "-t", "cm", "Enter")
        s = wait_for("Session key" if flag else "Connection 1", 20)
        shown = ("Session key %s  IV %s" % (key[:32], key[32:64])) in s
        check("Connection 1" in s and shown == bool(flag),
              "the detail view %s the session key %s" % ("shows" if flag else "does not show", flag or "without --show-keys"))
finally:
    tmux_stop_cloudmon(T)
    tm("kill-server")
done()
