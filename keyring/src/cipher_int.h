/* sparkwire libkeyring: the session cipher's state, for holders that keep it inside their own state (the
 * tracker's directions) instead of as an allocation of its own. Everyone else uses keyring/cipher.h only. */
#ifndef KEYRING_CIPHER_INT_H
#define KEYRING_CIPHER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include "keyring/cipher.h"

/* What a frame reads first (the IV chain, the shared key's context, the flags), then the key. */
struct kr_cipher {
    uint8_t iv[16];
    void *own;             /* the EVP context of a probe key keyed for this key already (kr_cipher_share), or
                              NULL: read for every frame, so held here, not behind the probe key */
    bool in_sync;
    bool keyed;            /* a session key is set (kr_cipher_new, kr_cipher_set_key) */
    bool passed;           /* a frame went by (decrypted, passed or lost): iv is no longer the first IV */
    uint8_t key[16];
};

/* Asks the processor for the first lines of the context c decrypts its next frame with (none when it has
 * no context of its own): a hint given when a packet of c's direction comes, before its frame is read. */
static inline void kr_cipher_prefetch(const kr_cipher *c)
{
    if (c->own) {
        __builtin_prefetch(c->own);
        __builtin_prefetch((const char *)c->own + 64);
        __builtin_prefetch((const char *)c->own + 128);
    }
}

/* c becomes what kr_cipher_new_pending returns, in place; kr_cipher_clear ends it (never kr_cipher_free). */
void kr_cipher_init_pending(kr_cipher *c);
void kr_cipher_clear(kr_cipher *c);

#endif
