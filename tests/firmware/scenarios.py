#!/usr/bin/env python3
"""sparkdev against sparkcloud over loopback, one run per scenario, with short timers.

Asserts both sides' outcome from their exit status and log lines. Usage:
  scenarios.py BUILD_DIR/firmware [SCENARIO...]
"""
import atexit
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

FW = sys.argv[1]
ONLY = sys.argv[2:]
SRC = os.environ.get('SPARKWIRE_SOURCE_ROOT', os.path.join(os.path.dirname(__file__), '..', '..'))
KEYS = os.path.join(SRC, 'samples', 'keys')
DEV = os.path.join(FW, 'sparkdev')
CLOUD = os.path.join(FW, 'sparkcloud')
D1 = '53ff6c065067544816300187'
D2 = '55ff6d065075555332071787'
D4 = '36ff70065067555051412287'
UNKNOWN = '30ff71065067555011111111'
TMP = tempfile.mkdtemp(prefix='sparkwire-fw-')
atexit.register(shutil.rmtree, TMP, True)   # the keys, logs and images of the run go with it
CLOUD_KEYS = os.path.join(TMP, 'cloud-keys')
os.mkdir(CLOUD_KEYS)
for i in (D1, D2, D4):
    with open(os.path.join(KEYS, i + '.pub.pem'), 'rb') as f, open(os.path.join(CLOUD_KEYS, i + '.pub.pem'), 'wb') as g:
        g.write(f.read())

failures = []


def k(name):
    return os.path.join(KEYS, name)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_listening(proc, path):
    for _ in range(200):
        with open(path) as f:
            if 'listening on' in f.read():
                return
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError('sparkcloud did not start: ' + open(path).read())


def run(cloud_args, devices, limit=20, connections=None):
    """Starts the cloud, runs the devices (list of arg lists, started 0.2 s apart), waits for all.
    The cloud ends after `connections` connections (default: one per device).
    Returns (cloud_log, [(rc, log, seconds)])."""
    port = free_port()
    addr = '127.0.0.1:%d' % port
    clog = os.path.join(TMP, 'cloud.log')
    with open(clog, 'w') as out:
        cloud = subprocess.Popen([CLOUD, '--server-key', k('server-private.pem'), '--keys-dir', CLOUD_KEYS,
                                  '--time-limit', str(limit), '--connections', str(connections or len(devices))] + cloud_args + [addr],
                                 stderr=out)
    wait_listening(cloud, clog)
    procs = []
    for n, args in enumerate(devices):
        dlog = os.path.join(TMP, 'dev%d.log' % n)
        out = open(dlog, 'w')
        procs.append((subprocess.Popen([DEV] + args + [addr], stderr=out), dlog, out, time.monotonic()))
        time.sleep(0.2)
    results = []
    for p, dlog, out, t0 in procs:
        try:
            rc = p.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = 'timeout'
        out.close()
        results.append((rc, open(dlog).read(), time.monotonic() - t0))
    try:
        cloud.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        cloud.kill()
        cloud.wait()
    return open(clog).read(), results


def device(idhex, key, *extra, server_key='server-public.der', gen='g2'):
    return ['--id', idhex, '--key', k(key), '--server-key', k(server_key), '--generation', gen] + list(extra)


APP = ['--function', 'brew=456', '--variable', 'temperature:int:-98765', '--variable', 'ready:bool:true',
       '--variable', 'ratio:double:0.3125', '--variable', 'label:string:kitchen', '--subscribe', 'motion/open']
SCRIPT = ['--describe', '--call', 'brew=32,240', '--read', 'temperature', '--read', 'ready', '--read', 'ratio',
          '--read', 'label']


class Check:
    def __init__(self, name):
        self.name = name
        self.ok = True

    def that(self, cond, what, log=''):
        if not cond:
            self.ok = False
            failures.append('%s: %s' % (self.name, what))
            sys.stderr.write('FAIL %s: %s\n%s\n' % (self.name, what, log))

    def has(self, log, pattern, who):
        self.that(re.search(pattern, log) is not None, '%s log lacks /%s/' % (who, pattern), log)


def scenario(fn):
    name = fn.__name__.replace('_', '-')
    if ONLY and name not in ONLY:
        return fn
    c = Check(name)
    t0 = time.monotonic()
    try:
        fn(c)
    except AssertionError as e:
        c.that(False, str(e))
    print('%s %s (%.1f s)' % ('ok  ' if c.ok else 'FAIL', name, time.monotonic() - t0))
    return fn


