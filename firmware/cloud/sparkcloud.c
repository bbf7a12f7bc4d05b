/* sparkcloud: a lab cloud for the Spark Core protocol. It speaks the server side of docs/protocol.md on
 * loopback so that sparkdev (or a real device pointed at it) can be exercised and captured, including
 * the server-side faults a diagnosis has to tell apart. One process per connection (fork). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "coap.h"
#include "crc32.h"
#include "crypto_port.h"
#include "frame.h"
#include "keyfile.h"
#include "util.h"

#define MAX_STEPS 16
#define MAX_DEVKEYS 16
#define CHUNK 256
#define SW_NONCE_LEN 40

enum step_kind { S_DESCRIBE, S_CALL, S_READ, S_SIGNAL, S_OTA, S_EVENT };

typedef struct step {
    enum step_kind kind;
    char name[64];
    char arg[256];
} step;

static struct {
    char host[256], port[16];
    sw_keybuf server_key, sign_key, wrong_key;
    bool have_sign_key, have_wrong_key, no_hello;
    const char *server_key_path, *keys_dir;
    struct { char id[25]; sw_keybuf key; } devkeys[MAX_DEVKEYS];
    size_t ndevkeys;
    enum { M_NORMAL, M_CAPTIVE, M_STALL } mode;
    unsigned long connections;
    uint64_t time_limit_ms, id_timeout_ms, hello_timeout_ms, handshake_timeout_ms, reply_timeout_ms,
        ota_timeout_ms, session_ms, script_delay_ms;
    bool session_ms_set;
    step steps[MAX_STEPS];
    size_t nsteps;
    long ota_bad_chunk;
    const char *session_log;
    uint8_t *ota_data;
    size_t ota_len;
} opt;

/* ---- one connection ---- */

typedef struct conn {
    int fd;
    int num;
    uint64_t accepted;
    sw_cipher cipher;
    uint8_t id[12];
    char id_hex[25];
    uint16_t next_id;       /* server message id counter */
    uint8_t token;          /* server token counter */
    uint16_t dev_id;        /* last device message id */
    char describe[700];
    bool closed;
    const char *outcome;
    /* what the running step waits for */
    uint8_t want_token;
    uint16_t want_id;
    int got;                /* set by dispatch when the awaited answer arrived: 1 ok, 2 refused */
    int32_t fn_result;
    uint8_t frame[2 + 65536];
    uint8_t plain[65536];
    size_t plain_len;
    uint8_t msg[2048];
} conn;

#define CLOG(c, ...) do { char _b[4096]; snprintf(_b, sizeof _b, __VA_ARGS__); sw_log("#%d %.4000s", (c)->num, _b); } while (0)

/* 1 ok, 0 timeout, -1 closed or error. */
static int read_exact(conn *c, uint8_t *buf, size_t n, uint64_t deadline)
{
    size_t got = 0;
    while (got < n) {
        uint64_t t = sw_now_ms();
        if (t >= deadline)
            return 0;
        int r = sw_wait_readable(c->fd, (int)(deadline - t > 1000 ? 1000 : deadline - t));
        if (r < 0)
            return -1;
        if (r == 0)
            continue;
        ssize_t k = recv(c->fd, buf + got, n - got, 0);
        if (k <= 0) {
            if (k < 0 && errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)k;
    }
    return 1;
}

static void end(conn *c, const char *outcome, const char *why)
{
    if (why)
        CLOG(c, "%s", why);
    /* A device closing after a finished handshake or update keeps that result (ok, ota-complete). */
    if (!(c->outcome && strcmp(outcome, "device-closed") == 0))
        c->outcome = outcome;
    c->closed = true;
}

static int send_msg(conn *c, const uint8_t *m, int len)
{
    if (len < 0)
        return -1;
    int n = sw_frame_seal(&c->cipher, m, (size_t)len, c->frame, sizeof c->frame);
    if (n < 0 || sw_send_all(c->fd, c->frame, (size_t)n) < 0) {
        end(c, "device-closed", "send failed: the device closed the connection");
        return -1;
    }
    return 0;
}

static uint16_t new_id(conn *c)
{
    return ++c->next_id;
}

static uint8_t new_token(conn *c)
{
    c->token = (uint8_t)(c->token >= 254 ? 0 : c->token + 1);
    return c->token;
}

/* Empty ACK as SP builds it: code 0.00 with a one-byte token 0x00. */
static int send_empty_ack(conn *c, uint16_t id, uint8_t code)
{
    uint8_t m[5] = {0x61, code, (uint8_t)(id >> 8), (uint8_t)id, 0x00};
    return send_msg(c, m, 5);
}

static void vis(const uint8_t *in, size_t len, char *out, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 5 < cap; i++) {
        if (in[i] >= 0x20 && in[i] < 0x7f && in[i] != '\\')
            out[j++] = (char)in[i];
        else
            j += (size_t)snprintf(out + j, cap - j, "\\x%02x", in[i]);
    }
    out[j] = 0;
}

/* Type number of a variable from the last Describe JSON, 0 when unknown. */
static int var_type(const conn *c, const char *name)
{
    const char *v = strstr(c->describe, "\"v\":{");
    if (v == NULL)
        return 0;
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *p = strstr(v, pat);
    if (p == NULL)
        return 0;
    return atoi(p + strlen(pat));
}

static void log_variable(conn *c, const char *name, const uint8_t *p, size_t n)
{
    int t = var_type(c, name);
    char text[600];
    if (t == 1 && n == 1) {
        snprintf(text, sizeof text, "%s (bool)", p[0] ? "true" : "false");
    } else if (t == 2 && n == 4) {
        int32_t v = (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]);
        snprintf(text, sizeof text, "%ld (int32)", (long)v);
    } else if (t == 9 && n == 8) {
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--)
            u = (u << 8) | p[i];
        double d;
        memcpy(&d, &u, 8);
        snprintf(text, sizeof text, "%.17g (double)", d);
    } else {
        char v[500];
        vis(p, n, v, sizeof v);
        snprintf(text, sizeof text, "\"%s\" (%s)", v, t == 4 ? "string" : "raw");
    }
    CLOG(c, "variable %s = %s", name, text);
}

