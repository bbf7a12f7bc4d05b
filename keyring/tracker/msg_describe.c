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

void kr_describe_add_func(kr_tracker *t, const uint8_t *name, size_t len)
{
    if (t->n_funcs >= 256)
        return;
    if (t->n_funcs == t->cap_funcs) {
        size_t c = t->cap_funcs ? t->cap_funcs * 2 : 4;
        char **n = realloc(t->funcs, c * sizeof *n);
        if (!n)
            return;
        t->funcs = n;
        t->cap_funcs = c;
    }
    char text[256];
    kr_msg_printable(name, len, text, sizeof text);
    char *s = strdup(text);
    if (s)
        t->funcs[t->n_funcs++] = s;
}

static kr_var_type var_type_of(int n);

void kr_describe_add_var(kr_tracker *t, const uint8_t *name, size_t len, int type)
{
    if (t->n_vars >= 256)
        return;
    if (t->n_vars == t->cap_vars) {
        size_t c = t->cap_vars ? t->cap_vars * 2 : 2;
        kr_var *n = realloc(t->vars, c * sizeof *n);
        if (!n)
            return;
        t->vars = n;
        t->cap_vars = c;
    }
    /* in the printable form of names read from a URI, so that comparing the two compares the raw bytes */
    kr_msg_printable(name, len, t->vars[t->n_vars].name, sizeof t->vars[t->n_vars].name);
    t->vars[t->n_vars].type = var_type_of(type);
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

static void add_func_str(kr_tracker *t, const char *name)
{
    kr_describe_add_func(t, (const uint8_t *)name, strlen(name));
}

static void read_describe(kr_tracker *t, json_object *f, json_object *v)
{
    kr_tracker_clear_describe(t);
    if (f) {
        size_t n = json_object_array_length(f);
        for (size_t i = 0; i < n; i++) {
            json_object *e = json_object_array_get_idx(f, i);
            if (e && json_object_is_type(e, json_type_string))
                add_func_str(t, json_object_get_string(e));
        }
    }
    if (v) {
        json_object_object_foreach(v, key, val) {
            kr_describe_add_var(t, (const uint8_t *)key, strlen(key), json_object_get_int(val));
        }
    }
}

/* The names for the value field: functions as name(), variables as name:type. */
static void describe_value(const kr_tracker *t, kr_message *m, bool hf, bool hv)
{
    kr_txt x = kr_txt_in(m->value, sizeof m->value);
    for (size_t i = 0; i < t->n_funcs && hf && x.n + 2 < sizeof m->value; i++) {
        kr_txt_put(&x, x.n ? " " : "");
        kr_txt_put(&x, t->funcs[i]);
        kr_txt_put(&x, "()");
    }
    for (size_t i = 0; i < t->n_vars && hv && x.n + 2 < sizeof m->value; i++) {
        kr_txt_put(&x, x.n ? " " : "");
        kr_txt_put(&x, t->vars[i].name);
        kr_txt_put(&x, ":");
        kr_txt_put(&x, kr_var_type_str(t->vars[i].type));
    }
}

/* Reads the answer with json-c into t and *seen; false when it is not a JSON object. */
bool kr_describe_jsonc(kr_tracker *t, const uint8_t *d, size_t n, kr_describe_seen *seen)
{
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return false;
    json_object *o = json_tokener_parse_ex(tok, (const char *)d, (int)n);
    json_tokener_free(tok);
    if (!o || !json_object_is_type(o, json_type_object)) {
        if (o)
            json_object_put(o);
        return false;
    }
    json_object *f = NULL, *v = NULL, *p = NULL, *mods = NULL;
    seen->hf = json_object_object_get_ex(o, "f", &f) && json_object_is_type(f, json_type_array);
    seen->hv = json_object_object_get_ex(o, "v", &v) && json_object_is_type(v, json_type_object);
    seen->hp = json_object_object_get_ex(o, "p", &p);
    seen->hm = json_object_object_get_ex(o, "m", &mods) && json_object_is_type(mods, json_type_array);
    seen->platform = seen->hp ? json_object_get_int(p) : 0;
    seen->modules = seen->hm ? json_object_array_length(mods) : 0;
    if (seen->hf || seen->hv)
        read_describe(t, seen->hf ? f : NULL, seen->hv ? v : NULL);
    json_object_put(o);
    return true;
}

/* Parses the JSON of a describe answer (the quick reader first, json-c for what it leaves); false when
 * it is not a JSON object. */
static bool parse_describe(kr_tracker *t, kr_message *m)
{
    kr_describe_seen seen = { false, false, false, false, 0, 0 };
    if (m->payload_len == 0)
        return false;
    if (!kr_describe_quick(t, m->payload, m->payload_len, &seen) && !kr_describe_jsonc(t, m->payload, m->payload_len, &seen)) {
        snprintf(m->summary, sizeof m->summary, "Describe answer: not valid JSON (%zu bytes)", m->payload_len);
        return false;
    }
    bool hf = seen.hf, hv = seen.hv;
    size_t nf = hf ? t->n_funcs : 0, nv = hv ? t->n_vars : 0;
    kr_txt x = kr_txt_in(m->summary, sizeof m->summary);   /* without printf: one per describe answer */
    kr_txt_put(&x, "Describe: ");
    kr_txt_int(&x, (long long)nf);
    kr_txt_put(&x, nf == 1 ? " function, " : " functions, ");
    kr_txt_int(&x, (long long)nv);
    kr_txt_put(&x, nv == 1 ? " variable" : " variables");
    if (seen.hp) {
        kr_txt_put(&x, ", platform ");
        kr_txt_int(&x, seen.platform);
    }
    if (seen.hm) {
        kr_txt_put(&x, ", ");
        kr_txt_int(&x, (long long)seen.modules);
        kr_txt_put(&x, " firmware modules");
    }
    describe_value(t, m, hf, hv);
    return true;
}

void kr_msg_describe_answer(kr_tracker *t, kr_message *m)
{
    m->kind = KR_MSG_DESCRIBE_REPLY;
    if (t->no_texts)
        return;   /* its lists serve the texts only */
    if (!parse_describe(t, m) && m->summary[0] == '\0')
        snprintf(m->summary, sizeof m->summary, "Describe answer (%zu bytes)", m->payload_len);
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
        kr_txt x = kr_txt_in(m->value, sizeof m->value);
        kr_txt_int(&x, (int32_t)kr_msg_be(d, 4));
    } else if (type == KR_VAR_DOUBLE && n == 8) {
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--)   /* little-endian on the wire (docs/protocol.md 4.7) */
            u = u << 8 | d[i];
        double v;
        memcpy(&v, &u, sizeof v);
        snprintf(m->value, sizeof m->value, "%.10g", v);
    } else if (type == KR_VAR_BOOL && n == 1) {
        kr_txt x = kr_txt_in(m->value, sizeof m->value);
        kr_txt_put(&x, d[0] ? "true" : "false");
    } else if (type == KR_VAR_STRING) {
        kr_msg_printable(d, n, m->value, sizeof m->value);
    } else if (type == KR_VAR_NULL) {
        kr_txt x = kr_txt_in(m->value, sizeof m->value);
        kr_txt_put(&x, "null");
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
    if (t->no_texts)
        return;
    if (!name) {
        kr_msg_format_value(m, KR_VAR_UNKNOWN);
        snprintf(m->summary, sizeof m->summary, "Variable value %s (request not seen)", m->value);
        return;
    }
    kr_txt n = kr_txt_in(m->name, sizeof m->name), x = kr_txt_in(m->summary, sizeof m->summary);
    kr_txt_put(&n, name);
    kr_msg_format_value(m, lookup_var(t, name));
    kr_txt_put(&x, "Variable ");
    kr_txt_put(&x, m->name);
    kr_txt_put(&x, " = ");
    kr_txt_put(&x, m->value);
    if (m->var_type != KR_VAR_UNKNOWN) {
        kr_txt_put(&x, " (");
        kr_txt_put(&x, kr_var_type_str(m->var_type));
        kr_txt_put(&x, ")");
    } else {
        kr_txt_put(&x, " (type unknown: no describe)");
    }
}
