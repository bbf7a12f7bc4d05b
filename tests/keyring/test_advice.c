/* libkeyring's advice per verdict and its session-line writer: the words cloudmon's report, the plugin and
 * sparkwire-gen take from one place. */
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

static void test_session_lines(void **state)
{
    (void)state;
    uint8_t m1[KR_SESSION_LEN], m2[KR_SESSION_LEN];
    for (int i = 0; i < KR_SESSION_LEN; i++) {
        m1[i] = (uint8_t)i;
        m2[i] = (uint8_t)(0xff - i);
    }
    const char *a = "55ff6d065075555332071787", *b = "53ff6c065067544816300187";
    kr_session_lines *s = kr_session_lines_new();
    assert_non_null(s);
    char text[4 * KR_SESSION_LINE_MAX] = "", line[KR_SESSION_LINE_MAX];
    size_t n = kr_session_line(s, a, m1, NULL, line);
    assert_int_equal(n, strlen(line));
    assert_string_equal(line, "session 55ff6d065075555332071787 000102030405060708090a0b0c0d0e0f101112131415161718191a"
                              "1b1c1d1e1f2021222324252627\n");
    strcat(text, line);
    n = kr_session_line(s, a, m2, NULL, line);
    assert_int_equal(n, strlen(line));
    assert_true(strncmp(line, "# another connection: session 55ff6d065075555332071787 fffefd", 61) == 0);
    strcat(text, line);
    const uint8_t hint[KR_SESSION_HINT_LEN] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
    n = kr_session_line(s, b, m2, hint, line);
    assert_int_equal(n, strlen(line));
    assert_true(strncmp(line, "session 53ff6c065067544816300187 fffefd", 39) == 0);
    assert_string_equal(line + n - 24, " block=0123456789abcdef\n");
    strcat(text, line);
    /* not an id: no line */
    assert_int_equal(kr_session_line(s, "55ff6d06507555533207178", m1, NULL, line), 0);
    assert_int_equal(kr_session_line(s, "55ff6d065075555332071787a", m1, NULL, line), 0);
    assert_int_equal(kr_session_line(s, "55ff6d06507555533207178g", m1, NULL, line), 0);
    assert_string_equal(line, "");
    kr_session_lines_free(s);

    /* what was written loads as a keyfile: one session per device */
    kr_err err = {{0}};
    kr_keyfile *kf = kr_keyfile_parse(text, strlen(text), NULL, "sessions", &err);
    if (!kf)
        fail_msg("%s", err.msg);
    assert_int_equal(kr_keyfile_session_count(kf), 2);
    /* the hint written is the one read back, and names b's line */
    long i = kr_keyfile_session_by_hint(kf, hint);
    assert_int_equal(i, 1);
    assert_true(kr_keyfile_session_entry(kf, 1)->has_hint);
    assert_false(kr_keyfile_session_entry(kf, 0)->has_hint);
    kr_keyfile_free(kf);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixture_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fix_texts),
        cmocka_unit_test(test_session_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
