/* sparkwire firmware: the session frame layer (docs/protocol.md 3): 2-byte length, AES-128-CBC with PKCS#7,
 * and the IV rule of 3.2 (the next IV of a direction is the first ciphertext block of its last frame).
 * Shared by the device core and the lab cloud; each side keeps one sw_cipher per connection. */
#ifndef SW_FRAME_H
#define SW_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define SW_SESSION_LEN 40

typedef struct sw_cipher {
    uint8_t key[16];
    uint8_t send_iv[16];
    uint8_t recv_iv[16];
} sw_cipher;

/* Installs K = M[0..15] and both IVs = M[16..31]. */
void sw_cipher_init(sw_cipher *c, const uint8_t material[SW_SESSION_LEN]);

/* Pads and encrypts msg into out as len[2] || ciphertext; advances the send IV. Returns the frame length
 * on the wire, or -1 (buffer too small, crypto failure). */
int sw_frame_seal(sw_cipher *c, const uint8_t *msg, size_t msg_len, uint8_t *out, size_t out_cap);

/* Decrypts one frame body (ciphertext without the 2-byte length) into out and removes the padding;
 * advances the receive IV to C1 whatever the outcome (a receiver does so too). Returns the plaintext
 * length, or -1 (length not a positive multiple of 16, bad padding, buffer too small). */
int sw_frame_open(sw_cipher *c, const uint8_t *ct, size_t ct_len, uint8_t *out, size_t out_cap);

#endif
