/* sparkwire libkeyring: the keyfile (docs/design.md "Keyfile"). Every bad line stops the load with one
 * "FILE:LINE: what is wrong (what to do)" error; nothing is skipped, nothing is cut. Lookups by device id
 * and by key file go through hash tables, so loading is linear in the number of lines. */
#include "keyring/keyfile.h"
#include "internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYFILE_MAX (4 * 1024 * 1024)
#define N_KINDS 7   /* kr_entry_kind values 1..6 */

/* Open addressing: slot = (hash, index + 1), 0 = empty. */
typedef struct hslot {
    uint64_t h;
    size_t idx1;
} hslot;

typedef struct hmap {
    hslot *s;
    size_t cap, n;
} hmap;

typedef struct idxlist {
    size_t *v;
    size_t n, cap;
} idxlist;

struct kr_keyfile {
    char *path;
    kr_entry *v;
    size_t n, cap;
    idxlist kind[N_KINDS];  /* entry indexes per kind, keyfile order */
    idxlist wild;           /* device * entries */
    hmap ids;               /* (kind, device id) -> entry */
    hmap files;             /* key file path -> first entry that loaded it */
    hmap hints;             /* session line block= hint -> index among the session lines */
    kr_key **owned;         /* one loaded key per distinct key file */
    size_t n_owned, cap_owned;
    kr_probe_key **probe;   /* one per session line, keyed on first use (kr_keyfile_session_probe) */
};

/* ---- small containers --------------------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static int idx_push(idxlist *l, size_t i)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        size_t *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = i;
    return 0;
}

static int hmap_put(hmap *m, uint64_t h, size_t idx)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        hslot *s = calloc(cap, sizeof *s);
        if (!s)
            return -1;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->s[i].idx1)
                continue;
            size_t j = m->s[i].h & (cap - 1);
            while (s[j].idx1)
                j = (j + 1) & (cap - 1);
            s[j] = m->s[i];
        }
        free(m->s);
        m->s = s;
        m->cap = cap;
    }
    size_t j = h & (m->cap - 1);
    while (m->s[j].idx1)
        j = (j + 1) & (m->cap - 1);
    m->s[j].h = h;
    m->s[j].idx1 = idx + 1;
    m->n++;
    return 0;
}

/* The entry index whose hash is h and for which eq() holds, or -1. */
static long hmap_get(const hmap *m, uint64_t h, bool (*eq)(const kr_keyfile *, size_t, const void *),
                     const kr_keyfile *kf, const void *key)
{
    if (!m->cap)
        return -1;
    for (size_t j = h & (m->cap - 1); m->s[j].idx1; j = (j + 1) & (m->cap - 1))
        if (m->s[j].h == h && eq(kf, m->s[j].idx1 - 1, key))
            return (long)(m->s[j].idx1 - 1);
    return -1;
}

typedef struct idkey {
    kr_entry_kind kind;
    const uint8_t *id;
} idkey;

static uint64_t id_hash(kr_entry_kind kind, const uint8_t *id)
{
    uint8_t k = (uint8_t)kind;
    return fnv(fnv(14695981039346656037ull, &k, 1), id, KR_DEVICE_ID_LEN);
}

static bool id_eq(const kr_keyfile *kf, size_t i, const void *key)
{
    const idkey *k = key;
    return kf->v[i].kind == k->kind && kf->v[i].has_id && memcmp(kf->v[i].device_id, k->id, KR_DEVICE_ID_LEN) == 0;
}

static bool hint_eq(const kr_keyfile *kf, size_t i, const void *key)
{
    const kr_entry *e = &kf->v[kf->kind[KR_ENTRY_SESSION].v[i]];
    return e->has_hint && memcmp(e->hint, key, KR_SESSION_HINT_LEN) == 0;
}

static uint64_t hint_hash(const uint8_t *hint)
{
    return fnv(14695981039346656037ull, hint, KR_SESSION_HINT_LEN);
}

static bool path_eq(const kr_keyfile *kf, size_t i, const void *key)
{
    return strcmp(kf->v[i].path, key) == 0;
}