@scenario
def healthy(c):
    clog, [(rc, dlog, _)] = run(SCRIPT + ['--signal', '--send-event', 'motion/open/front=door', '--session-time', '10'],
                                [device(D1, D1 + '.der', *APP, '--event', 'lake-depth/1:28m:300:2:21600:private',
                                        '--event', 'motion-detected::0:1', '--ping-idle', '700', '--run-time', '2')])
    c.that(rc == 0, 'sparkdev exit %r, want 0' % rc, dlog)
    c.has(clog, r'id block: device %s, 214 bytes' % D1, 'cloud')
    c.has(clog, r'offers matches the one on file', 'cloud')
    c.has(clog, r'hello from the device: 15 bytes', 'cloud')
    c.has(clog, r'describe: \{"f":\["brew"\],"v":\{"temperature":2,"ready":1,"ratio":9,"label":4\},"p":0,"m":\[\{"s":16384', 'cloud')
    c.has(clog, r'function brew\("32,240"\) returned 456', 'cloud')
    c.has(clog, r'variable temperature = -98765 \(int32\)', 'cloud')
    c.has(clog, r'variable ready = true \(bool\)', 'cloud')
    c.has(clog, r'variable ratio = 0.3125 \(double\)', 'cloud')
    c.has(clog, r'variable label = "kitchen" \(string\)', 'cloud')
    c.has(clog, r'event private "lake-depth/1" data "28m" ttl 21600', 'cloud')
    c.has(clog, r'event public "motion-detected" data "" ttl 60', 'cloud')
    c.has(clog, r'subscription "motion/open" accepted', 'cloud')
    c.has(clog, r'time request answered', 'cloud')
    c.has(clog, r'ping from the device .* answered', 'cloud')
    c.has(clog, r'signal acknowledged', 'cloud')
    c.has(clog, r'outcome: ok', 'cloud')
    c.that('bad counter' not in clog, 'cloud saw a bad counter', clog)
    c.has(dlog, r'session block decrypted, signature verified', 'device')
    c.has(dlog, r'server hello', 'device')
    c.has(dlog, r'time from the cloud: \d+', 'device')
    c.has(dlog, r'ping sent', 'device')
    c.has(dlog, r'signal start', 'device')
    c.has(dlog, r'subscription matched event motion/open/front: door', 'device')
    c.that(dlog.count('event lake-depth/1 published') == 2, 'two lake-depth events', dlog)


@scenario
def healthy_g1(c):
    clog, [(rc, dlog, _)] = run(SCRIPT + ['--session-time', '10'],
                                [device(D2, D2 + '.der', *APP, '--run-time', '1', gen='g1')])
    c.that(rc == 0, 'sparkdev exit %r, want 0' % rc, dlog)
    c.has(clog, r'id block: device %s, 52 bytes \(early firmware\)' % D2, 'cloud')
    c.has(clog, r'hello from the device: 13 bytes \(early firmware\)', 'cloud')
    c.has(clog, r'event public "spark/cc3000-patch-version" data "1.28"', 'cloud')
    c.has(clog, r'variable ratio = 0.3125 \(double\)', 'cloud')
    c.has(clog, r'outcome: ok', 'cloud')



def cloud_waits_out_garbage(c, clog, frames):
    """An early device that failed its handshake sends `frames` frames the cloud cannot decrypt. The cloud
    ignores each one, unless its last block happens to end in valid PKCS#7 padding (about 1 in 256): then
    the cloud, like the real one, reads it as a Hello that does not parse and closes at once. Checks that
    one of the two happened; returns True when the cloud waited for its Hello timeout."""
    ignored = clog.count('does not decrypt with the session key, ignored')
    if 'first message is not a Hello' in clog:
        c.that(ignored < frames, 'a frame decrypted by chance, yet %d frames were ignored' % ignored, clog)
        c.has(clog, r'outcome: bad-hello', 'cloud')
        return False
    c.that(ignored == frames, 'cloud should ignore the %d frames the early device sends after failing' % frames,
           clog)
    c.has(clog, r'no device Hello in time', 'cloud')
    c.has(clog, r'outcome: hello-timeout', 'cloud')
    return True


@scenario
def device_key_mismatch_g1(c):
    clog, [(rc, dlog, secs)] = run(['--hello-timeout', '1.5'],
                                   [device(D2, 'other-device.der', '--run-time', '10', gen='g1')])
    c.that(rc == 6, 'sparkdev exit %r, want 6 (decryption error)' % rc, dlog)
    c.has(dlog, r'decryption error', 'device')
    if cloud_waits_out_garbage(c, clog, 2):
        c.that(secs >= 1.4, 'the early device should hold the socket until the cloud closes (%.2f s)' % secs)


@scenario
def device_key_mismatch_g2(c):
    clog, [(rc, dlog, secs)] = run(['--wrong-key', k('other-device.pub.pem')],
                                   [device(D1, D1 + '.der', '--run-time', '10')])
    c.that(rc == 6, 'sparkdev exit %r, want 6 (decryption error)' % rc, dlog)
    c.has(clog, r'offers differs from the one on file', 'cloud')
    c.has(clog, r'outcome: device-closed', 'cloud')
    c.that(secs < 2, 'a later device closes at once (%.2f s)' % secs)
    c.that('frame of' not in clog, 'a later device sends no frame after failing', clog)


