/* sparkwire libkeyring: the keyfile (docs/design.md "Keyfile"). Every bad line stops the load with one
 * "FILE:LINE: what is wrong (what to do)" error; nothing is skipped. */
#include "keyring/keyfile.h"
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#define KEYFILE_MAX (4 * 1024 * 1024)

struct kr_keyfile {
    char path[1024];
    kr_entry *v;
    size_t n, cap;
    /* indexes into v, -1 when absent */
    long server_private, server_public;
};

kr_keyfile *kr_keyfile_new_empty(void)
{
    kr_keyfile *kf = calloc(1, sizeof *kf);
    if (kf) {
        kf->server_private = -1;
        kf->server_public = -1;
    }
    return kf;
}

void kr_keyfile_free(kr_keyfile *kf)
{
    if (!kf)
        return;
    for (size_t i = 0; i < kf->n; i++)
        kr_key_free(kf->v[i].key);
    free(kf->v);
    free(kf);
}

static kr_entry *entry_add(kr_keyfile *kf)
{
    if (kf->n == kf->cap) {
        size_t cap = kf->cap ? kf->cap * 2 : 8;
        kr_entry *v = realloc(kf->v, cap * sizeof *v);
        if (!v)
            return NULL;
        kf->v = v;
        kf->cap = cap;
    }
    kr_entry *e = &kf->v[kf->n++];
    memset(e, 0, sizeof *e);
    return e;
}

/* Splits a line into at most 4 words (a fifth means "too many"). Returns the word count. */
static int split(char *line, char *words[5])
{
    int n = 0;
    char *p = line;
    while (*p && n < 5) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        words[n++] = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
    return n;
}

static int parse_id(const char *text, kr_entry *e)
{
    if (strlen(text) != KR_DEVICE_ID_HEX_LEN || kr_unhex(text, e->device_id, KR_DEVICE_ID_LEN) != 0)
        return -1;
    e->has_id = true;
    kr_device_id_hex(e->device_id, e->device_id_hex);
    return 0;
}

static const kr_entry *find_id(const kr_keyfile *kf, kr_entry_kind kind, const uint8_t id[KR_DEVICE_ID_LEN])
{
    for (size_t i = 0; i < kf->n; i++)
        if (kf->v[i].kind == kind && kf->v[i].has_id && memcmp(kf->v[i].device_id, id, KR_DEVICE_ID_LEN) == 0)
            return &kf->v[i];
    return NULL;
}

#define FAIL(...) do { kr_err_set(err, __VA_ARGS__); goto fail; } while (0)

