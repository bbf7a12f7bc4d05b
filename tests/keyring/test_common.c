/* Small helpers: hex, device ids, error lines. */
#include "testutil.h"

#include <openssl/err.h>
#include <openssl/evp.h>

static void test_hex(void **state)
{
    (void)state;
    static const uint8_t data[] = {0x00, 0x0f, 0xa0, 0xff, 0x53};
    char out[11];
    assert_string_equal(kr_hex(data, sizeof data, out), "000fa0ff53");
    assert_string_equal(kr_hex(data, 0, out), "");
    uint8_t back[5];
    assert_int_equal(kr_unhex("000FA0ff53", back, 5), 0);
    assert_memory_equal(back, data, 5);
    assert_int_equal(kr_unhex("000fa0ff5", back, 5), -1);   /* too short */
    assert_int_equal(kr_unhex("000fa0ff5g", back, 5), -1);  /* not hex */
    assert_int_equal(kr_unhex(" 00fa0ff53", back, 5), -1);
    assert_int_equal(kr_unhex(NULL, back, 5), -1);
}

static void test_device_id(void **state)
{
    (void)state;
    uint8_t id[12];
    char hex[25];
    assert_int_equal(kr_unhex("55FF6D065075555332071787", id, 12), 0);
    assert_string_equal(kr_device_id_hex(id, hex), "55ff6d065075555332071787");
    assert_int_equal(strlen(hex), KR_DEVICE_ID_HEX_LEN);
}

static void test_dir_words(void **state)
{
    (void)state;
    assert_string_equal(kr_dir_str(KR_D2S), "device->cloud");
    assert_string_equal(kr_dir_str(KR_S2D), "cloud->device");
    assert_string_equal(kr_dir_short(KR_D2S), "D->S");
    assert_string_equal(kr_dir_short(KR_S2D), "S->D");
}

static void test_errors(void **state)
{
    (void)state;
    kr_err err;
    kr_err_set(&err, "%s:%d: %s", "keys", 3, "bad");
    assert_string_equal(err.msg, "keys:3: bad");
    kr_err_set(NULL, "ignored");
    /* an OpenSSL failure is appended, and the queue is left empty */
    assert_null(EVP_CIPHER_fetch(NULL, "NO-SUCH-CIPHER", NULL));
    kr_err_set(&err, "cipher");
    kr_err_openssl(&err);
    assert_true(strlen(err.msg) > strlen("cipher"));
    assert_int_equal(ERR_peek_error(), 0);
    /* long text is cut, never overflows */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    kr_err_set(&err, "%s", big);
    assert_int_equal(strlen(err.msg), sizeof err.msg - 1);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixture_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_device_id),
        cmocka_unit_test(test_dir_words),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
