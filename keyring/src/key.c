/* sparkwire libkeyring: RSA key files as devices, clouds and people store them.
 *
 * The content decides what a file is: PEM armour or DER, and inside the DER the shape of the first
 * elements (PKCS#1, PKCS#8, SubjectPublicKeyInfo). OpenSSL's decoders do the real parsing; the small
 * TLV walk here only tells the forms apart, measures the DER object (flash slots carry bytes after it)
 * and checks the fixed layout the devices rely on (docs/protocol.md 5.1).
 */
#include "keyring/key.h"
#include "internal.h"
#include "keyring/flash.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

typedef struct tlv {
    uint8_t tag;
    size_t hdr;     /* tag + length bytes */
    size_t len;     /* content length */
} tlv;

/* 0: ok; -1: not DER here; -2: the length runs past the end (truncated). */
static int tlv_read(const uint8_t *buf, size_t avail, tlv *t)
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
    tlv t;
    if (tlv_read(p, len, &t) != 0 || t.tag != 0x06)
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
    tlv a, b;
    *alg = 'r';
    if (tlv_read(c, n, &a) != 0)
        return FORM_UNKNOWN;
    const uint8_t *c2 = c + a.hdr + a.len;
    size_t n2 = n - a.hdr - a.len;
    if (tlv_read(c2, n2, &b) != 0)
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

static int fail_passphrase(char *buf, size_t size, size_t *len, const OSSL_PARAM params[], void *arg)
{
    (void)buf; (void)size; (void)params; (void)arg;
    *len = 0;
    return 0;   /* never ask: a protected key is reported, not unlocked */
}

static EVP_PKEY *decode_der(const uint8_t *der, size_t len, const char *structure, int selection)
{
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "DER", structure, "RSA", selection,
                                                           NULL, NULL);
    if (!dctx)
        return NULL;
    OSSL_DECODER_CTX_set_passphrase_cb(dctx, fail_passphrase, NULL);
    const unsigned char *p = der;
    size_t left = len;
    if (!OSSL_DECODER_from_data(dctx, &p, &left)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    OSSL_DECODER_CTX_free(dctx);
    return pkey;
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

/* Fills the derived fields of a key whose pkey is set. */
static int key_finish(kr_key *k, kr_err *err)
{
    if (!EVP_PKEY_is_a(k->pkey, "RSA")) {
        kr_err_set(err, "%s: not an RSA key (%s): the Spark protocol uses RSA keys only; use an RSA-1024 "
                   "device key or an RSA-2048 server key", k->source, EVP_PKEY_get0_type_name(k->pkey));
        return -1;
    }
    k->bits = EVP_PKEY_get_bits(k->pkey);
    BIGNUM *e = NULL;
    k->exponent = 0;
    if (EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_E, &e) && BN_num_bits(e) <= 32)
        k->exponent = BN_get_word(e);
    BN_free(e);

    unsigned char *spki = NULL;
    int n = i2d_PUBKEY(k->pkey, &spki);
    if (n <= 0 || !EVP_Digest(spki, (size_t)n, k->spki_sha256, NULL, EVP_sha256(), NULL)) {
        OPENSSL_free(spki);
        kr_err_set(err, "%s: cannot encode the public half of the key", k->source);
        kr_err_openssl(err);
        return -1;
    }
    OPENSSL_free(spki);
    return 0;
}

static kr_key *key_alloc(const char *name)
{
    kr_key *k = calloc(1, sizeof *k);
    if (k)
        kr_sfmt(k->source, sizeof k->source, "%s", name ? name : "key");
    return k;
}

static bool all_ff(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0xff)
            return false;
    return true;
}

