#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
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

static uint8_t *read_file(const char *path, const char *what, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        sw_err("%s %s: cannot open (%s); check the path", what, path, strerror(errno));
        return NULL;
    }
    uint8_t *buf = malloc(65536);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    bool big = buf && n == 65536;
    fclose(f);
    if (buf == NULL || n == 0 || big) {
        sw_err("%s %s: %s; give a key file (PEM or DER)", what, path, n == 0 ? "empty or unreadable" : "too large for a key");
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* The DER inside a PEM file (first PEM block), or a copy of the bytes as they are. */
static uint8_t *to_der(const uint8_t *buf, size_t len, size_t *out_len)
{
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long dlen = 0;
    uint8_t *out = NULL;
    if (bio && PEM_read_bio(bio, &name, &header, &data, &dlen) == 1 && dlen > 0) {
        out = malloc((size_t)dlen);
        if (out) {
            memcpy(out, data, (size_t)dlen);
            *out_len = (size_t)dlen;
        }
    } else {
        out = malloc(len);
        if (out) {
            memcpy(out, buf, len);
            *out_len = len;
        }
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    BIO_free(bio);
    ERR_clear_error();
    return out;
}

static EVP_PKEY *parse_private(const uint8_t *buf, size_t len)
{
    size_t dlen = 0;
    uint8_t *der = to_der(buf, len, &dlen);
    EVP_PKEY *k = NULL;
    if (der) {
        const unsigned char *p = der;
        k = d2i_AutoPrivateKey(NULL, &p, (long)dlen);
    }
    free(der);
    ERR_clear_error();
    return k;
}

static EVP_PKEY *parse_public(const uint8_t *buf, size_t len)
{
    size_t dlen = 0;
    uint8_t *der = to_der(buf, len, &dlen);
    EVP_PKEY *k = NULL;
    if (der) {
        const unsigned char *p = der;
        k = d2i_PUBKEY(NULL, &p, (long)dlen);
        if (k == NULL) {
            p = der;
            k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)dlen);
        }
    }
    free(der);
    ERR_clear_error();
    return k;
}

int sw_load_private_key(const char *path, const char *what, sw_keybuf *out)
{
    size_t len = 0;
    uint8_t *buf = read_file(path, what, &len);
    if (buf == NULL)
        return -1;
    EVP_PKEY *k = parse_private(buf, len);
    free(buf);
    int rc = -1;
    if (k == NULL || !EVP_PKEY_is_a(k, "RSA")) {
        sw_err("%s %s: not an RSA private key (PEM or DER, PKCS#1 or PKCS#8); give the private key file",
               what, path);
    } else {
        int n = i2d_PrivateKey(k, NULL);
        unsigned char *p = out->der;
        if (n <= 0 || (size_t)n > sizeof out->der || i2d_PrivateKey(k, &p) != n) {
            sw_err("%s %s: key too large; use an RSA key of at most 4096 bits", what, path);
        } else {
            out->len = (size_t)n;
            out->bits = EVP_PKEY_get_bits(k);
            rc = 0;
        }
    }
    EVP_PKEY_free(k);
    return rc;
}

int sw_load_public_key(const char *path, const char *what, sw_keybuf *out)
{
    size_t len = 0;
    uint8_t *buf = read_file(path, what, &len);
    if (buf == NULL)
        return -1;
    EVP_PKEY *k = parse_public(buf, len);
    if (k == NULL)
        k = parse_private(buf, len);
    free(buf);
    int rc = -1;
    if (k == NULL || !EVP_PKEY_is_a(k, "RSA")) {
        sw_err("%s %s: not an RSA key (PEM or DER, SPKI, PKCS#1 or a private key); give the public key file",
               what, path);
    } else {
        int n = i2d_PUBKEY(k, NULL);
        unsigned char *p = out->der;
        if (n <= 0 || (size_t)n > sizeof out->der || i2d_PUBKEY(k, &p) != n) {
            sw_err("%s %s: key too large; use an RSA key of at most 4096 bits", what, path);
        } else {
            out->len = (size_t)n;
            out->bits = EVP_PKEY_get_bits(k);
            rc = 0;
        }
    }
    EVP_PKEY_free(k);
    return rc;
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
