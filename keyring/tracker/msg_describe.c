/* sparkwire libkeyring: Describe requests and answers, and the variable values they give a type to
 * (docs/protocol.md 4.5, 4.7). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include "msg_int.h"

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
    char text[256];
    kr_msg_printable((const uint8_t *)name, strlen(name), text, sizeof text);
    char *s = strdup(text);
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
    /* in the printable form of names read from a URI, so that comparing the two compares the raw bytes */
    kr_msg_printable((const uint8_t *)name, strlen(name), t->vars[t->n_vars].name, sizeof t->vars[t->n_vars].name);
    t->vars[t->n_vars].type = type;
    t->n_vars++;
}

static kr_var_type var_type_of(int n)
{
    switch (n) {
    case KR_VAR_BOOL: case KR_VAR_INT: case KR_VAR_STRING: case KR_VAR_NULL: case KR_VAR_DOUBLE:
        return (kr_var_type)n;
    default:
        return KR_VAR_UNKNOWN;
    }
}

/* The request: firmware 0.6.1 and later read a one-byte option after "d" as what to describe. */
void kr_msg_describe(kr_tracker *t, kr_message *m, const kr_coap_view *cv)
{
    (void)t;
    if (cv->n_query == 1 && cv->query[0].len == 1 && kr_describe_flags_str(cv->query[0].v[0])[0])
        snprintf(m->summary, sizeof m->summary, "Describe request (%s)", kr_describe_flags_str(cv->query[0].v[0]));
    else
        snprintf(m->summary, sizeof m->summary, "Describe request");
}

static void read_describe(kr_tracker *t, json_object *f, json_object *v)
{
    kr_tracker_clear_describe(t);
    if (f) {
        size_t n = json_object_array_length(f);
        for (size_t i = 0; i < n; i++) {
            json_object *e = json_object_array_get_idx(f, i);
            if (e && json_object_is_type(e, json_type_string))
                add_func(t, json_object_get_string(e));
        }
    }
    if (v) {
        json_object_object_foreach(v, key, val) {
            add_var(t, key, var_type_of(json_object_get_int(val)));
        }
    }
}

