#!/usr/bin/env python3
"""Every sample capture, with its keyfile and without keys: cloudmon's JSON Lines give the verdicts,
device ids and findings that samples/expected.tsv lists, connection by connection."""
import os
from cmtest import *

tsv = os.path.join(SAMPLES, "expected.tsv")
if not os.path.isfile(tsv):
    skip("samples/expected.tsv is not there yet")
rows = [l.rstrip("\n").split("\t") for l in open(tsv) if l.strip()]
head, rows = rows[0], rows[1:]
col = {n: i for i, n in enumerate(head)}
check(len(rows) > 0, "expected.tsv lists scenarios")


def per_conn(objs):
    """final verdict and device id per connection, in the order the connections start"""
    finals = {}
    for o in objs:
        if o["type"] == "verdict" and o["final"]:
            finals[o["conn"]] = o
    return [finals[c] for c in sorted(finals)]


def split(v):
    return [] if v in ("-", "") else v.split(",")


for r in rows:
    name = r[col["scenario"]]
    cap = os.path.join(SAMPLES, r[col["capture"]])
    kf = os.path.join(os.path.dirname(cap), "keyfile")
    want_v, want_ids = split(r[col["verdicts"]]), split(r[col["device_ids"]])
    want_f, want_nokeys = set(split(r[col["findings"]])), split(r[col["verdicts_without_keys"]])
    if not check(os.path.isfile(cap) and os.path.isfile(kf), "%s: capture and keyfile exist" % name):
        continue
    rc, out, err = run(["-r", cap, "-k", kf, "--json"])
    objs = jsonl(out)
    conns = per_conn(objs)
    got_v = [c["verdict"] for c in conns]
    got_ids = [c.get("device_id", "?") for c in conns]
    got_f = {o["finding"] for o in objs if o["type"] == "finding"}
    check(rc == 0 and err == "", "%s: exit 0, nothing on stderr (%d %r)" % (name, rc, err[:200]))
    check(got_v == want_v, "%s: verdicts %s (got %s)" % (name, want_v, got_v))
    # the id can only come from an id block the keys opened (or a session line); where none was, the
    # connection must say it does not know rather than guess
    opened = {o["conn"] for o in objs if o["type"] == "step" and (o.get("id_block_opened") or o["step"] == "frame")}
    ids_ok = len(got_ids) == len(want_ids) and all(
        g == w or (g == "?" and c["conn"] not in opened) for g, w, c in zip(got_ids, want_ids, conns))
    check(ids_ok, "%s: device ids %s (got %s; unknown only where no id block opened)" % (name, want_ids, got_ids))
    check(got_f == want_f, "%s: findings %s (got %s)" % (name, sorted(want_f), sorted(got_f)))
    summ = objs[-1] if objs else {}
    counted = {}
    for v in got_v:
        counted[v] = counted.get(v, 0) + 1
    check(summ.get("type") == "summary" and summ.get("verdicts") == counted and summ.get("connections") == len(want_v),
          "%s: the summary counts the same verdicts" % name)
    ok_conns = [c for c in conns if c["verdict"] == "ok"]
    if ok_conns:
        msgs = [o for o in objs if o["type"] == "message"]
        check(any(m["message"] == "hello" for m in msgs), "%s: decrypted messages include the Hellos" % name)
    # the capture alone
    rc, out, err = run(["-r", cap, "--json"])
    got_nk = [c["verdict"] for c in per_conn(jsonl(out))]
    check(rc == 0 and got_nk == want_nokeys, "%s without keys: verdicts %s (got %s)" % (name, want_nokeys, got_nk))
    for c in per_conn(jsonl(out)):
        if c["verdict"] in ("id-block-rejected", "session-block-rejected"):
            check(not c["proven"] and len(c["candidates"]) >= 2,
                  "%s without keys: %s is inferred, with candidates %s" % (name, c["verdict"], c["candidates"]))
done()
