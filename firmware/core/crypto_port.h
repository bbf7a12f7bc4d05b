/* sparkwire firmware: the crypto port. The core calls only these functions; a port implements them
 * (firmware/port/openssl over OpenSSL EVP/PKEY, firmware/port/stub for builds without a crypto library).
 * Keys are passed as DER bytes, the way a device keeps them in flash:
 *   private keys: PKCS#1 RSAPrivateKey (PKCS#8 accepted by the OpenSSL port);
 *   public keys:  SubjectPublicKeyInfo.
 * Every function returns 0 on success and -1 on any failure (bad key, bad padding, short buffer). */
#ifndef SW_CRYPTO_PORT_H
#define SW_CRYPTO_PORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SW_HMAC_SHA1_LEN 20
#define SW_AES_BLOCK 16

/* RSA PKCS#1 v1.5 type 2 encryption with a public key (random non-zero padding). */
int sw_crypto_rsa_public_encrypt(const uint8_t *spki, size_t spki_len, const uint8_t *in, size_t in_len,
                                 uint8_t *out, size_t out_cap, size_t *out_len);
/* RSA PKCS#1 v1.5 type 2 decryption with a private key; any padding error fails. */
int sw_crypto_rsa_private_decrypt(const uint8_t *der, size_t der_len, const uint8_t *in, size_t in_len,
                                  uint8_t *out, size_t out_cap, size_t *out_len);
/* Private-key operation on the PKCS#1 v1.5 type 1 block 00 01 FF.. 00 || in (raw data, no DigestInfo). */
int sw_crypto_rsa_private_sign_raw(const uint8_t *der, size_t der_len, const uint8_t *in, size_t in_len,
                                   uint8_t *out, size_t out_cap, size_t *out_len);
/* Public-key operation on sig; the result must be a well-formed type 1 block, whose data part is returned. */
int sw_crypto_rsa_public_verify_recover(const uint8_t *spki, size_t spki_len, const uint8_t *sig,
                                        size_t sig_len, uint8_t *out, size_t out_cap, size_t *out_len);
/* The public half of a private key as SubjectPublicKeyInfo DER. */
int sw_crypto_rsa_public_from_private(const uint8_t *der, size_t der_len, uint8_t *out, size_t out_cap,
                                      size_t *out_len);
/* Modulus size in bytes of a public (spki) key; -1 when it does not parse. */
int sw_crypto_rsa_public_size(const uint8_t *spki, size_t spki_len);
int sw_crypto_hmac_sha1(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t msg_len,
                        uint8_t out[SW_HMAC_SHA1_LEN]);
/* AES-128-CBC over whole blocks, no padding (the core pads). len % 16 == 0; in and out may not overlap. */
int sw_crypto_aes128_cbc_encrypt(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in, size_t len,
                                 uint8_t *out);
int sw_crypto_aes128_cbc_decrypt(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in, size_t len,
                                 uint8_t *out);

#ifdef __cplusplus
}
#endif
#endif
