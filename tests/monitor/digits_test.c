/* cloudmon's decimal writer (digits.h) against snprintf: the plain forms on 0, the powers of ten and
 * their neighbours, INT64_MIN, INT64_MAX, UINT64_MAX and a deterministic spread of values; the fixed form
 * at every width from 1 to 20; no byte written outside the number. Then JSON times, whose decimals it
 * writes (test_units.c checks JSON integers and the time of day of the lines). Exit 0 when every check
 * holds. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "digits.h"
#include "json.h"

static int failed, checks;

static void fail(const char *what, const char *got, const char *want)
{
    if (failed < 20)
        printf("FAIL %s: got \"%s\", want \"%s\"\n", what, got, want);
    failed++;
}

/* What a writer returned (p) for a number it wrote to end in buf, a buffer fenced with 8 '#' before the
 * CM_DIGITS_MAX bytes for the number and '#' after: the number is want, nothing outside it is touched. */
static void check_written(const char *what, const char *buf, const char *end, const char *p, const char *want)
{
    char got[CM_DIGITS_MAX + 1] = "";
    size_t n = p >= buf + 8 && p < end ? (size_t)(end - p) : 0;
    memcpy(got, p, n);
    got[n] = 0;
    checks++;
    if (strcmp(got, want) != 0)
        fail(what, got, want);
    else if (p[-1] != '#' || end[0] != '#' || memcmp(buf, "########", 8) != 0)
        fail(what, "(a byte outside the number changed)", want);
}

static void check_u64(uint64_t v)
{
    char buf[CM_DIGITS_MAX + 16], want[32], *end = buf + 8 + CM_DIGITS_MAX;
    memset(buf, '#', sizeof buf);
    snprintf(want, sizeof want, "%" PRIu64, v);
    check_written("cm_digits_u64", buf, end, cm_digits_u64(end, v), want);
}

static void check_i64(int64_t v)
{
    char buf[CM_DIGITS_MAX + 16], want[32], *end = buf + 8 + CM_DIGITS_MAX;
    memset(buf, '#', sizeof buf);
    snprintf(want, sizeof want, "%" PRId64, v);
    check_written("cm_digits_i64", buf, end, cm_digits_i64(end, v), want);
}

static void check_fixed(uint64_t v, int width)
{
    char buf[40], want[40], what[48];
    memset(buf, '#', sizeof buf);
    cm_digits_fixed(buf + 8, v, width);
    snprintf(want, sizeof want, "########%0*" PRIu64 "########", width, v);
    buf[width + 16] = 0;
    snprintf(what, sizeof what, "cm_digits_fixed width %d", width);
    checks++;
    if (strcmp(buf, want) != 0)
        fail(what, buf, want);
}

/* cm_json_int and cm_json_time in a one-member object */
static void check_json(cm_json *j, int64_t iv, double t, const char *want)
{
    cm_json_reset(j);
    cm_json_obj(j, NULL);
    cm_json_int(j, "i", iv);
    cm_json_time(j, "t", t);
    cm_json_end(j, '}');
    char got[128];
    snprintf(got, sizeof got, "%.*s", (int)j->len, j->buf);
    checks++;
    if (strcmp(got, want) != 0)
        fail("cm_json_int/cm_json_time", got, want);
}

int main(void)
{
    /* every power of ten and its neighbours, both signs */
    uint64_t p = 1;
    for (int e = 0; e <= 19; e++, p *= 10) {
        for (uint64_t d = 0; d <= 2; d++) {
            check_u64(p - d);
            check_u64(p + d);
            if (p + d <= INT64_MAX) {
                check_i64((int64_t)(p + d));
                check_i64(-(int64_t)(p + d));
            }
            if (p - d <= INT64_MAX) {
                check_i64((int64_t)(p - d));
                check_i64(-(int64_t)(p - d));
            }
        }
    }
    check_u64(0);
    check_u64(UINT64_MAX);
    check_u64(UINT64_MAX - 1);
    check_u64((uint64_t)INT64_MAX + 1);
    check_i64(0);
    check_i64(-1);
    check_i64(INT64_MAX);
    check_i64(INT64_MIN);
    check_i64(INT64_MIN + 1);
    check_i64(INT32_MIN);
    check_i64(INT32_MAX);
    for (uint64_t v = 0; v < 100000; v++)
        check_u64(v);
    for (uint64_t x = 0x9e3779b97f4a7c15u, i = 0; i < 100000; i++) {   /* xorshift: every length, many digits */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        check_u64(x >> (i % 64));
        check_i64((int64_t)(x >> (i % 64)));
        check_i64((int64_t)x);
    }

    /* the fixed form at every width: 0, 1, the largest value that fits, powers of ten and a spread */
    for (int w = 1; w <= 20; w++) {
        uint64_t top = w == 20 ? UINT64_MAX : 1;
        if (w < 20) {
            for (int i = 0; i < w; i++)
                top *= 10;
            top -= 1;
        }
        check_fixed(0, w);
        check_fixed(1, w);
        check_fixed(top, w);
        check_fixed(top / 10, w);
        check_fixed(top / 10 + 1, w);
        for (uint64_t v = 7; v < top / 3; v = v * 3 + 1)
            check_fixed(v, w);
    }
    for (uint64_t v = 0; v < 100; v++)           /* the widths cloudmon writes: 2 and 6 */
        check_fixed(v, 2);
    for (uint64_t v = 0; v < 1000000; v += 7)
        check_fixed(v, 6);
    check_fixed(999999, 6);

    /* JSON: integers at their edges, times of 6 decimals */
    cm_json j;
    cm_json_init(&j);
    check_json(&j, 0, 0.0, "{\"i\":0,\"t\":0.000000}");
    check_json(&j, -1, 0.000001, "{\"i\":-1,\"t\":0.000001}");
    check_json(&j, INT64_MIN, 1700000000.5, "{\"i\":-9223372036854775808,\"t\":1700000000.500000}");
    check_json(&j, INT64_MAX, 1700000000.123456, "{\"i\":9223372036854775807,\"t\":1700000000.123456}");
    check_json(&j, 100, 59.999999, "{\"i\":100,\"t\":59.999999}");
    check_json(&j, -99, 86399.0001, "{\"i\":-99,\"t\":86399.000100}");
    check_json(&j, 12345, 4294967295.999999, "{\"i\":12345,\"t\":4294967295.999999}");
    /* times too far out for six decimals (a pcapng interface that counts whole seconds): the shortest
     * form, never a negative number or bytes that are not digits */
    check_json(&j, 1, 8999999999.5, "{\"i\":1,\"t\":8999999999.500000}");
    check_json(&j, 1, 9e9, "{\"i\":1,\"t\":9000000000}");
    check_json(&j, 1, 1e13, "{\"i\":1,\"t\":10000000000000}");
    check_json(&j, 1, 9.3e12, "{\"i\":1,\"t\":9300000000000}");
    check_json(&j, 1, 1.8e19, "{\"i\":1,\"t\":1.8e+19}");
    check_json(&j, 1, -1.0, "{\"i\":1,\"t\":-1}");
    cm_json_free(&j);

    printf("%d checks, %d failed\n", checks, failed);
    return failed != 0;
}
