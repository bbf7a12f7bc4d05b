/* sparkwire libkeyring: helpers shared by the library's own files (not part of the API). */
#ifndef KEYRING_INTERNAL_H
#define KEYRING_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyring/common.h"

/* snprintf into a fixed buffer, cutting long text short (no truncation warning at call sites). */
void kr_sfmt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reads a whole file of at most max bytes into a malloc'd buffer (*len bytes; one spare byte after them).
 * what names the file in errors ("the keyfile"; NULL for none): "PATH: cannot open the keyfile: ...".
 * too_big is the reason given for a larger file: "PATH: <too_big>". NULL + err on failure. */
uint8_t *kr_read_file(const char *path, size_t max, const char *what, const char *too_big, size_t *len,
                      kr_err *err);

/* A DER tag-length header: only to tell key forms apart and measure objects (OpenSSL does the parsing). */
typedef struct kr_tlv {
    uint8_t tag;
    size_t hdr;     /* tag + length bytes */
    size_t len;     /* content length */
} kr_tlv;

/* Reads the TLV header at buf: 0 ok; -1 not DER here; -2 the length runs past avail (truncated). */
int kr_tlv_read(const uint8_t *buf, size_t avail, kr_tlv *t);

/* True when all n bytes are 0xFF (erased flash). */
bool kr_all_ff(const uint8_t *p, size_t n);

#endif
