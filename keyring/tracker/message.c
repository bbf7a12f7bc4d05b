/* sparkwire libkeyring: the Spark meaning of a decrypted CoAP message (docs/protocol.md 4).
 *
 * CoAP syntax comes from libcoap (RFC 7252 header, options, payload marker); this file only reads what
 * the Spark firmware and cloud put into it: which request it is, names, arguments, values, OTA chunks,
 * and which earlier request an ACK or a separate response answers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <glib.h>
#include <json-c/json.h>
#include <coap3/coap.h>
#include "tracker_int.h"

/* Text fields have fixed sizes; cutting an over-long name or note is intended. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define MAX_PATH_SEGS 16
#define MAX_QUERIES   8

typedef struct seg {
    const uint8_t *v;
    size_t len;
} seg;

typedef struct coap_view {
    seg path[MAX_PATH_SEGS];
    int n_path;
    seg query[MAX_QUERIES];
    int n_query;
    bool has_max_age;
    uint32_t max_age;
} coap_view;

static void coap_init_once(void)
{
    static gsize done = 0;
    if (g_once_init_enter(&done)) {
        coap_startup();
        coap_set_log_level(LOG_EMERG);
        g_once_init_leave(&done, 1);
    }
}

/* Printable text of bytes: ASCII as is, other bytes as \xNN; cut with "..." when out is full. */
static void printable_text(const uint8_t *d, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        char tmp[8];
        int l;
        if (d[i] >= 0x20 && d[i] < 0x7f && d[i] != '\\')
            l = snprintf(tmp, sizeof tmp, "%c", d[i]);
        else if (d[i] == '\\')
            l = snprintf(tmp, sizeof tmp, "\\\\");
        else
            l = snprintf(tmp, sizeof tmp, "\\x%02x", d[i]);
        if (o + (size_t)l + 4 > cap) {
            if (o + 4 <= cap) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(out + o, tmp, (size_t)l);
        o += (size_t)l;
    }
    out[o] = '\0';
}

static void hex_text(const uint8_t *d, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return;
    for (size_t i = 0; i < n && o + 3 < cap; i++, o += 2)
        snprintf(out + o, cap - o, "%02x", d[i]);
    out[o] = '\0';
}

static void seg_text(const seg *s, char *out, size_t cap)
{
    printable_text(s->v, s->len, out, cap);
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

static void pend(kr_tracker *t, kr_finding_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pend(kr_tracker *t, kr_finding_code code, const char *fmt, ...)
{
    if (t->n_pend >= 4)
        return;
    t->pend[t->n_pend].code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->pend[t->n_pend].text, sizeof t->pend[t->n_pend].text, fmt, ap);
    va_end(ap);
    t->n_pend++;
}

void kr_msg_after(kr_tracker *t, const kr_message *m)
{
    for (int i = 0; i < t->n_pend; i++)
        kr_tracker_emit_finding(t, t->pend[i].code, m->dir, m->time, m->frame_offset, "%s", t->pend[i].text);
    t->n_pend = 0;
}

/* ---- describe ----------------------------------------------------------------------------------- */

void kr_tracker_clear_describe(kr_tracker *t)
{
    for (size_t i = 0; i < t->n_funcs; i++)
        free(t->funcs[i]);
    t->n_funcs = 0;
    t->n_vars = 0;
}

static void add_func(kr_tracker *t, const char *name)
{
    if (t->n_funcs >= 256)
        return;
    if (t->n_funcs == t->cap_funcs) {
        size_t c = t->cap_funcs ? t->cap_funcs * 2 : 8;
        char **n = realloc(t->funcs, c * sizeof *n);
        if (!n)
            return;
        t->funcs = n;
        t->cap_funcs = c;
    }
    char *s = strdup(name);
    if (s)
        t->funcs[t->n_funcs++] = s;
}

static void add_var(kr_tracker *t, const char *name, kr_var_type type)
{
    if (t->n_vars >= 256)
        return;
    if (t->n_vars == t->cap_vars) {
        size_t c = t->cap_vars ? t->cap_vars * 2 : 8;
        kr_var *n = realloc(t->vars, c * sizeof *n);
        if (!n)
            return;
        t->vars = n;
        t->cap_vars = c;
    }
    snprintf(t->vars[t->n_vars].name, sizeof t->vars[t->n_vars].name, "%s", name);
    t->vars[t->n_vars].type = type;
    t->n_vars++;
}

static kr_var_type var_type_of(int n)
{
    switch (n) {
    case 1: return KR_VAR_BOOL;
    case 2: return KR_VAR_INT;
    case 4: return KR_VAR_STRING;
    case 5: return KR_VAR_NULL;
    case 9: return KR_VAR_DOUBLE;
    default: return KR_VAR_UNKNOWN;
    }
}

static const char *var_type_str(kr_var_type v)
{
    switch (v) {
    case KR_VAR_BOOL: return "bool";
    case KR_VAR_INT: return "int32";
    case KR_VAR_STRING: return "string";
    case KR_VAR_NULL: return "null";
    case KR_VAR_DOUBLE: return "double";
    case KR_VAR_UNKNOWN: break;
    }
    return "unknown";
}

/* Parses a describe answer; returns false when it is not JSON. */
static bool parse_describe(kr_tracker *t, kr_message *m)
{
    if (m->payload_len == 0)
        return false;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return false;
    json_object *o = json_tokener_parse_ex(tok, (const char *)m->payload, (int)m->payload_len);
    json_tokener_free(tok);
    if (!o || !json_object_is_type(o, json_type_object)) {
        if (o)
            json_object_put(o);
        snprintf(m->summary, sizeof m->summary, "Describe answer: not valid JSON (%zu bytes)", m->payload_len);
        return false;
    }
    json_object *f = NULL, *v = NULL, *p = NULL, *mods = NULL;
    bool hf = json_object_object_get_ex(o, "f", &f) && json_object_is_type(f, json_type_array);
    bool hv = json_object_object_get_ex(o, "v", &v) && json_object_is_type(v, json_type_object);
    bool hp = json_object_object_get_ex(o, "p", &p);
    bool hm = json_object_object_get_ex(o, "m", &mods) && json_object_is_type(mods, json_type_array);
    if (hf || hv) {
        kr_tracker_clear_describe(t);
        if (hf) {
            size_t n = json_object_array_length(f);
            for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(f, i);
                if (e && json_object_is_type(e, json_type_string))
                    add_func(t, json_object_get_string(e));
            }
        }
        if (hv) {
            json_object_object_foreach(v, key, val) {
                add_var(t, key, var_type_of(json_object_get_int(val)));
            }
        }
    }
    int l = snprintf(m->summary, sizeof m->summary, "Describe: %zu function%s, %zu variable%s",
                     hf ? t->n_funcs : (size_t)0, (hf && t->n_funcs == 1) ? "" : "s",
                     hv ? t->n_vars : (size_t)0, (hv && t->n_vars == 1) ? "" : "s");
    if (hp && l > 0 && (size_t)l < sizeof m->summary)
        l += snprintf(m->summary + l, sizeof m->summary - (size_t)l, ", platform %d", json_object_get_int(p));
    if (hm && l > 0 && (size_t)l < sizeof m->summary)
        snprintf(m->summary + l, sizeof m->summary - (size_t)l, ", %zu firmware modules",
                 json_object_array_length(mods));
    /* names for the value field */
    size_t o2 = 0;
    for (size_t i = 0; i < t->n_funcs && hf && o2 + 2 < sizeof m->value; i++) {
        int w = snprintf(m->value + o2, sizeof m->value - o2, "%s%s()", o2 ? " " : "", t->funcs[i]);
        if (w < 0)
            break;
        o2 += (size_t)w;
    }
    for (size_t i = 0; i < t->n_vars && hv && o2 + 2 < sizeof m->value; i++) {
        int w = snprintf(m->value + o2, sizeof m->value - o2, "%s%s:%s", o2 ? " " : "", t->vars[i].name,
                         var_type_str(t->vars[i].type));
        if (w < 0)
            break;
        o2 += (size_t)w;
    }
    if (o2 >= sizeof m->value)
        m->value[sizeof m->value - 1] = '\0';
    json_object_put(o);
    return true;
}

