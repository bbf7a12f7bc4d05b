/* sparkwire libkeyring: what the message files (message.c, msg_match.c, msg_ota.c, msg_describe.c) share. */
#ifndef KEYRING_MSG_INT_H
#define KEYRING_MSG_INT_H

#include <string.h>
#include "tracker_int.h"
#include "keyring/names.h"

/* Text fields have fixed sizes; cutting an over-long name or note is intended. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define KR_MAX_PATH_SEGS 16
#define KR_MAX_QUERIES   8

/* CoAP message types and the codes the protocol uses (docs/protocol.md 4.1). */
enum {
    KR_COAP_CON = 0, KR_COAP_NON = 1, KR_COAP_ACK = 2, KR_COAP_RST = 3
};
enum {
    KR_COAP_EMPTY = 0x00, KR_COAP_GET = 0x01, KR_COAP_POST = 0x02, KR_COAP_PUT = 0x03,
    KR_COAP_CHANGED = 0x44, KR_COAP_CONTENT = 0x45, KR_COAP_BAD_REQUEST = 0x80
};

typedef struct kr_seg {
    const uint8_t *v;
    size_t len;
} kr_seg;

/* The options of one message that the protocol reads, pointing into the plaintext. */
typedef struct kr_coap_view {
    kr_seg path[KR_MAX_PATH_SEGS];
    int n_path;
    kr_seg query[KR_MAX_QUERIES];
    int n_query;
    bool has_max_age;
    uint32_t max_age;
} kr_coap_view;

/* A text made in a fixed buffer without printf (summaries are made for every message): appends are cut at
 * the buffer's end as snprintf cuts, and the text stays terminated. */
typedef struct kr_txt {
    char *s;
    size_t cap, n;
} kr_txt;

static inline kr_txt kr_txt_in(char *s, size_t cap)
{
    s[0] = '\0';
    return (kr_txt){ s, cap, 0 };
}

static inline void kr_txt_put(kr_txt *x, const char *a)
{
    size_t room = x->cap - 1 - x->n;
    /* a literal's length is known when this is compiled: only other texts are measured */
    size_t l = __builtin_constant_p(__builtin_strlen(a)) ? __builtin_strlen(a) : strnlen(a, room);
    if (l > room)
        l = room;
    memcpy(x->s + x->n, a, l);
    x->n += l;
    x->s[x->n] = '\0';
}

/* A signed decimal number */
static inline void kr_txt_int(kr_txt *x, long long v)
{
    char b[24], *p = b + sizeof b;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    *--p = '\0';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    kr_txt_put(x, p);
}

/* CoAP reading: message.c reads with libcoap (every message), coap_quick.c the usual ones without a heap PDU
 * (false, with nothing of m set, for any other); both fill the header fields, token and payload of m and the
 * view of the options. */
bool kr_coap_libcoap(const uint8_t *pt, size_t len, kr_message *m, kr_coap_view *cv);
bool kr_coap_quick(const uint8_t *pt, size_t len, kr_message *m, kr_coap_view *cv);
uint32_t kr_msg_be(const uint8_t *d, size_t n);

/* Files one option (RFC 7252 numbers: Uri-Path 11, Max-Age 14, Uri-Query 15) into the view. */
static inline void kr_coap_view_option(kr_coap_view *cv, uint16_t number, kr_seg s)
{
    if (number == 11 && cv->n_path < KR_MAX_PATH_SEGS)
        cv->path[cv->n_path++] = s;
    else if (number == 15 && cv->n_query < KR_MAX_QUERIES)
        cv->query[cv->n_query++] = s;
    else if (number == 14) {
        cv->has_max_age = true;
        cv->max_age = kr_msg_be(s.v, s.len);
    }
}

/* message.c: text helpers and queued findings */
size_t kr_msg_printable(const uint8_t *d, size_t n, char *out, size_t cap);   /* returns the length */
void kr_msg_hex(const uint8_t *d, size_t n, char *out, size_t cap);
size_t kr_msg_seg_text(const kr_seg *s, char *out, size_t cap);
int kr_msg_ms(double s);
void kr_msg_pend(kr_tracker *t, kr_finding_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* msg_describe.c: Describe requests and answers, variable values */
void kr_msg_describe(kr_tracker *t, kr_message *m, const kr_coap_view *cv);
void kr_msg_describe_answer(kr_tracker *t, kr_message *m);
void kr_msg_variable_value(kr_tracker *t, kr_message *m, const char *name);
void kr_msg_format_value(kr_message *m, kr_var_type type);
void kr_describe_add_func(kr_tracker *t, const uint8_t *name, size_t len);
void kr_describe_add_var(kr_tracker *t, const uint8_t *name, size_t len, int type);

/* describe_json.c: the quick reader of a describe answer's usual JSON. Which of f (an array), v (an
 * object), p and m (an array) the answer has, the platform and the number of modules; t's functions and
 * variables are set when f or v is there. False, with nothing changed, when json-c must read it. */
typedef struct kr_describe_seen {
    bool hf, hv, hp, hm;
    int platform;
    size_t modules;
} kr_describe_seen;
bool kr_describe_quick(kr_tracker *t, const uint8_t *d, size_t n, kr_describe_seen *out);
/* msg_describe.c: the same read by json-c (any JSON it takes); false when it is not a JSON object */
bool kr_describe_jsonc(kr_tracker *t, const uint8_t *d, size_t n, kr_describe_seen *seen);

/* msg_ota.c: the update messages and what their answers mean for the update */
void kr_msg_update_begin(kr_tracker *t, kr_message *m, const kr_coap_view *cv);
void kr_msg_chunk(kr_tracker *t, kr_message *m, const kr_coap_view *cv);
void kr_msg_chunk_missed(kr_tracker *t, kr_message *m, const kr_coap_view *cv);
void kr_msg_update_done(kr_tracker *t, kr_message *m, const kr_coap_view *cv);
void kr_ota_answer(kr_tracker *t, const kr_message *m, const kr_request *r);
void kr_msg_update_ready(kr_tracker *t, kr_message *m);
void kr_msg_chunk_received(kr_tracker *t, kr_message *m, const kr_request *r);

/* msg_match.c: request memory and the responses that answer requests */
void kr_msg_remember(kr_tracker *t, const kr_message *m);
void kr_msg_response(kr_tracker *t, kr_message *m);
void kr_msg_separate_response(kr_tracker *t, kr_message *m);

#endif
