#!/usr/bin/env python3
"""A device owner's keys, from the flash to a verdict.

For every sample of samples/expected.tsv, each device of the sample gets a Spark Core external flash dump
and a Photon DCT dump holding the key the device really has (the sample keyfile's `device` line) and the
server key in its flash (the DEVICE_SERVER_KEY column of tests/tracker/golden/owner). Then, as an owner
would:

  sparkkeys import DUMP --out DIR --device ID     the written files are the keys put in the dump
  (the owner adds the cloud's public key)         server-public LINE
  sparkkeys check DIR/owner.keyfile               loads; device-server-key named, compared with server-public
  cloudmon -r CAPTURE -k DIR/owner.keyfile --json the final verdicts and first candidates of golden/owner
  sparkkeys check DIR/owner.keyfile CAPTURE       cloudmon's verdict per connection, the line the capture
                                                  contradicts (BLAME) and the command that fixes it, or
                                                  that no key is contradicted; exit 0, 1 or 3

and no verdict given as proven is followed by another code or loses its proof.

The cloud's public key is the lab cloud's (samples/keys/server-public.der), not the published Particle key:
the samples are recorded against sparkcloud. An owner of a device on their own cloud adds that cloud's
public key the same way. In server-key-mismatch the dump's server key is other-server-public.der, the wrong
key that device holds; `check` names both fingerprints and the command that writes the cloud's key, and
cloudmon names the cause from the two keys (inferred: the device id is not on the wire without the server
private key, so the device-server-key line is the owner's claim).

A server key bound with `cloud=ADDR` judges only connections to that address: bound to the sample's cloud
address, the server-key-mismatch evidence compares the device's copy with that key; bound to another
address, the key does not apply and the comparison falls back to the published Particle cloud key.

An absent, a damaged and a truncated capture each give `check KEYFILE CAPTURE` one line and exit 2.

    test_owner.py SPARKKEYS CLOUDMON [SOURCE_ROOT]
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

CORE_SIZE, CORE_SERVER, CORE_DEVICE = 2 * 1024 * 1024, 0x1000, 0x2000
DCT_SIZE, DCT_DEVICE, DCT_DEVICE_PUB, DCT_SERVER = 16 * 1024, 34, 1250, 2082

failures = 0
checks = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL " + msg)


def expect(cond, msg):
    global checks
    checks += 1
    if not cond:
        fail(msg)


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def read(path):
    with open(path, "rb") as f:
        return f.read()


def spki_der(path):
    """The public half as SubjectPublicKeyInfo DER, by the openssl command line (not by libkeyring)."""
    pem = read(path).startswith(b"-----")
    p = subprocess.run(["openssl", "pkey", "-inform", "PEM" if pem else "DER", "-in", path, "-pubout",
                        "-outform", "DER"], capture_output=True, timeout=60)
    if p.returncode != 0:
        p = subprocess.run(["openssl", "pkey", "-pubin", "-inform", "PEM" if pem else "DER", "-in", path,
                            "-pubout", "-outform", "DER"], capture_output=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("openssl cannot read %s" % path)
    return p.stdout


def fingerprint(path):
    return hashlib.sha256(spki_der(path)).hexdigest()


def make_dump(layout, device_key, server_key, out):
    """Erased flash (0xFF) with the keys at the layout's places."""
    size = CORE_SIZE if layout == "core" else DCT_SIZE
    buf = bytearray(b"\xff" * size)
    places = [(CORE_SERVER, read(server_key)), (CORE_DEVICE, read(device_key))] if layout == "core" else \
        [(DCT_DEVICE, read(device_key)), (DCT_DEVICE_PUB, spki_der(device_key)), (DCT_SERVER, read(server_key))]
    for off, data in places:
        buf[off:off + len(data)] = data
    with open(out, "wb") as f:
        f.write(buf)


def owner_rows(root):
    rows = {}
    with open(os.path.join(root, "tests", "tracker", "golden", "owner"), encoding="utf-8") as f:
        for line in f:
            w = line.split("#", 1)[0].split()
            if w:
                rows[w[0]] = (w[1], w[2], w[3], w[4] if len(w) > 4 else "-")
    return rows


