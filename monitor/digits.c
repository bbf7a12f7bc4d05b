/* cloudmon: decimal numbers written straight into a buffer (digits.h). */
#include "digits.h"

#include <string.h>

/* "00" to "99": the two digits of n < 100 are pairs[2n] and pairs[2n + 1] */
static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                            "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                            "8081828384858687888990919293949596979899";

void cm_digits_fixed(char *p, uint64_t v, int width)
{
    for (; width >= 2; v /= 100) {
        width -= 2;
        memcpy(p + width, pairs + 2 * (v % 100), 2);
    }
    if (width == 1)
        p[0] = (char)('0' + v % 10);
}

char *cm_digits_u64(char *end, uint64_t v)
{
    char *p = end;
    for (; v >= 100; v /= 100) {
        p -= 2;
        memcpy(p, pairs + 2 * (v % 100), 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    return p;
}

char *cm_digits_i64(char *end, int64_t v)
{
    char *p = cm_digits_u64(end, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
    if (v < 0)
        *--p = '-';
    return p;
}
