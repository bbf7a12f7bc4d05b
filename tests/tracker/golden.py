#!/usr/bin/env python3
"""Golden tests of the tracker on the sample captures.

Reads a list file (one test a line, tcpdump TESTLIST style):

    NAME  CAPTURE  KEYFILE  GOLDEN  [SUBSET]

paths relative to the source root (GOLDEN relative to the list file's folder). For each line it runs
tracker-dump and compares its output with the golden text; the same capture fed byte by byte and in
random pieces (fixed seeds) must print exactly the same text. A second list (verdicts) names the final
verdict expected for a key subset:

    NAME  CAPTURE  KEYFILE  SUBSET  VERDICT  [CANDIDATES]

and samples/expected.tsv, when present, gives each sample's expected verdict. A third list (owner) gives
the final verdicts under the keys a device owner holds (the device's private key, the server key in its
flash, the cloud's public key), in a keyfile written here from the sample's `device` lines:

    NAME  CAPTURE  DEVICE_SERVER_KEY  VERDICTS  [CANDIDATES]

    golden.py TRACKER_DUMP SOURCE_ROOT            check
    golden.py TRACKER_DUMP SOURCE_ROOT --update   rewrite the golden files from the current output
"""
import difflib
import hashlib
import os
import subprocess
import sys
import tempfile

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


def run(dump, root, capture, keyfile, subset="all", chunk="whole", bare=False):
    cmd = [dump, "-k", os.path.join(root, keyfile), "-s", subset, "-c", chunk] + (["-b"] if bare else [])
    cmd.append(os.path.join(root, capture))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return p.stdout


def without_texts(text):
    """The text with what kr_tracker_set_texts(false) leaves out cut away: the summary of each message and
    the note of each frame and Hello step (the line up to its first ": ")."""
    out = []
    for line in text.splitlines():
        p = line.split()
        if len(p) > 3 and (p[1] == "msg" or (p[1] == "step" and p[3] in ("hello", "frame"))):
            line = line.split(": ", 1)[0]
        out.append(line)
    return out