/* The names for the value field: functions as name(), variables as name:type. */
static void describe_value(const kr_tracker *t, kr_message *m, bool hf, bool hv)
{
    size_t o = 0;
    for (size_t i = 0; i < t->n_funcs && hf && o + 2 < sizeof m->value; i++) {
        int w = snprintf(m->value + o, sizeof m->value - o, "%s%s()", o ? " " : "", t->funcs[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    for (size_t i = 0; i < t->n_vars && hv && o + 2 < sizeof m->value; i++) {
        int w = snprintf(m->value + o, sizeof m->value - o, "%s%s:%s", o ? " " : "", t->vars[i].name,
                         kr_var_type_str(t->vars[i].type));
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (o >= sizeof m->value)
        m->value[sizeof m->value - 1] = '\0';
}

/* Parses the JSON of a describe answer; false when it is not a JSON object. */
static bool parse_describe(kr_tracker *t, kr_message *m)
{
    json_tokener *tok = m->payload_len ? json_tokener_new() : NULL;
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
    if (hf || hv)
        read_describe(t, hf ? f : NULL, hv ? v : NULL);
    int l = snprintf(m->summary, sizeof m->summary, "Describe: %zu function%s, %zu variable%s",
                     hf ? t->n_funcs : (size_t)0, (hf && t->n_funcs == 1) ? "" : "s",
                     hv ? t->n_vars : (size_t)0, (hv && t->n_vars == 1) ? "" : "s");
    if (hp && l > 0 && (size_t)l < sizeof m->summary)
        l += snprintf(m->summary + l, sizeof m->summary - (size_t)l, ", platform %d", json_object_get_int(p));
    if (hm && l > 0 && (size_t)l < sizeof m->summary)
        snprintf(m->summary + l, sizeof m->summary - (size_t)l, ", %zu firmware modules",
                 json_object_array_length(mods));
    describe_value(t, m, hf, hv);
    json_object_put(o);
    return true;
}

/* A device answers each Describe request with the same JSON: the same bytes as the last answer give what
 * it gave (the functions and variables read from it are still the tracker's), without parsing again. */
void kr_msg_describe_answer(kr_tracker *t, kr_message *m)
{
    m->kind = KR_MSG_DESCRIBE_REPLY;
    size_t n = m->payload_len, keep = sizeof m->summary + sizeof m->value;
    if (t->desc_last && n == t->desc_last_len && memcmp(m->payload, t->desc_last, n) == 0) {
        memcpy(m->summary, t->desc_last + n, sizeof m->summary);
        memcpy(m->value, t->desc_last + n + sizeof m->summary, sizeof m->value);
        return;
    }
    if (!parse_describe(t, m) && m->summary[0] == '\0')
        snprintf(m->summary, sizeof m->summary, "Describe answer (%zu bytes)", n);
    free(t->desc_last);
    t->desc_last = n && n <= KR_FRAME_MAX ? malloc(n + keep) : NULL;
    t->desc_last_len = t->desc_last ? n : 0;
    if (t->desc_last) {
        memcpy(t->desc_last, m->payload, n);
        memcpy(t->desc_last + n, m->summary, sizeof m->summary);
        memcpy(t->desc_last + n + sizeof m->summary, m->value, sizeof m->value);
    }
}

static kr_var_type lookup_var(const kr_tracker *t, const char *name)
{
    for (size_t i = 0; i < t->n_vars; i++)
        if (strcmp(t->vars[i].name, name) == 0)
            return t->vars[i].type;
    return KR_VAR_UNKNOWN;
}

/* The value as the type says; false when the length does not fit the type. */
static bool typed_value(kr_message *m, kr_var_type type)
{
    const uint8_t *d = m->payload;
    size_t n = m->payload_len;
    if (type == KR_VAR_INT && n == 4) {
        int32_t v = (int32_t)kr_msg_be(d, 4);
        snprintf(m->value, sizeof m->value, "%ld", (long)v);
    } else if (type == KR_VAR_DOUBLE && n == 8) {
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--)   /* little-endian on the wire (docs/protocol.md 4.7) */
            u = u << 8 | d[i];
        double v;
        memcpy(&v, &u, sizeof v);
        snprintf(m->value, sizeof m->value, "%.10g", v);
    } else if (type == KR_VAR_BOOL && n == 1) {
        snprintf(m->value, sizeof m->value, "%s", d[0] ? "true" : "false");
    } else if (type == KR_VAR_STRING) {
        kr_msg_printable(d, n, m->value, sizeof m->value);
    } else if (type == KR_VAR_NULL) {
        snprintf(m->value, sizeof m->value, "null");
    } else {
        return false;
    }
    return true;
}

void kr_msg_format_value(kr_message *m, kr_var_type type)
{
    m->var_type = type;
    if (typed_value(m, type))
        return;
    /* unknown type or a length that does not fit it */
    const uint8_t *d = m->payload;
    size_t n = m->payload_len;
    char hex[80], pr[64];
    kr_msg_hex(d, n > 32 ? 32 : n, hex, sizeof hex);
    kr_msg_printable(d, n > 32 ? 32 : n, pr, sizeof pr);
    snprintf(m->value, sizeof m->value, "hex %s%s \"%s\"", hex, n > 32 ? "..." : "", pr);
    m->var_type = KR_VAR_UNKNOWN;
}

/* The ACK 2.05 to a variable request; name is the request's (NULL when the request was not seen). */
void kr_msg_variable_value(kr_tracker *t, kr_message *m, const char *name)
{
    m->kind = KR_MSG_VARIABLE_VALUE;
    if (!name) {
        kr_msg_format_value(m, KR_VAR_UNKNOWN);
        snprintf(m->summary, sizeof m->summary, "Variable value %s (request not seen)", m->value);
        return;
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    kr_msg_format_value(m, lookup_var(t, name));
    if (m->var_type != KR_VAR_UNKNOWN)
        snprintf(m->summary, sizeof m->summary, "Variable %s = %s (%s)", m->name, m->value,
                 kr_var_type_str(m->var_type));
    else
        snprintf(m->summary, sizeof m->summary, "Variable %s = %s (type unknown: no describe)", m->name, m->value);
}
