"""Helpers for the cloudmon integration tests: run the program, parse JSON Lines, skip, fail."""
import atexit
import json
import re
import os
import subprocess
import sys
import signal
import shutil
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("SPARKWIRE_SOURCE_ROOT", os.path.abspath(os.path.join(HERE, "..", "..")))
BUILD = os.environ.get("SPARKWIRE_BUILD_ROOT", os.path.join(SRC, "build"))
CLOUDMON = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(BUILD, "monitor", "cloudmon")
PCAPTOOL = os.path.join(HERE, "pcaptool.py")
SAMPLES = os.path.join(SRC, "samples")
failures = []


def skip(why):
    print("SKIP:", why)
    sys.exit(77)


def check(cond, what):
    if cond:
        print("ok  ", what)
    else:
        print("FAIL", what)
        failures.append(what)
    return cond


def done():
    if failures:
        print("%d check(s) failed:" % len(failures))
        for f in failures:
            print("  -", f)
        sys.exit(1)
    print("all checks passed")
    sys.exit(0)


def run(args, stdin=None, timeout=60, env=None, input_bytes=None):
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    if env:
        e.update(env)
    p = subprocess.run([CLOUDMON] + args, stdin=stdin, input=input_bytes, capture_output=True,
                       timeout=timeout, env=e)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def jsonl(text):
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def tool(*args):
    subprocess.run([sys.executable, PCAPTOOL] + list(args), check=True)


def tmpdir():
    """A fresh folder, removed when the test ends (a live test leaves hundreds of MB of JSON in it)."""
    d = tempfile.mkdtemp(prefix="cloudmon-test-")
    os.chmod(d, 0o755)
    atexit.register(shutil.rmtree, d, True)
    return d


def samples():
    """(name, capture, keyfile or None) for every sample scenario present."""
    out = []
    if not os.path.isdir(SAMPLES):
        return out
    for name in sorted(os.listdir(SAMPLES)):
        cap = os.path.join(SAMPLES, name, "capture.pcap")
        if os.path.isfile(cap):
            kf = os.path.join(SAMPLES, name, "keyfile")
            out.append((name, cap, kf if os.path.isfile(kf) else None))
    return out


def shape(objs):
    """What must not change when only the TCP segmentation changes: steps, messages, findings and
    verdicts in order, without times."""
    out = []
    for o in objs:
        t = o.get("type")
        if t == "step":
            out.append(("step", o["conn"], o["dir"], o["step"], o["length"], o.get("frame"), o.get("device_id")))
        elif t == "message":
            # response times in the summary depend on packet times, which rewriting may move by a little
            summ = re.sub(r"\(\d+ ms\)", "(N ms)", o.get("summary") or "")
            out.append(("message", o["conn"], o["dir"], o["message"], summ))
        elif t == "finding":
            out.append(("finding", o["conn"], o["dir"], o["finding"]))
        elif t == "verdict":
            out.append(("verdict", o["conn"], o["verdict"], o["proven"], o["final"], tuple(o["candidates"])))
    return out


def shape_by_dir(objs):
    """The same per connection and direction, with the final verdicts: the order between the two
    directions may change with the segmentation (a frame completes at another packet), the order
    within one direction may not."""
    per = {}
    finals = []
    for x in shape(objs):
        if x[0] == "verdict":
            if x[4]:
                finals.append(x)
        else:
            per.setdefault((x[1], x[2]), []).append(x)
    return per, sorted(finals)


def children_named(ppid, name):
    """The live (not zombie) child processes of ppid whose command name is name, read from /proc."""
    found = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % e).read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if comm == name and fields[0] != "Z" and int(fields[1]) == ppid:
            found.append(int(e))
    return found


def tmux_stop_cloudmon(T, target="cm", secs=30):
    """Stops the cloudmon running in a tmux pane with SIGTERM and waits until it is gone, so that killing the
    session afterwards never ends it by a hang-up: the sanitizers' exit report then runs while its terminal
    still exists (a report started in a process whose terminal is gone can hang and spin)."""
    r = subprocess.run(T + ["display-message", "-p", "-t", target, "#{pane_pid}"], capture_output=True, timeout=10)
    pid = r.stdout.decode().strip()
    if not pid.isdigit():
        return
    end = time.time() + secs
    while time.time() < end:
        kids = children_named(int(pid), "cloudmon")
        if not kids:
            return
        for k in kids:
            try:
                os.kill(int(k), signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
