/* sparkwire libkeyring: the Spark meaning of a decrypted CoAP message (docs/protocol.md 4).
 *
 * CoAP syntax comes from libcoap (RFC 7252 header, options, payload marker). A table maps the code and the
 * first Uri-Path letter to the message kind, as the device classifies what it receives; each kind has one
 * small decode function. Describe, OTA and the matching of answers to requests live in msg_describe.c,
 * msg_ota.c and msg_match.c. */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <coap3/coap.h>
#include "msg_int.h"
#include "../src/internal.h"

/* libcoap is started on first need and stopped by kr_library_end. */
static pthread_mutex_t coap_lock = PTHREAD_MUTEX_INITIALIZER;
static bool coap_started;

static void coap_init_once(void)
{
    if (__atomic_load_n(&coap_started, __ATOMIC_ACQUIRE))
        return;              /* every message after the first */
    pthread_mutex_lock(&coap_lock);
    if (!coap_started) {
        coap_startup();
        coap_set_log_level(LOG_EMERG);
        __atomic_store_n(&coap_started, true, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&coap_lock);
}

void kr_msg_end(void)
{
    pthread_mutex_lock(&coap_lock);
    if (coap_started)
        coap_cleanup();
    __atomic_store_n(&coap_started, false, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&coap_lock);
}

/* ---- text helpers ------------------------------------------------------------------------------- */

/* The bytes that stand as they are in printable text: printable ASCII but the backslash. */
#define PLAIN(c) ((c) >= 0x20 && (c) < 0x7f && (c) != '\\')
#define PLAIN4(b) PLAIN(b), PLAIN((b) + 1), PLAIN((b) + 2), PLAIN((b) + 3)
#define PLAIN16(b) PLAIN4(b), PLAIN4((b) + 4), PLAIN4((b) + 8), PLAIN4((b) + 12)
#define PLAIN64(b) PLAIN16(b), PLAIN16((b) + 16), PLAIN16((b) + 32), PLAIN16((b) + 48)
static const bool plain[256] = { PLAIN64(0), PLAIN64(64), PLAIN64(128), PLAIN64(192) };

/* Printable text of bytes: ASCII as is, other bytes as \xNN; cut with "..." when out is full. Returns its
 * length. */
size_t kr_msg_printable(const uint8_t *d, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return 0;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        /* a run of bytes that stand as they are, as far as they fit with room left for "..." */
        size_t room = o + 5 <= cap ? cap - 4 - o : 0;
        size_t lim = n - i < room ? n : i + room;
        while (i < lim && plain[d[i]])
            out[o++] = (char)d[i++];
        if (i == n)
            break;
        char tmp[4] = { (char)d[i], '\\', 0, 0 };
        size_t l = 1;
        if (d[i] == '\\') {
            l = 2;
        } else if (d[i] < 0x20 || d[i] >= 0x7f) {
            memcpy(tmp, "\\x", 2);
            tmp[2] = hex[d[i] >> 4];
            tmp[3] = hex[d[i] & 15];
            l = 4;
        }
        if (o + l + 4 > cap) {
            if (o + 4 <= cap) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(out + o, tmp, l);
        o += l;
    }
    out[o] = '\0';
    return o;
}

void kr_msg_hex(const uint8_t *d, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n && o + 3 < cap; i++, o += 2) {
        out[o] = hex[d[i] >> 4];
        out[o + 1] = hex[d[i] & 15];
    }
    out[o] = '\0';
}

size_t kr_msg_seg_text(const kr_seg *s, char *out, size_t cap)
{
    return kr_msg_printable(s->v, s->len, out, cap);
}

uint32_t kr_msg_be(const uint8_t *d, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n && i < 4; i++)
        v = v << 8 | d[i];
    return v;
}

int kr_msg_ms(double s)
{
    return (int)(s * 1000.0 + (s >= 0 ? 0.5 : -0.5));
}

/* ---- CRC-32 (IEEE 802.3, reflected, as the OTA chunks carry it) --------------------------------- */

