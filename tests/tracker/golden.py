#!/usr/bin/env python3
"""Golden tests of the tracker on the sample captures.

Reads a list file (one test a line, tcpdump TESTLIST style):

    NAME  CAPTURE  KEYFILE  GOLDEN  [SUBSET]

paths relative to the source root (GOLDEN relative to the list file's folder). For each line it runs
tracker-dump and compares its output with the golden text; the same capture fed byte by byte and in
random pieces (fixed seeds) must print exactly the same text. A second list (verdicts) names the final
verdict expected for a key subset:

    NAME  CAPTURE  KEYFILE  SUBSET  VERDICT  [CANDIDATES]

and samples/expected.tsv, when present, gives each sample's expected verdict.

    golden.py TRACKER_DUMP SOURCE_ROOT            check
    golden.py TRACKER_DUMP SOURCE_ROOT --update   rewrite the golden files from the current output
"""
import difflib
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = ["byte", "3", "11", "4242"]


def read_list(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if line:
                rows.append((n, line.split()))
    return rows


def run(dump, root, capture, keyfile, subset="all", chunk="whole"):
    cmd = [dump, "-k", os.path.join(root, keyfile), "-s", subset, "-c", chunk, os.path.join(root, capture)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return p.stdout


def final_verdicts(text):
    """The last verdict line of each connection: {conn: (code, candidates)}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[1] == "verdict":
            cands = parts[5][len("cands="):] if parts[5].startswith("cands=") else "-"
            out[parts[0]] = (parts[2], cands)
    return out


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    dump, root = sys.argv[1], sys.argv[2]
    update = "--update" in sys.argv[3:]
    failures = 0
    checked = 0

    for n, f in read_list(os.path.join(HERE, "golden", "TESTLIST")):
        if len(f) not in (4, 5):
            print("TESTLIST:%d: expected NAME CAPTURE KEYFILE GOLDEN [SUBSET]" % n)
            failures += 1
            continue
        name, capture, keyfile, golden = f[:4]
        subset = f[4] if len(f) == 5 else "all"
        if not os.path.exists(os.path.join(root, capture)):
            print("FAIL %s: capture %s is missing (regenerate the samples: samples/make-samples.sh)" % (name, capture))
            failures += 1
            continue
        whole = run(dump, root, capture, keyfile, subset)
        gpath = os.path.join(HERE, "golden", golden)
        if update:
            with open(gpath, "w", encoding="utf-8") as g:
                g.write(whole)
            print("wrote %s" % gpath)
        elif not os.path.exists(gpath):
            print("FAIL %s: golden file %s is missing (run golden.py with --update)" % (name, gpath))
            failures += 1
        else:
            with open(gpath, encoding="utf-8") as g:
                want = g.read()
            if want != whole:
                print("FAIL %s: output differs from %s:" % (name, golden))
                sys.stdout.writelines(difflib.unified_diff(want.splitlines(True), whole.splitlines(True),
                                                           golden, "tracker-dump", n=1))
                failures += 1
            else:
                checked += 1
        for chunk in SEEDS:
            other = run(dump, root, capture, keyfile, subset, chunk)
            if other != whole:
                print("FAIL %s: chunking %s gives other output than whole segments:" % (name, chunk))
                sys.stdout.writelines(difflib.unified_diff(whole.splitlines(True), other.splitlines(True),
                                                           "whole", chunk, n=1))
                failures += 1
            else:
                checked += 1

    vlist = os.path.join(HERE, "golden", "verdicts")
    if os.path.exists(vlist):
        for n, f in read_list(vlist):
            if len(f) not in (5, 6):
                print("verdicts:%d: expected NAME CAPTURE KEYFILE SUBSET VERDICT [CANDIDATES]" % n)
                failures += 1
                continue
            name, capture, keyfile, subset, verdict = f[:5]
            cands = f[5] if len(f) == 6 else None
            if not os.path.exists(os.path.join(root, capture)):
                print("FAIL %s: capture %s is missing" % (name, capture))
                failures += 1
                continue
            got = final_verdicts(run(dump, root, capture, keyfile, subset))
            first = got.get("[1]")
            if not first or first[0] != verdict or (cands is not None and first[1] != cands):
                print("FAIL %s (keys: %s): verdict %s, expected %s%s" % (
                    name, subset, "%s cands=%s" % first if first else "none", verdict,
                    " cands=" + cands if cands else ""))
                failures += 1
            else:
                checked += 1

    expected = os.path.join(root, "samples", "expected.tsv")
    if os.path.exists(expected):
        for n, f in read_list(expected):
            if len(f) < 2 or f[0] in ("scenario", "name"):
                continue
            name, verdict = f[0], f[1]
            capture = os.path.join("samples", name, "capture.pcap")
            keyfile = os.path.join("samples", name, "keyfile")
            if not os.path.exists(os.path.join(root, capture)):
                continue
            got = final_verdicts(run(dump, root, capture, keyfile))
            codes = sorted({v[0] for v in got.values()})
            if verdict not in codes:
                print("FAIL samples/expected.tsv:%d %s: tracker says %s, expected %s" % (n, name, ",".join(codes),
                                                                                       verdict))
                failures += 1
            else:
                checked += 1

    print("%d checks passed, %d failed" % (checked, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
