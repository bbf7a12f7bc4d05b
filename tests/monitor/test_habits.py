#!/usr/bin/env python3
"""cloudmon's options follow tcpdump and tshark (-D, -s, -p, --cloud-port, --version, -w FILE.pcapng with the
verdict as a packet comment that tshark shows), the hint when nothing matched the cloud port, and its
output files are safe: never through a symbolic link, the decrypted export 0600, and as root never over
another user's file."""
import os
import pwd
import stat
import subprocess
from cmtest import *

d = tmpdir()
HEALTHY = os.path.join(SAMPLES, "healthy")
cap, kf = os.path.join(HEALTHY, "capture.pcap"), os.path.join(HEALTHY, "keyfile")

# ---- options ----
rc, out, err = run(["--help"])
check(rc == 0 and "--cloud-port" in out and "--no-promiscuous-mode" in out and "-D, --list-interfaces" in out
      and "-V" not in out, "--help: --cloud-port, -p, -D listed; no -V")
rc, out, err = run(["--version"])
check(rc == 0 and out.startswith("cloudmon (sparkwire) "), "--version prints the version")
rc, out, err = run(["-V"])
check(rc == 2 and "unknown option -V" in err, "-V is not an option (tshark's verbose): %r" % err.strip())
rc, out, err = run(["-D"])
check(rc == 0 and any(l.split(".", 1)[-1].startswith("lo ") for l in out.splitlines()),
      "-D lists the interfaces, lo among them (%r)" % out[:200])
rc, out, err = run(["-r", cap, "-s", "70000000", "--batch"])
check(rc == 2 and "-s" in err and "262144" in err, "-s beyond 262,144 is refused with the range (%r)" % err.strip())
rc, out, err = run(["-r", cap, "-p", "-s", "0", "--batch"])
check(rc == 0 and "verdicts: ok 1" in out, "-p and -s 0 are accepted (%d %r)" % (rc, err.strip()))
rc, out, err = run(["-r", cap, "--port", "80"])
check(rc == 2 and "unknown option --port" in err, "the old --port is gone (%r)" % err.strip())

# ---- the hint when no packet matched the cloud port ----
rc, out, err = run(["-r", cap, "--cloud-port", "80", "--batch"])
check(rc == 0 and "no TCP packet to or from port 80" in err and "--cloud-port" in err and "port 5683" in err,
      "--cloud-port 80 on a 5683 capture: a hint naming the port SYNs went to (%r)" % err.strip())
rc, out, err = run(["-r", cap, "--batch"])
check(rc == 0 and err == "", "no hint when the cloud port matched (%r)" % err.strip())

# ---- -w FILE.pcapng: the verdict as a comment on the packet that decided it ----
ng = os.path.join(d, "out.pcapng")
rc, out, err = run(["-r", cap, "-k", kf, "-w", ng, "--json"])
check(rc == 0 and err == "", "-w out.pcapng: exit 0 (%r)" % err.strip())
verdicts = [o for o in jsonl(out) if o["type"] == "verdict"]
ts = subprocess.run(["tshark", "-r", ng, "-Y", "frame.comment", "-T", "fields", "-e", "frame.time_epoch",
                     "-e", "frame.comment"], capture_output=True)
lines = [l.split("\t") for l in ts.stdout.decode().splitlines() if l]
check(ts.returncode == 0 and lines, "tshark reads out.pcapng and finds commented frames (%r)" % ts.stderr.decode()[:200])
check(lines and all("verdict ok (proven)" in c for _, c in lines),
      "each comment is the proven verdict: %r" % [c for _, c in lines][:2])
check(lines and verdicts and abs(float(lines[0][0]) - verdicts[0]["time"]) < 1e-5,
      "the first comment sits on the packet at which the verdict was decided (%s vs %s)"
      % (lines[0][0] if lines else None, verdicts[0]["time"] if verdicts else None))
count = subprocess.run(["tshark", "-r", ng], capture_output=True).stdout.decode().count("\n")
check(count == 47, "out.pcapng holds every packet (%d of 47)" % count)
pc = os.path.join(d, "out.pcap")
rc, out, err = run(["-r", cap, "-w", pc, "--batch"])
with open(pc, "rb") as f:
    magic = f.read(4)
check(rc == 0 and magic == b"\xd4\xc3\xb2\xa1", "-w out.pcap writes classic pcap")

# ---- safe output files ----
target = os.path.join(d, "precious")
with open(target, "w") as f:
    f.write("keep me\n")
link = os.path.join(d, "link.pcap")
os.symlink(target, link)
for opt in (["-w", link], ["-k", kf, "--export-decrypted", link]):
    rc, out, err = run(["-r", cap, "--batch"] + opt)
    check(rc == 2 and "symbolic link" in err and err.count("\n") == 1,
          "%s through a symlink: refused with one line (%r)" % (opt[-2], err.strip()))
    check(open(target).read() == "keep me\n", "%s through a symlink: the link's target is untouched" % opt[-2])

ex = os.path.join(d, "coap.pcap")
rc, out, err = run(["-r", cap, "-k", kf, "--export-decrypted", ex, "--batch"])
mode = stat.S_IMODE(os.stat(ex).st_mode)
check(rc == 0 and mode == 0o600, "--export-decrypted creates the file 0600 (%o)" % mode)
os.chmod(ex, 0o644)
rc, out, err = run(["-r", cap, "-k", kf, "--export-decrypted", ex, "--batch"])
mode = stat.S_IMODE(os.stat(ex).st_mode)
check(rc == 0 and mode == 0o600, "--export-decrypted over an existing 0644 file leaves it 0600 (%o)" % mode)

if os.geteuid() == 0:
    nobody = pwd.getpwnam("nobody")
    for opt in ("-w", "--export-decrypted"):
        theirs = os.path.join(d, "theirs%s.pcap" % opt.strip("-"))
        with open(theirs, "w") as f:
            f.write("their data\n")
        os.chown(theirs, nobody.pw_uid, nobody.pw_gid)
        rc, out, err = run(["-r", cap, "-k", kf, opt, theirs, "--batch"])
        check(rc == 2 and "belongs to nobody" in err and err.count("\n") == 1,
              "as root, %s over a file of nobody: refused with one line (%r)" % (opt, err.strip()))
        check(open(theirs).read() == "their data\n", "as root, %s: nobody's file is untouched" % opt)
else:
    print("note: not root, the checks for another user's file need root and were not run")
done()