uint32_t kr_crc32(const uint8_t *data, size_t len)
{
    static uint32_t table[256];
    static gsize init = 0;
    if (g_once_init_enter(&init)) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        g_once_init_leave(&init, 1);
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

/* ---- findings queued during interpretation -------------------------------------------------------- */

void kr_msg_pend(kr_tracker *t, kr_finding_code code, const char *fmt, ...)
{
    if (t->n_pend >= 4)
        return;
    if (!t->pend && !(t->pend = calloc(4, sizeof *t->pend)))
        return;    /* made when a finding waits, given back once it is out */
    t->pend[t->n_pend].code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->pend[t->n_pend].text, sizeof t->pend[t->n_pend].text, fmt, ap);
    va_end(ap);
    t->n_pend++;
}

void kr_msg_after(kr_tracker *t, const kr_message *m)
{
    if (!t->pend)
        return;   /* no finding waits (nearly every message) */
    for (int i = 0; i < t->n_pend; i++)
        kr_tracker_emit_finding(t, t->pend[i].code, m->dir, m->time, m->frame_offset, "%s", t->pend[i].text);
    t->n_pend = 0;
    free(t->pend);
    t->pend = NULL;
}

/* ---- CoAP parsing ------------------------------------------------------------------------------- */

/* The message's header, token, options and payload: the quick reader first, libcoap for what it leaves. */
static bool parse_coap(const uint8_t *pt, size_t len, kr_message *m, kr_coap_view *cv)
{
    return kr_coap_quick(pt, len, m, cv) || kr_coap_libcoap(pt, len, m, cv);
}

bool kr_coap_libcoap(const uint8_t *pt, size_t len, kr_message *m, kr_coap_view *cv)
{
    memset(cv, 0, sizeof *cv);
    /* the cloud's empty ACKs carry a 1-byte token (docs/protocol.md 4.2), which CoAP forbids */
    if (len == 5 && pt[1] == KR_COAP_EMPTY && (pt[0] & 0x0f) == 1) {
        m->type = (pt[0] >> 4) & 3;
        m->code = KR_COAP_EMPTY;
        m->msg_id = (uint16_t)(pt[2] << 8 | pt[3]);
        m->token_len = 1;
        m->token[0] = pt[4];
        return true;
    }
    coap_init_once();
    coap_pdu_t *pdu = coap_pdu_init(0, 0, 0, len);
    if (!pdu)
        return false;
    if (!coap_pdu_parse(COAP_PROTO_UDP, pt, len, pdu)) {
        coap_delete_pdu(pdu);
        return false;
    }
    m->type = (uint8_t)coap_pdu_get_type(pdu);
    m->code = (uint8_t)coap_pdu_get_code(pdu);
    m->msg_id = (uint16_t)coap_pdu_get_mid(pdu);
    coap_bin_const_t tok = coap_pdu_get_token(pdu);
    m->token_len = (uint8_t)(tok.length > 8 ? 8 : tok.length);
    if (tok.length)
        memcpy(m->token, tok.s, m->token_len);
    coap_opt_iterator_t it;
    coap_opt_t *opt;
    coap_option_iterator_init(pdu, &it, COAP_OPT_ALL);
    /* option values point into the pdu's copy of the bytes, laid out as on the wire from the token on:
     * translate them to pt, which outlives the pdu */
    const uint8_t *tokp = tok.s;
    while ((opt = coap_option_next(&it)) != NULL) {
        const uint8_t *v = coap_opt_value(opt);
        size_t l = coap_opt_length(opt);
        const uint8_t *mapped = NULL;
        if (tokp && v >= tokp && 4 + (size_t)(v - tokp) + l <= len)
            mapped = pt + 4 + (size_t)(v - tokp);
        if (!mapped || (l && memcmp(mapped, v, l) != 0))
            continue;
        kr_coap_view_option(cv, it.number, (kr_seg){ mapped, l });
    }
    size_t dl = 0;
    const uint8_t *data = NULL;
    if (coap_get_data(pdu, &dl, &data) && dl > 0 && dl <= len) {
        m->payload = pt + (len - dl);
        m->payload_len = dl;
    }
    coap_delete_pdu(pdu);
    return true;
}

