#!/usr/bin/env python3
"""Checks the committed sample captures against docs/protocol.md with an implementation written apart from
the firmware and libkeyring: Python integers for RSA, the `cryptography` package only for AES, HMAC and
to read key files. For every line of samples/expected.tsv it reassembles the TCP streams of capture.pcap
and checks the wire facts behind the expected verdict with the keys of the scenario's keyfile.

Usage: check_samples.py [SAMPLES_DIR]   (exit 77 when python3-cryptography is missing)
"""
import hashlib
import hmac
import os
import struct
import sys

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError:
    print('SKIP: python3-cryptography is not installed (apt-get install -y python3-cryptography)')
    sys.exit(77)

SAMPLES = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get('SPARKWIRE_SOURCE_ROOT', os.path.join(os.path.dirname(__file__), '..', '..')), 'samples')
PORT = 5683
failures = []


# ---- pcap and TCP ----

def read_pcap(path):
    data = open(path, 'rb').read()
    magic = struct.unpack('<I', data[:4])[0]
    if magic == 0xa1b2c3d4:
        end, nano = '<', False
    elif magic == 0xa1b23c4d:
        end, nano = '<', True
    else:
        raise ValueError('%s: not a little-endian pcap file' % path)
    linktype = struct.unpack(end + 'I', data[20:24])[0]
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(end + 'IIII', data[pos:pos + 16])
        pkt = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        t = sec + frac / (1e9 if nano else 1e6)
        if linktype == 1:
            if struct.unpack('>H', pkt[12:14])[0] != 0x0800:
                continue
            ip = pkt[14:]
        elif linktype == 113:
            ip = pkt[16:]
        elif linktype == 276:
            ip = pkt[20:]
        else:
            raise ValueError('%s: link type %d not handled' % (path, linktype))
        if ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack('>H', ip[2:4])[0]
        src, dst = ip[12:16], ip[16:20]
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack('>HHI', tcp[:8])
        off = (tcp[12] >> 4) * 4
        flags = tcp[13]
        yield t, (src, sport), (dst, dport), seq, flags, tcp[off:]


class Stream:
    def __init__(self):
        self.isn = None
        self.segs = {}
        self.fin_time = None
        self.first_time = None
        self.times = []   # (offset, time) of segments with data

    def data(self):
        base = self.isn + 1 if self.isn is not None else min(self.segs) if self.segs else 0
        out = bytearray()
        for seq in sorted(self.segs, key=lambda s: (s - base) & 0xffffffff):
            rel = (seq - base) & 0xffffffff
            payload = self.segs[seq]
            if rel > len(out):
                raise ValueError('gap in stream')
            out += payload[len(out) - rel:]
        return bytes(out)


def connections(path):
    conns = {}
    order = []
    for t, src, dst, seq, flags, payload in read_pcap(path):
        if dst[1] == PORT:
            key, direction = src, 'ds'
        elif src[1] == PORT:
            key, direction = dst, 'sd'
        else:
            continue
        if key not in conns:
            conns[key] = {'ds': Stream(), 'sd': Stream(), 'syn': False, 'start': t}
            order.append(key)
        st = conns[key][direction]
        if flags & 0x02:
            st.isn = seq
            conns[key]['syn'] = True
        if payload:
            if st.first_time is None:
                st.first_time = t
            st.segs.setdefault(seq, payload)
            st.times.append(t)
        if flags & 0x01 and st.fin_time is None:
            st.fin_time = t
    return [conns[k] for k in order]


# ---- keys and crypto ----

def load_key(path):
    raw = open(path, 'rb').read()
    for loader in (serialization.load_pem_private_key, serialization.load_der_private_key):
        try:
            return loader(raw, password=None)
        except Exception:
            pass
    for loader in (serialization.load_pem_public_key, serialization.load_der_public_key):
        try:
            return loader(raw)
        except Exception:
            pass
    raise ValueError('%s: not a key' % path)


def read_keyfile(path):
    keys = {'devices': {}, 'sessions': {}}
    base = os.path.dirname(path)
    for line in open(path):
        line = line.split('#', 1)[0].split()
        if not line:
            continue
        if line[0] == 'server-private':
            keys['server_private'] = load_key(os.path.join(base, line[1]))
        elif line[0] == 'server-public':
            keys['server_public'] = load_key(os.path.join(base, line[1]))
        elif line[0] == 'device':
            keys['devices'][line[1]] = load_key(os.path.join(base, line[2]))
        elif line[0] == 'session':
            keys['sessions'][line[1]] = bytes.fromhex(line[2])
    return keys


