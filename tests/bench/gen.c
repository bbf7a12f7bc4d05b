/* sparkwire-gen: writes a capture of N devices talking to a cloud, M session messages each, straight to a
 * pcap file (no sockets), with the keyfile and keys that decrypt it. Deterministic from a seed.
 *
 * The device side is the firmware core (firmware/core) run in memory: its HAL send/recv work on byte
 * queues and its clock is the simulated time of the connection. The cloud side is written here with
 * libkeyring (kr_hs_make_session_block, kr_cipher_*) and the firmware's CoAP builder. Every byte each
 * side hands to its transport becomes one TCP segment (split at the MSS) in an Ethernet/IPv4 frame with
 * sequence and acknowledgement numbers, SYN/FIN handshakes, pure ACKs for data not answered at once,
 * and timestamps from a simulated clock (capture point: the cloud host).
 *
 * OpenSSL's random source is replaced by a generator seeded from --seed, so RSA padding, key generation
 * and everything else come out the same on every run. RSA key generation is slow, so the device keys come
 * from a pool (--key-pool, default 16) shared by device ids round-robin.
 *
 * usage: sparkwire-gen -o DIR [-n DEVICES] [-m MESSAGES] [-s SEED] [--key-pool K] [--syn-only]
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1   /* RAND_set_rand_method: a seeded random source for repeatable output */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <keyring/keyring.h>

#include "coap.h"
#include "device.h"

/* ---- seeded random numbers (xoshiro256**; test data only, never keys anyone relies on) ---------- */

static uint64_t rng_s[4];

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
    rng_s[2] ^= rng_s[0];
    rng_s[3] ^= rng_s[1];
    rng_s[1] ^= rng_s[2];
    rng_s[0] ^= rng_s[3];
    rng_s[2] ^= t;
    rng_s[3] = rotl(rng_s[3], 45);
    return r;
}

static void rng_seed(uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng_s[i] = splitmix(&seed);
}

static void rng_bytes(uint8_t *buf, size_t len)
{
    while (len) {
        uint64_t r = rng_next();
        size_t n = len < 8 ? len : 8;
        memcpy(buf, &r, n);
        buf += n;
        len -= n;
    }
}

static double rng_uniform(double lo, double hi)
{
    return lo + (hi - lo) * ((double)(rng_next() >> 11) / 9007199254740992.0);
}

static unsigned rng_below(unsigned n)
{
    return (unsigned)(rng_next() % n);
}

static int det_bytes(unsigned char *buf, int num)
{
    rng_bytes(buf, (size_t)num);
    return 1;
}
static int det_seed(const void *buf, int num) { (void)buf; (void)num; return 1; }
static int det_add(const void *buf, int num, double e) { (void)buf; (void)num; (void)e; return 1; }
static int det_status(void) { return 1; }
static const RAND_METHOD det_rand = { det_seed, det_bytes, NULL, det_add, det_bytes, det_status };

/* ---- output ---------------------------------------------------------------------------------------- */

static FILE *pcap;
static FILE *sessions;       /* DIR/sessions: the keyfile session line of every connection */
static kr_session_lines *session_lines;   /* libkeyring's writer of those lines */
static uint64_t n_packets, n_bytes;
static const char *prog = "sparkwire-gen";

static void die(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(2);
}

static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xffff); }

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

#define MSS 1448
#define CLOUD_PORT 5683

typedef struct endpoint {
    uint8_t mac[6];
    uint8_t ip[4];
    uint16_t port;
} endpoint;

static uint16_t ip_ident;

