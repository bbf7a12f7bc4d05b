/* sparkwire libkeyring: the handshake's crypto as pure functions on bytes (docs/protocol.md 2.2-2.4). */
#ifndef KEYRING_HANDSHAKE_H
#define KEYRING_HANDSHAKE_H

#include <stdbool.h>
#include "common.h"
#include "key.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kr_hs_result {
    KR_HS_OK = 0,
    KR_HS_NO_KEY,        /* key missing, not RSA, or public where a private key is needed */
    KR_HS_DECRYPT,       /* RSA PKCS#1 v1.5 padding check failed: the block was not made for this key */
    KR_HS_LENGTH,        /* decrypts, but the plaintext length is wrong (id block < 52; session != 40) */
    KR_HS_NONCE,         /* id block decrypts, but bytes 0..39 differ from the nonce sent */
    KR_HS_SIG_FORMAT,    /* signature does not recover to 00 01 FF..FF 00 + 20 bytes with this server key:
                            the session block was not signed by this server */
    KR_HS_SIG_MISMATCH   /* recovers to the right structure but the 20 bytes differ from HMAC(M, E) */
} kr_hs_result;

const char *kr_hs_result_str(kr_hs_result r);   /* short words, e.g. "nonce mismatch" */

/* What the device put in its id block (H2). */
typedef struct kr_idblock {
    size_t plain_len;                      /* 52 (first Core firmware) or 214 (later firmware); may be other */
    uint8_t nonce[KR_NONCE_LEN];           /* the echo */
    uint8_t device_id[KR_DEVICE_ID_LEN];
    char device_id_hex[KR_DEVICE_ID_HEX_LEN + 1];
    bool has_public_key;                   /* plain_len >= 214 */
    uint8_t public_key[KR_DEVICE_SPKI_LEN];/* the device's own public key as it offered it (SPKI DER) */
} kr_idblock;

/* Opens the 256-byte id block with the server private key. nonce may be NULL (not captured); then the
 * echo is not checked. On KR_HS_NONCE, out is filled (id readable, echo differs). */
kr_hs_result kr_hs_open_idblock(const kr_key *server_private, const uint8_t block[KR_IDBLOCK_LEN],
                                const uint8_t *nonce, kr_idblock *out);

/* Opens E (first 128 bytes of the session block) with a device private key: the 40-byte material M. */
kr_hs_result kr_hs_open_session(const kr_key *device_private, const uint8_t e[KR_SESSION_E_LEN],
                                uint8_t m[KR_SESSION_LEN]);

/* HMAC-SHA1 keyed with all 40 bytes of M over the 128 bytes of E. */
int kr_hs_hmac(const uint8_t m[KR_SESSION_LEN], const uint8_t e[KR_SESSION_E_LEN], uint8_t out[KR_HMAC_LEN]);

/* Verifies SIG (last 256 bytes of the session block) with a server public key: PKCS#1 v1.5 type 1 over
 * the raw 20 bytes, no DigestInfo. hmac may be NULL: then only the structure is checked (proves which
 * server signed without the device key). recovered (may be NULL) receives the 20 signed bytes. */
kr_hs_result kr_hs_verify_signature(const kr_key *server_public, const uint8_t sig[KR_SIGNATURE_LEN],
                                    const uint8_t *hmac, uint8_t *recovered);

/* What both sides derive from M (docs/protocol.md 2.4). */
typedef struct kr_session {
    uint8_t material[KR_SESSION_LEN];
    uint8_t key[16];          /* M[0..15] */
    uint8_t iv[16];           /* M[16..31], the first IV of both directions */
    uint8_t salt[8];          /* M[32..39] */
    uint16_t msgid_counter;   /* M[32]*256 + M[33]: the device Hello carries counter + 1 */
    uint16_t msgid_counter_le;/* M[33]*256 + M[32]: the same for later Photon firmware (G3) */
    uint8_t token_counter;    /* M[34]: the device's first token is counter + 1 */
} kr_session;

void kr_session_from_material(const uint8_t m[KR_SESSION_LEN], kr_session *s);

/* The other side of each step, for tests, benchmarks and capture generators. */
int kr_hs_make_idblock(const kr_key *server_public, const uint8_t nonce[KR_NONCE_LEN],
                       const uint8_t id[KR_DEVICE_ID_LEN], const uint8_t *device_spki /* NULL: 52 bytes */,
                       uint8_t out[KR_IDBLOCK_LEN], kr_err *err);
int kr_hs_make_session_block(const kr_key *device_public, const kr_key *server_private,
                             const uint8_t m[KR_SESSION_LEN], uint8_t out[KR_SESSIONBLOCK_LEN], kr_err *err);

#ifdef __cplusplus
}
#endif
#endif
