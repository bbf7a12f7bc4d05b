/* sparkwire libkeyring: the handshake's crypto (docs/protocol.md 2.2-2.4), both directions, on bytes only. */
#include "keyring/handshake.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

/* OpenSSL >= 3.2 answers a bad PKCS#1 v1.5 block with random bytes ("implicit rejection") unless told
 * not to; an observer must see the failure. Older versions do not know the parameter. */
#ifndef OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION
#define OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION "implicit-rejection"
#endif

const char *kr_hs_result_str(kr_hs_result r)
{
    switch (r) {
    case KR_HS_OK: return "ok";
    case KR_HS_NO_KEY: return "no usable key";
    case KR_HS_DECRYPT: return "decryption failed";
    case KR_HS_LENGTH: return "wrong plaintext length";
    case KR_HS_NONCE: return "nonce mismatch";
    case KR_HS_SIG_FORMAT: return "signature not made by this server key";
    case KR_HS_SIG_MISMATCH: return "signature does not match the session block";
    }
    return "unknown";
}

static void disable_implicit_rejection(EVP_PKEY_CTX *ctx)
{
    const OSSL_PARAM *settable = EVP_PKEY_CTX_settable_params(ctx);
    if (!settable || !OSSL_PARAM_locate_const(settable, OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION))
        return;     /* OpenSSL < 3.2: a bad block is always an error */
    unsigned int zero = 0;
    OSSL_PARAM p[2] = {
        OSSL_PARAM_construct_uint(OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION, &zero),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX_set_params(ctx, p);
}

/* PKCS#1 v1.5 type 2 decryption. Returns the plaintext length, -1 on a padding failure, -2 when the key
 * cannot be used. */
static int rsa_decrypt(const kr_key *key, const uint8_t *in, size_t inlen, uint8_t *out, size_t cap)
{
    if (!key || !kr_key_pkey(key) || !key->is_private)
        return -2;
    if ((size_t)EVP_PKEY_get_size(kr_key_pkey(key)) != inlen)
        return -1;   /* a block of another size cannot have been made for this key */
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, kr_key_pkey(key), NULL);
    if (!ctx)
        return -2;
    int ret = -1;
    if (EVP_PKEY_decrypt_init(ctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0) {
        disable_implicit_rejection(ctx);
        uint8_t buf[512];
        size_t outlen = sizeof buf;
        if (EVP_PKEY_decrypt(ctx, buf, &outlen, in, inlen) > 0 && outlen <= cap) {
            memcpy(out, buf, outlen);
            ret = (int)outlen;
        }
        OPENSSL_cleanse(buf, sizeof buf);
    } else {
        ret = -2;
    }
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return ret;
}

kr_hs_result kr_hs_open_idblock(const kr_key *server_private, const uint8_t block[KR_IDBLOCK_LEN],
                                const uint8_t *nonce, kr_idblock *out)
{
    uint8_t plain[KR_IDBLOCK_LEN];
    memset(out, 0, sizeof *out);
    int n = rsa_decrypt(server_private, block, KR_IDBLOCK_LEN, plain, sizeof plain);
    if (n == -2)
        return KR_HS_NO_KEY;
    if (n < 0)
        return KR_HS_DECRYPT;
    out->plain_len = (size_t)n;
    if (n < KR_IDPLAIN_G1_LEN)
        return KR_HS_LENGTH;
    memcpy(out->nonce, plain, KR_NONCE_LEN);
    memcpy(out->device_id, plain + KR_NONCE_LEN, KR_DEVICE_ID_LEN);
    kr_device_id_hex(out->device_id, out->device_id_hex);
    if (n >= KR_IDPLAIN_G2_LEN) {
        out->has_public_key = true;
        memcpy(out->public_key, plain + KR_IDPLAIN_G1_LEN, KR_DEVICE_SPKI_LEN);
    }
    if (nonce && memcmp(nonce, plain, KR_NONCE_LEN) != 0)
        return KR_HS_NONCE;
    return KR_HS_OK;
}

kr_hs_result kr_hs_open_session(const kr_key *device_private, const uint8_t e[KR_SESSION_E_LEN],
                                uint8_t m[KR_SESSION_LEN])
{
    uint8_t plain[KR_SESSION_E_LEN];
    int n = rsa_decrypt(device_private, e, KR_SESSION_E_LEN, plain, sizeof plain);
    if (n == -2)
        return KR_HS_NO_KEY;
    if (n < 0)
        return KR_HS_DECRYPT;
    if (n != KR_SESSION_LEN) {
        OPENSSL_cleanse(plain, sizeof plain);
        return KR_HS_LENGTH;
    }
    memcpy(m, plain, KR_SESSION_LEN);
    OPENSSL_cleanse(plain, sizeof plain);
    return KR_HS_OK;
}

int kr_hs_hmac(const uint8_t m[KR_SESSION_LEN], const uint8_t e[KR_SESSION_E_LEN], uint8_t out[KR_HMAC_LEN])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac)
        return -1;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    int ret = -1;
    char digest[] = "SHA1";
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t outlen = 0;
    if (ctx && EVP_MAC_init(ctx, m, KR_SESSION_LEN, params) && EVP_MAC_update(ctx, e, KR_SESSION_E_LEN) &&
        EVP_MAC_final(ctx, out, &outlen, KR_HMAC_LEN) && outlen == KR_HMAC_LEN)
        ret = 0;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    ERR_clear_error();
    return ret;
}

