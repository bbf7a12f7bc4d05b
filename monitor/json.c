/* cloudmon: the JSON writer. */
#include "json.h"
#include "digits.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cm_json_init(cm_json *j)
{
    memset(j, 0, sizeof *j);
    j->first[0] = true;
}

void cm_json_free(cm_json *j)
{
    free(j->buf);
    memset(j, 0, sizeof *j);
}

void cm_json_reset(cm_json *j)
{
    j->len = 0;
    j->depth = 0;
    j->first[0] = true;
}

static bool grow_slow(cm_json *j, size_t more)
{
    if (j->oom)
        return false;
    size_t cap = j->cap ? j->cap : 1024;
    while (cap < j->len + more)
        cap *= 2;
    char *b = realloc(j->buf, cap);
    if (!b) {
        j->oom = true;
        return false;
    }
    j->buf = b;
    j->cap = cap;
    return true;
}

static inline bool grow(cm_json *j, size_t more)
{
    return (j->len + more <= j->cap && !j->oom) || grow_slow(j, more);
}

static inline void put(cm_json *j, const char *s, size_t n)
{
    if (!grow(j, n))
        return;
    memcpy(j->buf + j->len, s, n);
    j->len += n;
}

static inline void putc1(cm_json *j, char c)
{
    if (grow(j, 1))
        j->buf[j->len++] = c;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes there are not one (overlong
 * forms, surrogates and code points past U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2; cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3; cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4; cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* Bytes written as they are inside a JSON string: ASCII from space on, but '"' and '\\'. */
static const unsigned char plain_byte[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static inline bool plain(unsigned char c)
{
    return plain_byte[c];
}

/* The length of the run of plain bytes at s, eight at a time: a word is all plain when no byte is below
 * 0x20, none has the top bit and none equals '"' or '\\' (the usual zero-byte test on w XOR the byte). */
static size_t plain_run(const unsigned char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
        uint64_t bad = ((w - ones * 0x20) | w | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
        if (bad)
            break;
    }
    while (i < n && plain(s[i]))
        i++;
    return i;
}

/* Writes the escaped form of the n bytes at s to o, which has room for the worst case (6 bytes a byte);
 * returns the end. Runs of plain bytes are copied whole. */
static char *escape_to(char *o, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n) {
        size_t run = i + (n - i < 16 ? 0 : plain_run(s + i, n - i));
        while (run < n && plain(s[run]))
            run++;
        memcpy(o, s + i, run - i);
        o += run - i;
        if ((i = run) >= n)
            break;
        unsigned char c = s[i];
        size_t l = c >= 0x80 ? utf8_len(s + i, n - i) : 0;
        if (l) {
            memcpy(o, s + i, l);
            o += l;
            i += l;
            continue;
        }
        const char *named = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
        if (named) {
            memcpy(o, named, 2);
            o += 2;
        } else if (c >= 0x80) {
            /* not UTF-8: shown as the text \xNN, so no byte is lost and the line stays valid JSON */
            memcpy(o, "\\\\x", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 15];
            o += 5;
        } else {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        }
        i++;
    }
    return o;
}

void cm_json_escape(cm_json *j, const char *v, size_t n)
{
    if (n > (SIZE_MAX - 2) / 6 || !grow(j, 6 * n + 2))
        return;
    j->len = (size_t)(escape_to(j->buf + j->len, (const unsigned char *)v, n) - j->buf);
}

/* The separator and "key": of a member, with room made for more bytes after it in the same step;
 * false when there is no room (out of memory). */
static inline bool key_room(cm_json *j, const char *k, size_t more)
{
    size_t kl = k ? strlen(k) : 0;
    if (!grow(j, kl + 4 + more))
        return false;
    char *o = j->buf + j->len;
    if (!j->first[j->depth])
        *o++ = ',';
    j->first[j->depth] = false;
    if (k) {                /* keys are the program's own words: nothing to escape */
        *o++ = '"';
        memcpy(o, k, kl);
        o += kl;
        *o++ = '"';
        *o++ = ':';
    }
    j->len = (size_t)(o - j->buf);
    return true;
}

static void key(cm_json *j, const char *k)
{
    key_room(j, k, 0);
}

static void jopen(cm_json *j, const char *k, char c)
{
    if (j->len)
        key(j, k);
    putc1(j, c);
    if (j->depth + 1 < CM_JSON_DEPTH)
        j->first[++j->depth] = true;
}

void cm_json_obj(cm_json *j, const char *k) { jopen(j, k, '{'); }
void cm_json_arr(cm_json *j, const char *k) { jopen(j, k, '['); }

void cm_json_end(cm_json *j, char close)
{
    putc1(j, close);
    if (j->depth > 0)
        j->depth--;
}

void cm_json_strn(cm_json *j, const char *k, const char *v, size_t n)
{
    if (n > (SIZE_MAX - 64) / 6 || !key_room(j, k, 6 * n + 2))
        return;
    char *o = j->buf + j->len;
    *o++ = '"';
    o = escape_to(o, (const unsigned char *)v, n);
    *o++ = '"';
    j->len = (size_t)(o - j->buf);
}

void cm_json_word(cm_json *j, const char *k, const char *v)
{
    size_t n = strlen(v);
    if (!key_room(j, k, n + 2))
        return;
    char *o = j->buf + j->len;
    *o++ = '"';
    memcpy(o, v, n);
    o[n] = '"';
    j->len += n + 2;
}

void cm_json_str(cm_json *j, const char *k, const char *v)
{
    cm_json_strn(j, k, v, strlen(v));
}

void cm_json_int(cm_json *j, const char *k, int64_t v)
{
    char b[CM_DIGITS_MAX], *p = cm_digits_i64(b + sizeof b, v);
    size_t n = (size_t)(b + sizeof b - p);
    if (!key_room(j, k, n))
        return;
    memcpy(j->buf + j->len, p, n);
    j->len += n;
}

void cm_json_bool(cm_json *j, const char *k, bool v)
{
    key(j, k);
    put(j, v ? "true" : "false", v ? 4 : 5);
}

void cm_json_num(cm_json *j, const char *k, double v)
{
    char b[32];
    int n = snprintf(b, sizeof b, "null");
    if (isfinite(v)) {
        /* the shortest of 15, 16 or 17 digits that reads back as the same double */
        for (int digits = 15; digits <= 17; digits++) {
            n = snprintf(b, sizeof b, "%.*g", digits, v);
            if (strtod(b, NULL) == v)
                break;
        }
    }
    key(j, k);
    put(j, b, (size_t)n);
}

void cm_json_time(cm_json *j, const char *k, double t)
{
    /* six decimals while t in microseconds is a whole double (below 2^53 us, year 2255): beyond, or when
     * negative, the shortest form; a pcapng interface counting whole seconds can say 10^13 */
    if (!isfinite(t) || t < 0 || t >= 9e9) {
        cm_json_num(j, k, t);
        return;
    }
    int64_t us = (int64_t)(t * 1e6 + 0.5);
    char b[7];
    cm_json_int(j, k, us / 1000000);
    b[0] = '.';
    cm_digits_fixed(b + 1, (uint64_t)(us % 1000000), 6);
    put(j, b, 7);
}

bool cm_json_line(cm_json *j, FILE *f)
{
    putc1(j, '\n');
    if (j->oom)
        return false;
    return fwrite(j->buf, 1, j->len, f) == j->len;
}