kr_keyfile *kr_keyfile_parse(const char *text, size_t len, const char *base_dir, const char *name,
                             kr_err *err)
{
    if (!name)
        name = "keyfile";
    kr_keyfile *kf = kr_keyfile_new_empty();
    if (!kf) {
        kr_err_set(err, "%s: out of memory", name);
        return NULL;
    }
    char line[4096];
    size_t pos = 0;
    int lineno = 0;
    kr_entry e;
    while (pos < len) {
        memset(&e, 0, sizeof e);
        size_t start = pos;
        while (pos < len && text[pos] != '\n')
            pos++;
        size_t ll = pos - start;
        if (pos < len)
            pos++;      /* the newline */
        lineno++;
        if (ll >= sizeof line)
            FAIL("%s:%d: line longer than %zu characters (one entry per line)", name, lineno, sizeof line - 1);
        memcpy(line, text + start, ll);
        line[ll] = '\0';
        if (memchr(line, '\0', ll))
            FAIL("%s:%d: NUL byte in the line: this is not a keyfile (a key file given by mistake?)",
                 name, lineno);
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *w[5];
        int nw = split(line, w);
        if (nw == 0)
            continue;

        kr_entry_kind kind;
        int want;
        const char *usage;
        if (strcmp(w[0], "server-private") == 0) {
            kind = KR_ENTRY_SERVER_PRIVATE; want = 2; usage = "server-private PATH";
        } else if (strcmp(w[0], "server-public") == 0) {
            kind = KR_ENTRY_SERVER_PUBLIC; want = 2; usage = "server-public PATH";
        } else if (strcmp(w[0], "device") == 0) {
            kind = KR_ENTRY_DEVICE; want = 3; usage = "device ID|* PATH";
        } else if (strcmp(w[0], "session") == 0) {
            kind = KR_ENTRY_SESSION; want = 3; usage = "session ID HEX80";
        } else {
            FAIL("%s:%d: unknown keyword \"%.64s\" (use server-private, server-public, device or session)",
                 name, lineno, w[0]);
        }
        if (nw != want)
            FAIL("%s:%d: %s takes %d word%s after it, found %d (write: %s)", name, lineno, w[0], want - 1,
                 want == 2 ? "" : "s", nw - 1, usage);

        e.kind = kind;
        e.line = lineno;
        const char *file = NULL;
        if (kind == KR_ENTRY_DEVICE || kind == KR_ENTRY_SESSION) {
            if (kind == KR_ENTRY_DEVICE && strcmp(w[1], "*") == 0) {
                e.wildcard = true;
            } else if (parse_id(w[1], &e) != 0) {
                FAIL("%s:%d: bad device id \"%.64s\": write the 24 hex digits of the id (e.g. "
                     "55ff6d065075555332071787)%s", name, lineno, w[1],
                     kind == KR_ENTRY_DEVICE ? " or * for any device" : "");
            }
            file = kind == KR_ENTRY_DEVICE ? w[2] : NULL;
        } else {
            file = w[1];
        }

        if (kind == KR_ENTRY_SESSION) {
            size_t hl = strlen(w[2]);
            if (hl != 2 * KR_SESSION_LEN)
                FAIL("%s:%d: session material must be 80 hex digits (40 bytes: key, IV, salt), found %zu "
                     "characters", name, lineno, hl);
            if (kr_unhex(w[2], e.session, KR_SESSION_LEN) != 0)
                FAIL("%s:%d: session material is not hex (only 0-9 and a-f, 80 digits)", name, lineno);
            const kr_entry *dup = find_id(kf, KR_ENTRY_SESSION, e.device_id);
            if (dup)
                FAIL("%s:%d: duplicate session for device %s (already on line %d): keep one", name, lineno,
                     e.device_id_hex, dup->line);
        } else {
            if (file[0] == '/' || !base_dir || !base_dir[0])
                kr_sfmt(e.path, sizeof e.path, "%s", file);
            else
                kr_sfmt(e.path, sizeof e.path, "%s/%s", base_dir, file);
            if (access(e.path, F_OK) != 0)
                FAIL("%s:%d: key file %s does not exist (fix the path; paths are relative to the keyfile's "
                     "folder)", name, lineno, e.path);
            kr_err kerr;
            kr_key *key = kr_key_load_file(e.path, &kerr);
            if (!key)
                FAIL("%s:%d: %s", name, lineno, kerr.msg);
            e.key = key;
            if (kind == KR_ENTRY_DEVICE) {
                if (!key->is_private)
                    FAIL("%s:%d: %s is a public key; a device line needs the device's private key (the "
                         "public key cannot open the session block)", name, lineno, e.path);
                if (key->bits != 1024)
                    FAIL("%s:%d: %s is RSA-%d; device keys are RSA-1024 (server and device keys swapped?)",
                         name, lineno, e.path, key->bits);
                const kr_entry *dup = e.wildcard ? NULL : find_id(kf, KR_ENTRY_DEVICE, e.device_id);
                if (dup)
                    FAIL("%s:%d: duplicate device %s (already on line %d): keep one line per device",
                         name, lineno, e.device_id_hex, dup->line);
                if (e.wildcard) {
                    for (size_t i = 0; i < kf->n; i++)
                        if (kf->v[i].kind == KR_ENTRY_DEVICE && kf->v[i].wildcard &&
                            kr_key_same_public(kf->v[i].key, key))
                            FAIL("%s:%d: the same key as the device * line %d: keep one", name, lineno,
                                 kf->v[i].line);
                }
            } else if (kind == KR_ENTRY_SERVER_PRIVATE) {
                if (!key->is_private)
                    FAIL("%s:%d: %s is a public key; server-private needs the cloud's private key (for "
                         "the public key write: server-public %s)", name, lineno, e.path, file);
                if (key->bits != 2048)
                    FAIL("%s:%d: %s is RSA-%d; the server key is RSA-2048 (server and device keys swapped?)",
                         name, lineno, e.path, key->bits);
                if (kf->server_private >= 0)
                    FAIL("%s:%d: duplicate server-private (already on line %d): keep one", name, lineno,
                         kf->v[kf->server_private].line);
            } else {
                if (key->bits != 2048)
                    FAIL("%s:%d: %s is RSA-%d; the server key is RSA-2048 (server and device keys swapped?)",
                         name, lineno, e.path, key->bits);
                if (kf->server_public >= 0)
                    FAIL("%s:%d: duplicate server-public (already on line %d): keep one", name, lineno,
                         kf->v[kf->server_public].line);
            }
        }
        kr_entry *slot = entry_add(kf);
        if (!slot) {
            kr_key_free(e.key);
            FAIL("%s: out of memory", name);
        }
        *slot = e;
        e.key = NULL;
        if (kind == KR_ENTRY_SERVER_PRIVATE)
            kf->server_private = (long)(kf->n - 1);
        else if (kind == KR_ENTRY_SERVER_PUBLIC)
            kf->server_public = (long)(kf->n - 1);
        continue;
fail:
        kr_key_free(e.key);
        kr_keyfile_free(kf);
        return NULL;
    }
    return kf;
}

