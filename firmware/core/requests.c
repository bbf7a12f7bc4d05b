/* sparkwire firmware: the cloud's requests the device answers: Describe, function calls, variable reads
 * and events to its subscriptions (docs/protocol.md 4.5-4.7). */
#include <string.h>

#include "coap.h"
#include "device_int.h"

static const sw_coap_opt *path(const sw_coap_msg *m, size_t n)
{
    return sw_coap_find(m, SW_OPT_URI_PATH, n);
}

static bool opt_is(const sw_coap_opt *o, const char *name)
{
    size_t n = sw_dev_strlen(name, SW_MAX_EVENT_NAME);
    return o && o->len == n && memcmp(o->value, name, n) == 0;
}

sw_status sw_req_describe(sw_device *d, const sw_coap_msg *m)
{
    /* a one-byte option after "d" selects the parts; none or another value means both */
    const sw_coap_opt *q = sw_coap_find(m, SW_OPT_URI_QUERY, 0);
    uint8_t flags = SW_DESCRIBE_SYSTEM | SW_DESCRIBE_APPLICATION;
    if (q && q->len == 1 && q->value[0] >= 1 && q->value[0] <= 3)
        flags = q->value[0];
    sw_dev_note(d, SW_NOTE_DESCRIBE, NULL, flags);
    if (!d->cfg.describe_twice)
        return sw_dev_send(d, d->msg, sw_build_describe(d, m->id, m->token, m->tkl, flags, d->msg, sizeof d->msg));
    /* firmware 0.4.0-0.6.0 know no selection and answer twice; the second answer's message id holds the first
     * two ciphertext bytes of the first answer (the buffer is reused) */
    uint8_t tok[8], tkl = m->tkl <= sizeof tok ? m->tkl : (uint8_t)sizeof tok;
    memcpy(tok, m->token, tkl);
    uint8_t first = d->cfg.describe_twice == 6 ? SW_DESCRIBE_SYSTEM : SW_DESCRIBE_SYSTEM | SW_DESCRIBE_APPLICATION;
    sw_status st = sw_dev_send(d, d->msg, sw_build_describe(d, m->id, tok, tkl, first, d->msg, sizeof d->msg));
    if (st != SW_RUNNING)
        return st;
    uint16_t id = (uint16_t)(d->tx[2] << 8 | d->tx[3]);
    return sw_dev_send(d, d->msg, sw_build_describe(d, id, tok, tkl, SW_DESCRIBE_APPLICATION, d->msg, sizeof d->msg));
}

sw_status sw_req_function(sw_device *d, const sw_coap_msg *m)
{
    const sw_coap_opt *name = path(m, 1);
    const sw_coap_opt *q = sw_coap_find(m, SW_OPT_URI_QUERY, 0);
    char arg[SW_MAX_ARG + 1];
    size_t alen = q ? q->len : 0;
    if (alen > SW_MAX_ARG) {
        /* G2 answers 4.00 to an argument it cannot hold */
        sw_dev_note(d, SW_NOTE_IGNORED, "function argument too long", (long)alen);
        return sw_dev_respond(d, SW_COAP_ACK, SW_COAP_BAD_REQUEST, m->id, m, NULL, 0);
    }
    if (alen)
        memcpy(arg, q->value, alen);
    arg[alen] = 0;
    sw_status st = sw_dev_empty_ack(d, m->id);
    if (st != SW_RUNNING)
        return st;
    int32_t result = -1;
    const sw_function *f = NULL;
    for (size_t i = 0; i < d->nfunctions; i++)
        if (opt_is(name, d->functions[i].name))
            f = &d->functions[i];
    if (f) {
        result = f->fn(f->user, arg);
        sw_dev_note(d, SW_NOTE_FUNCTION, f->name, result);
    } else {
        sw_dev_note(d, SW_NOTE_UNKNOWN_NAME, "function", 0);
    }
    uint8_t r[4] = {(uint8_t)((uint32_t)result >> 24), (uint8_t)((uint32_t)result >> 16),
                    (uint8_t)((uint32_t)result >> 8), (uint8_t)result};
    return sw_dev_respond(d, SW_COAP_NON, SW_COAP_CHANGED, sw_dev_next_id(d), m, r, 4);
}

sw_status sw_req_variable(sw_device *d, const sw_coap_msg *m)
{
    const sw_coap_opt *name = path(m, 1);
    for (size_t i = 0; i < d->nvariables; i++) {
        const sw_variable *v = &d->variables[i];
        if (!opt_is(name, v->name))
            continue;
        uint8_t val[SW_MAX_EVENT_DATA + 1];
        size_t n = 0;
        switch (v->type) {
        case SW_VAR_BOOL:
            val[0] = *(const bool *)v->value ? 1 : 0;
            n = 1;
            break;
        case SW_VAR_INT: {
            uint32_t x = (uint32_t)*(const int32_t *)v->value;
            val[0] = (uint8_t)(x >> 24); val[1] = (uint8_t)(x >> 16); val[2] = (uint8_t)(x >> 8); val[3] = (uint8_t)x;
            n = 4;
            break;
        }
        case SW_VAR_DOUBLE: {
            uint64_t x;
            memcpy(&x, v->value, 8);
            for (int k = 0; k < 8; k++)
                val[k] = (uint8_t)(x >> (8 * k));   /* little-endian, as the MCU holds it */
            n = 8;
            break;
        }
        case SW_VAR_STRING:
            n = sw_dev_strlen((const char *)v->value, SW_MAX_EVENT_DATA);
            if (n > SW_MAX_EVENT_DATA)
                n = SW_MAX_EVENT_DATA;
            memcpy(val, v->value, n);
            break;
        }
        sw_dev_note(d, SW_NOTE_VARIABLE, v->name, v->type);
        return sw_dev_respond(d, SW_COAP_ACK, SW_COAP_CONTENT, m->id, m, val, n);
    }
    sw_dev_note(d, SW_NOTE_UNKNOWN_NAME, "variable", 0);
    return sw_dev_respond(d, SW_COAP_ACK, 0x84, m->id, m, NULL, 0);
}

sw_status sw_req_event(sw_device *d, const sw_coap_msg *m)
{
    char name[SW_MAX_EVENT_NAME + 1];
    size_t len = 0;
    for (size_t i = 1;; i++) {
        const sw_coap_opt *seg = path(m, i);
        if (seg == NULL)
            break;
        size_t need = seg->len + (i > 1 ? 1u : 0u);
        if (len + need > SW_MAX_EVENT_NAME) {
            sw_dev_note(d, SW_NOTE_IGNORED, "event name too long", 0);
            return SW_RUNNING;
        }
        if (i > 1)
            name[len++] = '/';
        memcpy(name + len, seg->value, seg->len);
        len += seg->len;
    }
    name[len] = 0;
    sw_dev_note(d, SW_NOTE_EVENT_RECEIVED, name, (long)m->payload_len);
    for (size_t i = 0; i < d->nsubscriptions; i++) {
        const sw_subscription *s = &d->subscriptions[i];
        size_t pl = sw_dev_strlen(s->prefix, SW_MAX_EVENT_NAME);
        if (pl <= len && memcmp(name, s->prefix, pl) == 0)
            s->fn(s->user, name, m->payload, m->payload_len);
    }
    return SW_RUNNING;
}
