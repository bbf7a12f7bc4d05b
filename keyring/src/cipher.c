/* sparkwire libkeyring: one direction of the session cipher (docs/protocol.md 3.1-3.3).
 *
 * AES-128-CBC inside each frame; the IV of a frame is the first ciphertext block of the previous frame
 * of the same direction. A cipher holds its key and IV only: one EVP context per thread serves every
 * cipher (an open connection does not carry OpenSSL's context and key schedule; the context goes when the
 * thread ends). While the same cipher
 * keeps using it, decryption chains on without setting it up again; another cipher keys it again.
 */
#include "keyring/cipher.h"

#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "internal.h"
#include "cipher_int.h"

/* The thread's context, and the cipher and mode (1 encrypt, 0 decrypt, -1 none yet) it is keyed for; in
 * decrypt mode, chain is the block the context chains its next input to (its IV now). */
static _Thread_local struct {
    EVP_CIPHER_CTX *ctx;
    const struct kr_cipher *owner;
    int mode;
    uint8_t chain[16];
} shared = { NULL, NULL, -1, {0} };

kr_cipher *kr_cipher_new(const uint8_t key[16], const uint8_t iv[16])
{
    kr_cipher *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    memcpy(c->key, key, 16);
    memcpy(c->iv, iv, 16);
    c->in_sync = true;
    c->keyed = true;
    return c;
}

kr_cipher *kr_cipher_new_pending(void)
{
    kr_cipher *c = malloc(sizeof *c);
    if (c)
        kr_cipher_init_pending(c);
    return c;
}

void kr_cipher_init_pending(kr_cipher *c)
{
    memset(c, 0, sizeof *c);
    c->in_sync = true;
}

bool kr_cipher_keyed(const kr_cipher *c)
{
    return c && c->keyed;
}

void kr_cipher_set_key(kr_cipher *c, const uint8_t key[16], const uint8_t first_iv[16])
{
    if (!c)
        return;
    memcpy(c->key, key, 16);
    if (!c->passed)
        memcpy(c->iv, first_iv, 16);
    c->keyed = true;
    c->own = NULL;
    if (shared.owner == c)
        shared.owner = NULL;   /* the shared context holds the old key */
}

void kr_cipher_pass(kr_cipher *c, const uint8_t *ct, size_t len)
{
    if (!c || len < 16)
        return;
    memcpy(c->iv, ct, 16);
    c->in_sync = true;
    c->passed = true;
}

void kr_cipher_clear(kr_cipher *c)
{
    if (shared.owner == c)
        shared.owner = NULL;   /* a later cipher at this address must key the context again */
    OPENSSL_cleanse(c, sizeof *c);
}

void kr_cipher_free(kr_cipher *c)
{
    if (!c)
        return;
    kr_cipher_clear(c);
    free(c);
}

size_t kr_cipher_memory(const kr_cipher *c)
{
    return c ? sizeof *c : 0;
}

void kr_cipher_lose_sync(kr_cipher *c)
{
    if (c) {
        c->in_sync = false;
        c->passed = true;
    }
}

bool kr_cipher_in_sync(const kr_cipher *c)
{
    return c && c->in_sync;
}

void kr_cipher_save(const kr_cipher *c, kr_cipher_state *s)
{
    memset(s, 0, sizeof *s);
    if (!c)
        return;
    memcpy(s->iv, c->iv, 16);
    s->in_sync = c->in_sync;
    s->passed = c->passed;
}

void kr_cipher_restore(kr_cipher *c, const kr_cipher_state *s)
{
    if (!c)
        return;
    memcpy(c->iv, s->iv, 16);
    c->in_sync = s->in_sync;
    c->passed = s->passed;
}

/* The thread ends: its context goes with it. */
static void shared_free(void *p)
{
    (void)p;
    EVP_CIPHER_CTX_free(shared.ctx);
    shared.ctx = NULL;
    shared.owner = NULL;
    shared.mode = -1;
}

/* Sets the thread's context up for c in mode with this IV, keying it again only when another cipher or
 * another mode used it last. Returns the context, NULL on failure. */
static EVP_CIPHER_CTX *cipher_start(const kr_cipher *c, int mode, const uint8_t iv[16])
{
    if (!shared.ctx) {
        if (!(shared.ctx = EVP_CIPHER_CTX_new()))
            return NULL;
        kr_at_thread_end(shared_free, NULL);   /* when it cannot be arranged, the context stays to the end */
    }
    const uint8_t *key = shared.owner != c || shared.mode != mode ? c->key : NULL;
    const EVP_CIPHER *type = shared.mode != mode ? EVP_aes_128_cbc() : NULL;
    if (!EVP_CipherInit_ex(shared.ctx, type, NULL, key, iv, mode)) {
        shared.owner = NULL;
        shared.mode = -1;
        return NULL;
    }
    shared.owner = c;
    /* PKCS#7 is checked by hand when decrypting: padding is set with the mode (a new key keeps it) */
    bool pad = !type || EVP_CIPHER_CTX_set_padding(shared.ctx, mode);
    shared.mode = pad ? mode : -1;
    return pad ? shared.ctx : NULL;
}

