/* sparkwire tests: libkeyring's word tables (keyring/names.h) and the functions built on them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "keyring/keyring.h"

/* Every entry of a table has a distinct value and a non-empty text; returns the entry count. */
static size_t check_table(const kr_name *t)
{
    size_t n = 0;
    for (; t[n].text; n++) {
        assert_true(t[n].text[0] != '\0');
        for (size_t k = 0; k < n; k++)
            assert_true(t[k].value != t[n].value);
    }
    return n;
}

static void test_tables(void **state)
{
    (void)state;
    assert_int_equal(check_table(kr_frame_state_names), 4);
    assert_int_equal(check_table(kr_coap_type_names), 4);
    assert_int_equal(check_table(kr_coap_code_names), 7);
    assert_int_equal(check_table(kr_platform_names), 4);
    assert_int_equal(check_table(kr_var_type_names), 6);
    assert_int_equal(check_table(kr_generation_names), 3);
    assert_int_equal(check_table(kr_describe_flag_names), 4);
    assert_int_equal(check_table(kr_step_names), 6);
    assert_int_equal(check_table(kr_msg_kind_names), KR_MSG_RST + 1);
    assert_int_equal(check_table(kr_finding_names), KR_FIND_DECRYPT_ERROR);
    assert_int_equal(check_table(kr_verdict_names), KR_V_REFUSED);
    assert_int_equal(check_table(kr_step_reason_names), KR_WHY_RSA_BUDGET);
    assert_int_equal(check_table(kr_budget_why_names), KR_BUDGET_WHY_ENDED);
    assert_int_equal(check_table(kr_budget_class_names), KR_BUDGET_CLASSES);
    /* every verdict has a word and a meaning */
    for (int v = KR_V_OK; v <= KR_V_REFUSED; v++) {
        assert_true(kr_verdict_str((kr_verdict_code)v)[0] != '\0');
        assert_true(kr_verdict_meaning((kr_verdict_code)v)[0] != '\0');
    }
    assert_null(kr_name_of(kr_platform_names, 99));
}

/* A table read at its place gives what the search gives, for every value in and around it; a table not in
 * the order given is searched. */
static void test_in_order(void **state)
{
    (void)state;
    static const struct { const kr_name *t; uint32_t first; size_t n; } ordered[] = {
        { kr_msg_kind_names, KR_MSG_UNKNOWN, KR_MSG_RST + 1 }, { kr_step_names, KR_STEP_NONCE, KR_STEP_DATA },
        { kr_coap_type_names, 0, 4 }, { kr_frame_state_names, KR_FRAME_NOT_DECRYPTED, 4 },
    };
    for (size_t i = 0; i < sizeof ordered / sizeof ordered[0]; i++) {
        assert_int_equal(check_table(ordered[i].t), ordered[i].n);
        for (uint32_t v = 0; v < ordered[i].first + ordered[i].n + 3; v++) {
            const char *a = kr_name_in_order(ordered[i].t, ordered[i].first, ordered[i].n, v);
            const char *b = kr_name_of(ordered[i].t, v);
            assert_true(a == b);
        }
    }
    /* platforms are 0, 6, 8, 10: read at a place where another value stands, the search finds it */
    assert_string_equal(kr_name_in_order(kr_platform_names, 0, 4, 6), "Photon");
    assert_null(kr_name_in_order(kr_platform_names, 0, 4, 2));
    assert_string_equal(kr_step_str(KR_STEP_DATA), "data");
    assert_string_equal(kr_step_str(KR_STEP_NONE), "");
    assert_string_equal(kr_msg_kind_str(KR_MSG_RST), "rst");
    assert_string_equal(kr_msg_kind_str((kr_msg_kind)(KR_MSG_RST + 1)), "unknown");
}

static void test_words(void **state)
{
    (void)state;
    char cs[8];
    assert_string_equal(kr_coap_type_str(2), "ACK");
    assert_string_equal(kr_coap_type_str(7), "RST");   /* only the two type bits count */
    assert_string_equal(kr_coap_code_str(0x45, cs), "2.05");
    assert_string_equal(kr_coap_code_str(0x80, cs), "4.00");
    assert_string_equal(kr_name_of(kr_coap_code_names, 0x44), "2.04 Changed");
    assert_string_equal(kr_platform_str(6), "Photon");
    assert_string_equal(kr_platform_str(-1), "unknown platform");
    assert_string_equal(kr_platform_str(77), "unknown platform");
    assert_string_equal(kr_var_type_str(KR_VAR_DOUBLE), "double");
    assert_string_equal(kr_var_type_str((kr_var_type)3), "unknown");
    assert_string_equal(kr_describe_flags_str(1), "system");
    assert_string_equal(kr_describe_flags_str(2), "application");
    assert_string_equal(kr_describe_flags_str(3), "system and application");
    assert_string_equal(kr_describe_flags_str(0x09), "");   /* a padding byte read as flags */
    assert_string_equal(kr_frame_state_str(KR_FRAME_DECRYPT_ERROR), "decrypt-error");
    assert_string_equal(kr_name_of(kr_frame_state_names, KR_FRAME_DECRYPT_ERROR), "decryption error");
    assert_string_equal(kr_generation_str(0), "");
    assert_string_equal(kr_generation_str(1), "first Core firmware (52-byte id block)");
    assert_string_equal(kr_generation_str(3), "Photon firmware 0.8 or later (214-byte id block, little-endian message-id start)");
    assert_string_equal(kr_msg_kind_title(KR_MSG_CHUNK_MISSED), "Chunk missed");
    assert_string_equal(kr_msg_kind_str(KR_MSG_UPDATE_DONE), "update-done");
    assert_string_equal(kr_step_title(KR_STEP_HELLO, KR_S2D), "Cloud Hello");
    assert_string_equal(kr_step_str(KR_STEP_SESSIONBLOCK), "session-block");
    assert_string_equal(kr_finding_str(KR_FIND_OTA_INCOMPLETE), "ota-incomplete");
    assert_string_equal(kr_verdict_str(KR_V_NONE), "");
    assert_string_equal(kr_verdict_str(KR_V_REFUSED), "refused");
    assert_string_equal(kr_step_reason_str(KR_WHY_DISPUTED), "disputed");
    assert_string_equal(kr_step_reason_str(KR_WHY_NONE), "");
}

/* Printable ASCII without '"' or '\\': what cloudmon writes into JSON as it is (cm_json_word) */
static void plain(const char *w)
{
    for (const char *p = w; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
            fail_msg("the word \"%s\" needs escaping in JSON", w);
}

/* The words cloudmon writes without escaping: step, title, frame state, reason, message kind, CoAP type and
 * code, direction (and the verdict and finding words), at every value of their enums and beyond. */
static void test_json_words(void **state)
{
    (void)state;
    char cs[8];
    for (uint32_t v = 0; v < 256; v++) {
        plain(kr_step_str((kr_step_kind)v));
        plain(kr_step_title((kr_step_kind)v, KR_D2S));
        plain(kr_step_title((kr_step_kind)v, KR_S2D));
        plain(kr_frame_state_str((kr_frame_state)v));
        plain(kr_step_reason_str((kr_step_reason)v));
        plain(kr_msg_kind_str((kr_msg_kind)v));
        plain(kr_coap_type_str((uint8_t)v));
        plain(kr_coap_code_str((uint8_t)v, cs));
        plain(kr_verdict_str((kr_verdict_code)v));
        plain(kr_finding_str((kr_finding_code)v));
    }
    plain(kr_dir_str(KR_D2S));
    plain(kr_dir_str(KR_S2D));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_words),
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_json_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