/* One Ethernet + IPv4 + TCP frame. */
static void write_frame(double t, const endpoint *src, const endpoint *dst, uint32_t seq, uint32_t ack,
                        uint8_t flags, const uint8_t *data, size_t len)
{
    uint8_t f[14 + 20 + 24 + MSS];
    size_t optlen = (flags & 0x02) ? 4 : 0;   /* MSS option on SYN and SYN-ACK */
    size_t iplen = 20 + 20 + optlen + len;
    memcpy(f, dst->mac, 6);
    memcpy(f + 6, src->mac, 6);
    put16(f + 12, 0x0800);
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, (unsigned)iplen);
    put16(ip + 4, ip_ident++);
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 6;
    put16(ip + 10, 0);
    memcpy(ip + 12, src->ip, 4);
    memcpy(ip + 16, dst->ip, 4);
    put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
    uint8_t *tcp = ip + 20;
    put16(tcp, src->port);
    put16(tcp + 2, dst->port);
    put32(tcp + 4, seq);
    put32(tcp + 8, (flags & 0x10) ? ack : 0);
    tcp[12] = (uint8_t)(((20 + optlen) / 4) << 4);
    tcp[13] = flags;
    put16(tcp + 14, 64240);
    put16(tcp + 16, 0);
    put16(tcp + 18, 0);
    if (optlen) {
        tcp[20] = 2;
        tcp[21] = 4;
        put16(tcp + 22, MSS);
    }
    if (len)
        memcpy(tcp + 20 + optlen, data, len);
    size_t tcplen = 20 + optlen + len;
    uint8_t pseudo[12];
    memcpy(pseudo, src->ip, 4);
    memcpy(pseudo + 4, dst->ip, 4);
    pseudo[8] = 0;
    pseudo[9] = 6;
    put16(pseudo + 10, (unsigned)tcplen);
    put16(tcp + 16, csum_fold(csum_add(csum_add(0, pseudo, 12), tcp, tcplen)));

    size_t caplen = 14 + iplen;
    double sec = floor(t);
    uint32_t rec[4] = { (uint32_t)sec, (uint32_t)((t - sec) * 1e6), (uint32_t)caplen, (uint32_t)caplen };
    if (rec[1] > 999999)
        rec[1] = 999999;
    fwrite(rec, sizeof rec, 1, pcap);
    fwrite(f, 1, caplen, pcap);
    n_packets++;
    n_bytes += caplen;
}

/* ---- a connection: the firmware core as the device, a small cloud, and its packets ---------------- */

typedef struct pkt {
    double t;
    uint8_t dir;      /* kr_dir */
    uint8_t flags;
    uint32_t seq, ack;
    uint16_t len;
    uint8_t *data;
} pkt;

typedef struct bytes {
    uint8_t *p;
    size_t len, cap, off;
} bytes;

static void bytes_put(bytes *b, const uint8_t *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            die("%s%s", "out of memory", "");
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void bytes_clear(bytes *b) { b->len = b->off = 0; }

typedef struct conn conn;

struct conn {
    unsigned idx;
    uint8_t dev_id[12];
    endpoint dev_ep, cloud_ep;
    uint32_t seq[2];            /* next sequence number per kr_dir */
    double now;                 /* simulated time, seconds */
    double start;
    double rtt;
    sw_device dev;
    const uint8_t *dev_der;
    size_t dev_der_len;
    const kr_key *dev_key;
    /* transport: bytes in flight towards each side, and the device's sends of this poll */
    bytes to_dev;               /* delivered to the device, read by its recv */
    bytes dev_out;              /* what the device sent during one poll */
    size_t dev_sends[64];
    int n_dev_sends;
    bytes to_cloud;             /* device bytes the cloud has not consumed yet */
    /* cloud */
    int phase;                  /* 0 nothing yet, 1 nonce sent, 2 session block sent, 3 session, 4 closed */
    kr_cipher *tx, *rx;
    uint16_t cloud_id;
    uint8_t cloud_token;
    uint32_t messages;          /* session messages after the Hellos, both directions */
    uint32_t target;
    bool hello_seen, server_hello_sent;
    /* packets waiting to be merged into the file */
    pkt *q;
    size_t qn, qhead, qcap;
    bool done;
};

static const uint8_t *server_spki;
static size_t server_spki_len;
static const kr_key *server_key;
static uint32_t opt_msgs = 10;

static void queue_pkt(conn *c, kr_dir dir, uint8_t flags, const uint8_t *data, size_t len)
{
    if (c->qn == c->qcap) {
        c->qcap = c->qcap ? c->qcap * 2 : 16;
        c->q = realloc(c->q, c->qcap * sizeof *c->q);
        if (!c->q)
            die("%s%s", "out of memory", "");
    }
    pkt *p = &c->q[c->qn++];
    p->t = c->now;
    p->dir = (uint8_t)dir;
    p->flags = flags;
    p->seq = c->seq[dir];
    p->ack = c->seq[!dir];
    p->len = (uint16_t)len;
    p->data = NULL;
    if (len) {
        p->data = malloc(len);
        if (!p->data)
            die("%s%s", "out of memory", "");
        memcpy(p->data, data, len);
    }
    c->seq[dir] += (uint32_t)len + ((flags & 0x03) ? 1 : 0);
}

/* One send of a side: segments of at most MSS bytes, PSH on the last. */
static void send_segments(conn *c, kr_dir dir, const uint8_t *data, size_t len)
{
    while (len) {
        size_t n = len > MSS ? MSS : len;
        queue_pkt(c, dir, (uint8_t)(0x10 | (n == len ? 0x08 : 0)), data, n);
        data += n;
        len -= n;
        c->now += 0.000005;
    }
}

static int hal_send(void *ctx, const uint8_t *buf, size_t len)
{
    conn *c = ctx;
    bytes_put(&c->dev_out, buf, len);
    if (c->n_dev_sends < 64)
        c->dev_sends[c->n_dev_sends++] = len;
    else
        c->dev_sends[63] += len;
    return 0;
}

static int hal_recv(void *ctx, uint8_t *buf, size_t len)
{
    conn *c = ctx;
    size_t avail = c->to_dev.len - c->to_dev.off;
    if (avail == 0)
        return 0;
    size_t n = avail < len ? avail : len;
    memcpy(buf, c->to_dev.p + c->to_dev.off, n);
    c->to_dev.off += n;
    if (c->to_dev.off == c->to_dev.len)
        bytes_clear(&c->to_dev);
    return (int)n;
}

static uint32_t hal_millis(void *ctx)
{
    conn *c = ctx;
    return (uint32_t)((c->now - c->start) * 1000.0);
}

static int hal_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    rng_bytes(buf, len);
    return 0;
}

