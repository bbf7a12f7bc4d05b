/* sparkwire libkeyring: the session cipher, AES-128-CBC in length-prefixed frames (docs/protocol.md 3). */
#ifndef KEYRING_CIPHER_H
#define KEYRING_CIPHER_H

#include <stdbool.h>
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One direction of one connection. IV rule: the IV of a frame is the first ciphertext block (C1) of the
 * previous frame in the same direction; the first frame uses M[16..31]. One EVP context, reused. */
typedef struct kr_cipher kr_cipher;

kr_cipher *kr_cipher_new(const uint8_t key[16], const uint8_t iv[16]);
void kr_cipher_free(kr_cipher *c);
/* Bytes it holds (the thread's shared OpenSSL context is not counted: one serves every cipher). */
size_t kr_cipher_memory(const kr_cipher *c);
/* A frame of this direction was lost (gap, or the capture began mid-session): the next frame's first
 * block cannot be decrypted; later ones can. */
void kr_cipher_lose_sync(kr_cipher *c);
bool kr_cipher_in_sync(const kr_cipher *c);

/* A direction's cipher before its session key is known: it follows the IV rule over the frames that go
 * by (kr_cipher_pass) and decrypts nothing until kr_cipher_set_key. */
kr_cipher *kr_cipher_new_pending(void);
bool kr_cipher_keyed(const kr_cipher *c);
/* Keys it: the next frame's IV is C1 of the last frame that went by, or first_iv (M[16..31]) when none
 * did; when a frame was lost the next frame loses its first block. */
void kr_cipher_set_key(kr_cipher *c, const uint8_t key[16], const uint8_t first_iv[16]);
/* A frame of len bytes (len >= 16) went by without being decrypted here: its C1 is the next IV. */
void kr_cipher_pass(kr_cipher *c, const uint8_t *ct, size_t len);

/* Where a cipher stands in its IV chain: what a frame read from one copy of its bytes needs to be read
 * again from another (kr_cipher_save before the frame, kr_cipher_restore to go back there). */
typedef struct kr_cipher_state {
    uint8_t iv[16];
    bool in_sync, passed;
} kr_cipher_state;
void kr_cipher_save(const kr_cipher *c, kr_cipher_state *s);
void kr_cipher_restore(kr_cipher *c, const kr_cipher_state *s);

typedef enum kr_dec_result {
    KR_DEC_OK = 0,
    KR_DEC_PARTIAL,       /* decrypted from the second block on: the first block was lost */
    KR_DEC_BAD_LENGTH,    /* ciphertext length not a multiple of 16, or 0 */
    KR_DEC_BAD_PADDING    /* PKCS#7 padding invalid: wrong key, or not this direction's stream */
} kr_dec_result;

/* Decrypts one frame body (without the 2-byte length prefix). pt must hold len bytes. On OK, *pt_len is
 * the CoAP message length (padding removed) and *pt_skip is 0. On PARTIAL, pt holds message bytes from
 * offset 16 on (pt[0] is message byte 16), *pt_skip = 16, *pt_len the number of those bytes (0 for a
 * one-block frame, which gives nothing). The IV advances on every frame of valid
 * length, whatever the padding says. pt must not overlap ct. */
kr_dec_result kr_cipher_decrypt(kr_cipher *c, const uint8_t *ct, size_t len, uint8_t *pt, size_t *pt_len,
                                size_t *pt_skip);

/* Decrypts the next frame with another key, at this cipher's place in the IV chain, without changing the
 * cipher (to find which of several session keys fits). */
kr_dec_result kr_cipher_trial(const kr_cipher *c, const uint8_t key[16], const uint8_t first_iv[16],
                              const uint8_t *ct, size_t len, uint8_t *pt, size_t *pt_len, size_t *pt_skip);

/* One AES-128 key set up once, for quick tests of many keys against one frame (the keyfile's session
 * lines, when no device id tells which one applies). */
typedef struct kr_probe_key kr_probe_key;
kr_probe_key *kr_probe_key_new(const uint8_t key[16]);
void kr_probe_key_free(kr_probe_key *k);
/* kr_cipher_trial with k's key, decrypted through k's context (no context is keyed for the trial). */
kr_dec_result kr_cipher_trial_probe(const kr_cipher *c, const kr_probe_key *k, const uint8_t first_iv[16],
                                    const uint8_t *ct, size_t len, uint8_t *pt, size_t *pt_len, size_t *pt_skip);
/* Lets c decrypt with k's context when k holds c's key (the session line that gave it): no context is
 * keyed again for c's frames. k must outlive c's use of it; kr_cipher_set_key ends the sharing. */
void kr_cipher_share(kr_cipher *c, const kr_probe_key *k);

/* A quick test, necessary for kr_cipher_trial to succeed with k: whether the frame's last block ends in
 * valid PKCS#7 padding at this cipher's place in the IV chain (first_iv when no frame went by yet). When
 * the IV of the first block is known, that block's plaintext goes to first[16] and *have_first is set.
 * At most two block decryptions; false for a length that cannot decrypt, or for a one-block frame whose
 * IV was lost (it cannot tell). */
bool kr_cipher_probe(const kr_cipher *c, const kr_probe_key *k, const uint8_t first_iv[16], const uint8_t *ct,
                     size_t len, uint8_t first[16], bool *have_first);

/* Encrypts one message into a whole frame (2-byte length + ciphertext) with PKCS#7 padding. Returns the
 * frame length, or -1 when out_cap is too small. */
int kr_cipher_encrypt(kr_cipher *c, const uint8_t *pt, size_t len, uint8_t *out, size_t out_cap);

#ifdef __cplusplus
}
#endif
#endif
