#!/usr/bin/env python3
"""The RSA budget under a flood: 10,000 fake handshakes a second (flood.py: from 16 flooding addresses, plus
1,000 a second from addresses of their own whose id block comes before the nonce) beside genuine devices
(sparkwire-gen; the fakes start in bursts 10 ms apart). Read as a file with --rsa-budget 400, and replayed
live in the capture's own time with tcpreplay on the loopback of a network namespace of its own (root
only) under the live default (400): every genuine device is still
decrypted as without the flood, every skipped handshake is reported as not opened for the budget (step
reason, evidence) and never as a failure, the RSA work stays within the budget, and a file gives the same
output every time. Without --rsa-budget a file is read without a limit."""
import json
import os
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from cmtest import *

GEN = os.path.join(BUILD, "tests", "bench", "sparkwire-gen")
if not os.access(GEN, os.X_OK):
    skip("sparkwire-gen is not built (configure with -Dtests=enabled -Dfirmware=true)")
RATE = 400
d = tmpdir()
g = os.path.join(d, "g")
subprocess.run([GEN, "-o", g, "-n", "20", "-m", "5", "-s", "11", "--spread", "0.6"], check=True,
               capture_output=True)
kf = os.path.join(g, "keyfile")
fpcap = os.path.join(d, "flood.pcap")
info = json.loads(subprocess.run([sys.executable, os.path.join(HERE, "flood.py"), os.path.join(g, "capture.pcap"),
                                  fpcap, "--rate", "10000", "--strangers", "1000", "--burst", "0.01"],
                                 check=True, capture_output=True, text=True).stdout)
check(info["flooders"] >= 10000 and info["span"] >= 1.0, "flood: %d fake handshakes in %.2f s (%d of them from "
      "addresses of their own)" % (info["fakes"], info["span"], info["strangers"]))
LIMITS = ["--max-conns", "100000", "--idle", "5"]


def conns(lines):
    """Per connection: client, final verdict line, messages, frames not decrypted, id-block step, line order."""
    c = defaultdict(lambda: {"msgs": 0, "undecrypted": 0, "idstep": None, "final": None, "late": False})
    newest = 0.0
    summary = None
    for l in lines:
        j = json.loads(l)
        if j["type"] == "summary":
            summary = j
            continue
        if "conn" not in j:
            continue
        x = c[j["conn"]]
        if j["type"] == "message":
            x["msgs"] += 1
        if j["type"] == "step" and j.get("frame") == "not-decrypted":
            x["undecrypted"] += 1
        if j["type"] == "step" and j["step"] == "id-block":
            x["idstep"] = j
            x["late"] = j["time"] < newest     # given after later packets: it waited
        if j["type"] == "verdict" and j["final"]:
            x["final"] = j
        newest = max(newest, j.get("time", 0))
    return c, summary