static int fn_brew(void *user, const char *arg)
{
    (void)user;
    return (int)strlen(arg);
}

static const double var_temp = 21.5;
static const int32_t var_count = 42;
static const bool var_on = true;
static const char var_name[] = "bench";

/* The cloud sends one CoAP message (sealed into a frame). */
static void cloud_send(conn *c, const uint8_t *msg, int len)
{
    uint8_t frame[2 + 1024];
    if (len < 0)
        die("%s%s", "internal error: a cloud message did not build", "");
    int n = kr_cipher_encrypt(c->tx, msg, (size_t)len, frame, sizeof frame);
    if (n < 0)
        die("%s%s", "internal error: kr_cipher_encrypt failed", "");
    send_segments(c, KR_S2D, frame, (size_t)n);
    bytes_put(&c->to_dev, frame, (size_t)n);
    if (c->hello_seen && c->server_hello_sent)
        c->messages++;
}

static int cloud_build(conn *c, uint8_t *buf, size_t cap, uint8_t type, uint8_t code, const char *p1,
                       const char *p2, const char *query, bool token)
{
    sw_coap_builder b;
    uint8_t tok = ++c->cloud_token;
    uint16_t id = type == SW_COAP_ACK ? 0 : ++c->cloud_id;
    sw_coap_begin(&b, buf, cap, type, code, id, token ? &tok : NULL, token ? 1 : 0);
    if (p1)
        sw_coap_add_option(&b, SW_OPT_URI_PATH, p1, strlen(p1));
    if (p2)
        sw_coap_add_option(&b, SW_OPT_URI_PATH, p2, strlen(p2));
    if (query)
        sw_coap_add_option(&b, SW_OPT_URI_QUERY, query, strlen(query));
    return sw_coap_end(&b);
}

/* The cloud reads what the device sent and answers like the reference cloud: server Hello after the
 * device Hello, ACK 2.05 + time to a time request, empty ACKs to events and pings. Returns true when it
 * sent something. */
