/* sparkwire libkeyring: loading and checking RSA keys as the devices and the cloud store them. */
#ifndef KEYRING_KEY_H
#define KEYRING_KEY_H

#include <stdbool.h>
#include <openssl/evp.h>
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the key was stored. */
typedef enum kr_key_encoding {
    KR_ENC_PKCS1_PRIVATE = 1, /* RSAPrivateKey ("BEGIN RSA PRIVATE KEY"): what the device flash wants */
    KR_ENC_PKCS8_PRIVATE,     /* PrivateKeyInfo ("BEGIN PRIVATE KEY"): OpenSSL 3 default, breaks devices */
    KR_ENC_PKCS1_PUBLIC,      /* RSAPublicKey ("BEGIN RSA PUBLIC KEY") */
    KR_ENC_SPKI_PUBLIC        /* SubjectPublicKeyInfo ("BEGIN PUBLIC KEY"): what the cloud and device want */
} kr_key_encoding;

/* What a key is meant to be used as; decides which device-readability checks apply. */
typedef enum kr_role {
    KR_ROLE_ANY = 0,
    KR_ROLE_DEVICE_PRIVATE,   /* RSA-1024 PKCS#1 DER laid out as docs/protocol.md 5.1 */
    KR_ROLE_DEVICE_PUBLIC,    /* RSA-1024 SPKI (what the cloud holds per device) */
    KR_ROLE_SERVER_PRIVATE,   /* RSA-2048 */
    KR_ROLE_SERVER_PUBLIC     /* RSA-2048 SPKI DER, 294 bytes, as the device reads it (5.3) */
} kr_role;

typedef struct kr_key {
    EVP_PKEY *pkey_made;      /* owned: the OpenSSL key once made; use kr_key_pkey(), which makes it from der on
                                 first use (loading checks the numbers without making one) */
    bool is_private;
    int bits;                 /* modulus size in bits */
    unsigned long exponent;   /* public exponent, 0 if it does not fit */
    kr_key_encoding encoding;
    bool pem;                 /* was PEM armoured text */
    uint8_t *der;             /* owned copy of the DER object as stored (without trailing bytes) */
    size_t der_len;
    size_t trailing_len;      /* bytes after the DER object in a DER file (flash slots carry these) */
    bool trailing_all_ff;     /* the trailing bytes are erased flash (0xFF) */
    bool trailing_address;    /* the trailing bytes are 0xFF up to offset 384 and a server address record
                                 (docs/protocol.md 5.4): a server-key slot or a spark-cli server key file */
    char trailing_address_text[96]; /* e.g. "device.spark.io port 5683" */
    uint8_t spki_sha256[32];  /* SHA-256 of the public half as SubjectPublicKeyInfo DER: the fingerprint */
    const char *numbers_broken; /* set when loaded: what the arithmetic checks found wrong (static text), or NULL;
                                   kr_key_numbers_broken gives it as a line */
    char source[512];         /* file path or a name given by the caller */
} kr_key;

/* The largest key loaded: bigger keys are refused by the loaders with one line (no Spark device or cloud
 * uses one, and checking one costs minutes). */
#define KR_KEY_MAX_BITS 8192

/* Loads an RSA key from DER or PEM, PKCS#1 or PKCS#8 private, PKCS#1 or SPKI public, sniffing the
 * content (the extension is ignored). Returns NULL and fills err on failure (not a key, truncated,
 * password protected, not RSA, larger than KR_KEY_MAX_BITS...). kr_key_load_file refuses a path that
 * is not a regular file (FIFO, device, folder) without blocking on it; a symlink to a key file is read. */
kr_key *kr_key_load_file(const char *path, kr_err *err);
kr_key *kr_key_load_mem(const uint8_t *buf, size_t len, const char *name, kr_err *err);
/* The key as an OpenSSL RSA key (owned by key), made from the checked bytes on first use; NULL without
 * memory. Safe to call from several threads. */
EVP_PKEY *kr_key_pkey(const kr_key *key);
/* Wraps a public or private EVP_PKEY (takes ownership); der fields describe its SPKI/PKCS#1 form. */
kr_key *kr_key_from_pkey(EVP_PKEY *pkey, const char *name, kr_err *err);
void kr_key_free(kr_key *key);

/* True when both keys share modulus and exponent (a private key and its public half). */
bool kr_key_same_public(const kr_key *a, const kr_key *b);

/* The public half as SubjectPublicKeyInfo DER. out must hold der_cap bytes. Returns length or -1. */
int kr_key_public_spki(const kr_key *key, uint8_t *out, size_t out_cap);

/* SHA-256 fingerprint as 64 lower-case hex digits into out[65]. */
char *kr_key_fingerprint(const kr_key *key, char out[65]);

