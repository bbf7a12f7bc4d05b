#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/x509.h>

const char *sw_prog = "sparkwire";

uint64_t sw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t start_ms;

void sw_log(const char *fmt, ...)
{
    if (start_ms == 0)
        start_ms = sw_now_ms();
    uint64_t t = sw_now_ms() - start_ms;
    char line[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: [%3llu.%03llu] %s\n", sw_prog, (unsigned long long)(t / 1000),
            (unsigned long long)(t % 1000), line);
    fflush(stderr);
}

void sw_err(const char *fmt, ...)
{
    char line[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", sw_prog, line);
    fflush(stderr);
}

int sw_keybuf_from_key(const kr_key *key, bool private_form, sw_keybuf *out)
{
    if (key == NULL || kr_key_pkey(key) == NULL)
        return -1;
    int n = private_form ? i2d_PrivateKey(kr_key_pkey(key), NULL) : i2d_PUBKEY(kr_key_pkey(key), NULL);
    unsigned char *p = out->der;
    if (n <= 0 || (size_t)n > sizeof out->der ||
        (private_form ? i2d_PrivateKey(kr_key_pkey(key), &p) : i2d_PUBKEY(kr_key_pkey(key), &p)) != n)
        return -1;
    out->len = (size_t)n;
    out->bits = key->bits;
    return 0;
}

/* Loads a key with libkeyring's loader (the one cloudmon, the plugin and the key command use), so a key
 * file is read, and its problems named, the same way everywhere. */
static int load_key(const char *path, const char *what, bool want_private, sw_keybuf *out)
{
    kr_err err = {{0}};
    kr_key *k = kr_key_load_file(path, &err);
    if (k == NULL) {
        sw_err("%s %s", what, err.msg[0] ? err.msg : path);
        return -1;
    }
    int rc = -1;
    if (want_private && !k->is_private)
        sw_err("%s %s: a public key, not an RSA private key; give the private key file", what, path);
    else if ((rc = sw_keybuf_from_key(k, want_private, out)) < 0)
        sw_err("%s %s: key too large; use an RSA key of at most 4096 bits", what, path);
    kr_key_free(k);
    return rc;
}

int sw_load_private_key(const char *path, const char *what, sw_keybuf *out)
{
    return load_key(path, what, true, out);
}

int sw_load_public_key(const char *path, const char *what, sw_keybuf *out)
{
    return load_key(path, what, false, out);
}

void sw_bad_option(int c, int argc, char **argv)
{
    /* getopt_long leaves optind past the offending word when it is a long option or the last letter of a
     * short-option group; optopt holds a short option's letter. */
    char word[64];
    const char *w = optind > 1 && optind <= argc ? argv[optind - 1] : "";
    if (optopt != 0 && !(w[0] == '-' && w[1] == '-'))
        snprintf(word, sizeof word, "-%c", optopt);
    else
        snprintf(word, sizeof word, "%.*s", (int)strcspn(w, "="), w);
    if (c == ':')
        sw_err("option %s needs a value; see %s --help", word, sw_prog);
    else if (optopt != 0 && w[0] == '-' && w[1] == '-')
        sw_err("option %s takes no value; see %s --help", word, sw_prog);
    else
        sw_err("unknown option %s; see %s --help", word, sw_prog);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sw_parse_hex(const char *hex, uint8_t *out, size_t len)
{
    if (strlen(hex) != 2 * len)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int a = hexval(hex[2 * i]), b = hexval(hex[2 * i + 1]);
        if (a < 0 || b < 0)
            return -1;
        out[i] = (uint8_t)(a << 4 | b);
    }
    return 0;
}

void sw_to_hex(const uint8_t *in, size_t len, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * len] = 0;
}

int sw_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int sw_parse_seconds(const char *s, uint64_t *ms)
{
    if (s == NULL || !((*s >= '0' && *s <= '9') || *s == '.'))
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || v < 0 || v > 1e7)
        return -1;
    *ms = (uint64_t)(v * 1000.0 + 0.5);
    return 0;
}

int sw_split_hostport(const char *s, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -1;
        hl = (size_t)(colon - s);
    }
    size_t pl = strlen(colon + 1);
    if (hl == 0 || hl >= hcap || pl == 0 || pl >= pcap)
        return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    memcpy(port, colon + 1, pl + 1);
    unsigned long p;
    return sw_parse_ulong(port, 1, 65535, &p);
}

int sw_wait_readable(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    int r;
    do {
        r = poll(&p, 1, ms);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -1 : r > 0 ? 1 : 0;
}

int sw_send_all(int fd, const uint8_t *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}
