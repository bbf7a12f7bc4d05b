/* sparkwire libkeyring: OpenSSL's decoding of RSA key DER, kept fast for keyfiles of many key files.
 *
 * Loading checks a key without making an EVP_PKEY: a decoder context holds OpenSSL's RSA decoder for the one
 * structure the bytes have (PKCS#1 "type-specific", PKCS#8 "PrivateKeyInfo", "SubjectPublicKeyInfo"), and
 * its constructor asks the decoder to export the numbers it read; the arithmetic checks, the size, the
 * exponent and the fingerprint come from them. The EVP_PKEY is made from the same checked bytes when a key
 * is first used (kr_key_pkey): a keyfile of 70,000 devices whose capture shows a few of them makes a few.
 * Decoder contexts are set up once per form and kept (setting one up costs about 20 decodes).
 */
#include "keyring/key.h"
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/x509.h>

/* RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }, for OpenSSL's ASN.1 encoder. */
typedef struct rsa_public {
    const BIGNUM *n, *e;
} rsa_public;

ASN1_SEQUENCE(rsa_public) = {
    ASN1_SIMPLE(rsa_public, n, BIGNUM),
    ASN1_SIMPLE(rsa_public, e, BIGNUM),
} static_ASN1_SEQUENCE_END(rsa_public)

int kr_spki_encode(const BIGNUM *n, const BIGNUM *e, unsigned char **out)
{
    rsa_public pub = {n, e};
    unsigned char *inner = NULL;
    *out = NULL;
    if (!n || !e)
        return -1;
    int len = ASN1_item_i2d((const ASN1_VALUE *)&pub, &inner, ASN1_ITEM_rptr(rsa_public));
    X509_PUBKEY *x = len > 0 ? X509_PUBKEY_new() : NULL;
    if (!x || !X509_PUBKEY_set0_param(x, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL, NULL, inner, len)) {
        OPENSSL_free(inner);
        X509_PUBKEY_free(x);
        return -1;
    }
    len = i2d_X509_PUBKEY(x, out);
    X509_PUBKEY_free(x);
    return len > 0 ? len : -1;
}

int kr_key_facts_from(kr_key_facts *f, const BIGNUM *n, const BIGNUM *e)
{
    unsigned char *spki = NULL;
    int len = kr_spki_encode(n, e, &spki);
    f->bits = n ? BN_num_bits(n) : 0;
    f->exponent = len > 0 && BN_num_bits(e) <= 32 ? BN_get_word(e) : 0;
    f->spki_ok = len > 0 && EVP_Digest(spki, (size_t)len, f->spki_sha256, NULL, kr_fetched_sha256(), NULL);
    OPENSSL_free(spki);
    return f->spki_ok ? 0 : -1;
}

static const char *const structures[KR_KEY_LOADER_FORMS] = {
    "type-specific", "PrivateKeyInfo", "type-specific", "SubjectPublicKeyInfo",
};
static const int selections[KR_KEY_LOADER_FORMS] = {
    EVP_PKEY_KEYPAIR, EVP_PKEY_KEYPAIR, EVP_PKEY_PUBLIC_KEY, EVP_PKEY_PUBLIC_KEY,
};

static int fail_passphrase(char *buf, size_t size, size_t *len, const OSSL_PARAM params[], void *arg)
{
    (void)buf; (void)size; (void)params; (void)arg;
    *len = 0;
    return 0;   /* never ask: a protected key is reported, not unlocked */
}

/* The decoder's numbers, while it holds the key it read: the facts of the key. */
static int facts_from_params(const OSSL_PARAM params[], void *arg)
{
    kr_key_loader *ld = arg;
    BIGNUM *n = NULL, *e = NULL;
    BN_CTX_start(ld->bn);
    ld->facts.broken = kr_rsa_inspect_params(params, ld->bn, &n, &e);
    kr_key_facts_from(&ld->facts, n, e);
    BN_CTX_end(ld->bn);
    ld->facts_done = true;
    return 1;
}

static int construct_facts(OSSL_DECODER_INSTANCE *inst, const OSSL_PARAM *params, void *arg)
{
    kr_key_loader *ld = arg;
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, OSSL_OBJECT_PARAM_REFERENCE);
    if (!p || p->data_type != OSSL_PARAM_OCTET_STRING)
        return 0;
    ld->facts_done = false;
    return OSSL_DECODER_export(inst, p->data, p->data_size, facts_from_params, ld) == 1 && ld->facts_done;
}

