/* sparkwire libkeyring: a quick reader of the Describe answer's JSON in its usual shape (docs/protocol.md
 * 4.5): plain ASCII strings without escapes, small integers, nesting at most 16 deep, no repeated key among
 * f, v, p and m nor within v. Anything else is left to json-c (kr_describe_quick returns false, having
 * changed nothing), so both readers give the same result for every answer this one takes. */
#include <string.h>
#include "msg_int.h"

typedef struct jr {
    const uint8_t *p, *end;
} jr;

/* What a byte is to the reader: JSON whitespace, a byte a plain string holds as it is (printable ASCII but
 * '"' and the backslash), a byte that ends a value (whitespace, ',', ']', '}'). */
enum { C_WS = 1, C_PLAIN = 2, C_END = 4 };
#define CLS(c) (((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r' ? C_WS | C_END : 0) |     \
                ((c) >= 0x20 && (c) < 0x7f && (c) != '"' && (c) != '\\' ? C_PLAIN : 0) |             \
                ((c) == ',' || (c) == ']' || (c) == '}' ? C_END : 0))
#define CLS4(b) CLS(b), CLS((b) + 1), CLS((b) + 2), CLS((b) + 3)
#define CLS16(b) CLS4(b), CLS4((b) + 4), CLS4((b) + 8), CLS4((b) + 12)
#define CLS64(b) CLS16(b), CLS16((b) + 16), CLS16((b) + 32), CLS16((b) + 48)
static const uint8_t cls[256] = { CLS64(0), CLS64(64), CLS64(128), CLS64(192) };

/* The reader's small steps are made inline: a call each would cost more than the step. */
#define STEP static inline __attribute__((always_inline))

STEP void ws(jr *r)
{
    while (r->p < r->end && (cls[*r->p] & C_WS))
        r->p++;
}

/* After ws, the next byte is c: consumes it. */
STEP bool eat(jr *r, uint8_t c)
{
    ws(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return true;
    }
    return false;
}

STEP bool peek(jr *r, uint8_t c)
{
    ws(r);
    return r->p < r->end && *r->p == c;
}

/* A string of printable ASCII without escapes: its bytes in *s, *n. */
STEP bool string(jr *r, const uint8_t **s, size_t *n)
{
    if (!eat(r, '"'))
        return false;
    const uint8_t *b = r->p;
    while (r->p < r->end && (cls[*r->p] & C_PLAIN))
        r->p++;
    if (r->p == r->end || *r->p != '"')
        return false;   /* the end, a control byte, a backslash or a byte above 0x7e */
    *s = b;
    *n = (size_t)(r->p - b);
    r->p++;
    return true;
}

/* A value ends at whitespace, a comma or a closing bracket (or the end, which the caller then rejects). */
STEP bool delimited(const jr *r)
{
    return r->p == r->end || (cls[*r->p] & C_END);
}

/* -?(0|[1-9][0-9]{0,8}) */
static bool integer(jr *r, int *v)
{
    ws(r);
    bool neg = r->p < r->end && *r->p == '-';
    const uint8_t *d = r->p + neg;
    long x = 0;
    int n = 0;
    while (d + n < r->end && d[n] >= '0' && d[n] <= '9' && n < 10)
        x = x * 10 + (d[n++] - '0');
    if (n == 0 || n > 9 || (n > 1 && d[0] == '0'))
        return false;
    r->p = d + n;
    *v = (int)(neg ? -x : x);
    return delimited(r);
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, at most 15 characters */
static bool number(jr *r)
{
    const uint8_t *b = r->p, *p = r->p;
    if (p < r->end && *p == '-')
        p++;
    const uint8_t *d = p;
    while (p < r->end && *p >= '0' && *p <= '9')
        p++;
    if (p == d || (p - d > 1 && *d == '0'))
        return false;
    if (p < r->end && *p == '.') {
        d = ++p;
        while (p < r->end && *p >= '0' && *p <= '9')
            p++;
        if (p == d)
            return false;
    }
    if (p < r->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < r->end && (*p == '+' || *p == '-'))
            p++;
        d = p;
        while (p < r->end && *p >= '0' && *p <= '9')
            p++;
        if (p == d)
            return false;
    }
    r->p = p;
    return p - b <= 15 && delimited(r);
}

static bool literal(jr *r, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
        return false;
    r->p += n;
    return delimited(r);
}

static bool value(jr *r, int depth);

