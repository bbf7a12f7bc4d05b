/* sparkcloud: the session after the handshake: reading frames, answering the device (time, events,
 * subscriptions, pings, missed chunks), sending requests and running the session script. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cloud.h"

/* 1 ok, 0 timeout, -1 closed or error. */
int sc_read_exact(conn *c, uint8_t *buf, size_t n, uint64_t deadline)
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

void sc_end(conn *c, const char *outcome, const char *why)
{
    if (why)
        CLOG(c, "%s", why);
    /* A device closing after a finished handshake or update keeps that result (ok, ota-complete). */
    if (!(c->outcome && strcmp(outcome, "device-closed") == 0))
        c->outcome = outcome;
    c->closed = true;
}

int sc_send(conn *c, const uint8_t *m, int len)
{
    if (len < 0)
        return -1;
    int n = sw_frame_seal(&c->cipher, m, (size_t)len, c->frame, sizeof c->frame);
    if (n < 0 || sw_send_all(c->fd, c->frame, (size_t)n) < 0) {
        sc_end(c, "device-closed", "send failed: the device closed the connection");
        return -1;
    }
    return 0;
}

uint16_t sc_new_id(conn *c)
{
    return ++c->next_id;
}

uint8_t sc_new_token(conn *c)
{
    c->token = (uint8_t)(c->token >= 254 ? 0 : c->token + 1);
    return c->token;
}

