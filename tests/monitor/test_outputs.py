#!/usr/bin/env python3
"""Line and JSON Lines outputs, limits (-c, --duration), -w, -r - (stdin), pcapng, --export-decrypted."""
import os
import shutil
import struct
import subprocess
from cmtest import *
import pcaptool as pt

d = tmpdir()
synth = os.path.join(d, "synth.pcap")
tool("synth", synth, "en10mb")
cases = [("synthetic", synth, None)] + samples()
TYPES = {"step", "message", "finding", "verdict", "device", "summary"}

for name, cap, kf in cases:
    keys = ["-k", kf] if kf else []
    rc, jout, err = run(["-r", cap, "--json"] + keys)
    objs = jsonl(jout)
    check(rc == 0 and objs and all(o.get("type") in TYPES for o in objs), "%s: every JSON line has a known type" % name)
    check(objs[-1]["type"] == "summary" and sum(1 for o in objs if o["type"] == "summary") == 1,
          "%s: one summary, last" % name)
    for o in objs:
        if o["type"] in ("step", "message", "finding", "verdict"):
            if not (isinstance(o.get("conn"), int) and isinstance(o.get("time"), float) and "dir" in o):
                check(False, "%s: %s object has conn, time and dir: %s" % (name, o["type"], o))
                break
    verdicts = [o for o in objs if o["type"] == "verdict"]
    check(all(isinstance(v["proven"], bool) and isinstance(v["candidates"], list) and v["evidence"] is not None
              for v in verdicts), "%s: verdicts carry proven, evidence and candidates" % name)
    finals = [v for v in verdicts if v["final"]]
    conns = objs[-1]["connections"]
    check(len({v["conn"] for v in finals}) == conns, "%s: a final verdict for each of %d connections" % (name, conns))
    check(sum(objs[-1]["verdicts"].values()) == conns, "%s: the summary counts every connection's verdict" % name)
    # the text lines say the same things, one per line (stdout not a terminal: lines without --batch)
    rc, bout, err = run(["-r", cap] + keys)
    blines = bout.strip().splitlines()
    # the device table before the summary: a row per JSON device record
    devs = [o for o in objs if o["type"] == "device"]
    objs = [o for o in objs if o["type"] != "device"]
    at = next((i for i, l in enumerate(blines) if l.startswith("devices: ")), None)
    if devs or at is not None:
        table = blines[at + 2:-1] if at is not None else []
        check(len(table) == len(devs) and blines[at] == "devices: %d" % len(devs)
              and [r.split()[0] for r in table if not r.startswith("?")] ==
              [o["device_id"] for o in devs if "device_id" in o],
              "%s: the device table has a row per device record (%d vs %d)" % (name, len(table), len(devs)))
        blines = blines[:at] + blines[-1:]
    check(rc == 0 and len(blines) == len(objs) and blines[-1].startswith("summary: "),
          "%s: one text line per JSON object (%d vs %d)" % (name, len(blines), len(objs)))
    kinds = [l.split()[4] if len(l.split()) > 4 and l.split()[3] in ("D->S", "S->D") else l.split()[3]
             for l in blines[:-1]]
    check(kinds == [o["type"] for o in objs[:-1]], "%s: the text lines come in the JSON order" % name)
    if name not in ("synthetic", "healthy", "multi-device", "mid-session"):
        continue
    n = objs[-1]["packets"]
    # -c
    half = max(1, n // 2)
    rc, out, err = run(["-r", cap, "--json", "-c", str(half)] + keys)
    check(rc == 0 and jsonl(out)[-1]["packets"] == half, "%s: -c %d stops after %d packets" % (name, half, half))
    # -w and -r -: the same results again
    w = os.path.join(d, name + "-w.pcap")
    rc, out, err = run(["-r", cap, "--json", "-w", w] + keys)
    rc2, out2, _ = run(["-r", w, "--json"] + keys)
    check(rc == 0 and rc2 == 0 and shape(jsonl(out2)) == shape(objs), "%s: -w writes what was read" % name)
    with open(cap, "rb") as f:
        rc3, out3, err3 = run(["-r", "-", "--json"] + keys, stdin=f)
    o3 = jsonl(out3)
    check(rc3 == 0 and shape(o3) == shape(objs) and o3[-1]["source"] == "file standard input", "%s: -r - reads stdin" % name)
    editcap = shutil.which("editcap")
    if editcap:
        ng = os.path.join(d, name + ".pcapng")
        subprocess.run([editcap, "-F", "pcapng", cap, ng], check=True)
        rc4, out4, _ = run(["-r", ng, "--json"] + keys)
        check(rc4 == 0 and shape(jsonl(out4)) == shape(objs), "%s: pcapng gives the same results" % name)

# --duration on a file counts capture time
rc, out, err = run(["-r", synth, "--json", "--duration", "0.055"])
check(rc == 0 and jsonl(out)[-1]["packets"] == 6, "--duration 0.055 on the synthetic capture keeps the 6 packets of its first 0.055 s")

# bounded tables: a full connection table never evicts a session that carried protocol data (the
# newcomer is not followed); idle ones expire
md = [c for c in samples() if c[0] == "multi-device"]
if md:
    name, cap, kf = md[0]
    rc, out, err = run(["-r", cap, "-k", kf, "--json", "--max-conns", "1"])
    objs = jsonl(out)
    finals = {o["conn"] for o in objs if o["type"] == "verdict" and o["final"]}
    check(rc == 0 and objs[-1]["evicted"] == 0 and objs[-1]["connections"] == 1 and len(finals) == 1,
          "--max-conns 1 with three devices: %s evicted, the first session followed to its final verdict"
          % objs[-1].get("evicted"))
    # the newcomers' packets that would have started a connection (SYNs, data on the cloud port) while the
    # first session held the table are counted as untracked, in JSON and in the text summary
    link, pk = pt.read_pcap(cap)
    flows, want = [], 0
    for _, b in pk:
        ip = pt.split_frame(link, b)[1]
        hl, _ = pt.tcp_of(ip)
        tcp = ip[hl:]
        flow = frozenset((ip[12:16] + tcp[0:2], ip[16:20] + tcp[2:4]))
        if flow not in flows:
            flows.append(flow)
        if flow != flows[0]:
            data = struct.unpack(">H", ip[2:4])[0] - hl - (tcp[12] >> 4) * 4
            want += 1 if (tcp[13] & 0x02 or data > 0) else 0
        else:
            last_first = want       # counted up to the first session's last packet
    check(len(flows) == 3 and objs[-1].get("untracked") == last_first > 0,
          "--max-conns 1: %s packets untracked, %d expected" % (objs[-1].get("untracked"), last_first))
    rc, out, err = run(["-r", cap, "-k", kf, "--max-conns", "1"])
    check(rc == 0 and "; %d packets not followed: the table of 1 connections is full" % last_first in out,
          "--max-conns 1: the text summary counts the packets not followed (%r)" % out.strip().splitlines()[-1:])
    rc, out, err = run(["-r", cap, "-k", kf, "--json"])
    check(rc == 0 and jsonl(out)[-1].get("untracked") == 0, "without a limit nothing is untracked")
# connections still open when the capture ends are ended in a stable order (first packet, then number),
# not in the connection table's hash order: six copies of the three devices' sessions on other ports, a
# fraction of a millisecond apart, without their FINs and RSTs
if md:
    name, cap, kf = md[0]
    link, pk = pt.read_pcap(cap)
    frames = []
    for k in range(6):
        for ts, b in pk:
            macs, ip = pt.split_frame(link, b)
            hl, _ = pt.tcp_of(ip)
            if ip[hl + 13] & 0x05:
                continue
            sport, dport = struct.unpack(">HH", ip[hl:hl + 4])
            dev = sport if dport == 5683 else dport
            frames.append([ts + 0.0007 * k, pt.eth(macs, (), pt.move_port(ip, dev, dev + 1000 * k) if k else ip)])
    frames.sort(key=lambda f: f[0])
    opened = os.path.join(d, "left-open.pcap")
    pt.write_pcap(opened, 1, frames)
    rc, out, err = run(["-r", opened, "-k", kf, "--json"])
    objs = jsonl(out)
    ends = [o["conn"] for o in objs if o["type"] == "verdict" and o["final"]]
    starts = [o["conn"] for o in objs if o["type"] == "step"]
    firsts = sorted(set(starts), key=starts.index)
    check(rc == 0 and len(ends) == 18 and ends == firsts == sorted(ends),
          "18 connections open at the end are ended in the order they began: %s" % ends)
    rc, out, err = run(["-r", opened, "-k", kf])
    lines = [int(l.split()[2]) for l in out.splitlines() if " verdict " in l and "so far" not in l]
    check(rc == 0 and len(lines) == 18 and lines == sorted(lines),
          "the text output ends them in the same order: %s" % lines)
hl = [c for c in samples() if c[0] == "healthy"]
if hl:
    name, cap, kf = hl[0]
    rc, out, err = run(["-r", cap, "-k", kf, "--json", "--idle", "5"])
    objs = jsonl(out)
    vs = [o["verdict"] for o in objs if o["type"] == "verdict" and o["final"]]
    check(rc == 0 and objs[-1]["expired"] >= 1 and vs[:1] == ["ok"] and "mid-session" in vs,
          "--idle 5 on a session with a 15 s silence: it expires (ok), the rest is a late-joined connection: %s" % vs)

# decrypted export, checked with tshark's own CoAP dissector
tshark = shutil.which("tshark")
healthy = [c for c in samples() if c[0] == "healthy" and c[2]]
if healthy and tshark:
    name, cap, kf = healthy[0]
    x = os.path.join(d, "decrypted.pcap")
    rc, out, err = run(["-r", cap, "-k", kf, "--json", "--export-decrypted", x])
    objs = jsonl(out)
    full = [o for o in objs if o["type"] == "message" and not o.get("first_block_lost")]
    os.chmod(d, 0o755)
    os.chmod(x, 0o644)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "HOME=" + d,
                        tshark, "-r", x, "-Y", "coap", "-T", "fields", "-e", "coap.code"]
                       if os.geteuid() == 0 else [tshark, "-r", x, "-Y", "coap", "-T", "fields", "-e", "coap.code"],
                       capture_output=True, timeout=60)
    codes = p.stdout.decode().split()
    check(rc == 0 and len(full) > 0 and len(codes) == len(full),
          "export: tshark shows %d CoAP messages, cloudmon decrypted %d" % (len(codes), len(full)))
    want = []
    for o in full:
        c = o["code"].split(".")
        want.append(str(int(c[0]) * 32 + int(c[1])))
    check(codes == want, "export: the CoAP codes match message by message")
else:
    print("note: no healthy sample with keys or no tshark: export not checked against tshark")
    x = os.path.join(d, "decrypted.pcap")
    rc, out, err = run(["-r", synth, "--json", "--export-decrypted", x])
    check(rc == 0 and os.path.getsize(x) == 24, "export without keys: an empty capture file")
done()
