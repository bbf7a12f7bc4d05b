#!/usr/bin/env python3
"""Live capture at the highest rate this machine reaches, on the loopback of a network namespace of its own
(so no other traffic shares it). Root only (skipped otherwise); bounded by timeouts.

1. tcpreplay replays 200 devices x 400 messages (sparkwire-gen, 121,420 packets) five times over at top
   speed (607,100 packets: more than the kernel's ring holds while cloudmon writes JSON Lines; without the
   capture thread, --queue-mb 0, about 100,000 of them are lost here) while
   cloudmon -i lo --json captures with the keys and its capture thread (the default). The RSA budget is
   lifted (--rsa-budget 0): five passes at top speed start up to 500 handshakes a second, more than the
   default budget opens, and skipping them is right but not what this test measures (test_flood.py
   does). cloudmon must count
   every packet, drop none, and every connection must end proven ok with every message decrypted, exactly
   as when the same capture is read from the file. The rate tcpreplay reached is printed.
2. The queue's full path: cloudmon --queue-mb 1 writes its JSON Lines into a pipe nobody reads yet, so
   decoding stops while 30,000 packets come; the capture thread must go on draining the kernel's ring and
   count what the full queue could not take: every packet sent is either counted or dropped by the queue,
   the summary, the metrics and a warning on standard error say so, and nothing is lost without a count.
3. Idle expiry live, with the queue between capture and decoder: a connection that goes silent mid-session
   (the first 20 packets of samples/mid-session, no FIN) ends by --idle 2 while cloudmon still runs.
4. A stop (SIGINT) with packets still in the queue: they are decoded for at most a second, the rest counted
   as dropped by the queue with a warning; every packet sent is counted either way, and the stop is quick."""
import json
import os
import re
import shutil
import subprocess
import sys
from cmtest import *

sys.path.insert(0, HERE)
from pcaptool import read_pcap, write_pcap

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
LOOPS = 5
ref = json.loads(subprocess.run([CLOUDMON, "-r", cap, "-k", kf, "-q", "--json"], capture_output=True, text=True,
                                check=True).stdout.splitlines()[-1])
check(ref["verdicts"] == {"ok": 200}, "the file: 200 connections ok, %d packets, %d messages"
      % (ref["packets"], ref["messages"]))


def replayed(path):
    rep = open(path).read() if os.path.exists(path) else ""
    m = re.search(r"Actual: (\d+) packets .* sent in ([0-9.]+) seconds", rep)
    return (int(m.group(1)), float(m.group(2))) if m else (None, rep.strip()[-300:])


# cloudmon reads what the kernel and its queue hold: "quiet FILE MAX" waits until its output FILE has not grown
# for 2 s (at most MAX s), so a decoder that a loaded machine leaves without a core for a second is not
# stopped early
QUIET = r"""
quiet() {
    last=-1 same=0
    for i in $(seq "$2"); do
        sleep 1; n=$(stat -c %s "$1")
        if [ "$n" = "$last" ]; then same=$((same + 1)); [ $same -ge 2 ] && return; else same=0; fi
        last=$n
    done
}
"""

# 1. the long replay
out = os.path.join(d, "live.jsonl")
script = QUIET + r"""
ip link set lo up || exit 3
"$1" -i lo -k "$2" --json --rsa-budget 0 >"$3" 2>"$3.err" &
cm=$!
for i in $(seq 100); do grep -q "listening on" "$3.err" && break; sleep 0.1; done
sleep 1
tcpreplay -i lo --topspeed --preload-pcap --loop "$5" "$4" >"$3.replay" 2>&1
quiet "$3" 90
kill -INT $cm
wait $cm
"""
r = subprocess.run(["timeout", "180", "unshare", "-n", "sh", "-c", script, "sh", CLOUDMON, kf, out, cap, str(LOOPS)],
                   capture_output=True, text=True)
sent, secs = replayed(out + ".replay")
check(r.returncode == 0 and sent, "cloudmon and tcpreplay ran in a namespace (%d; %s)" % (r.returncode, secs))
if sent:
    print("tcpreplay --topspeed --preload-pcap --loop %d: %d packets in %.2f s: %.0f packets a second"
          % (LOOPS, sent, secs, sent / secs))
    lines = open(out).read().splitlines()
    s = json.loads(lines[-1])
    check(s.get("type") == "summary", "the run ends with its summary")
    check(s.get("dropped_by_capture") == 0 and s.get("dropped_by_queue") == 0,
          "no packet dropped by the kernel or the capture queue (%s, %s)"
          % (s.get("dropped_by_capture"), s.get("dropped_by_queue")))
    check(s.get("packets") == sent == ref["packets"] * LOOPS, "cloudmon counted every packet sent (%s of %d)"
          % (s.get("packets"), sent))
    finals = [json.loads(l) for l in lines if '"type":"verdict"' in l and '"final":true' in l]
    bad = [f for f in finals if f["verdict"] != "ok" or not f["proven"]]
    check(len(finals) == 200 * LOOPS and not bad, "every connection proven ok (%d final verdicts; wrong: %s)"
          % (len(finals), bad[:1]))
    check(s.get("messages") == ref["messages"] * LOOPS, "every message decrypted (%s of %d)"
          % (s.get("messages"), ref["messages"] * LOOPS))