def rsa_raw_private(key, block):
    n = key.private_numbers()
    size = (n.public_numbers.n.bit_length() + 7) // 8
    return pow(int.from_bytes(block, 'big'), n.d, n.public_numbers.n).to_bytes(size, 'big')


def rsa_raw_public(key, block):
    n = key.public_numbers() if hasattr(key, 'public_numbers') else key.public_key().public_numbers()
    size = (n.n.bit_length() + 7) // 8
    return pow(int.from_bytes(block, 'big'), n.e, n.n).to_bytes(size, 'big')


def unpad_type2(em):
    if em[0] != 0 or em[1] != 2:
        return None
    try:
        sep = em.index(0, 2)
    except ValueError:
        return None
    return em[sep + 1:] if sep >= 10 else None


def unpad_type1(em):
    if em[:2] != b'\x00\x01':
        return None
    sep = em.index(0, 2) if 0 in em[2:] else -1
    if sep < 10 or any(b != 0xff for b in em[2:sep]):
        return None
    return em[sep + 1:]


def aes_cbc_decrypt(key, iv, data):
    d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return d.update(data) + d.finalize()


def frames(data):
    out, pos = [], 0
    while pos + 2 <= len(data):
        n = struct.unpack('>H', data[pos:pos + 2])[0]
        if n == 0 or n % 16 or pos + 2 + n > len(data):
            raise ValueError('bad frame length %d at %d' % (n, pos))
        out.append(data[pos + 2:pos + 2 + n])
        pos += 2 + n
    if pos != len(data):
        raise ValueError('%d stray bytes after the frames' % (len(data) - pos))
    return out


def open_frames(key, iv, cts, first_unknown=False):
    """Decrypts frames with the IV rule; returns plaintexts (None when padding is bad). With first_unknown
    the first frame's block 1 is unknown: its plaintext starts at block 2."""
    res = []
    for i, ct in enumerate(cts):
        if i == 0 and first_unknown:
            p = aes_cbc_decrypt(key, ct[:16], ct[16:]) if len(ct) > 16 else b''
        else:
            p = aes_cbc_decrypt(key, iv, ct)
        iv = ct[:16]
        pad = p[-1] if p else 0
        if p and (1 <= pad <= 16 and p[-pad:] == bytes([pad]) * pad):
            res.append(p[:-pad])
        elif i == 0 and first_unknown:
            res.append(b'')
        else:
            res.append(None)
    return res


# ---- checks ----

class Check:
    def __init__(self, name):
        self.name = name
        self.ok = True

    def that(self, cond, what):
        if not cond:
            self.ok = False
            failures.append('%s: %s' % (self.name, what))
            print('  FAIL %s: %s' % (self.name, what))
        return cond


def handshake(c, conn, keys, device_id):
    """Checks N40 / B256 and returns (nonce, plaintext of B256 or None, R384 or None)."""
    sd, ds = conn['sd'].data(), conn['ds'].data()
    c.that(len(sd) >= 40, 'server sent at least the 40-byte nonce')
    nonce = sd[:40]
    b256 = ds[:256] if len(ds) >= 256 else None
    plain = None
    if b256 and 'server_private' in keys:
        plain = unpad_type2(rsa_raw_private(keys['server_private'], b256))
    r384 = sd[40:424] if len(sd) >= 424 else None
    return nonce, b256, plain, r384


