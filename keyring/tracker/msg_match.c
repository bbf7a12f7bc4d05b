/* sparkwire libkeyring: which earlier request an ACK or a separate response answers (docs/protocol.md 4.2),
 * and the meaning the answer takes from it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "msg_int.h"

/* The slot of dir's next request: the ring is made at the first request and grows 4, 8, 16 slots before
 * it first wraps, so a short session holds only what it used. NULL when out of memory. */
static kr_request *next_slot(kr_tracker *t, kr_dir d)
{
    unsigned slot = t->req_next[d] % KR_REQ_RING, had = t->req_cap[d];
    if (slot >= had) {
        unsigned cap = had ? had * 2 : 4;
        if (cap > KR_REQ_RING)
            cap = KR_REQ_RING;
        kr_request *n = realloc(t->req[d], cap * sizeof *n);
        if (!n)
            return NULL;
        memset(n + had, 0, (cap - had) * sizeof *n);
        t->req[d] = n;
        t->req_cap[d] = (uint8_t)cap;
    }
    return &t->req[d][slot];
}

/* A direction's request texts ("name\0arg\0", each part at most REQ_TEXT_MAX bytes) lie end to end in the
 * order the requests came. A request's text is dropped when its slot is taken again, and slots are taken
 * oldest first, so the texts still needed always follow each other: when the end is reached they move to
 * the start, and the block grows only while more text is held at once than ever before (never past
 * REQ_TEXT_MOST). Remembering requests thus costs no allocation in a running session. */
#define REQ_TEXT_MAX  63
#define REQ_TEXT_MOST (KR_REQ_RING * 2 * (REQ_TEXT_MAX + 1))

/* Moves the texts of dir's requests to the start of its block. */
static void texts_to_start(kr_tracker *t, kr_dir d)
{
    struct krt_reqtext *x = t->req_text[d];
    unsigned from = x->tail;
    for (unsigned k = 0; k < t->req_cap[d]; k++) {
        const kr_request *q = &t->req[d][k];
        if (q->used && (q->name_len || q->arg_len) && q->text_at < from)
            from = q->text_at;
    }
    memmove(x->b, x->b + from, x->tail - from);
    x->tail = (uint16_t)(x->tail - from);
    for (unsigned k = 0; k < t->req_cap[d]; k++) {
        kr_request *q = &t->req[d][k];
        if (q->used && (q->name_len || q->arg_len))
            q->text_at = (uint16_t)(q->text_at - from);
    }
}

/* Room for need bytes of text at the end of dir's block; NULL when out of memory. */
static char *text_room(kr_tracker *t, kr_dir d, size_t need)
{
    struct krt_reqtext *x = t->req_text[d];
    if (x && x->tail + need > x->cap)
        texts_to_start(t, d);
    if (!x || x->tail + need > x->cap) {
        size_t tail = x ? x->tail : 0, cap = x ? (size_t)x->cap * 2 : 64;
        if (cap < tail + need)
            cap = (tail + need + 63) & ~(size_t)63;
        if (cap > REQ_TEXT_MOST)
            cap = REQ_TEXT_MOST;
        if (cap < tail + need)
            return NULL;       /* cannot be: the ring holds at most REQ_TEXT_MOST bytes of text */
        struct krt_reqtext *g = realloc(x, sizeof *g + cap);
        if (!g)
            return NULL;
        g->cap = (uint16_t)cap;
        g->tail = (uint16_t)tail;
        t->req_text[d] = x = g;
    }
    char *at = x->b + x->tail;
    x->tail = (uint16_t)(x->tail + need);
    return at;
}

void kr_msg_prefetch(const kr_tracker *t, kr_dir dir)
{
    unsigned mine = t->req_next[dir] % KR_REQ_RING, last = (t->req_next[!dir] + KR_REQ_RING - 1) % KR_REQ_RING;
    if (mine < t->req_cap[dir])
        __builtin_prefetch(&t->req[dir][mine], 1);
    if (last < t->req_cap[!dir])
        __builtin_prefetch(&t->req[!dir][last]);
}

static const char *req_name(const kr_tracker *t, const kr_request *r)
{
    return r->name_len ? t->req_text[r->dir]->b + r->text_at : "";
}