static bool cloud_process(conn *c)
{
    bool sent = false;
    bytes *in = &c->to_cloud;
    for (;;) {
        size_t avail = in->len - in->off;
        const uint8_t *p = in->p + in->off;
        if (c->phase == 1) {
            if (avail < KR_IDBLOCK_LEN)
                break;
            in->off += KR_IDBLOCK_LEN;
            /* The cloud would open the id block; it knows who this is, so it goes on with the session block. */
            uint8_t m[KR_SESSION_LEN], block[KR_SESSIONBLOCK_LEN];
            rng_bytes(m, sizeof m);
            kr_err err = { "" };
            if (kr_hs_make_session_block(c->dev_key, server_key, m, block, &err) < 0)
                die("session block: %s%s", err.msg, "");
            char idhex[KR_DEVICE_ID_HEX_LEN + 1], line[KR_SESSION_LINE_MAX];
            uint8_t hint[KR_SESSION_HINT_LEN];
            if (!kr_session_hint(block, hint))
                die("session block: %s%s", "SHA-256 failed", "");
            kr_session_line(session_lines, kr_device_id_hex(c->dev_id, idhex), m, hint, line);
            fputs(line, sessions);
            c->now += 0.0015;   /* an RSA-2048 signature on the cloud */
            send_segments(c, KR_S2D, block, sizeof block);
            bytes_put(&c->to_dev, block, sizeof block);
            c->tx = kr_cipher_new(m, m + 16);
            c->rx = kr_cipher_new(m, m + 16);
            if (!c->tx || !c->rx)
                die("%s%s", "kr_cipher_new failed", "");
            c->cloud_id = (uint16_t)(1 + rng_below(65535));
            c->cloud_token = 0;
            c->phase = 2;
            sent = true;
            continue;
        }
        if (c->phase < 2 || avail < 2)
            break;
        size_t flen = (size_t)p[0] << 8 | p[1];
        if (avail < 2 + flen)
            break;
        in->off += 2 + flen;
        uint8_t pt[1024];
        size_t ptlen = 0, skip = 0;
        if (flen > sizeof pt || kr_cipher_decrypt(c->rx, p + 2, flen, pt, &ptlen, &skip) != KR_DEC_OK)
            die("%s%s", "internal error: a device frame does not decrypt on the cloud side", "");
        sw_coap_msg m;
        if (sw_coap_parse(pt, ptlen, &m) < 0)
            die("%s%s", "internal error: a device frame is not CoAP", "");
        if (c->hello_seen && c->server_hello_sent)
            c->messages++;
        uint8_t out[64];
        char letter = sw_coap_path_letter(&m);
        c->now += 0.0002;
        if (!c->hello_seen && m.code == SW_COAP_POST && letter == 'h') {
            c->hello_seen = true;
            int n = cloud_build(c, out, sizeof out, SW_COAP_NON, SW_COAP_POST, "h", NULL, NULL, true);
            cloud_send(c, out, n);
            c->server_hello_sent = true;
            c->phase = 3;
            sent = true;
        } else if (m.type == SW_COAP_CON && m.code == SW_COAP_GET && letter == 't') {
            uint8_t tm[4];
            put32(tm, (uint32_t)c->now);
            sw_coap_builder b;
            sw_coap_begin(&b, out, sizeof out, SW_COAP_ACK, SW_COAP_CONTENT, m.id, m.token, m.tkl);
            sw_coap_add_payload(&b, tm, 4);
            cloud_send(c, out, sw_coap_end(&b));
            sent = true;
        } else if ((m.code == SW_COAP_POST && (letter == 'e' || letter == 'E')) ||
                   (m.type == SW_COAP_CON && m.code == SW_COAP_EMPTY) ||
                   (m.type == SW_COAP_CON && m.code == SW_COAP_GET && letter == 'e')) {
            uint8_t ack[4] = { 0x60, 0x00, (uint8_t)(m.id >> 8), (uint8_t)m.id };
            cloud_send(c, ack, 4);
            sent = true;
        }
    }
    if (in->off == in->len)
        bytes_clear(in);
    return sent;
}

/* What the device sent since the last flush becomes segments and reaches the cloud. */
static bool device_flush(conn *c)
{
    if (c->n_dev_sends == 0)
        return false;
    size_t off = 0;
    for (int i = 0; i < c->n_dev_sends; i++) {
        send_segments(c, KR_D2S, c->dev_out.p + off, c->dev_sends[i]);
        off += c->dev_sends[i];
    }
    bytes_put(&c->to_cloud, c->dev_out.p, c->dev_out.len);
    c->dev_out.len = 0;
    c->n_dev_sends = 0;
    return true;
}

/* Runs the device once: it reads what was delivered and answers. */
static bool device_poll(conn *c)
{
    sw_status st = sw_device_poll(&c->dev);
    if (st < 0)
        die("internal error: the firmware core stopped: %s%s", sw_status_text(st), "");
    return device_flush(c);
}

/* Both sides answer each other until neither has anything to say. last_dir is the side that spoke last
 * before this call; a side that received data and does not answer sends a pure ACK. */
static void converse(conn *c, kr_dir last)
{
    for (int rounds = 0; rounds < 64; rounds++) {
        if (last == KR_S2D) {
            /* the answer arrives one round trip later; RSA on the device takes a while */
            c->now += c->rtt + (c->dev.step < SW_STEP_HELLO ? rng_uniform(0.2, 0.6) : 0.001);
            if (!device_poll(c)) {
                queue_pkt(c, KR_D2S, 0x10, NULL, 0);    /* the device's ACK reaches the cloud */
                return;
            }
            last = KR_D2S;
        } else {
            if (!cloud_process(c)) {
                c->now += 0.04;                          /* delayed ACK */
                queue_pkt(c, KR_S2D, 0x10, NULL, 0);
                return;
            }
            last = KR_S2D;
        }
    }
}

static conn *conns;
static unsigned n_conns;

