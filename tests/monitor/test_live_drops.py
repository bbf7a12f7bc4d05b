#!/usr/bin/env python3
"""Live capture at the highest rate this machine reaches: tcpreplay replays 200 devices x 400 messages
(sparkwire-gen, 121,420 packets) at top speed on the loopback of a network namespace of its own
(so no other traffic shares it) while cloudmon -i lo captures with the keys. cloudmon must count every packet,
the capture must drop none, and every connection must end proven ok with every message decrypted, exactly
as when the same capture is read from the file. The rate tcpreplay reached is printed. Root only (skipped
otherwise); bounded by timeouts."""
import json
import os
import re
import shutil
import subprocess
from cmtest import *

if os.geteuid() != 0:
    skip("live capture needs root")
if not shutil.which("tcpreplay") or not shutil.which("unshare"):
    skip("needs tcpreplay and unshare")
GEN = os.path.join(BUILD, "tests", "bench", "sparkwire-gen")
if not os.access(GEN, os.X_OK):
    skip("sparkwire-gen is not built (configure with -Dtests=enabled -Dfirmware=true)")
d = tmpdir()
os.chmod(d, 0o755)
g = os.path.join(d, "g")
subprocess.run([GEN, "-o", g, "-n", "200", "-m", "400", "-s", "5"], check=True, capture_output=True, timeout=240)
cap, kf = os.path.join(g, "capture.pcap"), os.path.join(g, "keyfile")
LOOPS = 1
ref = json.loads(subprocess.run([CLOUDMON, "-r", cap, "-k", kf, "-q", "--json"], capture_output=True, text=True,
                                check=True).stdout.splitlines()[-1])
check(ref["verdicts"] == {"ok": 200}, "the file: 200 connections ok, %d packets, %d messages"
      % (ref["packets"], ref["messages"]))

out = os.path.join(d, "live.jsonl")
script = r"""
ip link set lo up || exit 3
"$1" -i lo -k "$2" --json >"$3" 2>"$3.err" &
cm=$!
for i in $(seq 100); do grep -q "listening on" "$3.err" && break; sleep 0.1; done
sleep 1
tcpreplay -i lo --topspeed --preload-pcap --loop "$5" "$4" >"$3.replay" 2>&1
# cloudmon reads what the kernel holds: wait until its output stops growing (at most 90 s)
last=-1
for i in $(seq 90); do sleep 1; n=$(stat -c %s "$3"); [ "$n" = "$last" ] && break; last=$n; done
kill -INT $cm
wait $cm
"""
r = subprocess.run(["timeout", "180", "unshare", "-n", "sh", "-c", script, "sh", CLOUDMON, kf, out, cap, str(LOOPS)],
                   capture_output=True, text=True)
rep = open(out + ".replay").read() if os.path.exists(out + ".replay") else ""
m = re.search(r"Actual: (\d+) packets .* sent in ([0-9.]+) seconds", rep)
check(r.returncode == 0 and m, "cloudmon and tcpreplay ran in a namespace (%d; %s)" % (r.returncode, rep.strip()[-300:]))
if m:
    sent, secs = int(m.group(1)), float(m.group(2))
    print("tcpreplay --topspeed --preload-pcap --loop %d: %d packets in %.2f s: %.0f packets a second"
          % (LOOPS, sent, secs, sent / secs))
    lines = open(out).read().splitlines()
    s = json.loads(lines[-1])
    check(s.get("type") == "summary", "the run ends with its summary")
    check(s.get("dropped_by_capture") == 0, "no packet dropped by the capture (%s)" % s.get("dropped_by_capture"))
    check(s.get("packets") == sent == ref["packets"] * LOOPS, "cloudmon counted every packet sent (%s of %d)"
          % (s.get("packets"), sent))
    finals = [json.loads(l) for l in lines if '"type":"verdict"' in l and '"final":true' in l]
    bad = [f for f in finals if f["verdict"] != "ok" or not f["proven"]]
    check(len(finals) == 200 * LOOPS and not bad, "every connection proven ok (%d final verdicts; wrong: %s)"
          % (len(finals), bad[:1]))
    check(s.get("messages") == ref["messages"] * LOOPS, "every message decrypted (%s of %d)"
          % (s.get("messages"), ref["messages"] * LOOPS))
    check(s.get("rsa_budget", {}).get("skipped") == 0, "no handshake skipped for the RSA budget (%s)" % s.get("rsa_budget"))
done()
