/* sparkwire libkeyring: the one rule for bytes that could be a handshake nonce. */
#include <stdio.h>
#include "conn_int.h"

#define KR_NONCE_MIN_DISTINCT 20   /* 40 random bytes have about 37 different values; fewer than 20 is a pattern */

static bool printable(uint8_t c)
{
    return (c >= 0x20 && c < 0x7f) || c == '\r' || c == '\n' || c == '\t';
}

const char *kr_nonce_unfit(const uint8_t *b, size_t n, char *why, size_t whylen)
{
    size_t pr = 0, distinct = 0;
    bool seen[256] = { false };
    for (size_t i = 0; i < n; i++) {
        if (printable(b[i]))
            pr++;
        if (!seen[b[i]]) {
            seen[b[i]] = true;
            distinct++;
        }
    }
    if (pr == n) {
        snprintf(why, whylen, "the first %zu bytes from the cloud port are text", n);
        return why;
    }
    if (n >= KR_NONCE_LEN && distinct < KR_NONCE_MIN_DISTINCT) {
        snprintf(why, whylen, "the 40-byte nonce has only %zu different byte values (a real nonce is random)",
                 distinct);
        return why;
    }
    return NULL;
}

bool kr_conn_nonce_like(const uint8_t *p, size_t len)
{
    char why[128];
    return len == KR_NONCE_LEN && kr_nonce_unfit(p, len, why, sizeof why) == NULL;
}
