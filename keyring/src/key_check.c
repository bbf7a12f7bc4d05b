/* sparkwire libkeyring: checking RSA keys for the role they play (device or server, private or public):
 * sizes, exponents, the fixed layout devices read (docs/protocol.md 5.1), consistency of the private numbers,
 * and the command that fixes each problem found.
 */
#include "keyring/key.h"
#include "keyring/flash.h"
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/x509.h>

const char *kr_role_str(kr_role role)
{
    switch (role) {
    case KR_ROLE_DEVICE_PRIVATE: return "device private key";
    case KR_ROLE_DEVICE_PUBLIC: return "device public key";
    case KR_ROLE_SERVER_PRIVATE: return "server private key";
    case KR_ROLE_SERVER_PUBLIC: return "server public key";
    default: return "key";
    }
}

kr_role kr_key_guess_role(const kr_key *key)
{
    if (!key)
        return KR_ROLE_ANY;
    if (key->bits <= 1536)
        return key->is_private ? KR_ROLE_DEVICE_PRIVATE : KR_ROLE_DEVICE_PUBLIC;
    return key->is_private ? KR_ROLE_SERVER_PRIVATE : KR_ROLE_SERVER_PUBLIC;
}

/* ---- device layout (docs/protocol.md 5.1) ---------------------------------------------------------- */

bool kr_key_device_layout_ok(const uint8_t *der, size_t len, char *why, size_t why_cap)
{
    static const char *names[9] = {"version", "n (modulus)", "e", "d", "p", "q", "dp", "dq", "qinv"};
    static const size_t nominal[9] = {1, 128, 3, 128, 64, 64, 64, 64, 64};
    char dummy[8];
    if (!why) {
        why = dummy;
        why_cap = sizeof dummy;
    }
    why[0] = '\0';
    kr_tlv top;
    if (!der || kr_tlv_read(der, len, &top) != 0 || top.tag != 0x30) {
        kr_sfmt(why, why_cap, "not a DER SEQUENCE");
        return false;
    }
    if (top.hdr != 4) {
        kr_sfmt(why, why_cap, "the outer SEQUENCE has a %zu-byte length, the device expects 30 82 xx xx",
                 top.hdr - 2);
        return false;
    }
    size_t pos = top.hdr, end = top.hdr + top.len;
    for (int i = 0; i < 9; i++) {
        kr_tlv t;
        if (kr_tlv_read(der + pos, end - pos, &t) != 0 || t.tag != 0x02) {
            kr_sfmt(why, why_cap, "element %d (%s) is not an INTEGER: not a PKCS#1 RSAPrivateKey", i, names[i]);
            return false;
        }
        const uint8_t *v = der + pos + t.hdr;
        size_t want = nominal[i];
        bool lead0 = t.len == want + 1 && v[0] == 0x00;
        if (i == 2) {
            /* e = 65537 is assumed, never read: its form does not matter to the parser. */
        } else if (t.len < want) {
            kr_sfmt(why, why_cap, "%s is %zu bytes (header %02x %02x) instead of %zu: the device reads it "
                     "at the wrong offset", names[i], t.len, der[pos], der[pos + 1], want);
            return false;
        } else if (t.len != want && !lead0) {
            kr_sfmt(why, why_cap, "%s is %zu bytes instead of %zu: not a 1024-bit key laid out as the device "
                     "expects", names[i], t.len, want);
            return false;
        }
        if (i == 1 && pos != 7) {
            kr_sfmt(why, why_cap, "the modulus starts at offset %zu instead of 7", pos);
            return false;
        }
        if (i == 1 && !lead0) {
            kr_sfmt(why, why_cap, "the modulus is not stored as 02 81 81 00 + 128 bytes");
            return false;
        }
        pos += t.hdr + t.len;
    }
    if (pos != end) {
        kr_sfmt(why, why_cap, "%zu extra bytes inside the key SEQUENCE (multi-prime key?)", end - pos);
        return false;
    }
    return true;
}

/* ---- broken numbers ---------------------------------------------------------------------------- */

typedef struct rsa_numbers {
    BIGNUM *n, *e, *d, *p, *q, *dp, *dq, *qinv;
} rsa_numbers;

static const char *const number_names[8] = {
    OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1,
    OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
    OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};

