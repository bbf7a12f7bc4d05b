/* sparkwire firmware: the device side of the protocol. See device.h and docs/protocol.md 2-4. */
#include "device.h"

#include <string.h>

#include "coap.h"
#include "crc32.h"
#include "crypto_port.h"
#include "device_int.h"


static const uint8_t spki_1024_header[29] = {
    0x30, 0x81, 0x9f, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    0x05, 0x00, 0x03, 0x81, 0x8d, 0x00, 0x30, 0x81, 0x89, 0x02, 0x81, 0x81, 0x00};

uint32_t sw_dev_now(sw_device *d)
{
    return d->hal.millis(d->hal.ctx);
}

static bool expired(sw_device *d, uint32_t deadline)
{
    return (int32_t)(sw_dev_now(d) - deadline) >= 0;
}

void sw_dev_note(sw_device *d, sw_note n, const char *name, long value)
{
    if (d->cfg.notify)
        d->cfg.notify(d->cfg.user, n, name, value);
}

size_t sw_dev_strlen(const char *s, size_t max)
{
    size_t n = 0;
    while (n <= max && s[n])
        n++;
    return n;
}

void sw_device_defaults(sw_device_config *cfg, int generation)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->generation = generation == 1 ? 1 : generation >= 3 ? 3 : 2;
    cfg->product_id = 0xFFFF;
    cfg->product_version = 0xFFFF;
    cfg->platform_id = 0;
    cfg->io_timeout_ms = 20000;
    cfg->hello_timeout_ms = generation >= 3 ? 4000 : 2000;
    cfg->fail_close_ms = 250;
    cfg->ping_idle_ms = 15000;
    cfg->ping_timeout_ms = 10000;
    cfg->chunk_timeout_ms = 3000;
    cfg->hold_on_fail = generation == 1;
    cfg->send_time_request = true;
    cfg->fast_ota = true;
}

void sw_device_init(sw_device *d, const sw_device_config *cfg, const sw_hal *hal)
{
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    d->hal = *hal;
    d->state = ST_IDLE;
}