static kr_var_type lookup_var(const kr_tracker *t, const char *name)
{
    for (size_t i = 0; i < t->n_vars; i++)
        if (strcmp(t->vars[i].name, name) == 0)
            return t->vars[i].type;
    return KR_VAR_UNKNOWN;
}

static void format_value(kr_message *m, kr_var_type type)
{
    const uint8_t *d = m->payload;
    size_t n = m->payload_len;
    char hex[80];
    m->var_type = type;
    switch (type) {
    case KR_VAR_INT:
        if (n == 4) {
            int32_t v = (int32_t)((uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3]);
            snprintf(m->value, sizeof m->value, "%ld", (long)v);
            return;
        }
        break;
    case KR_VAR_DOUBLE:
        if (n == 8) {
            uint64_t u = 0;
            for (int i = 7; i >= 0; i--)
                u = u << 8 | d[i];
            double v;
            memcpy(&v, &u, sizeof v);
            snprintf(m->value, sizeof m->value, "%.10g", v);
            return;
        }
        break;
    case KR_VAR_BOOL:
        if (n == 1) {
            snprintf(m->value, sizeof m->value, "%s", d[0] ? "true" : "false");
            return;
        }
        break;
    case KR_VAR_STRING:
        printable_text(d, n, m->value, sizeof m->value);
        return;
    case KR_VAR_NULL:
        snprintf(m->value, sizeof m->value, "null");
        return;
    case KR_VAR_UNKNOWN:
        break;
    }
    /* unknown type or a length that does not fit it */
    char pr[64];
    hex_text(d, n > 32 ? 32 : n, hex, sizeof hex);
    printable_text(d, n > 32 ? 32 : n, pr, sizeof pr);
    snprintf(m->value, sizeof m->value, "hex %s%s \"%s\"", hex, n > 32 ? "..." : "", pr);
    if (type != KR_VAR_UNKNOWN)
        m->var_type = KR_VAR_UNKNOWN;
}

/* ---- request memory ----------------------------------------------------------------------------- */

static void remember(kr_tracker *t, const kr_message *m, int chunk_index)
{
    kr_request *r = &t->req[m->dir][t->req_next[m->dir] % KR_REQ_RING];
    t->req_next[m->dir]++;
    memset(r, 0, sizeof *r);
    r->used = true;
    r->kind = m->kind;
    r->index = m->index;
    r->msg_id = m->msg_id;
    r->type = m->type;
    r->token_len = m->token_len;
    memcpy(r->token, m->token, sizeof r->token);
    r->time = m->time;
    snprintf(r->name, sizeof r->name, "%s", m->name);
    snprintf(r->arg, sizeof r->arg, "%s", m->arg);
    r->chunk_index = chunk_index;
}