@scenario
def server_key_mismatch(c):
    clog, [(rc, dlog, _)] = run([], [device(D1, D1 + '.der', '--run-time', '10',
                                            server_key='other-server-public.der')])
    c.that(rc == 1, 'sparkdev exit %r, want 1' % rc, dlog)
    c.has(dlog, r'connection ended after id-block', 'device')
    c.has(clog, r'id block does not decrypt with the server key', 'cloud')
    c.has(clog, r'outcome: id-block-undecryptable', 'cloud')


@scenario
def unknown_device(c):
    clog, [(rc, dlog, _)] = run([], [device(UNKNOWN, UNKNOWN + '.der', '--run-time', '10')])
    c.that(rc == 1, 'sparkdev exit %r, want 1' % rc, dlog)
    c.has(clog, r'unknown device %s: no public key on file; closing' % UNKNOWN, 'cloud')
    c.has(clog, r'outcome: unknown-device', 'cloud')


@scenario
def bad_signature(c):
    clog, [(rc, dlog, _)] = run(['--sign-key', k('other-server-private.pem')],
                                [device(D1, D1 + '.der', '--run-time', '10')])
    c.that(rc == 8, 'sparkdev exit %r, want 8 (signature error)' % rc, dlog)
    c.has(dlog, r'signature error', 'device')
    c.has(clog, r'signed with the impostor key', 'cloud')
    c.has(clog, r'outcome: device-closed', 'cloud')


@scenario
def bad_signature_g1_holds(c):
    clog, [(rc, dlog, secs)] = run(['--sign-key', k('other-server-private.pem'), '--hello-timeout', '1'],
                                   [device(D2, D2 + '.der', '--run-time', '10', gen='g1')])
    c.that(rc == 8, 'sparkdev exit %r, want 8' % rc, dlog)
    cloud_waits_out_garbage(c, clog, 2)


@scenario
def not_spark(c):
    clog, [(rc, dlog, _)] = run(['--captive-portal'], [device(D1, D1 + '.der', '--run-time', '10')], limit=10)
    c.that(rc == 6, 'sparkdev exit %r, want 6 (the page does not decrypt as a session block)' % rc, dlog)
    c.has(clog, r'captive portal: HTTP redirect sent', 'cloud')
    c.has(clog, r'captive portal: 256 bytes from the device', 'cloud')
    c.has(clog, r'outcome: not-spark', 'cloud')


@scenario
def stalled(c):
    clog, [(rc, dlog, secs)] = run(['--stall'], [device(D1, D1 + '.der', '--io-timeout', '800', '--run-time', '10')])
    c.that(rc == 1, 'sparkdev exit %r, want 1' % rc, dlog)
    c.has(dlog, r'handshake timed out after id-block: nothing from the cloud within 800 ms', 'device')
    c.that(0.8 <= secs < 3, 'device gave up after %.2f s, want about 1 s' % secs)
    c.has(clog, r'outcome: stalled', 'cloud')


@scenario
def stalled_device(c):
    clog, [(rc, dlog, _)] = run(['--id-timeout', '0.8'],
                                [device(D1, D1 + '.der', '--stop-after', 'nonce', '--run-time', '10')])
    c.that(rc == 1, 'sparkdev exit %r, want 1' % rc, dlog)
    c.has(clog, r'no id block in time', 'cloud')
    c.has(clog, r'outcome: id-timeout', 'cloud')


@scenario
def handshake_global_timeout(c):
    # The device goes silent after its id block; the cloud's whole-handshake timer closes first.
    clog, [(rc, dlog, secs)] = run(['--handshake-timeout', '0.7'],
                                   [device(D1, D1 + '.der', '--stop-after', 'id-block', '--run-time', '10')])
    c.has(clog, r'session block sent', 'cloud')
    c.has(clog, r'outcome: hello-timeout', 'cloud')
    c.that(rc == 1 and secs < 3, 'device closed by the cloud within 3 s (exit %r, %.2f s)' % (rc, secs), dlog)


@scenario
def device_silent_after_session_block(c):
    clog, [(rc, dlog, _)] = run(['--hello-timeout', '0.6'],
                                [device(D1, D1 + '.der', '--stop-after', 'session-block', '--run-time', '10')])
    c.has(dlog, r'session block decrypted, signature verified', 'device')
    c.has(clog, r'no device Hello in time', 'cloud')
    c.has(clog, r'outcome: hello-timeout', 'cloud')
    c.that(rc == 1, 'sparkdev exit %r, want 1 (closed by the cloud)' % rc, dlog)