# 2. a full queue counts what it drops
SEND = 30000
out = os.path.join(d, "stalled.jsonl")
script = QUIET + r"""
ip link set lo up || exit 3
# the reader of cloudmon's output waits for the file "go": until then cloudmon blocks writing
# (cloudmon runs under timeout, which passes the SIGINT on: nothing outlives the test)
{ echo $BASHPID >"$3.pid"; exec timeout -k 5 90 "$1" -i lo -k "$2" --json --queue-mb 1 --metrics 127.0.0.1:9931 \
    2>"$3.err"; } |
    { while [ ! -e "$3.go" ]; do sleep 0.1; done; cat >"$3"; } &
for i in $(seq 100); do grep -q "listening on" "$3.err" 2>/dev/null && break; sleep 0.1; done
sleep 1
tcpreplay -i lo --pps 30000 --limit "$5" --preload-pcap "$4" >"$3.replay" 2>&1
sleep 1
touch "$3.go"
quiet "$3" 60
python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9931/metrics').read().decode())" \
    >"$3.metrics"
kill -INT "$(cat "$3.pid")"
wait
"""
r = subprocess.run(["timeout", "120", "unshare", "-n", "bash", "-c", script, "sh", CLOUDMON, kf, out, cap, str(SEND)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
sent, secs = replayed(out + ".replay")
check(r.returncode == 0 and sent == SEND, "a replay of %d packets into a stalled cloudmon ran (%d; %s)"
      % (SEND, r.returncode, secs))
lines = open(out).read().splitlines() if os.path.exists(out) else []
s = json.loads(lines[-1]) if lines else {}
err = open(out + ".err").read() if os.path.exists(out + ".err") else ""
if sent:
    q, total, n = s.get("dropped_by_queue", -1), s.get("dropped_by_capture", -1), s.get("packets", -1)
    print("queue of 1 MB, decoding stalled: %s packets counted, %s dropped by the queue, %s by the capture in all"
          % (n, q, total))
    check(s.get("type") == "summary", "the stalled run ends with its summary")
    check(q > 0, "the full queue dropped packets and counted them (%s)" % q)
    check(total == q, "the capture thread kept the kernel's ring drained: every drop is the queue's (%s of %s)"
          % (q, total))
    check(n + q == sent, "every packet sent was counted or counted as dropped (%s + %s of %d)" % (n, q, sent))
    check(0 < n < sent, "cloudmon decoded what the queue held (%s)" % n)
    check(re.search(r"warning: %d packets were dropped because the capture queue \(1 MB\) was full.*--queue-mb" % q,
                    err) is not None, "a warning names the drops and the option (%s)" % err.strip()[-300:])
    met = open(out + ".metrics").read() if os.path.exists(out + ".metrics") else ""
    check("\ncloudmon_capture_queue_dropped_packets_total %d\n" % q in met and
          "\ncloudmon_capture_dropped_packets_total %d\n" % total in met,
          "the metrics count them, before cloudmon stops (%s)"
          % [l for l in met.splitlines() if l.startswith("cloudmon_capture")])

# 3. a silent connection expires while the capture goes on
out = os.path.join(d, "idle.jsonl")
link, pkts = read_pcap(os.path.join(SAMPLES, "mid-session", "capture.pcap"))
silent = os.path.join(d, "silent.pcap")
write_pcap(silent, link, pkts[:20])
script = r"""
ip link set lo up || exit 3
"$1" -i lo --json --idle 2 >"$3" 2>"$3.err" &
cm=$!
for i in $(seq 100); do grep -q "listening on" "$3.err" && break; sleep 0.1; done
tcpreplay -i lo --topspeed "$2" >/dev/null 2>&1
sleep 5
cp "$3" "$3.before"
kill -INT $cm
wait $cm
"""
r = subprocess.run(["timeout", "60", "unshare", "-n", "sh", "-c", script, "sh", CLOUDMON, silent, out],
                   capture_output=True, text=True)
before = open(out + ".before").read() if os.path.exists(out + ".before") else ""
lines = open(out).read().splitlines() if os.path.exists(out) else []
s = json.loads(lines[-1]) if lines else {}
check(r.returncode == 0 and s.get("packets") == 20, "the silent connection's 20 packets were captured (%d, %s)"
      % (r.returncode, s.get("packets")))
check('"final":true' in before and '"verdict":"mid-session"' in before,
      "the silent connection ended mid-session by --idle 2 before cloudmon was stopped")
check(s.get("expired") == 1, "the summary counts it as expired (%s)" % s.get("expired"))
# 4. a stop with packets still queued: (a) the output is stalled when SIGINT comes (its write fails), so the
# queue holds what was sent and nothing more is decoded: every queued packet is counted as dropped by the
# queue, with a warning; (b) SIGINT right after a fast replay: what is queued is decoded for at most 1 s and
# the rest counted; either way every packet sent is counted or counted as dropped, and the stop is quick
out = os.path.join(d, "stopped.jsonl")
script = r"""
ip link set lo up || exit 3
{ echo $BASHPID >"$3.pid"; exec timeout -k 5 90 "$1" -i lo -k "$2" --json 2>"$3.err"; } |
    { while [ ! -e "$3.go" ]; do sleep 0.1; done; cat >"$3"; } &
for i in $(seq 100); do grep -q "listening on" "$3.err" 2>/dev/null && break; sleep 0.1; done
sleep 1
tcpreplay -i lo --pps 20000 --limit "$5" --preload-pcap "$4" >"$3.replay" 2>&1
sleep 1
kill -INT "$(cat "$3.pid")"
sleep 0.5
touch "$3.go"
wait
"""
SEND = 20000
r = subprocess.run(["timeout", "120", "unshare", "-n", "bash", "-c", script, "sh", CLOUDMON, kf, out, cap, str(SEND)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
sent, secs = replayed(out + ".replay")
lines = open(out).read().splitlines() if os.path.exists(out) else []
s = json.loads(lines[-1]) if lines and lines[-1].startswith('{"type":"summary"') else {}
err = open(out + ".err").read() if os.path.exists(out + ".err") else ""
n, q, total = s.get("packets", -1), s.get("dropped_by_queue", -1), s.get("dropped_by_capture", -1)
print("stalled output, then SIGINT: %s packets decoded, %s dropped by the queue, %s by the capture" % (n, q, total))
check(r.returncode == 0 and sent == SEND and s, "a stalled cloudmon was stopped with %d packets sent (%d; %s)"
      % (SEND, r.returncode, secs))
m = re.search(r"warning: (\d+) packets still in the capture queue when the capture stopped were not decoded", err)
check(m is not None and int(m.group(1)) == q > 0, "the packets left in the queue are counted as dropped by it, with "
      "a warning (%s; %s)" % (q, err.strip()[-300:]))
check(n + total == sent and total == q, "every packet sent was decoded or counted as dropped (%s + %s of %d)"
      % (n, total, sent))

out = os.path.join(d, "stopped2.jsonl")
script = r"""
ip link set lo up || exit 3
"$1" -i lo -k "$2" --json --rsa-budget 0 >"$3" 2>"$3.err" &
cm=$!
for i in $(seq 100); do grep -q "listening on" "$3.err" && break; sleep 0.1; done
sleep 1
tcpreplay -i lo --topspeed --preload-pcap --loop 2 "$4" >"$3.replay" 2>&1
kill -INT $cm
date +%s.%N >"$3.t0"
wait $cm
date +%s.%N >"$3.t1"
"""
r = subprocess.run(["timeout", "120", "unshare", "-n", "sh", "-c", script, "sh", CLOUDMON, kf, out, cap],
                   capture_output=True, text=True)
sent, secs = replayed(out + ".replay")
lines = open(out).read().splitlines() if os.path.exists(out) else []
s = json.loads(lines[-1]) if lines else {}
err = open(out + ".err").read() if os.path.exists(out + ".err") else ""
stop = (float(open(out + ".t1").read()) - float(open(out + ".t0").read())) if os.path.exists(out + ".t1") else 99
m = re.search(r"warning: (\d+) packets still in the capture queue", err)
print("SIGINT after a fast replay of %s packets: %s decoded, %s dropped by the queue (%s left at the stop), "
      "stopped in %.2f s" % (sent, s.get("packets"), s.get("dropped_by_queue"), m.group(1) if m else 0, stop))
check(r.returncode == 0 and sent and s.get("packets", 0) + s.get("dropped_by_capture", 0) == sent,
      "every packet sent was decoded or counted as dropped (%s + %s of %s)"
      % (s.get("packets"), s.get("dropped_by_capture"), sent))
check(stop < 5, "the stop took %.2f s (the queue is decoded for at most 1 s)" % stop)

done()
