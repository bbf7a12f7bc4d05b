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

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
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

/* What a key file holds, as far as it can be told without a password. */
typedef struct {
    uint8_t *der;       /* the DER inside the first PEM block, or a copy of the bytes as they are */
    size_t len;
    bool pem;           /* the bytes were PEM */
    bool pem_damaged;   /* they start like PEM but no PEM block could be read */
    bool encrypted;     /* password protected: PKCS#8 EncryptedPrivateKeyInfo or an encrypted PEM header */
} key_bytes;

static void key_bytes_free(key_bytes *kb)
{
    free(kb->der);
    kb->der = NULL;
}

/* The DER inside a PEM file (first PEM block), or a copy of the bytes as they are. */
static int to_der(const uint8_t *buf, size_t len, key_bytes *kb)
{
    memset(kb, 0, sizeof *kb);
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long dlen = 0;
    if (bio && PEM_read_bio(bio, &name, &header, &data, &dlen) == 1 && dlen > 0) {
        kb->der = malloc((size_t)dlen);
        if (kb->der) {
            memcpy(kb->der, data, (size_t)dlen);
            kb->len = (size_t)dlen;
        }
        kb->pem = true;
        kb->encrypted = (name && strcmp(name, "ENCRYPTED PRIVATE KEY") == 0) ||
                        (header && strstr(header, "ENCRYPTED") != NULL);
    } else {
        kb->der = malloc(len);
        if (kb->der) {
            memcpy(kb->der, buf, len);
            kb->len = len;
        }
        kb->pem_damaged = memmem(buf, len, "-----BEGIN", 10) != NULL;
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    BIO_free(bio);
    ERR_clear_error();
    if (kb->der && !kb->encrypted) {
        /* DER PKCS#8 EncryptedPrivateKeyInfo: an algorithm and an octet string, no key inside. */
        const unsigned char *p = kb->der;
        X509_SIG *sig = d2i_X509_SIG(NULL, &p, (long)kb->len);
        if (sig) {
            const X509_ALGOR *alg = NULL;
            const ASN1_OBJECT *obj = NULL;
            X509_SIG_get0(sig, &alg, NULL);
            if (alg)
                X509_ALGOR_get0(&obj, NULL, NULL, alg);
            int nid = obj ? OBJ_obj2nid(obj) : NID_undef;
            kb->encrypted = nid == NID_pbes2 || nid == NID_pbe_WithSHA1And3_Key_TripleDES_CBC ||
                            nid == NID_pbe_WithSHA1And128BitRC4 || nid == NID_pbe_WithSHA1And40BitRC4 ||
                            nid == NID_pbe_WithSHA1And2_Key_TripleDES_CBC ||
                            nid == NID_pbe_WithSHA1And128BitRC2_CBC || nid == NID_pbe_WithSHA1And40BitRC2_CBC ||
                            nid == NID_pbeWithMD5AndDES_CBC || nid == NID_pbeWithSHA1AndDES_CBC;
        }
        X509_SIG_free(sig);
        ERR_clear_error();
    }
    return kb->der ? 0 : -1;
}

/* True when the bytes start a DER SEQUENCE whose stated length runs past the end of the bytes. */
static bool der_cut_short(const uint8_t *d, size_t n)
{
    if (n < 2 || d[0] != 0x30)
        return false;
    size_t body, hdr;
    if (d[1] < 0x80) {
        body = d[1];
        hdr = 2;
    } else {
        size_t nl = d[1] & 0x7f;
        if (nl == 0 || nl > 4)
            return false;
        if (n < 2 + nl)
            return true;
        body = 0;
        for (size_t i = 0; i < nl; i++)
            body = (body << 8) | d[2 + i];
        hdr = 2 + nl;
    }
    return body > n - hdr;
}

static EVP_PKEY *parse_private_der(const key_bytes *kb)
{
    const unsigned char *p = kb->der;
    EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, (long)kb->len);
    ERR_clear_error();
    return k;
}