@scenario
def no_server_hello(c):
    # A later device waits for the server Hello and gives up when none comes.
    clog, [(rc, dlog, secs)] = run(['--no-hello'], [device(D1, D1 + '.der', '--hello-timeout', '500', '--run-time', '10')])
    c.that(rc == 9, 'sparkdev exit %r, want 9 (no server Hello)' % rc, dlog)
    c.has(dlog, r'no server Hello within 500 ms', 'device')
    c.that(secs < 3, 'device gave up after %.2f s' % secs)
    c.has(clog, r'server Hello withheld', 'cloud')


@scenario
def no_server_hello_g1(c):
    # An early device does not wait for the server Hello: its session runs anyway.
    clog, [(rc, dlog, _)] = run(['--no-hello', '--describe', '--session-time', '5'],
                                [device(D2, D2 + '.der', *APP, '--run-time', '1', gen='g1')])
    c.that(rc == 0, 'sparkdev exit %r, want 0' % rc, dlog)
    c.has(clog, r'describe: ', 'cloud')


@scenario
def bad_counter(c):
    clog, [(rc, dlog, _)] = run(['--script-delay', '0.5', '--describe', '--session-time', '5'],
                                [device(D1, D1 + '.der', *APP, '--corrupt-frame', '3', '--run-time', '3')])
    c.has(clog, r'frame of 16 bytes does not decrypt with the session key, ignored', 'cloud')
    c.has(clog, r'bad counter: device message id 0x[0-9a-f]{4}, expected 0x[0-9a-f]{4}; closing', 'cloud')
    c.has(clog, r'outcome: bad-counter', 'cloud')
    c.that(rc == 1, 'sparkdev exit %r, want 1 (closed by the cloud)' % rc, dlog)


def image(n):
    return bytes(((i * i * 31 + i * 7 + 3) >> 2) & 0xff for i in range(n))


def update_applied(c, clog, dlog, got, n):
    """Both ends saw the update complete and the device stored the whole image."""
    c.has(clog, r'outcome: ota-complete', 'cloud')
    c.has(dlog, r'update done: %d bytes' % n, 'device')
    c.that(open(got, 'rb').read() == image(n), 'received image differs from the one sent')


def image_file(n):
    path = os.path.join(TMP, 'image-%d.bin' % n)
    with open(path, 'wb') as f:
        f.write(image(n))
    return path


@scenario
def ota_complete(c):
    img = os.path.join(TMP, 'image.bin')
    got = os.path.join(TMP, 'received.bin')
    with open(img, 'wb') as f:
        f.write(image(700))
    clog, [(rc, dlog, _)] = run(['--ota', img, '--session-time', '8'],
                                [device(D2, D2 + '.der', '--ota-out', got, '--run-time', '8', gen='g1')])
    c.that(rc == 0, 'sparkdev exit %r, want 0' % rc, dlog)
    c.has(clog, r'update begins: 700 bytes in 3 chunks of 256', 'cloud')
    c.has(clog, r'update done: device acknowledged', 'cloud')
    c.has(clog, r'outcome: ota-complete', 'cloud')
    c.has(dlog, r'update done: 768 bytes', 'device')
    data = open(got, 'rb').read()
    c.that(data[:700] == image(700) and data[700:] == bytes(68), 'received image differs from the one sent')


@scenario
def ota_retry_then_complete(c):
    img = os.path.join(TMP, 'image.bin')
    got = os.path.join(TMP, 'received2.bin')
    with open(img, 'wb') as f:
        f.write(image(600))
    clog, [(rc, dlog, _)] = run(['--ota', img, '--ota-bad-crc', '2', '--session-time', '8'],
                                [device(D1, D1 + '.der', '--ota-out', got, '--run-time', '8')])
    c.has(clog, r'chunk 2: device reports a CRC error, sending it again', 'cloud')
    c.has(dlog, r'chunk 2 bad-crc', 'device')
    c.has(clog, r'outcome: ota-complete', 'cloud')
    c.that(open(got, 'rb').read()[:600] == image(600), 'received image differs')


@scenario
def ota_failed(c):
    img = os.path.join(TMP, 'image.bin')
    with open(img, 'wb') as f:
        f.write(image(900))
    clog, [(rc, dlog, _)] = run(['--ota', img, '--ota-bad-crc', '1', '--ota-timeout', '1', '--session-time', '8'],
                                [device(D2, D2 + '.der', '--ota-stall-after', '2', '--run-time', '8', gen='g1')])
    c.has(clog, r'chunk 1: device reports a CRC error', 'cloud')
    c.has(clog, r'no ChunkReceived for chunk 1 within 1000 ms', 'cloud')
    c.has(clog, r'outcome: ota-failed', 'cloud')
    c.has(dlog, r'chunk 1 bad-crc', 'device')