/* Takes the numbers out of params into BIGNUMs of ctx's frame; a number the key lacks stays NULL. */
static bool numbers_take(const OSSL_PARAM *params, bool filled_only, BN_CTX *ctx, rsa_numbers *r)
{
    BIGNUM **slot[8] = {&r->n, &r->e, &r->d, &r->p, &r->q, &r->dp, &r->dq, &r->qinv};
    for (int i = 0; i < 8; i++) {
        const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, number_names[i]);
        *slot[i] = NULL;
        if (!p || (filled_only && !OSSL_PARAM_modified(p)))
            continue;
        BIGNUM *b = BN_CTX_get(ctx);
        if (!b || OSSL_PARAM_get_BN(p, &b) != 1)
            return false;
        *slot[i] = b;
    }
    return true;
}

/* All numbers with one EVP_PKEY_get_params into a buffer on the stack, sized for the key (a number of
 * another size, e.g. an exponent larger than the modulus, makes it fall back to one EVP_PKEY_todata
 * export). Per-number EVP_PKEY_get_bn_param calls would export the key eight times. */
static void numbers_get(const EVP_PKEY *pkey, bool is_private, BN_CTX *ctx, rsa_numbers *r)
{
    enum { NUM_MAX = KR_KEY_MAX_BITS / 8 + 8 };
    unsigned char buf[8][NUM_MAX];
    OSSL_PARAM params[9];
    int bits = EVP_PKEY_get_bits(pkey);
    size_t size = bits > 0 && bits <= KR_KEY_MAX_BITS ? (size_t)bits / 8 + 8 : 0;
    int count = is_private ? 8 : 2;
    for (int i = 0; i < count; i++)
        params[i] = OSSL_PARAM_construct_BN(number_names[i], buf[i], size);
    params[count] = OSSL_PARAM_construct_end();
    bool ok = size && EVP_PKEY_get_params(pkey, params) == 1 && numbers_take(params, true, ctx, r);
    if (!ok) {
        OSSL_PARAM *all = NULL;
        ok = EVP_PKEY_todata(pkey, is_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, &all) == 1 &&
             numbers_take(all, false, ctx, r);
        OSSL_PARAM_free(all);
    }
    if (!ok)
        memset(r, 0, sizeof *r);
    ERR_clear_error();
}

/* x mod (f - 1) == want; false when a number is missing. */
static bool crt_exponent_ok(const BIGNUM *d, const BIGNUM *f, const BIGNUM *want, BN_CTX *ctx)
{
    BN_CTX_start(ctx);
    BIGNUM *f1 = BN_CTX_get(ctx), *m = BN_CTX_get(ctx);
    bool ok = m && BN_copy(f1, f) && BN_sub_word(f1, 1) && !BN_is_zero(f1) && BN_mod(m, d, f1, ctx) &&
              BN_cmp(m, want) == 0;
    BN_CTX_end(ctx);
    return ok;
}

/* e * x mod (f - 1) == 1: the CRT exponent x inverts e modulo f - 1. */
static bool crt_inverts_e(const BIGNUM *e, const BIGNUM *x, const BIGNUM *f, BN_CTX *ctx)
{
    BN_CTX_start(ctx);
    BIGNUM *f1 = BN_CTX_get(ctx), *m = BN_CTX_get(ctx);
    bool ok = m && BN_copy(f1, f) && BN_sub_word(f1, 1) && !BN_is_zero(f1) && BN_mod_mul(m, e, x, f1, ctx) &&
              BN_is_one(m);
    BN_CTX_end(ctx);
    return ok;
}

/* The first broken fact about the numbers, or NULL. Only the cheap facts (arithmetic that fits n, e, d and
 * the CRT values together): the primality of p and q is left to OpenSSL's pairwise check. */