/* The DER path: der/len is the whole input (DER file) or the PEM body. */
static kr_key *load_der(const uint8_t *buf, size_t len, const char *name, bool pem, const char *label,
                        kr_err *err)
{
    tlv top;
    if (len == 0) {
        kr_err_set(err, "%s: empty file: not a key (check the path, or read the key again)", name);
        return NULL;
    }
    if (all_ff(buf, len)) {
        kr_err_set(err, "%s: blank (all %zu bytes are 0xFF, erased flash): no key stored there", name, len);
        return NULL;
    }
    if (buf[0] == 0xff && len >= 4096) {
        kr_err_set(err, "%s: not a key: %zu bytes starting with erased flash (0xFF): a flash dump? read its keys "
                   "with `keyring import %s --out DIR`", name, len, name);
        return NULL;
    }
    if (buf[0] != 0x30) {
        kr_err_set(err, "%s: not a key: neither DER (which starts with byte 0x30) nor PEM "
                   "(\"-----BEGIN ...\"); first byte is 0x%02x", name, buf[0]);
        return NULL;
    }
    int r = tlv_read(buf, len, &top);
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
        return NULL;
    }
    if (r != 0 || top.tag != 0x30) {
        kr_err_set(err, "%s: not a key: the DER does not start with a SEQUENCE", name);
        return NULL;
    }
    size_t objlen = top.hdr + top.len;
    char alg = 'r';
    form f = classify(buf + top.hdr, top.len, &alg);

    switch (f) {
    case FORM_ENCRYPTED_PKCS8:
        kr_err_set(err, "%s: the key is protected by a password and sparkwire does not ask for one: "
                   "remove it with `openssl pkey -in %s -out %s.plain.pem`", name, name, name);
        return NULL;
    case FORM_EC_PRIV:
        kr_err_set(err, "%s: an EC private key, not RSA: the Spark TCP protocol uses RSA keys only "
                   "(RSA-1024 device key, RSA-2048 server key)", name);
        return NULL;
    case FORM_CERT:
        kr_err_set(err, "%s: an X.509 certificate, not a key: extract its public key with "
                   "`openssl x509 -in %s -pubkey -noout -out %s.pub.pem`", name, name, name);
        return NULL;
    case FORM_UNKNOWN:
        kr_err_set(err, "%s: not an RSA key: the DER is neither PKCS#1, PKCS#8 nor SubjectPublicKeyInfo%s%s",
                   name, label ? "; PEM label " : "", label ? label : "");
        return NULL;
    default:
        break;
    }
    if ((f == FORM_PKCS8_PRIV || f == FORM_SPKI) && alg != 'r') {
        kr_err_set(err, "%s: %s: the Spark TCP protocol uses RSA keys only (RSA-1024 device key, "
                   "RSA-2048 server key)", name, alg_name(alg));
        return NULL;
    }

    const char *structure = "type-specific";
    int selection = EVP_PKEY_KEYPAIR;
    kr_key_encoding enc = KR_ENC_PKCS1_PRIVATE;
    const char *what = "PKCS#1 RSAPrivateKey";
    switch (f) {
    case FORM_PKCS8_PRIV:
        structure = "PrivateKeyInfo"; enc = KR_ENC_PKCS8_PRIVATE; what = "PKCS#8 PrivateKeyInfo";
        break;
    case FORM_PKCS1_PUB:
        selection = EVP_PKEY_PUBLIC_KEY; enc = KR_ENC_PKCS1_PUBLIC; what = "PKCS#1 RSAPublicKey";
        break;
    case FORM_SPKI:
        structure = "SubjectPublicKeyInfo"; selection = EVP_PKEY_PUBLIC_KEY; enc = KR_ENC_SPKI_PUBLIC;
        what = "SubjectPublicKeyInfo";
        break;
    default:
        break;
    }

    EVP_PKEY *pkey = decode_der(buf, objlen, structure, selection);
    if (!pkey) {
        kr_err_set(err, "%s: looks like a %s but OpenSSL cannot read it: the key is damaged "
                   "(read or copy it again)", name, what);
        kr_err_openssl(err);
        return NULL;
    }
    ERR_clear_error();

    kr_key *k = key_alloc(name);
    if (!k) {
        EVP_PKEY_free(pkey);
        kr_err_set(err, "%s: out of memory", name);
        return NULL;
    }
    k->pkey = pkey;
    k->encoding = enc;
    k->is_private = enc == KR_ENC_PKCS1_PRIVATE || enc == KR_ENC_PKCS8_PRIVATE;
    k->pem = pem;
    k->der = malloc(objlen);
    if (!k->der) {
        kr_key_free(k);
        kr_err_set(err, "%s: out of memory", name);
        return NULL;
    }
    memcpy(k->der, buf, objlen);
    k->der_len = objlen;
    if (!pem) {
        k->trailing_len = len - objlen;
        k->trailing_all_ff = k->trailing_len > 0 && all_ff(buf + objlen, k->trailing_len);
        if (!k->trailing_all_ff && objlen <= KR_SERVER_KEY_SLOT && len > KR_SERVER_KEY_SLOT + 2 &&
            all_ff(buf + objlen, KR_SERVER_KEY_SLOT - objlen)) {
            kr_server_address a;
            kr_server_address_parse(buf + KR_SERVER_KEY_SLOT, len - KR_SERVER_KEY_SLOT, KR_SERVER_KEY_SLOT, &a);
            if (a.state == KR_SLOT_KEY) {
                k->trailing_address = true;
                kr_sfmt(k->trailing_address_text, sizeof k->trailing_address_text, "%s %s port %u",
                     a.type == 0 ? "IPv4" : "domain", a.host, a.port_used);
            }
        }
    }
    if (key_finish(k, err) != 0) {
        kr_key_free(k);
        return NULL;
    }
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

