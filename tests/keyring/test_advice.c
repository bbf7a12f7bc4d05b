/* libkeyring's advice per verdict: the words cloudmon's report takes from one place. */
#include "testutil.h"

static void test_fix_texts(void **state)
{
    (void)state;
    const char *dkm = kr_verdict_fix(KR_V_DEVICE_KEY_MISMATCH);
    assert_non_null(strstr(dkm, "sparkkeys import DUMP --out DIR"));
    assert_non_null(strstr(dkm, "as the cloud's key for DEVICE."));
    /* a verdict without advice of its own */
    assert_string_equal(kr_verdict_fix(KR_V_OK), "Look at the evidence and the ladder above.");
    char *t = kr_verdict_fix_for(KR_V_UNKNOWN_DEVICE, "30ff71065067555011111111");
    assert_non_null(t);
    assert_null(strstr(t, "DEVICE"));
    assert_non_null(strstr(t, "the cloud's key for 30ff71065067555011111111."));
    assert_int_equal(strlen(t), strlen(kr_verdict_fix(KR_V_UNKNOWN_DEVICE)) - 6 + 24);
    free(t);
    t = kr_verdict_fix_for(KR_V_NOT_SPARK, "x");
    assert_string_equal(t, kr_verdict_fix(KR_V_NOT_SPARK));
    free(t);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixture_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fix_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