static const char *numbers_broken(const rsa_numbers *r, BN_CTX *ctx)
{
    if (!r->n || !r->e)
        return "the modulus or the public exponent is missing";
    if (BN_is_one(r->e))
        return "public exponent 1: \"encryption\" leaves the data as it is";
    if (!BN_is_odd(r->e))
        return "an even public exponent: no RSA key has one";
    if (!BN_is_odd(r->n))
        return "an even modulus: not a product of two odd primes";
    if (!r->d)
        return NULL;
    if (BN_is_zero(r->d) || BN_is_one(r->d))
        return BN_is_zero(r->d) ? "private exponent d = 0" : "private exponent d = 1";
    if (!r->p || !r->q || !r->dp || !r->dq || !r->qinv)
        return NULL;
    BN_CTX_start(ctx);
    BIGNUM *t = BN_CTX_get(ctx);
    const char *why = NULL;
    if (!t || !BN_mul(t, r->p, r->q, ctx) || BN_cmp(t, r->n) != 0)
        why = "the modulus n is not p*q";
    else if (!crt_exponent_ok(r->d, r->p, r->dp, ctx))
        why = "the CRT exponent dp is not d mod (p-1)";
    else if (!crt_exponent_ok(r->d, r->q, r->dq, ctx))
        why = "the CRT exponent dq is not d mod (q-1)";
    else if (!BN_mod_mul(t, r->qinv, r->q, r->p, ctx) || !BN_is_one(t))
        why = "the CRT coefficient qinv is not the inverse of q mod p";
    else if (!crt_inverts_e(r->e, r->dp, r->p, ctx) || !crt_inverts_e(r->e, r->dq, r->q, ctx))
        why = "d does not invert e";
    BN_CTX_end(ctx);
    return why;
}

const char *kr_rsa_inspect_params(const OSSL_PARAM *params, BN_CTX *ctx, BIGNUM **n, BIGNUM **e)
{
    rsa_numbers r;
    if (!numbers_take(params, false, ctx, &r))
        memset(&r, 0, sizeof r);
    *n = r.n;
    *e = r.e;
    return numbers_broken(&r, ctx);
}

const char *kr_rsa_inspect(const EVP_PKEY *pkey, bool is_private, BN_CTX *ctx, BIGNUM **n, BIGNUM **e)
{
    rsa_numbers r;
    numbers_get(pkey, is_private, ctx, &r);
    *n = r.n;
    *e = r.e;
    return numbers_broken(&r, ctx);
}

static bool broken(const kr_key *key, bool primality, char *why, size_t why_cap)
{
    char dummy[8];
    if (!why) {
        why = dummy;
        why_cap = sizeof dummy;
    }
    why[0] = '\0';
    if (!key)
        return false;
    /* The arithmetic was done when the key was loaded. */
    const char *w = key->numbers_broken;
    if (!w && primality && key->is_private) {
        EVP_PKEY *pkey = kr_key_pkey(key);
        EVP_PKEY_CTX *pctx = pkey ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
        if (!pctx || EVP_PKEY_pairwise_check(pctx) != 1)
            w = "the private numbers do not fit together (d does not invert e, or p or q is not prime)";
        EVP_PKEY_CTX_free(pctx);
        ERR_clear_error();
    }
    if (!w)
        return false;
    kr_sfmt(why, why_cap, "%s: broken key (%s)", key->source, w);
    return true;
}

bool kr_key_broken(const kr_key *key, char *why, size_t why_cap)
{
    return broken(key, true, why, why_cap);
}

bool kr_key_numbers_broken(const kr_key *key, char *why, size_t why_cap)
{
    return broken(key, false, why, why_cap);
}

bool kr_key_private_consistent(const kr_key *key)
{
    return key && key->is_private && !kr_key_broken(key, NULL, 0);
}

/* ---- checks ------------------------------------------------------------------------------------ */

typedef struct notes {
    kr_note *v;
    int n, max;
} notes;

static kr_note *note_add(notes *ns, kr_note_level level, bool storage, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static kr_note *note_add(notes *ns, kr_note_level level, bool storage, const char *fix, const char *fmt, ...)
{
    if (ns->n >= ns->max)
        return NULL;
    kr_note *x = &ns->v[ns->n++];
    memset(x, 0, sizeof *x);
    x->level = level;
    x->storage = storage;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->text, sizeof x->text, fmt, ap);
    va_end(ap);
    kr_sfmt(x->fix, sizeof x->fix, "%s", fix ? fix : "");
    return x;
}

/* A name for the converted copy of src: "k.pem" -> "k.der"; "k.der" -> "k-<tag>.der". */
static void out_name(const char *src, const char *tag, char *out, size_t cap)
{
    const char *slash = strrchr(src, '/');
    const char *base = slash ? slash + 1 : src;
    const char *dot = strrchr(base, '.');
    size_t stem = dot ? (size_t)(dot - src) : strlen(src);
    bool is_der = dot && strcmp(dot, ".der") == 0;
    if (is_der || !dot)
        kr_sfmt(out, cap, "%.*s-%s.der", (int)stem, src, tag);
    else
        kr_sfmt(out, cap, "%.*s.der", (int)stem, src);
}