/* The request of the other direction that an ACK with this id answers. */
static kr_request *match_ack(kr_tracker *t, kr_dir from, uint16_t id)
{
    kr_dir other = from == KR_D2S ? KR_S2D : KR_D2S;
    for (unsigned i = 0; i < KR_REQ_RING; i++) {
        unsigned k = (t->req_next[other] + KR_REQ_RING - 1 - i) % KR_REQ_RING;
        kr_request *r = &t->req[other][k];
        if (r->used && !r->acked && r->msg_id == id && (r->type == 0 || r->type == 1))
            return r;
    }
    return NULL;
}

/* A separate response (device NON 2.04 / 4.00) answers a cloud request with the same token. */
static kr_request *match_token(kr_tracker *t, kr_dir from, const kr_message *m)
{
    kr_dir other = from == KR_D2S ? KR_S2D : KR_D2S;
    if (m->token_len == 0)
        return NULL;
    for (unsigned i = 0; i < KR_REQ_RING; i++) {
        unsigned k = (t->req_next[other] + KR_REQ_RING - 1 - i) % KR_REQ_RING;
        kr_request *r = &t->req[other][k];
        if (!r->used || r->answered || r->token_len != m->token_len ||
            memcmp(r->token, m->token, m->token_len) != 0)
            continue;
        if (r->kind == KR_MSG_FUNCTION_CALL || r->kind == KR_MSG_UPDATE_BEGIN || r->kind == KR_MSG_CHUNK)
            return r;
    }
    return NULL;
}

static void request_title(const kr_request *r, char *out, size_t cap)
{
    switch (r->kind) {
    case KR_MSG_FUNCTION_CALL: snprintf(out, cap, "Function call %s", r->name); break;
    case KR_MSG_VARIABLE_REQUEST: snprintf(out, cap, "Variable request %s", r->name); break;
    case KR_MSG_EVENT: snprintf(out, cap, "Event %s", r->name); break;
    case KR_MSG_SUBSCRIBE: snprintf(out, cap, "Subscribe %s", r->name[0] ? r->name : "(all)"); break;
    case KR_MSG_CHUNK: snprintf(out, cap, "Chunk %d", r->chunk_index); break;
    case KR_MSG_SIGNAL: snprintf(out, cap, "Signal %s", r->arg); break;
    case KR_MSG_DESCRIBE: snprintf(out, cap, "Describe"); break;
    case KR_MSG_TIME_REQUEST: snprintf(out, cap, "Time request"); break;
    case KR_MSG_UPDATE_BEGIN: snprintf(out, cap, "Update begin"); break;
    case KR_MSG_UPDATE_DONE: snprintf(out, cap, "Update done"); break;
    case KR_MSG_CHUNK_MISSED: snprintf(out, cap, "Chunk missed"); break;
    case KR_MSG_PING: snprintf(out, cap, "Ping"); break;
    case KR_MSG_HELLO: snprintf(out, cap, "Hello"); break;
    case KR_MSG_KEY_CHANGE: snprintf(out, cap, "Key change"); break;
    case KR_MSG_SAVE_BEGIN: snprintf(out, cap, "Save begin"); break;
    default: snprintf(out, cap, "%s", kr_msg_kind_str(r->kind)); break;
    }
}

static int ms(double s)
{
    return (int)(s * 1000.0 + (s >= 0 ? 0.5 : -0.5));
}

/* ---- OTA ---------------------------------------------------------------------------------------- */

static bool ota_seen(const kr_ota *o, int idx)
{
    return idx >= 0 && idx < (int)(sizeof o->seen * 8) && (o->seen[idx / 8] >> (idx % 8) & 1);
}

static void ota_mark(kr_ota *o, int idx)
{
    if (idx >= 0 && idx < (int)(sizeof o->seen * 8))
        o->seen[idx / 8] |= (uint8_t)(1u << (idx % 8));
}

static void ota_touch(kr_tracker *t, const kr_message *m)
{
    t->ota.last_time = m->time;
    t->ota.last_offset = m->frame_offset;
    t->ota.last_dir = m->dir;
    t->ota.last_kind = m->kind;
}

void kr_ota_finish(kr_tracker *t, double ts)
{
    kr_ota *o = &t->ota;
    if (!o->active || o->done_acked || t->ota_reported)
        return;
    t->ota_reported = true;
    double end = ts;
    for (int i = 0; i < 2; i++)
        if (t->d[i].closed && t->d[i].close_time < end)
            end = t->d[i].close_time;
    double waited = end - o->last_time;
    char what[160];
    if (o->chunks == 0)
        snprintf(what, sizeof what, "no chunk was sent");
    else
        snprintf(what, sizeof what, "%d chunk%s sent, %d confirmed", o->chunks, o->chunks == 1 ? "" : "s",
                 o->chunks_ok);
    if (o->last_dir == KR_S2D) {
        char what2[96], answered[48];
        if (o->last_answered_index >= 0)
            snprintf(answered, sizeof answered, "chunk %d", o->last_answered_index);
        else
            snprintf(answered, sizeof answered, "%s", o->chunks ? "the update began, before any chunk"
                                                                : "the update begin");
        if (o->last_kind == KR_MSG_CHUNK && o->last_chunk_index >= 0)
            snprintf(what2, sizeof what2, "chunk %d%s", o->last_chunk_index, o->last_resend ? " (sent again)" : "");
        else
            snprintf(what2, sizeof what2, "%s", o->last_kind == KR_MSG_UPDATE_DONE ? "update done"
                     : o->last_kind == KR_MSG_UPDATE_BEGIN ? "update begin" : kr_msg_kind_str(o->last_kind));
        kr_tracker_emit_finding(t, KR_FIND_OTA_INCOMPLETE, o->last_dir, ts, o->last_offset,
                                "the update began %.1f s into the connection and did not finish (%s): the device "
                                "stopped after %s; the cloud's %s got no answer for %.1f s until the end",
                                o->begin_time - t->first_time, what, answered, what2, waited);
    } else {
        char after[64];
        if (o->last_chunk_index >= 0)
            snprintf(after, sizeof after, "chunk %d", o->last_chunk_index);
        else
            snprintf(after, sizeof after, "the update begin");
        kr_tracker_emit_finding(t, KR_FIND_OTA_INCOMPLETE, o->last_dir, ts, o->last_offset,
                                "the update began %.1f s into the connection and did not finish (%s): the cloud "
                                "stopped after %s; it sent nothing more of the update for %.1f s until the end",
                                o->begin_time - t->first_time, what, after, waited);
    }
}

