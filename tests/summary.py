#!/usr/bin/env python3
"""Prints the closing line of `make test`: the counts of both builds' meson test logs."""
import json
import sys
from pathlib import Path

passed = failed = skipped = 0
for build in sys.argv[1:]:
    log = Path(build) / "meson-logs" / "testlog.json"
    if not log.exists():
        print(f"summary: {log} is missing: the suite of {build} did not run", file=sys.stderr)
        failed += 1
        continue
    for line in log.read_text().splitlines():
        if not line.strip():
            continue
        result = json.loads(line).get("result", "")
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"test: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