static void uri_text(kr_message *m, const kr_coap_view *cv)
{
    size_t o = 0;
    for (int i = 0; i < cv->n_path && o + 2 < sizeof m->uri; i++) {
        m->uri[o++] = '/';
        o += kr_msg_seg_text(&cv->path[i], m->uri + o, sizeof m->uri - o);
    }
    o = 0;
    for (int i = 0; i < cv->n_query && o + 2 < sizeof m->query; i++) {
        if (i)
            m->query[o++] = '&';
        o += kr_msg_seg_text(&cv->query[i], m->query + o, sizeof m->query - o);
    }
}

static void join_path(const kr_coap_view *cv, int from, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = from; i < cv->n_path && o + 2 < cap; i++) {
        if (i > from)
            out[o++] = '/';
        o += kr_msg_seg_text(&cv->path[i], out + o, cap - o);
    }
}

/* ---- one decode function per request kind ------------------------------------------------------- */

static void dec_hello(kr_tracker *t, kr_message *m, const kr_coap_view *cv)
{
    (void)cv;
    if (m->payload_len >= 6) {
        const uint8_t *p = m->payload;
        m->product_id = (uint16_t)(p[0] << 8 | p[1]);
        m->product_version = (uint16_t)(p[2] << 8 | p[3]);
        m->hello_flags = p[5];
        if (m->payload_len >= 8)
            m->platform_id = p[6] << 8 | p[7];
    }
    if (t->no_texts)
        return;
    kr_txt x = kr_txt_in(m->summary, sizeof m->summary);
    if (m->dir == KR_S2D)
        kr_txt_put(&x, "Cloud Hello");
    else if (m->platform_id >= 0)
        snprintf(m->summary, sizeof m->summary, "Device Hello: product %u, version %u, flags 0x%02x, platform %d (%s)",
                 m->product_id, m->product_version, m->hello_flags, m->platform_id, kr_platform_str(m->platform_id));
    else if (m->payload_len >= 6)
        snprintf(m->summary, sizeof m->summary, "Device Hello: product %u, version %u, flags 0x%02x (first Core "
                 "firmware)", m->product_id, m->product_version, m->hello_flags);
    else
        snprintf(m->summary, sizeof m->summary, "Device Hello");
}

static void dec_function(kr_tracker *t, kr_message *m, const kr_coap_view *cv)
{
    (void)t;
    if (cv->n_path >= 2)
        kr_msg_seg_text(&cv->path[1], m->name, sizeof m->name);
    kr_txt a = kr_txt_in(m->arg, sizeof m->arg), x = kr_txt_in(m->summary, sizeof m->summary);
    kr_txt_put(&a, m->query);
    kr_txt_put(&x, "Function ");
    kr_txt_put(&x, m->name);
    kr_txt_put(&x, "(");
    kr_txt_put(&x, m->arg);
    kr_txt_put(&x, ")");
}

static void dec_variable(kr_tracker *t, kr_message *m, const kr_coap_view *cv)
{
    (void)t;
    if (cv->n_path >= 2)
        kr_msg_seg_text(&cv->path[1], m->name, sizeof m->name);
    kr_txt x = kr_txt_in(m->summary, sizeof m->summary);
    kr_txt_put(&x, "Variable request ");
    kr_txt_put(&x, m->name);
}