/* ---- the message -------------------------------------------------------------------------------- */

static const char *platform_name(int p)
{
    switch (p) {
    case 0: return "Core";
    case 6: return "Photon";
    case 8: return "P1";
    case 10: return "Electron";
    default: return "platform";
    }
}

static void code_str(uint8_t code, char out[8])
{
    snprintf(out, 8, "%u.%02u", (unsigned)(code >> 5), (unsigned)(code & 0x1f));
}

static uint32_t be_uint(const uint8_t *d, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n && i < 4; i++)
        v = v << 8 | d[i];
    return v;
}

static void join_path(const coap_view *cv, int from, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = from; i < cv->n_path && o + 2 < cap; i++) {
        if (i > from)
            out[o++] = '/';
        out[o] = '\0';
        seg_text(&cv->path[i], out + o, cap - o);
        o += strlen(out + o);
    }
}

static bool parse_coap(const uint8_t *pt, size_t len, kr_message *m, coap_view *cv)
{
    memset(cv, 0, sizeof *cv);
    /* the cloud's empty ACKs carry a 1-byte token (docs/protocol.md 4.2), which CoAP forbids */
    if (len == 5 && pt[1] == 0 && (pt[0] & 0x0f) == 1) {
        m->type = (pt[0] >> 4) & 3;
        m->code = 0;
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
        seg s = { mapped, l };
        if (it.number == COAP_OPTION_URI_PATH && cv->n_path < MAX_PATH_SEGS)
            cv->path[cv->n_path++] = s;
        else if (it.number == COAP_OPTION_URI_QUERY && cv->n_query < MAX_QUERIES)
            cv->query[cv->n_query++] = s;
        else if (it.number == COAP_OPTION_MAXAGE) {
            cv->has_max_age = true;
            cv->max_age = be_uint(v, l);
        }
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

void kr_msg_interpret(kr_tracker *t, kr_message *m, kr_dir dir, double ts, uint64_t frame_offset,
                      const uint8_t *pt, size_t len, bool first_block_lost)
{
    memset(m, 0, sizeof *m);
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

    if (first_block_lost) {
        char pr[160];
        m->first_block_lost = true;
        m->kind = KR_MSG_UNKNOWN;
        m->payload = pt;
        m->payload_len = len;
        printable_text(pt, len > 96 ? 96 : len, pr, sizeof pr);
        snprintf(m->summary, sizeof m->summary, "first block lost; %zu more bytes: \"%s\"", len, pr);
        return;
    }

    coap_view cv;
    if (!parse_coap(pt, len, m, &cv)) {
        m->kind = KR_MSG_UNKNOWN;
        m->payload = pt;
        m->payload_len = len;
        snprintf(m->summary, sizeof m->summary, "not a valid CoAP message (%zu bytes)", len);
        pend(t, KR_FIND_DECRYPT_ERROR, "the frame decrypts with valid padding but is not a valid CoAP message "
             "(%zu bytes)", len);
        return;
    }
    /* uri and query text */
    {
        size_t o = 0;
        for (int i = 0; i < cv.n_path && o + 2 < sizeof m->uri; i++) {
            m->uri[o++] = '/';
            m->uri[o] = '\0';
            seg_text(&cv.path[i], m->uri + o, sizeof m->uri - o);
            o += strlen(m->uri + o);
        }
        o = 0;
        for (int i = 0; i < cv.n_query && o + 2 < sizeof m->query; i++) {
            if (i)
                m->query[o++] = '&';
            m->query[o] = '\0';
            seg_text(&cv.query[i], m->query + o, sizeof m->query - o);
            o += strlen(m->query + o);
        }
    }
    char letter = cv.n_path > 0 && cv.path[0].len >= 1 ? (char)cv.path[0].v[0] : 0;
    uint8_t cls = m->code >> 5;
    char cs[8];
    code_str(m->code, cs);
    int chunk_for_request = -1;
    bool is_request = false;

    if (m->type == 3) {
        m->kind = KR_MSG_RST;
    } else if (m->type == 2) {
        m->kind = m->code == 0 ? KR_MSG_EMPTY_ACK : KR_MSG_ACK;
    } else if (m->code == 0) {
        m->kind = m->type == 0 ? KR_MSG_PING : KR_MSG_EMPTY_ACK;
        is_request = m->type == 0;
    } else if (m->code == 1) { /* GET */
        is_request = true;
        switch (letter) {
        case 'v': m->kind = KR_MSG_VARIABLE_REQUEST; break;
        case 'd': m->kind = KR_MSG_DESCRIBE; break;
        case 't': m->kind = KR_MSG_TIME_REQUEST; break;
        case 'e': m->kind = KR_MSG_SUBSCRIBE; break;
        case 'c': m->kind = KR_MSG_CHUNK_MISSED; break;
        default: m->kind = KR_MSG_UNKNOWN; break;
        }
    } else if (m->code == 2) { /* POST */
        is_request = true;
        switch (letter) {
        case 'e': case 'E': m->kind = KR_MSG_EVENT; break;
        case 'h': m->kind = KR_MSG_HELLO; break;
        case 'f': m->kind = KR_MSG_FUNCTION_CALL; break;
        case 'u': m->kind = KR_MSG_UPDATE_BEGIN; break;
        case 'c': m->kind = KR_MSG_CHUNK; break;
        case 's': m->kind = KR_MSG_SAVE_BEGIN; break;
        default: m->kind = KR_MSG_UNKNOWN; break;
        }
    } else if (m->code == 3) { /* PUT */
        is_request = true;
        switch (letter) {
        case 'k': m->kind = KR_MSG_KEY_CHANGE; break;
        case 'u': m->kind = KR_MSG_UPDATE_DONE; break;
        case 's': m->kind = KR_MSG_SIGNAL; break;
        default: m->kind = KR_MSG_UNKNOWN; break;
        }
    } else if (cls >= 2) {
        m->kind = KR_MSG_UNKNOWN; /* a separate response: decided by its token below */
    } else {
        m->kind = KR_MSG_UNKNOWN;
    }

    /* ---- device message-id counter (docs/protocol.md 4.2) ---- */
    kr_dirstate *dd = &t->d[KR_D2S];
    if (dir == KR_D2S && (m->type == 0 || m->type == 1)) {
        if (dd->have_last_id) {
            uint16_t exp = (uint16_t)(dd->last_id + 1);
            if (m->msg_id != exp)
                pend(t, KR_FIND_COUNTER_ERROR, "device message id 0x%04x follows 0x%04x: expected 0x%04x (the "
                     "cloud closes the connection on a counter gap)", m->msg_id, dd->last_id, exp);
        } else if (m->kind == KR_MSG_HELLO && t->session_known && !t->session_from_line && !t->mid_session) {
            uint16_t be = (uint16_t)(t->sess.msgid_counter + 1), le = (uint16_t)(t->sess.msgid_counter_le + 1);
            if (m->msg_id != be && m->msg_id != le)
                pend(t, KR_FIND_COUNTER_ERROR, "the device Hello carries message id 0x%04x; the session material "
                     "makes it 0x%04x", m->msg_id, be);
        }
        dd->have_last_id = true;
        dd->last_id = m->msg_id;
    }

    char title[200];
    char pr[200];
    switch (m->kind) {
    case KR_MSG_HELLO:
        if (m->payload_len >= 6) {
            const uint8_t *p = m->payload;
            m->product_id = (uint16_t)(p[0] << 8 | p[1]);
            m->product_version = (uint16_t)(p[2] << 8 | p[3]);
            m->hello_flags = p[5];
            if (m->payload_len >= 8)
                m->platform_id = p[6] << 8 | p[7];
        }
        if (dir == KR_D2S) {
            if (m->platform_id >= 0)
                snprintf(m->summary, sizeof m->summary, "Device Hello: product %u, version %u, flags 0x%02x, "
                         "platform %d (%s)", m->product_id, m->product_version, m->hello_flags, m->platform_id,
                         platform_name(m->platform_id));
            else if (m->payload_len >= 6)
                snprintf(m->summary, sizeof m->summary, "Device Hello: product %u, version %u, flags 0x%02x "
                         "(first Core firmware)", m->product_id, m->product_version, m->hello_flags);
            else
                snprintf(m->summary, sizeof m->summary, "Device Hello");
        } else {
            snprintf(m->summary, sizeof m->summary, "Cloud Hello");
        }
        break;
    case KR_MSG_DESCRIBE:
        /* firmware 0.6.1 and later: a one-byte option after "d" selects what to describe */
        if (cv.n_query == 1 && cv.query[0].len == 1 && (cv.query[0].v[0] == 2 || cv.query[0].v[0] == 4 ||
                                                        cv.query[0].v[0] == 6))
            snprintf(m->summary, sizeof m->summary, "Describe request (%s)", cv.query[0].v[0] == 2 ? "system"
                     : cv.query[0].v[0] == 4 ? "application" : "system and application");
        else
            snprintf(m->summary, sizeof m->summary, "Describe request");
        break;
    case KR_MSG_FUNCTION_CALL:
        if (cv.n_path >= 2)
            seg_text(&cv.path[1], m->name, sizeof m->name);
        snprintf(m->arg, sizeof m->arg, "%s", m->query);
        snprintf(m->summary, sizeof m->summary, "Function %s(%s)", m->name, m->arg);
        break;
    case KR_MSG_VARIABLE_REQUEST:
        if (cv.n_path >= 2)
            seg_text(&cv.path[1], m->name, sizeof m->name);
        snprintf(m->summary, sizeof m->summary, "Variable request %s", m->name);
        break;
    case KR_MSG_EVENT: {
        m->event_public = letter == 'e';
        if (dir == KR_D2S) {
            if (cv.n_path >= 2)
                seg_text(&cv.path[1], m->name, sizeof m->name);
        } else {
            join_path(&cv, 1, m->name, sizeof m->name);
        }
        if (cv.has_max_age)
            m->ttl = cv.max_age;
        printable_text(m->payload, m->payload_len, m->value, sizeof m->value);
        char extra[96] = "";
        size_t el = 0;
        if (!m->event_public)
            el += (size_t)snprintf(extra + el, sizeof extra - el, "private");
        if (m->ttl != 60)
            el += (size_t)snprintf(extra + el, sizeof extra - el, "%sTTL %u s", el ? ", " : "", m->ttl);
        if (dir == KR_S2D)
            snprintf(extra + el, sizeof extra - el, "%sfrom the cloud", el ? ", " : "");
        if (m->payload_len)
            snprintf(m->summary, sizeof m->summary, "Event %s = %s%s%s%s", m->name, m->value, extra[0] ? " (" : "",
                     extra, extra[0] ? ")" : "");
        else
            snprintf(m->summary, sizeof m->summary, "Event %s%s%s%s", m->name, extra[0] ? " (" : "", extra,
                     extra[0] ? ")" : "");
        break;
    }
    case KR_MSG_SUBSCRIBE: {
        if (cv.n_path >= 2)
            seg_text(&cv.path[1], m->name, sizeof m->name);
        bool mine = false;
        for (int i = 0; i < cv.n_query; i++)
            if (cv.query[i].len == 1 && cv.query[i].v[0] == 'u')
                mine = true;
        char dev[80] = "";
        if (m->payload_len) {
            printable_text(m->payload, m->payload_len, pr, sizeof pr);
            snprintf(dev, sizeof dev, ", from device %.40s", pr);
        }
        snprintf(m->summary, sizeof m->summary, "Subscribe %s%s%s%s", m->name[0] ? m->name : "to all events",
                 mine ? " (my devices only" : "", mine ? ")" : "", dev);
        break;
    }
    case KR_MSG_TIME_REQUEST:
        snprintf(m->summary, sizeof m->summary, "Time request");
        break;
    case KR_MSG_SIGNAL: {
        bool on = cv.n_query > 0 && cv.query[0].len >= 1 && cv.query[0].v[0] != 0;
        snprintf(m->arg, sizeof m->arg, "%s", on ? "start" : "stop");
        snprintf(m->summary, sizeof m->summary, "Signal %s", m->arg);
        break;
    }
    case KR_MSG_UPDATE_BEGIN: {
        kr_ota *o = &t->ota;
        memset(o, 0, sizeof *o);
        o->active = true;
        o->begin_time = ts;
        o->last_chunk_index = -1;
        o->last_ok_index = -1;
        o->last_answered_index = -1;
        t->ota_reported = false;
        if (m->payload_len >= 12) {
            const uint8_t *p = m->payload;
            o->chunk_size = (uint32_t)(p[1] << 8 | p[2]);
            o->file_size = be_uint(p + 3, 4);
            m->chunk_size = o->chunk_size;
            snprintf(m->summary, sizeof m->summary, "Update begin: %u bytes in chunks of %u%s", o->file_size,
                     o->chunk_size, (p[0] & 1) ? ", fast OTA offered" : "");
        } else {
            snprintf(m->summary, sizeof m->summary, "Update begin");
        }
        ota_touch(t, m);
        break;
    }
    case KR_MSG_CHUNK: {
        kr_ota *o = &t->ota;
        if (!o->active) {
            o->active = true;
            o->begin_time = ts;
            o->last_chunk_index = -1;
            o->last_ok_index = -1;
            o->last_answered_index = -1;
        }
        if (cv.n_query >= 1)
            m->chunk_crc = be_uint(cv.query[0].v, cv.query[0].len);
        int idx;
        if (cv.n_query >= 2)
            idx = (int)be_uint(cv.query[1].v, cv.query[1].len);
        else if (o->n_missed > 0) {
            idx = o->missed[0];
            memmove(o->missed, o->missed + 1, (size_t)(o->n_missed - 1) * sizeof o->missed[0]);
            o->n_missed--;
        } else
            idx = o->next_index;
        bool resend = ota_seen(o, idx);
        ota_mark(o, idx);
        m->chunk_index = idx;
        m->chunk_size = (uint32_t)m->payload_len;
        uint32_t crc = kr_crc32(m->payload, m->payload_len);
        m->chunk_crc_ok = (cv.n_query >= 1 && crc == m->chunk_crc) ? KR_YES : KR_NO;
        o->chunks++;
        o->last_chunk_index = idx;
        o->last_chunk_time = ts;
        o->last_chunk_acked = false;
        o->last_resend = resend;
        o->next_index = idx + 1;
        chunk_for_request = idx;
        snprintf(m->value, sizeof m->value, "crc %08x", m->chunk_crc);
        if (m->chunk_crc_ok == KR_YES)
            snprintf(m->summary, sizeof m->summary, "Chunk %d: %zu bytes, CRC ok%s", idx, m->payload_len,
                     resend ? ", sent again" : "");
        else
            snprintf(m->summary, sizeof m->summary, "Chunk %d: %zu bytes, CRC BAD (option %08x, data %08x)%s", idx,
                     m->payload_len, m->chunk_crc, crc, resend ? ", sent again" : "");
        if (m->chunk_crc_ok != KR_YES)
            pend(t, KR_FIND_OTA_CHUNK_ERROR, "chunk %d (%zu bytes): the CRC option says %08x but the data's CRC-32 "
                 "is %08x", idx, m->payload_len, m->chunk_crc, crc);
        if (resend)
            pend(t, KR_FIND_OTA_CHUNK_ERROR, "chunk %d sent again", idx);
        ota_touch(t, m);
        break;
    }
    case KR_MSG_CHUNK_MISSED: {
        kr_ota *o = &t->ota;
        size_t o2 = 0;
        m->value[0] = '\0';
        for (size_t i = 0; i + 1 < m->payload_len + 1 && i + 2 <= m->payload_len; i += 2) {
            int idx = m->payload[i] << 8 | m->payload[i + 1];
            if (o->n_missed < 8)
                o->missed[o->n_missed++] = idx;
            if (o2 + 8 < sizeof m->value)
                o2 += (size_t)snprintf(m->value + o2, sizeof m->value - o2, "%s%d", o2 ? ", " : "", idx);
        }
        snprintf(m->summary, sizeof m->summary, "Chunk missed: %s", m->value[0] ? m->value : "(no index)");
        if (o->active)
            ota_touch(t, m);
        break;
    }
    case KR_MSG_UPDATE_DONE:
        t->ota.done = true;
        if (dir == KR_D2S)
            t->ota.done_acked = true;   /* fast OTA: the device ends the update itself once it has every chunk */
        snprintf(m->summary, sizeof m->summary, "Update done%s", dir == KR_D2S ? " (from the device)" : "");
        if (t->ota.active)
            ota_touch(t, m);
        break;
    case KR_MSG_SAVE_BEGIN:
        snprintf(m->summary, sizeof m->summary, "Save begin");
        break;
    case KR_MSG_KEY_CHANGE:
        snprintf(m->summary, sizeof m->summary, "Key change (%zu bytes)", m->payload_len);
        break;
    case KR_MSG_PING:
        snprintf(m->summary, sizeof m->summary, "Ping");
        break;
    default:
        break;
    }

    /* ---- responses ---- */
    if (m->type == 2 || m->type == 3) {
        kr_request *r = match_ack(t, dir, m->msg_id);
        if (r) {
            r->acked = true;
            m->answers = (int)r->index;
            m->answers_kind = r->kind;
            m->response_time = ts - r->time;
            if (m->code != 0 && r->token_len && (m->token_len != r->token_len ||
                                                   memcmp(m->token, r->token, r->token_len) != 0))
                pend(t, KR_FIND_COUNTER_ERROR, "the ACK to message id 0x%04x does not echo its request's token",
                     m->msg_id);
            request_title(r, title, sizeof title);
            if (m->type == 2 && m->code == 0x45 && r->kind == KR_MSG_DESCRIBE) {
                m->kind = KR_MSG_DESCRIBE_REPLY;
                if (!parse_describe(t, m) && m->summary[0] == '\0')
                    snprintf(m->summary, sizeof m->summary, "Describe answer (%zu bytes)", m->payload_len);
            } else if (m->type == 2 && m->code == 0x45 && r->kind == KR_MSG_VARIABLE_REQUEST) {
                m->kind = KR_MSG_VARIABLE_VALUE;
                snprintf(m->name, sizeof m->name, "%s", r->name);
                kr_var_type vt = lookup_var(t, r->name);
                format_value(m, vt);
                if (m->var_type != KR_VAR_UNKNOWN)
                    snprintf(m->summary, sizeof m->summary, "Variable %s = %s (%s)", m->name, m->value,
                             var_type_str(m->var_type));
                else
                    snprintf(m->summary, sizeof m->summary, "Variable %s = %s (type unknown: no describe)", m->name,
                             m->value);
            } else if (m->type == 2 && m->code == 0x45 && r->kind == KR_MSG_TIME_REQUEST && m->payload_len >= 4) {
                m->kind = KR_MSG_TIME_RESPONSE;
                m->unix_time = be_uint(m->payload, 4);
                time_t tt = (time_t)m->unix_time;
                struct tm tmv;
                gmtime_r(&tt, &tmv);
                strftime(m->value, sizeof m->value, "%Y-%m-%dT%H:%M:%SZ", &tmv);
                snprintf(m->summary, sizeof m->summary, "Time %s", m->value);
            } else {
                if (r->kind == KR_MSG_UPDATE_DONE && t->ota.active) {
                    if (m->code == 0x44)
                        t->ota.done_acked = true;
                    else if (m->code == 0x80)
                        t->ota.done_refused = true;
                    ota_touch(t, m);
                }
                if (r->kind == KR_MSG_UPDATE_BEGIN || r->kind == KR_MSG_CHUNK || r->kind == KR_MSG_CHUNK_MISSED)
                    ota_touch(t, m);
                if (m->code == 0)
                    snprintf(m->summary, sizeof m->summary, "%s to %s (%d ms)", m->type == 3 ? "RST" : "ACK", title,
                             ms(m->response_time));
                else
                    snprintf(m->summary, sizeof m->summary, "ACK %s to %s (%d ms)%s", cs, title,
                             ms(m->response_time),
                             m->code == 0x80 ? (r->kind == KR_MSG_EVENT ? ": slow down" : ": refused") : "");
            }
        } else if (m->type == 2 && m->code == 0x45 && m->payload_len > 0 && m->payload[0] == '{') {
            /* a describe answer whose id does not match (two-part answers of firmware 0.4-0.6) */
            m->kind = KR_MSG_DESCRIBE_REPLY;
            if (!parse_describe(t, m) && m->summary[0] == '\0')
                snprintf(m->summary, sizeof m->summary, "Describe answer (%zu bytes)", m->payload_len);
        } else if (m->type == 2 && m->code == 0x45 && dir == KR_S2D && m->payload_len == 4) {
            m->kind = KR_MSG_TIME_RESPONSE;
            m->unix_time = be_uint(m->payload, 4);
            time_t tt = (time_t)m->unix_time;
            struct tm tmv;
            gmtime_r(&tt, &tmv);
            strftime(m->value, sizeof m->value, "%Y-%m-%dT%H:%M:%SZ", &tmv);
            snprintf(m->summary, sizeof m->summary, "Time %s", m->value);
        } else if (m->type == 2 && m->code == 0x45 && dir == KR_D2S) {
            m->kind = KR_MSG_VARIABLE_VALUE;
            format_value(m, KR_VAR_UNKNOWN);
            snprintf(m->summary, sizeof m->summary, "Variable value %s (request not seen)", m->value);
        } else {
            snprintf(m->summary, sizeof m->summary, "%s %s (id 0x%04x, request not seen)",
                     m->type == 3 ? "RST" : "ACK", cs, m->msg_id);
        }
    } else if (cls >= 2) {
        kr_request *r = match_token(t, dir, m);
        if (r) {
            r->answered = true;
            m->answers = (int)r->index;
            m->answers_kind = r->kind;
            m->response_time = ts - r->time;
            if (r->kind == KR_MSG_FUNCTION_CALL) {
                m->kind = KR_MSG_FUNCTION_RETURN;
                snprintf(m->name, sizeof m->name, "%s", r->name);
                snprintf(m->arg, sizeof m->arg, "%s", r->arg);
                if (m->payload_len == 4)
                    snprintf(m->value, sizeof m->value, "%ld", (long)(int32_t)be_uint(m->payload, 4));
                else
                    format_value(m, KR_VAR_UNKNOWN);
                snprintf(m->summary, sizeof m->summary, "Function %s(%s) -> %s", m->name, m->arg, m->value);
                if (m->code != 0x44) {
                    size_t l = strlen(m->summary);
                    snprintf(m->summary + l, sizeof m->summary - l, " (code %s)", cs);
                }
            } else if (r->kind == KR_MSG_UPDATE_BEGIN) {
                m->kind = KR_MSG_UPDATE_READY;
                snprintf(m->summary, sizeof m->summary, "Update ready (%d ms)%s", ms(m->response_time),
                         m->payload_len >= 1 && (m->payload[0] & 1) ? ", fast OTA accepted" : "");
                ota_touch(t, m);
            } else {
                m->kind = KR_MSG_CHUNK_RECEIVED;
                m->chunk_index = r->chunk_index;
                bool ok = m->code == 0x44;
                if (r->chunk_index == t->ota.last_chunk_index)
                    t->ota.last_chunk_acked = true;
                t->ota.last_answered_index = r->chunk_index;
                if (ok) {
                    t->ota.chunks_ok++;
                    t->ota.last_ok_index = r->chunk_index;
                } else {
                    t->ota.chunks_bad++;
                    t->ota.next_index = r->chunk_index;
                    pend(t, KR_FIND_OTA_CHUNK_ERROR, "the device reports chunk %d bad (code %s)", r->chunk_index, cs);
                }
                snprintf(m->summary, sizeof m->summary, "Chunk %d received %s (%d ms)", r->chunk_index,
                         ok ? "OK" : "BAD", ms(m->response_time));
                ota_touch(t, m);
            }
        } else if (dir == KR_D2S && m->code == 0x44 && m->payload_len == 4) {
            m->kind = KR_MSG_FUNCTION_RETURN;
            snprintf(m->value, sizeof m->value, "%ld", (long)(int32_t)be_uint(m->payload, 4));
            snprintf(m->summary, sizeof m->summary, "Function return %s (request not seen)", m->value);
        } else if (dir == KR_D2S && (m->code == 0x44 || m->code == 0x80) && t->ota.active && t->ota.chunks > 0) {
            m->kind = KR_MSG_CHUNK_RECEIVED;
            m->chunk_index = t->ota.last_chunk_index;
            snprintf(m->summary, sizeof m->summary, "Chunk received %s (request not seen)",
                     m->code == 0x44 ? "OK" : "BAD");
        } else if (dir == KR_D2S && m->code == 0x44 && t->ota.active) {
            m->kind = KR_MSG_UPDATE_READY;
            snprintf(m->summary, sizeof m->summary, "Update ready (request not seen)");
        } else {
            snprintf(m->summary, sizeof m->summary, "CoAP %s response %s (request not seen)",
                     m->type == 0 ? "CON" : "NON", cs);
        }
    }

    if (m->kind == KR_MSG_UNKNOWN && m->summary[0] == '\0') {
        static const char *types[] = { "CON", "NON", "ACK", "RST" };
        snprintf(m->summary, sizeof m->summary, "CoAP %s %s %s%s%s", types[m->type & 3], cs,
                 m->uri[0] ? m->uri : "", m->query[0] ? "?" : "", m->query);
    }
    if (m->kind == KR_MSG_EMPTY_ACK && m->summary[0] == '\0')
        snprintf(m->summary, sizeof m->summary, "Empty message");
    if (is_request)
        remember(t, m, chunk_for_request);
}