typedef struct check_env {
    notes ns;
    kr_flash_layout layout;   /* of the device the key is for; AUTO: both Core and Photon commands */
    const char *id;           /* the device id, or NULL */
    char newkey[KR_NOTE_FIX_LEN];
} check_env;

/* The key's numbers are broken: one problem note with the reason, fixed by a new key. */
static void check_broken(const kr_key *k, check_env *c, const char *fix)
{
    char why[384];
    if (kr_key_broken(k, why, sizeof why))
        note_add(&c->ns, KR_NOTE_PROBLEM, false, fix, "%s: nothing it encrypts or decrypts is right",
                 why + strlen(k->source) + 2);
}

/* "openssl ... -out DST, then write DST back: <dfu/particle>" for a device private key stored wrongly. */
static void device_convert_fix(const kr_key *k, check_env *c, char *fix, size_t cap)
{
    char dst[512], back[768];
    out_name(k->source, "pkcs1", dst, sizeof dst);
    kr_sfmt(fix, cap, "openssl rsa -in %s%s -traditional -outform DER -out %s, then %s", k->source,
            k->pem ? "" : " -inform DER", dst, kr_fix_write_device_key(c->layout, dst, back, sizeof back));
}

static void check_device_private(const kr_key *k, check_env *c)
{
    char fix[KR_NOTE_FIX_LEN];
    if (!k->is_private) {
        char dfu[512];
        kr_sfmt(fix, sizeof fix, "read the private key from the device in DFU mode: %s",
                kr_dfu_command(c->layout, KR_AREA_DEVICE_KEY, false, "device.der", dfu, sizeof dfu));
        note_add(&c->ns, KR_NOTE_PROBLEM, false, fix,
                 "a public key where the device private key is needed: the private key lives in the device");
        return;
    }
    const char *fails = "the device misreads it and fails every handshake with a decryption error "
                        "(one orange blink)";
    if (k->encoding == KR_ENC_PKCS8_PRIVATE) {
        device_convert_fix(k, c, fix, sizeof fix);
        note_add(&c->ns, KR_NOTE_PROBLEM, true, fix,
                 "PKCS#8 wrapped (\"BEGIN PRIVATE KEY\", OpenSSL 3's default): %s", fails);
    } else if (k->pem) {
        device_convert_fix(k, c, fix, sizeof fix);
        note_add(&c->ns, KR_NOTE_WARNING, true, fix,
                 "PEM text: fine for sparkwire, but the device flash needs the DER bytes");
    }
    if (k->bits != 1024)
        note_add(&c->ns, KR_NOTE_PROBLEM, false, c->newkey, "RSA-%d: devices expect RSA-1024; %s", k->bits, fails);
    if (k->exponent != 65537)
        note_add(&c->ns, KR_NOTE_PROBLEM, false, c->newkey,
                 "public exponent %lu instead of 65537: the device assumes 65537 and its handshakes fail "
                 "(decryption error, one orange blink)", k->exponent);
    if (k->bits == 1024 && k->exponent == 65537) {
        /* Look at the PKCS#1 bytes the device would hold (inside the PKCS#8 wrapping if any). */
        const uint8_t *d = k->der;
        size_t dl = k->der_len;
        unsigned char *inner = NULL;
        if (k->encoding != KR_ENC_PKCS1_PRIVATE) {
            EVP_PKEY *pkey = kr_key_pkey(k);
            int n = pkey ? i2d_PrivateKey(pkey, &inner) : 0;
            d = inner;
            dl = n > 0 ? (size_t)n : 0;
        }
        char why[256];
        if (dl && !kr_key_device_layout_ok(d, dl, why, sizeof why))
            note_add(&c->ns, KR_NOTE_PROBLEM, false, c->newkey, "%s; %s", why, fails);
        OPENSSL_free(inner);
    }
    check_broken(k, c, c->newkey);
}

char *kr_key_particle_words(const kr_key *k, char *out, size_t cap)
{
    char fp[65];
    kr_key_fingerprint(k, fp);
    if (kr_key_is_particle_cloud(k))
        kr_sfmt(out, cap, "the published Particle cloud key (fingerprint %s): a device holding it talks to the "
                "Particle cloud", fp);
    else
        kr_sfmt(out, cap, "not the published Particle cloud key (fingerprint %s, Particle's is %.16s...): only a "
                "cloud holding its private key (your own cloud) can open the id block of a device that holds it",
                fp, KR_PARTICLE_CLOUD_FINGERPRINT);
    return out;
}

