#!/usr/bin/env python3
"""--report: the Markdown report passes Debian's Markdown linter (mdl), the HTML report renders in
headless Chromium (a screenshot that is not blank, and the text of the rendered page), each failed
connection is there with its ladder, verdict, evidence, keys and fix, and no key material is."""
import re
import shutil
import struct
import subprocess
import zlib
from cmtest import *


def png_rows(path):
    """Decodes an 8-bit RGB/RGBA PNG (as Chromium writes it) into rows of pixel bytes."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos, idat, w, h, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    bpp = 4 if ctype == 6 else 3
    raw = zlib.decompress(idat)
    rows, prev, stride = [], bytearray(w * bpp), w * bpp
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return rows, bpp


d = tmpdir()
failing = [s for s in samples() if s[0] in ("device-key-mismatch-g2", "server-key-mismatch", "stalled") and s[2]]
if not failing:
    skip("the failing samples are not there")
secrets = []
for name, cap, kf in failing:
    for line in open(kf):
        w = line.split()
        if w and w[0] == "session":
            secrets.append(w[2])
    for path in re.findall(r"\S+\.(?:pem|der)", open(kf).read()):
        full = os.path.join(os.path.dirname(kf), path)
        if os.path.exists(full) and full.endswith(".pem"):
            secrets += [l.strip() for l in open(full) if len(l.strip()) >= 40 and "-----" not in l][:3]

for name, cap, kf in failing:
    md = os.path.join(d, name + ".md")
    html = os.path.join(d, name + ".html")
    rc, out, err = run(["-r", cap, "-k", kf, "-q", "--report", md])
    rc2, out2, err2 = run(["-r", cap, "-k", kf, "-q", "--report", html])
    ok = rc == 0 and rc2 == 0 and os.path.exists(md) and os.path.exists(html)
    check(ok, "%s: --report writes .md and .html (exit %d %d %s)" % (name, rc, rc2, err + err2))
    if not ok:
        continue
    js = jsonl(run(["-r", cap, "-k", kf, "--json"])[1])
    final = [o for o in js if o["type"] == "verdict" and o["final"]][0]
    text = open(md).read()
    dev = final.get("device_id") or "? " + final["client"].rsplit(":", 1)[0]
    check("## Device %s" % dev in text and "### Connection %d: %s" % (final["conn"], final["verdict"]) in text,
          "%s: the report names the device and the connection with its verdict" % name)
    check("Nonce (40 bytes)" in text and re.search(r"\+\d+\.\d{3}s  device", text),
          "%s: the ladder has the steps with their times" % name)
    words = final["evidence"].split()[:6]
    check(" ".join(words) in " ".join(text.split()), "%s: the evidence is there" % name)
    check("Keys used:" in text and "keyfile line" in text, "%s: the keys used are named by keyfile line" % name)
    fix = text.split("Fix:", 1)[-1]
    check(re.search(r"sparkkeys \w+|cloudmon |capture again|-s 0", fix) is not None, "%s: a fix with a command" % name)
    check(not any(s in text or s in open(html).read() for s in secrets) and "PRIVATE KEY" not in text,
          "%s: no key material in either report" % name)
    mdl = shutil.which("mdl")
    if mdl:
        p = subprocess.run([mdl, md], capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "%s: mdl (Markdown lint) passes: %s" % (name, p.stdout.strip()[:300]))
    else:
        check(False, "mdl (Debian ruby-mdl) is installed")

# the HTML rendered by Chromium: page text and a screenshot with content
chromium = shutil.which("chromium")
if not chromium:
    check(False, "chromium (Debian package) is installed")
    done()
name = failing[0][0]
html = os.path.join(d, name + ".html")
prof = os.path.join(d, "chromium-profile")
base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + prof, "--hide-scrollbars"]
p = subprocess.run(base + ["--dump-dom", "file://" + html], capture_output=True, text=True, timeout=120)
dom = re.sub(r"<[^>]+>", " ", p.stdout)
check(p.returncode == 0 and "cloudmon report" in dom and "device-key-mismatch" in dom and "Keys used:" in dom
      and "sparkkeys import" in dom, "Chromium loads the HTML report and its text is there")
shot = os.path.join(d, "shot.png")
p = subprocess.run(base + ["--screenshot=" + shot, "--window-size=1000,900", "file://" + html], capture_output=True,
                   text=True, timeout=120)
decoded = png_rows(shot) if os.path.exists(shot) else None
if not check(decoded is not None, "Chromium writes a PNG screenshot of the report"):
    done()
rows, bpp = decoded
colours = {row[i:i + 3] for row in rows[::4] for i in range(0, len(row), bpp * 4)}
dark = sum(1 for row in rows for i in range(0, len(row), bpp) if sum(row[i:i + 3]) < 200)
check(len(colours) >= 4 and dark > 2000,
      "the screenshot is not blank: %d colours, %d dark (text) pixels" % (len(colours), dark))
red = sum(1 for row in rows for i in range(0, len(row), bpp) if row[i] > 150 and row[i + 1] < 60 and row[i + 2] < 60)
check(red > 50, "the failed verdict is drawn in red (%d red pixels)" % red)

# bad names: one clear line
rc, out, err = run(["-r", failing[0][1], "--report", os.path.join(d, "report.txt")])
check(rc == 2 and "FILE.md" in err and len(err.strip().splitlines()) == 1, "--report x.txt: one line naming .md / .html")
os.symlink("/etc/passwd-nothing", os.path.join(d, "link.md"))
rc, out, err = run(["-r", failing[0][1], "-q", "--report", os.path.join(d, "link.md")])
check(rc == 2 and "symbolic link" in err, "--report through a symbolic link is refused: %s" % err.strip())
done()
