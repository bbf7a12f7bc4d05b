/* sparkwire tests: the message texts made without printf (kr_txt in keyring/tracker/msg_int.h) read as
 * snprintf writes them, cut at every buffer size. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_like_snprintf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