/* Empty (or coded) ACK as SP builds it: a one-byte token 0x00. */
int sc_empty_ack(conn *c, uint16_t id, uint8_t code)
{
    uint8_t m[5] = {0x61, code, (uint8_t)(id >> 8), (uint8_t)id, 0x00};
    return sc_send(c, m, 5);
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

/* ---- answers to what the device sends ---------------------------------------------------------- */

static void on_ack(conn *c, const sw_coap_msg *m)
{
    bool token = m->tkl == 1 && m->token[0] == c->want_token;
    if (token && m->id == c->want_id) {
        c->got = m->code == SW_COAP_CONTENT || m->code == SW_COAP_CHANGED ? SC_GOT_OK : SC_GOT_REFUSED;
    } else if (token && m->code == SW_COAP_CHANGED && m->id == (uint16_t)(c->dev_id + 1)) {
        /* firmware 0.8 and later: the ACK carries the device's own next message id; counted as used */
        c->dev_id = m->id;
        c->got = SC_GOT_OK;
        CLOG(c, "ACK 2.04 with the request's token carries the device's next message id 0x%04x: counted", m->id);
    } else {
        CLOG(c, "unexpected ACK %d.%02d id 0x%04x, ignored", m->code >> 5, m->code & 31, m->id);
    }
}

static void on_time(conn *c, const sw_coap_msg *m)
{
    uint32_t now = (uint32_t)time(NULL);
    uint8_t v[4] = {(uint8_t)(now >> 24), (uint8_t)(now >> 16), (uint8_t)(now >> 8), (uint8_t)now};
    sw_coap_builder b;
    sw_coap_begin(&b, c->msg, sizeof c->msg, SW_COAP_ACK, SW_COAP_CONTENT, m->id, m->token, m->tkl);
    sw_coap_add_payload(&b, v, 4);
    CLOG(c, "time request answered (%lu)", (unsigned long)now);
    sc_send(c, c->msg, sw_coap_end(&b));
}

/* Events: acknowledged; user events (not spark/...) refused with 4.00 while --refuse-events allows. */
static void on_event(conn *c, const sw_coap_msg *m, char letter)
{
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
    bool system = strncmp(n, "spark", 5) == 0;
    bool refuse = !system && c->refused < sc_opt.refuse_events;
    if (refuse)
        c->refused++;
    CLOG(c, "event %s \"%s\" data \"%s\" ttl %lu, %s", letter == 'e' ? "public" : "private", n, d, ttl,
         refuse ? "refused (ACK 4.00, slow down)" : "acknowledged");
    sc_empty_ack(c, m->id, refuse ? SW_COAP_BAD_REQUEST : 0);
}

static void on_subscribe(conn *c, const sw_coap_msg *m)
{
    const sw_coap_opt *prefix = sw_coap_find(m, SW_OPT_URI_PATH, 1);
    char n[300];
    vis(prefix ? prefix->value : (const uint8_t *)"", prefix ? prefix->len : 0, n, sizeof n);
    CLOG(c, "subscription \"%s\" %s", n, prefix ? "accepted" : "refused (no prefix)");
    sc_empty_ack(c, m->id, prefix ? 0 : SW_COAP_BAD_REQUEST);
}

/* ChunkMissed: acknowledged without a token, as the original cloud does; the indexes are kept. */
static void on_chunk_missed(conn *c, const sw_coap_msg *m)
{
    size_t n = m->payload_len / 2 < sizeof c->missed / 2 ? m->payload_len / 2 : sizeof c->missed / 2;
    if (m->payload == NULL)
        n = 0;
    else
        memcpy(c->missed, m->payload, 2 * n);
    c->nmissed = n;
    CLOG(c, "device reports %zu missed chunk%s (ChunkMissed)%s", n, n == 1 ? "" : "s",
         n ? "" : ", no index given");
    uint8_t ack[4] = {0x60, 0x00, (uint8_t)(m->id >> 8), (uint8_t)m->id};
    sc_send(c, ack, 4);
    c->got = SC_GOT_MISSED;
}

static bool counter_ok(conn *c, const sw_coap_msg *m)
{
    if (m->type == SW_COAP_ACK)
        return true;
    uint16_t want = (uint16_t)(c->dev_id + 1);
    if (m->id != want) {
        char why[120];
        snprintf(why, sizeof why, "bad counter: device message id 0x%04x, expected 0x%04x; closing", m->id, want);
        sc_end(c, "bad-counter", why);
        return false;
    }
    c->dev_id = m->id;
    return true;
}

/* Handles one device message; sets c->got when it answers the awaited request. */
static void dispatch(conn *c, const sw_coap_msg *m)
{
    char letter = sw_coap_path_letter(m);
    if (!counter_ok(c, m))
        return;
    if (m->code == SW_COAP_EMPTY) {
        if (m->type == SW_COAP_CON) {
            CLOG(c, "ping from the device (id 0x%04x) answered", m->id);
            sc_empty_ack(c, m->id, 0);
        } else if (m->type == SW_COAP_ACK && m->id == c->want_id) {
            c->got = SC_GOT_EMPTY_ACK;   /* empty ACK of a function call or chunk: the answer follows */
        }
    } else if (m->type == SW_COAP_ACK) {
        on_ack(c, m);
    } else if (m->type == SW_COAP_NON && (m->code == SW_COAP_CHANGED || m->code == SW_COAP_BAD_REQUEST) &&
               m->tkl == 1 && m->token[0] == c->want_token) {
        c->got = m->code == SW_COAP_CHANGED ? SC_GOT_OK : SC_GOT_REFUSED;
        if (m->payload_len == 4)
            c->fn_result = (int32_t)(((uint32_t)m->payload[0] << 24) | ((uint32_t)m->payload[1] << 16) |
                                     ((uint32_t)m->payload[2] << 8) | m->payload[3]);
    } else if (m->type == SW_COAP_NON && (m->code == SW_COAP_CHANGED || m->code == SW_COAP_BAD_REQUEST)) {
        CLOG(c, "answer %d.%02d to an earlier request (token %u), noted", m->code >> 5, m->code & 31,
             m->tkl ? m->token[0] : 0);
    } else if (m->code == SW_COAP_GET && letter == 't') {
        on_time(c, m);
    } else if (m->code == SW_COAP_POST && (letter == 'e' || letter == 'E')) {
        on_event(c, m, letter);
    } else if (m->code == SW_COAP_GET && letter == 'e') {
        on_subscribe(c, m);
    } else if (m->code == SW_COAP_GET && letter == 'c') {
        on_chunk_missed(c, m);
    } else if (m->code == SW_COAP_PUT && letter == 'u') {
        CLOG(c, "the device ends the update itself (UpdateDone from the device)");
        c->device_done = true;
        c->got = SC_GOT_DEVICE_DONE;
    } else if (m->code == SW_COAP_POST && letter == 'h') {
        CLOG(c, "second hello from the device, ignored");
    } else {
        CLOG(c, "message code %d.%02d type %d from the device, ignored", m->code >> 5, m->code & 31, m->type);
    }
}

/* Reads one frame with a deadline: 1 message in c->plain (length *len), 2 frame ignored, 0 timeout,
 * -1 closed (c->closed set). */
int sc_read_frame(conn *c, uint64_t deadline, size_t *len)
{
    uint8_t h[2];
    int r = sc_read_exact(c, h, 2, deadline);
    if (r <= 0) {
        if (r < 0)
            sc_end(c, "device-closed", "the device closed the connection");
        return r;
    }
    size_t flen = (size_t)h[0] << 8 | h[1];
    if (flen == 0 || flen % 16) {
        char why[100];
        snprintf(why, sizeof why, "frame length %zu is not a multiple of 16; closing", flen);
        sc_end(c, "bad-frame", why);
        return -1;
    }
    r = sc_read_exact(c, c->frame, flen, sw_now_ms() + 20000);
    if (r <= 0) {
        sc_end(c, "device-closed", "the device closed the connection inside a frame");
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

/* Runs the session until an awaited answer (c->got) or the deadline. Returns 1 got, 0 timeout, -1 closed. */
int sc_pump(conn *c, uint64_t deadline)
{
    c->got = SC_GOT_NONE;
    while (!c->closed) {
        size_t len = 0;
        int r = sc_read_frame(c, deadline, &len);
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
        if (c->got && c->got != SC_GOT_EMPTY_ACK)
            return 1;
    }
    return -1;
}

/* Sends a request and waits for its answer. Returns what sc_pump returns; c->got tells what came. */
int sc_request(conn *c, uint8_t type, uint8_t code, const char *p1, const char *p2, const void *q1, size_t q1len,
               const void *payload, size_t plen, uint64_t timeout)
{
    uint8_t tok = sc_new_token(c);
    uint16_t id = sc_new_id(c);
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
    if (sc_send(c, c->msg, sw_coap_end(&b)) < 0)
        return -1;
    return sc_pump(c, sw_now_ms() + timeout);
}

/* ---- the session script ------------------------------------------------------------------------- */

/* Describe; s->arg[0] is the selection byte (1 system, 2 application, 3 both) or 0 for none. */
static void step_describe(conn *c, const sc_step *s)
{
    int r = sc_request(c, SW_COAP_CON, SW_COAP_GET, "d", NULL, s->arg[0] ? s->arg : NULL, s->arg[0] ? 1 : 0, NULL, 0,
                       sc_opt.reply_timeout_ms);
    sw_coap_msg m;
    if (r == 1 && c->got == SC_GOT_OK && sw_coap_parse(c->plain, c->plain_len, &m) == 0 && m.payload) {
        size_t n = m.payload_len < sizeof c->describe - 1 ? m.payload_len : sizeof c->describe - 1;
        memcpy(c->describe, m.payload, n);
        c->describe[n] = 0;
        char v[1200];
        vis(m.payload, m.payload_len, v, sizeof v);
        CLOG(c, "describe: %s", v);
    } else if (r == 0) {
        CLOG(c, "no answer to describe in time");
    }
}

static void step_read(conn *c, const sc_step *s)
{
    int r = sc_request(c, SW_COAP_CON, SW_COAP_GET, "v", s->name, NULL, 0, NULL, 0, sc_opt.reply_timeout_ms);
    sw_coap_msg m;
    if (r == 1 && c->got == SC_GOT_OK && sw_coap_parse(c->plain, c->plain_len, &m) == 0)
        log_variable(c, s->name, m.payload ? m.payload : (const uint8_t *)"", m.payload_len);
    else if (r == 1)
        CLOG(c, "variable %s: the device refused", s->name);
    else if (r == 0)
        CLOG(c, "no answer for variable %s in time", s->name);
}

static void step_event(conn *c, const sc_step *s)
{
    sw_coap_builder b;
    sw_coap_begin(&b, c->msg, sizeof c->msg, SW_COAP_NON, SW_COAP_POST, sc_new_id(c), NULL, 0);
    sw_coap_add_option(&b, SW_OPT_URI_PATH, "e", 1);
    char name[64];
    snprintf(name, sizeof name, "%s", s->name);
    for (char *seg = strtok(name, "/"); seg; seg = strtok(NULL, "/"))
        sw_coap_add_option(&b, SW_OPT_URI_PATH, seg, strlen(seg));
    sw_coap_add_payload(&b, s->arg, strlen(s->arg));
    CLOG(c, "event \"%s\" sent to the device", s->name);
    sc_send(c, c->msg, sw_coap_end(&b));
}

static void run_step(conn *c, const sc_step *s)
{
    int r;
    uint8_t on = 1;
    switch (s->kind) {
    case S_DESCRIBE:
        step_describe(c, s);
        break;
    case S_CALL:
        r = sc_request(c, SW_COAP_CON, SW_COAP_POST, "f", s->name, s->arg[0] ? s->arg : NULL, strlen(s->arg), NULL,
                       0, sc_opt.reply_timeout_ms);
        if (r == 1)
            CLOG(c, "function %s(\"%s\") returned %ld", s->name, s->arg, (long)c->fn_result);
        else if (r == 0)
            CLOG(c, "no return from function %s in time", s->name);
        break;
    case S_READ:
        step_read(c, s);
        break;
    case S_SIGNAL:
        r = sc_request(c, SW_COAP_CON, SW_COAP_PUT, "s", NULL, &on, 1, NULL, 0, sc_opt.reply_timeout_ms);
        if (r == 1)
            CLOG(c, "signal acknowledged");
        break;
    case S_EVENT:
        step_event(c, s);
        break;
    case S_OTA:
        sc_run_ota(c);
        break;
    }
}

void sc_run_session(conn *c)
{
    uint64_t hello_at = sw_now_ms();
    if (sc_opt.script_delay_ms)
        sc_pump(c, sw_now_ms() + sc_opt.script_delay_ms);
    for (size_t i = 0; i < sc_opt.nsteps && !c->closed; i++)
        run_step(c, &sc_opt.steps[i]);
    if (c->closed)
        return;
    if (sc_opt.session_ms_set) {
        uint64_t until = hello_at + sc_opt.session_ms;
        while (!c->closed && sw_now_ms() < until)
            sc_pump(c, until);
        if (!c->closed)
            sc_end(c, c->outcome ? c->outcome : "ok", "session time over, closing");
    } else {
        while (!c->closed)
            sc_pump(c, sw_now_ms() + 3600000);
    }
}