/* The members of an object or the elements of an array after its opening bracket, up to the closing one. */
static bool items(jr *r, int depth, bool object)
{
    if (eat(r, object ? '}' : ']'))
        return true;
    do {
        const uint8_t *k;
        size_t kn;
        if (object && (!string(r, &k, &kn) || !eat(r, ':')))
            return false;
        if (!value(r, depth))
            return false;
    } while (eat(r, ','));
    return eat(r, object ? '}' : ']');
}

/* Skips one value of any kind. */
static bool value(jr *r, int depth)
{
    ws(r);
    if (r->p == r->end || depth > 16)
        return false;
    const uint8_t *s;
    size_t n;
    switch (*r->p) {
    case '{': r->p++; return items(r, depth + 1, true);
    case '[': r->p++; return items(r, depth + 1, false);
    case '"': return string(r, &s, &n);
    case 't': return literal(r, "true");
    case 'f': return literal(r, "false");
    case 'n': return literal(r, "null");
    default: return number(r);
    }
}

#define QUICK_MAX 64

typedef struct quick {
    kr_seg f[QUICK_MAX], v[QUICK_MAX];
    int vt[QUICK_MAX];
    size_t nf, nv;
    int modules, platform;
    bool hf, hv, hp, hm;
} quick;

/* A member that counts when it is an array or object (open): *has is set and each element goes to item;
 * any other value is skipped. */
static bool list(jr *r, quick *q, uint8_t open, bool *has, bool (*item)(jr *r, quick *q))
{
    if (!eat(r, open))
        return value(r, 1);
    *has = true;
    uint8_t close = open == '[' ? ']' : '}';
    if (eat(r, close))
        return true;
    do {
        if (!item(r, q))
            return false;
    } while (eat(r, ','));
    return eat(r, close);
}

/* An element of "f": a string is a function name (other elements are not). */
static bool f_item(jr *r, quick *q)
{
    if (!peek(r, '"'))
        return value(r, 2);
    if (q->nf == QUICK_MAX || !string(r, &q->f[q->nf].v, &q->f[q->nf].len))
        return false;
    q->nf++;
    return true;
}

/* A member of "v": a variable name and its type number. */
static bool v_item(jr *r, quick *q)
{
    kr_seg *s = &q->v[q->nv];
    if (q->nv == QUICK_MAX || !string(r, &s->v, &s->len) || !eat(r, ':') || !integer(r, &q->vt[q->nv]))
        return false;
    for (size_t i = 0; i < q->nv; i++)
        if (q->v[i].len == s->len && memcmp(q->v[i].v, s->v, s->len) == 0)
            return false;   /* json-c keeps the first place and the last value */
    q->nv++;
    return true;
}

/* An element of "m": a module, counted. */
static bool m_item(jr *r, quick *q)
{
    q->modules++;
    return value(r, 2);
}

static bool member(jr *r, quick *q, const uint8_t *k, size_t kn, bool *seen)
{
    if (kn != 1 || !strchr("fvpm", k[0]))
        return value(r, 1);
    int i = (int)(strchr("fvpm", k[0]) - "fvpm");
    if (seen[i])
        return false;
    seen[i] = true;
    switch (k[0]) {
    case 'f': return list(r, q, '[', &q->hf, f_item);
    case 'v': return list(r, q, '{', &q->hv, v_item);
    case 'p': q->hp = true; return integer(r, &q->platform);
    default: return list(r, q, '[', &q->hm, m_item);
    }
}

bool kr_describe_quick(kr_tracker *t, const uint8_t *d, size_t n, kr_describe_seen *out)
{
    jr r = { d, d + n };
    quick q;
    memset(&q, 0, sizeof q);
    bool seen[4] = { false, false, false, false };
    if (!eat(&r, '{'))
        return false;
    if (!eat(&r, '}')) {
        do {
            const uint8_t *k;
            size_t kn;
            if (!string(&r, &k, &kn) || !eat(&r, ':') || !member(&r, &q, k, kn, seen))
                return false;
        } while (eat(&r, ','));
        if (!eat(&r, '}'))
            return false;
    }
    if (q.hf || q.hv) {
        kr_tracker_clear_describe(t);
        for (size_t i = 0; q.hf && i < q.nf; i++)
            kr_describe_add_func(t, q.f[i].v, q.f[i].len);
        for (size_t i = 0; q.hv && i < q.nv; i++)
            kr_describe_add_var(t, q.v[i].v, q.v[i].len, q.vt[i]);
    }
    out->hf = q.hf;
    out->hv = q.hv;
    out->hp = q.hp;
    out->hm = q.hm;
    out->platform = q.platform;
    out->modules = (size_t)q.modules;
    return true;
}
