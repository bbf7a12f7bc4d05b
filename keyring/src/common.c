/* sparkwire libkeyring: error lines and small helpers shared by every module. */
#include "keyring/common.h"
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>

const char *kr_dir_str(kr_dir d)
{
    return d == KR_D2S ? "device->cloud" : "cloud->device";
}

const char *kr_dir_short(kr_dir d)
{
    return d == KR_D2S ? "D->S" : "S->D";
}

void kr_err_set(kr_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

void kr_err_openssl(kr_err *err)
{
    unsigned long code;
    char buf[256];
    int first = 1;

    while ((code = ERR_get_error()) != 0) {
        if (!err || !first)
            continue;           /* keep draining the queue */
        ERR_error_string_n(code, buf, sizeof buf);
        size_t used = strlen(err->msg);
        if (used + 3 < sizeof err->msg)
            snprintf(err->msg + used, sizeof err->msg - used, " (%s)", buf);
        first = 0;
    }
}

char *kr_hex(const uint8_t *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
    return out;
}

static inline int hexval(char c)
{
    unsigned d = (unsigned)(unsigned char)c - '0', l = ((unsigned)(unsigned char)c | 0x20) - 'a';
    return d < 10 ? (int)d : l < 6 ? (int)l + 10 : -1;
}

int kr_unhex(const char *text, uint8_t *out, size_t len)
{
    if (!text)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int hi = hexval(text[2 * i]);          /* the end of the text ('\0') is no digit: never read past */
        if (hi < 0)
            return -1;
        int lo = hexval(text[2 * i + 1]);
        if (lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

char *kr_device_id_hex(const uint8_t id[KR_DEVICE_ID_LEN], char out[KR_DEVICE_ID_HEX_LEN + 1])
{
    return kr_hex(id, KR_DEVICE_ID_LEN, out);
}

void kr_sfmt(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

static const char *file_kind(mode_t m)
{
    if (S_ISDIR(m))
        return "a folder";
    if (S_ISFIFO(m))
        return "a named pipe (FIFO)";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

static void not_regular(kr_err *err, const char *path, mode_t m, const char *what)
{
    kr_err_set(err, "%s: %s, not a regular file: give the path of %s itself", path, file_kind(m),
               what && *what ? what : "the file");
}

bool kr_file_is_regular(const char *path, const char *what, kr_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        kr_err_set(err, "%s: %s", path, strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        not_regular(err, path, st.st_mode, what);
        return false;
    }
    return true;
}

int kr_read_file_into(const char *path, size_t max, const char *what, const char *too_big, uint8_t **bufp,
                      size_t *capp, size_t *len, kr_err *err)
{
    const char *sep = what ? " " : "";
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; only a regular file is read. A symlink to a
     * regular file is followed (key folders often link to the key in use). */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        kr_err_set(err, "%s: cannot open%s%s: %s", path, sep, what ? what : "", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        kr_err_set(err, "%s: cannot read%s%s: %s", path, sep, what ? what : "", strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        not_regular(err, path, st.st_mode, what);
        close(fd);
        return -1;
    }
    /* Plain read(2) into a buffer sized from the file (a keyfile may name 70,000 key files: no stdio per
     * file; a read that brings exactly st_size bytes is the end). O_NONBLOCK does not change reads of a
     * regular file. A file that grew since fstat is read on, up to one byte more than the limit. */
    what = what ? what : "";
    size_t want = ((uint64_t)st.st_size <= max ? (size_t)st.st_size : max) + 1;
    uint8_t *buf = *bufp;
    size_t cap = *capp;
    if (cap < want) {
        buf = realloc(buf, want);
        if (buf)
            cap = want;
        else
            free(*bufp);
    }
    size_t n = 0;
    while (buf) {
        if (n == cap) {
            if (cap > max)
                break;
            size_t more = cap > max / 2 ? max + 1 : cap * 2;
            uint8_t *b = realloc(buf, more);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap = more;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int saved = errno;
            *bufp = buf;
            *capp = cap;
            close(fd);
            kr_err_set(err, "%s: cannot read%s%s: %s", path, sep, what, strerror(saved));
            return -1;
        }
        n += (size_t)r;
        if (r == 0 || (n == (size_t)st.st_size && n < cap))
            break;
    }
    close(fd);
    *bufp = buf;
    *capp = buf ? cap : 0;
    if (!buf) {
        kr_err_set(err, "%s: out of memory", path);
        return -1;
    }
    if (n > max) {
        kr_err_set(err, "%s: %s", path, too_big);
        return -1;
    }
    *len = n;
    return 0;
}

uint8_t *kr_read_file(const char *path, size_t max, const char *what, const char *too_big, size_t *len,
                      kr_err *err)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    if (kr_read_file_into(path, max, what, too_big, &buf, &cap, len, err) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
