/* sparkwire libkeyring: helpers shared by the library's own files (not part of the API). */
#ifndef KEYRING_INTERNAL_H
#define KEYRING_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "keyring/common.h"
#include "keyring/key.h"

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

/* Decoder contexts kept across the keys of one load (one per DER form: PKCS#1 and PKCS#8 private, PKCS#1
 * and SPKI public), set up on first use: setting one up costs about 20 decodes. Zero-initialise, keep at one
 * address while in use (OpenSSL holds a pointer into it), end with kr_key_loader_done. Not shared between
 * threads. */
#define KR_KEY_LOADER_FORMS 4
typedef struct kr_key_loader {
    OSSL_DECODER_CTX *dctx[KR_KEY_LOADER_FORMS];
    EVP_PKEY *out[KR_KEY_LOADER_FORMS];
    BN_CTX *bn;     /* for the arithmetic checks: its numbers are reused from key to key */
    uint8_t *buf;   /* the file read last: one buffer for all (no allocation of a file's size per key) */
    size_t cap;
} kr_key_loader;
void kr_key_loader_done(kr_key_loader *ld);
/* kr_key_load_file and kr_key_load_mem with the loader's decoder contexts. */
kr_key *kr_key_loader_file(kr_key_loader *ld, const char *path, kr_err *err);
kr_key *kr_key_loader_mem(kr_key_loader *ld, const uint8_t *buf, size_t len, const char *name, kr_err *err);

/* Reads an RSA key's numbers (one get_params, no allocation per key) and returns the first broken fact about
 * them found by arithmetic alone (static text: exponent 1 or even, even modulus, d = 0 or 1, n != p*q, CRT
 * values that do not fit), or NULL. *n and *e receive the modulus and the public exponent (NULL when the key
 * has none). The numbers live in ctx: call between BN_CTX_start(ctx) and BN_CTX_end(ctx). The primality of
 * p and q is not looked at. */
const char *kr_rsa_inspect(const EVP_PKEY *pkey, bool is_private, BN_CTX *ctx, BIGNUM **n, BIGNUM **e);

/* True when all n bytes are 0xFF (erased flash). */
bool kr_all_ff(const uint8_t *p, size_t n);

#endif