static int copy_name(char *dst, size_t cap, const char *src)
{
    size_t n = src ? sw_dev_strlen(src, cap) : 0;
    if (n == 0 || n >= cap)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

int sw_device_function(sw_device *d, const char *name, sw_function_fn fn, void *user)
{
    if (d->nfunctions >= SW_MAX_FUNCTIONS || fn == NULL)
        return -1;
    sw_function *f = &d->functions[d->nfunctions];
    if (copy_name(f->name, sizeof f->name, name) < 0)
        return -1;
    f->fn = fn;
    f->user = user;
    d->nfunctions++;
    return 0;
}

int sw_device_variable(sw_device *d, const char *name, sw_var_type type, const void *value)
{
    if (d->nvariables >= SW_MAX_VARIABLES || value == NULL)
        return -1;
    if (type != SW_VAR_BOOL && type != SW_VAR_INT && type != SW_VAR_DOUBLE && type != SW_VAR_STRING)
        return -1;
    sw_variable *v = &d->variables[d->nvariables];
    if (copy_name(v->name, sizeof v->name, name) < 0)
        return -1;
    v->type = type;
    v->value = value;
    d->nvariables++;
    return 0;
}

int sw_device_subscribe(sw_device *d, const char *prefix, bool my_devices, sw_event_fn fn, void *user)
{
    if (d->nsubscriptions >= SW_MAX_SUBSCRIPTIONS || fn == NULL)
        return -1;
    sw_subscription *s = &d->subscriptions[d->nsubscriptions];
    if (copy_name(s->prefix, sizeof s->prefix, prefix) < 0)
        return -1;
    s->fn = fn;
    s->user = user;
    s->my_devices = my_devices;
    d->nsubscriptions++;
    return 0;
}

const char *sw_status_text(sw_status s)
{
    switch (s) {
    case SW_RUNNING: return "running";
    case SW_FINISHED: return "finished";
    case SW_UPDATE_APPLIED: return "update applied";
    case SW_ERR_IO: return "connection closed or failed";
    case SW_ERR_TIMEOUT: return "handshake read timed out";
    case SW_ERR_SERVER_KEY: return "server public key unusable";
    case SW_ERR_DECRYPTION: return "decryption error";
    case SW_ERR_AUTHENTICATION: return "signature error";
    case SW_ERR_MESSAGE_TIMEOUT: return "no server Hello";
    case SW_ERR_FRAME_TOO_LARGE: return "frame too large";
    case SW_ERR_BAD_FRAME: return "bad frame";
    case SW_ERR_PING_TIMEOUT: return "ping not answered";
    case SW_ERR_CONFIG: return "bad configuration";
    case SW_ERR_REFUSED: return "the cloud answered with ACK 4.00";
    }
    return "unknown";
}

const char *sw_step_name(sw_step s)
{
    switch (s) {
    case SW_STEP_NONE: return "none";
    case SW_STEP_NONCE: return "nonce";
    case SW_STEP_ID_BLOCK: return "id-block";
    case SW_STEP_SESSION_BLOCK: return "session-block";
    case SW_STEP_HELLO: return "hello";
    case SW_STEP_CONNECTED: return "connected";
    }
    return "unknown";
}

/* ---- sending ---- */

uint16_t sw_dev_next_id(sw_device *d)
{
    return ++d->msg_id;
}

static sw_status send_raw(sw_device *d, const uint8_t *buf, size_t len)
{
    return d->hal.send(d->hal.ctx, buf, len) < 0 ? SW_ERR_IO : SW_RUNNING;
}

/* The --corrupt-frame fault: spoils the last byte of the sealed frame (length prefix included, n bytes) so
 * that its padding no longer checks out. One spoiled byte still leaves valid padding about once in 256, so
 * each spoiling value is tried on the last block as the receiver decrypts it (chained on the block before it,
 * or on iv, the frame's IV, for a one-block frame) until one fails. */
static void spoil_frame(const sw_device *d, const uint8_t iv[16], uint8_t *frame, int n)
{
    const uint8_t *last = frame + n - 16;
    sw_cipher probe;
    memcpy(probe.key, d->cipher.key, 16);
    uint8_t out[16];
    for (unsigned k = 0; k < 255; k++) {
        uint8_t x = (uint8_t)((0x59 + k) % 255 + 1);   /* 0x5a..0xff, then 0x01..0x59 */
        frame[n - 1] ^= x;
        memcpy(probe.recv_iv, n - 2 > 16 ? last - 16 : iv, 16);
        if (sw_frame_open(&probe, last, 16, out, sizeof out) < 0)
            return;
        frame[n - 1] ^= x;
    }
}

/* Seals len bytes of d->msg (or msg) and sends the frame. */
sw_status sw_dev_send(sw_device *d, const uint8_t *msg, int len)
{
    if (len < 0)
        return SW_ERR_CONFIG;
    uint8_t iv[16];
    memcpy(iv, d->cipher.send_iv, 16);
    int n = sw_frame_seal(&d->cipher, msg, (size_t)len, d->tx, sizeof d->tx);
    if (n < 0)
        return SW_ERR_CONFIG;
    d->frames_sent++;
    if (d->cfg.corrupt_frame && d->frames_sent == d->cfg.corrupt_frame)
        spoil_frame(d, iv, d->tx, n);
    return send_raw(d, d->tx, (size_t)n);
}

sw_status sw_dev_empty_ack(sw_device *d, uint16_t id)
{
    uint8_t m[4] = {0x60, 0x00, (uint8_t)(id >> 8), (uint8_t)id};
    return sw_dev_send(d, m, 4);
}

/* ACK or NON response with a code, the request's token and an optional payload. */
sw_status sw_dev_respond(sw_device *d, uint8_t type, uint8_t code, uint16_t id, const sw_coap_msg *req,
                               const void *payload, size_t len)
{
    sw_coap_builder b;
    sw_coap_begin(&b, d->msg, sizeof d->msg, type, code, id, req->token, req->tkl);
    sw_coap_add_payload(&b, payload, len);
    return sw_dev_send(d, d->msg, sw_coap_end(&b));
}

static int request_time(sw_device *d)
{
    uint8_t tok = ++d->token;
    sw_coap_builder b;
    sw_coap_begin(&b, d->msg, sizeof d->msg, SW_COAP_CON, SW_COAP_GET, sw_dev_next_id(d), &tok, 1);
    sw_coap_add_option(&b, SW_OPT_URI_PATH, "t", 1);
    return sw_dev_send(d, d->msg, sw_coap_end(&b)) == SW_RUNNING ? 0 : -1;
}

int sw_device_request_time(sw_device *d)
{
    if (d->state != ST_CONNECTED)
        return -1;
    return request_time(d);
}

static int publish(sw_device *d, const char *name, const uint8_t *data, size_t len, uint32_t ttl,
                   bool is_private)
{
    int n = sw_build_event((uint16_t)(d->msg_id + 1), name, data, len, ttl, is_private, d->msg,
                           sizeof d->msg);
    if (n < 0)
        return -1;
    sw_dev_next_id(d);
    if (sw_dev_send(d, d->msg, n) != SW_RUNNING)
        return -1;
    sw_dev_note(d, SW_NOTE_EVENT_SENT, name, (long)len);
    return 0;
}

int sw_device_publish(sw_device *d, const char *name, const uint8_t *data, size_t len, uint32_t ttl,
                      bool is_private)
{
    if (d->state != ST_CONNECTED)
        return -1;
    uint32_t t = sw_dev_now(d);
    if (d->publish_count >= 4 && t - d->publish_times[d->publish_count % 4] < 1000)
        return -1;   /* a fifth publish within one second */
    if (publish(d, name, data, len, ttl, is_private) < 0)
        return -1;
    d->publish_times[d->publish_count % 4] = t;
    d->publish_count++;
    return 0;
}

static sw_status send_subscriptions(sw_device *d)
{
    for (size_t i = 0; i < d->nsubscriptions; i++) {
        const sw_subscription *s = &d->subscriptions[i];
        sw_coap_builder b;
        sw_coap_begin(&b, d->msg, sizeof d->msg, SW_COAP_CON, SW_COAP_GET, sw_dev_next_id(d), NULL, 0);
        sw_coap_add_option(&b, SW_OPT_URI_PATH, "e", 1);
        sw_coap_add_option(&b, SW_OPT_URI_PATH, s->prefix, sw_dev_strlen(s->prefix, SW_MAX_EVENT_NAME));
        if (s->my_devices)
            sw_coap_add_option(&b, SW_OPT_URI_QUERY, "u", 1);
        sw_status st = sw_dev_send(d, d->msg, sw_coap_end(&b));
        if (st != SW_RUNNING)
            return st;
    }
    return SW_RUNNING;
}

/* ---- session ---- */

void sw_device_install_session(sw_device *d, const uint8_t material[SW_SESSION_LEN])
{
    memcpy(d->material, material, SW_SESSION_LEN);
    sw_cipher_init(&d->cipher, material);
    if (d->cfg.generation >= 3) {
        d->msg_id = (uint16_t)((material[33] << 8) | material[32]);   /* read as a little-endian uint16 */
        d->token = 0;                                                  /* first token 0x01 */
    } else {
        d->msg_id = (uint16_t)((material[32] << 8) | material[33]);
        d->token = material[34];
    }
    d->rx_len = 0;
    d->last_rx = sw_dev_now(d);
    d->ping_pending = false;
}

static sw_status become_connected(sw_device *d)
{
    d->state = ST_CONNECTED;
    d->step = SW_STEP_CONNECTED;
    sw_dev_note(d, SW_NOTE_STEP, sw_step_name(d->step), d->step);
    sw_status st = send_subscriptions(d);
    if (st == SW_RUNNING && d->cfg.send_time_request && d->cfg.generation != 1 && !d->time_requested) {
        d->time_requested = true;
        st = request_time(d) < 0 ? SW_ERR_IO : SW_RUNNING;
    }
    return st;
}

static sw_status handle_message(sw_device *d, const uint8_t *buf, size_t len)
{
    sw_coap_msg m;
    if (sw_coap_parse(buf, len, &m) < 0) {
        sw_dev_note(d, SW_NOTE_FRAME_ERROR, "not a CoAP message", (long)len);
        return SW_RUNNING;
    }
    if (d->ota_silent || d->state == ST_SILENT)
        return SW_RUNNING;
    char letter = sw_coap_path_letter(&m);
    if (m.code == SW_COAP_EMPTY) {
        if (m.type == SW_COAP_CON) {
            sw_dev_note(d, SW_NOTE_SERVER_PING, NULL, m.id);
            return sw_dev_empty_ack(d, m.id);
        }
        if (m.type == SW_COAP_ACK)
            sw_dev_note(d, SW_NOTE_PING_ANSWERED, NULL, m.id);
        return SW_RUNNING;
    }
    if (m.type == SW_COAP_ACK || m.type == SW_COAP_RST) {
        if (m.code == SW_COAP_CONTENT && m.payload_len >= 4) {
            uint32_t t = ((uint32_t)m.payload[0] << 24) | ((uint32_t)m.payload[1] << 16) |
                         ((uint32_t)m.payload[2] << 8) | m.payload[3];
            sw_dev_note(d, SW_NOTE_TIME, NULL, (long)t);
        } else if (m.type == SW_COAP_ACK && m.code == SW_COAP_BAD_REQUEST && d->cfg.generation == 2) {
            sw_dev_note(d, SW_NOTE_REFUSED, NULL, m.id);   /* G2's event loop fails: the connection drops */
            return SW_ERR_REFUSED;
        } else {
            sw_dev_note(d, SW_NOTE_IGNORED, "acknowledgement", m.code);
        }
        return SW_RUNNING;
    }
    switch (m.code) {
    case SW_COAP_GET:
        if (letter == 'd')
            return sw_req_describe(d, &m);
        if (letter == 'v')
            return sw_req_variable(d, &m);
        break;
    case SW_COAP_POST:
        if (letter == 'h') {
            d->server_hello = true;
            sw_dev_note(d, SW_NOTE_SERVER_HELLO, NULL, m.id);
            if (d->state == ST_WAIT_HELLO)
                return become_connected(d);
            return SW_RUNNING;
        }
        if (letter == 'f')
            return sw_req_function(d, &m);
        if (letter == 'e' || letter == 'E')
            return sw_req_event(d, &m);
        if (letter == 'u')
            return sw_ota_begin(d, &m);
        if (letter == 'c')
            return sw_ota_chunk(d, &m);
        break;
    case SW_COAP_PUT:
        if (letter == 'u')
            return sw_ota_done(d, &m);
        if (letter == 's') {
            const sw_coap_opt *q = sw_coap_find(&m, SW_OPT_URI_QUERY, 0);
            sw_dev_note(d, SW_NOTE_SIGNAL, NULL, q && q->len >= 1 && q->value[0] ? 1 : 0);
            /* G3 puts its own next message id on this ACK; only the token is the request's */
            uint16_t id = d->cfg.generation >= 3 ? sw_dev_next_id(d) : m.id;
            return sw_dev_respond(d, SW_COAP_ACK, SW_COAP_CHANGED, id, &m, NULL, 0);
        }
        if (letter == 'k') {
            sw_dev_note(d, SW_NOTE_IGNORED, "key change", 0);
            return SW_RUNNING;
        }
        break;
    default:
        break;
    }
    sw_dev_note(d, SW_NOTE_IGNORED, "unknown request", m.code);
    return SW_RUNNING;
}

sw_status sw_device_handle_frame(sw_device *d, const uint8_t *ct, size_t len)
{
    int n = sw_frame_open(&d->cipher, ct, len, d->plain, sizeof d->plain);
    d->last_rx = sw_dev_now(d);
    d->ping_pending = false;
    if (n < 0) {
        sw_dev_note(d, SW_NOTE_FRAME_ERROR, "frame does not decrypt", (long)len);
        return SW_ERR_BAD_FRAME;
    }
    return handle_message(d, d->plain, (size_t)n);
}

/* ---- handshake ---- */

static sw_status fail(sw_device *d, sw_status why)
{
    sw_dev_note(d, SW_NOTE_HANDSHAKE_FAILED, sw_status_text(why), why);
    d->result = why;
    if (why == SW_ERR_IO)
        return why;
    if (d->cfg.hold_on_fail) {
        /* Early firmware: keeps the socket and sends its usual opening frames with whatever key is in
         * RAM, which the cloud cannot decrypt. */
        d->state = ST_HELD;
        uint8_t tok = ++d->token;
        sw_coap_builder b;
        sw_coap_begin(&b, d->msg, sizeof d->msg, SW_COAP_CON, SW_COAP_GET, sw_dev_next_id(d), &tok, 1);
        sw_coap_add_option(&b, SW_OPT_URI_PATH, "t", 1);
        if (sw_dev_send(d, d->msg, sw_coap_end(&b)) != SW_RUNNING)
            return why;
        int n = sw_build_event((uint16_t)(d->msg_id + 1), "spark/cc3000-patch-version",
                               (const uint8_t *)"1.28", 4, 60, false, d->msg, sizeof d->msg);
        sw_dev_next_id(d);
        if (sw_dev_send(d, d->msg, n) != SW_RUNNING)
            return why;
        return SW_RUNNING;
    }
    d->state = ST_FAILING;
    d->deadline = sw_dev_now(d) + d->cfg.fail_close_ms;
    return SW_RUNNING;
}

static bool stop_here(sw_device *d, sw_step step)
{
    d->step = step;
    sw_dev_note(d, SW_NOTE_STEP, sw_step_name(step), step);
    if (d->cfg.stop_after == step) {
        d->state = ST_SILENT;
        return true;
    }
    return false;
}

static sw_status send_id_block(sw_device *d)
{
    uint8_t plain[SW_NONCE_LEN + SW_DEVICE_ID_LEN + SW_DEVICE_SPKI_LEN];
    size_t plen = SW_NONCE_LEN + SW_DEVICE_ID_LEN;
    memcpy(plain, d->nonce, SW_NONCE_LEN);
    memcpy(plain + SW_NONCE_LEN, d->cfg.device_id, SW_DEVICE_ID_LEN);
    if (d->cfg.generation != 1) {
        size_t klen = 0;
        if (sw_crypto_rsa_public_from_private(d->cfg.private_key, d->cfg.private_key_len, d->scratch,
                                              sizeof d->scratch, &klen) < 0 || klen != SW_DEVICE_SPKI_LEN ||
            memcmp(d->scratch, spki_1024_header, sizeof spki_1024_header) != 0)
            return SW_ERR_CONFIG;
        memcpy(plain + plen, d->scratch, klen);
        plen += klen;
    }
    uint8_t block[SW_ID_BLOCK_LEN];
    size_t blen = 0;
    if (sw_crypto_rsa_public_encrypt(d->cfg.server_key, d->cfg.server_key_len, plain, plen, block, sizeof block,
                                     &blen) < 0 || blen != SW_ID_BLOCK_LEN)
        return SW_ERR_SERVER_KEY;
    return send_raw(d, block, blen);
}

static sw_status check_session_block(sw_device *d)
{
    const uint8_t *e = d->rx, *sig = d->rx + 128;
    uint8_t m[128];
    size_t mlen = 0;
    if (sw_crypto_rsa_private_decrypt(d->cfg.private_key, d->cfg.private_key_len, e, 128, m, sizeof m, &mlen) <
            0 || mlen != SW_SESSION_LEN)
        return SW_ERR_DECRYPTION;
    uint8_t hmac[SW_HMAC_SHA1_LEN], rec[256];
    size_t rlen = 0;
    if (sw_crypto_hmac_sha1(m, SW_SESSION_LEN, e, 128, hmac) < 0)
        return SW_ERR_DECRYPTION;
    if (sw_crypto_rsa_public_verify_recover(d->cfg.server_key, d->cfg.server_key_len, sig, 256, rec, sizeof rec,
                                            &rlen) < 0 || rlen != SW_HMAC_SHA1_LEN ||
        memcmp(rec, hmac, SW_HMAC_SHA1_LEN) != 0)
        return SW_ERR_AUTHENTICATION;
    sw_device_install_session(d, m);
    return SW_RUNNING;
}

void sw_device_start(sw_device *d)
{
    d->state = ST_NONCE;
    d->step = SW_STEP_NONE;
    d->rx_len = 0;
    d->deadline = sw_dev_now(d) + d->cfg.io_timeout_ms;
    memset(&d->cipher, 0, sizeof d->cipher);
}

void sw_device_stop(sw_device *d)
{
    d->stop_requested = true;
}

bool sw_device_connected(const sw_device *d)
{
    return d->state == ST_CONNECTED;
}

/* Reads up to want - rx_len bytes into rx. Returns 1 when rx holds want bytes, 0 when not yet, -1 on close. */
static int fill(sw_device *d, size_t want)
{
    while (d->rx_len < want) {
        int n = d->hal.recv(d->hal.ctx, d->rx + d->rx_len, want - d->rx_len);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        d->rx_len += (size_t)n;
    }
    return 1;
}

/* A handshake read: true once want bytes are in. Otherwise false, with *st set to the failure (socket
 * error, or the step's deadline passed) or left alone while the bytes may still come. */
static bool fill_by_deadline(sw_device *d, size_t want, sw_status *st)
{
    int r = fill(d, want);
    if (r < 0)
        *st = fail(d, SW_ERR_IO);
    else if (r == 0 && expired(d, d->deadline))
        *st = fail(d, SW_ERR_TIMEOUT);
    return r > 0;
}

/* Reads and drops whatever arrives; -1 when the peer closed. */
static int drain(sw_device *d)
{
    uint8_t junk[64];
    for (;;) {
        int n = d->hal.recv(d->hal.ctx, junk, sizeof junk);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
    }
}

/* The receive buffer of the platform in the Hello: the Photon and P1 take 800 bytes, the Core 640. */
static size_t max_frame(const sw_device *d)
{
    return d->cfg.platform_id == 6 || d->cfg.platform_id == 8 ? SW_MAX_FRAME_PHOTON : SW_MAX_FRAME;
}

static sw_status poll_frames(sw_device *d)
{
    for (int rounds = 0; rounds < 8; rounds++) {
        int r = fill(d, 2);
        if (r < 0)
            return SW_ERR_IO;
        if (r == 0)
            return SW_RUNNING;
        size_t flen = ((size_t)d->rx[0] << 8) | d->rx[1];
        if (flen > max_frame(d)) {
            sw_dev_note(d, SW_NOTE_FRAME_ERROR, "frame longer than the receive buffer", (long)flen);
            return SW_ERR_FRAME_TOO_LARGE;
        }
        if (flen == 0 || flen % 16 != 0) {
            sw_dev_note(d, SW_NOTE_FRAME_ERROR, "frame length not a multiple of 16", (long)flen);
            return SW_ERR_BAD_FRAME;
        }
        r = fill(d, 2 + flen);
        if (r < 0)
            return SW_ERR_IO;
        if (r == 0)
            return SW_RUNNING;
        d->rx_len = 0;
        sw_status st = sw_device_handle_frame(d, d->rx + 2, flen);
        if (st != SW_RUNNING)
            return st;
    }
    return SW_RUNNING;
}

static sw_status session_timers(sw_device *d)
{
    uint32_t t = sw_dev_now(d);
    if (d->ota_silent)
        return SW_RUNNING;
    if (d->ping_pending) {
        if (t - d->ping_sent_at >= d->cfg.ping_timeout_ms)
            return SW_ERR_PING_TIMEOUT;
    } else if (t - d->last_rx >= d->cfg.ping_idle_ms) {
        uint8_t m[4];
        uint16_t id = sw_dev_next_id(d);
        m[0] = 0x40; m[1] = 0x00; m[2] = (uint8_t)(id >> 8); m[3] = (uint8_t)id;
        d->ping_pending = true;
        d->ping_sent_at = t;
        sw_dev_note(d, SW_NOTE_PING_SENT, NULL, id);
        sw_status st = sw_dev_send(d, m, 4);
        if (st != SW_RUNNING)
            return st;
    }
    return sw_ota_timer(d, t);
}

sw_status sw_device_poll(sw_device *d)
{
    if (d->state == ST_DONE)
        return d->result;
    sw_status st = SW_RUNNING;
    if (d->stop_requested) {
        d->state = ST_DONE;
        d->result = d->result < 0 ? d->result : SW_FINISHED;
        return d->result;
    }
    switch (d->state) {
    case ST_IDLE:
        return SW_RUNNING;
    case ST_NONCE: {
        if (d->cfg.private_key == NULL || d->cfg.server_key == NULL) {
            st = SW_ERR_CONFIG;
            break;
        }
        if (!fill_by_deadline(d, SW_NONCE_LEN, &st))
            break;
        memcpy(d->nonce, d->rx, SW_NONCE_LEN);
        d->rx_len = 0;
        if (stop_here(d, SW_STEP_NONCE))
            break;
        st = send_id_block(d);
        if (st == SW_ERR_SERVER_KEY || st == SW_ERR_CONFIG)
            break;
        if (st != SW_RUNNING) {
            st = fail(d, st);
            break;
        }
        if (stop_here(d, SW_STEP_ID_BLOCK))
            break;
        d->state = ST_SESSION_BLOCK;
        d->deadline = sw_dev_now(d) + d->cfg.io_timeout_ms;
        break;
    }
    case ST_SESSION_BLOCK: {
        if (!fill_by_deadline(d, SW_SESSION_BLOCK_LEN, &st))
            break;
        d->rx_len = 0;
        st = check_session_block(d);
        if (st != SW_RUNNING) {
            st = fail(d, st);
            break;
        }
        if (stop_here(d, SW_STEP_SESSION_BLOCK))
            break;
        int n = sw_build_hello(&d->cfg, sw_dev_next_id(d), d->msg, sizeof d->msg);
        st = sw_dev_send(d, d->msg, n);
        if (st != SW_RUNNING)
            break;
        if (stop_here(d, SW_STEP_HELLO))
            break;
        if (d->cfg.generation == 1) {
            if (d->cfg.send_time_request && !d->time_requested) {
                d->time_requested = true;
                if (request_time(d) < 0) {
                    st = SW_ERR_IO;
                    break;
                }
            }
            st = become_connected(d);
        } else {
            d->state = ST_WAIT_HELLO;
            d->deadline = sw_dev_now(d) + d->cfg.hello_timeout_ms;
        }
        break;
    }
    case ST_WAIT_HELLO:
        st = poll_frames(d);
        if (st == SW_RUNNING && d->state == ST_WAIT_HELLO && expired(d, d->deadline))
            st = SW_ERR_MESSAGE_TIMEOUT;
        break;
    case ST_CONNECTED:
        st = poll_frames(d);
        if (st == SW_RUNNING)
            st = session_timers(d);
        break;
    case ST_SILENT:
        if (drain(d) < 0)
            st = SW_ERR_IO;
        break;
    case ST_HELD:
        if (drain(d) < 0)
            st = d->result;
        break;
    case ST_FAILING:
        if (expired(d, d->deadline))
            st = d->result;
        break;
    default:
        break;
    }
    if (st != SW_RUNNING) {
        d->state = ST_DONE;
        d->result = st;
    }
    return st;
}