kr_hs_result kr_hs_verify_signature(const kr_key *server_public, const uint8_t sig[KR_SIGNATURE_LEN],
                                    const uint8_t *hmac, uint8_t *recovered)
{
    if (!server_public || !kr_key_pkey(server_public))
        return KR_HS_NO_KEY;
    if (EVP_PKEY_get_size(kr_key_pkey(server_public)) != KR_SIGNATURE_LEN)
        return KR_HS_SIG_FORMAT;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, kr_key_pkey(server_public), NULL);
    if (!ctx)
        return KR_HS_NO_KEY;
    kr_hs_result r = KR_HS_SIG_FORMAT;
    uint8_t buf[KR_SIGNATURE_LEN];
    size_t outlen = sizeof buf;
    if (EVP_PKEY_verify_recover_init(ctx) <= 0 || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0) {
        r = KR_HS_NO_KEY;
    } else if (EVP_PKEY_verify_recover(ctx, buf, &outlen, sig, KR_SIGNATURE_LEN) > 0 && outlen == KR_HMAC_LEN) {
        if (recovered)
            memcpy(recovered, buf, KR_HMAC_LEN);
        r = (hmac && memcmp(hmac, buf, KR_HMAC_LEN) != 0) ? KR_HS_SIG_MISMATCH : KR_HS_OK;
    }
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return r;
}

void kr_session_from_material(const uint8_t m[KR_SESSION_LEN], kr_session *s)
{
    memcpy(s->material, m, KR_SESSION_LEN);
    memcpy(s->key, m, 16);
    memcpy(s->iv, m + 16, 16);
    memcpy(s->salt, m + 32, 8);
    s->msgid_counter = (uint16_t)(m[32] << 8 | m[33]);
    s->msgid_counter_le = (uint16_t)(m[33] << 8 | m[32]);
    s->token_counter = m[34];
}

static int rsa_encrypt(const kr_key *key, const uint8_t *in, size_t inlen, uint8_t *out, size_t want,
                       kr_err *err, const char *what)
{
    if (!key || !kr_key_pkey(key)) {
        kr_err_set(err, "%s: no key", what);
        return -1;
    }
    if ((size_t)EVP_PKEY_get_size(kr_key_pkey(key)) != want) {
        kr_err_set(err, "%s: %s is RSA-%d, the protocol needs RSA-%zu", what, key->source, key->bits,
                   want * 8);
        return -1;
    }
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, kr_key_pkey(key), NULL);
    size_t outlen = want;
    int ok = ctx && EVP_PKEY_encrypt_init(ctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
             EVP_PKEY_encrypt(ctx, out, &outlen, in, inlen) > 0 && outlen == want;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        kr_err_set(err, "%s: RSA encryption with %s failed", what, key->source);
        kr_err_openssl(err);
        return -1;
    }
    return 0;
}

int kr_hs_make_idblock(const kr_key *server_public, const uint8_t nonce[KR_NONCE_LEN],
                       const uint8_t id[KR_DEVICE_ID_LEN], const uint8_t *device_spki,
                       uint8_t out[KR_IDBLOCK_LEN], kr_err *err)
{
    uint8_t plain[KR_IDPLAIN_G2_LEN];
    size_t n = KR_IDPLAIN_G1_LEN;
    memcpy(plain, nonce, KR_NONCE_LEN);
    memcpy(plain + KR_NONCE_LEN, id, KR_DEVICE_ID_LEN);
    if (device_spki) {
        memcpy(plain + KR_IDPLAIN_G1_LEN, device_spki, KR_DEVICE_SPKI_LEN);
        n = KR_IDPLAIN_G2_LEN;
    }
    return rsa_encrypt(server_public, plain, n, out, KR_IDBLOCK_LEN, err, "id block");
}

int kr_hs_make_session_block(const kr_key *device_public, const kr_key *server_private,
                             const uint8_t m[KR_SESSION_LEN], uint8_t out[KR_SESSIONBLOCK_LEN], kr_err *err)
{
    if (rsa_encrypt(device_public, m, KR_SESSION_LEN, out, KR_SESSION_E_LEN, err, "session block") != 0)
        return -1;
    uint8_t hmac[KR_HMAC_LEN];
    if (kr_hs_hmac(m, out, hmac) != 0) {
        kr_err_set(err, "session block: HMAC-SHA1 failed");
        return -1;
    }
    if (!server_private || !kr_key_pkey(server_private) || !server_private->is_private) {
        kr_err_set(err, "session block: signing needs the server private key");
        return -1;
    }
    if (EVP_PKEY_get_size(kr_key_pkey(server_private)) != KR_SIGNATURE_LEN) {
        kr_err_set(err, "session block: %s is RSA-%d, the server key must be RSA-2048", server_private->source,
                   server_private->bits);
        return -1;
    }
    /* PKCS#1 v1.5 type 1 over the raw 20 bytes: no digest set, so no DigestInfo. */
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, kr_key_pkey(server_private), NULL);
    size_t siglen = KR_SIGNATURE_LEN;
    int ok = ctx && EVP_PKEY_sign_init(ctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
             EVP_PKEY_sign(ctx, out + KR_SESSION_E_LEN, &siglen, hmac, KR_HMAC_LEN) > 0 &&
             siglen == KR_SIGNATURE_LEN;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        kr_err_set(err, "session block: signing with %s failed", server_private->source);
        kr_err_openssl(err);
        return -1;
    }
    return 0;
}
