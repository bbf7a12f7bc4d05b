#!/usr/bin/env python3
"""Times several commands in alternation: round after round, each command once, in the order given.

    alternate.py ROUNDS CMDFILE OUTFILE

CMDFILE holds one command a line, as a JSON array of its arguments. OUTFILE gets one line a command, in
the same order: "CPU WALL RSS RC" where CPU is the median of the command's CPU seconds (user + system, from
the child's rusage), WALL the median of its wall seconds, RSS the largest peak RSS (kB) and RC the first
non-zero exit code (0 when every run succeeded). A shared machine's speed drifts over tens of seconds; a
ratio of two commands timed in the same rounds sees the same drift on both sides, where two blocks of runs
one after the other would not. Standard output of the commands is discarded; the standard error of each
command's last run is kept in OUTFILE.errN (N from 0, the command's line). OUTFILE.rounds gets every round's
CPU seconds, a line a command, so a ratio can be read round by round as well as from the medians."""
import json
import os
import statistics
import subprocess
import sys
import time


def run_once(argv, err_path):
    with open(err_path, "w") as err:
        t0 = time.monotonic()
        try:
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
            _, status, ru = os.wait4(p.pid, 0)
        except OSError as e:
            err.write("%s: %s\n" % (argv[0], e))
            return 0.0, time.monotonic() - t0, 0, 127
        wall = time.monotonic() - t0
    return ru.ru_utime + ru.ru_stime, wall, ru.ru_maxrss, os.waitstatus_to_exitcode(status)


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: alternate.py ROUNDS CMDFILE OUTFILE")
    rounds = int(sys.argv[1])
    with open(sys.argv[2]) as f:
        cmds = [json.loads(line) for line in f if line.strip()]
    out = sys.argv[3]
    cpu = [[] for _ in cmds]
    wall = [[] for _ in cmds]
    rss = [0] * len(cmds)
    rc = [0] * len(cmds)
    for _ in range(rounds):
        for i, argv in enumerate(cmds):
            c, w, r, code = run_once(argv, "%s.err%d" % (out, i))
            cpu[i].append(c)
            wall[i].append(w)
            rss[i] = max(rss[i], r)
            if code != 0 and rc[i] == 0:
                rc[i] = code
    with open(out, "w") as f:
        for i in range(len(cmds)):
            f.write("%.4f %.3f %d %d\n" % (statistics.median(cpu[i]), statistics.median(wall[i]), rss[i], rc[i]))
    with open(out + ".rounds", "w") as f:
        for times in cpu:
            f.write(" ".join("%.4f" % t for t in times) + "\n")


if __name__ == "__main__":
    main()
