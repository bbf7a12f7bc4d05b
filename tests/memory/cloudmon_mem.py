#!/usr/bin/env python3
"""cloudmon's memory per open connection, measured as tests/bench/run.sh measures it (smaller): the peak
resident size of `cloudmon -r CAPTURE --json --max-conns 1000000 --idle 1000000000` on N connections that stop
after the cloud's nonce, less that of the same run on one connection, divided by N. At most 2048 bytes.

usage: cloudmon_mem.py PEAK-RSS CLOUDMON SPARKWIRE-GEN [N]   (PEAK-RSS: peak_rss.c, which runs each command)
A sanitized build (SPARKWIRE_SANITIZED=1) has its allocator's redzones and quarantine in every figure: the
test says so and is skipped there (exit 77)."""
import json
import os
import subprocess
import sys
import tempfile

LIMIT = 2048


def peak_rss_kb(peak, cmd):
    """Runs cmd under peak_rss.c; returns (its peak RSS in kB, its stdout)."""
    p = subprocess.run([peak] + cmd, capture_output=True, text=True)
    err = p.stderr.strip().splitlines()
    if p.returncode != 0 or not err or not err[-1].startswith("peak-rss-kb "):
        sys.exit("cloudmon_mem: %s failed: %s" % (" ".join(cmd), p.stderr.strip()))
    return int(err[-1].split()[1]), p.stdout


def summary(text):
    """The JSON summary line of a cloudmon --json run."""
    for line in reversed(text.splitlines()):
        rec = json.loads(line)
        if rec.get("type") == "summary":
            return rec
    sys.exit("cloudmon_mem: no summary line in cloudmon's output")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    peak, cloudmon, gen = sys.argv[1], sys.argv[2], sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 20000
    if os.environ.get("SPARKWIRE_SANITIZED") == "1":
        print("cloudmon_mem: skipped in a sanitized build (its allocator's overhead is in every figure)")
        return 77
    with tempfile.TemporaryDirectory() as d:
        for name, count in (("many", n), ("one", 1)):
            subprocess.run([gen, "-o", os.path.join(d, name), "-n", str(count), "--syn-only", "-s", "3"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs = {}
        for name in ("one", "many"):
            runs[name] = peak_rss_kb(peak, [cloudmon, "-r", os.path.join(d, name, "capture.pcap"), "--json",
                                      "--max-conns", "1000000", "--idle", "1000000000"])
    s = summary(runs["many"][1])
    # every connection was followed and stayed open to the end: none evicted, none left out
    if s.get("connections") != n or s.get("evicted") != 0 or s.get("untracked") != 0:
        sys.exit("cloudmon_mem: cloudmon followed %s connections (evicted %s, untracked %s), not %d"
                 % (s.get("connections"), s.get("evicted"), s.get("untracked"), n))
    per = (runs["many"][0] - runs["one"][0]) * 1024 / n
    print("cloudmon, %d connections open after their nonce: peak RSS %d kB, one connection %d kB: "
          "%.0f bytes per connection (limit %d)" % (n, runs["many"][0], runs["one"][0], per, LIMIT))
    if per > LIMIT:
        print("cloudmon_mem: FAIL: %.0f bytes per connection > %d" % (per, LIMIT))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