def final_verdicts(text):
    """The last verdict line of each connection: {conn: (code, candidates)}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[1] == "verdict":
            cands = parts[5][len("cands="):] if parts[5].startswith("cands=") else "-"
            out[parts[0]] = (parts[2], cands)
    return out


def owner_keyfile(root, sample_dir, device_server_key, out):
    """The owner's keyfile: each `device ID PATH` line of the sample's keyfile, the server key in that
    device's flash, and the cloud's public key. Returns the number of device lines."""
    n = 0
    lines = []
    with open(os.path.join(sample_dir, "keyfile"), encoding="utf-8") as f:
        for line in f:
            w = line.split("#", 1)[0].split()
            if len(w) == 3 and w[0] == "device" and w[1] != "*":
                lines.append("device %s %s" % (w[1], os.path.join(sample_dir, w[2])))
                lines.append("device-server-key %s %s" % (w[1], os.path.abspath(os.path.join(root, device_server_key))))
                n += 1
    lines.append("server-public %s" % os.path.abspath(os.path.join(root, "samples", "keys", "server-public.der")))
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return n


def check_owner(dump, root, olist):
    checked = failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n, f in read_list(olist):
            if len(f) not in (4, 5):
                print("owner:%d: expected NAME CAPTURE DEVICE_SERVER_KEY VERDICTS [CANDIDATES]" % n)
                failures += 1
                continue
            name, capture, dsk, verdicts = f[:4]
            cands = f[4] if len(f) == 5 else "-"
            kf = os.path.join(tmp, name + ".keyfile")
            if owner_keyfile(root, os.path.abspath(os.path.dirname(os.path.join(root, capture))), dsk, kf) == 0:
                print("FAIL %s (owner keys): the sample's keyfile has no device line" % name)
                failures += 1
                continue
            got = final_verdicts(run(dump, root, capture, kf))
            conns = sorted(got, key=lambda c: int(c.strip("[]")))
            mine = ",".join(got[c][0] for c in conns)
            first = got.get("[1]", ("", "-"))[1]
            if mine != verdicts or first != cands:
                print("FAIL %s (owner keys): verdicts %s cands=%s, expected %s cands=%s" % (
                    name, mine, first, verdicts, cands))
                failures += 1
            else:
                checked += 1
    return checked, failures


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
        with open(os.path.join(root, capture), "rb") as cf:
            stamp = "# capture %s sha256 %s keys %s\n" % (capture, hashlib.sha256(cf.read()).hexdigest(), subset)
        gpath = os.path.join(HERE, "golden", golden)
        if update:
            with open(gpath, "w", encoding="utf-8") as g:
                g.write(stamp + whole)
            print("wrote %s" % gpath)
        elif not os.path.exists(gpath):
            print("FAIL %s: golden file %s is missing (run golden.py with --update)" % (name, gpath))
            failures += 1
        else:
            with open(gpath, encoding="utf-8") as g:
                want = g.read()
            first, _, want = want.partition("\n")
            want = want if first.startswith("# capture") else first + "\n" + want
            if first.startswith("# capture") and first + "\n" != stamp:
                print("FAIL %s: %s changed since %s was made; check the new output and run golden.py --update"
                      % (name, capture, golden))
                failures += 1
            if want != whole:
                print("FAIL %s: output differs from %s:" % (name, golden))
                sys.stdout.writelines(difflib.unified_diff(want.splitlines(True), whole.splitlines(True),
                                                           golden, "tracker-dump", n=1))
                failures += 1
            else:
                checked += 1
        # without texts (cloudmon -q): every step, message kind and header, answer, finding and verdict the same
        bare, full = without_texts(run(dump, root, capture, keyfile, subset, "whole", True)), without_texts(whole)
        if bare != full:
            print("FAIL %s: without texts the tracker gives more than the texts differently:" % name)
            sys.stdout.writelines(l + "\n" for l in difflib.unified_diff(full, bare, "texts", "no texts", n=1,
                                                                         lineterm=""))
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

    olist = os.path.join(HERE, "golden", "owner")
    if os.path.exists(olist):
        c, f = check_owner(dump, root, olist)
        checked += c
        failures += f

    expected = os.path.join(root, "samples", "expected.tsv")
    if os.path.exists(expected):
        with open(expected, encoding="utf-8") as f:
            rows = [l.rstrip("\n").split("\t") for l in f if l.strip() and not l.startswith("#")]
        head = rows[0] if rows else []
        for n, r in enumerate(rows[1:], 2):
            row = dict(zip(head, r))
            name = row.get("scenario")
            capture = os.path.join("samples", row.get("capture", ""))
            keyfile = os.path.join("samples", name or "", "keyfile")
            if not name or not os.path.exists(os.path.join(root, capture)):
                print("FAIL samples/expected.tsv:%d: capture %s is missing" % (n, capture))
                failures += 1
                continue
            text = run(dump, root, capture, keyfile)
            got = final_verdicts(text)
            conns = sorted(got, key=lambda c: int(c.strip("[]")))
            mine = [got[c][0] for c in conns]
            want = row.get("verdicts", "").split(",")
            problems = []
            if mine != want:
                problems.append("verdicts %s, expected %s" % (",".join(mine), ",".join(want)))
            ids = {}
            codes = set()
            for line in text.splitlines():
                p = line.split()
                if len(p) > 2 and p[1] == "info":
                    ids[p[0]] = p[2][len("device="):]
                if len(p) > 2 and p[1] == "finding":
                    codes.add(p[2])
            want_ids = row.get("device_ids", "").split(",")
            for c, w in zip(conns, want_ids):
                if ids.get(c, "-") not in ("-", w):
                    problems.append("connection %s device %s, expected %s" % (c, ids.get(c), w))
            want_f = set() if row.get("findings", "-") == "-" else set(row["findings"].split(","))
            if codes != want_f:
                problems.append("findings %s, expected %s" % (",".join(sorted(codes)) or "-",
                                                              ",".join(sorted(want_f)) or "-"))
            nokeys = final_verdicts(run(dump, root, capture, keyfile, "none"))
            mine0 = [nokeys[c][0] for c in sorted(nokeys, key=lambda c: int(c.strip("[]")))]
            want0 = row.get("verdicts_without_keys", "").split(",")
            if mine0 != want0:
                problems.append("without keys %s, expected %s" % (",".join(mine0), ",".join(want0)))
            if problems:
                print("FAIL samples/expected.tsv:%d %s: %s" % (n, name, "; ".join(problems)))
                failures += 1
            else:
                checked += 1

    print("%d checks passed, %d failed" % (checked, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