def run(args, timeout=300):
    r = subprocess.run([CLOUDMON] + args, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        print(r.stderr)
    return r


def by_client(c):
    return {x["final"]["client"]: x for x in c.values() if x["final"]}


base, _ = conns(run(["-r", os.path.join(g, "capture.pcap"), "-k", kf, "--json"]).stdout.splitlines())
base = by_client(base)
check(len(base) == 20 and all(x["final"]["verdict"] == "ok" and x["msgs"] > 0 for x in base.values()),
      "without the flood: 20 devices ok, with messages")


def judge(out, what, rate, span=None, loops=1):
    """The checks on one run. span: the flood's seconds, or None to take them from the timestamps of the fake
    id blocks (live: as they reached cloudmon). Returns how many genuine handshakes waited, and the span."""
    c, summary = conns(out.splitlines())
    genuine = {k: v for k, v in by_client(c).items() if k.startswith("10.1.")}
    fakes = {k: v for k, v in c.items() if v["final"] and v["final"]["client"].startswith(("10.66.", "10.77."))}
    if span is None:
        ft = sorted(v["idstep"]["time"] for v in fakes.values() if v["idstep"])
        span = ft[-1] - ft[0] if len(ft) > 1 else 0
        fr = len(ft) / span if span > 0 else 0
        print("%s: %d fake id blocks in %.2f s: %.0f a second" % (what, len(ft), span, fr))
        check(fr >= 5000, "%s: a flood of %.0f fake handshakes a second reached cloudmon" % (what, fr))
    check(len(genuine) == 20, "%s: the 20 genuine devices are there (%d)" % (what, len(genuine)))
    bad = [k for k, v in genuine.items() if v["final"]["verdict"] != "ok" or not v["final"]["proven"]
           or v["msgs"] != base[k]["msgs"] or v["undecrypted"]]
    check(not bad, "%s: every genuine device proven ok and decrypted as without the flood (wrong: %s)"
          % (what, [(k, genuine[k]["final"]["verdict"], genuine[k]["msgs"], base[k]["msgs"]) for k in bad[:3]]))
    waited = sum(1 for v in genuine.values() if v["late"])
    check(len(fakes) == info["fakes"] * loops, "%s: every fake handshake followed (%d of %d)"
          % (what, len(fakes), info["fakes"] * loops))
    skipped = [v for v in fakes.values() if v["idstep"] and v["idstep"].get("reason") == "rsa-budget"]
    most = rate * (span + 3) + rate     # the budget's operations over the flood, its wait and one second's store
    check(len(skipped) >= len(fakes) - most, "%s: %d of %d fake handshakes skipped for the budget (at least %d)" %
          (what, len(skipped), len(fakes), len(fakes) - most))
    wrong = [v["final"] for v in skipped
             if v["final"]["verdict"] not in ("id-block-rejected", "stalled", "incomplete") or v["final"]["proven"]
             or "not opened for the RSA budget" not in v["final"]["evidence"]
             or "not opened for the RSA budget" not in v["idstep"]["note"]]
    check(not wrong, "%s: each skipped one is reported as not opened for the budget, never as a failure (%s)"
          % (what, wrong[:1]))
    b = summary.get("rsa_budget", {})
    check(b.get("rate") == rate and b.get("skipped") == len(skipped),
          "%s: the summary counts the same %d skipped handshakes (%s)" % (what, len(skipped), b))
    check(0 < b.get("operations", 0) <= most, "%s: %s private-key operations for %.2f s of flood (at most %d)"
          % (what, b.get("operations"), span, most))
    return waited


# ---- a file read with a budget ----
args = ["-r", fpcap, "-k", kf, "--json", "--rsa-budget", str(RATE)] + LIMITS
r1 = run(args)
waited = judge(r1.stdout, "file", RATE, info["span"])
check(waited >= 1, "file: %d genuine handshakes waited for the budget and were served" % waited)
r2 = run(args)
check(r1.stdout == r2.stdout, "file: the same output on a second read")
txt = run(["-r", fpcap, "-k", kf, "-q", "--rsa-budget", str(RATE)] + LIMITS).stdout
check("handshakes not opened for the RSA budget (400 operations a second)" in txt, "the text summary says how many were skipped")
un = run(["-r", fpcap, "-k", kf, "--json"] + LIMITS).stdout
check('"rsa-budget"' not in un and '"rsa_budget"' not in un, "a file without --rsa-budget is read without a limit")
bad = run(["-r", fpcap, "--rsa-budget", "many"])
check(bad.returncode == 2 and "--rsa-budget" in bad.stderr and bad.stderr.count("\n") == 1,
      "a bad --rsa-budget: one line, exit 2")

# ---- live: tcpreplay on the loopback of a namespace of its own ----
if os.geteuid() != 0 or not shutil.which("tcpreplay") or not shutil.which("unshare"):
    print("SKIP (live part): needs root, tcpreplay and unshare")
else:
    out = os.path.join(d, "live.jsonl")
    script = """
ip link set lo up || exit 3
"$1" -i lo -k "$2" --json --max-conns 100000 >"$3" 2>"$3.err" &
cm=$!
for i in $(seq 100); do grep -q "listening on" "$3.err" && break; sleep 0.1; done
sleep 1
# the devices in their own time, the flood beside them as fast as tcpreplay goes
tcpreplay -i lo --preload-pcap "$5" >"$3.devices" 2>&1 &
tcpreplay -i lo --preload-pcap --topspeed --loop "$6" "$4" >"$3.replay" 2>&1
wait $!
# cloudmon reads what the kernel holds: wait until its output stops growing (at most 60 s)
last=-1
for i in $(seq 60); do sleep 1; n=$(stat -c %s "$3"); [ "$n" = "$last" ] && break; last=$n; done
kill -INT $cm
wait $cm
"""
    fonly = os.path.join(d, "fakes.pcap")
    subprocess.run([sys.executable, os.path.join(HERE, "flood.py"), os.path.join(g, "capture.pcap"), fonly, "--rate",
                    "10000", "--strangers", "1000", "--fakes-only"], check=True, capture_output=True)
    LOOPS = 1
    lr = subprocess.run(["timeout", "150", "unshare", "-n", "sh", "-c", script, "sh", CLOUDMON, kf, out, fonly,
                         os.path.join(g, "capture.pcap"), str(LOOPS)], capture_output=True, text=True)
    live = open(out).read()
    rep = open(out + ".replay").read() if os.path.exists(out + ".replay") else ""
    check("sent in" in rep, "live: tcpreplay replayed the flood (%s)" % rep.strip().splitlines()[-6:])
    check(lr.returncode == 0 and live, "live: cloudmon and tcpreplay ran in a namespace (%d, %s)"
          % (lr.returncode, open(out + ".err").read().strip()[-200:]))
    if live:
        s = json.loads(live.splitlines()[-1])
        check(s.get("dropped_by_capture") == 0, "live: no packet dropped by the capture (%s)" % s.get("dropped_by_capture"))
        judge(live, "live", 400, None, LOOPS)
done()