@scenario
def multi_device(c):
    clog, res = run(SCRIPT + ['--session-time', '10'],
                    [device(D1, D1 + '.der', *APP, '--run-time', '1.5'),
                     device(D2, D2 + '.der', *APP, '--run-time', '1.5', gen='g1'),
                     device(D4, D4 + '.der', *APP, '--platform', '6', '--run-time', '1.5')])
    for n, (rc, dlog, _) in enumerate(res):
        c.that(rc == 0, 'device %d exit %r' % (n, rc), dlog)
    c.that(len(re.findall(r'outcome: ok', clog)) == 3, 'three sessions ok', clog)
    for i in (D1, D2, D4):
        c.has(clog, r'id block: device %s' % i, 'cloud')
    c.that(len(re.findall(r'variable label = "kitchen"', clog)) == 3, 'each device read', clog)


@scenario
def session_log(c):
    slog = os.path.join(TMP, 'session.log')
    clog, [(rc, dlog, _)] = run(['--session-log', slog, '--session-time', '0.5'],
                                [device(D1, D1 + '.der', '--run-time', '3')])
    lines = open(slog).read().splitlines()
    c.that(len(lines) == 1 and re.fullmatch(r'%s [0-9a-f]{80}' % D1, lines[0]) is not None,
           'session log line: %r' % lines)
    c.that(os.stat(slog).st_mode & 0o777 == 0o600, 'session log mode %o' % (os.stat(slog).st_mode & 0o777))
    # a symlink in its place is not written through
    target = os.path.join(TMP, 'session-target')
    open(target, 'w').close()
    link = os.path.join(TMP, 'session-link.log')
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(target, link)
    clog, [(rc, dlog, _)] = run(['--session-log', link, '--session-time', '0.5'],
                                [device(D1, D1 + '.der', '--run-time', '3')])
    c.that(os.path.getsize(target) == 0, 'session material written through a symlink')
    c.has(clog, r'session log .*session-link\.log: cannot write .*symlink; name the file itself', 'cloud')


@scenario
def keyfile(c):
    # Both sides take their keys from a sample's keyfile (read with libkeyring's parser).
    kf = os.path.join(SRC, 'samples', 'healthy', 'keyfile')
    port = free_port()
    addr = '127.0.0.1:%d' % port
    clog = os.path.join(TMP, 'cloud-kf.log')
    with open(clog, 'w') as out:
        cloud = subprocess.Popen([CLOUD, '--keyfile', kf, '--describe', '--session-time', '5', '--time-limit', '10',
                                  addr], stderr=out)
    wait_listening(cloud, clog)
    p = subprocess.run([DEV, '--keyfile', kf, '--id', D1, '--function', 'f', '--run-time', '1', addr],
                       stderr=subprocess.PIPE, text=True, timeout=10)
    cloud.wait(timeout=10)
    log = open(clog).read()
    c.that(p.returncode == 0, 'sparkdev with --keyfile exit %r' % p.returncode, p.stderr)
    c.has(log, r'describe: \{"f":\["f"\]', 'cloud')
    c.has(log, r'outcome: ok', 'cloud')
    # Every sample keyfile loads.
    for d in sorted(os.listdir(os.path.join(SRC, 'samples'))):
        path = os.path.join(SRC, 'samples', d, 'keyfile')
        if not os.path.isfile(path):
            continue
        r = subprocess.run([CLOUD, '--keyfile', path, '--time-limit', '0.05', '127.0.0.1:%d' % free_port()],
                           stderr=subprocess.PIPE, text=True, timeout=10)
        c.that('listening on' in r.stderr, 'sample keyfile %s loads' % path, r.stderr)
    bad = os.path.join(TMP, 'bad.keyfile')
    with open(bad, 'w') as f:
        f.write('server-private keys/none.pem\n')
    r = subprocess.run([CLOUD, '--keyfile', bad], stderr=subprocess.PIPE, text=True, timeout=10)
    c.that(r.returncode == 2 and 'bad.keyfile:1' in r.stderr and r.stderr.count('\n') == 1,
           'bad keyfile: %r %r' % (r.returncode, r.stderr))