static kr_key *load_pem(const uint8_t *buf, size_t len, const char *name, kr_err *err)
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
            k = load_der(data, (size_t)dlen, name, true, label, err);
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

kr_key *kr_key_load_mem(const uint8_t *buf, size_t len, const char *name, kr_err *err)
{
    if (!name)
        name = "key";
    if (!buf) {
        kr_err_set(err, "%s: no data", name);
        return NULL;
    }
    if (len > 0 && buf[0] != 0x30 && looks_like_pem(buf, len))
        return load_pem(buf, len, name, err);
    return load_der(buf, len, name, false, NULL, err);
}

kr_key *kr_key_load_file(const char *path, kr_err *err)
{
    size_t n = 0;
    uint8_t *buf = kr_read_file(path, KR_KEY_FILE_MAX, NULL,
                                "larger than 1 MB: not a key file (for a flash dump use `keyring import`)", &n, err);
    if (!buf)
        return NULL;
    kr_key *k = kr_key_load_mem(buf, n, path, err);
    free(buf);
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
    k->pkey = pkey;
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
    EVP_PKEY_free(key->pkey);
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
    if (!key || !key->pkey)
        return -1;
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key->pkey, &der);
    if (n <= 0) {
        ERR_clear_error();
        return -1;
    }
    if ((size_t)n > out_cap) {
        OPENSSL_free(der);
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
    tlv top;
    if (!der || tlv_read(der, len, &top) != 0 || top.tag != 0x30) {
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
        tlv t;
        if (tlv_read(der + pos, end - pos, &t) != 0 || t.tag != 0x02) {
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

bool kr_key_private_consistent(const kr_key *key)
{
    if (!key || !key->is_private)
        return false;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
    if (!ctx)
        return false;
    int ok = EVP_PKEY_pairwise_check(ctx);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return ok == 1;
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

#define NEWKEY_FIX "make a new key: `openssl genrsa -traditional -out new.pem 1024`, " \
                   "`openssl rsa -in new.pem -traditional -outform DER -out new.der`, write new.der to " \
                   "the device and upload its public half (or use `keyring new`)"

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

static void check_device_private(const kr_key *k, notes *ns)
{
    char fix[384];
    const char *src = k->source;
    if (!k->is_private) {
        note_add(ns, KR_NOTE_PROBLEM, false, "",
                 "a public key where the device private key is needed: the private key lives in the "
                 "device (Core: read it with `dfu-util -d 1d50:607f -a 1 -s 0x00002000:1024 -U device.der`)");
        return;
    }
    const char *fails = "the device misreads it and fails every handshake with a decryption error "
                        "(one orange blink)";
    char dst[512];
    out_name(src, "pkcs1", dst, sizeof dst);
    if (k->encoding == KR_ENC_PKCS8_PRIVATE) {
        kr_sfmt(fix, sizeof fix, "openssl rsa -in %s -traditional -outform DER -out %s", src, dst);
        note_add(ns, KR_NOTE_PROBLEM, true, fix,
                 "PKCS#8 wrapped (\"BEGIN PRIVATE KEY\", OpenSSL 3's default): %s", fails);
    } else if (k->pem) {
        kr_sfmt(fix, sizeof fix, "openssl rsa -in %s -traditional -outform DER -out %s", src, dst);
        note_add(ns, KR_NOTE_WARNING, true, fix,
                 "PEM text: fine for sparkwire, but the device flash needs the DER bytes");
    }
    bool size_ok = k->bits == 1024 && k->exponent == 65537;
    if (k->bits != 1024)
        note_add(ns, KR_NOTE_PROBLEM, false, NEWKEY_FIX,
                 "RSA-%d: devices expect RSA-1024; %s", k->bits, fails);
    if (k->exponent != 65537)
        note_add(ns, KR_NOTE_PROBLEM, false, NEWKEY_FIX,
                 "public exponent %lu instead of 65537: the device assumes 65537 and its handshakes fail "
                 "(decryption error, one orange blink)", k->exponent);
    if (size_ok) {
        /* Look at the PKCS#1 bytes the device would hold (inside the PKCS#8 wrapping if any). */
        const uint8_t *d = k->der;
        size_t dl = k->der_len;
        unsigned char *inner = NULL;
        if (k->encoding != KR_ENC_PKCS1_PRIVATE) {
            int n = i2d_PrivateKey(k->pkey, &inner);
            d = inner;
            dl = n > 0 ? (size_t)n : 0;
        }
        char why[256];
        if (dl && !kr_key_device_layout_ok(d, dl, why, sizeof why))
            note_add(ns, KR_NOTE_PROBLEM, false, NEWKEY_FIX, "%s; %s", why, fails);
        OPENSSL_free(inner);
    }
    if (!kr_key_private_consistent(k))
        note_add(ns, KR_NOTE_PROBLEM, false, NEWKEY_FIX,
                 "the private key's numbers are inconsistent (n != p*q or a wrong d): the key is corrupt "
                 "and nothing it decrypts is right");
}

static void check_server_public(const kr_key *k, notes *ns)
{
    char fix[384], dst[512];
    const char *src = k->source;
    out_name(src, "spki", dst, sizeof dst);
    if (k->bits != 2048)
        note_add(ns, KR_NOTE_PROBLEM, false, "use the cloud's own RSA-2048 public key",
                 "RSA-%d: the device reads a 2048-bit modulus from fixed offsets, so a server key of another "
                 "size is misread and the cloud cannot open the device's id block", k->bits);
    if (k->exponent != 65537)
        note_add(ns, KR_NOTE_PROBLEM, false, "",
                 "public exponent %lu: the device always uses 65537, so the cloud cannot open its id block",
                 k->exponent);
    if (k->bits != 2048)
        return;
    if (k->is_private) {
        kr_sfmt(fix, sizeof fix, "openssl rsa -in %s -pubout -outform DER -out %s", src, dst);
        note_add(ns, KR_NOTE_PROBLEM, true, fix,
                 "a private key: the device's server-key slot must hold the public half as 294-byte "
                 "SubjectPublicKeyInfo DER");
    } else if (k->encoding == KR_ENC_PKCS1_PUBLIC) {
        kr_sfmt(fix, sizeof fix, "openssl rsa -RSAPublicKey_in -in %s%s -pubout -outform DER -out %s",
                 src, k->pem ? "" : " -inform DER", dst);
        note_add(ns, KR_NOTE_PROBLEM, true, fix,
                 "PKCS#1 RSAPublicKey (30 82 01 0a), not the 294-byte SubjectPublicKeyInfo the device reads: "
                 "written to the device it gives a wrong modulus and the cloud cannot open the id block");
    } else if (k->pem) {
        kr_sfmt(fix, sizeof fix, "openssl rsa -pubin -in %s -outform DER -out %s", src, dst);
        note_add(ns, KR_NOTE_PROBLEM, true, fix,
                 "PEM text, not the 294-byte DER the device reads: written to the device it gives a wrong "
                 "modulus and the cloud cannot open the id block");
    } else if (k->der_len != KR_SERVER_SPKI_LEN) {
        kr_sfmt(fix, sizeof fix, "openssl rsa -pubin -in %s -inform DER -outform DER -out %s", src, dst);
        note_add(ns, KR_NOTE_PROBLEM, true, fix,
                 "%zu bytes of DER instead of 294: the device reads the modulus at fixed offsets", k->der_len);
    }
}

int kr_key_check(const kr_key *key, kr_role role, kr_note *out, int max)
{
    notes ns = {out, 0, max};
    if (!key || !out || max <= 0)
        return 0;
    switch (role) {
    case KR_ROLE_DEVICE_PRIVATE:
        check_device_private(key, &ns);
        break;
    case KR_ROLE_DEVICE_PUBLIC:
        if (key->bits != 1024)
            note_add(&ns, KR_NOTE_PROBLEM, false, NEWKEY_FIX,
                     "RSA-%d: device keys are RSA-1024; a device cannot hold the matching private key",
                     key->bits);
        if (key->exponent != 65537)
            note_add(&ns, KR_NOTE_PROBLEM, false, NEWKEY_FIX,
                     "public exponent %lu instead of 65537: devices assume 65537", key->exponent);
        if (key->encoding == KR_ENC_PKCS1_PUBLIC) {
            char fix[384];
            kr_sfmt(fix, sizeof fix, "openssl rsa -RSAPublicKey_in -in %s%s -pubout -out %s.pub.pem",
                     key->source, key->pem ? "" : " -inform DER", key->source);
            note_add(&ns, KR_NOTE_WARNING, true, fix,
                     "PKCS#1 RSAPublicKey: the cloud wants SubjectPublicKeyInfo (\"BEGIN PUBLIC KEY\") PEM");
        }
        if (key->is_private && key->bits == 1024)
            note_add(&ns, KR_NOTE_INFO, false, "", "a private key: its public half is used");
        break;
    case KR_ROLE_SERVER_PRIVATE:
        if (!key->is_private)
            note_add(&ns, KR_NOTE_PROBLEM, false, "",
                     "a public key where the server private key is needed (the cloud's own key file, e.g. "
                     "spark-server's default_key.pem)");
        /* The key still loads (other sizes load with a warning); in the server role it cannot work. */
        if (key->bits != 2048)
            note_add(&ns, KR_NOTE_PROBLEM, false,
                     "give the cloud's RSA-2048 private key, or make one: `openssl genrsa -out server.pem 2048`",
                     "RSA-%d: server keys are RSA-2048; devices cannot use a server key of this size",
                     key->bits);
        if (key->exponent != 65537)
            note_add(&ns, KR_NOTE_PROBLEM, false, "",
                     "public exponent %lu: devices always encrypt with 65537, so this server cannot "
                     "open their id blocks", key->exponent);
        if (key->is_private && !kr_key_private_consistent(key))
            note_add(&ns, KR_NOTE_PROBLEM, false, "",
                     "the private key's numbers are inconsistent (n != p*q or a wrong d): the key is corrupt");
        break;
    case KR_ROLE_SERVER_PUBLIC:
        check_server_public(key, &ns);
        break;
    case KR_ROLE_ANY:
        if (key->bits != 1024 && key->bits != 2048)
            note_add(&ns, KR_NOTE_WARNING, false, "",
                     "RSA-%d: neither a device key (1024 bits) nor a server key (2048 bits)", key->bits);
        if (key->exponent != 65537)
            note_add(&ns, KR_NOTE_WARNING, false, "",
                     "public exponent %lu: devices assume 65537", key->exponent);
        if (key->is_private && !kr_key_private_consistent(key))
            note_add(&ns, KR_NOTE_PROBLEM, false, "",
                     "the private key's numbers are inconsistent (n != p*q or a wrong d): the key is corrupt");
        break;
    }
    if (key->trailing_len) {
        if (key->trailing_all_ff)
            note_add(&ns, KR_NOTE_INFO, false, "",
                     "%zu bytes of 0xFF after the %zu-byte key (erased flash, as a read from a device "
                     "gives): ignored", key->trailing_len, key->der_len);
        else if (key->trailing_address)
            note_add(&ns, KR_NOTE_INFO, false, "",
                     "%zu bytes after the %zu-byte key: 0xFF fill and the server address record at offset 384 "
                     "(%s), as in a device's server-key slot: ignored", key->trailing_len, key->der_len,
                     key->trailing_address_text);
        else
            note_add(&ns, KR_NOTE_WARNING, false, "",
                     "%zu bytes after the %zu-byte key that are not erased flash: ignored; check that the file "
                     "holds the key you think", key->trailing_len, key->der_len);
    }
    if (kr_key_is_particle_cloud(key))
        note_add(&ns, KR_NOTE_INFO, false, "",
                 "this is the public key of the Particle (Spark) cloud for TCP devices");
    return ns.n;
}