static void conn_init(conn *c, unsigned idx, double start, const uint8_t id[12], const uint8_t *der,
                      size_t der_len, const kr_key *dkey, int generation)
{
    memset(c, 0, sizeof *c);
    c->idx = idx;
    memcpy(c->dev_id, id, sizeof c->dev_id);
    c->start = c->now = start;
    c->rtt = rng_uniform(0.02, 0.12);
    c->dev_der = der;
    c->dev_der_len = der_len;
    c->dev_key = dkey;
    c->target = opt_msgs;
    uint8_t devmac[6] = { 0x02, 0x5c, (uint8_t)(idx >> 24), (uint8_t)(idx >> 16), (uint8_t)(idx >> 8), (uint8_t)idx };
    uint8_t cloudmac[6] = { 0x02, 0xc1, 0x0d, 0x00, 0x00, 0x01 };
    memcpy(c->dev_ep.mac, devmac, 6);
    memcpy(c->cloud_ep.mac, cloudmac, 6);
    uint8_t devip[4] = { 10, (uint8_t)(1 + (idx >> 16)), (uint8_t)(idx >> 8), (uint8_t)(idx & 0xff) };
    uint8_t cloudip[4] = { 10, 0, 0, 1 };
    memcpy(c->dev_ep.ip, devip, 4);
    memcpy(c->cloud_ep.ip, cloudip, 4);
    c->dev_ep.port = (uint16_t)(32768 + rng_below(28000));
    c->cloud_ep.port = CLOUD_PORT;
    c->seq[KR_D2S] = (uint32_t)rng_next();
    c->seq[KR_S2D] = (uint32_t)rng_next();

    sw_device_config cfg;
    sw_device_defaults(&cfg, generation);
    memcpy(cfg.device_id, id, 12);
    cfg.private_key = der;
    cfg.private_key_len = der_len;
    cfg.server_key = server_spki;
    cfg.server_key_len = server_spki_len;
    cfg.platform_id = generation == 1 ? 0 : 6;
    cfg.send_time_request = true;
    sw_hal hal = { c, hal_send, hal_recv, hal_millis, hal_random };
    sw_device_init(&c->dev, &cfg, &hal);
    sw_device_function(&c->dev, "brew", fn_brew, NULL);
    sw_device_variable(&c->dev, "temp", SW_VAR_DOUBLE, &var_temp);
    sw_device_variable(&c->dev, "count", SW_VAR_INT, &var_count);
    sw_device_variable(&c->dev, "on", SW_VAR_BOOL, &var_on);
    sw_device_variable(&c->dev, "name", SW_VAR_STRING, var_name);
}

/* Adds the next exchange of a connection to its queue. */
static void conn_advance(conn *c)
{
    uint8_t msg[128];
    switch (c->phase) {
    case 0:   /* TCP handshake, then the nonce */
        queue_pkt(c, KR_D2S, 0x02, NULL, 0);
        c->now += 0.00005;
        queue_pkt(c, KR_S2D, 0x12, NULL, 0);
        c->now += c->rtt;
        queue_pkt(c, KR_D2S, 0x10, NULL, 0);
        sw_device_start(&c->dev);
        c->now += 0.0003;
        {
            uint8_t nonce[KR_NONCE_LEN];
            rng_bytes(nonce, sizeof nonce);
            send_segments(c, KR_S2D, nonce, sizeof nonce);
            bytes_put(&c->to_dev, nonce, sizeof nonce);
        }
        c->phase = 1;
        converse(c, KR_S2D);
        return;
    case 3: {   /* the session: one action, answered */
        if (c->messages >= c->target) {
            /* the device closes; the cloud closes its side */
            c->now += rng_uniform(0.1, 1.0);
            sw_device_stop(&c->dev);
            (void)sw_device_poll(&c->dev);
            queue_pkt(c, KR_D2S, 0x11, NULL, 0);
            c->now += 0.0001;
            queue_pkt(c, KR_S2D, 0x11, NULL, 0);
            c->now += c->rtt;
            queue_pkt(c, KR_D2S, 0x10, NULL, 0);
            c->phase = 4;
            c->done = true;
            return;
        }
        c->now += rng_uniform(0.3, 2.0);
        unsigned what = rng_below(100);
        if (what < 40) {
            char data[32];
            int dl = snprintf(data, sizeof data, "%u.%u", 15 + rng_below(15), rng_below(10));
            if (sw_device_publish(&c->dev, rng_below(2) ? "bench/temp" : "bench/door", (const uint8_t *)data,
                                  (size_t)dl, 60, rng_below(4) == 0) < 0) {
                c->now += 1.0;   /* rate limit: later */
                return;
            }
            device_flush(c);
            converse(c, KR_D2S);
            return;
        }
        int n;
        if (what < 55)
            n = cloud_build(c, msg, sizeof msg, SW_COAP_CON, SW_COAP_POST, "f", "brew", "coffee", true);
        else if (what < 70) {
            static const char *vars[] = { "temp", "count", "on", "name" };
            n = cloud_build(c, msg, sizeof msg, SW_COAP_CON, SW_COAP_GET, "v", vars[rng_below(4)], NULL, true);
        } else if (what < 80)
            n = cloud_build(c, msg, sizeof msg, SW_COAP_CON, SW_COAP_GET, "d", NULL, NULL, true);
        else if (what < 90)
            n = cloud_build(c, msg, sizeof msg, SW_COAP_NON, SW_COAP_POST, "e", "bench/cmd", NULL, false);
        else
            n = cloud_build(c, msg, sizeof msg, SW_COAP_CON, SW_COAP_EMPTY, NULL, NULL, NULL, false);
        cloud_send(c, msg, n);
        converse(c, KR_S2D);
        return;
    }
    default:
        die("%s%s", "internal error: connection in an unexpected phase", "");
    }
}