@scenario
def usage_errors(c):
    def sh(args):
        p = subprocess.run(args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, timeout=10)
        return p.returncode, p.stderr
    rc, err = sh([DEV])
    c.that(rc == 2 and err.count('\n') == 1 and 'HOST:PORT' in err, 'sparkdev without arguments: %r %r' % (rc, err))
    rc, err = sh([DEV, '--id', D1, '--key', '/nonexistent/key.der', '--server-key', k('server-public.der'), '127.0.0.1:1'])
    c.that(rc == 2 and '/nonexistent/key.der' in err and err.count('\n') == 1, 'missing key: %r %r' % (rc, err))
    rc, err = sh([DEV, '--id', D1, '--key', k('server-public.der'), '--server-key', k('server-public.der'), '127.0.0.1:1'])
    c.that(rc == 2 and 'not an RSA private key' in err, 'public key given as private: %r %r' % (rc, err))
    pw = os.path.join(TMP, 'pw.pem')
    subprocess.run(['openssl', 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-aes128',
                    '-pass', 'pass:secret', '-out', pw], check=True, capture_output=True, timeout=30)
    cut = os.path.join(TMP, 'cut.der')
    with open(k(D1 + '.der'), 'rb') as f, open(cut, 'wb') as g:
        g.write(f.read()[:300])
    rc, err = sh([DEV, '--id', D1, '--key', pw, '--server-key', k('server-public.der'), '127.0.0.1:1'])
    c.that(rc == 2 and err.count('\n') == 1 and 'password' in err and 'openssl' in err and pw in err,
           'password-protected device key: %r %r' % (rc, err))
    rc, err = sh([CLOUD, '--server-key', pw, '127.0.0.1:1'])
    c.that(rc == 2 and err.count('\n') == 1 and 'password' in err,
           'password-protected server key: %r %r' % (rc, err))
    rc, err = sh([DEV, '--id', D1, '--key', cut, '--server-key', k('server-public.der'), '127.0.0.1:1'])
    c.that(rc == 2 and err.count('\n') == 1 and 'cut.der: truncated DER' in err, 'truncated key: %r %r' % (rc, err))
    for prog in (DEV, CLOUD):
        rc, err = sh([prog, '--frob=1'])
        c.that(rc == 2 and err.count('\n') == 1 and 'unknown option --frob;' in err and '--help' in err,
               'unknown option: %r %r' % (rc, err))
        rc, err = sh([prog, '--keyfile'])
        c.that(rc == 2 and err.count('\n') == 1 and 'option --keyfile needs a value' in err,
               'option without its value: %r %r' % (rc, err))
    rc, err = sh([DEV, '--id', D1, '--key', k('server-private.pem'), '--server-key', k('server-public.der'), '127.0.0.1:1'])
    c.that(rc == 2 and 'RSA 2048 bits' in err and 'RSA 1024' in err, '2048-bit device key: %r %r' % (rc, err))
    rc, err = sh([DEV, '--id', 'xyz', '--key', k(D1 + '.der'), '--server-key', k('server-public.der'), '127.0.0.1:1'])
    c.that(rc == 2 and '24 hex digits' in err, 'bad id: %r %r' % (rc, err))
    rc, err = sh([DEV, '--variable', 'x:float:1', '127.0.0.1:1'])
    c.that(rc == 2 and '--variable' in err, 'bad variable: %r %r' % (rc, err))
    rc, err = sh([DEV, '--id', D1, '--key', k(D1 + '.der'), '--server-key', k('server-public.der'), '127.0.0.1:1'])
    c.that(rc == 1 and 'connect to 127.0.0.1:1 failed' in err, 'refused connection: %r %r' % (rc, err))
    rc, err = sh([CLOUD, '--server-key', k('server-private.pem'), '--keys-dir', '/nonexistent', '127.0.0.1:1'])
    c.that(rc == 2 and '/nonexistent' in err and err.count('\n') == 1, 'bad keys dir: %r %r' % (rc, err))
    rc, err = sh([CLOUD, '--keys-dir', KEYS])
    c.that(rc == 2 and '--server-key' in err, 'missing server key: %r %r' % (rc, err))
    rc, err = sh([CLOUD, '--server-key', k(D1 + '.der'), '127.0.0.1:1'])
    c.that(rc == 2 and 'RSA 1024 bits' in err, 'small server key: %r %r' % (rc, err))
    p = subprocess.run([DEV, '--help'], capture_output=True, text=True, timeout=10)
    c.that(p.returncode == 0 and 'usage: sparkdev' in p.stdout, 'sparkdev --help')
    p = subprocess.run([CLOUD, '--help'], capture_output=True, text=True, timeout=10)
    c.that(p.returncode == 0 and 'usage: sparkcloud' in p.stdout, 'sparkcloud --help')


@scenario
def photon_g2_refused_event(c):
    """G2 drops the connection after an ACK 4.00 to its event and reconnects; the second session is normal."""
    clog, [(rc, dlog, _)] = run(['--refuse-events', '1', '--describe', '--session-time', '3'],
                                [device(D4, D4 + '.der', '--platform', '6', '--event', 'burst:1:0:1',
                                        '--run-time', '2.5')], connections=2)
    c.that(rc == 0, 'sparkdev exit %r, want 0' % rc, dlog)
    c.has(clog, r'event public "burst" data "1" ttl 60, refused \(ACK 4.00, slow down\)', 'cloud')
    c.has(dlog, r'the cloud answered message 0x[0-9a-f]{4} with ACK 4.00; dropping the connection', 'device')
    c.has(dlog, r'reconnecting', 'device')
    c.that(len(re.findall(r'id block: device %s, 214 bytes' % D4, clog)) == 2, 'two connections', clog)
    c.has(clog, r'hello from the device: 15 bytes \(platform id present\)', 'cloud')
    c.has(clog, r'describe: \{"f":\[\],"v":\{\},"p":6,"m":\[', 'cloud')
    c.that(dlog.count('event burst published') == 1, 'the refused event is not sent again', dlog)