/* Handles one device message; sets c->got when it answers the awaited request. */
static void dispatch(conn *c, const sw_coap_msg *m)
{
    char letter = sw_coap_path_letter(m);
    if (m->type != SW_COAP_ACK) {
        uint16_t want = (uint16_t)(c->dev_id + 1);
        if (m->id != want) {
            char why[120];
            snprintf(why, sizeof why, "bad counter: device message id 0x%04x, expected 0x%04x; closing", m->id, want);
            end(c, "bad-counter", why);
            return;
        }
        c->dev_id = m->id;
    }
    if (m->code == SW_COAP_EMPTY) {
        if (m->type == SW_COAP_CON) {
            CLOG(c, "ping from the device (id 0x%04x) answered", m->id);
            send_empty_ack(c, m->id, 0);
        } else if (m->type == SW_COAP_ACK && m->id == c->want_id) {
            c->got = 3;   /* empty ACK of a function call or chunk: the answer follows */
        }
        return;
    }
    if (m->type == SW_COAP_ACK) {
        if (m->tkl == 1 && m->token[0] == c->want_token && m->id == c->want_id)
            c->got = m->code == SW_COAP_CONTENT || m->code == SW_COAP_CHANGED ? 1 : 2;
        else
            CLOG(c, "unexpected ACK %d.%02d id 0x%04x, ignored", m->code >> 5, m->code & 31, m->id);
        return;
    }
    if (m->type == SW_COAP_NON && (m->code == SW_COAP_CHANGED || m->code == SW_COAP_BAD_REQUEST) && m->tkl == 1 &&
        m->token[0] == c->want_token) {
        c->got = m->code == SW_COAP_CHANGED ? 1 : 2;
        if (m->payload_len == 4)
            c->fn_result = (int32_t)(((uint32_t)m->payload[0] << 24) | ((uint32_t)m->payload[1] << 16) |
                                     ((uint32_t)m->payload[2] << 8) | m->payload[3]);
        return;
    }
    if (m->code == SW_COAP_GET && letter == 't') {
        uint32_t now = (uint32_t)time(NULL);
        uint8_t v[4] = {(uint8_t)(now >> 24), (uint8_t)(now >> 16), (uint8_t)(now >> 8), (uint8_t)now};
        sw_coap_builder b;
        sw_coap_begin(&b, c->msg, sizeof c->msg, SW_COAP_ACK, SW_COAP_CONTENT, m->id, m->token, m->tkl);
        sw_coap_add_payload(&b, v, 4);
        CLOG(c, "time request answered (%lu)", (unsigned long)now);
        send_msg(c, c->msg, sw_coap_end(&b));
        return;
    }
    if (m->code == SW_COAP_POST && (letter == 'e' || letter == 'E')) {
        const sw_coap_opt *name = sw_coap_find(m, SW_OPT_URI_PATH, 1);
        const sw_coap_opt *age = sw_coap_find(m, SW_OPT_MAX_AGE, 0);
        unsigned long ttl = 60;
        if (age) {
            ttl = 0;
            for (size_t i = 0; i < age->len && i < 4; i++)
                ttl = ttl << 8 | age->value[i];
        }
        char n[300], d[600];
        vis(name ? name->value : (const uint8_t *)"", name ? name->len : 0, n, sizeof n);
        vis(m->payload ? m->payload : (const uint8_t *)"", m->payload_len, d, sizeof d);
        CLOG(c, "event %s \"%s\" data \"%s\" ttl %lu, acknowledged", letter == 'e' ? "public" : "private", n, d, ttl);
        send_empty_ack(c, m->id, 0);
        return;
    }
    if (m->code == SW_COAP_GET && letter == 'e') {
        const sw_coap_opt *prefix = sw_coap_find(m, SW_OPT_URI_PATH, 1);
        char n[300];
        vis(prefix ? prefix->value : (const uint8_t *)"", prefix ? prefix->len : 0, n, sizeof n);
        CLOG(c, "subscription \"%s\" %s", n, prefix ? "accepted" : "refused (no prefix)");
        send_empty_ack(c, m->id, prefix ? 0 : SW_COAP_BAD_REQUEST);
        return;
    }
    if (m->code == SW_COAP_GET && letter == 'c') {
        CLOG(c, "device reports a missed chunk (ChunkMissed)");
        send_empty_ack(c, m->id, 0);
        c->got = 4;
        return;
    }
    if (m->code == SW_COAP_POST && letter == 'h') {
        CLOG(c, "second hello from the device, ignored");
        return;
    }
    CLOG(c, "message code %d.%02d type %d from the device, ignored", m->code >> 5, m->code & 31, m->type);
}

/* Reads one frame with a deadline: 1 message in c->plain (length *len), 2 frame ignored, 0 timeout,
 * -1 closed (c->closed set). */
static int read_frame(conn *c, uint64_t deadline, size_t *len)
{
    uint8_t h[2];
    int r = read_exact(c, h, 2, deadline);
    if (r <= 0) {
        if (r < 0)
            end(c, "device-closed", "the device closed the connection");
        return r;
    }
    size_t flen = (size_t)h[0] << 8 | h[1];
    if (flen == 0 || flen % 16) {
        char why[100];
        snprintf(why, sizeof why, "frame length %zu is not a multiple of 16; closing", flen);
        end(c, "bad-frame", why);
        return -1;
    }
    r = read_exact(c, c->frame, flen, sw_now_ms() + 20000);
    if (r <= 0) {
        end(c, "device-closed", "the device closed the connection inside a frame");
        return -1;
    }
    int n = sw_frame_open(&c->cipher, c->frame, flen, c->plain, sizeof c->plain);
    if (n < 0) {
        CLOG(c, "frame of %zu bytes does not decrypt with the session key, ignored", flen);
        return 2;
    }
    *len = (size_t)n;
    c->plain_len = (size_t)n;
    return 1;
}