/* A context with OpenSSL's RSA decoder for form i's structure alone. */
static OSSL_DECODER_CTX *facts_ctx(kr_key_loader *ld, size_t i)
{
    char props[96];
    snprintf(props, sizeof props, "input=der,structure=%s", structures[i]);
    OSSL_DECODER *dec = OSSL_DECODER_fetch(NULL, "RSA", props);
    OSSL_DECODER_CTX *ctx = dec ? OSSL_DECODER_CTX_new() : NULL;
    bool ok = ctx && OSSL_DECODER_CTX_set_input_type(ctx, "DER") &&
              OSSL_DECODER_CTX_set_input_structure(ctx, structures[i]) &&
              OSSL_DECODER_CTX_set_selection(ctx, selections[i]) && OSSL_DECODER_CTX_add_decoder(ctx, dec) &&
              OSSL_DECODER_CTX_set_construct(ctx, construct_facts) && OSSL_DECODER_CTX_set_construct_data(ctx, ld) &&
              OSSL_DECODER_CTX_set_passphrase_cb(ctx, fail_passphrase, NULL);
    OSSL_DECODER_free(dec);
    if (!ok) {
        OSSL_DECODER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int kr_key_decode_facts(kr_key_loader *ld, size_t i, const uint8_t *der, size_t len, kr_key_facts *facts)
{
    if (i >= KR_KEY_LOADER_FORMS)
        return -1;
    if (!ld->bn && !(ld->bn = BN_CTX_new()))
        return -1;
    if (!ld->fctx[i] && !(ld->fctx[i] = facts_ctx(ld, i)))
        return -1;
    const unsigned char *p = der;
    size_t left = len;
    memset(&ld->facts, 0, sizeof ld->facts);
    ld->facts_done = false;
    if (OSSL_DECODER_from_data(ld->fctx[i], &p, &left) != 1 || !ld->facts_done || !ld->facts.spki_ok) {
        /* a failed decode may leave state behind: the next key gets a fresh context */
        OSSL_DECODER_CTX_free(ld->fctx[i]);
        ld->fctx[i] = NULL;
        return -1;
    }
    *facts = ld->facts;
    return 0;
}

EVP_PKEY *kr_key_decode_pkey(kr_key_loader *ld, size_t i, const uint8_t *der, size_t len)
{
    if (i >= KR_KEY_LOADER_FORMS)
        return NULL;
    if (!ld->dctx[i]) {
        ld->out[i] = NULL;
        ld->dctx[i] = OSSL_DECODER_CTX_new_for_pkey(&ld->out[i], "DER", structures[i], "RSA", selections[i],
                                                    NULL, NULL);
        if (!ld->dctx[i])
            return NULL;
        OSSL_DECODER_CTX_set_passphrase_cb(ld->dctx[i], fail_passphrase, NULL);
    }
    const unsigned char *p = der;
    size_t left = len;
    ld->out[i] = NULL;
    int ok = OSSL_DECODER_from_data(ld->dctx[i], &p, &left);
    EVP_PKEY *pkey = ld->out[i];
    ld->out[i] = NULL;
    if (!ok || !pkey) {
        EVP_PKEY_free(pkey);
        OSSL_DECODER_CTX_free(ld->dctx[i]);
        ld->dctx[i] = NULL;
        return NULL;
    }
    return pkey;
}

void kr_key_loader_done(kr_key_loader *ld)
{
    for (size_t i = 0; i < KR_KEY_LOADER_FORMS; i++) {
        OSSL_DECODER_CTX_free(ld->dctx[i]);
        OSSL_DECODER_CTX_free(ld->fctx[i]);
        ld->dctx[i] = ld->fctx[i] = NULL;
    }
    BN_CTX_free(ld->bn);
    ld->bn = NULL;
    free(ld->buf);
    ld->buf = NULL;
    ld->cap = 0;
}

/* ---- the EVP_PKEY, made on first use --------------------------------------------------------------- */

static pthread_mutex_t pkey_lock = PTHREAD_MUTEX_INITIALIZER;
static kr_key_loader pkey_loader;   /* its decoder contexts serve every key's first use */

static size_t form_of(kr_key_encoding enc)
{
    switch (enc) {
    case KR_ENC_PKCS1_PRIVATE: return 0;
    case KR_ENC_PKCS8_PRIVATE: return 1;
    case KR_ENC_PKCS1_PUBLIC: return 2;
    case KR_ENC_SPKI_PUBLIC: return 3;
    }
    return KR_KEY_LOADER_FORMS;
}

EVP_PKEY *kr_key_pkey(const kr_key *key)
{
    if (!key)
        return NULL;
    pthread_mutex_lock(&pkey_lock);
    kr_key *k = (kr_key *)key;   /* the cache of a key that is otherwise read only */
    if (!k->pkey_made && k->der)
        k->pkey_made = kr_key_decode_pkey(&pkey_loader, form_of(k->encoding), k->der, k->der_len);
    ERR_clear_error();
    EVP_PKEY *pkey = k->pkey_made;
    pthread_mutex_unlock(&pkey_lock);
    return pkey;
}

void kr_key_decode_end(void)
{
    pthread_mutex_lock(&pkey_lock);
    kr_key_loader_done(&pkey_loader);
    pthread_mutex_unlock(&pkey_lock);
}