@scenario
def describe_parts(c):
    """The selection byte after "d": 1 system, 2 application, 3 both; a first Core firmware knows no system part."""
    clog, [(rc, dlog, _)] = run(['--describe=system', '--describe=application', '--describe=both', '--describe',
                                 '--session-time', '1'], [device(D4, D4 + '.der', '--function', 'f', '--platform', '6',
                                                                 '--run-time', '2')])
    parts = re.findall(r'describe: (\S+)', clog)
    c.that(len(parts) == 4, 'four describe answers', clog)
    if len(parts) == 4:
        c.that(parts[0].startswith('{"p":6,"m":[') and '"f":[' not in parts[0], 'system part only', parts[0])
        c.that(parts[1] == '{"f":["f"],"v":{}}', 'application part only', parts[1])
        c.that(parts[2].startswith('{"f":["f"],"v":{},"p":6,"m":['), 'both parts', parts[2])
        c.that(parts[3] == parts[2], 'no selection byte: both parts', parts[3])
    clog, [(rc, dlog, _)] = run(['--describe=system', '--session-time', '1'],
                                [device(D2, D2 + '.der', '--function', 'f', '--run-time', '2', gen='g1')])
    c.that(re.findall(r'describe: (\S+)', clog) == ['{"f":["f"],"v":{}}'], 'first Core firmware: application only',
           clog)


@scenario
def describe_twice(c):
    """Photon firmware 0.4-0.5 answer a Describe with both parts, then the application part; 0.6.0 with the
    system part, then the application part. The second answer's id is not the request's: the cloud takes the
    first answer and ignores the second."""
    for ver, first in (('0.4', '{"f":["f"],"v":{},"p":6,"m":['), ('0.6', '{"p":6,"m":[')):
        clog, [(rc, dlog, _)] = run(['--describe=application', '--session-time', '1'],
                                    [device(D4, D4 + '.der', '--function', 'f', '--platform', '6', '--describe-twice',
                                            ver, '--run-time', '2')])
        parts = re.findall(r'describe: (\S+)', clog)
        c.that(len(parts) == 1 and parts[0].startswith(first) and ('"f":[' in parts[0]) == (ver == '0.4'),
               '%s: the first answer (selection byte ignored)' % ver, clog)
        c.that(re.search(r'unexpected ACK 2\.05 id 0x[0-9a-f]{4}, ignored', clog) is not None,
               '%s: a second answer with another id' % ver, clog)
        c.that('describe answered' in dlog and 'error' not in dlog, '%s: the device answered without an error' % ver,
               dlog)


@scenario
def frame_buffer(c):
    """A 720-byte frame (an event with 700 bytes of data to a subscribed device): a Photon (800-byte buffer)
    takes it; a Core (640 bytes) drops the connection at its length."""
    data = 'a' * 700
    for plat, takes in (('6', True), ('0', False)):
        clog, [(rc, dlog, _)] = run(['--send-event', 'big=' + data, '--session-time', '1'],
                                    [device(D4, D4 + '.der', '--subscribe', 'big', '--platform', plat,
                                            '--run-time', '2')])
        c.that(('subscription matched event big: ' + data in dlog) == takes,
               'platform %s: frame taken: %s' % (plat, takes), dlog)
        c.that(('frame longer than the receive buffer (720)' in dlog) != takes,
               'platform %s: frame refused: %s' % (plat, not takes), dlog)


@scenario
def photon_g2_fast_ota(c):
    """Fast OTA with a chunk left out: the device refuses UpdateDone, asks for it, and ends the update itself."""
    img = image_file(900)
    got = os.path.join(TMP, 'received-fast.bin')
    clog, [(rc, dlog, _)] = run(['--ota', img, '--ota-fast', '--ota-skip-chunk', '1', '--session-time', '6'],
                                [device(D4, D4 + '.der', '--platform', '6', '--ota-out', got, '--run-time', '6')])
    c.that(rc == 0, 'sparkdev exit %r, want 0' % rc, dlog)
    c.has(clog, r'device ready for the update \(fast OTA accepted\)', 'cloud')
    c.has(clog, r'chunk 1 left out', 'cloud')
    c.has(clog, r'update done refused \(4.00\)', 'cloud')
    c.has(clog, r'device reports 1 missed chunk', 'cloud')
    c.has(clog, r'chunk 1 sent \(crc [0-9a-f]{8}, fast, asked for again\)', 'cloud')
    c.has(clog, r'the device ends the update itself', 'cloud')
    c.has(dlog, r'update begins \(fast\)', 'device')
    update_applied(c, clog, dlog, got, 900)