static void dec_event(kr_tracker *t, kr_message *m, const kr_coap_view *cv)
{
    m->event_public = cv->path[0].v[0] == 'e';
    if (cv->has_max_age)
        m->ttl = cv->max_age;
    if (t->no_texts)
        return;
    if (m->dir == KR_D2S) {
        if (cv->n_path >= 2)
            kr_msg_seg_text(&cv->path[1], m->name, sizeof m->name);
    } else {
        join_path(cv, 1, m->name, sizeof m->name);
    }
    kr_msg_printable(m->payload, m->payload_len, m->value, sizeof m->value);
    char extra[96];
    kr_txt e = kr_txt_in(extra, sizeof extra), x = kr_txt_in(m->summary, sizeof m->summary);
    if (!m->event_public)
        kr_txt_put(&e, "private");
    if (m->ttl != 60) {
        kr_txt_put(&e, e.n ? ", TTL " : "TTL ");
        kr_txt_int(&e, m->ttl);
        kr_txt_put(&e, " s");
    }
    if (m->dir == KR_S2D)
        kr_txt_put(&e, e.n ? ", from the cloud" : "from the cloud");
    kr_txt_put(&x, "Event ");
    kr_txt_put(&x, m->name);
    if (m->payload_len) {
        kr_txt_put(&x, " = ");
        kr_txt_put(&x, m->value);
    }
    if (extra[0]) {
        kr_txt_put(&x, " (");
        kr_txt_put(&x, extra);
        kr_txt_put(&x, ")");
    }
}

static void dec_subscribe(kr_tracker *t, kr_message *m, const kr_coap_view *cv)
{
    (void)t;
    if (cv->n_path >= 2)
        kr_msg_seg_text(&cv->path[1], m->name, sizeof m->name);
    bool mine = false;
    for (int i = 0; i < cv->n_query; i++)
        if (cv->query[i].len == 1 && cv->query[i].v[0] == 'u')
            mine = true;
    char dev[80] = "", pr[200];
    if (m->payload_len) {
        kr_msg_printable(m->payload, m->payload_len, pr, sizeof pr);
        snprintf(dev, sizeof dev, ", from device %.40s", pr);
    }
    snprintf(m->summary, sizeof m->summary, "Subscribe %s%s%s", m->name[0] ? m->name : "to all events",
             mine ? " (my devices only)" : "", dev);
}

static void dec_signal(kr_tracker *t, kr_message *m, const kr_coap_view *cv)
{
    (void)t;
    bool on = cv->n_query > 0 && cv->query[0].len >= 1 && cv->query[0].v[0] != 0;
    snprintf(m->arg, sizeof m->arg, "%s", on ? "start" : "stop");
    snprintf(m->summary, sizeof m->summary, "Signal %s", m->arg);
}

static void dec_key_change(kr_tracker *t, kr_message *m, const kr_coap_view *cv)
{
    (void)t;
    (void)cv;
    snprintf(m->summary, sizeof m->summary, "Key change (%zu bytes)", m->payload_len);
}

/* Kinds whose summary is their name alone. */
static void dec_title(kr_tracker *t, kr_message *m, const kr_coap_view *cv)
{
    (void)t;
    (void)cv;
    kr_txt x = kr_txt_in(m->summary, sizeof m->summary);
    kr_txt_put(&x, m->kind == KR_MSG_PING ? "Ping" : m->kind == KR_MSG_TIME_REQUEST ? "Time request" : "Save begin");
}

typedef void (*kr_decode_fn)(kr_tracker *t, kr_message *m, const kr_coap_view *cv);

/* (code, first Uri-Path letter) -> kind, as the device classifies a message (docs/protocol.md 4.1), and
 * whether its decode function makes texts only (not called when the caller reads none: kr_tracker_set_texts).
 * The update messages' texts go into the update's findings: they are always made. */