/* ---- merge: a heap of connections ordered by their next packet's time ----------------------------- */

static unsigned *heap;
static unsigned heap_n;

static double key_of(unsigned i)
{
    const conn *c = &conns[i];
    return c->q[c->qhead].t;
}

static void heap_swap(unsigned a, unsigned b)
{
    unsigned t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
}

static void heap_up(unsigned i)
{
    while (i > 0) {
        unsigned p = (i - 1) / 2;
        if (key_of(heap[p]) <= key_of(heap[i]))
            break;
        heap_swap(p, i);
        i = p;
    }
}

static void heap_down(unsigned i)
{
    for (;;) {
        unsigned l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_n && key_of(heap[l]) < key_of(heap[m]))
            m = l;
        if (r < heap_n && key_of(heap[r]) < key_of(heap[m]))
            m = r;
        if (m == i)
            break;
        heap_swap(i, m);
        i = m;
    }
}

static void write_pkt(conn *c, const pkt *p)
{
    const endpoint *src = p->dir == KR_D2S ? &c->dev_ep : &c->cloud_ep;
    const endpoint *dst = p->dir == KR_D2S ? &c->cloud_ep : &c->dev_ep;
    write_frame(p->t, src, dst, p->seq, p->ack, p->flags, p->data, p->len);
}

/* ---- keys ------------------------------------------------------------------------------------------ */

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die("%s: cannot write (%s)", path, strerror(errno));
}

static EVP_PKEY *gen_rsa(unsigned bits)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *k = NULL;
    if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits) <= 0 ||
        EVP_PKEY_keygen(ctx, &k) <= 0)
        die("%s%s", "RSA key generation failed", "");
    EVP_PKEY_CTX_free(ctx);
    return k;
}

typedef struct devkey {
    uint8_t *der;
    size_t len;
    kr_key *key;
} devkey;