@scenario
def photon_g3(c):
    """G3: little-endian id start, Signal ACK with its own id (no bad counter), and a fast OTA with a missed
    chunk that stalls: the device waits for a second UpdateDone the cloud never sends."""
    img = image_file(900)
    slog = os.path.join(TMP, 'session-g3.log')
    clog, [(rc, dlog, _)] = run(['--session-log', slog, '--signal', '--describe', '--ota', img, '--ota-fast',
                                 '--ota-skip-chunk', '2', '--ota-timeout', '1', '--session-time', '5'],
                                [device(D4, D4 + '.der', '--event', 'door:open:0:1', '--run-time', '6', gen='g3')])
    m = bytes.fromhex(open(slog).read().split()[1])
    hello = re.search(r'hello from the device: 15 bytes \(platform id present\), id 0x([0-9a-f]{4})', clog)
    c.that(hello is not None and int(hello.group(1), 16) == ((m[33] << 8 | m[32]) + 1) & 0xffff,
           'the Hello id is the little-endian counter start + 1', clog)
    c.has(clog, r'carries the device\'s next message id 0x[0-9a-f]{4}: counted', 'cloud')
    c.has(clog, r'signal acknowledged', 'cloud')
    c.that('bad counter' not in clog, 'cloud saw a bad counter', clog)
    c.has(clog, r'event public "door" data "open"', 'cloud')
    c.has(clog, r'describe: \{"f":\[\],"v":\{\},"p":6,"m":\[.*"v":300', 'cloud')
    c.has(clog, r'device reports 1 missed chunk', 'cloud')
    c.has(clog, r'update done \(the missed chunks were sent; no UpdateDone from the device\)', 'cloud')
    c.that('ota-complete' not in clog, 'the update did not complete', clog)
    c.has(dlog, r'waiting for the cloud\'s second update done', 'device')
    c.that('update done:' not in dlog, 'the device applied no update', dlog)
    # a cloud that sends the second UpdateDone completes the update
    got = os.path.join(TMP, 'received-g3.bin')
    clog, [(rc, dlog, _)] = run(['--ota', img, '--ota-fast', '--ota-skip-chunk', '2', '--ota-timeout', '1',
                                 '--ota-second-done', '--session-time', '5'],
                                [device(D4, D4 + '.der', '--ota-out', got, '--run-time', '6', gen='g3')])
    c.that(rc == 0, 'sparkdev exit %r, want 0' % rc, dlog)
    c.has(clog, r'second update done acknowledged', 'cloud')
    update_applied(c, clog, dlog, got, 900)


@scenario
def serves_until_stopped(c):
    """Without --once or --connections the cloud serves one connection after another until SIGINT."""
    addr = '127.0.0.1:%d' % free_port()

    def start(log, *extra):
        with open(log, 'w') as out:
            proc = subprocess.Popen([CLOUD, '--server-key', k('server-private.pem'), '--keys-dir', CLOUD_KEYS,
                                     '--time-limit', '20', '--session-time', '0.3'] + list(extra) + [addr], stderr=out)
        wait_listening(proc, log)
        return proc
    clog = os.path.join(TMP, 'cloud-serve.log')
    cloud = start(clog)
    for n in range(3):
        p = subprocess.run([DEV] + device(D1, D1 + '.der', '--run-time', '2') + [addr], capture_output=True,
                           timeout=20)
        c.that(p.returncode in (0, 1), 'device run %d exit %r' % (n, p.returncode), p.stderr.decode())
    c.that(cloud.poll() is None, 'the cloud still runs after three connections', open(clog).read())
    cloud.send_signal(2)
    rc = cloud.wait(timeout=10)
    log = open(clog).read()
    c.that(rc == 0 and 'stopping' in log, 'SIGINT stops the cloud with status 0 (%r)' % rc, log)
    c.that(len(re.findall(r'outcome: ok', log)) == 3, 'three sessions served', log)
    clog2 = os.path.join(TMP, 'cloud-once.log')
    cloud = start(clog2, '--once')
    subprocess.run([DEV] + device(D1, D1 + '.der', '--run-time', '2') + [addr], capture_output=True, timeout=20)
    try:
        rc = cloud.wait(timeout=5)
    except subprocess.TimeoutExpired:
        cloud.kill()
        rc = 'still running'
    c.that(rc == 0, '--once: the cloud exits after one connection (%r)' % rc, open(clog2).read())


if failures:
    print('%d check(s) failed' % len(failures))
    sys.exit(1)
print('all scenarios passed')