static const struct {
    uint8_t code;
    char letter;
    bool text_only;
    kr_msg_kind kind;
    kr_decode_fn decode;
} kinds[] = {
    { KR_COAP_GET, 'v', true, KR_MSG_VARIABLE_REQUEST, dec_variable },
    { KR_COAP_GET, 'd', true, KR_MSG_DESCRIBE, kr_msg_describe },
    { KR_COAP_GET, 't', true, KR_MSG_TIME_REQUEST, dec_title },
    { KR_COAP_GET, 'e', true, KR_MSG_SUBSCRIBE, dec_subscribe },
    { KR_COAP_GET, 'c', false, KR_MSG_CHUNK_MISSED, kr_msg_chunk_missed },
    { KR_COAP_POST, 'e', false, KR_MSG_EVENT, dec_event },
    { KR_COAP_POST, 'E', false, KR_MSG_EVENT, dec_event },
    { KR_COAP_POST, 'h', false, KR_MSG_HELLO, dec_hello },
    { KR_COAP_POST, 'f', true, KR_MSG_FUNCTION_CALL, dec_function },
    { KR_COAP_POST, 'u', false, KR_MSG_UPDATE_BEGIN, kr_msg_update_begin },
    { KR_COAP_POST, 'c', false, KR_MSG_CHUNK, kr_msg_chunk },
    { KR_COAP_POST, 's', true, KR_MSG_SAVE_BEGIN, dec_title },
    { KR_COAP_PUT, 'k', true, KR_MSG_KEY_CHANGE, dec_key_change },
    { KR_COAP_PUT, 'u', false, KR_MSG_UPDATE_DONE, kr_msg_update_done },
    { KR_COAP_PUT, 's', true, KR_MSG_SIGNAL, dec_signal },
};

/* The kind of a message and its decode function (none for one that makes texts only when texts is false);
 * returns whether it is a request. */
static bool classify(kr_message *m, const kr_coap_view *cv, kr_decode_fn *decode, bool texts)
{
    *decode = NULL;
    m->kind = KR_MSG_UNKNOWN;
    if (m->type == KR_COAP_RST) {
        m->kind = KR_MSG_RST;
        return false;
    }
    if (m->type == KR_COAP_ACK) {
        m->kind = m->code == KR_COAP_EMPTY ? KR_MSG_EMPTY_ACK : KR_MSG_ACK;
        return false;
    }
    if (m->code == KR_COAP_EMPTY) {
        m->kind = m->type == KR_COAP_CON ? KR_MSG_PING : KR_MSG_EMPTY_ACK;
        *decode = m->type == KR_COAP_CON && texts ? dec_title : NULL;
        return m->type == KR_COAP_CON;
    }
    if (m->code != KR_COAP_GET && m->code != KR_COAP_POST && m->code != KR_COAP_PUT)
        return false;   /* a separate response: decided by its token */
    char letter = cv->n_path > 0 && cv->path[0].len >= 1 ? (char)cv->path[0].v[0] : 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].code == m->code && kinds[i].letter == letter) {
            m->kind = kinds[i].kind;
            *decode = texts || !kinds[i].text_only ? kinds[i].decode : NULL;
            break;   /* each (code, letter) is in the table once */
        }
    return true;
}

/* ---- device message-id counter (docs/protocol.md 4.2) ------------------------------------------------ */

static void check_counter(kr_tracker *t, const kr_message *m)
{
    kr_dirstate *dd = &t->d[KR_D2S];
    if (m->dir != KR_D2S || (m->type != KR_COAP_CON && m->type != KR_COAP_NON))
        return;
    if (dd->have_last_id) {
        uint16_t exp = (uint16_t)(dd->last_id + 1);
        if (m->msg_id != exp)
            kr_msg_pend(t, KR_FIND_COUNTER_ERROR, "device message id 0x%04x follows 0x%04x: expected 0x%04x (the "
                        "cloud closes the connection on a counter gap)", m->msg_id, dd->last_id, exp);
    } else if (m->kind == KR_MSG_HELLO && t->session_known && !t->session_from_line && !t->mid_session) {
        /* G1/G2 read the start from the session material big-endian, G3 little-endian (docs/protocol.md 2.4) */
        uint16_t be = (uint16_t)(t->sess.msgid_counter + 1), le = (uint16_t)(t->sess.msgid_counter_le + 1);
        if (m->msg_id != be && m->msg_id != le)
            kr_msg_pend(t, KR_FIND_COUNTER_ERROR, "the device Hello carries message id 0x%04x; the session material "
                        "makes it 0x%04x (or 0x%04x read little-endian)", m->msg_id, be, le);
        else if (m->msg_id == le && le != be)
            krt_saw_g3(t);
    }
    dd->have_last_id = true;
    dd->last_id = m->msg_id;
}

