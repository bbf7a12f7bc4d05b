#!/usr/bin/env python3
"""A classic pcap file is read in place (monitor/pcapfile.c) until a record is not plain; libpcap, loaded
then, reads on from there. Reading a file must give exactly what libpcap alone gives: the same lines, the
same summary, the same error for a damaged file. Standard input is always read by libpcap, so each file
here is read both ways and the outputs compared byte for byte (the file's name aside)."""
import os
import struct
from cmtest import *

d = tmpdir()
cap = os.path.join(SAMPLES, "healthy", "capture.pcap")
keys = os.path.join(SAMPLES, "healthy", "keyfile")
raw = open(cap, "rb").read()
end = "<" if raw[:4] == b"\xd4\xc3\xb2\xa1" else ">"
_, _, _, _, _, snap, link = struct.unpack(end + "IHHiIII", raw[:24])
recs, i = [], 24
while i + 16 <= len(raw):
    s, us, cl, ln = struct.unpack(end + "IIII", raw[i:i + 16])
    recs.append((s, us, cl, ln, raw[i + 16:i + 16 + cl]))
    i += 16 + cl
check(len(recs) > 20 and i == len(raw), "the sample parses as %d records" % len(recs))


def write(name, records, order="<", nsec=False, minor=4, snaplen=snap, magic=None):
    m = magic or (0xa1b23c4d if nsec else 0xa1b2c3d4)
    b = struct.pack(order + "IHHiIII", m, 2, minor, 0, 0, snaplen, link)
    for s, us, cl, ln, data in records:
        b += struct.pack(order + "IIII", s, us * 1000 + 999 if nsec else us, cl, ln) + data
    path = os.path.join(d, name)
    open(path, "wb").write(b)
    return path


def both_ways(name, path, args, want_rc=None):
    """The file read by name and through standard input: the same bytes out, the same exit status."""
    rc1, out1, err1 = run(["-r", path] + args)
    with open(path, "rb") as f:
        rc2, out2, err2 = run(["-r", "-"] + args, stdin=f)
    out1, err1 = out1.replace(path, "standard input"), err1.replace(path, "standard input")
    same = rc1 == rc2 and out1 == out2 and err1 == err2
    check(same, "%s: read in place and by libpcap alike (rc %d/%d, stderr %r / %r)"
          % (name, rc1, rc2, err1.strip()[-160:], err2.strip()[-160:]))
    if want_rc is not None:
        check(rc1 == want_rc, "%s: exit %d (got %d)" % (name, want_rc, rc1))
    return rc1, out1, err1


plain = write("plain.pcap", recs)
rc, base, _ = both_ways("plain pcap", plain, ["--json", "-k", keys], 0)
check(base.count('"type":"message"') > 0 or base.count('"type": "message"') > 0,
      "plain pcap: messages are decrypted")
for name, path in (("big-endian", write("be.pcap", recs, order=">")),
                   ("nanosecond", write("ns.pcap", recs, nsec=True)),
                   ("nanosecond big-endian", write("nsbe.pcap", recs, order=">", nsec=True)),
                   ("version 2.3", write("v23.pcap", recs, minor=3))):
    rc, out, err = both_ways(name, path, ["--json", "-k", keys], 0)
    check(out == base, "%s: the same lines as the plain file" % name)

# a filter is applied to the records read in place as libpcap applies it
rc, out, err = both_ways("filter", plain, ["--batch", "-k", keys, "-f", "tcp[13] & 8 != 0"], 0)
rc, allp, _ = run(["-r", plain, "--json"])
rc, few, _ = run(["-r", plain, "--json", "-f", "tcp[13] & 8 != 0"])
check(jsonl(few)[-1]["packets"] < jsonl(allp)[-1]["packets"], "filter: fewer packets pass it than are in the file")

# records libpcap cuts to the snapshot length, or refuses; files cut anywhere
cl5 = recs[5][2]
both_ways("a record longer than the snapshot length", write("over.pcap", recs, snaplen=cl5 - 10),
          ["--json", "-k", keys], 0)
big = list(recs)
big[7] = big[7][:2] + (300000, 300000, b"\0" * 300000)
rc, out, err = both_ways("a record longer than any snapshot length", write("huge.pcap", big), ["-q"], 2)
check("after 7 packets" in err and "bigger than" in err, "a huge record: the packets before it, and why: %r" % err)
data = open(plain, "rb").read()
offsets = [10, 30, 40, 24 + 16 + 20, len(data) // 3, len(data) // 2, len(data) - 1]
for cut in offsets:
    path = os.path.join(d, "cut%d.pcap" % cut)
    open(path, "wb").write(data[:cut])
    rc, out, err = both_ways("cut at byte %d" % cut, path, ["--json", "-k", keys], 2)
    check("truncated" in err or "cannot read" in err, "cut at byte %d: the damage is named: %r" % (cut, err.strip()[-200:]))
# records across the reader's 64 KiB blocks (the sample again and again, with a long filler record between)
many = []
while sum(16 + r[2] for r in many) < 3 << 20:
    many += recs + [(recs[-1][0], recs[-1][1], 4000 + len(many), 4000 + len(many), b"\x5a" * (4000 + len(many)))]
path = write("many.pcap", many)
rc, out, err = both_ways("a file of several blocks", path, ["--json"], 0)
tcp = sum(1 for r in many if r[4][:1] != b"\x5a")     # the fillers are not IP: left out of the count
check(jsonl(out)[-1]["packets"] == tcp, "a file of several blocks: every packet read (%d)" % tcp)

# records longer than a block (the reader reads on until one is whole), under a snapshot length that allows them
long = []
for n in (70000, 150000, 262144):
    long += recs + [(recs[-1][0], recs[-1][1], n, n, b"\x5a" * n)]
path = write("long.pcap", long + recs, snaplen=262144)
rc, out, err = both_ways("records longer than a block", path, ["--json", "-k", keys], 0)
tcp = sum(1 for r in long + recs if r[4][:1] != b"\x5a")
check(jsonl(out)[-1]["packets"] == tcp, "records longer than a block: every packet read (%d)" % tcp)

# the file's header and no record: an empty capture, read to its end
path = os.path.join(d, "empty.pcap")
open(path, "wb").write(data[:24])
both_ways("the header alone", path, ["--json"], 0)


# libpcap is loaded only when something needs it: not for a plain file read in place to its end, but for a
# filter, a record the in-place reader leaves to it, and standard input (the loader's trace names it)
def loads_libpcap(args, stdin=None):
    rc, out, err = run(args, stdin=stdin, env={"LD_DEBUG": "files"})
    return "libpcap.so" in err


check(not loads_libpcap(["-q", "-r", plain, "-k", keys]), "a plain file is read without loading libpcap")
check(not loads_libpcap(["-q", "-r", path]), "a file of its header alone is read without loading libpcap")
check(loads_libpcap(["-q", "-r", plain, "-f", "tcp"]), "a filter loads libpcap")
cut = write("cut.pcap", recs)
open(cut, "r+b").truncate(os.path.getsize(cut) - 5)
check(loads_libpcap(["-q", "-r", cut]), "a record cut short is left to libpcap, which is loaded for it")
with open(plain, "rb") as f:
    check(loads_libpcap(["-q", "-r", "-"], stdin=f), "standard input loads libpcap")
done()