def device_lines(sample_dir):
    out = []
    with open(os.path.join(sample_dir, "keyfile"), encoding="utf-8") as f:
        for line in f:
            w = line.split("#", 1)[0].split()
            if len(w) == 3 and w[0] == "device" and w[1] != "*":
                out.append((w[1], os.path.join(sample_dir, w[2])))
    return out


def import_device(k, layout, dev_id, dev_key, dsk, d, tag):
    dump = os.path.join(d, "%s-%s.bin" % (dev_id, layout))
    make_dump(layout, dev_key, dsk, dump)
    rc, out = run([k, "import", dump, "--out", d, "--device", dev_id])
    expect(rc == 0, "%s: import exit %d:\n%s" % (tag, rc, out))
    want = "Spark Core external flash" if layout == "core" else "Photon/P1 DCT"
    expect(want in out, "%s: import does not call the dump a %s dump:\n%s" % (tag, want, out))
    expect(read(os.path.join(d, dev_id + ".der")) == read(dev_key), "%s: imported device key differs" % tag)
    expect(read(os.path.join(d, dev_id + "-server-key.der")) == read(dsk), "%s: imported server key differs" % tag)
    with open(os.path.join(d, "keyfile"), encoding="utf-8") as f:
        text = f.read()
    lines = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    expect(lines == [["device", dev_id, dev_id + ".der"], ["device-server-key", dev_id, dev_id + "-server-key.der"]],
           "%s: imported keyfile is %r" % (tag, text))
    return text


def check_keyfile(k, kf, devices, dsk, cloud, tag):
    rc, out = run([k, "check", kf])
    same = fingerprint(dsk) == fingerprint(cloud)
    expect(rc == (0 if same else 1), "%s: check exit %d:\n%s" % (tag, rc, out))
    for dev_id, _ in devices:
        expect(" device-server-key %s " % dev_id in out, "%s: check does not name device-server-key:\n%s" % (tag, out))
        if same:
            expect("%s holds the cloud's server key (fingerprint %s)" % (dev_id, fingerprint(dsk)) in out,
                   "%s: check does not call the device's server key the cloud's:\n%s" % (tag, out))
        else:
            expect("%s holds server key %s, the cloud's server-public is %s" % (dev_id, fingerprint(dsk),
                   fingerprint(cloud)) in out, "%s: check does not give both fingerprints:\n%s" % (tag, out))
            expect("fix: device in DFU mode: `particle keys server %s --host ADDRESS" % cloud in out,
                   "%s: check gives no fix:\n%s" % (tag, out))


def verdicts(cm, capture, kf, tag):
    rc, out = run([cm, "-r", capture, "-k", kf, "--json"])
    expect(rc == 0, "%s: cloudmon exit %d:\n%s" % (tag, rc, out[-2000:]))
    final, seen = {}, {}
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        if rec.get("type") != "verdict":
            continue
        c = rec["conn"]
        prev = seen.get(c)
        if prev and prev["proven"]:
            expect(rec["proven"] and rec["verdict"] == prev["verdict"],
                   "%s: conn %d: proven %s followed by %s (proven %s)" % (tag, c, prev["verdict"], rec["verdict"],
                                                                        rec["proven"]))
        seen[c] = rec
        if rec.get("final"):
            final[c] = rec
    return [final[c] for c in sorted(final)]


# What `sparkkeys check KEYFILE CAPTURE` must name for each final verdict under the owner's keys: the kind of
# keyfile line the capture contradicts, and pieces of the command that fixes it ({dev}: the device key's path,
# {id}: the device id, {cloud}: the cloud's public key).
BLAME = {
    "server-key-mismatch": ("device-server-key", ["particle keys server {cloud} --host ADDRESS",
                                                  "dfu-util -d 1d50:607f -a 1 -i 0 -s 0x00001000:leave -D {cloud}",
                                                  "dfu-util -d 2b04:d006 -a 1 -i 0 -s 2082:leave -D {cloud}"]),
    "device-key-mismatch": ("device", ["openssl rsa -in {dev} -inform DER -pubout -out {id}.pub.pem",
                                       "particle keys send {id} {id}.pub.pem"]),
    "bad-signature": ("server-public", ["sparkkeys match SERVER_PRIVATE {cloud}", "particle keys server {cloud}"]),
}