/* ---- the message -------------------------------------------------------------------------------- */

static void begin_message(kr_tracker *t, kr_message *m, kr_dir dir, double ts, uint64_t frame_offset)
{
    /* the numbers zeroed, the texts made empty: a message is begun for every frame, and its texts are
     * read up to their end only */
    memset(m, 0, offsetof(kr_message, uri));
    m->uri[0] = m->query[0] = '\0';
    memset(&m->payload, 0, offsetof(kr_message, summary) - offsetof(kr_message, payload));
    m->summary[0] = m->name[0] = m->arg[0] = m->value[0] = '\0';
    memset(&m->var_type, 0, sizeof *m - offsetof(kr_message, var_type));
    m->dir = dir;
    m->time = ts;
    m->frame_offset = frame_offset;
    m->index = t->msg_index;
    m->answers = -1;
    m->platform_id = -1;
    m->chunk_index = -1;
    m->ttl = 60;
    m->chunk_crc_ok = KR_UNKNOWN;
    t->n_pend = 0;
}

bool kr_msg_peek(const uint8_t *pt, size_t len, kr_msg_kind *kind)
{
    kr_message m;
    kr_coap_view cv;
    kr_decode_fn decode;
    memset(&m, 0, sizeof m);
    if (!parse_coap(pt, len, &m, &cv))
        return false;
    classify(&m, &cv, &decode, false);
    *kind = m.kind;
    return true;
}

void kr_msg_interpret(kr_tracker *t, kr_message *m, kr_dir dir, double ts, uint64_t frame_offset,
                      const uint8_t *pt, size_t len, bool first_block_lost)
{
    begin_message(t, m, dir, ts, frame_offset);
    if (first_block_lost) {
        char pr[160];
        m->first_block_lost = true;
        m->payload = pt;
        m->payload_len = len;
        if (t->no_texts)
            return;
        kr_msg_printable(pt, len > 96 ? 96 : len, pr, sizeof pr);
        snprintf(m->summary, sizeof m->summary, "first block lost; %zu more bytes: \"%s\"", len, pr);
        return;
    }
    kr_coap_view cv;
    if (!parse_coap(pt, len, m, &cv)) {
        m->payload = pt;
        m->payload_len = len;
        if (!t->no_texts)
            snprintf(m->summary, sizeof m->summary, "not a valid CoAP message (%zu bytes)", len);
        kr_msg_pend(t, KR_FIND_DECRYPT_ERROR, "the frame decrypts with valid padding but is not a valid CoAP "
                    "message (%zu bytes)", len);
        return;
    }
    if (!t->no_texts)
        uri_text(m, &cv);
    kr_decode_fn decode;
    bool is_request = classify(m, &cv, &decode, !t->no_texts);
    check_counter(t, m);
    if (decode)
        decode(t, m, &cv);
    if (m->type == KR_COAP_ACK || m->type == KR_COAP_RST)
        kr_msg_response(t, m);
    else if (m->code >> 5 >= 2)
        kr_msg_separate_response(t, m);
    if (t->no_texts) {
        /* the caller reads no summary */
    } else if (m->kind == KR_MSG_UNKNOWN && m->summary[0] == '\0') {
        char cs[8];
        snprintf(m->summary, sizeof m->summary, "CoAP %s %s %s%s%s", kr_coap_type_str(m->type),
                 kr_coap_code_str(m->code, cs), m->uri, m->query[0] ? "?" : "", m->query);
    } else if (m->kind == KR_MSG_EMPTY_ACK && m->summary[0] == '\0') {
        snprintf(m->summary, sizeof m->summary, "Empty message");
    }
    if (is_request)
        kr_msg_remember(t, m);
}
