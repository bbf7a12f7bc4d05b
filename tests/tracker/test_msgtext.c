/* sparkwire tests: the message texts made without printf (kr_txt in keyring/tracker/msg_int.h) read as
 * snprintf writes them, cut at every buffer size; the printable text of bytes follows its rule at every size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <limits.h>
#include <string.h>
#include <cmocka.h>

#include "../../keyring/tracker/msg_int.h"

static void test_cut_like_snprintf(void **state)
{
    (void)state;
    const char *name = "temperature_sensor_kitchen";
    const long long nums[] = { 0, 7, -7, 60, 12345, -2147483648LL, 4294967295LL, LLONG_MIN, LLONG_MAX };
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
        for (size_t cap = 1; cap < 80; cap++) {
            char a[80], b[80];
            memset(a, 'x', sizeof a);
            memset(b, 'x', sizeof b);
            kr_txt x = kr_txt_in(a, cap);
            kr_txt_put(&x, "Event ");
            kr_txt_put(&x, name);
            kr_txt_put(&x, " (");
            kr_txt_int(&x, nums[k]);
            kr_txt_put(&x, " ms)");
            snprintf(b, cap, "Event %s (%lld ms)", name, nums[k]);
            assert_string_equal(a, b);
            assert_int_equal(x.n, strlen(b));
            assert_int_equal(a[cap], 'x');    /* nothing written past the buffer */
        }
    }
}

/* The printable text byte by byte, as the rule says: a byte 0x20-0x7e other than the backslash as it is,
 * the backslash doubled, any other byte as \xNN; when a byte's text and "..." no longer fit, "..." (if it
 * fits) ends the text. */
static void printable_rule(const uint8_t *d, size_t n, char *out, size_t cap)
{
    char all[4 * 128 + 1] = "";   /* every byte's text, and where each byte's text ends */
    size_t ends[128], len = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '\\')
            len += (size_t)sprintf(all + len, "\\\\");
        else if (d[i] < 0x20 || d[i] >= 0x7f)
            len += (size_t)sprintf(all + len, "\\x%02x", d[i]);
        else
            len += (size_t)sprintf(all + len, "%c", d[i]);
        ends[i] = len;
    }
    size_t keep = 0, i = 0;
    while (i < n && ends[i] + 4 <= cap)   /* the bytes whose text leaves room for "..." */
        keep = ends[i++];
    bool cut = i < n;
    snprintf(out, cap, "%.*s%s", (int)keep, all, cut && keep + 4 <= cap ? "..." : "");
}

static void test_printable_rule(void **state)
{
    (void)state;
    uint32_t seed = 0x9e3779b9u;
    for (int round = 0; round < 3000; round++) {
        uint8_t d[120];
        size_t n = round % 97;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            uint8_t r = (uint8_t)(seed >> 16);
            /* mostly plain text, as names and payloads are, with escapes among it */
            d[i] = round % 3 == 0 ? r : (r & 7) == 0 ? (uint8_t)(r >> 3 & 1 ? '\\' : r) : (uint8_t)('a' + r % 26);
        }
        for (size_t cap = 1; cap < 110; cap++) {
            char a[112], b[112];
            memset(a, 'x', sizeof a);
            memset(b, 'x', sizeof b);
            kr_msg_printable(d, n, a, cap);
            printable_rule(d, n, b, cap);
            assert_string_equal(a, b);
            assert_int_equal(a[cap], 'x');    /* nothing written past the buffer */
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_like_snprintf),
        cmocka_unit_test(test_printable_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
