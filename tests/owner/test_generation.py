#!/usr/bin/env python3
"""The firmware generation each frontend shows, from the wire: generation 3 (Photon firmware 0.8 and later)
for the photon-g3 sample, whose device Hello carries the message id read little-endian from the session
material and whose Signal ACK carries the device's own next message id; 2 for photon-g2 (firmware 0.4 to
0.7), 1 for healthy-g1 (52-byte id block).

cloudmon --json: the device record's "generation". The plugin (when built; tshark runs it as the dissector
tests do): the last spark.generation of the capture, and generation 3 is never shown on a sample of an
older generation.

    test_generation.py CLOUDMON SOURCE_ROOT [PLUGIN]
"""
import json
import os
import subprocess
import sys

SAMPLES = {"photon-g3": 3, "photon-g2": 2, "healthy-g1": 1}
failures = []


def expect(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def cloudmon_generations(cm, sample_dir):
    p = subprocess.run([cm, "-r", os.path.join(sample_dir, "capture.pcap"), "-k", os.path.join(sample_dir, "keyfile"),
                        "--json"], capture_output=True, text=True, timeout=120)
    gens = set()
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("type") == "device":
                gens.add(rec.get("generation"))
    return p.returncode, gens


def plugin_generations(sh, root, name):
    d = sh.copy_in(os.path.join(root, "samples", name), name)
    if not os.path.exists(sh.path("keys")):
        sh.copy_in(os.path.join(root, "samples", "keys"), "keys")
    rows = sh.fields(os.path.join(d, "capture.pcap"), ["spark.generation"],
                     extra=["-o", "spark.keyfile:" + os.path.join(d, "keyfile")])
    return [int(g) for r in rows for g in r[1].split(",") if g]


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cm, root = sys.argv[1], os.path.abspath(sys.argv[2])
    plugin = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
    for name, gen in SAMPLES.items():
        rc, gens = cloudmon_generations(cm, os.path.join(root, "samples", name))
        expect(rc == 0 and gens == {gen}, "cloudmon %s: generation %s (want %d)" % (name, sorted(gens), gen))
    if plugin:
        sys.path.insert(0, os.path.join(root, "tests", "dissector"))
        import spark_tshark  # noqa: E402
        sh = spark_tshark.Shark(plugin)   # exits 77 (skip) when tshark is missing
        try:
            for name, gen in SAMPLES.items():
                seen = plugin_generations(sh, root, name)
                expect(seen and seen[-1] == gen and (gen == 3 or 3 not in seen),
                       "plugin %s: last generation %s, shown %s (want %d)" % (
                           name, seen[-1] if seen else None, sorted(set(seen)), gen))
        finally:
            sh.close()
    else:
        print("note: the plugin is not built; only cloudmon checked")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
