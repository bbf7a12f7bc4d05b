#!/usr/bin/env python3
"""TCP adversity: the samples rewritten with reordered, duplicated, overlapping and 1-byte segments give
the same steps, messages and verdicts as the original; a dropped segment gives a gap finding."""
import os
from cmtest import *

d = tmpdir()
cases = samples()
synth = os.path.join(d, "synth.pcap")
tool("synth", synth, "en10mb")
cases.append(("synthetic", synth, None))

MUTATIONS = ["split:1", "reorder", "split:7,reorder", "dup", "overlap", "split:5,overlap,dup",
             "split:3,reorder,dup,overlap"]

# the whole set on the scenarios with the most traffic kinds; two heavy combinations on the others
FULL = {"healthy", "healthy-g1", "mid-session", "bad-counter", "multi-device", "ota-failed", "synthetic"}
SHORT = ["split:1", "split:3,reorder,dup,overlap"]

for name, cap, kf in cases:
    keys = ["-k", kf] if kf else []
    rc, out, err = run(["-r", cap, "--json"] + keys)
    if not check(rc == 0, "%s: original reads (rc %d %s)" % (name, rc, err.strip()[:200])):
        continue
    ref = shape_by_dir(jsonl(out))
    nsteps = sum(1 for v in ref[0].values() for x in v if x[0] == "step")
    for ops in (MUTATIONS if name in FULL else SHORT):
        m = os.path.join(d, "%s-%s.pcap" % (name, ops.replace(":", "").replace(",", "-")))
        tool("mutate", cap, m, ops)
        rc, out, err = run(["-r", m, "--json"] + keys)
        got = shape_by_dir(jsonl(out))
        same = rc == 0 and got == ref
        if not same:
            for k in sorted(set(ref[0]) | set(got[0])):
                a, b = ref[0].get(k, []), got[0].get(k, [])
                diff = [(x, y) for x, y in zip(a, b) if x != y][:2]
                if diff or len(a) != len(b):
                    print("   %s: first differences %s, lengths %d %d" % (k, diff, len(a), len(b)))
            if ref[1] != got[1]:
                print("   final verdicts differ:", ref[1], got[1])
        check(same, "%s %s: same %d steps, messages and verdicts" % (name, ops, nsteps))
    # drop one data segment in the middle of the stream: a gap finding, and nothing else is lost silently
    objs = jsonl(run(["-r", cap, "--json"] + keys)[1])
    nseg = int(os.popen("%s %s info %s" % (sys.executable, PCAPTOOL, cap)).read().split()[2])
    if nseg >= 6:
        k = min(6, nseg - 1)
        m = os.path.join(d, "%s-drop.pcap" % name)
        tool("mutate", cap, m, "drop:%d" % k)
        rc, out, err = run(["-r", m, "--json"] + keys)
        objs = jsonl(out)
        gaps = [o for o in objs if o["type"] == "finding" and o["finding"] == "gap"]
        check(rc == 0 and len(gaps) >= 1, "%s drop:%d: a gap finding (%d)" % (name, k, len(gaps)))
        # splitting the dropped capture into 1-byte segments still gives the same result
        m2 = os.path.join(d, "%s-drop-split.pcap" % name)
        tool("mutate", m, m2, "split:1")
        rc2, out2, _ = run(["-r", m2, "--json"] + keys)
        check(rc2 == 0 and shape_by_dir(jsonl(out2)) == shape_by_dir(objs),
              "%s drop:%d then split:1: same as drop alone" % (name, k))
# damaged packets (random bytes overwritten anywhere, headers included): no crash, a clean run, the summary
for name, cap, kf in cases[:4] + cases[-3:]:
    for seed in (1, 2):
        m = os.path.join(d, "%s-flip%d.pcap" % (name, seed))
        tool("mutate", cap, m, "flip:%d" % seed)
        rc, out, err = run(["-r", m, "--json", "-f", ""] + (["-k", kf] if kf else []))
        objs = jsonl(out)
        # damage may give warnings (bogus IP lengths, fragments never completed), never an error
        quiet = all(l.startswith("cloudmon: warning: ") for l in err.splitlines())
        check(rc == 0 and quiet and objs and objs[-1]["type"] == "summary",
              "%s with damaged packets (seed %d): runs clean (rc %d %s)" % (name, seed, rc, err.strip()[:200]))
done()
