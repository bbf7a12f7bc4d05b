#!/usr/bin/env python3
"""Live on loopback with the default filter: the healthy sample replayed behind two VLAN tags and cut into
IPv4 fragments is still found and decrypted (the kernel filter passes what it cannot look into, cloudmon
narrows it to the cloud port), in blocks (the default) and with --immediate-mode. In a network namespace of
its own: -p leaves the interface out of promiscuous mode, -s sets the snapshot length. The sample's cloud port is moved to a random one so that nothing else on lo
is taken for it. Skips (77) without root or tcpreplay."""
import os
import random
import shutil
import signal
import subprocess
import time
from cmtest import *
import pcaptool as pt

if os.geteuid() != 0:
    skip("live capture needs root")
if not shutil.which("tcpreplay"):
    skip("tcpreplay is not installed")
d = tmpdir()
HEALTHY = os.path.join(SAMPLES, "healthy")
cap, kf = os.path.join(HEALTHY, "capture.pcap"), os.path.join(HEALTHY, "keyfile")
port = random.randint(20000, 40000)


def moved(link, b):
    macs, ip = pt.split_frame(link, b)
    return macs, pt.move_port(ip, 5683, port)


def qinq(link, b):
    macs, ip = moved(link, b)
    return [pt.eth(macs, (0x88a8, 0x8100), ip)]


def frags(link, b):
    macs, ip = moved(link, b)
    hl, _ = pt.tcp_of(ip)
    if len(ip) - hl <= 48:
        return [pt.eth(macs, (), ip)]
    return [pt.eth(macs, (), f) for f in pt.frag4(ip, 48)]


for name, fn, extra in (("two VLAN tags", qinq, []), ("IPv4 fragments", frags, []),
                        ("two VLAN tags, --immediate-mode", qinq, ["--immediate-mode"])):
    path = os.path.join(d, "replay.pcap")
    pt.rewrite(cap, path, fn)
    err_path = os.path.join(d, "mon.err")
    with open(err_path, "w+") as err:
        mon = subprocess.Popen([CLOUDMON, "-i", "lo", "--json", "--cloud-port", str(port), "-k", kf, "--duration", "30"] + extra,
                               stdout=subprocess.PIPE, stderr=err)
        end = time.time() + 10
        while time.time() < end:
            err.seek(0)
            if "listening on lo" in err.read():
                break
            time.sleep(0.1)
        time.sleep(0.5)
        rp = subprocess.run(["tcpreplay", "-q", "-i", "lo", "--pps", "1000", path], capture_output=True, timeout=60)
        time.sleep(1)
        mon.send_signal(signal.SIGINT)
        out, _ = mon.communicate(timeout=30)
        err.seek(0)
        errtext = err.read()
    check(rp.returncode == 0, "%s: tcpreplay ran (%r)" % (name, rp.stderr.decode()[:200]))
    objs = jsonl(out.decode())
    finals = [(o["verdict"], o["proven"]) for o in objs if o["type"] == "verdict" and o["final"]]
    summ = objs[-1] if objs else {}
    check(mon.returncode == 0 and finals == [("ok", True)],
          "%s: live with the default filter, one connection, ok (proven): %s %r" % (name, finals, errtext[-300:]))
    check(summ.get("messages") == 32, "%s: the 32 messages decrypted (%s)" % (name, summ.get("messages")))
# ---- -p and -s, in a network namespace of our own so that no other capture on lo interferes ----
def plain_frame(link, b):
    macs, ip = moved(link, b)
    return [pt.eth(macs, (), ip)]


plain = os.path.join(d, "plain.pcap")
pt.rewrite(cap, plain, plain_frame)
script = """
ip link set lo up || exit 90
for opt in "" "-p"; do
    %(cm)s -i lo --batch --duration 3 $opt >/dev/null 2>&1 &
    sleep 1.5
    echo "promisc '$opt': $(ip -d link show lo | grep -o 'promiscuity [0-9]*')"
    wait
done
%(cm)s -i lo --batch --cloud-port %(port)d -s 96 -k %(kf)s --duration 20 >%(d)s/snap.out 2>%(d)s/snap.err &
for _ in $(seq 50); do grep -q "listening on" %(d)s/snap.err && break; sleep 0.1; done
tcpreplay -q -i lo --pps 1000 %(plain)s >/dev/null 2>&1
sleep 1
kill -INT %%1
wait
""" % {"cm": CLOUDMON, "port": port, "kf": kf, "d": d, "plain": plain}
ns = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, timeout=60)
check(ns.returncode != 90 and b"Operation not permitted" not in ns.stderr,
      "a network namespace of our own (unshare -n) for -p and -s: %r" % ns.stderr.decode()[:200])
lines = ns.stdout.decode()
check("promisc '': promiscuity 1" in lines, "live without -p: the interface is promiscuous (%r)" % lines)
check("promisc '-p': promiscuity 0" in lines, "live with -p: the interface is not promiscuous (%r)" % lines)
snap_err = open(os.path.join(d, "snap.err")).read()
check("snapshot length (96 bytes) cut packets" in snap_err, "-s 96: the snapshot length is 96, and cloudmon says it cut packets (%r)" % snap_err[-300:])
done()
