/* Helpers shared by the keyring unit tests: fixture files (made by mkfixtures.sh with the openssl
 * command line) and hex. Each test program takes the fixture folder as its first argument. */
#ifndef KEYRING_TESTUTIL_H
#define KEYRING_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "keyring/keyring.h"

static const char *fixture_dir = ".";

static inline char *fx_path(const char *name)
{
    static char buf[4][1024];
    static int slot;
    char *p = buf[slot++ & 3];
    snprintf(p, 1024, "%s/%s", fixture_dir, name);
    return p;
}

/* Reads a fixture file whole; fails the test when it is missing. Caller frees. */
static inline uint8_t *fx_read(const char *name, size_t *len)
{
    const char *path = fx_path(name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("fixture %s missing (run the fixture step)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

/* Hex text (spaces allowed) to bytes; returns a malloc'd buffer. */
static inline uint8_t *hexbytes(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    uint8_t *out = malloc(n / 2 + 1);
    size_t o = 0;
    char pair[3] = {0, 0, 0};
    int have = 0;
    for (size_t i = 0; i < n; i++) {
        if (hex[i] == ' ' || hex[i] == '\n')
            continue;
        pair[have++] = hex[i];
        if (have == 2) {
            out[o++] = (uint8_t)strtoul(pair, NULL, 16);
            have = 0;
        }
    }
    assert_int_equal(have, 0);
    *len = o;
    return out;
}

/* A value from expected.txt ("name value" lines). */
static inline const char *fx_expected(const char *name)
{
    static char value[1024];
    size_t len;
    uint8_t *text = fx_read("expected.txt", &len);
    char *line = strtok((char *)text, "\n");
    value[0] = 0;
    while (line) {
        size_t nl = strlen(name);
        if (strncmp(line, name, nl) == 0 && line[nl] == ' ') {
            snprintf(value, sizeof value, "%s", line + nl + 1);
            break;
        }
        line = strtok(NULL, "\n");
    }
    free(text);
    if (!value[0])
        fail_msg("expected.txt has no %s", name);
    return value;
}

static inline kr_key *fx_key(const char *name)
{
    kr_err err = {{0}};
    kr_key *k = kr_key_load_file(fx_path(name), &err);
    if (!k)
        fail_msg("%s: %s", name, err.msg);
    return k;
}

static inline kr_key *hex_key(const char *hex, const char *name)
{
    size_t len;
    uint8_t *der = hexbytes(hex, &len);
    kr_err err = {{0}};
    kr_key *k = kr_key_load_mem(der, len, name, &err);
    free(der);
    if (!k)
        fail_msg("%s: %s", name, err.msg);
    return k;
}

#endif