/* SHA-256 of the public Particle cloud key's 294-byte SPKI DER (docs/protocol.md 5.3). */
#define KR_PARTICLE_CLOUD_FINGERPRINT "aa8aba3c973ed4b668999047a09597948f36eefde525352e705fe8ef98c1677e"

/* True when the key's fingerprint equals 64 hex digits (either case). */
bool kr_key_has_fingerprint(const kr_key *key, const char *sha256_hex);

/* True for the public Particle cloud key: kr_key_has_fingerprint(key, KR_PARTICLE_CLOUD_FINGERPRINT). */
bool kr_key_is_particle_cloud(const kr_key *key);

/* One line, either way, with the fingerprint: "the published Particle cloud key (fingerprint ...): ..." or
 * "not the published Particle cloud key (fingerprint ..., Particle's is ...): ...". Returns out. */
char *kr_key_particle_words(const kr_key *key, char *out, size_t cap);

/* Human words for the encoding, e.g. "PKCS#1 RSAPrivateKey DER". */
const char *kr_key_encoding_str(const kr_key *key);

/* A finding about a key. */
#define KR_NOTE_TEXT_LEN 384
#define KR_NOTE_FIX_LEN 1280
typedef enum kr_note_level { KR_NOTE_INFO = 0, KR_NOTE_WARNING, KR_NOTE_PROBLEM } kr_note_level;
typedef struct kr_note {
    kr_note_level level;
    char text[KR_NOTE_TEXT_LEN];   /* what is wrong and what it causes, e.g. "PKCS#8 wrapped: the device misreads it and
                         fails every handshake with a decryption error (orange blink)" */
    char fix[KR_NOTE_FIX_LEN];   /* the command(s) that fix it, or "" */
    bool storage;     /* the note is about how the bytes are stored for the device or the cloud (PEM text,
                         PKCS#8 wrapping, PKCS#1 public form), not about the key itself: the sparkwire
                         tools read such a file fine */
} kr_note;

/* Checks a key for use in a role: size (device 1024, server 2048), exponent, device-readability of a
 * private key (PKCS#8 wrapping, integers shorter than nominal, layout of 5.1), server public key not in
 * 294-byte SPKI DER form, trailing bytes, the Particle cloud key. Writes at most max notes; returns the
 * number of notes written. The worst level is what decides `sparkkeys`' exit code. */
int kr_key_check(const kr_key *key, kr_role role, kr_note *notes, int max);
/* The same for the key of a known device: layout (a kr_flash_layout: KR_FLASH_CORE, KR_FLASH_DCT, or
 * KR_FLASH_AUTO for both) picks the dfu-util commands in the fixes, device_id (or NULL) the particle
 * commands'. Every server public key gets a note saying whether it is the published Particle cloud key,
 * with its fingerprint. */
int kr_key_check_for(const kr_key *key, kr_role role, int layout, const char *device_id, kr_note *notes, int max);

/* Words for a role: "device private key", "server public key"... */
const char *kr_role_str(kr_role role);
/* The role a key most likely plays, from its size and kind (1024 private -> device private...). */
kr_role kr_key_guess_role(const kr_key *key);

/* Checks PKCS#1 RSAPrivateKey DER bytes against the fixed layout devices read (docs/protocol.md 5.1): outer
 * SEQUENCE with a 2-byte length, then each number at its nominal size (n, d: 128 bytes; p, q, dp, dq,
 * qinv: 64 bytes; a leading zero allowed). Returns true when a device reads it right; otherwise false and,
 * when why is not NULL, one line saying which number deviates. Does not check the size or exponent. */
bool kr_key_device_layout_ok(const uint8_t *der, size_t len, char *why, size_t why_cap);

/* True when the key's numbers are broken, with the reason in why (one line naming the key, e.g.
 * "k.der: broken key (private exponent d = 0)"): public exponent 1 or even, an even modulus, d = 0 or 1,
 * n != p*q, CRT values (dp, dq, qinv) that do not fit, or OpenSSL's pairwise check failing (p or q not
 * prime, d not the inverse of e). Public keys are judged on n and e only. A broken key must not be used.
 * Keys are at most KR_KEY_MAX_BITS, so this costs at most a few seconds (the primality tests). */
bool kr_key_broken(const kr_key *key, char *why, size_t why_cap);

/* kr_key_broken without the primality tests of p and q: only the arithmetic that ties n, e, d and the CRT
 * values together (n = p*q, e*dp = 1 mod p-1, e*dq = 1 mod q-1, qinv*q = 1 mod p ...). Far cheaper
 * than the primality tests (milliseconds a key): for loading many keys at once (the keyfile). */
bool kr_key_numbers_broken(const kr_key *key, char *why, size_t why_cap);

/* True when the private key's numbers are consistent (n = p*q and the rest), checked by OpenSSL.
 * False for public keys. */
bool kr_key_private_consistent(const kr_key *key);   /* = private and not kr_key_broken */

#ifdef __cplusplus
}
#endif
#endif