/* For every server public key, either way: is it the published Particle cloud key? */
static void note_particle(const kr_key *k, check_env *c)
{
    char words[KR_NOTE_TEXT_LEN], fix[KR_NOTE_FIX_LEN];
    fix[0] = '\0';
    if (!kr_key_is_particle_cloud(k))
        kr_fix_server_key(c->layout, NULL, fix, sizeof fix);
    note_add(&c->ns, KR_NOTE_INFO, false, fix, "%s", kr_key_particle_words(k, words, sizeof words));
}

static void check_server_public(const kr_key *k, check_env *c)
{
    char fix[KR_NOTE_FIX_LEN], conv[768], dst[512], back[768];
    const char *src = k->source;
    out_name(src, "spki", dst, sizeof dst);
    kr_fix_server_key(c->layout, NULL, fix, sizeof fix);
    if (k->bits != 2048)
        note_add(&c->ns, KR_NOTE_PROBLEM, false, fix,
                 "RSA-%d: the device reads a 2048-bit modulus from fixed offsets, so a server key of another "
                 "size is misread and the cloud cannot open the device's id block", k->bits);
    if (k->exponent != 65537)
        note_add(&c->ns, KR_NOTE_PROBLEM, false, fix,
                 "public exponent %lu: the device always uses 65537, so the cloud cannot open its id block",
                 k->exponent);
    if (k->bits != 2048)
        return;
    const char *what = NULL;
    conv[0] = '\0';
    if (k->is_private) {
        kr_sfmt(conv, sizeof conv, "openssl rsa -in %s -pubout -outform DER -out %s", src, dst);
        what = "a private key: the device's server-key slot must hold the public half as 294-byte "
               "SubjectPublicKeyInfo DER";
    } else if (k->encoding == KR_ENC_PKCS1_PUBLIC) {
        kr_sfmt(conv, sizeof conv, "openssl rsa -RSAPublicKey_in -in %s%s -pubout -outform DER -out %s",
                src, k->pem ? "" : " -inform DER", dst);
        what = "PKCS#1 RSAPublicKey (30 82 01 0a), not the 294-byte SubjectPublicKeyInfo the device reads: "
               "written to the device it gives a wrong modulus and the cloud cannot open the id block";
    } else if (k->pem) {
        kr_sfmt(conv, sizeof conv, "openssl rsa -pubin -in %s -outform DER -out %s", src, dst);
        what = "PEM text, not the 294-byte DER the device reads: written to the device it gives a wrong "
               "modulus and the cloud cannot open the id block";
    } else if (k->der_len != KR_SERVER_SPKI_LEN) {
        kr_sfmt(conv, sizeof conv, "openssl rsa -pubin -in %s -inform DER -outform DER -out %s", src, dst);
        what = "DER of another length than 294 bytes: the device reads the modulus at fixed offsets";
    }
    if (what) {
        kr_sfmt(fix, sizeof fix, "%s, then %s", conv, kr_fix_server_key(c->layout, dst, back, sizeof back));
        note_add(&c->ns, KR_NOTE_PROBLEM, true, fix, "%s", what);
    }
    note_particle(k, c);
}

static void check_device_public(const kr_key *k, check_env *c)
{
    if (k->bits != 1024)
        note_add(&c->ns, KR_NOTE_PROBLEM, false, c->newkey,
                 "RSA-%d: device keys are RSA-1024; a device cannot hold the matching private key", k->bits);
    if (k->exponent != 65537)
        note_add(&c->ns, KR_NOTE_PROBLEM, false, c->newkey,
                 "public exponent %lu instead of 65537: devices assume 65537", k->exponent);
    if (k->encoding == KR_ENC_PKCS1_PUBLIC) {
        char fix[KR_NOTE_FIX_LEN], pem[600], send[640];
        kr_sfmt(pem, sizeof pem, "%s.pub.pem", k->source);
        kr_sfmt(fix, sizeof fix, "openssl rsa -RSAPublicKey_in -in %s%s -pubout -out %s, then %s", k->source,
                k->pem ? "" : " -inform DER", pem, kr_fix_send_public(c->id, pem, send, sizeof send));
        note_add(&c->ns, KR_NOTE_WARNING, true, fix,
                 "PKCS#1 RSAPublicKey: the cloud wants SubjectPublicKeyInfo (\"BEGIN PUBLIC KEY\") PEM");
    }
    if (k->is_private && k->bits == 1024)
        note_add(&c->ns, KR_NOTE_INFO, false, "", "a private key: its public half is used");
}

