#!/usr/bin/env python3
"""Live capture on loopback: the lab cloud and a device talk on 127.0.0.77 while cloudmon -i lo (with
-Z nobody) follows them; the verdict must be ok with the device id and the decrypted messages.
Skips (77) without root or without the firmware tools."""
import os
import random
import signal
import subprocess
import shutil
import time
from cmtest import *

if os.geteuid() != 0:
    skip("live capture needs root")
cloud = os.path.join(BUILD, "firmware", "sparkcloud")
dev = os.path.join(BUILD, "firmware", "sparkdev")
if not (os.access(cloud, os.X_OK) and os.access(dev, os.X_OK)):
    skip("sparkcloud and sparkdev are not built (configure with -Dfirmware=true)")
K = os.path.join(SAMPLES, "keys")
D1 = "53ff6c065067544816300187"
need = [os.path.join(K, f) for f in ("server-private.pem", D1 + ".der", D1 + ".pub.pem")]
if not all(os.path.isfile(f) for f in need):
    skip("samples/keys is missing the lab keys")

d = tmpdir()
os.chmod(d, 0o755)
kdir = os.path.join(d, "cloud-keys")
os.mkdir(kdir)
subprocess.run(["cp", os.path.join(K, D1 + ".pub.pem"), kdir], check=True)
spub = os.path.join(d, "server-public.der")
subprocess.run(["openssl", "pkey", "-in", os.path.join(K, "server-private.pem"), "-pubout", "-outform", "DER",
                "-out", spub], check=True, capture_output=True)
kf = os.path.join(d, "keyfile")
with open(kf, "w") as f:
    f.write("server-private %s\ndevice %s %s\n" % (os.path.join(K, "server-private.pem"), D1, os.path.join(K, D1 + ".der")))

addr = "127.0.0.77"
port = random.randint(20000, 40000)
filt = ["--cloud-port", str(port), "-f", "tcp port %d and host %s" % (port, addr)]
# a second run that must stop by itself (--duration), and the screen in tmux when there is tmux
timed = subprocess.Popen([CLOUDMON, "-i", "lo", "--batch", "--duration", "2"] + filt,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
t_start = time.time()
tmux = shutil.which("tmux")
sock = "cloudmon-live-%d" % os.getpid()
if tmux:
    subprocess.run([tmux, "-L", sock, "new-session", "-d", "-s", "cm", "-x", "150", "-y", "30",
                    "TERM=xterm-256color %s -i lo %s -k %s; sleep 30" % (CLOUDMON, " ".join("'%s'" % a for a in filt), kf)],
                   check=True)
mon_err = open(os.path.join(d, "mon.err"), "w+")
mon = subprocess.Popen([CLOUDMON, "-i", "lo", "--json", "--cloud-port", str(port), "-f", "tcp port %d and host %s" % (port, addr),
                        "-k", kf, "-Z", "nobody", "--duration", "40"],
                       stdout=subprocess.PIPE, stderr=mon_err)
procs = [mon]
try:
    end = time.time() + 10
    while time.time() < end:
        mon_err.seek(0)
        if "listening on lo" in mon_err.read():
            break
        if mon.poll() is not None:
            mon_err.seek(0)
            why = mon_err.read().strip()
            if "no permission" in why:
                skip("root without the right to capture here: " + why)
            break
        time.sleep(0.05)
    mon_err.seek(0)
    check("listening on lo" in mon_err.read(), "cloudmon reports it is listening on lo")
    while tmux and time.time() < end:
        scr = subprocess.run([tmux, "-L", sock, "capture-pane", "-p", "-t", "cm"], capture_output=True).stdout.decode()
        if "interface lo" in scr:
            break
        time.sleep(0.05)
    clog = open(os.path.join(d, "cloud.log"), "w+")
    cl = subprocess.Popen([cloud, "--server-key", os.path.join(K, "server-private.pem"), "--keys-dir", kdir,
                           "--once", "--describe", "--time-limit", "20", "--session-time", "2", "%s:%d" % (addr, port)],
                          stderr=clog)
    procs.append(cl)
    end = time.time() + 10
    while time.time() < end:
        clog.seek(0)
        if "listening on" in clog.read():
            break
        time.sleep(0.05)
    dv = subprocess.run([dev, "--id", D1, "--key", os.path.join(K, D1 + ".der"), "--server-key", spub,
                         "--generation", "g2", "--run-time", "3", "%s:%d" % (addr, port)],
                        capture_output=True, timeout=30)
    cl.wait(timeout=30)
    time.sleep(0.5)
    if tmux:
        end = time.time() + 10
        scr = ""
        while time.time() < end:
            scr = subprocess.run([tmux, "-L", sock, "capture-pane", "-p", "-t", "cm"], capture_output=True).stdout.decode()
            if D1 in scr and " ok " in scr:
                break
            time.sleep(0.2)
        if not check(D1 in scr and " ok " in scr and "interface lo" in scr,
                     "the screen on lo lists the device with verdict ok"):
            print(scr)
    tout, terr = timed.communicate(timeout=20)
    check(timed.returncode == 0 and "summary: interface lo" in tout.decode() and time.time() - t_start < 15,
          "--duration 2 stops a live capture by itself, with a summary (rc %s)" % timed.returncode)
    mon.send_signal(signal.SIGINT)
    out, _ = mon.communicate(timeout=20)
    objs = jsonl(out.decode())
    mon_err.seek(0)
    errtext = mon_err.read()
    check(mon.returncode == 0, "cloudmon stops on SIGINT with exit 0 (%s; %s)" % (mon.returncode, errtext.strip()[-300:]))
    check(objs and objs[-1]["type"] == "summary", "a summary ends the output")
    verdicts = [o for o in objs if o["type"] == "verdict" and o["final"]]
    check(len(verdicts) == 1 and verdicts[0]["verdict"] == "ok" and verdicts[0]["proven"],
          "one connection, verdict ok, proven: %s" % [(v["verdict"], v["evidence"][:80]) for v in verdicts])
    check(verdicts and verdicts[0].get("device_id") == D1, "the device id is read from the id block")
    kinds = [o["message"] for o in objs if o["type"] == "message"]
    check("hello" in kinds and "describe" in kinds, "the decrypted messages include hello and describe: %s" % kinds[:12])
finally:
    if tmux:
        tmux_stop_cloudmon([tmux, "-L", sock])
        subprocess.run([tmux, "-L", sock, "kill-server"], capture_output=True)
    if timed.poll() is None:
        timed.kill()
        timed.wait()
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
done()
