/* sparkwire libkeyring: shared constants, error reporting and small helpers. */
#ifndef KEYRING_COMMON_H
#define KEYRING_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KR_DEVICE_ID_LEN      12   /* raw device id bytes (24 lower-case hex digits as text) */
#define KR_DEVICE_ID_HEX_LEN  24
#define KR_NONCE_LEN          40   /* H1: server nonce */
#define KR_IDBLOCK_LEN        256  /* H2: RSA-2048 block from the device */
#define KR_SESSIONBLOCK_LEN   384  /* H3: RSA-1024 block (128) + signature (256) */
#define KR_SESSION_E_LEN      128
#define KR_SIGNATURE_LEN      256
#define KR_SESSION_LEN        40   /* session material M: key 16, IV 16, salt 8 */
#define KR_SESSION_HINT_LEN   8    /* a session line's block= hint: SHA-256 of E, first 8 bytes */
#define KR_HMAC_LEN           20
#define KR_DEVICE_SPKI_LEN    162  /* RSA-1024 SubjectPublicKeyInfo DER */
#define KR_SERVER_SPKI_LEN    294  /* RSA-2048 SubjectPublicKeyInfo DER */
#define KR_IDPLAIN_G1_LEN     52   /* nonce + id */
#define KR_IDPLAIN_G2_LEN     214  /* nonce + id + device SPKI */
#define KR_FRAME_MAX          65535

/* Direction of bytes on a connection. The device is always the TCP client. */
typedef enum kr_dir {
    KR_D2S = 0,   /* device -> cloud (client -> server) */
    KR_S2D = 1    /* cloud -> device (server -> client) */
} kr_dir;

const char *kr_dir_str(kr_dir d);   /* "device->cloud" / "cloud->device" */
const char *kr_dir_short(kr_dir d); /* "D->S" / "S->D" */

/* Gives back what libkeyring keeps beyond its objects: for the process, the algorithms fetched once, the
 * decoders that turn a key into OpenSSL's form on first use and libcoap's state; for the calling thread,
 * its AES context and its cache of kept-frame blocks (other threads give theirs back when they end). A
 * host that unloads the library with itself (a Wireshark plugin) calls it last, when no other thread uses
 * the library; whatever the library is asked to do afterwards makes what it needs again. */
void kr_library_end(void);

/* One error line for the user: names the thing, what is wrong and what to do. */
typedef struct kr_err {
    char msg[768];
} kr_err;

void kr_err_set(kr_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends OpenSSL's queued error text (if any) to err->msg and clears the queue. */
void kr_err_openssl(kr_err *err);

/* True when path names a regular file (a symlink to one counts); otherwise err holds one line naming the
 * path, what it is instead (folder, FIFO, device) and what to give: "the key file" when what says so. */
bool kr_file_is_regular(const char *path, const char *what, kr_err *err);

/* Lower-case hex of len bytes into out (2*len+1 bytes, NUL terminated). Returns out. */
char *kr_hex(const uint8_t *data, size_t len, char *out);
/* Parses exactly 2*len hex digits (either case) into out. Returns 0 or -1. */
int kr_unhex(const char *text, uint8_t *out, size_t len);
/* 24 lower-case hex digits of a 12-byte device id into out[25]. */
char *kr_device_id_hex(const uint8_t id[KR_DEVICE_ID_LEN], char out[KR_DEVICE_ID_HEX_LEN + 1]);

#ifdef __cplusplus
}
#endif
#endif