static void usage(FILE *f)
{
    fprintf(f,
"usage: sparkwire-gen -o DIR [options]\n"
"Writes DIR/capture.pcap (Ethernet, IPv4, TCP 5683), DIR/keyfile, DIR/sessions and DIR/keys/: N devices, each with a full\n"
"handshake and M session messages, run by the firmware core against a simulated cloud. Same seed, same bytes.\n"
"  -o, --out DIR        output folder (created)\n"
"  -n, --devices N      devices, one connection each (default 2, at most 100000)\n"
"  -m, --messages M     session messages per connection after the Hellos, both directions (default 10)\n"
"  -s, --seed S         seed (default 1)\n"
"  -k, --key-pool K     distinct device keys, shared by the ids round-robin (default 16)\n"
"  -g, --g1-every E     every E-th device is early Core firmware (G1); 0: none (default 4)\n"
"      --spread SEC     connections start over SEC seconds (default: 0.05 s apart)\n"
"      --syn-only       connections that stop after SYN, SYN-ACK, ACK and the nonce (open forever);\n"
"                       with -n up to 1000000, for memory measurements\n"
"  -h, --help           this text\n");
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    unsigned long n_dev = 2, seed = 1, pool = 16, g1_every = 4;
    double spread = -1;
    bool syn_only = false;
    static const struct option lo[] = {
        { "out", required_argument, NULL, 'o' }, { "devices", required_argument, NULL, 'n' },
        { "messages", required_argument, NULL, 'm' }, { "seed", required_argument, NULL, 's' },
        { "key-pool", required_argument, NULL, 'k' }, { "g1-every", required_argument, NULL, 'g' },
        { "spread", required_argument, NULL, 'S' }, { "syn-only", no_argument, NULL, 'Y' },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
    int ch;
    while ((ch = getopt_long(argc, argv, "o:n:m:s:k:g:h", lo, NULL)) != -1) {
        char *end = NULL;
        errno = 0;
        unsigned long v = optarg ? strtoul(optarg, &end, 10) : 0;
        bool bad = optarg && (errno || !*optarg || *end);
        switch (ch) {
        case 'o': out = optarg; bad = false; break;
        case 'n': n_dev = v; bad = bad || v < 1 || v > 1000000; break;
        case 'm': opt_msgs = (uint32_t)v; bad = bad || v > 10000000; break;
        case 's': seed = v; break;
        case 'k': pool = v; bad = bad || v < 1 || v > 1024; break;
        case 'g': g1_every = v; break;
        case 'S': spread = strtod(optarg, &end); bad = !*optarg || *end || spread < 0; break;
        case 'Y': syn_only = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad)
            die("option -%s: bad value '%s' (see --help)", (char[]){ (char)ch, 0 }, optarg);
    }
    if (!out || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!syn_only && n_dev > 100000)
        die("-n: at most 100000 devices with full sessions (more only with --syn-only)%s%s", "", "");
    rng_seed(seed);
    RAND_set_rand_method(&det_rand);

    char path[4096];
    if (mkdir(out, 0755) < 0 && errno != EEXIST)
        die("%s: cannot create (%s)", out, strerror(errno));
    snprintf(path, sizeof path, "%s/keys", out);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        die("%s: cannot create (%s)", path, strerror(errno));

    /* keys: the cloud's RSA 2048 pair and a pool of RSA 1024 device keys laid out as devices read them */
    EVP_PKEY *spk = gen_rsa(2048);
    uint8_t *spki = NULL;
    int spki_len = i2d_PUBKEY(spk, &spki);
    if (spki_len <= 0)
        die("%s%s", "cannot encode the server public key", "");
    server_spki = spki;
    server_spki_len = (size_t)spki_len;
    snprintf(path, sizeof path, "%s/keys/server-public.der", out);
    write_file(path, spki, (size_t)spki_len);
    snprintf(path, sizeof path, "%s/keys/server-private.pem", out);
    FILE *f = fopen(path, "w");
    if (!f || !PEM_write_PrivateKey(f, spk, NULL, NULL, 0, NULL, NULL) || fclose(f) != 0)
        die("%s: cannot write%s", path, "");
    kr_err err = { "" };
    EVP_PKEY_up_ref(spk);
    kr_key *skey = kr_key_from_pkey(spk, "server-private.pem", &err);
    if (!skey)
        die("server key: %s%s", err.msg, "");
    server_key = skey;

    if (syn_only)
        pool = 0;
    else if (pool > n_dev)
        pool = n_dev;
    devkey *keys = calloc(pool ? pool : 1, sizeof *keys);
    for (unsigned long k = 0; k < pool; k++) {
        for (;;) {
            EVP_PKEY *dk = gen_rsa(1024);
            uint8_t *der = NULL;
            int len = i2d_PrivateKey(dk, &der);
            EVP_PKEY_free(dk);
            if (len > 0 && kr_key_device_layout_ok(der, (size_t)len, NULL, 0)) {
                keys[k].der = der;
                keys[k].len = (size_t)len;
                break;
            }
            OPENSSL_free(der);   /* a number shorter than nominal: devices misread such keys */
        }
        char name[64];
        snprintf(name, sizeof name, "device-%02lu.der", k);
        snprintf(path, sizeof path, "%s/keys/%s", out, name);
        write_file(path, keys[k].der, keys[k].len);
        keys[k].key = kr_key_load_mem(keys[k].der, keys[k].len, name, &err);
        if (!keys[k].key)
            die("device key: %s%s", err.msg, "");
    }

    snprintf(path, sizeof path, "%s/keyfile", out);
    FILE *kf = fopen(path, "w");
    if (!kf)
        die("%s: cannot write (%s)", path, strerror(errno));
    fprintf(kf, "# sparkwire-gen: %lu devices x %u messages, seed %lu%s\n", n_dev, opt_msgs, seed,
            syn_only ? ", handshakes stop after the nonce" : "");
    fprintf(kf, "server-private  keys/server-private.pem\nserver-public   keys/server-public.der\n");

    snprintf(path, sizeof path, "%s/capture.pcap", out);
    pcap = fopen(path, "wb");
    if (!pcap)
        die("%s: cannot write (%s)", path, strerror(errno));
    static char fbuf[1 << 20];
    setvbuf(pcap, fbuf, _IOFBF, sizeof fbuf);
    uint32_t gh[6] = { 0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1 /* Ethernet */ };
    fwrite(gh, sizeof gh, 1, pcap);

    double t0 = 1700000000.0 + (double)(seed % 100000);
    double gap = spread >= 0 ? (n_dev > 1 ? spread / (double)(n_dev - 1) : 0) : 0.05;

    if (syn_only) {
        /* SYN, SYN-ACK, ACK, nonce, the device's ACK: connections left open mid-handshake. */
        fclose(kf);
        for (unsigned long i = 0; i < n_dev; i++) {
            endpoint d = { { 0x02, 0x5c, (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i },
                           { 10, (uint8_t)(1 + (i >> 16)), (uint8_t)(i >> 8), (uint8_t)i }, (uint16_t)(32768 + rng_below(28000)) };
            endpoint s = { { 0x02, 0xc1, 0x0d, 0, 0, 1 }, { 10, 0, 0, 1 }, CLOUD_PORT };
            uint32_t cs = (uint32_t)rng_next(), ss = (uint32_t)rng_next();
            double t = t0 + (double)i * (spread >= 0 ? gap : 0.0005);
            uint8_t nonce[KR_NONCE_LEN];
            rng_bytes(nonce, sizeof nonce);
            write_frame(t, &d, &s, cs, 0, 0x02, NULL, 0);
            write_frame(t + 0.00005, &s, &d, ss, cs + 1, 0x12, NULL, 0);
            write_frame(t + 0.0001, &d, &s, cs + 1, ss + 1, 0x10, NULL, 0);
            write_frame(t + 0.0003, &s, &d, ss + 1, cs + 1, 0x18, nonce, sizeof nonce);
            write_frame(t + 0.0004, &d, &s, cs + 1, ss + 41, 0x10, NULL, 0);
        }
    } else {
        snprintf(path, sizeof path, "%s/sessions", out);
        /* session material is secret: 0600, and never through a link */
        int sfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        sessions = sfd >= 0 && fchmod(sfd, 0600) == 0 ? fdopen(sfd, "w") : NULL;
        session_lines = kr_session_lines_new();
        if (!sessions || !session_lines)
            die("%s: cannot write (%s)", path, strerror(errno));
        fprintf(sessions, "# sparkwire-gen: the session material of every connection (decrypts without RSA)\n");
        n_conns = (unsigned)n_dev;
        conns = calloc(n_conns, sizeof *conns);
        heap = calloc(n_conns, sizeof *heap);
        if (!conns || !heap)
            die("%s%s", "out of memory", "");
        for (unsigned i = 0; i < n_conns; i++) {
            uint8_t id[12];
            rng_bytes(id, 8);
            id[0] = 0x5a;
            id[1] = 0xff;
            put32(id + 8, i);
            const devkey *k = &keys[i % pool];
            char hex[KR_DEVICE_ID_HEX_LEN + 1];
            fprintf(kf, "device  %s  keys/device-%02lu.der\n", kr_device_id_hex(id, hex), (unsigned long)(i % pool));
            double start = t0 + (double)i * gap + rng_uniform(0, gap / 2);
            int gen = g1_every && i % g1_every == g1_every - 1 ? 1 : 2;
            conn_init(&conns[i], i, start, id, k->der, k->len, k->key, gen);
            conn_advance(&conns[i]);
            heap[heap_n++] = i;
            heap_up(heap_n - 1);
        }
        if (fclose(kf) != 0)
            die("%s: write failed%s", "keyfile", "");
        while (heap_n) {
            conn *c = &conns[heap[0]];
            pkt *p = &c->q[c->qhead++];
            write_pkt(c, p);
            free(p->data);
            if (c->qhead == c->qn) {
                c->qhead = c->qn = 0;
                while (!c->done && c->qn == 0)
                    conn_advance(c);
            }
            if (c->qn == 0) {
                kr_cipher_free(c->tx);
                kr_cipher_free(c->rx);
                free(c->q);
                free(c->to_dev.p);
                free(c->to_cloud.p);
                free(c->dev_out.p);
                c->q = NULL;
                heap[0] = heap[--heap_n];
            }
            if (heap_n)
                heap_down(0);
        }
        free(conns);
        free(heap);
        kr_session_lines_free(session_lines);
        if (fclose(sessions) != 0)
            die("%s: write failed%s", "sessions", "");
    }
    if (fflush(pcap) != 0 || fclose(pcap) != 0)
        die("%s: write failed (%s)", "capture.pcap", strerror(errno));
    fprintf(stderr, "%s: %s/capture.pcap: %llu packets, %llu bytes, %lu connections; keys: 1 server, %lu device%s\n",
            prog, out, (unsigned long long)n_packets, (unsigned long long)n_bytes, n_dev, pool,
            pool == 1 ? "" : "s");
    for (unsigned long k = 0; k < pool; k++) {
        kr_key_free(keys[k].key);
        OPENSSL_free(keys[k].der);
    }
    free(keys);
    kr_key_free(skey);
    EVP_PKEY_free(spk);
    OPENSSL_free(spki);
    return 0;
}
