#!/usr/bin/env python3
"""Every error a user can cause gets one line on stderr that names the thing and the fix, and exit 2."""
import os
import shutil
import struct
import subprocess
from cmtest import *

d = tmpdir()
good = os.path.join(d, "good.pcap")
tool("synth", good, "en10mb")


def err_case(name, args, words, code=2, **kw):
    rc, out, err = run(args, **kw)
    lines = err.strip().splitlines()
    check(rc == code, "%s: exit %d (got %d)" % (name, code, rc))
    ok = len(lines) == 1 and all(w.lower() in err.lower() for w in words)
    check(ok, "%s: one line on stderr with %s: %r" % (name, words, err.strip()[:300]))
    check("AddressSanitizer" not in err and "runtime error" not in err, "%s: no sanitizer report" % name)
    return out


# usage
err_case("no source", ["--batch"], ["-i IFACE", "-r FILE"])
err_case("both sources", ["-i", "lo", "-r", good], ["not both"])
err_case("unknown option", ["-r", good, "--bogus"], ["unknown option", "--help"])
err_case("missing value", ["-r"], ["needs a value"])
err_case("bad count", ["-r", good, "-c", "abc"], ["-c", "abc", "number"])
err_case("bad duration", ["-r", good, "--duration", "-1"], ["--duration", "number"])
err_case("stray argument", ["-r", good, "tcp"], ["unexpected argument", "-f"])
err_case("bad queue size", ["-r", good, "--queue-mb", "lots"], ["--queue-mb", "lots", "number"])
err_case("queue too small", ["-r", good, "--queue-mb", "0.5"], ["--queue-mb", "at least 1 MB", "0 for no"])
rc, out, err = run(["--help"])
check(rc == 0 and "Usage: cloudmon" in out and "--export-decrypted" in out, "--help: usage on stdout, exit 0")
rc, out, err = run(["--version"])
check(rc == 0 and out.startswith("cloudmon (sparkwire) "), "--version: %r" % out.strip())

# capture sources
err_case("no such interface", ["-i", "nosuchif0", "--batch"], ["nosuchif0", "no such interface", "ip link"])
err_case("bad filter", ["-r", good, "-f", "tcp port bogus"], ["filter", "tcp port bogus", "not valid", "pcap-filter"])
err_case("missing file", ["-r", os.path.join(d, "nope.pcap")], ["nope.pcap", "cannot read", "check the path"])
err_case("a directory", ["-r", d], [d, "cannot read", "Is a directory", "give a pcap or pcapng file"])
txt = os.path.join(d, "notes.txt")
open(txt, "w").write("this is not a capture\n" * 10)
err_case("not a capture", ["-r", txt], ["notes.txt", "cannot read"])
short = os.path.join(d, "short.pcap")
open(short, "wb").write(open(good, "rb").read()[:10])
err_case("truncated header", ["-r", short], ["short.pcap", "cannot read"])
cut = os.path.join(d, "cut.pcap")
tool("mutate", good, cut, "truncate:7")
out = err_case("truncated file", ["-r", cut, "--json"], ["cut.pcap", "truncated", "16 packets"])
objs = jsonl(out)
check(objs and objs[-1]["type"] == "summary" and objs[-1]["packets"] == 16,
      "truncated file: the packets before the damage are reported, with the summary")
wifi = os.path.join(d, "wifi.pcap")
with open(wifi, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 105))
err_case("unsupported link type", ["-r", wifi], ["wifi.pcap", "link type", "IEEE802_11", "not supported"])

# keys
kf = os.path.join(d, "bad-keyfile")
open(kf, "w").write("# keys\nserver-private\n")
err_case("bad keyfile", ["-r", good, "-k", kf], ["bad-keyfile:2"])
err_case("missing keyfile", ["-r", good, "-k", os.path.join(d, "nokeys")], ["nokeys"])

# outputs
err_case("unwritable -w", ["-r", good, "-w", os.path.join(d, "no", "dir", "x.pcap"), "--batch"], ["-w", "x.pcap", "writable"])
err_case("unwritable export", ["-r", good, "--export-decrypted", os.path.join(d, "no", "x.pcap"), "--batch"],
         ["x.pcap", "export", "writable"])

# privileges
if os.geteuid() == 0:
    err_case("-Z unknown user", ["-r", good, "-Z", "nosuchuser-cm", "--batch"], ["-Z", "nosuchuser-cm", "no such user"])
    setpriv = shutil.which("setpriv")
    if setpriv:
        os.chmod(d, 0o755)
        p = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                            CLOUDMON, "-i", "lo", "--batch", "-c", "1"], capture_output=True, timeout=30)
        err = p.stderr.decode()
        check(p.returncode == 2 and len(err.strip().splitlines()) == 1 and "no permission" in err
              and "setcap cap_net_raw,cap_net_admin=eip" in err and "root" in err,
              "no permission on lo: one line naming root and setcap: %r" % err.strip())
    # -Z drops privileges: the -w file is created after the switch, so it belongs to the user
    zd = os.path.join(d, "z")
    os.mkdir(zd)
    os.chmod(zd, 0o777)
    w = os.path.join(zd, "z.pcap")
    rc, out, err = run(["-r", good, "-Z", "nobody", "-w", w, "--batch"])
    st = os.stat(w) if os.path.exists(w) else None
    check(rc == 0 and st is not None and st.st_uid == 65534, "-Z nobody: the saved file is owned by nobody (rc %d %r)" % (rc, err[:200]))
else:
    rc, out, err = run(["-i", "lo", "--batch", "-c", "1", "--duration", "1"])
    if rc == 2:
        check("no permission" in err and "setcap" in err, "no permission on lo: %r" % err.strip())
done()