static EVP_PKEY *parse_public_der(const key_bytes *kb)
{
    const unsigned char *p = kb->der;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)kb->len);
    if (k == NULL) {
        p = kb->der;
        k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)kb->len);
    }
    ERR_clear_error();
    return k;
}

/* One error line for a key file that gave no usable RSA key: the cause and the fix. */
static void key_error(const char *what, const char *path, const key_bytes *kb, EVP_PKEY *k, bool want_private)
{
    const char *kind = want_private ? "private key" : "key";
    if (k != NULL) {
        const char *type = EVP_PKEY_get0_type_name(k);
        sw_err("%s %s: not an RSA %s (it holds %s %s key); Spark keys are RSA, give an RSA key file", what, path,
               kind, type && strchr("AEIOU", type[0]) ? "an" : "a", type ? type : "another kind of");
    } else if (kb->encrypted) {
        sw_err("%s %s: password protected; decrypt it first: openssl rsa -in %s -out %s.plain", what, path,
               path, path);
    } else if (kb->pem_damaged) {
        sw_err("%s %s: damaged PEM (no complete -----BEGIN/-----END block); give the whole key file", what, path);
    } else if (der_cut_short(kb->der, kb->len)) {
        sw_err("%s %s: truncated DER (%zu bytes, the key says more); give the whole key file", what, path,
               kb->len);
    } else {
        sw_err("%s %s: not a key (not an RSA %s in PEM or DER); give the %s file", what, path, kind,
               want_private ? "private key" : "public key");
    }
}

/* Writes the key as DER (PKCS#1 private key, or SPKI public key) into out. 0, or -1 with an error line. */
static int store_der(EVP_PKEY *k, bool private_key, const char *what, const char *path, sw_keybuf *out)
{
    int n = private_key ? i2d_PrivateKey(k, NULL) : i2d_PUBKEY(k, NULL);
    unsigned char *p = out->der;
    if (n <= 0 || (size_t)n > sizeof out->der ||
        (private_key ? i2d_PrivateKey(k, &p) : i2d_PUBKEY(k, &p)) != n) {
        sw_err("%s %s: key too large; use an RSA key of at most 4096 bits", what, path);
        return -1;
    }
    out->len = (size_t)n;
    out->bits = EVP_PKEY_get_bits(k);
    return 0;
}

int sw_load_private_key(const char *path, const char *what, sw_keybuf *out)
{
    size_t len = 0;
    uint8_t *buf = read_file(path, what, &len);
    if (buf == NULL)
        return -1;
    key_bytes kb;
    if (to_der(buf, len, &kb) < 0) {
        free(buf);
        sw_err("%s %s: out of memory", what, path);
        return -1;
    }
    free(buf);
    EVP_PKEY *k = parse_private_der(&kb);
    int rc = -1;
    if (k == NULL && !kb.encrypted && (k = parse_public_der(&kb)) != NULL && EVP_PKEY_is_a(k, "RSA")) {
        sw_err("%s %s: a public key, not an RSA private key; give the private key file", what, path);
    } else if (k == NULL || !EVP_PKEY_is_a(k, "RSA")) {
        key_error(what, path, &kb, k, true);
    } else {
        rc = store_der(k, true, what, path, out);
    }
    EVP_PKEY_free(k);
    key_bytes_free(&kb);
    return rc;
}

int sw_load_public_key(const char *path, const char *what, sw_keybuf *out)
{
    size_t len = 0;
    uint8_t *buf = read_file(path, what, &len);
    if (buf == NULL)
        return -1;
    key_bytes kb;
    if (to_der(buf, len, &kb) < 0) {
        free(buf);
        sw_err("%s %s: out of memory", what, path);
        return -1;
    }
    free(buf);
    EVP_PKEY *k = parse_public_der(&kb);
    if (k == NULL)
        k = parse_private_der(&kb);
    int rc = -1;
    if (k == NULL || !EVP_PKEY_is_a(k, "RSA")) {
        key_error(what, path, &kb, k, false);
    } else {
        rc = store_der(k, false, what, path, out);
    }
    EVP_PKEY_free(k);
    key_bytes_free(&kb);
    return rc;
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