static const char *req_arg(const kr_tracker *t, const kr_request *r)
{
    return r->arg_len ? t->req_text[r->dir]->b + r->text_at + r->name_len + 1 : "";
}

void kr_msg_remember(kr_tracker *t, const kr_message *m)
{
    kr_request *r = next_slot(t, m->dir);
    if (!r)
        return;
    t->req_next[m->dir]++;
    memset(r, 0, sizeof *r);       /* its earlier text is no longer needed */
    r->used = true;
    r->dir = (uint8_t)m->dir;
    r->kind = m->kind;
    r->index = m->index;
    r->msg_id = m->msg_id;
    r->type = m->type;
    r->token_len = m->token_len;
    memcpy(r->token, m->token, sizeof r->token);
    r->time = m->time;
    r->chunk_index = m->kind == KR_MSG_CHUNK ? m->chunk_index : -1;
    size_t nl = strnlen(m->name, REQ_TEXT_MAX), al = strnlen(m->arg, REQ_TEXT_MAX);
    char *at = nl || al ? text_room(t, m->dir, nl + al + 2) : NULL;
    if (!at)
        return;
    r->text_at = (uint16_t)(at - t->req_text[m->dir]->b);
    r->name_len = (uint8_t)nl;
    r->arg_len = (uint8_t)al;
    memcpy(at, m->name, nl);
    at[nl] = '\0';
    memcpy(at + nl + 1, m->arg, al);
    at[nl + 1 + al] = '\0';
}

static bool same_token(const kr_request *r, const kr_message *m)
{
    return m->token_len && r->token_len == m->token_len && memcmp(r->token, m->token, m->token_len) == 0;
}

/* The newest request of the other direction that passes `fits`. */
static kr_request *find_request(kr_tracker *t, kr_dir from, const kr_message *m,
                                bool (*fits)(const kr_request *r, const kr_message *m))
{
    kr_dir other = from == KR_D2S ? KR_S2D : KR_D2S;
    for (unsigned i = 0; i < KR_REQ_RING; i++) {
        unsigned k = (t->req_next[other] + KR_REQ_RING - 1 - i) % KR_REQ_RING;
        if (k >= t->req_cap[other])
            continue;
        kr_request *r = &t->req[other][k];
        if (r->used && fits(r, m))
            return r;
    }
    return NULL;
}

/* An ACK answers the CON or NON request with its message id. */
static bool fits_ack(const kr_request *r, const kr_message *m)
{
    return !r->acked && r->msg_id == m->msg_id && (r->type == KR_COAP_CON || r->type == KR_COAP_NON);
}

/* Firmware 0.8 and later answer a Signal with an ACK 2.04 that carries the device's own next message id;
 * only the token is the request's (docs/protocol.md 4.2). */
static bool fits_signal_token(const kr_request *r, const kr_message *m)
{
    return !r->acked && r->kind == KR_MSG_SIGNAL && same_token(r, m);
}

/* A separate response (device NON 2.04 / 4.00) answers a cloud request with the same token. */
static bool fits_token(const kr_request *r, const kr_message *m)
{
    return !r->answered && same_token(r, m) && (r->kind == KR_MSG_FUNCTION_CALL ||
                                                r->kind == KR_MSG_UPDATE_BEGIN || r->kind == KR_MSG_CHUNK);
}

/* The words for the request an answer answers, appended to x (without printf: one per answer). */
static void request_title(const kr_tracker *t, const kr_request *r, kr_txt *x)
{
    switch (r->kind) {
    case KR_MSG_FUNCTION_CALL: kr_txt_put(x, "Function call "); kr_txt_put(x, req_name(t, r)); break;
    case KR_MSG_VARIABLE_REQUEST: kr_txt_put(x, "Variable request "); kr_txt_put(x, req_name(t, r)); break;
    case KR_MSG_EVENT: kr_txt_put(x, "Event "); kr_txt_put(x, req_name(t, r)); break;
    case KR_MSG_SUBSCRIBE: kr_txt_put(x, "Subscribe "); kr_txt_put(x, r->name_len ? req_name(t, r) : "(all)"); break;
    case KR_MSG_CHUNK: kr_txt_put(x, "Chunk "); kr_txt_int(x, r->chunk_index); break;
    case KR_MSG_SIGNAL: kr_txt_put(x, "Signal "); kr_txt_put(x, req_arg(t, r)); break;
    default: kr_txt_put(x, kr_msg_kind_title(r->kind)); break;
    }
}

