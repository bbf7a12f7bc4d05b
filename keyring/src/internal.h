/* sparkwire libkeyring: helpers shared by the library's own files (not part of the API). */
#ifndef KEYRING_INTERNAL_H
#define KEYRING_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "keyring/common.h"
#include "keyring/key.h"

/* Calls fn(arg) once when the calling thread ends (thread_end.c), for what the library keeps per thread.
 * False when that cannot be arranged (the caller then keeps nothing it would have to give back). */
bool kr_at_thread_end(void (*fn)(void *), void *arg);
/* Algorithms fetched once for the process (fetched.c): the explicit form, or the implicit one when the
 * fetch fails. */
const EVP_CIPHER *kr_fetched_aes_128_ecb(void);
const EVP_MD *kr_fetched_sha256(void);
/* What each file keeps for the process, given back by kr_library_end (each is made again on need). */
void kr_fetched_end(void);     /* fetched.c: the algorithms above */
void kr_key_decode_end(void);  /* key_decode.c: the decoders of a key's first use */
void kr_msg_end(void);         /* tracker/message.c: libcoap */

/* snprintf into a fixed buffer, cutting long text short (no truncation warning at call sites). */
void kr_sfmt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reads a whole file of at most max bytes into a malloc'd buffer (*len bytes; one spare byte after them).
 * what names the file in errors ("the keyfile"; NULL for none): "PATH: cannot open the keyfile: ...".
 * too_big is the reason given for a larger file: "PATH: <too_big>". NULL + err on failure. */
uint8_t *kr_read_file(const char *path, size_t max, const char *what, const char *too_big, size_t *len,
                      kr_err *err);
/* The same into *buf (capacity *cap, grown with realloc and kept by the caller for the next file; free it
 * when done). 0, or -1 + err. */
int kr_read_file_into(const char *path, size_t max, const char *what, const char *too_big, uint8_t **buf,
                      size_t *cap, size_t *len, kr_err *err);

/* A DER tag-length header: only to tell key forms apart and measure objects (OpenSSL does the parsing). */
typedef struct kr_tlv {
    uint8_t tag;
    size_t hdr;     /* tag + length bytes */
    size_t len;     /* content length */
} kr_tlv;

/* Reads the TLV header at buf: 0 ok; -1 not DER here; -2 the length runs past avail (truncated). */
int kr_tlv_read(const uint8_t *buf, size_t avail, kr_tlv *t);

/* What loading learns of a key from the numbers OpenSSL's decoder read. */
typedef struct kr_key_facts {
    const char *broken;         /* the arithmetic checks' reason (static text), or NULL */
    int bits;
    unsigned long exponent;     /* 0 when it does not fit */
    uint8_t spki_sha256[32];
    bool spki_ok;
} kr_key_facts;

/* Decoder contexts kept across the keys of one load, one per DER form (PKCS#1 and PKCS#8 private, PKCS#1
 * and SPKI public), set up on first use: setting one up costs about 20 decodes. Zero-initialise, keep at one
 * address while in use (OpenSSL holds pointers into it), end with kr_key_loader_done. Not shared between
 * threads. */
#define KR_KEY_LOADER_FORMS 4
typedef struct kr_key_loader {
    OSSL_DECODER_CTX *fctx[KR_KEY_LOADER_FORMS];   /* the numbers only (loading) */
    OSSL_DECODER_CTX *dctx[KR_KEY_LOADER_FORMS];   /* an EVP_PKEY (first use) */
    EVP_PKEY *out[KR_KEY_LOADER_FORMS];
    BN_CTX *bn;     /* for the arithmetic checks: its numbers are reused from key to key */
    kr_key_facts facts;
    bool facts_done;
    uint8_t *buf;   /* the file read last: one buffer for all (no allocation of a file's size per key) */
    size_t cap;
} kr_key_loader;
void kr_key_loader_done(kr_key_loader *ld);
/* kr_key_load_file and kr_key_load_mem with the loader's decoder contexts. */
kr_key *kr_key_loader_file(kr_key_loader *ld, const char *path, kr_err *err);
kr_key *kr_key_loader_mem(kr_key_loader *ld, const uint8_t *buf, size_t len, const char *name, kr_err *err);
/* OpenSSL decodes der of form i (0 PKCS#1 private, 1 PKCS#8 private, 2 PKCS#1 public, 3 SPKI) with the RSA
 * decoder of that structure alone and gives its numbers, without an EVP_PKEY: 0 and *facts, or -1 when
 * OpenSSL cannot read the bytes. */
int kr_key_decode_facts(kr_key_loader *ld, size_t i, const uint8_t *der, size_t len, kr_key_facts *facts);
/* An EVP_PKEY of der in form i, or NULL. */
EVP_PKEY *kr_key_decode_pkey(kr_key_loader *ld, size_t i, const uint8_t *der, size_t len);
/* The SubjectPublicKeyInfo DER of n and e (algorithm rsaEncryption, NULL parameters), the bytes i2d_PUBKEY
 * gives for an RSA key, by OpenSSL's ASN.1 encoder. Length and *out (OPENSSL_free it), or -1. */
int kr_spki_encode(const BIGNUM *n, const BIGNUM *e, unsigned char **out);
/* bits, exponent and fingerprint of n and e into f (not broken). 0, or -1 when they cannot be encoded. */
int kr_key_facts_from(kr_key_facts *f, const BIGNUM *n, const BIGNUM *e);

/* Reads an RSA key's numbers (one get_params, no allocation per key) and returns the first broken fact about
 * them found by arithmetic alone (static text: exponent 1 or even, even modulus, d = 0 or 1, n != p*q, CRT
 * values that do not fit), or NULL. *n and *e receive the modulus and the public exponent (NULL when the key
 * has none). The numbers live in ctx: call between BN_CTX_start(ctx) and BN_CTX_end(ctx). The primality of
 * p and q is not looked at. */
const char *kr_rsa_inspect(const EVP_PKEY *pkey, bool is_private, BN_CTX *ctx, BIGNUM **n, BIGNUM **e);
/* The same from the numbers as OpenSSL exports them (OSSL_PKEY_PARAM_RSA_*). */
const char *kr_rsa_inspect_params(const OSSL_PARAM *params, BN_CTX *ctx, BIGNUM **n, BIGNUM **e);

/* True when all n bytes are 0xFF (erased flash). */
bool kr_all_ff(const uint8_t *p, size_t n);

#endif