def check_ok(c, conn, keys, device_id, findings):
    nonce, b256, plain, r384 = handshake(c, conn, keys, device_id)
    if not c.that(plain is not None, 'id block decrypts with the server private key'):
        return
    c.that(plain[:40] == nonce, 'id block echoes the nonce')
    c.that(plain[40:52].hex() == device_id, 'id block carries device %s' % device_id)
    c.that(len(plain) in (52, 214), 'id block plaintext is 52 or 214 bytes (%d)' % len(plain))
    dkey = keys['devices'][device_id]
    if len(plain) == 214:
        spki = dkey.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        c.that(plain[52:] == spki, 'the 162-byte key in the id block is the device key\'s public half')
    c.that(r384 is not None, 'session block present')
    e, sig = r384[:128], r384[128:]
    m = unpad_type2(rsa_raw_private(dkey, e))
    if not c.that(m is not None and len(m) == 40, 'E decrypts to 40 bytes with the device key'):
        return
    mac = hmac.new(m, e, hashlib.sha1).digest()
    c.that(unpad_type1(rsa_raw_public(keys['server_public'], sig)) == mac,
           'SIG recovers to 00 01 FF.. 00 || HMAC-SHA1(M, E) with the server public key')
    key, iv = m[:16], m[16:32]
    ds_frames = frames(conn['ds'].data()[256:])
    sd_frames = frames(conn['sd'].data()[424:])
    ds_plain = open_frames(key, iv, ds_frames)
    sd_plain = open_frames(key, iv, sd_frames)
    hello = ds_plain[0]
    # G1/G2 read the counter start big-endian, G3 (firmware 0.8) little-endian
    starts = ((m[32] << 8 | m[33]) + 1) & 0xffff, ((m[33] << 8 | m[32]) + 1) & 0xffff
    c.that(hello is not None and hello[:2] == b'\x50\x02' and hello[4:6] == b'\xb1\x68' and
           int.from_bytes(hello[2:4], 'big') in starts and len(hello) in (13, 15),
           'device Hello: NON POST /h, id M[32..33]+1 (either byte order), 13 or 15 bytes')
    c.that(len(hello or b'') == (13 if len(plain) == 52 else 15), 'Hello length matches the generation')
    shello = [p for p in sd_plain if p is not None and p[:2] == b'\x51\x02' and p[5:7] == b'\xb1\x68']
    c.that(len(shello) == 1 and shello[0][4] == 1, 'server Hello with token 1')
    got = set()
    if any(p is None for p in ds_plain):
        got.add('decrypt-error')
    last = None
    # G3 answers a Signal (CON PUT /s) with ACK 2.04 carrying its own next message id and the Signal's token
    signal_tokens = {p[4] for p in sd_plain if p is not None and len(p) >= 7 and p[0] == 0x41 and p[1] == 3 and
                     p[5:7] == b'\xb1\x73'}
    for p in ds_plain:
        if p is None:
            continue
        c.that(p[0] >> 6 == 1, 'device message is CoAP version 1')
        mtype, mid = (p[0] >> 4) & 3, p[2] << 8 | p[3]
        if (p[0] == 0x61 and p[1] == 0x44 and p[4] in signal_tokens and last is not None and
                mid == (last + 1) & 0xffff):
            last = mid
        elif mtype != 2:
            if last is not None and mid != (last + 1) & 0xffff:
                got.add('counter-error')
            last = mid
    for p in sd_plain:
        c.that(p is not None and p[0] >> 6 == 1, 'every cloud frame decrypts to CoAP')
    chunk_bad = any(p is not None and p[:2] == b'\x51\x80' for p in ds_plain)
    begun = any(p is not None and p[1] == 2 and p[5:7] == b'\xb1\x75' for p in sd_plain)
    # complete: the device acknowledges an UpdateDone with 2.04, or ends a fast OTA with its own UpdateDone
    done_ids = {p[2:4] for p in sd_plain if p is not None and p[1] == 3 and p[5:7] == b'\xb1\x75'}
    done = any(p is not None and ((p[0] >> 4 & 3) == 2 and p[1] == 0x44 and p[2:4] in done_ids or
                                  p[:2] == b'\x50\x03' and p[4:6] == b'\xb1\x75') for p in ds_plain)
    if chunk_bad:
        got.add('ota-chunk-error')
    if begun and not done:
        got.add('ota-incomplete')
    want = set() if findings == '-' else set(findings.split(','))
    c.that(got == want, 'findings %s, expected %s' % (sorted(got), sorted(want)))
    return ds_plain, sd_plain