/* "ACK to Ping (12 ms)", "ACK 4.00 to Event x (12 ms): slow down" */
static void answer_summary(const kr_tracker *t, kr_message *m, const kr_request *r)
{
    char cs[8];
    kr_txt x = kr_txt_in(m->summary, sizeof m->summary);
    if (m->code == KR_COAP_EMPTY) {
        kr_txt_put(&x, kr_coap_type_str(m->type));
    } else {
        kr_txt_put(&x, "ACK ");
        kr_txt_put(&x, kr_coap_code_str(m->code, cs));
    }
    kr_txt_put(&x, " to ");
    request_title(t, r, &x);
    kr_txt_put(&x, " (");
    kr_txt_int(&x, kr_msg_ms(m->response_time));
    kr_txt_put(&x, " ms)");
    if (m->code == KR_COAP_BAD_REQUEST)
        kr_txt_put(&x, r->kind == KR_MSG_EVENT ? ": slow down" : ": refused");
}

static void time_response(const kr_tracker *t, kr_message *m)
{
    m->kind = KR_MSG_TIME_RESPONSE;
    m->unix_time = kr_msg_be(m->payload, 4);
    if (t->no_texts)
        return;
    time_t tt = (time_t)m->unix_time;
    struct tm tmv;
    gmtime_r(&tt, &tmv);
    strftime(m->value, sizeof m->value, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    snprintf(m->summary, sizeof m->summary, "Time %s", m->value);
}

/* The device's own next message id on a Signal ACK counts as used (firmware 0.8 and later). */
static void count_signal_ack_id(kr_tracker *t, kr_message *m)
{
    kr_dirstate *dd = &t->d[KR_D2S];
    size_t l = strlen(m->summary);
    if (m->dir == KR_D2S && dd->have_last_id && m->msg_id == (uint16_t)(dd->last_id + 1)) {
        dd->last_id = m->msg_id;
        krt_saw_g3(t);
        if (!t->no_texts)
            snprintf(m->summary + l, sizeof m->summary - l, "; matched by token, it carries the device's next "
                 "message id 0x%04x", m->msg_id);
    } else if (!t->no_texts) {
        snprintf(m->summary + l, sizeof m->summary - l, "; matched by token (message id 0x%04x)", m->msg_id);
    }
}

/* An ACK (or RST) to request r. */
static void answer(kr_tracker *t, kr_message *m, kr_request *r, bool by_token)
{
    r->acked = true;
    m->answers = (int)r->index;
    m->answers_kind = r->kind;
    m->response_time = m->time - r->time;
    if (!by_token && m->code != KR_COAP_EMPTY && r->token_len && !same_token(r, m))
        kr_msg_pend(t, KR_FIND_COUNTER_ERROR, "the ACK to message id 0x%04x does not echo its request's token",
                    m->msg_id);
    bool content = m->type == KR_COAP_ACK && m->code == KR_COAP_CONTENT;
    if (content && r->kind == KR_MSG_DESCRIBE) {
        kr_msg_describe_answer(t, m);
    } else if (content && r->kind == KR_MSG_VARIABLE_REQUEST) {
        kr_msg_variable_value(t, m, req_name(t, r));
    } else if (content && r->kind == KR_MSG_TIME_REQUEST && m->payload_len >= 4) {
        time_response(t, m);
    } else {
        kr_ota_answer(t, m, r);
        if (!t->no_texts)
            answer_summary(t, m, r);
    }
    if (by_token)
        count_signal_ack_id(t, m);
}

/* An ACK or RST: piggy-backed answers, empty ACKs. */
void kr_msg_response(kr_tracker *t, kr_message *m)
{
    char cs[8];
    kr_request *r = find_request(t, m->dir, m, fits_ack);
    bool by_token = false;
    if (!r && m->type == KR_COAP_ACK && m->dir == KR_D2S) {
        r = find_request(t, m->dir, m, fits_signal_token);
        by_token = r != NULL;
    }
    bool content = m->type == KR_COAP_ACK && m->code == KR_COAP_CONTENT;
    if (r)
        answer(t, m, r, by_token);
    else if (content && m->payload_len > 0 && m->payload[0] == '{')
        kr_msg_describe_answer(t, m);   /* two-part answers of firmware 0.4-0.6 */
    else if (content && m->dir == KR_S2D && m->payload_len == 4)
        time_response(t, m);
    else if (content && m->dir == KR_D2S)
        kr_msg_variable_value(t, m, NULL);
    else if (!t->no_texts)
        snprintf(m->summary, sizeof m->summary, "%s %s (id 0x%04x, request not seen)", kr_coap_type_str(m->type),
                 kr_coap_code_str(m->code, cs), m->msg_id);
}

static void function_return(const kr_tracker *t, kr_message *m, const kr_request *r)
{
    char cs[8];
    m->kind = KR_MSG_FUNCTION_RETURN;
    if (t->no_texts)
        return;
    if (r) {
        kr_txt n = kr_txt_in(m->name, sizeof m->name), a = kr_txt_in(m->arg, sizeof m->arg);
        kr_txt_put(&n, req_name(t, r));
        kr_txt_put(&a, req_arg(t, r));
    }
    if (m->payload_len == 4) {
        kr_txt v = kr_txt_in(m->value, sizeof m->value);
        kr_txt_int(&v, (int32_t)kr_msg_be(m->payload, 4));
    } else {
        kr_msg_format_value(m, KR_VAR_UNKNOWN);
    }
    if (!r) {
        snprintf(m->summary, sizeof m->summary, "Function return %s (request not seen)", m->value);
        return;
    }
    kr_txt x = kr_txt_in(m->summary, sizeof m->summary);
    kr_txt_put(&x, "Function ");
    kr_txt_put(&x, m->name);
    kr_txt_put(&x, "(");
    kr_txt_put(&x, m->arg);
    kr_txt_put(&x, ") -> ");
    kr_txt_put(&x, m->value);
    if (m->code != KR_COAP_CHANGED) {
        size_t l = strlen(m->summary);
        snprintf(m->summary + l, sizeof m->summary - l, " (code %s)", kr_coap_code_str(m->code, cs));
    }
}

/* A CON/NON message with a response code: function return, update ready, chunk received. */
void kr_msg_separate_response(kr_tracker *t, kr_message *m)
{
    char cs[8];
    kr_request *r = find_request(t, m->dir, m, fits_token);
    bool d2s = m->dir == KR_D2S;
    if (r) {
        r->answered = true;
        m->answers = (int)r->index;
        m->answers_kind = r->kind;
        m->response_time = m->time - r->time;
        if (r->kind == KR_MSG_FUNCTION_CALL)
            function_return(t, m, r);
        else if (r->kind == KR_MSG_UPDATE_BEGIN)
            kr_msg_update_ready(t, m);
        else
            kr_msg_chunk_received(t, m, r);
    } else if (d2s && m->code == KR_COAP_CHANGED && m->payload_len == 4) {
        function_return(t, m, NULL);
    } else if (d2s && (m->code == KR_COAP_CHANGED || m->code == KR_COAP_BAD_REQUEST) && t->ota && t->ota->active &&
               t->ota->chunks > 0) {
        m->kind = KR_MSG_CHUNK_RECEIVED;
        m->chunk_index = t->ota->last_chunk_index;
        if (!t->no_texts)
            snprintf(m->summary, sizeof m->summary, "Chunk received %s (request not seen)",
                 m->code == KR_COAP_CHANGED ? "OK" : "BAD");
    } else if (d2s && m->code == KR_COAP_CHANGED && t->ota && t->ota->active) {
        m->kind = KR_MSG_UPDATE_READY;
        if (!t->no_texts)
            snprintf(m->summary, sizeof m->summary, "Update ready (request not seen)");
    } else if (!t->no_texts) {
        snprintf(m->summary, sizeof m->summary, "CoAP %s response %s (request not seen)", kr_coap_type_str(m->type),
                 kr_coap_code_str(m->code, cs));
    }
}
