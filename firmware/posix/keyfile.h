/* sparkwire firmware: keys from a keyfile (docs/design.md format), read with libkeyring's parser. */
#ifndef SW_POSIX_KEYFILE_H
#define SW_POSIX_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct sw_keyfile sw_keyfile;

/* Loads a keyfile; NULL with one error line printed on any bad line or key. */
sw_keyfile *sw_keyfile_open(const char *path);
void sw_keyfile_close(sw_keyfile *kf);
/* 0 and the key as DER, or -1 (absent, nothing printed). */
int sw_keyfile_server_private(const sw_keyfile *kf, sw_keybuf *out);
int sw_keyfile_server_public(const sw_keyfile *kf, sw_keybuf *out);
int sw_keyfile_device_private(const sw_keyfile *kf, const uint8_t id[12], sw_keybuf *out);
/* Device lines with an id: count, and the i-th id with the public half of its key. */
size_t sw_keyfile_device_count(const sw_keyfile *kf);
int sw_keyfile_device_public(const sw_keyfile *kf, size_t i, char id_hex[25], sw_keybuf *out);

#endif
