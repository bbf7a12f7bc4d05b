/* sparkwire firmware: the crypto port over OpenSSL EVP / PKEY. */
#include "crypto_port.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

static EVP_PKEY *load_private(const uint8_t *der, size_t len)
{
    if (der == NULL || len == 0 || len > 0x7FFFFFFF)
        return NULL;
    const unsigned char *p = der;
    return d2i_AutoPrivateKey(NULL, &p, (long)len);
}

static EVP_PKEY *load_public(const uint8_t *der, size_t len)
{
    if (der == NULL || len == 0 || len > 0x7FFFFFFF)
        return NULL;
    const unsigned char *p = der;
    return d2i_PUBKEY(NULL, &p, (long)len);
}

static bool is_rsa(EVP_PKEY *k)
{
    return k && EVP_PKEY_is_a(k, "RSA");
}

enum op { OP_ENCRYPT, OP_DECRYPT, OP_SIGN, OP_RECOVER };

static int run(EVP_PKEY *key, enum op op, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
               size_t *out_len)
{
    int rc = -1;
    EVP_PKEY_CTX *ctx = NULL;
    if (!is_rsa(key))
        goto done;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (ctx == NULL)
        goto done;
    int ok;
    switch (op) {
    case OP_ENCRYPT: ok = EVP_PKEY_encrypt_init(ctx); break;
    case OP_DECRYPT: ok = EVP_PKEY_decrypt_init(ctx); break;
    case OP_SIGN: ok = EVP_PKEY_sign_init(ctx); break;
    default: ok = EVP_PKEY_verify_recover_init(ctx); break;
    }
    if (ok <= 0 || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0)
        goto done;
    if (op == OP_DECRYPT)
        /* OpenSSL >= 3.2 would hand back a made-up message on bad padding; a device must see the error.
         * Older versions do not know the parameter, which is fine. */
        (void)EVP_PKEY_CTX_ctrl_str(ctx, "rsa_pkcs1_implicit_rejection", "0");
    size_t n = 0;
    switch (op) {
    case OP_ENCRYPT: ok = EVP_PKEY_encrypt(ctx, NULL, &n, in, in_len); break;
    case OP_DECRYPT: ok = EVP_PKEY_decrypt(ctx, NULL, &n, in, in_len); break;
    case OP_SIGN: ok = EVP_PKEY_sign(ctx, NULL, &n, in, in_len); break;
    default: ok = EVP_PKEY_verify_recover(ctx, NULL, &n, in, in_len); break;
    }
    if (ok <= 0)
        goto done;
    /* The size query gives the modulus size; decrypt into a full-size buffer, then copy what fits. */
    uint8_t tmp[1024];
    if (n > sizeof tmp)
        goto done;
    switch (op) {
    case OP_ENCRYPT: ok = EVP_PKEY_encrypt(ctx, tmp, &n, in, in_len); break;
    case OP_DECRYPT: ok = EVP_PKEY_decrypt(ctx, tmp, &n, in, in_len); break;
    case OP_SIGN: ok = EVP_PKEY_sign(ctx, tmp, &n, in, in_len); break;
    default: ok = EVP_PKEY_verify_recover(ctx, tmp, &n, in, in_len); break;
    }
    if (ok <= 0 || n > out_cap)
        goto done;
    memcpy(out, tmp, n);
    *out_len = n;
    rc = 0;
done:
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

int sw_crypto_rsa_public_encrypt(const uint8_t *spki, size_t spki_len, const uint8_t *in, size_t in_len,
                                 uint8_t *out, size_t out_cap, size_t *out_len)
{
    EVP_PKEY *k = load_public(spki, spki_len);
    int rc = run(k, OP_ENCRYPT, in, in_len, out, out_cap, out_len);
    EVP_PKEY_free(k);
    return rc;
}

int sw_crypto_rsa_private_decrypt(const uint8_t *der, size_t der_len, const uint8_t *in, size_t in_len,
                                  uint8_t *out, size_t out_cap, size_t *out_len)
{
    EVP_PKEY *k = load_private(der, der_len);
    int rc = run(k, OP_DECRYPT, in, in_len, out, out_cap, out_len);
    EVP_PKEY_free(k);
    return rc;
}

int sw_crypto_rsa_private_sign_raw(const uint8_t *der, size_t der_len, const uint8_t *in, size_t in_len,
                                   uint8_t *out, size_t out_cap, size_t *out_len)
{
    EVP_PKEY *k = load_private(der, der_len);
    int rc = run(k, OP_SIGN, in, in_len, out, out_cap, out_len);
    EVP_PKEY_free(k);
    return rc;
}

int sw_crypto_rsa_public_verify_recover(const uint8_t *spki, size_t spki_len, const uint8_t *sig,
                                        size_t sig_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    EVP_PKEY *k = load_public(spki, spki_len);
    int rc = -1;
    if (k && (size_t)EVP_PKEY_get_size(k) == sig_len)
        rc = run(k, OP_RECOVER, sig, sig_len, out, out_cap, out_len);
    EVP_PKEY_free(k);
    return rc;
}

int sw_crypto_rsa_public_from_private(const uint8_t *der, size_t der_len, uint8_t *out, size_t out_cap,
                                      size_t *out_len)
{
    EVP_PKEY *k = load_private(der, der_len);
    int rc = -1;
    if (is_rsa(k)) {
        int n = i2d_PUBKEY(k, NULL);
        if (n > 0 && (size_t)n <= out_cap) {
            unsigned char *p = out;
            if (i2d_PUBKEY(k, &p) == n) {
                *out_len = (size_t)n;
                rc = 0;
            }
        }
    }
    EVP_PKEY_free(k);
    return rc;
}

int sw_crypto_rsa_public_size(const uint8_t *spki, size_t spki_len)
{
    EVP_PKEY *k = load_public(spki, spki_len);
    int n = is_rsa(k) ? EVP_PKEY_get_size(k) : -1;
    EVP_PKEY_free(k);
    return n;
}

int sw_crypto_hmac_sha1(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t msg_len,
                        uint8_t out[SW_HMAC_SHA1_LEN])
{
    int rc = -1;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    char digest[] = "SHA1";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    size_t n = 0;
    if (ctx && EVP_MAC_init(ctx, key, key_len, params) > 0 && EVP_MAC_update(ctx, msg, msg_len) > 0 &&
        EVP_MAC_final(ctx, out, &n, SW_HMAC_SHA1_LEN) > 0 && n == SW_HMAC_SHA1_LEN)
        rc = 0;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

static int aes(int enc, const uint8_t key[16], const uint8_t iv[16], const uint8_t *in, size_t len, uint8_t *out)
{
    if (len % 16 != 0 || len > 0x7FFFFFF0)
        return -1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int rc = -1, n1 = 0, n2 = 0;
    if (ctx && EVP_CipherInit_ex(ctx, EVP_aes_128_cbc(), NULL, key, iv, enc) > 0 &&
        EVP_CIPHER_CTX_set_padding(ctx, 0) > 0 && EVP_CipherUpdate(ctx, out, &n1, in, (int)len) > 0 &&
        EVP_CipherFinal_ex(ctx, out + n1, &n2) > 0 && (size_t)(n1 + n2) == len)
        rc = 0;
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int sw_crypto_aes128_cbc_encrypt(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in, size_t len,
                                 uint8_t *out)
{
    return aes(1, key, iv, in, len, out);
}

int sw_crypto_aes128_cbc_decrypt(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in, size_t len,
                                 uint8_t *out)
{
    return aes(0, key, iv, in, len, out);
}
