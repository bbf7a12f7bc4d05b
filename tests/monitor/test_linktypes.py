#!/usr/bin/env python3
"""cloudmon reads the same made-up connection identically over every link type it supports, IPv4 and IPv6."""
import os
from cmtest import *

d = tmpdir()
ref = None
for v6 in (False, True):
    for link in ("en10mb", "vlan", "sll", "sll2", "null", "loop", "raw"):
        path = os.path.join(d, "%s%s.pcap" % (link, "-v6" if v6 else ""))
        tool("synth", path, link, *(["ipv6"] if v6 else []))
        rc, out, err = run(["-r", path, "--json"])
        name = "%s %s" % (link, "IPv6" if v6 else "IPv4")
        check(rc == 0 and err == "", "%s: exit 0 and nothing on stderr (%d, %r)" % (name, rc, err[:200]))
        objs = jsonl(out)
        steps = [o["step"] for o in objs if o["type"] == "step"]
        check(steps[:3] == ["nonce", "id-block", "session-block"], "%s: handshake steps found: %s" % (name, steps[:5]))
        summ = objs[-1]
        check(summ["type"] == "summary" and summ["connections"] == 1 and summ["packets"] == 17,
              "%s: summary counts 17 packets, 1 connection" % name)
        verdicts = [o for o in objs if o["type"] == "verdict"]
        addr = "[fd00::2]:40001" if v6 else "10.0.0.2:40001"
        check(verdicts and verdicts[-1]["client"] == addr, "%s: device address %s" % (name, addr))
        s = shape(objs)
        if ref is None:
            ref = s
        else:
            check(s == ref, "%s: same steps, messages and verdicts as Ethernet IPv4" % name)
done()
