#!/usr/bin/env python3
"""kr_library_end, as the plugin meets it: libkeyring in a module that is loaded, used and unloaded.

library_end.py TEST MODULE SAMPLE_DIR

- 'end' (the library told to end before the module goes) must exit 0. In the sanitized build the leak
  check runs at exit: anything the library made and still held when the module went is reported there.
- In the sanitized build, 'keep' (the module goes without kr_library_end) must be reported by the same
  check, so the check is shown to see what the library keeps.
"""
import os
import subprocess
import sys

test, module, sample = sys.argv[1:4]
sanitized = os.environ.get("SPARKWIRE_SANITIZED") == "1"
env = dict(os.environ)
if sanitized:
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:exitcode=23"
    env["LSAN_OPTIONS"] = "exitcode=23"


def run(mode):
    p = subprocess.run([test, module, sample, mode], env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


failed = False
rc, out = run("end")
print("end: exit %d: %s" % (rc, out.strip().splitlines()[0] if out.strip() else ""))
if rc != 0 or "LeakSanitizer" in out:
    print("FAIL: with kr_library_end the module must go cleanly\n" + out)
    failed = True

if sanitized:
    rc, out = run("keep")
    leaks = "LeakSanitizer: detected memory leaks" in out
    print("keep: exit %d, leak check %s" % (rc, "reports leaks" if leaks else "reports nothing"))
    if rc == 0 or not leaks:
        print("FAIL: without kr_library_end the leak check must report what the library kept\n" + out)
        failed = True
else:
    print("keep: not run (the leak check is the sanitized build's)")

sys.exit(1 if failed else 0)