static const kr_entry *find_id(const kr_keyfile *kf, kr_entry_kind kind, const uint8_t id[KR_DEVICE_ID_LEN])
{
    if (!kf || !id)
        return NULL;
    idkey k = { kind, id };
    long i = hmap_get(&kf->ids, id_hash(kind, id), id_eq, kf, &k);
    return i >= 0 ? &kf->v[i] : NULL;
}

/* ---- life cycle --------------------------------------------------------------------------------- */

kr_keyfile *kr_keyfile_new_empty(void)
{
    return calloc(1, sizeof(kr_keyfile));
}

void kr_keyfile_free(kr_keyfile *kf)
{
    if (!kf)
        return;
    for (size_t i = 0; i < kf->n_owned; i++)
        kr_key_free(kf->owned[i]);
    for (size_t i = 0; i < kf->n; i++)
        free((char *)kf->v[i].path);
    for (int k = 0; k < N_KINDS; k++)
        free(kf->kind[k].v);
    free(kf->wild.v);
    free(kf->ids.s);
    free(kf->files.s);
    free(kf->hints.s);
    free(kf->owned);
    for (size_t i = 0; kf->probe && i < kf->kind[KR_ENTRY_SESSION].n; i++)
        kr_probe_key_free(kf->probe[i]);
    free(kf->probe);
    free(kf->v);
    free(kf->path);
    free(kf);
}

/* ---- one line ----------------------------------------------------------------------------------- */

/* Splits a line into at most 4 words (a fifth means "too many"). Returns the word count. */
static int split(char *line, char *words[5])
{
    int n = 0;
    char *p = line;
    static const char space[] = " \t\n\v\f\r";   /* white space as in the C locale, whatever the locale */
    while (*p && n < 5) {
        p += strspn(p, space);
        if (!*p)
            break;
        words[n++] = p;
        p += strcspn(p, space);
        if (*p)
            *p++ = '\0';
    }
    return n;
}

int kr_keyfile_parse_cloud(const char *text, int *family, uint8_t addr[16], uint16_t *port)
{
    char host[64];
    const char *rest;
    size_t hl;
    if (!text)
        return -1;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end)
            return -1;
        hl = (size_t)(end - text - 1);
        rest = end + 1;
        *family = 6;
        if (hl >= sizeof host)
            return -1;
        memcpy(host, text + 1, hl);
    } else {
        const char *colon = strchr(text, ':');
        hl = colon ? (size_t)(colon - text) : strlen(text);
        rest = text + hl;
        *family = 4;
        if (hl >= sizeof host)
            return -1;
        memcpy(host, text, hl);
    }
    host[hl] = '\0';
    memset(addr, 0, 16);
    if (inet_pton(*family == 4 ? AF_INET : AF_INET6, host, addr) != 1)
        return -1;
    *port = 0;
    if (*rest == '\0')
        return 0;
    if (*rest != ':' || !rest[1] || strlen(rest + 1) > 5)
        return -1;
    unsigned long p = 0;
    for (const char *c = rest + 1; *c; c++) {
        if (!isdigit((unsigned char)*c))
            return -1;
        p = p * 10 + (unsigned long)(*c - '0');
    }
    if (p == 0 || p > 65535)
        return -1;
    *port = (uint16_t)p;
    return 0;
}

typedef struct kw {
    const char *word;
    kr_entry_kind kind;
    int min, max;           /* words on the line, keyword included */
    const char *usage;
} kw;

static const kw keywords[] = {
    { "server-private", KR_ENTRY_SERVER_PRIVATE, 2, 3, "server-private PATH [cloud=ADDR]" },
    { "server-public", KR_ENTRY_SERVER_PUBLIC, 2, 3, "server-public PATH [cloud=ADDR]" },
    { "device", KR_ENTRY_DEVICE, 3, 3, "device ID|* PATH" },
    { "session", KR_ENTRY_SESSION, 3, 4, "session ID HEX80 [block=HEX16]" },
    { "device-server-key", KR_ENTRY_DEVICE_SERVER_KEY, 3, 3, "device-server-key ID PATH" },
    { "device-public", KR_ENTRY_DEVICE_PUBLIC, 3, 3, "device-public ID PATH" },
};

static const char *kind_word(kr_entry_kind k)
{
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (keywords[i].kind == k)
            return keywords[i].word;
    return "?";
}

