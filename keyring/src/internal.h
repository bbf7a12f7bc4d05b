/* sparkwire libkeyring: helpers shared by the library's own files (not part of the API). */
#ifndef KEYRING_INTERNAL_H
#define KEYRING_INTERNAL_H

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

#endif
