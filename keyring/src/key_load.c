/* sparkwire libkeyring: loading RSA key files as devices, clouds and people store them.
 *
 * The content decides what a file is: PEM armour or DER, and inside the DER the shape of the first
 * elements (PKCS#1, PKCS#8, SubjectPublicKeyInfo). OpenSSL's decoders do the real parsing; the small
 * TLV walk here only tells the forms apart and measures the DER object (flash slots carry bytes after
 * it). The checks of what was loaded live in key_check.c.
 *
 * Speed (a keyfile may name 70,000 key files): OpenSSL decodes each key with a decoder context kept for
 * all the keys of one load, and loading reads the numbers without making an EVP_PKEY (key_decode.c). Every
 * key is still read and decoded from its own bytes: nothing is cached by content.
 */
#include "keyring/key.h"
#include "internal.h"
#include "keyring/flash.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>


#define KR_KEY_FILE_MAX (1024 * 1024)

static const uint8_t oid_rsa[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
static const uint8_t oid_rsa_pss[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a};
static const uint8_t oid_ec[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
static const uint8_t oid_dsa[] = {0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01};

/* ---- a bounds-checked DER TLV reader (only to tell forms apart and measure objects) ----------- */

/* 0: ok; -1: not DER here; -2: the length runs past the end (truncated). */
int kr_tlv_read(const uint8_t *buf, size_t avail, kr_tlv *t)
{
    if (avail < 2)
        return avail == 0 ? -1 : -2;
    t->tag = buf[0];
    uint8_t l0 = buf[1];
    if (l0 < 0x80) {
        t->hdr = 2;
        t->len = l0;
    } else {
        size_t n = l0 & 0x7f;
        if (n == 0 || n > 3)
            return -1;
        if (avail < 2 + n)
            return -2;
        size_t v = 0;
        for (size_t i = 0; i < n; i++)
            v = v << 8 | buf[2 + i];
        t->hdr = 2 + n;
        t->len = v;
    }
    if (t->len > avail - t->hdr)
        return -2;
    return 0;
}

typedef enum form {
    FORM_UNKNOWN = 0,
    FORM_PKCS1_PRIV,
    FORM_PKCS8_PRIV,
    FORM_PKCS1_PUB,
    FORM_SPKI,
    FORM_ENCRYPTED_PKCS8,
    FORM_EC_PRIV,        /* SEC1 ECPrivateKey */
    FORM_CERT,
} form;

/* Algorithm of an AlgorithmIdentifier SEQUENCE at p (content of length len): 'r' RSA, 'p' RSA-PSS,
 * 'e' EC, 'd' DSA, '?' other. */
static char alg_of(const uint8_t *p, size_t len)
{
    kr_tlv t;
    if (kr_tlv_read(p, len, &t) != 0 || t.tag != 0x06)
        return '?';
    const uint8_t *oid = p + t.hdr;
    if (t.len == sizeof oid_rsa && memcmp(oid, oid_rsa, t.len) == 0)
        return 'r';
    if (t.len == sizeof oid_rsa_pss && memcmp(oid, oid_rsa_pss, t.len) == 0)
        return 'p';
    if (t.len == sizeof oid_ec && memcmp(oid, oid_ec, t.len) == 0)
        return 'e';
    if (t.len == sizeof oid_dsa && memcmp(oid, oid_dsa, t.len) == 0)
        return 'd';
    return '?';
}

/* Looks at the first elements inside the outer SEQUENCE (content c, length n). *alg receives the
 * algorithm letter where the form names one. */
static form classify(const uint8_t *c, size_t n, char *alg)
{
    kr_tlv a, b;
    *alg = 'r';
    if (kr_tlv_read(c, n, &a) != 0)
        return FORM_UNKNOWN;
    const uint8_t *c2 = c + a.hdr + a.len;
    size_t n2 = n - a.hdr - a.len;
    if (kr_tlv_read(c2, n2, &b) != 0)
        return FORM_UNKNOWN;
    if (a.tag == 0x02) {
        int small = a.len == 1 ? c[a.hdr] : -1;
        if (small == 0 && b.tag == 0x30) {
            *alg = alg_of(c2 + b.hdr, b.len);
            return FORM_PKCS8_PRIV;
        }
        if (small == 0 && b.tag == 0x02)
            return FORM_PKCS1_PRIV;
        if (small == 1 && b.tag == 0x04) {
            *alg = 'e';
            return FORM_EC_PRIV;
        }
        if (b.tag == 0x02 && b.hdr + b.len == n2)
            return FORM_PKCS1_PUB;
        return FORM_UNKNOWN;
    }
    if (a.tag == 0x30) {
        if (b.tag == 0x03) {
            *alg = alg_of(c + a.hdr, a.len);
            return FORM_SPKI;
        }
        if (b.tag == 0x04)
            return FORM_ENCRYPTED_PKCS8;
        if (b.tag == 0x30)
            return FORM_CERT;
    }
    return FORM_UNKNOWN;
}

static const char *alg_name(char alg)
{
    switch (alg) {
    case 'e': return "an EC key";
    case 'd': return "a DSA key";
    case 'p': return "an RSA-PSS key";
    default: return "not an RSA key";
    }
}

/* Refuses a key larger than KR_KEY_MAX_BITS; otherwise fills the facts into k. */
static int key_take_facts(kr_key *k, const kr_key_facts *f, kr_err *err)
{
    k->bits = f->bits;
    if (k->bits > KR_KEY_MAX_BITS) {
        /* Refused before any check of the primes: proving those of an RSA-16384 key takes minutes. */
        kr_err_set(err, "%s: RSA-%d: larger than %d bits, refused (Spark devices use RSA-1024 keys and "
                   "RSA-2048 server keys)", k->source, k->bits, KR_KEY_MAX_BITS);
        return -1;
    }
    k->exponent = f->exponent;
    k->numbers_broken = f->broken;
    memcpy(k->spki_sha256, f->spki_sha256, sizeof k->spki_sha256);
    return 0;
}

/* Fills the derived fields of a key made from an EVP_PKEY (kr_key_from_pkey). */
static int key_finish(kr_key *k, kr_err *err)
{
    if (!EVP_PKEY_is_a(k->pkey_made, "RSA")) {
        kr_err_set(err, "%s: not an RSA key (%s): the Spark protocol uses RSA keys only; use an RSA-1024 "
                   "device key or an RSA-2048 server key", k->source, EVP_PKEY_get0_type_name(k->pkey_made));
        return -1;
    }
    kr_key_facts f = {0};
    BN_CTX *bn = BN_CTX_new();
    if (bn) {
        BIGNUM *n = NULL, *e = NULL;
        BN_CTX_start(bn);
        f.broken = kr_rsa_inspect(k->pkey_made, k->is_private, bn, &n, &e);
        kr_key_facts_from(&f, n, e);
        BN_CTX_end(bn);
        BN_CTX_free(bn);
    }
    if (!f.spki_ok) {
        kr_err_set(err, "%s: cannot encode the public half of the key", k->source);
        kr_err_openssl(err);
        return -1;
    }
    return key_take_facts(k, &f, err);
}

static kr_key *key_alloc(const char *name)
{
    kr_key *k = calloc(1, sizeof *k);
    if (k)
        kr_sfmt(k->source, sizeof k->source, "%s", name ? name : "key");
    return k;
}

/* The outer DER object of buf: refuses empty, blank, dump-sized and truncated input with one line.
 * 0 and *top on success. */
static int der_outer(const uint8_t *buf, size_t len, const char *name, kr_tlv *top, kr_err *err)
{
    if (len == 0) {
        kr_err_set(err, "%s: empty file: not a key (check the path, or read the key again)", name);
        return -1;
    }
    if (kr_all_ff(buf, len)) {
        kr_err_set(err, "%s: blank (all %zu bytes are 0xFF, erased flash): no key stored there", name, len);
        return -1;
    }
    if (buf[0] == 0xff && len >= 4096) {
        kr_err_set(err, "%s: not a key: %zu bytes starting with erased flash (0xFF): a flash dump? read its keys "
                   "with `sparkkeys import %s --out DIR`", name, len, name);
        return -1;
    }
    if (buf[0] != 0x30) {
        kr_err_set(err, "%s: not a key: neither DER (which starts with byte 0x30) nor PEM "
                   "(\"-----BEGIN ...\"); first byte is 0x%02x", name, buf[0]);
        return -1;
    }
    int r = kr_tlv_read(buf, len, top);
    if (r == -2) {
        size_t want = 0;
        if (len >= 4 && buf[1] == 0x82)
            want = 4 + ((size_t)buf[2] << 8 | buf[3]);
        else if (len >= 3 && buf[1] == 0x81)
            want = 3 + buf[2];
        if (want)
            kr_err_set(err, "%s: truncated DER: the key says it is %zu bytes but only %zu are there "
                       "(read the whole key again)", name, want, len);
        else
            kr_err_set(err, "%s: truncated DER (read the whole key again)", name);
        return -1;
    }
    if (r != 0 || top->tag != 0x30) {
        kr_err_set(err, "%s: not a key: the DER does not start with a SEQUENCE", name);
        return -1;
    }
    return 0;
}

/* Refuses the forms that are not an RSA key with the line that says what the file is instead. */
static int form_refuse(form f, char alg, const char *name, const char *label, kr_err *err)
{
    switch (f) {
    case FORM_ENCRYPTED_PKCS8:
        kr_err_set(err, "%s: the key is protected by a password and sparkwire does not ask for one: "
                   "remove it with `openssl pkey -in %s -out %s.plain.pem`", name, name, name);
        return -1;
    case FORM_EC_PRIV:
        kr_err_set(err, "%s: an EC private key, not RSA: the Spark TCP protocol uses RSA keys only "
                   "(RSA-1024 device key, RSA-2048 server key)", name);
        return -1;
    case FORM_CERT:
        kr_err_set(err, "%s: an X.509 certificate, not a key: extract its public key with "
                   "`openssl x509 -in %s -pubkey -noout -out %s.pub.pem`", name, name, name);
        return -1;
    case FORM_UNKNOWN:
        kr_err_set(err, "%s: not an RSA key: the DER is neither PKCS#1, PKCS#8 nor SubjectPublicKeyInfo%s%s",
                   name, label ? "; PEM label " : "", label ? label : "");
        return -1;
    default:
        break;
    }
    if ((f == FORM_PKCS8_PRIV || f == FORM_SPKI) && alg != 'r') {
        kr_err_set(err, "%s: %s: the Spark TCP protocol uses RSA keys only (RSA-1024 device key, "
                   "RSA-2048 server key)", name, alg_name(alg));
        return -1;
    }
    return 0;
}

/* How OpenSSL is asked to decode each form. */
/* The forms OpenSSL is asked to decode, in the order of key_decode.c's decoder contexts. */
static const struct form_decoding {
    form f;
    kr_key_encoding enc;
    const char *what;
} form_decodings[KR_KEY_LOADER_FORMS] = {
    {FORM_PKCS1_PRIV, KR_ENC_PKCS1_PRIVATE, "PKCS#1 RSAPrivateKey"},
    {FORM_PKCS8_PRIV, KR_ENC_PKCS8_PRIVATE, "PKCS#8 PrivateKeyInfo"},
    {FORM_PKCS1_PUB, KR_ENC_PKCS1_PUBLIC, "PKCS#1 RSAPublicKey"},
    {FORM_SPKI, KR_ENC_SPKI_PUBLIC, "SubjectPublicKeyInfo"},
};

/* What follows the DER object in a DER file: erased flash, or 0xFF and a server address record. */
static void trailing_facts(kr_key *k, const uint8_t *buf, size_t len, size_t objlen)
{
    k->trailing_len = len - objlen;
    k->trailing_all_ff = k->trailing_len > 0 && kr_all_ff(buf + objlen, k->trailing_len);
    if (k->trailing_all_ff || objlen > KR_SERVER_KEY_SLOT || len <= KR_SERVER_KEY_SLOT + 2 ||
        !kr_all_ff(buf + objlen, KR_SERVER_KEY_SLOT - objlen))
        return;
    kr_server_address a;
    kr_server_address_parse(buf + KR_SERVER_KEY_SLOT, len - KR_SERVER_KEY_SLOT, KR_SERVER_KEY_SLOT, &a);
    if (a.state == KR_SLOT_KEY) {
        k->trailing_address = true;
        kr_sfmt(k->trailing_address_text, sizeof k->trailing_address_text, "%s %s port %u",
                a.type == 0 ? "IPv4" : "domain", a.host, a.port_used);
    }
}

/* The DER path: der/len is the whole input (DER file) or the PEM body. */
static kr_key *load_der(kr_key_loader *ld, const uint8_t *buf, size_t len, const char *name, bool pem,
                        const char *label, kr_err *err)
{
    kr_tlv top;
    if (der_outer(buf, len, name, &top, err) != 0)
        return NULL;
    size_t objlen = top.hdr + top.len;
    char alg = 'r';
    form f = classify(buf + top.hdr, top.len, &alg);
    if (form_refuse(f, alg, name, label, err) != 0)
        return NULL;
    const struct form_decoding *fd = NULL;
    kr_key_facts facts;
    int got = -1;
    for (size_t i = 0; i < KR_KEY_LOADER_FORMS; i++)
        if (form_decodings[i].f == f) {
            fd = &form_decodings[i];
            got = kr_key_decode_facts(ld, i, buf, objlen, &facts);
        }
    if (got != 0) {
        kr_err_set(err, "%s: looks like a %s but OpenSSL cannot read it: the key is damaged "
                   "(read or copy it again)", name, fd ? fd->what : "key");
        kr_err_openssl(err);
        return NULL;
    }
    ERR_clear_error();

    kr_key *k = key_alloc(name);
    if (!k) {
        kr_err_set(err, "%s: out of memory", name);
        return NULL;
    }
    k->encoding = fd->enc;
    k->is_private = fd->enc == KR_ENC_PKCS1_PRIVATE || fd->enc == KR_ENC_PKCS8_PRIVATE;
    k->pem = pem;
    if (key_take_facts(k, &facts, err) != 0) {
        kr_key_free(k);
        return NULL;
    }
    k->der = malloc(objlen);
    if (!k->der) {
        kr_key_free(k);
        kr_err_set(err, "%s: out of memory", name);
        return NULL;
    }
    memcpy(k->der, buf, objlen);
    k->der_len = objlen;
    if (!pem)
        trailing_facts(k, buf, len, objlen);
    return k;
}

static bool looks_like_pem(const uint8_t *buf, size_t len)
{
    const char tag[] = "-----BEGIN ";
    size_t tl = sizeof tag - 1;
    for (size_t i = 0; i + tl <= len; i++)
        if (memcmp(buf + i, tag, tl) == 0)
            return true;
    return false;
}

static kr_key *load_pem(kr_key_loader *ld, const uint8_t *buf, size_t len, const char *name, kr_err *err)
{
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    if (!bio) {
        kr_err_set(err, "%s: out of memory", name);
        return NULL;
    }
    kr_key *k = NULL;
    for (;;) {
        char *label = NULL, *header = NULL;
        unsigned char *data = NULL;
        long dlen = 0;
        if (!PEM_read_bio(bio, &label, &header, &data, &dlen)) {
            ERR_clear_error();
            kr_err_set(err, "%s: PEM text without a readable key block (damaged Base64 or no "
                       "\"-----BEGIN ... KEY-----\" section)", name);
            break;
        }
        bool skip = strcmp(label, "EC PARAMETERS") == 0 || strcmp(label, "DSA PARAMETERS") == 0;
        bool done = true;
        if (skip) {
            done = false;
        } else if (strstr(label, "ENCRYPTED") || (header && strstr(header, "ENCRYPTED"))) {
            kr_err_set(err, "%s: the key is protected by a password and sparkwire does not ask for one: "
                       "remove it with `openssl pkey -in %s -out %s.plain.pem`", name, name, name);
        } else if (strcmp(label, "EC PRIVATE KEY") == 0 || strcmp(label, "DSA PRIVATE KEY") == 0) {
            kr_err_set(err, "%s: %s, not RSA: the Spark TCP protocol uses RSA keys only (RSA-1024 device "
                       "key, RSA-2048 server key)", name, label[0] == 'E' ? "an EC private key" :
                       "a DSA private key");
        } else if (strcmp(label, "OPENSSH PRIVATE KEY") == 0) {
            kr_err_set(err, "%s: an OpenSSH key file: convert it with `ssh-keygen -p -m PEM -f %s` "
                       "(RSA keys only)", name, name);
        } else {
            k = load_der(ld, data, (size_t)dlen, name, true, label, err);
        }
        OPENSSL_free(label);
        OPENSSL_free(header);
        OPENSSL_free(data);
        if (done)
            break;
    }
    BIO_free(bio);
    return k;
}

kr_key *kr_key_loader_mem(kr_key_loader *ld, const uint8_t *buf, size_t len, const char *name, kr_err *err)
{
    if (!name)
        name = "key";
    if (!buf) {
        kr_err_set(err, "%s: no data", name);
        return NULL;
    }
    if (len > 0 && buf[0] != 0x30 && looks_like_pem(buf, len))
        return load_pem(ld, buf, len, name, err);
    return load_der(ld, buf, len, name, false, NULL, err);
}

kr_key *kr_key_loader_file(kr_key_loader *ld, const char *path, kr_err *err)
{
    size_t n = 0;
    if (kr_read_file_into(path, KR_KEY_FILE_MAX, "the key file", "larger than 1 MB: not a key file (for a flash dump "
                          "use `sparkkeys import`)", &ld->buf, &ld->cap, &n, err) != 0)
        return NULL;
    return kr_key_loader_mem(ld, ld->buf, n, path, err);
}

kr_key *kr_key_load_mem(const uint8_t *buf, size_t len, const char *name, kr_err *err)
{
    kr_key_loader ld;
    memset(&ld, 0, sizeof ld);
    kr_key *k = kr_key_loader_mem(&ld, buf, len, name, err);
    kr_key_loader_done(&ld);
    return k;
}

kr_key *kr_key_load_file(const char *path, kr_err *err)
{
    kr_key_loader ld;
    memset(&ld, 0, sizeof ld);
    kr_key *k = kr_key_loader_file(&ld, path, err);
    kr_key_loader_done(&ld);
    return k;
}

kr_key *kr_key_from_pkey(EVP_PKEY *pkey, const char *name, kr_err *err)
{
    if (!pkey) {
        kr_err_set(err, "%s: no key", name ? name : "key");
        return NULL;
    }
    kr_key *k = key_alloc(name);
    if (!k) {
        EVP_PKEY_free(pkey);
        kr_err_set(err, "out of memory");
        return NULL;
    }
    k->pkey_made = pkey;
    if (!EVP_PKEY_is_a(pkey, "RSA")) {
        key_finish(k, err);
        kr_key_free(k);
        return NULL;
    }
    BIGNUM *d = NULL;
    k->is_private = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_D, &d) == 1;
    BN_free(d);
    ERR_clear_error();
    unsigned char *der = NULL;
    int n;
    if (k->is_private) {
        k->encoding = KR_ENC_PKCS1_PRIVATE;
        n = i2d_PrivateKey(pkey, &der);   /* RSAPrivateKey for an RSA key */
    } else {
        k->encoding = KR_ENC_SPKI_PUBLIC;
        n = i2d_PUBKEY(pkey, &der);
    }
    if (n <= 0) {
        kr_err_set(err, "%s: cannot encode the key", k->source);
        kr_err_openssl(err);
        kr_key_free(k);
        return NULL;
    }
    k->der = malloc((size_t)n);
    if (!k->der) {
        OPENSSL_free(der);
        kr_key_free(k);
        return NULL;
    }
    memcpy(k->der, der, (size_t)n);
    k->der_len = (size_t)n;
    OPENSSL_free(der);
    if (key_finish(k, err) != 0) {
        kr_key_free(k);
        return NULL;
    }
    return k;
}

void kr_key_free(kr_key *key)
{
    if (!key)
        return;
    EVP_PKEY_free(key->pkey_made);
    free(key->der);
    free(key);
}

bool kr_key_same_public(const kr_key *a, const kr_key *b)
{
    if (!a || !b)
        return false;
    /* The fingerprint covers the SubjectPublicKeyInfo: modulus and exponent. */
    return memcmp(a->spki_sha256, b->spki_sha256, sizeof a->spki_sha256) == 0;
}

int kr_key_public_spki(const kr_key *key, uint8_t *out, size_t out_cap)
{
    EVP_PKEY *pkey = kr_key_pkey(key);
    if (!pkey)
        return -1;
    unsigned char *der = NULL;
    int n = -1;
    BN_CTX *bn = BN_CTX_new();
    if (bn) {
        BIGNUM *bn_n = NULL, *bn_e = NULL;
        BN_CTX_start(bn);
        kr_rsa_inspect(pkey, false, bn, &bn_n, &bn_e);
        n = kr_spki_encode(bn_n, bn_e, &der);
        BN_CTX_end(bn);
        BN_CTX_free(bn);
    }
    if (n <= 0 || (size_t)n > out_cap) {
        OPENSSL_free(der);
        ERR_clear_error();
        return -1;
    }
    memcpy(out, der, (size_t)n);
    OPENSSL_free(der);
    return n;
}

char *kr_key_fingerprint(const kr_key *key, char out[65])
{
    return kr_hex(key->spki_sha256, 32, out);
}

bool kr_key_has_fingerprint(const kr_key *key, const char *sha256_hex)
{
    uint8_t want[32];
    if (!key || !sha256_hex || strlen(sha256_hex) != 64 || kr_unhex(sha256_hex, want, sizeof want) != 0)
        return false;
    return memcmp(key->spki_sha256, want, sizeof want) == 0;
}

bool kr_key_is_particle_cloud(const kr_key *key)
{
    return kr_key_has_fingerprint(key, KR_PARTICLE_CLOUD_FINGERPRINT);
}

const char *kr_key_encoding_str(const kr_key *key)
{
    if (!key)
        return "no key";
    switch (key->encoding) {
    case KR_ENC_PKCS1_PRIVATE:
        return key->pem ? "PKCS#1 RSAPrivateKey PEM (BEGIN RSA PRIVATE KEY)" : "PKCS#1 RSAPrivateKey DER";
    case KR_ENC_PKCS8_PRIVATE:
        return key->pem ? "PKCS#8 PrivateKeyInfo PEM (BEGIN PRIVATE KEY)" : "PKCS#8 PrivateKeyInfo DER";
    case KR_ENC_PKCS1_PUBLIC:
        return key->pem ? "PKCS#1 RSAPublicKey PEM (BEGIN RSA PUBLIC KEY)" : "PKCS#1 RSAPublicKey DER";
    case KR_ENC_SPKI_PUBLIC:
        return key->pem ? "SubjectPublicKeyInfo PEM (BEGIN PUBLIC KEY)" : "SubjectPublicKeyInfo DER";
    }
    return "unknown encoding";
}