kr_keyfile *kr_keyfile_load(const char *path, kr_err *err)
{
    size_t n = 0;
    char *buf = (char *)kr_read_file(path, KEYFILE_MAX, "the keyfile", "larger than 4 MB: not a keyfile", &n, err);
    if (!buf)
        return NULL;
    char dir[1024];
    const char *slash = strrchr(path, '/');
    if (!slash)
        kr_sfmt(dir, sizeof dir, ".");
    else if (slash == path)
        kr_sfmt(dir, sizeof dir, "/");
    else
        kr_sfmt(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    kr_keyfile *kf = kr_keyfile_parse(buf, n, dir, path, err);
    free(buf);
    if (kf)
        kr_sfmt(kf->path, sizeof kf->path, "%s", path);
    return kf;
}

const char *kr_keyfile_path(const kr_keyfile *kf)
{
    return kf ? kf->path : "";
}

size_t kr_keyfile_count(const kr_keyfile *kf)
{
    return kf ? kf->n : 0;
}

const kr_entry *kr_keyfile_entry(const kr_keyfile *kf, size_t i)
{
    return kf && i < kf->n ? &kf->v[i] : NULL;
}

const kr_key *kr_keyfile_server_private(const kr_keyfile *kf)
{
    return kf && kf->server_private >= 0 ? kf->v[kf->server_private].key : NULL;
}

const kr_key *kr_keyfile_server_public(const kr_keyfile *kf)
{
    if (!kf)
        return NULL;
    if (kf->server_public >= 0)
        return kf->v[kf->server_public].key;
    return kr_keyfile_server_private(kf);
}

const kr_key *kr_keyfile_device_key(const kr_keyfile *kf, const uint8_t id[KR_DEVICE_ID_LEN])
{
    if (!kf)
        return NULL;
    const kr_entry *e = find_id(kf, KR_ENTRY_DEVICE, id);
    return e ? e->key : NULL;
}

static size_t count_if(const kr_keyfile *kf, int (*pred)(const kr_entry *))
{
    size_t n = 0;
    for (size_t i = 0; kf && i < kf->n; i++)
        n += pred(&kf->v[i]) ? 1 : 0;
    return n;
}

static const kr_entry *nth_if(const kr_keyfile *kf, size_t k, int (*pred)(const kr_entry *))
{
    for (size_t i = 0; kf && i < kf->n; i++)
        if (pred(&kf->v[i]) && k-- == 0)
            return &kf->v[i];
    return NULL;
}

static int is_wild(const kr_entry *e) { return e->kind == KR_ENTRY_DEVICE && e->wildcard; }
static int is_device(const kr_entry *e) { return e->kind == KR_ENTRY_DEVICE; }
static int is_session(const kr_entry *e) { return e->kind == KR_ENTRY_SESSION; }

size_t kr_keyfile_wildcard_count(const kr_keyfile *kf) { return count_if(kf, is_wild); }

const kr_key *kr_keyfile_wildcard(const kr_keyfile *kf, size_t i)
{
    const kr_entry *e = nth_if(kf, i, is_wild);
    return e ? e->key : NULL;
}

size_t kr_keyfile_device_key_count(const kr_keyfile *kf) { return count_if(kf, is_device); }

const kr_entry *kr_keyfile_device_entry(const kr_keyfile *kf, size_t i) { return nth_if(kf, i, is_device); }

const uint8_t *kr_keyfile_session(const kr_keyfile *kf, const uint8_t id[KR_DEVICE_ID_LEN])
{
    if (!kf)
        return NULL;
    const kr_entry *e = find_id(kf, KR_ENTRY_SESSION, id);
    return e ? e->session : NULL;
}

size_t kr_keyfile_session_count(const kr_keyfile *kf) { return count_if(kf, is_session); }

const kr_entry *kr_keyfile_session_entry(const kr_keyfile *kf, size_t i) { return nth_if(kf, i, is_session); }

const kr_entry *kr_keyfile_find_device_by_public(const kr_keyfile *kf, const uint8_t *spki, size_t len)
{
    if (!kf || !spki || !len)
        return NULL;
    uint8_t h[32];
    if (!EVP_Digest(spki, len, h, NULL, EVP_sha256(), NULL))
        return NULL;
    for (size_t i = 0; i < kf->n; i++)
        if (kf->v[i].kind == KR_ENTRY_DEVICE && memcmp(kf->v[i].key->spki_sha256, h, 32) == 0)
            return &kf->v[i];
    return NULL;
}
