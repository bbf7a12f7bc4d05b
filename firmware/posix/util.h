/* sparkwire firmware: POSIX helpers shared by sparkdev and sparkcloud (logging, keys, numbers, sockets). */
#ifndef SW_POSIX_UTIL_H
#define SW_POSIX_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <keyring/key.h>

#define SW_KEY_MAX 2400

typedef struct sw_keybuf {
    uint8_t der[SW_KEY_MAX];
    size_t len;
    int bits;
} sw_keybuf;

extern const char *sw_prog;   /* program name for messages */

uint64_t sw_now_ms(void);
/* "prog: [  1.234] text" on stderr, time since the program started. */
void sw_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* One error line "prog: text" on stderr. */
void sw_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Loads an RSA private key (PEM or DER, PKCS#1 or PKCS#8) as PKCS#1 DER. 0, or -1 with an error printed
 * ("what" names the key's role in the message). */
int sw_load_private_key(const char *path, const char *what, sw_keybuf *out);
/* Loads an RSA public key as SubjectPublicKeyInfo DER; a private key file gives its public half. */
int sw_load_public_key(const char *path, const char *what, sw_keybuf *out);
/* A libkeyring key as DER (PKCS#1 private key or SubjectPublicKeyInfo). 0, or -1 when it does not fit. */
int sw_keybuf_from_key(const kr_key *key, bool private_form, sw_keybuf *out);

/* The one error line for a getopt_long result of '?' or ':' (needs opterr = 0 and an optstring starting
 * with ':'): names the option and points at --help. */
void sw_bad_option(int c, int argc, char **argv);

int sw_parse_hex(const char *hex, uint8_t *out, size_t len);      /* exactly 2*len hex digits */
void sw_to_hex(const uint8_t *in, size_t len, char *out);         /* out holds 2*len+1 */
/* Unsigned decimal in [min, max]; 0 or -1. */
int sw_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out);
/* Seconds with optional fraction ("2", "0.5") into milliseconds. */
int sw_parse_seconds(const char *s, uint64_t *ms);
/* "host:port" (IPv4 or [IPv6]) into host and port. */
int sw_split_hostport(const char *s, char *host, size_t hcap, char *port, size_t pcap);

/* Waits until fd is readable or ms passes; 1 readable, 0 timeout, -1 error. */
int sw_wait_readable(int fd, int ms);
/* Sends all bytes (no SIGPIPE); 0 or -1. */
int sw_send_all(int fd, const uint8_t *buf, size_t len);

#endif