/* Runs the session until cond (c->got != 0) or the deadline. Returns 1 got, 0 timeout, -1 closed. */
static int pump(conn *c, uint64_t deadline)
{
    c->got = 0;
    while (!c->closed) {
        size_t len = 0;
        int r = read_frame(c, deadline, &len);
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        if (r == 2)
            continue;
        sw_coap_msg m;
        if (sw_coap_parse(c->plain, len, &m) < 0) {
            CLOG(c, "decrypted frame is not a CoAP message, ignored");
            continue;
        }
        dispatch(c, &m);
        if (c->got && c->got != 3)
            return 1;
    }
    return -1;
}

/* Sends a request and waits for its answer. Returns what pump returns; c->got tells ok (1) or refused (2). */
static int request(conn *c, uint8_t type, uint8_t code, const char *p1, const char *p2, const void *q1,
                   size_t q1len, const void *payload, size_t plen, uint64_t timeout)
{
    uint8_t tok = new_token(c);
    uint16_t id = new_id(c);
    sw_coap_builder b;
    sw_coap_begin(&b, c->msg, sizeof c->msg, type, code, id, &tok, 1);
    sw_coap_add_option(&b, SW_OPT_URI_PATH, p1, strlen(p1));
    if (p2)
        sw_coap_add_option(&b, SW_OPT_URI_PATH, p2, strlen(p2));
    if (q1)
        sw_coap_add_option(&b, SW_OPT_URI_QUERY, q1, q1len);
    sw_coap_add_payload(&b, payload, plen);
    c->want_token = tok;
    c->want_id = id;
    if (send_msg(c, c->msg, sw_coap_end(&b)) < 0)
        return -1;
    return pump(c, sw_now_ms() + timeout);
}