static void check_server_private(const kr_key *k, check_env *c)
{
    const char *own = "give the cloud's own RSA-2048 private key (spark-server: default_key.pem), or make one "
                      "with `openssl genrsa -traditional -out server.pem 2048` and give every device its public "
                      "half (`particle keys server`)";
    if (!k->is_private)
        note_add(&c->ns, KR_NOTE_PROBLEM, false, own,
                 "a public key where the server private key is needed (the cloud's own key file)");
    /* The key still loads (other sizes load with a warning); in the server role it cannot work. */
    if (k->bits != 2048)
        note_add(&c->ns, KR_NOTE_PROBLEM, false, own,
                 "RSA-%d: server keys are RSA-2048; devices cannot use a server key of this size", k->bits);
    if (k->exponent != 65537)
        note_add(&c->ns, KR_NOTE_PROBLEM, false, own, "public exponent %lu: devices always encrypt with 65537, "
                 "so this server cannot open their id blocks", k->exponent);
    if (k->is_private)
        check_broken(k, c, own);
}

static void check_any(const kr_key *k, check_env *c)
{
    if (k->bits != 1024 && k->bits != 2048)
        note_add(&c->ns, KR_NOTE_WARNING, false, "",
                 "RSA-%d: neither a device key (1024 bits) nor a server key (2048 bits)", k->bits);
    if (k->exponent != 65537)
        note_add(&c->ns, KR_NOTE_WARNING, false, "", "public exponent %lu: devices assume 65537", k->exponent);
    check_broken(k, c, "use an intact copy of the key (read it again from where it came), or make a new one "
                       "(a device key: `particle keys doctor DEVICE_ID`)");
}

static void note_trailing(const kr_key *key, check_env *c)
{
    if (!key->trailing_len)
        return;
    if (key->trailing_all_ff)
        note_add(&c->ns, KR_NOTE_INFO, false, "",
                 "%zu bytes of 0xFF after the %zu-byte key (erased flash, as a read from a device "
                 "gives): ignored", key->trailing_len, key->der_len);
    else if (key->trailing_address)
        note_add(&c->ns, KR_NOTE_INFO, false, "",
                 "%zu bytes after the %zu-byte key: 0xFF fill and the server address record at offset 384 "
                 "(%s), as in a device's server-key slot: ignored", key->trailing_len, key->der_len,
                 key->trailing_address_text);
    else
        note_add(&c->ns, KR_NOTE_WARNING, false, "",
                 "%zu bytes after the %zu-byte key that are not erased flash: ignored; check that the file "
                 "holds the key you think", key->trailing_len, key->der_len);
}

int kr_key_check_for(const kr_key *key, kr_role role, int layout, const char *device_id, kr_note *out, int max)
{
    if (!key || !out || max <= 0)
        return 0;
    check_env c = {{out, 0, max}, (kr_flash_layout)layout, device_id, {0}};
    kr_fix_new_device_key(device_id, c.newkey, sizeof c.newkey);
    switch (role) {
    case KR_ROLE_DEVICE_PRIVATE: check_device_private(key, &c); break;
    case KR_ROLE_DEVICE_PUBLIC: check_device_public(key, &c); break;
    case KR_ROLE_SERVER_PRIVATE: check_server_private(key, &c); break;
    case KR_ROLE_SERVER_PUBLIC: check_server_public(key, &c); break;
    case KR_ROLE_ANY: check_any(key, &c); break;
    }
    note_trailing(key, &c);
    if (role != KR_ROLE_SERVER_PUBLIC && kr_key_is_particle_cloud(key))
        note_add(&c.ns, KR_NOTE_INFO, false, "", "this is the published public key of the Particle cloud for TCP "
                 "devices");
    return c.ns.n;
}

int kr_key_check(const kr_key *key, kr_role role, kr_note *out, int max)
{
    return kr_key_check_for(key, role, KR_FLASH_AUTO, NULL, out, max);
}