def check(c, verdict, conn, keys, device_id, findings):
    sd, ds = conn['sd'].data(), conn['ds'].data()
    if verdict == 'ok':
        check_ok(c, conn, keys, device_id, findings)
    elif verdict == 'device-key-mismatch':
        nonce, b256, plain, r384 = handshake(c, conn, keys, device_id)
        c.that(plain is not None and plain[40:52].hex() == device_id, 'id block readable, right device')
        c.that(r384 is not None and len(sd) == 424, 'cloud sent the session block and nothing more')
        m = unpad_type2(rsa_raw_private(keys['devices'][device_id], r384[:128]))
        c.that(m is None, 'E does not decrypt with the key the device holds')
        c.that(unpad_type1(rsa_raw_public(keys['server_public'], r384[128:])) is not None,
               'SIG is genuine (recovers with the server public key)')
        if len(plain or b'') == 52:
            c.that(len(ds) > 256, 'early firmware sends frames after failing')
            c.that(conn['sd'].fin_time - conn['sd'].times[-1] >= 29, 'cloud closes after its 30 s Hello timeout')
        else:
            c.that(len(ds) == 256, 'later firmware sends nothing after the session block')
            c.that(conn['ds'].fin_time is not None and conn['ds'].fin_time - conn['sd'].times[-1] < 2,
                   'later firmware closes at once')
    elif verdict in ('server-key-mismatch', 'unknown-device'):
        nonce, b256, plain, r384 = handshake(c, conn, keys, device_id)
        c.that(len(sd) == 40 and len(ds) == 256, 'nonce and id block, then nothing')
        c.that(conn['sd'].fin_time is not None and conn['sd'].fin_time - conn['ds'].times[-1] < 1,
               'cloud closes at once')
        if verdict == 'server-key-mismatch':
            c.that(plain is None, 'id block does not decrypt with the server private key')
        else:
            c.that(plain is not None and plain[:40] == nonce and plain[40:52].hex() == device_id,
                   'id block decrypts, echoes the nonce and names %s' % device_id)
    elif verdict == 'bad-signature':
        nonce, b256, plain, r384 = handshake(c, conn, keys, device_id)
        m = unpad_type2(rsa_raw_private(keys['devices'][device_id], r384[:128]))
        c.that(m is not None and len(m) == 40, 'E decrypts with the device key')
        c.that(unpad_type1(rsa_raw_public(keys['server_public'], r384[128:])) is None,
               'SIG does not recover to a type 1 block with the server public key')
        c.that(len(ds) == 256, 'device sends nothing after the session block')
    elif verdict == 'not-spark':
        c.that(sd.startswith(b'HTTP/1.'), 'the peer answers with HTTP')
        c.that(len(ds) == 256, 'device took the first 40 bytes as a nonce and sent its id block')
    elif verdict == 'stalled':
        c.that(len(sd) == 40, 'only the nonce from the cloud')
        if len(ds) == 256:
            c.that(conn['ds'].fin_time - conn['ds'].times[-1] >= 19.5, 'device gives up after its 20 s timeout')
        else:
            c.that(len(ds) == 0, 'device sends nothing')
            c.that(conn['sd'].fin_time - conn['sd'].times[-1] >= 29.5, 'cloud gives up after its 30 s timeout')
    elif verdict == 'mid-session':
        c.that(not conn['syn'], 'capture starts after the connection opened')
        m = keys['sessions'][device_id]
        for name in ('ds', 'sd'):
            fs = frames(conn[name].data())
            ps = open_frames(m[:16], None, fs, first_unknown=True)
            c.that(len(fs) >= 2 and all(p is not None for p in ps), '%s frames decrypt with the session line' % name)
            c.that(all(p[0] >> 6 == 1 for p in ps[1:]), '%s frames after the first are CoAP' % name)
    else:
        c.that(False, 'no check for verdict %s' % verdict)


def main():
    lines = open(os.path.join(SAMPLES, 'expected.tsv')).read().splitlines()
    header = lines[0].split('\t')
    if not header[:6] == ['scenario', 'capture', 'verdicts', 'device_ids', 'findings', 'verdicts_without_keys']:
        print('expected.tsv: unexpected header %r' % header)
        return 1
    for line in lines[1:]:
        scenario, capture, verdicts, ids, findings, _ = line.split('\t')
        c = Check(scenario)
        keys = read_keyfile(os.path.join(SAMPLES, scenario, 'keyfile'))
        conns = connections(os.path.join(SAMPLES, capture))
        verdicts, ids = verdicts.split(','), ids.split(',')
        if c.that(len(conns) == len(verdicts), '%d connections, expected %d' % (len(conns), len(verdicts))):
            for conn, v, i in zip(conns, verdicts, ids):
                try:
                    check(c, v, conn, keys, i, findings)
                except (ValueError, KeyError, TypeError, IndexError) as e:
                    c.that(False, 'cannot check %s: %s: %s' % (v, type(e).__name__, e))
        print('%s %s' % ('ok  ' if c.ok else 'FAIL', scenario))
    if failures:
        print('%d check(s) failed' % len(failures))
        return 1
    print('all samples match docs/protocol.md')
    return 0


sys.exit(main())