def keyfile_lines(kf):
    """(kind, id or '', path) by line number, as the keyfile says them."""
    out = {}
    with open(kf, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            w = line.split("#", 1)[0].split()
            if w:
                out[n] = (w[0], w[1] if len(w) == 3 else "", w[-1])
    return out


def check_capture(k, kf, capture, got, devices, cloud, tag):
    """sparkkeys check KEYFILE CAPTURE: per connection, the key line the capture contradicts and the fix."""
    rc, out = run([k, "check", kf, capture])
    lines = keyfile_lines(kf)
    blamed = [v for v in got if v["verdict"] in BLAME]
    unsettled = [v for v in got if v["candidates"]]
    expect(rc == (1 if blamed else 3 if unsettled else 0), "%s: check with the capture exit %d:\n%s" % (tag, rc, out))
    expect(out.count("\nconnection ") + out.startswith("connection ") == len(got),
           "%s: check with the capture does not give each of the %d connections:\n%s" % (tag, len(got), out))
    for v in got:
        expect("): %s (%s)" % (v["verdict"], "proven" if v["proven"] else "inferred") in out,
               "%s: check with the capture does not give cloudmon's verdict %s:\n%s" % (tag, v["verdict"], out))
        if v["verdict"] not in BLAME:
            continue
        kind, fixes = BLAME[v["verdict"]]
        dev_id, dev = devices[0] if len(devices) == 1 else (v.get("device", ""), "")
        want = [n for n, (kd, i, _) in lines.items() if kd == kind and i in ("", dev_id)]
        expect(len(want) == 1, "%s: the owner keyfile has %d %s lines for %s" % (tag, len(want), kind, dev_id))
        for n in want:
            kd, i, path = lines[n]
            expect("contradicts line %d: %s %s%s" % (n, kind, i + " " if i else "", os.path.join(
                os.path.dirname(kf), path) if not os.path.isabs(path) else path) in out,
                "%s: check with the capture does not name line %d (%s):\n%s" % (tag, n, kind, out))
        for fx in fixes:
            fx = fx.format(dev=os.path.join(os.path.dirname(kf), dev_id + ".der"), id=dev_id, cloud=cloud)
            expect("fix: " in out and fx in out, "%s: check with the capture gives no `%s`:\n%s" % (tag, fx, out))
    for v in unsettled:
        for c in v["candidates"]:
            expect("  if %s:" % c in out, "%s: check with the capture does not weigh candidate %s:\n%s" % (tag, c, out))
        if "unknown-device" in v["candidates"]:
            expect("particle keys send" in out, "%s: no fix for unknown-device:\n%s" % (tag, out))
    for v in got:
        if v["verdict"] in ("not-spark", "stalled", "mid-session"):
            expect("advice: " in out, "%s: check with the capture gives no advice on %s:\n%s" % (tag, v["verdict"], out))
    if not blamed and not unsettled:
        expect("the capture contradicts no key of the keyfile" in out,
               "%s: check with the capture does not say no key is contradicted:\n%s" % (tag, out))


def one_sample(k, cm, root, name, row, tmp):
    capture, dsk, want, cands = row
    dsk = os.path.join(root, dsk)
    cloud = os.path.join(root, "samples", "keys", "server-public.der")
    sample_dir = os.path.dirname(os.path.join(root, capture))
    devices = device_lines(sample_dir)
    expect(devices, "%s: the sample keyfile has no device line" % name)
    for layout in ("core", "dct"):
        before = failures
        tag = "%s (%s)" % (name, layout)
        d = os.path.join(tmp, name + "-" + layout)
        os.mkdir(d)
        # several devices: each dump imported into one folder, the keyfiles put together
        text = "".join(import_device(k, layout, i, key, dsk, d, tag) for i, key in devices)
        kf = os.path.join(d, "owner.keyfile")
        with open(kf, "w", encoding="utf-8") as f:
            f.write(text + "server-public %s   # the cloud's public key, added by the owner\n" % cloud)
        check_keyfile(k, kf, devices, dsk, cloud, tag)
        got = verdicts(cm, os.path.join(root, capture), kf, tag)
        codes = ",".join(v["verdict"] for v in got)
        first = ",".join(got[0]["candidates"]) if got and got[0]["candidates"] else "-"
        expect(codes == want and first == cands, "%s: verdicts %s cands=%s, expected %s cands=%s" % (
            tag, codes, first, want, cands))
        check_capture(k, kf, os.path.join(root, capture), got, devices, cloud, tag)
        if want == "server-key-mismatch" and got:
            ev = got[0]["evidence"]
            expect(fingerprint(dsk) in ev and fingerprint(cloud) in ev,
                   "%s: the evidence does not name both fingerprints: %s" % (tag, ev))
        print("%s %s: %s cands=%s (%s)" % ("ok" if failures == before else "FAIL", tag, codes, first,
                                           ",".join("proven" if v["proven"] else "inferred" for v in got)))


def cloud_binding(cm, root, tmp):
    sdir = os.path.join(root, "samples", "server-key-mismatch")
    keys = os.path.join(sdir, "keys")
    dev = [l.split() for l in open(os.path.join(sdir, "keyfile")) if l.startswith("device ")][0]
    for addr, applies in (("127.0.0.15", True), ("127.0.0.15:5683", True), ("127.0.0.99", False),
                          ("127.0.0.15:5684", False)):
        kf = os.path.join(tmp, "bound.keyfile")
        with open(kf, "w") as f:
            f.write("device %s %s\n" % (dev[1], os.path.join(sdir, dev[2])))
            f.write("device-server-key %s %s\n" % (dev[1], os.path.join(keys, "other-server-public.der")))
            f.write("server-public %s cloud=%s\n" % (os.path.join(keys, "server-public.der"), addr))
        got = verdicts(cm, os.path.join(sdir, "capture.pcap"), kf, "cloud=" + addr)
        expect(len(got) == 1 and got[0]["verdict"] == "server-key-mismatch",
               "cloud=%s: final verdicts %s" % (addr, [g["verdict"] for g in got]))
        if got:
            ev = got[0]["evidence"]
            bound = "(server-public, fingerprint %s)" % fingerprint(os.path.join(keys, "server-public.der"))
            expect((bound in ev) == applies and ("Particle" in ev) != applies,
                   "cloud=%s: the bound key should %sapply: %s" % (addr, "" if applies else "not ", ev))


def cloud_keys(k, root, tmp):
    """`check KEYFILE CAPTURE` with a cloud's keys (the sample's keyfile, server-private included), plus the
    lines the owner keyfile lacks: the line at fault named, or named as missing, and its fix."""
    keys = os.path.join(root, "samples", "keys")
    d1, du = "53ff6c065067544816300187", "30ff71065067555011111111"
    cases = [
        # (sample, extra lines, exit, what the output must hold)
        ("server-key-mismatch", "", 1,
         ["server-key-mismatch (inferred)", "contradicts no line of the keyfile: it has no device-server-key line",
          "compared with line 2: server-public", "particle keys server %s" % os.path.join(
              root, "samples", "server-key-mismatch", "keys", "server-public.der")]),
        ("unknown-device", "", 1,
         ["unknown-device (proven)", "it has no device-public line for this device", "compared with line 3: device",
          "-pubout -out %s.pub.pem, then give the cloud the device's public key: `particle keys send %s %s.pub.pem`"
          % (du, du, du)]),
        ("device-key-mismatch-g2", "device-public %s %s\n" % (d1, os.path.join(keys, "other-device.pub.pem")), 1,
         ["device-key-mismatch (proven)", "contradicts line 3: device %s" % d1,
          "compared with line 4: device-public %s" % d1, "particle keys send %s %s.pub.pem" % (d1, d1)]),
        ("device-key-mismatch-g2", "device-public %s %s\n" % (d1, os.path.join(keys, d1 + ".pub.pem")), 1,
         ["contradicts line 3: device %s" % d1, "lines 3 and 4 agree", "particle keys doctor %s" % d1]),
        ("server-key-mismatch", "device-server-key %s %s\n" % (d1, os.path.join(keys, "server-public.der")), 1,
         ["contradicts line 4: device-server-key %s" % d1, "line 4 says %s holds the cloud's key" % d1,
          "dfu-util -d 1d50:607f -a 1 -s 0x00001000:2048 -U server-key.bin"]),
    ]
    for n, (sample, extra, code, want) in enumerate(cases):
        sdir = os.path.join(root, "samples", sample)
        kf = os.path.join(tmp, "cloud%d.keyfile" % n)
        with open(os.path.join(sdir, "keyfile"), encoding="utf-8") as f:
            lines = [l.replace("keys/", os.path.join(sdir, "keys") + "/") for l in f.read().splitlines()
                     if l.strip() and not l.startswith("#")]
        with open(kf, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n" + extra)
        rc, out = run([k, "check", kf, os.path.join(sdir, "capture.pcap")])
        expect(rc == code, "%s with the cloud's keys + %r: exit %d:\n%s" % (sample, extra, rc, out))
        for w in want:
            expect(w in out, "%s with the cloud's keys + %r: no %r in:\n%s" % (sample, extra, w, out))


def bad_captures(k, root, tmp):
    """An absent, a damaged and a truncated capture: one line on stderr naming it, exit 2."""
    kf = os.path.join(root, "samples", "healthy", "keyfile")
    good = read(os.path.join(root, "samples", "healthy", "capture.pcap"))
    cut = os.path.join(tmp, "cut.pcap")
    with open(cut, "wb") as f:
        f.write(good[:3000])
    junk = os.path.join(tmp, "junk.pcap")
    with open(junk, "wb") as f:
        f.write(b"not a capture at all\n" * 10)
    for path, word in ((os.path.join(tmp, "absent.pcap"), "No such file"), (junk, "not a capture"),
                       (cut, "damaged or truncated after")):
        p = subprocess.run([k, "check", kf, path], capture_output=True, text=True, timeout=60)
        err = p.stderr.strip().splitlines()
        expect(p.returncode == 2 and len(err) == 1 and path in err[0] and word in err[0],
               "check with %s: exit %d, stderr %r" % (os.path.basename(path), p.returncode, p.stderr))
    # the packets before the damage are still judged
    p = subprocess.run([k, "check", kf, cut], capture_output=True, text=True, timeout=60)
    expect("connection 1: device 53ff6c065067544816300187" in p.stdout and "ok (proven)" in p.stdout,
           "check with a truncated capture does not judge the packets before the damage:\n" + p.stdout)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    k, cm = sys.argv[1], sys.argv[2]
    root = os.path.abspath(sys.argv[3] if len(sys.argv) > 3 else os.environ.get("SPARKWIRE_SOURCE_ROOT", "."))
    rows = owner_rows(root)
    names = []
    with open(os.path.join(root, "samples", "expected.tsv"), encoding="utf-8") as f:
        names = [line.split("\t")[0] for line in f.read().splitlines()[1:] if line.strip()]
    expect(len(names) >= 10, "samples/expected.tsv lists %d samples" % len(names))
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            if name not in rows:
                fail("%s: no line in tests/tracker/golden/owner" % name)
                continue
            one_sample(k, cm, root, name, rows[name], tmp)
        cloud_binding(cm, root, tmp)
        bad_captures(k, root, tmp)
        cloud_keys(k, root, tmp)
    print("%d samples, %d checks, %d failure(s)" % (len(names), checks, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