/* The PKCS#7 padding at the end of the len plaintext bytes at pt: its length (1 to 16), 0 when it is not valid.
 * On little-endian hosts the last 16 bytes are checked as two words (this runs for every frame). */
static size_t pkcs7_pad(const uint8_t *pt, size_t len)
{
    uint8_t pad = len ? pt[len - 1] : 0;
    if (pad == 0 || pad > 16 || pad > len)
        return 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (len >= 16) {
        uint64_t lo, hi, want = 0x0101010101010101ull * pad;
        memcpy(&lo, pt + len - 16, 8);
        memcpy(&hi, pt + len - 8, 8);
        /* the last pad bytes: the top min(pad, 8) bytes of hi, and the top pad - 8 bytes of lo */
        uint64_t mhi = pad >= 8 ? ~0ull : ~0ull << (8 * (8 - pad));
        uint64_t mlo = pad > 8 ? ~0ull << (8 * (16 - pad)) : 0;
        return (((lo ^ want) & mlo) | ((hi ^ want) & mhi)) ? 0 : pad;
    }
#endif
    for (size_t i = len - pad; i < len; i++)
        if (pt[i] != pad)
            return 0;
    return pad;
}

/* out ^= in over n bytes (a multiple of 8), a word at a time */
static void xor8(uint8_t *out, const uint8_t *in, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t a, b;
        memcpy(&a, out + i, 8);
        memcpy(&b, in + i, 8);
        a ^= b;
        memcpy(out + i, &a, 8);
    }
}

/* CBC decryption of len bytes (whole blocks) through the key's ECB context, keyed once per key: every block at
 * once (EVP_Cipher, without the bookkeeping of EVP_DecryptUpdate), then each XOR the ciphertext block before
 * it (iv for the first). out must not be ct. */
static bool key_decrypt(EVP_CIPHER_CTX *ctx, const uint8_t *iv, const uint8_t *ct, size_t len, uint8_t *out);

kr_dec_result kr_cipher_decrypt(kr_cipher *c, const uint8_t *ct, size_t len, uint8_t *pt, size_t *pt_len,
                                size_t *pt_skip)
{
    *pt_len = 0;
    *pt_skip = 0;
    if (!c || !c->keyed || len == 0 || len % 16 != 0 || len > KR_FRAME_MAX)
        return KR_DEC_BAD_LENGTH;

    bool partial = !c->in_sync;
    const uint8_t *iv = c->iv;
    const uint8_t *body = ct;
    size_t blen = len;
    if (partial) {
        /* The IV is C1 of a frame not seen: block 1 is lost; each later block uses the block before it. */
        iv = ct;
        body = ct + 16;
        blen = len - 16;
        *pt_skip = 16;
    }
    uint8_t next_iv[16];
    memcpy(next_iv, ct, 16);

    int ok = 1;
    if (blen > 0 && c->own && pt != ct) {
        ok = key_decrypt(c->own, iv, body, blen, pt);   /* the probe key's context, shared */
    } else if (blen > 0) {
        /* While this cipher keeps the thread's context, the context chains on from the last block it
         * decrypted; the frame's IV is another block, so the first plaintext block is corrected by
         * (IV XOR that block) instead of setting the context up again for every frame. */
        EVP_CIPHER_CTX *ctx = shared.owner == c && shared.mode == 0 ? shared.ctx : NULL;
        if (!ctx && (ctx = cipher_start(c, 0, iv)) != NULL)
            memcpy(shared.chain, iv, 16);
        ok = ctx && EVP_Cipher(ctx, pt, body, (unsigned int)blen) > 0;   /* whole blocks: no bookkeeping */
        if (ok) {
            xor8(pt, iv, 16);
            xor8(pt, shared.chain, 16);
        }
        memcpy(shared.chain, body + blen - 16, 16);
        if (!ok)
            shared.owner = NULL;    /* set up again at the next frame */
    }
    memcpy(c->iv, next_iv, 16);
    c->in_sync = true;
    c->passed = true;
    if (!ok)
        return KR_DEC_BAD_PADDING;

    if (partial && blen == 0)
        return KR_DEC_PARTIAL;      /* a one-block frame gives nothing */

    size_t pad = pkcs7_pad(pt, blen);
    if (pad == 0)
        return KR_DEC_BAD_PADDING;
    *pt_len = blen - pad;
    return partial ? KR_DEC_PARTIAL : KR_DEC_OK;
}

/* The next frame decrypted with key (through own, an ECB context keyed with it, when given) at c's place in the
 * IV chain, c unchanged. */
