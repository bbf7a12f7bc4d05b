/* sparkwire firmware: a crypto port that refuses everything. Debian packages no crypto library built
 * for arm-none-eabi, so the Cortex-M3 image links against this to measure the stack itself; a real
 * firmware plugs its own RSA/AES/HMAC here (the Core used TropicSSL). CRC-32 is in the core. */
#include "crypto_port.h"

int sw_crypto_rsa_public_encrypt(const uint8_t *spki, size_t spki_len, const uint8_t *in, size_t in_len,
                                 uint8_t *out, size_t out_cap, size_t *out_len)
{
    (void)spki; (void)spki_len; (void)in; (void)in_len; (void)out; (void)out_cap; (void)out_len;
    return -1;
}

int sw_crypto_rsa_private_decrypt(const uint8_t *der, size_t der_len, const uint8_t *in, size_t in_len,
                                  uint8_t *out, size_t out_cap, size_t *out_len)
{
    (void)der; (void)der_len; (void)in; (void)in_len; (void)out; (void)out_cap; (void)out_len;
    return -1;
}

int sw_crypto_rsa_private_sign_raw(const uint8_t *der, size_t der_len, const uint8_t *in, size_t in_len,
                                   uint8_t *out, size_t out_cap, size_t *out_len)
{
    (void)der; (void)der_len; (void)in; (void)in_len; (void)out; (void)out_cap; (void)out_len;
    return -1;
}

int sw_crypto_rsa_public_verify_recover(const uint8_t *spki, size_t spki_len, const uint8_t *sig,
                                        size_t sig_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    (void)spki; (void)spki_len; (void)sig; (void)sig_len; (void)out; (void)out_cap; (void)out_len;
    return -1;
}

int sw_crypto_rsa_public_from_private(const uint8_t *der, size_t der_len, uint8_t *out, size_t out_cap,
                                      size_t *out_len)
{
    (void)der; (void)der_len; (void)out; (void)out_cap; (void)out_len;
    return -1;
}

int sw_crypto_rsa_public_size(const uint8_t *spki, size_t spki_len)
{
    (void)spki; (void)spki_len;
    return -1;
}

int sw_crypto_hmac_sha1(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t msg_len,
                        uint8_t out[SW_HMAC_SHA1_LEN])
{
    (void)key; (void)key_len; (void)msg; (void)msg_len; (void)out;
    return -1;
}

int sw_crypto_aes128_cbc_encrypt(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in, size_t len,
                                 uint8_t *out)
{
    (void)key; (void)iv; (void)in; (void)len; (void)out;
    return -1;
}

int sw_crypto_aes128_cbc_decrypt(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in, size_t len,
                                 uint8_t *out)
{
    (void)key; (void)iv; (void)in; (void)len; (void)out;
    return -1;
}
