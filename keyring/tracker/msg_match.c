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

static char *copy_text(const char *s)
{
    return s[0] ? strndup(s, 63) : NULL;
}

void kr_msg_remember(kr_tracker *t, const kr_message *m)
{
    kr_request *r = next_slot(t, m->dir);
    if (!r)
        return;
    t->req_next[m->dir]++;
    free(r->name);
    free(r->arg);
    memset(r, 0, sizeof *r);
    r->used = true;
    r->kind = m->kind;
    r->index = m->index;
    r->msg_id = m->msg_id;
    r->type = m->type;
    r->token_len = m->token_len;
    memcpy(r->token, m->token, sizeof r->token);
    r->time = m->time;
    r->name = copy_text(m->name);
    r->arg = copy_text(m->arg);
    r->chunk_index = m->kind == KR_MSG_CHUNK ? m->chunk_index : -1;
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
static void request_title(const kr_request *r, kr_txt *x)
{
    switch (r->kind) {
    case KR_MSG_FUNCTION_CALL: kr_txt_put(x, "Function call "); kr_txt_put(x, krt_str(r->name)); break;
    case KR_MSG_VARIABLE_REQUEST: kr_txt_put(x, "Variable request "); kr_txt_put(x, krt_str(r->name)); break;
    case KR_MSG_EVENT: kr_txt_put(x, "Event "); kr_txt_put(x, krt_str(r->name)); break;
    case KR_MSG_SUBSCRIBE: kr_txt_put(x, "Subscribe "); kr_txt_put(x, r->name ? r->name : "(all)"); break;
    case KR_MSG_CHUNK: kr_txt_put(x, "Chunk "); kr_txt_int(x, r->chunk_index); break;
    case KR_MSG_SIGNAL: kr_txt_put(x, "Signal "); kr_txt_put(x, krt_str(r->arg)); break;
    default: kr_txt_put(x, kr_msg_kind_title(r->kind)); break;
    }
}

/* "ACK to Ping (12 ms)", "ACK 4.00 to Event x (12 ms): slow down" */
static void answer_summary(kr_message *m, const kr_request *r)
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
    request_title(r, &x);
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
        kr_msg_variable_value(t, m, krt_str(r->name));
    } else if (content && r->kind == KR_MSG_TIME_REQUEST && m->payload_len >= 4) {
        time_response(t, m);
    } else {
        kr_ota_answer(t, m, r);
        if (!t->no_texts)
            answer_summary(m, r);
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
        kr_txt_put(&n, krt_str(r->name));
        kr_txt_put(&a, krt_str(r->arg));
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