static kr_dec_result trial(const kr_cipher *c, const uint8_t key[16], void *own, const uint8_t first_iv[16],
                           const uint8_t *ct, size_t len, uint8_t *pt, size_t *pt_len, size_t *pt_skip)
{
    *pt_len = 0;
    *pt_skip = 0;
    if (!c)
        return KR_DEC_BAD_LENGTH;
    kr_cipher t;
    kr_cipher_init_pending(&t);
    memcpy(t.key, key, 16);
    memcpy(t.iv, c->passed ? c->iv : first_iv, 16);
    t.keyed = true;
    t.in_sync = c->in_sync;
    t.own = own;
    kr_dec_result r = kr_cipher_decrypt(&t, ct, len, pt, pt_len, pt_skip);
    kr_cipher_clear(&t);
    return r;
}

kr_dec_result kr_cipher_trial(const kr_cipher *c, const uint8_t key[16], const uint8_t first_iv[16],
                              const uint8_t *ct, size_t len, uint8_t *pt, size_t *pt_len, size_t *pt_skip)
{
    /* c's own context serves when the key is c's */
    void *own = c && c->own && CRYPTO_memcmp(c->key, key, 16) == 0 ? c->own : NULL;
    return trial(c, key, own, first_iv, ct, len, pt, pt_len, pt_skip);
}

struct kr_probe_key {
    EVP_CIPHER_CTX *ctx;   /* AES-128-ECB, decrypt, no padding: one block at a time */
    uint8_t key[16];
};

kr_dec_result kr_cipher_trial_probe(const kr_cipher *c, const kr_probe_key *k, const uint8_t first_iv[16],
                                    const uint8_t *ct, size_t len, uint8_t *pt, size_t *pt_len, size_t *pt_skip)
{
    if (!k) {
        *pt_len = *pt_skip = 0;
        return KR_DEC_BAD_LENGTH;
    }
    return trial(c, k->key, k->ctx, first_iv, ct, len, pt, pt_len, pt_skip);
}

void kr_cipher_share(kr_cipher *c, const kr_probe_key *k)
{
    if (c && k && c->keyed && CRYPTO_memcmp(c->key, k->key, 16) == 0)
        c->own = k->ctx;
}

static bool key_decrypt(EVP_CIPHER_CTX *ctx, const uint8_t *iv, const uint8_t *ct, size_t len, uint8_t *out)
{
    if (EVP_Cipher(ctx, out, ct, (unsigned int)len) <= 0)
        return false;
    /* eight bytes at a time: out[0..16) ^= iv, out[16..len) ^= ct[0..len-16) */
    xor8(out, iv, 16);
    xor8(out + 16, ct, len - 16);
    return true;
}

kr_probe_key *kr_probe_key_new(const uint8_t key[16])
{
    kr_probe_key *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    memcpy(k->key, key, 16);
    k->ctx = EVP_CIPHER_CTX_new();
    if (!k->ctx || !EVP_DecryptInit_ex(k->ctx, kr_fetched_aes_128_ecb(), NULL, key, NULL) ||
        !EVP_CIPHER_CTX_set_padding(k->ctx, 0)) {
        kr_probe_key_free(k);
        return NULL;
    }
    return k;
}

void kr_probe_key_free(kr_probe_key *k)
{
    if (!k)
        return;
    EVP_CIPHER_CTX_free(k->ctx);
    OPENSSL_cleanse(k, sizeof *k);
    free(k);
}

bool kr_cipher_probe(const kr_cipher *c, const kr_probe_key *k, const uint8_t first_iv[16], const uint8_t *ct,
                     size_t len, uint8_t first[16], bool *have_first)
{
    *have_first = false;
    if (!c || !k || len == 0 || len % 16 != 0 || len > KR_FRAME_MAX || (!c->in_sync && len < 32))
        return false;
    const uint8_t *iv = c->passed ? c->iv : first_iv;
    uint8_t last[16];
    if (!key_decrypt(k->ctx, len >= 32 ? ct + len - 32 : iv, ct + len - 16, 16, last))
        return false;
    if (pkcs7_pad(last, 16) == 0)
        return false;
    if (c->in_sync) {
        if (len == 16)
            memcpy(first, last, 16);
        else if (!key_decrypt(k->ctx, iv, ct, 16, first))
            return false;
        *have_first = true;
    }
    return true;
}

int kr_cipher_encrypt(kr_cipher *c, const uint8_t *pt, size_t len, uint8_t *out, size_t out_cap)
{
    if (!c)
        return -1;
    size_t padded = (len / 16 + 1) * 16;
    if (padded > KR_FRAME_MAX || out_cap < padded + 2)
        return -1;
    int n1 = 0, n2 = 0;
    EVP_CIPHER_CTX *ctx = cipher_start(c, 1, c->iv);
    if (!ctx || !EVP_EncryptUpdate(ctx, out + 2, &n1, pt, (int)len) ||
        !EVP_EncryptFinal_ex(ctx, out + 2 + n1, &n2) || (size_t)(n1 + n2) != padded)
        return -1;
    out[0] = (uint8_t)(padded >> 8);
    out[1] = (uint8_t)(padded & 0xff);
    memcpy(c->iv, out + 2, 16);
    c->in_sync = true;
    return (int)(padded + 2);
}
