#!/usr/bin/env python3
"""--metrics: the exposition text (checked by promtool), then Debian's Prometheus server on loopback
scraping two cloudmon instances (-r ... --linger, two capture points) and queried through its HTTP API
for the series and their values; and the operating guide's files: the alert rules (promtool check and
promtool test rules), the Prometheus configuration, the Grafana dashboard JSON and the rsyslog example.
usage: test_metrics.py CLOUDMON"""
import json
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from cmtest import *

prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
if not (prometheus and promtool):
    check(False, "prometheus and promtool (Debian package prometheus) are installed")
    done()
ops = os.path.join(SRC, "docs", "operating")
d = tmpdir()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_get(url, secs=20):
    end = time.time() + secs
    while time.time() < end:
        try:
            return get(url)
        except OSError:
            time.sleep(0.2)
    return None


by = {s[0]: s for s in samples()}
points = [by[n] for n in ("multi-device", "device-key-mismatch-g2") if n in by and by[n][2]]
if len(points) < 2:
    skip("the samples are not there")
procs = []
try:
    ports = []
    for name, cap, kf in points:
        port = free_port()
        ports.append(port)
        procs.append(subprocess.Popen([CLOUDMON, "-r", cap, "-k", kf, "-q", "--metrics", "127.0.0.1:%d" % port,
                                       "--linger", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    text = wait_get("http://127.0.0.1:%d/metrics" % ports[0])
    for _ in range(50):   # the figures are final once the file is read
        if text and 'cloudmon_connections_total{verdict="ok"} 3' in text:
            break
        time.sleep(0.1)
        text = get("http://127.0.0.1:%d/metrics" % ports[0])
    check(text is not None and 'cloudmon_connections_total{verdict="ok"} 3' in text,
          "cloudmon serves the final figures after the file (--linger)")
    p = subprocess.run([promtool, "check", "metrics"], input=text or "", capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, "promtool check metrics accepts the exposition: %s" % (p.stdout + p.stderr).strip()[:300])
    for series in ("cloudmon_handshakes_total{step=\"hello\"} 3", "cloudmon_handshake_duration_seconds_count 3",
                   "cloudmon_messages_total{kind=\"hello\"} 6", "cloudmon_rsa_operations_total{block=\"id-block\"} 3",
                   "cloudmon_decrypt_errors_total 0", "cloudmon_capture_dropped_packets_total 0",
                   "cloudmon_findings_total{code=\"gap\"} 0", "cloudmon_packets_total 119",
                   "cloudmon_untracked_packets_total 0"):
        check(series in (text or ""), "exposition has %s" % series)
    try:
        get("http://127.0.0.1:%d/nothing" % ports[0])
        check(False, "other paths answer 404")
    except urllib.error.HTTPError as e:
        check(e.code == 404, "other paths answer 404")

    # Prometheus, its own configuration and storage, scraping both every second
    pport = free_port()
    conf = os.path.join(d, "prometheus.yml")
    with open(conf, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - %s\n"
                "scrape_configs:\n  - job_name: cloudmon\n    static_configs:\n" % os.path.join(ops, "cloudmon-rules.yml"))
        for (name, _, _), port in zip(points, ports):
            f.write("      - targets: ['127.0.0.1:%d']\n        labels:\n          site: %s\n" % (port, name))
    procs.append(subprocess.Popen([prometheus, "--config.file=" + conf, "--storage.tsdb.path=" + os.path.join(d, "tsdb"),
                                   "--web.listen-address=127.0.0.1:%d" % pport, "--log.level=warn"],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "prometheus.log"), "w")))
    check(wait_get("http://127.0.0.1:%d/-/ready" % pport, 60) is not None, "Prometheus starts on loopback")

    def query(q):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (pport, urllib.parse.urlencode({"query": q}))
        r = json.loads(get(url))
        return {tuple(sorted(x["metric"].items())): float(x["value"][1]) for x in r["data"]["result"]}

    want = [
        ('sum(up{job="cloudmon"})', 2.0),
        ('cloudmon_connections_total{site="multi-device",verdict="ok"}', 3.0),
        ('cloudmon_connections_total{site="device-key-mismatch-g2",verdict="device-key-mismatch"}', 1.0),
        ('sum(cloudmon_connections_total{verdict=~"device-key-mismatch|server-key-mismatch"})', 1.0),
        ('sum(cloudmon_messages_total{site="multi-device"})', 75.0),
        ('cloudmon_handshakes_total{site="device-key-mismatch-g2",step="session-block"}', 1.0),
        ('cloudmon_handshake_duration_seconds_count{site="multi-device"}', 3.0),
        ('cloudmon_rsa_operations_total{site="device-key-mismatch-g2",block="session-block"}', 1.0),
    ]
    got = {}
    end = time.time() + 40
    while time.time() < end:
        try:
            got = {q: query(q) for q, _ in want}
        except (OSError, ValueError, KeyError):
            got = {}
        if got and all(len(got[q]) == 1 and list(got[q].values())[0] == v for q, v in want):
            break
        time.sleep(0.5)
    for q, v in want:
        vals = list(got.get(q, {}).values())
        check(vals == [v], "Prometheus: %s = %g (got %s)" % (q, v, vals))
    hq = query('histogram_quantile(0.5, sum by (le) (cloudmon_handshake_duration_seconds_bucket{site="multi-device"}))')
    check(len(hq) == 1 and 0 < list(hq.values())[0] < 10, "the handshake duration histogram gives a median (%s)" % hq)
    # an interrupt ends the lingering with exit 0
    procs[0].send_signal(signal.SIGINT)
    check(procs[0].wait(timeout=10) == 0, "SIGINT ends --linger, exit 0")
finally:
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

# a full connection table: the packets not followed are the summary's untracked ones
cap, kf = points[0][1], points[0][2]
rc, out, err = run(["-r", cap, "-k", kf, "--json", "--max-conns", "1"])
untracked = jsonl(out)[-1].get("untracked", 0) if rc == 0 else 0
port = free_port()
p = subprocess.Popen([CLOUDMON, "-r", cap, "-k", kf, "-q", "--max-conns", "1", "--metrics", "127.0.0.1:%d" % port,
                      "--linger", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    want = "cloudmon_untracked_packets_total %d\n" % untracked
    text = wait_get("http://127.0.0.1:%d/metrics" % port)
    for _ in range(50):
        if text and want in text:
            break
        time.sleep(0.1)
        text = get("http://127.0.0.1:%d/metrics" % port)
    check(untracked > 0 and want in (text or ""), "--max-conns 1: the exposition has %s" % want.strip())
finally:
    p.terminate()
    p.wait(timeout=10)

# bad addresses and a busy port: one line each, exit 2
cap = points[0][1]
for bad, pat in (("nonsense", "ADDRESS:PORT"), ("127.0.0.1:99999", "port from 1 to 65535"),
                 ("localhost:9900", "numeric address"), ("[::1", "ADDRESS:PORT")):
    rc, out, err = run(["-r", cap, "-q", "--metrics", bad])
    check(rc == 2 and pat in err and len(err.strip().splitlines()) == 1, "--metrics %s: %s" % (bad, err.strip()))
busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen(1)
rc, out, err = run(["-r", cap, "-q", "--metrics", "127.0.0.1:%d" % busy.getsockname()[1]])
busy.close()
check(rc == 2 and "cannot listen" in err, "--metrics on a busy port: %s" % err.strip())
rc, out, err = run(["-r", cap, "-q", "--linger", "5"])
check(rc == 2 and "--metrics" in err, "--linger without --metrics: %s" % err.strip())

# the operating guide's files
rules = os.path.join(ops, "cloudmon-rules.yml")
p = subprocess.run([promtool, "check", "rules", rules], capture_output=True, text=True, timeout=30)
check(p.returncode == 0, "promtool check rules docs/operating/cloudmon-rules.yml")
t = os.path.join(d, "alert-test.yml")
open(t, "w").write(open(os.path.join(HERE, "alert-test.yml")).read().replace("RULES", rules))
p = subprocess.run([promtool, "test", "rules", t], capture_output=True, text=True, timeout=60)
check(p.returncode == 0, "promtool test rules: the key-mismatch alert fires on a rising rate only: %s"
      % (p.stdout + p.stderr).strip()[-300:])
p = subprocess.run([promtool, "check", "config", os.path.join(ops, "prometheus.yml")], capture_output=True, text=True,
                   timeout=30)
check(p.returncode == 0, "promtool check config docs/operating/prometheus.yml")
dash = json.load(open(os.path.join(ops, "grafana-dashboard.json")))
exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
names = set(re.findall(r"^(cloudmon_\w+?)(?:_bucket|_sum|_count)?[ {]", text or "", re.M))
used = set(re.findall(r"\b(cloudmon_\w+?)(?:_bucket|_sum|_count)?\{", " ".join(exprs)))
check(dash.get("panels") and used and used <= names,
      "the Grafana dashboard is JSON and queries only series cloudmon serves: %s" % sorted(used - names))
rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
if os.path.exists(rsyslogd):
    conf = os.path.join(d, "rsyslog.conf")
    open(conf, "w").write(open(os.path.join(ops, "rsyslog-cloudmon.conf")).read().replace("/var/spool/rsyslog", d))
    p = subprocess.run([rsyslogd, "-N1", "-f", conf], capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, "rsyslogd -N1 accepts the log shipping example: %s" % p.stderr.strip()[-200:])
else:
    check(False, "rsyslogd (Debian package rsyslog) is installed")
done()