static void run_ota(conn *c)
{
    size_t nchunks = (opt.ota_len + CHUNK - 1) / CHUNK;
    CLOG(c, "update begins: %zu bytes in %zu chunks of %d", opt.ota_len, nchunks, CHUNK);
    uint8_t tok = new_token(c);
    uint16_t id = new_id(c);
    uint8_t m[16] = {0x41, SW_COAP_POST, (uint8_t)(id >> 8), (uint8_t)id, tok, 0xb1, 'u'};
    c->want_token = tok;
    c->want_id = id;
    if (send_msg(c, m, 7) < 0)
        return;
    /* wait for the UpdateReady (NON 2.04 with our token) */
    int r = pump(c, sw_now_ms() + opt.ota_timeout_ms);
    if (r <= 0) {
        if (r == 0)
            end(c, "ota-failed", "update failed: no UpdateReady from the device; closing");
        return;
    }
    CLOG(c, "device ready for the update");
    bool corrupted = false;
    unsigned misses = 0;
    for (size_t i = 0; i < nchunks && !c->closed;) {
        uint8_t data[CHUNK];
        size_t n = opt.ota_len - i * CHUNK < CHUNK ? opt.ota_len - i * CHUNK : CHUNK;
        memset(data, 0, sizeof data);
        memcpy(data, opt.ota_data + i * CHUNK, n);
        uint32_t crc = sw_crc32(data, CHUNK);
        bool bad = opt.ota_bad_chunk >= 0 && (size_t)opt.ota_bad_chunk == i && !corrupted;
        if (bad) {
            crc ^= 0xA5A5A5A5u;
            corrupted = true;
        }
        uint8_t q[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
        CLOG(c, "chunk %zu sent (crc %08lx%s)", i, (unsigned long)crc, bad ? ", deliberately wrong" : "");
        r = request(c, SW_COAP_CON, SW_COAP_POST, "c", NULL, q, 4, data, CHUNK, opt.ota_timeout_ms);
        if (r < 0)
            return;
        if (r == 0) {
            char why[160];
            snprintf(why, sizeof why, "update failed: no ChunkReceived for chunk %zu within %llu ms; closing", i,
                     (unsigned long long)opt.ota_timeout_ms);
            end(c, "ota-failed", why);
            return;
        }
        if (c->got == 2 || c->got == 4) {
            CLOG(c, "chunk %zu: %s, sending it again", i, c->got == 2 ? "device reports a CRC error" : "missed");
            if (++misses > 10) {
                end(c, "ota-failed", "update failed: more than 10 chunk errors; closing");
                return;
            }
            continue;
        }
        i++;
    }
    r = request(c, SW_COAP_CON, SW_COAP_PUT, "u", NULL, NULL, 0, NULL, 0, opt.ota_timeout_ms);
    if (r == 1 && c->got == 1) {
        CLOG(c, "update done: device acknowledged, it restarts now");
        c->outcome = "ota-complete";
    } else if (r == 0) {
        end(c, "ota-failed", "update failed: UpdateDone not acknowledged; closing");
    }
}

static void run_session(conn *c)
{
    uint64_t hello_at = sw_now_ms();
    if (opt.script_delay_ms)
        pump(c, sw_now_ms() + opt.script_delay_ms);
    for (size_t i = 0; i < opt.nsteps && !c->closed; i++) {
        step *s = &opt.steps[i];
        int r;
        switch (s->kind) {
        case S_DESCRIBE: {
            r = request(c, SW_COAP_CON, SW_COAP_GET, "d", NULL, NULL, 0, NULL, 0, opt.reply_timeout_ms);
            sw_coap_msg m;
            if (r == 1 && c->got == 1 && sw_coap_parse(c->plain, c->plain_len, &m) == 0 && m.payload) {
                size_t n = m.payload_len < sizeof c->describe - 1 ? m.payload_len : sizeof c->describe - 1;
                memcpy(c->describe, m.payload, n);
                c->describe[n] = 0;
                char v[800];
                vis(m.payload, m.payload_len, v, sizeof v);
                CLOG(c, "describe: %s", v);
            } else if (r == 0) {
                CLOG(c, "no answer to describe in time");
            }
            break;
        }
        case S_CALL:
            r = request(c, SW_COAP_CON, SW_COAP_POST, "f", s->name, s->arg[0] ? s->arg : NULL, strlen(s->arg), NULL,
                        0, opt.reply_timeout_ms);
            if (r == 1)
                CLOG(c, "function %s(\"%s\") returned %ld", s->name, s->arg, (long)c->fn_result);
            else if (r == 0)
                CLOG(c, "no return from function %s in time", s->name);
            break;
        case S_READ:
            r = request(c, SW_COAP_CON, SW_COAP_GET, "v", s->name, NULL, 0, NULL, 0, opt.reply_timeout_ms);
            sw_coap_msg m;
            if (r == 1 && c->got == 1 && sw_coap_parse(c->plain, c->plain_len, &m) == 0)
                log_variable(c, s->name, m.payload ? m.payload : (const uint8_t *)"", m.payload_len);
            else if (r == 1)
                CLOG(c, "variable %s: the device refused (code %d.%02d)", s->name, m.code >> 5, m.code & 31);
            else if (r == 0)
                CLOG(c, "no answer for variable %s in time", s->name);
            break;
        case S_SIGNAL: {
            uint8_t on = 1;
            r = request(c, SW_COAP_CON, SW_COAP_PUT, "s", NULL, &on, 1, NULL, 0, opt.reply_timeout_ms);
            if (r == 1)
                CLOG(c, "signal acknowledged");
            break;
        }
        case S_EVENT: {
            sw_coap_builder b;
            sw_coap_begin(&b, c->msg, sizeof c->msg, SW_COAP_NON, SW_COAP_POST, new_id(c), NULL, 0);
            sw_coap_add_option(&b, SW_OPT_URI_PATH, "e", 1);
            char name[64];
            snprintf(name, sizeof name, "%s", s->name);
            for (char *seg = strtok(name, "/"); seg; seg = strtok(NULL, "/"))
                sw_coap_add_option(&b, SW_OPT_URI_PATH, seg, strlen(seg));
            sw_coap_add_payload(&b, s->arg, strlen(s->arg));
            CLOG(c, "event \"%s\" sent to the device", s->name);
            send_msg(c, c->msg, sw_coap_end(&b));
            r = 1;
            break;
        }
        case S_OTA:
            run_ota(c);
            r = 1;
            break;
        }
        (void)r;
    }
    if (c->closed)
        return;
    if (opt.session_ms_set) {
        uint64_t until = hello_at + opt.session_ms;
        while (!c->closed && sw_now_ms() < until)
            pump(c, until);
        if (!c->closed)
            end(c, c->outcome ? c->outcome : "ok", "session time over, closing");
    } else {
        while (!c->closed)
            pump(c, sw_now_ms() + 3600000);
    }
}

static const uint8_t *find_device_key(const char *id_hex, size_t *len, char *path, size_t pcap)
{
    static sw_keybuf kb;
    if (opt.have_wrong_key) {
        *len = opt.wrong_key.len;
        snprintf(path, pcap, "(--wrong-key)");
        return opt.wrong_key.der;
    }
    for (size_t i = 0; i < opt.ndevkeys; i++) {
        if (strcmp(opt.devkeys[i].id, id_hex) == 0) {
            *len = opt.devkeys[i].key.len;
            snprintf(path, pcap, "(--device-key or keyfile)");
            return opt.devkeys[i].key.der;
        }
    }
    if (opt.keys_dir == NULL)
        return NULL;
    snprintf(path, pcap, "%s/%s.pub.pem", opt.keys_dir, id_hex);
    if (access(path, F_OK) != 0)
        return NULL;
    if (sw_load_public_key(path, "device public key", &kb) < 0)
        return NULL;
    *len = kb.len;
    return kb.der;
}

static const char portal_page[] =
    "HTTP/1.1 302 Found\r\n"
    "Location: http://login.hotspot.example/portal?orig=device.spark.io%3A5683\r\n"
    "Content-Type: text/html\r\n"
    "Cache-Control: no-cache\r\n"
    "Connection: close\r\n"
    "Content-Length: 330\r\n"
    "\r\n"
    "<html><head><title>Guest network</title></head><body>\r\n"
    "<h1>Welcome to the guest network</h1>\r\n"
    "<p>Please accept the terms of use to continue.</p>\r\n"
    "<form method=\"post\" action=\"http://login.hotspot.example/accept\">\r\n"
    "<input type=\"checkbox\" name=\"terms\"> I agree<br>\r\n"
    "<input type=\"submit\" value=\"Connect\"></form>\r\n"
    "</body></html>\r\n";

static void handle(conn *c)
{
    uint64_t global = c->accepted + opt.handshake_timeout_ms;
    if (opt.mode == M_CAPTIVE) {
        CLOG(c, "captive portal: HTTP redirect sent instead of a nonce");
        sw_send_all(c->fd, (const uint8_t *)portal_page, sizeof portal_page - 1);
        uint8_t junk[512];
        uint64_t until = sw_now_ms() + 5000;
        size_t total = 0;
        while (sw_now_ms() < until) {
            int r = sw_wait_readable(c->fd, 100);
            if (r < 0)
                break;
            if (r == 0)
                continue;
            ssize_t k = recv(c->fd, junk, sizeof junk, 0);
            if (k <= 0)
                break;
            total += (size_t)k;
        }
        CLOG(c, "captive portal: %zu bytes from the device, closing", total);
        c->outcome = "not-spark";
        return;
    }
    uint8_t nonce[SW_NONCE_LEN];
    if (RAND_bytes(nonce, sizeof nonce) != 1 || sw_send_all(c->fd, nonce, sizeof nonce) < 0) {
        c->outcome = "device-closed";
        return;
    }
    CLOG(c, "nonce sent");
    if (opt.mode == M_STALL) {
        CLOG(c, "stalling: nothing more will be sent");
        uint8_t junk[512];
        size_t total = 0;
        for (;;) {
            uint64_t t = sw_now_ms();
            if (t >= global) {
                CLOG(c, "handshake not finished after %llu ms, closing", (unsigned long long)opt.handshake_timeout_ms);
                break;
            }
            int r = sw_wait_readable(c->fd, (int)(global - t > 1000 ? 1000 : global - t));
            if (r < 0)
                break;
            if (r == 0)
                continue;
            ssize_t k = recv(c->fd, junk, sizeof junk, 0);
            if (k <= 0) {
                CLOG(c, "the device closed the connection (%zu bytes received)", total);
                break;
            }
            total += (size_t)k;
        }
        c->outcome = "stalled";
        return;
    }
    uint8_t block[256];
    uint64_t dl = sw_now_ms() + opt.id_timeout_ms;
    int r = read_exact(c, block, sizeof block, dl < global ? dl : global);
    if (r == 0) {
        end(c, "id-timeout", "no id block in time (read_coreid timed out); closing");
        return;
    }
    if (r < 0) {
        end(c, "device-closed", "the device closed the connection before its id block");
        return;
    }
    uint8_t plain[256];
    size_t plen = 0;
    if (sw_crypto_rsa_private_decrypt(opt.server_key.der, opt.server_key.len, block, sizeof block, plain,
                                      sizeof plain, &plen) < 0) {
        end(c, "id-block-undecryptable",
            "id block does not decrypt with the server key (pkcs decoding error): the device holds another server "
            "public key; closing");
        return;
    }
    if (plen < 52) {
        char why[100];
        snprintf(why, sizeof why, "id block plaintext is %zu bytes, at least 52 expected; closing", plen);
        end(c, "id-block-too-short", why);
        return;
    }
    if (memcmp(plain, nonce, SW_NONCE_LEN) != 0) {
        end(c, "nonce-mismatch", "id block does not echo the nonce; closing");
        return;
    }
    memcpy(c->id, plain + 40, 12);
    sw_to_hex(c->id, 12, c->id_hex);
    CLOG(c, "id block: device %s, %zu bytes (%s)", c->id_hex, plen,
         plen == 52 ? "early firmware" : plen == 214 ? "offers its public key" : "unexpected length");
    char kpath[1200];
    size_t klen = 0;
    const uint8_t *dkey = find_device_key(c->id_hex, &klen, kpath, sizeof kpath);
    if (dkey == NULL) {
        char why[200];
        snprintf(why, sizeof why, "unknown device %s: no public key on file; closing", c->id_hex);
        end(c, "unknown-device", why);
        return;
    }
    if (plen == 214) {
        bool same = klen == 162 && memcmp(plain + 52, dkey, 162) == 0;
        const char *base = strrchr(kpath, '/');
        CLOG(c, "the public key the device offers %s the one on file %s", same ? "matches" : "differs from",
             base ? base + 1 : kpath);
    }
    uint8_t material[SW_SESSION_LEN], sblock[384], hmac[20];
    size_t elen = 0, slen = 0;
    if (RAND_bytes(material, sizeof material) != 1 ||
        sw_crypto_rsa_public_encrypt(dkey, klen, material, sizeof material, sblock, 128, &elen) < 0 || elen != 128) {
        end(c, "key-error", "device public key on file is not RSA 1024; closing");
        return;
    }
    const sw_keybuf *sk = opt.have_sign_key ? &opt.sign_key : &opt.server_key;
    if (sw_crypto_hmac_sha1(material, sizeof material, sblock, 128, hmac) < 0 ||
        sw_crypto_rsa_private_sign_raw(sk->der, sk->len, hmac, 20, sblock + 128, 256, &slen) < 0 || slen != 256) {
        end(c, "key-error", "cannot sign the session block (the signing key must be RSA 2048); closing");
        return;
    }
    if (sw_send_all(c->fd, sblock, sizeof sblock) < 0) {
        end(c, "device-closed", "the device closed the connection before the session block");
        return;
    }
    CLOG(c, "session block sent%s", opt.have_sign_key ? " (signed with the impostor key)" : "");
    if (opt.session_log) {
        char hex[81], line[120];
        sw_to_hex(material, sizeof material, hex);
        int n = snprintf(line, sizeof line, "%s %s\n", c->id_hex, hex);
        int fd = open(opt.session_log, O_WRONLY | O_APPEND | O_CREAT, 0644);
        if (fd < 0 || write(fd, line, (size_t)n) != n)
            sw_err("session log %s: cannot write (%s)", opt.session_log, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    sw_cipher_init(&c->cipher, material);
    /* wait for the device Hello */
    dl = sw_now_ms() + opt.hello_timeout_ms;
    if (dl > global)
        dl = global;
    for (;;) {
        size_t len = 0;
        r = read_frame(c, dl, &len);
        if (r < 0)
            return;
        if (r == 0) {
            end(c, "hello-timeout", "no device Hello in time (get_hello timed out); closing");
            return;
        }
        if (r == 2)
            continue;
        sw_coap_msg m;
        if (sw_coap_parse(c->plain, len, &m) < 0 || m.code != SW_COAP_POST || sw_coap_path_letter(&m) != 'h') {
            end(c, "bad-hello", "first message is not a Hello (failed to parse hello); closing");
            return;
        }
        c->dev_id = m.id;
        const uint8_t *p = m.payload;
        size_t pl = m.payload_len;
        CLOG(c, "hello from the device: %zu bytes (%s), id 0x%04x, product %u version %u%s", len,
             pl >= 8 ? "platform id present" : "early firmware", m.id, pl >= 2 ? (unsigned)(p[0] << 8 | p[1]) : 0,
             pl >= 4 ? (unsigned)(p[2] << 8 | p[3]) : 0, pl >= 6 && (p[5] & 1) ? ", last update ok" : "");
        break;
    }
    uint16_t start;
    uint8_t rnd[2];
    do {
        RAND_bytes(rnd, 2);
        start = (uint16_t)(rnd[0] << 8 | rnd[1]);
    } while (start == 0);
    c->next_id = start;
    c->token = 0;
    uint8_t tok = new_token(c);
    uint16_t id = new_id(c);
    uint8_t hello[7] = {0x51, SW_COAP_POST, (uint8_t)(id >> 8), (uint8_t)id, tok, 0xb1, 'h'};
    if (opt.no_hello) {
        CLOG(c, "server Hello withheld; handshake complete on the cloud side");
    } else {
        if (send_msg(c, hello, 7) < 0)
            return;
        CLOG(c, "hello sent (id 0x%04x, token %u); handshake complete", id, tok);
    }
    c->outcome = "ok";
    run_session(c);
}

/* ---- the server ---- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: sparkcloud [options] [HOST:PORT]\n"
"A lab cloud for the Spark Core protocol (default 127.0.0.1:5683, loopback only unless told otherwise).\n"
"\n"
"keys:\n"
"  --server-key FILE      server private key, RSA 2048 (PEM or DER) (required)\n"
"  --keys-dir DIR         device public keys as DIR/<id>.pub.pem\n"
"  --device-key ID=FILE   the public key (or private key) of one device; repeatable\n"
"  --keyfile FILE         server private key and device keys from a keyfile (see docs/design.md)\n"
"session script (run in this order after the handshake):\n"
"  --describe             ask the device to describe itself\n"
"  --call NAME[=ARG]      call a function\n"
"  --read NAME            read a variable (typed from the last describe)\n"
"  --signal               ask the device to signal\n"
"  --send-event NAME[=DATA]  send an event to the device\n"
"  --ota FILE             push FILE as a firmware update (256-byte chunks with CRC-32)\n"
"  --ota-bad-crc N        send chunk N (from 0) with a wrong CRC once\n"
"  --session-time SEC     close the session SEC after the Hello (default: when the device closes)\n"
"  --script-delay SEC     wait SEC after the Hello before the script (default 0)\n"
"  --session-log FILE     append '<device id> <session material hex>' for each handshake\n"
"timers (seconds, as the real cloud):\n"
"  --id-timeout SEC       wait for the id block (default 30)\n"
"  --hello-timeout SEC    wait for the device Hello (default 30)\n"
"  --handshake-timeout SEC  the whole handshake (default 120)\n"
"  --reply-timeout SEC    wait for an answer to a request (default 10)\n"
"  --ota-timeout SEC      wait for an update answer (default 10)\n"
"faults:\n"
"  --wrong-key FILE       hold this public key for every device\n"
"  --sign-key FILE        sign session blocks with this private key (impostor)\n"
"  --captive-portal       answer with an HTTP redirect instead of the protocol\n"
"  --stall                send the nonce, then nothing\n"
"  --no-hello             do not send the server Hello\n"
"running:\n"
"  --connections N        handle N connections, then exit when they end (default 1)\n"
"  --time-limit SEC       exit after SEC seconds whatever happens\n"
"  -h, --help             this text\n"
"  --version              the version\n"
"Logs one line per event to stderr; each connection ends with '#N outcome: WORD'.\n");
}

enum {
    O_SKEY = 256, O_KDIR, O_DKEY, O_DESCRIBE, O_CALL, O_READ, O_SIGNAL, O_SEVENT, O_OTA, O_OTABAD, O_SESSION,
    O_DELAY, O_SLOG, O_IDT, O_HELLOT, O_HST, O_REPLYT, O_OTAT, O_WRONG, O_SIGN, O_CAPTIVE, O_STALL, O_CONNS,
    O_LIMIT, O_NOHELLO, O_KEYFILE,
};

static int bad(const char *opt_name, const char *val, const char *fix)
{
    sw_err("option %s: bad value '%s'; %s", opt_name, val, fix);
    return 2;
}

static step *add_step(enum step_kind k)
{
    if (opt.nsteps >= MAX_STEPS)
        return NULL;
    step *s = &opt.steps[opt.nsteps++];
    memset(s, 0, sizeof *s);
    s->kind = k;
    return s;
}

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int read_whole(const char *path, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        sw_err("update file %s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 20;
    *data = malloc(cap);
    *len = *data ? fread(*data, 1, cap, f) : 0;
    bool more = *data && *len == cap;
    fclose(f);
    if (*data == NULL || *len == 0 || more) {
        sw_err("update file %s: %s", path, *len == 0 ? "empty or unreadable" : "larger than 1 MB");
        free(*data);
        *data = NULL;
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    sw_prog = "sparkcloud";
    snprintf(opt.host, sizeof opt.host, "127.0.0.1");
    snprintf(opt.port, sizeof opt.port, "5683");
    opt.connections = 1;
    opt.id_timeout_ms = 30000;
    opt.hello_timeout_ms = 30000;
    opt.handshake_timeout_ms = 120000;
    opt.reply_timeout_ms = 10000;
    opt.ota_timeout_ms = 10000;
    opt.ota_bad_chunk = -1;
    const char *ota_path = NULL, *keyfile_path = NULL;
    static const struct option opts[] = {
        {"server-key", required_argument, 0, O_SKEY}, {"keys-dir", required_argument, 0, O_KDIR},
        {"device-key", required_argument, 0, O_DKEY}, {"describe", no_argument, 0, O_DESCRIBE},
        {"call", required_argument, 0, O_CALL}, {"read", required_argument, 0, O_READ},
        {"signal", no_argument, 0, O_SIGNAL}, {"send-event", required_argument, 0, O_SEVENT},
        {"ota", required_argument, 0, O_OTA}, {"ota-bad-crc", required_argument, 0, O_OTABAD},
        {"session-time", required_argument, 0, O_SESSION}, {"script-delay", required_argument, 0, O_DELAY},
        {"session-log", required_argument, 0, O_SLOG}, {"id-timeout", required_argument, 0, O_IDT},
        {"hello-timeout", required_argument, 0, O_HELLOT}, {"handshake-timeout", required_argument, 0, O_HST},
        {"reply-timeout", required_argument, 0, O_REPLYT}, {"ota-timeout", required_argument, 0, O_OTAT},
        {"wrong-key", required_argument, 0, O_WRONG}, {"sign-key", required_argument, 0, O_SIGN},
        {"captive-portal", no_argument, 0, O_CAPTIVE}, {"stall", no_argument, 0, O_STALL},
        {"no-hello", no_argument, 0, O_NOHELLO}, {"keyfile", required_argument, 0, O_KEYFILE},
        {"connections", required_argument, 0, O_CONNS}, {"time-limit", required_argument, 0, O_LIMIT},
        {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'}, {0, 0, 0, 0}};
    int ch;
    unsigned long ul;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        const char *oname = argv[optind - 1];
        step *s;
        uint64_t *ms_target = NULL;
        switch (ch) {
        case 'h': usage(stdout); return 0;
        case 'V': printf("sparkcloud (sparkwire) %s\n", SPARKWIRE_VERSION); return 0;
        case O_SKEY: opt.server_key_path = optarg; break;
        case O_KDIR: opt.keys_dir = optarg; break;
        case O_DKEY: {
            char *eq = strchr(optarg, '=');
            uint8_t idb[12];
            char idh[25];
            if (eq == NULL || eq - optarg != 24 || opt.ndevkeys >= MAX_DEVKEYS)
                return bad("--device-key", optarg, "use ID=FILE with a 24-hex-digit id (at most 16)");
            memcpy(idh, optarg, 24);
            idh[24] = 0;
            if (sw_parse_hex(idh, idb, 12) < 0)
                return bad("--device-key", optarg, "the id must be 24 hex digits");
            sw_to_hex(idb, 12, opt.devkeys[opt.ndevkeys].id);
            if (sw_load_public_key(eq + 1, "device key", &opt.devkeys[opt.ndevkeys].key) < 0)
                return 2;
            opt.ndevkeys++;
            break;
        }
        case O_DESCRIBE:
            if (!add_step(S_DESCRIBE))
                return bad(oname, "", "at most 16 script steps");
            break;
        case O_CALL: case O_SEVENT: {
            s = add_step(ch == O_CALL ? S_CALL : S_EVENT);
            char *eq = strchr(optarg, '=');
            size_t nl = eq ? (size_t)(eq - optarg) : strlen(optarg);
            size_t maxn = ch == O_CALL ? 12 : 63;
            if (s == NULL || nl == 0 || nl > maxn || (eq && strlen(eq + 1) >= sizeof s->arg))
                return bad(oname, optarg, ch == O_CALL ? "use NAME[=ARG], name of 1 to 12 characters"
                                                       : "use NAME[=DATA], name of 1 to 63 characters");
            memcpy(s->name, optarg, nl);
            s->name[nl] = 0;
            if (eq)
                snprintf(s->arg, sizeof s->arg, "%s", eq + 1);
            break;
        }
        case O_READ:
            s = add_step(S_READ);
            if (s == NULL || strlen(optarg) == 0 || strlen(optarg) > 12)
                return bad("--read", optarg, "give a variable name of 1 to 12 characters");
            snprintf(s->name, sizeof s->name, "%s", optarg);
            break;
        case O_SIGNAL:
            if (!add_step(S_SIGNAL))
                return bad(oname, "", "at most 16 script steps");
            break;
        case O_OTA:
            ota_path = optarg;
            if (!add_step(S_OTA))
                return bad(oname, optarg, "at most 16 script steps");
            break;
        case O_OTABAD:
            if (sw_parse_ulong(optarg, 0, 100000, &ul) < 0)
                return bad("--ota-bad-crc", optarg, "give a chunk index from 0");
            opt.ota_bad_chunk = (long)ul;
            break;
        case O_SESSION: ms_target = &opt.session_ms; opt.session_ms_set = true; break;
        case O_DELAY: ms_target = &opt.script_delay_ms; break;
        case O_SLOG: opt.session_log = optarg; break;
        case O_IDT: ms_target = &opt.id_timeout_ms; break;
        case O_HELLOT: ms_target = &opt.hello_timeout_ms; break;
        case O_HST: ms_target = &opt.handshake_timeout_ms; break;
        case O_REPLYT: ms_target = &opt.reply_timeout_ms; break;
        case O_OTAT: ms_target = &opt.ota_timeout_ms; break;
        case O_LIMIT: ms_target = &opt.time_limit_ms; break;
        case O_WRONG:
            if (sw_load_public_key(optarg, "wrong device key", &opt.wrong_key) < 0)
                return 2;
            opt.have_wrong_key = true;
            break;
        case O_SIGN:
            if (sw_load_private_key(optarg, "signing key", &opt.sign_key) < 0)
                return 2;
            opt.have_sign_key = true;
            break;
        case O_CAPTIVE: opt.mode = M_CAPTIVE; break;
        case O_STALL: opt.mode = M_STALL; break;
        case O_NOHELLO: opt.no_hello = true; break;
        case O_KEYFILE: keyfile_path = optarg; break;
        case O_CONNS:
            if (sw_parse_ulong(optarg, 1, 10000, &opt.connections) < 0)
                return bad("--connections", optarg, "give a count from 1 to 10000");
            break;
        default:
            sw_bad_option(ch, argc, argv);
            return 2;
        }
        if (ms_target && sw_parse_seconds(optarg, ms_target) < 0)
            return bad(oname, optarg, "give seconds, e.g. 30 or 0.5");
    }
    if (optind < argc - 1) {
        sw_err("too many arguments; give at most one HOST:PORT (see --help)");
        return 2;
    }
    if (optind == argc - 1 &&
        sw_split_hostport(argv[optind], opt.host, sizeof opt.host, opt.port, sizeof opt.port) < 0) {
        sw_err("listen address '%s': not HOST:PORT; e.g. 127.0.0.1:5683", argv[optind]);
        return 2;
    }
    bool have_server_key = false;
    if (keyfile_path) {
        sw_keyfile *kf = sw_keyfile_open(keyfile_path);
        if (kf == NULL)
            return 2;
        if (opt.server_key_path == NULL && sw_keyfile_server_private(kf, &opt.server_key) == 0) {
            have_server_key = true;
            opt.server_key_path = keyfile_path;
        }
        for (size_t i = 0; i < sw_keyfile_device_count(kf) && opt.ndevkeys < MAX_DEVKEYS; i++)
            if (sw_keyfile_device_public(kf, i, opt.devkeys[opt.ndevkeys].id, &opt.devkeys[opt.ndevkeys].key) == 0)
                opt.ndevkeys++;
        sw_keyfile_close(kf);
    }
    if (opt.mode != M_CAPTIVE) {
        if (opt.server_key_path == NULL) {
            sw_err("missing --server-key; the cloud needs its RSA 2048 private key (or a keyfile with a "
                   "server-private line) (see --help)");
            return 2;
        }
        if (!have_server_key && sw_load_private_key(opt.server_key_path, "server key", &opt.server_key) < 0)
            return 2;
        if (opt.server_key.bits != 2048) {
            sw_err("server key %s: RSA %d bits; the Spark cloud key is RSA 2048", opt.server_key_path,
                   opt.server_key.bits);
            return 2;
        }
        if (opt.keys_dir == NULL && opt.ndevkeys == 0 && !opt.have_wrong_key)
            sw_err("warning: no --keys-dir or --device-key: every device will be unknown");
        if (opt.keys_dir) {
            struct stat st;
            if (stat(opt.keys_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                sw_err("keys directory %s: not a directory; give the folder holding <id>.pub.pem files",
                       opt.keys_dir);
                return 2;
            }
        }
    }
    if (ota_path && read_whole(ota_path, &opt.ota_data, &opt.ota_len) < 0)
        return 2;

    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(opt.host, opt.port, &hints, &ai);
    if (gai != 0) {
        sw_err("listen address %s: %s", opt.host, gai_strerror(gai));
        return 2;
    }
    int lfd = socket(ai->ai_family, SOCK_STREAM, 0);
    int one = 1;
    if (lfd >= 0)
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(lfd, 16) < 0) {
        sw_err("cannot listen on %s:%s: %s; is another cloud running there?", opt.host, opt.port, strerror(errno));
        freeaddrinfo(ai);
        return 1;
    }
    freeaddrinfo(ai);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sw_log("listening on %s:%s", opt.host, opt.port);

    uint64_t t0 = sw_now_ms();
    pid_t kids[10000];
    size_t nkids = 0, running = 0;
    unsigned long accepted = 0;
    int status = 0;
    for (;;) {
        while (running > 0) {
            pid_t p = waitpid(-1, NULL, WNOHANG);
            if (p <= 0)
                break;
            running--;
            for (size_t i = 0; i < nkids; i++)
                if (kids[i] == p)
                    kids[i] = 0;
        }
        if (stop_flag) {
            sw_log("stopping");
            break;
        }
        if (opt.time_limit_ms && sw_now_ms() - t0 >= opt.time_limit_ms) {
            sw_log("time limit reached, exiting");
            status = 1;
            break;
        }
        if (accepted >= opt.connections) {
            if (lfd >= 0) {
                close(lfd);
                lfd = -1;
            }
            if (running == 0)
                break;
            usleep(20000);
            continue;
        }
        if (sw_wait_readable(lfd, 50) <= 0)
            continue;
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept(lfd, (struct sockaddr *)&peer, &plen);
        if (fd < 0)
            continue;
        accepted++;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char ph[64] = "?", pp[16] = "?";
        getnameinfo((struct sockaddr *)&peer, plen, ph, sizeof ph, pp, sizeof pp, NI_NUMERICHOST | NI_NUMERICSERV);
        sw_log("#%lu connection from %s:%s", accepted, ph, pp);
        pid_t pid = fork();
        if (pid == 0) {
            close(lfd);
            static conn c;
            memset(&c, 0, sizeof c);
            c.fd = fd;
            c.num = (int)accepted;
            c.accepted = sw_now_ms();
            handle(&c);
            close(fd);
            CLOG(&c, "outcome: %s", c.outcome ? c.outcome : "device-closed");
            _exit(0);
        }
        close(fd);
        if (pid > 0) {
            kids[nkids++] = pid;
            running++;
        } else {
            sw_err("cannot start a connection handler: %s", strerror(errno));
        }
    }
    if (lfd >= 0)
        close(lfd);
    for (size_t i = 0; i < nkids; i++)
        if (kids[i] > 0)
            kill(kids[i], SIGTERM);   /* handlers still running at a time limit or stop */
    while (waitpid(-1, NULL, 0) > 0) {}
    free(opt.ota_data);
    return status;
}