typedef struct ctx {
    kr_keyfile *kf;
    const char *name;
    const char *base_dir;
    int line;
    kr_err *err;
    kr_key_loader loader;   /* decoder contexts shared by the key files of this keyfile */
} ctx;

static int fail(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(ctx *c, const char *fmt, ...)
{
    char msg[sizeof c->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kr_err_set(c->err, "%s:%d: %s", c->name, c->line, msg);
    return -1;
}

static int parse_id(ctx *c, const char *text, kr_entry *e, bool wildcard_ok)
{
    if (wildcard_ok && strcmp(text, "*") == 0) {
        e->wildcard = true;
        return 0;
    }
    if (strlen(text) != KR_DEVICE_ID_HEX_LEN || kr_unhex(text, e->device_id, KR_DEVICE_ID_LEN) != 0)
        return fail(c, "bad device id \"%.64s\": write the 24 hex digits of the id (e.g. "
                    "55ff6d065075555332071787)%s", text, wildcard_ok ? " or * for any device" : "");
    e->has_id = true;
    kr_device_id_hex(e->device_id, e->device_id_hex);
    const kr_entry *dup = find_id(c->kf, e->kind, e->device_id);
    if (dup)
        return fail(c, "duplicate %s for device %s (already on line %d): keep one line per device",
                    kind_word(e->kind), e->device_id_hex, dup->line);
    return 0;
}

/* Refuses a key the checks call broken: nothing it computes would be right. */
static int refuse_broken(ctx *c, const kr_entry *e, const kr_key *k)
{
    if (k->exponent != 0 && (k->exponent < 3 || k->exponent % 2 == 0))
        return fail(c, "%s has public exponent %lu: a broken RSA key (the exponent must be odd and at least "
                    "3); use an intact copy of the key", e->path, k->exponent);
    char why[256];
    if (k->is_private && kr_key_numbers_broken(k, why, sizeof why))
        return fail(c, "%s, so nothing it decrypts is right; use an intact copy of the key", why);
    return 0;
}

/* Loads the key file of entry e (once per distinct file: lines naming the same file share the key). */
static int load_key(ctx *c, kr_entry *e, const char *file)
{
    char path[KR_ENTRY_PATH_MAX + 1];
    int n;
    if (file[0] == '/' || !c->base_dir || !c->base_dir[0])
        n = snprintf(path, sizeof path, "%s", file);
    else
        n = snprintf(path, sizeof path, "%s/%s", c->base_dir, file);
    if (n < 0 || (size_t)n >= sizeof path)
        return fail(c, "the key file path is %d characters, more than the %d this keyfile format keeps: move "
                    "the key to a shorter path", n, KR_ENTRY_PATH_MAX);
    if (!(e->path = strdup(path)))
        return fail(c, "out of memory");
    long known = hmap_get(&c->kf->files, fnv(14695981039346656037ull, e->path, strlen(e->path)), path_eq,
                          c->kf, e->path);
    if (known >= 0) {
        e->key = c->kf->v[known].key;
        return 0;
    }
    /* The loader opens the file once (fstat of the open file: regular files only); a stat() tells why
     * only when it fails. */
    kr_err kerr;
    kr_key *key = kr_key_loader_file(&c->loader, e->path, &kerr);
    if (!key) {
        struct stat st;
        if (stat(e->path, &st) != 0 && errno == ENOENT)
            return fail(c, "key file %s does not exist (fix the path; paths are relative to the keyfile's "
                        "folder)", e->path);
        if (stat(e->path, &st) == 0 && !S_ISREG(st.st_mode))
            return fail(c, "key file %s is not a regular file (a folder, FIFO or device): name the key file "
                        "itself", e->path);
        return fail(c, "%s", kerr.msg);
    }
    if (refuse_broken(c, e, key) != 0) {
        kr_key_free(key);
        return -1;
    }
    if (c->kf->n_owned == c->kf->cap_owned) {
        size_t cap = c->kf->cap_owned ? c->kf->cap_owned * 2 : 8;
        kr_key **o = realloc(c->kf->owned, cap * sizeof *o);
        if (!o) {
            kr_key_free(key);
            return fail(c, "out of memory");
        }
        c->kf->owned = o;
        c->kf->cap_owned = cap;
    }
    c->kf->owned[c->kf->n_owned++] = key;
    e->key = key;
    if (hmap_put(&c->kf->files, fnv(14695981039346656037ull, e->path, strlen(e->path)), c->kf->n) != 0)
        return fail(c, "out of memory");
    return 0;
}

static bool same_cloud(const kr_entry *a, const kr_entry *b)
{
    if (a->bound != b->bound)
        return false;
    return !a->bound || (a->cloud_family == b->cloud_family && a->cloud_port == b->cloud_port &&
                         memcmp(a->cloud_addr, b->cloud_addr, 16) == 0);
}

/* Size and kind rules per line kind, and duplicates. */
static int check_key(ctx *c, kr_entry *e, const char *file)
{
    const kr_key *key = e->key;
    switch (e->kind) {
    case KR_ENTRY_DEVICE:
        if (!key->is_private)
            return fail(c, "%s is a public key; a device line needs the device's private key (the public key "
                        "cannot open the session block; for the cloud's record write: device-public ID %s)",
                        e->path, file);
        if (key->bits != 1024)
            return fail(c, "%s is RSA-%d; device keys are RSA-1024 (server and device keys swapped?)", e->path,
                        key->bits);
        if (e->wildcard)
            for (size_t i = 0; i < c->kf->wild.n; i++) {
                const kr_entry *o = &c->kf->v[c->kf->wild.v[i]];
                if (kr_key_same_public(o->key, key))
                    return fail(c, "the same key as the device * line %d: keep one", o->line);
            }
        return 0;
    case KR_ENTRY_DEVICE_PUBLIC:
        if (key->bits != 1024)
            return fail(c, "%s is RSA-%d; device keys are RSA-1024 (server and device keys swapped?)", e->path,
                        key->bits);
        return 0;
    case KR_ENTRY_DEVICE_SERVER_KEY:
        if (key->bits != 2048)
            return fail(c, "%s is RSA-%d; the server key in a device's flash is RSA-2048 (a device key given "
                        "by mistake?)", e->path, key->bits);
        return 0;
    case KR_ENTRY_SERVER_PRIVATE:
    case KR_ENTRY_SERVER_PUBLIC:
        if (e->kind == KR_ENTRY_SERVER_PRIVATE && !key->is_private)
            return fail(c, "%s is a public key; server-private needs the cloud's private key (for the public "
                        "key write: server-public %s)", e->path, file);
        if (key->bits != 2048)
            return fail(c, "%s is RSA-%d; the server key is RSA-2048 (server and device keys swapped?)", e->path,
                        key->bits);
        for (size_t i = 0; i < c->kf->kind[e->kind].n; i++) {
            const kr_entry *o = &c->kf->v[c->kf->kind[e->kind].v[i]];
            if (same_cloud(o, e))
                return fail(c, "duplicate %s%s%s (already on line %d): keep one, or bind each to its cloud "
                            "with cloud=ADDR", kind_word(e->kind), e->bound ? " for cloud " : "",
                            e->bound ? e->cloud : "", o->line);
        }
        return 0;
    default:
        return 0;
    }
}

static int parse_hint(ctx *c, kr_entry *e, const char *word)
{
    const char *h = strncmp(word, "block=", 6) == 0 ? word + 6 : NULL;
    if (!h || strlen(h) != 2 * KR_SESSION_HINT_LEN || kr_unhex(h, e->hint, KR_SESSION_HINT_LEN) != 0)
        return fail(c, "bad hint \"%.64s\" after the session material: write block= and 16 hex digits (the first "
                    "8 bytes of the SHA-256 of the session block's E), or drop it", word);
    long dup = kr_keyfile_session_by_hint(c->kf, e->hint);
    if (dup >= 0)
        return fail(c, "duplicate hint %s (already on line %d): a hint names one connection, keep it on its own "
                    "line only", h, kr_keyfile_session_entry(c->kf, (size_t)dup)->line);
    e->has_hint = true;
    return 0;
}

static int parse_session(ctx *c, kr_entry *e, const char *hex, const char *hint)
{
    size_t hl = strlen(hex);
    if (hl != 2 * KR_SESSION_LEN)
        return fail(c, "session material must be 80 hex digits (40 bytes: key, IV, salt), found %zu characters",
                    hl);
    if (kr_unhex(hex, e->session, KR_SESSION_LEN) != 0)
        return fail(c, "session material is not hex (only 0-9 and a-f, 80 digits)");
    return hint ? parse_hint(c, e, hint) : 0;
}

static int parse_binding(ctx *c, kr_entry *e, const char *word)
{
    if (strncmp(word, "cloud=", 6) != 0)
        return fail(c, "unexpected \"%.64s\" after the path (write: %s PATH cloud=ADDR)", word, kind_word(e->kind));
    const char *a = word + 6;
    if (kr_keyfile_parse_cloud(a, &e->cloud_family, e->cloud_addr, &e->cloud_port) != 0)
        return fail(c, "bad cloud address \"%.64s\": write an IPv4 address (192.0.2.10), or IPv6 in brackets "
                    "([2001:db8::1]), optionally with :PORT", a);
    e->bound = true;
    snprintf(e->cloud, sizeof e->cloud, "%s", a);
    return 0;
}

/* Adds e to the keyfile, which takes its path (e->path is NULL afterwards, whatever the result). */
static int add_entry(ctx *c, kr_entry *e)
{
    kr_keyfile *kf = c->kf;
    if (!e->path && !(e->path = strdup("")))
        return fail(c, "out of memory");
    if (kf->n == kf->cap) {
        size_t cap = kf->cap ? kf->cap * 2 : 8;
        kr_entry *v = realloc(kf->v, cap * sizeof *v);
        if (!v) {
            free((char *)e->path);
            e->path = NULL;
            return fail(c, "out of memory");
        }
        kf->v = v;
        kf->cap = cap;
    }
    size_t i = kf->n++;
    kf->v[i] = *e;
    e->path = NULL;
    if (idx_push(&kf->kind[e->kind], i) != 0 || (e->wildcard && idx_push(&kf->wild, i) != 0) ||
        (e->has_id && hmap_put(&kf->ids, id_hash(e->kind, e->device_id), i) != 0) ||
        (e->has_hint && hmap_put(&kf->hints, hint_hash(e->hint), kf->kind[KR_ENTRY_SESSION].n - 1) != 0))
        return fail(c, "out of memory");
    return 0;
}

static int parse_line(ctx *c, char *line)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    char *w[5];
    int nw = split(line, w);
    if (nw == 0)
        return 0;
    const kw *k = NULL;
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (strcmp(w[0], keywords[i].word) == 0)
            k = &keywords[i];
    if (!k)
        return fail(c, "unknown keyword \"%.64s\" (use server-private, server-public, device, session, "
                    "device-server-key or device-public)", w[0]);
    if (nw < k->min || nw > k->max)
        return fail(c, "%s takes %d word%s after it, found %d (write: %s)", w[0], k->min - 1,
                    k->min == 2 ? "" : "s", nw - 1, k->usage);
    kr_entry e;
    memset(&e, 0, sizeof e);
    e.kind = k->kind;
    e.line = c->line;
    const char *file = w[1];
    if (k->min == 3) {
        if (parse_id(c, w[1], &e, k->kind == KR_ENTRY_DEVICE) != 0)
            return -1;
        file = w[2];
    }
    if (k->kind == KR_ENTRY_SESSION)
        return parse_session(c, &e, w[2], nw == 4 ? w[3] : NULL) != 0 ? -1 : add_entry(c, &e);
    if (nw == 3 && k->min == 2 && parse_binding(c, &e, w[2]) != 0)
        return -1;
    if (load_key(c, &e, file) != 0 || check_key(c, &e, file) != 0) {
        free((char *)e.path);
        return -1;
    }
    return add_entry(c, &e);
}

kr_keyfile *kr_keyfile_parse(const char *text, size_t len, const char *base_dir, const char *name,
                             kr_err *err)
{
    ctx c = { .kf = kr_keyfile_new_empty(), .name = name ? name : "keyfile", .base_dir = base_dir, .err = err };
    if (!c.kf) {
        kr_err_set(err, "%s: out of memory", c.name);
        return NULL;
    }
    char line[4096];
    size_t pos = 0;
    while (pos < len) {
        size_t start = pos;
        const char *nl = memchr(text + pos, '\n', len - pos);
        pos = nl ? (size_t)(nl - text) : len;
        size_t ll = pos - start;
        if (pos < len)
            pos++;      /* the newline */
        c.line++;
        int r;
        if (ll >= sizeof line) {
            r = fail(&c, "line longer than %zu characters (one entry per line)", sizeof line - 1);
        } else {
            memcpy(line, text + start, ll);
            line[ll] = '\0';
            r = memchr(line, '\0', ll) ? fail(&c, "NUL byte in the line: this is not a keyfile (a key file given "
                                                 "by mistake?)")
                                       : parse_line(&c, line);
        }
        if (r != 0) {
            kr_key_loader_done(&c.loader);
            kr_keyfile_free(c.kf);
            return NULL;
        }
    }
    kr_key_loader_done(&c.loader);
    return c.kf;
}

kr_keyfile *kr_keyfile_load(const char *path, kr_err *err)
{
    size_t n = 0;
    char *buf = (char *)kr_read_file(path, KEYFILE_MAX, "the keyfile", "larger than 4 MB: not a keyfile", &n, err);
    if (!buf)
        return NULL;
    const char *slash = strrchr(path, '/');
    char *dir = !slash ? strdup(".") : slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    kr_keyfile *kf = dir ? kr_keyfile_parse(buf, n, dir, path, err) : NULL;
    if (!dir)
        kr_err_set(err, "%s: out of memory", path);
    free(buf);
    free(dir);
    if (kf && !(kf->path = strdup(path))) {
        kr_keyfile_free(kf);
        kr_err_set(err, "%s: out of memory", path);
        return NULL;
    }
    return kf;
}

/* ---- accessors ---------------------------------------------------------------------------------- */

const char *kr_keyfile_path(const kr_keyfile *kf)
{
    return kf && kf->path ? kf->path : "";
}

size_t kr_keyfile_count(const kr_keyfile *kf)
{
    return kf ? kf->n : 0;
}

const kr_entry *kr_keyfile_entry(const kr_keyfile *kf, size_t i)
{
    return kf && i < kf->n ? &kf->v[i] : NULL;
}

static const kr_entry *nth(const kr_keyfile *kf, kr_entry_kind kind, size_t i)
{
    return kf && i < kf->kind[kind].n ? &kf->v[kf->kind[kind].v[i]] : NULL;
}

/* The unbound entry of a kind, else the first bound one. */
static const kr_entry *server_any(const kr_keyfile *kf, kr_entry_kind kind)
{
    const kr_entry *e = kr_keyfile_server_entry(kf, kind, 0, NULL, 0);
    return e ? e : nth(kf, kind, 0);
}

const kr_key *kr_keyfile_server_private(const kr_keyfile *kf)
{
    const kr_entry *e = server_any(kf, KR_ENTRY_SERVER_PRIVATE);
    return e ? e->key : NULL;
}

const kr_key *kr_keyfile_server_public(const kr_keyfile *kf)
{
    const kr_entry *e = server_any(kf, KR_ENTRY_SERVER_PUBLIC);
    return e ? e->key : kr_keyfile_server_private(kf);
}

const kr_entry *kr_keyfile_server_entry(const kr_keyfile *kf, kr_entry_kind kind, int family,
                                        const uint8_t *addr, uint16_t port)
{
    if (!kf || (kind != KR_ENTRY_SERVER_PRIVATE && kind != KR_ENTRY_SERVER_PUBLIC))
        return NULL;
    const kr_entry *any_port = NULL, *unbound = NULL;
    size_t alen = family == 4 ? 4 : 16;
    for (size_t i = 0; i < kf->kind[kind].n; i++) {
        const kr_entry *e = &kf->v[kf->kind[kind].v[i]];
        if (!e->bound) {
            unbound = e;
            continue;
        }
        if (!addr || e->cloud_family != family || memcmp(e->cloud_addr, addr, alen) != 0)
            continue;
        if (e->cloud_port == port)
            return e;
        if (e->cloud_port == 0)
            any_port = e;
    }
    return any_port ? any_port : unbound;
}

const kr_key *kr_keyfile_device_key(const kr_keyfile *kf, const uint8_t id[KR_DEVICE_ID_LEN])
{
    const kr_entry *e = find_id(kf, KR_ENTRY_DEVICE, id);
    return e ? e->key : NULL;
}

const kr_key *kr_keyfile_device_server_key(const kr_keyfile *kf, const uint8_t id[KR_DEVICE_ID_LEN])
{
    const kr_entry *e = find_id(kf, KR_ENTRY_DEVICE_SERVER_KEY, id);
    return e ? e->key : NULL;
}

const kr_key *kr_keyfile_device_public(const kr_keyfile *kf, const uint8_t id[KR_DEVICE_ID_LEN])
{
    const kr_entry *e = find_id(kf, KR_ENTRY_DEVICE_PUBLIC, id);
    return e ? e->key : NULL;
}

size_t kr_keyfile_device_server_key_count(const kr_keyfile *kf)
{
    return kf ? kf->kind[KR_ENTRY_DEVICE_SERVER_KEY].n : 0;
}

const kr_entry *kr_keyfile_device_server_key_entry(const kr_keyfile *kf, size_t i)
{
    return nth(kf, KR_ENTRY_DEVICE_SERVER_KEY, i);
}

size_t kr_keyfile_wildcard_count(const kr_keyfile *kf)
{
    return kf ? kf->wild.n : 0;
}

const kr_key *kr_keyfile_wildcard(const kr_keyfile *kf, size_t i)
{
    return kf && i < kf->wild.n ? kf->v[kf->wild.v[i]].key : NULL;
}

size_t kr_keyfile_device_key_count(const kr_keyfile *kf)
{
    return kf ? kf->kind[KR_ENTRY_DEVICE].n : 0;
}

const kr_entry *kr_keyfile_device_entry(const kr_keyfile *kf, size_t i)
{
    return nth(kf, KR_ENTRY_DEVICE, i);
}

const uint8_t *kr_keyfile_session(const kr_keyfile *kf, const uint8_t id[KR_DEVICE_ID_LEN])
{
    const kr_entry *e = find_id(kf, KR_ENTRY_SESSION, id);
    return e ? e->session : NULL;
}

size_t kr_keyfile_session_count(const kr_keyfile *kf)
{
    return kf ? kf->kind[KR_ENTRY_SESSION].n : 0;
}

const kr_entry *kr_keyfile_session_entry(const kr_keyfile *kf, size_t i)
{
    return nth(kf, KR_ENTRY_SESSION, i);
}

long kr_keyfile_session_by_hint(const kr_keyfile *kf, const uint8_t hint[KR_SESSION_HINT_LEN])
{
    return kf && hint ? hmap_get(&kf->hints, hint_hash(hint), hint_eq, kf, hint) : -1;
}

const kr_probe_key *kr_keyfile_session_probe(const kr_keyfile *kf, size_t i)
{
    size_t n = kr_keyfile_session_count(kf);
    if (i >= n)
        return NULL;
    kr_keyfile *mut = (kr_keyfile *)kf;     /* a cache: the keyfile's content does not change */
    if (!mut->probe && !(mut->probe = calloc(n, sizeof *mut->probe)))
        return NULL;
    if (!mut->probe[i])
        mut->probe[i] = kr_probe_key_new(kr_keyfile_session_entry(kf, i)->session);
    return mut->probe[i];
}

const kr_entry *kr_keyfile_find_device_by_public(const kr_keyfile *kf, const uint8_t *spki, size_t len)
{
    if (!kf || !spki || !len)
        return NULL;
    uint8_t h[32];
    if (!EVP_Digest(spki, len, h, NULL, kr_fetched_sha256(), NULL))
        return NULL;
    for (size_t i = 0; i < kf->kind[KR_ENTRY_DEVICE].n; i++) {
        const kr_entry *e = &kf->v[kf->kind[KR_ENTRY_DEVICE].v[i]];
        if (memcmp(e->key->spki_sha256, h, 32) == 0)
            return e;
    }
    return NULL;
}

const char *kr_entry_kind_str(kr_entry_kind kind)
{
    return kind_word(kind);
}
