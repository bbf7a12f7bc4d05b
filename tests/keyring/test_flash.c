/* Flash dumps: a Core external flash image and a Photon DCT built with dd from openssl-made keys. */
#include "testutil.h"

static void load_dump(const char *name, kr_flash_layout layout, kr_flash *f)
{
    kr_err err = {{0}};
    if (kr_flash_load_file(fx_path(name), layout, f, &err) != 0)
        fail_msg("%s: %s", name, err.msg);
}

static void test_core_dump(void **state)
{
    (void)state;
    kr_flash f;
    load_dump("core.bin", KR_FLASH_AUTO, &f);
    assert_int_equal(f.layout, KR_FLASH_CORE);
    assert_int_equal(f.dump_len, 2 * 1024 * 1024);
    assert_int_equal(f.device_private.state, KR_SLOT_KEY);
    assert_int_equal(f.device_private.offset, 0x2000);
    char fp[65];
    assert_string_equal(kr_key_fingerprint(f.device_private.key, fp), fx_expected("device_fp"));
    assert_true(f.device_private.key->trailing_all_ff);
    assert_int_equal(f.server_public.state, KR_SLOT_KEY);
    assert_int_equal(f.server_public.offset, 0x1000);
    assert_int_equal(f.server_public.key->der_len, 294);
    assert_string_equal(kr_key_fingerprint(f.server_public.key, fp), fx_expected("server_fp"));
    assert_int_equal(f.device_public.state, KR_SLOT_ABSENT);
    assert_int_equal(f.address.state, KR_SLOT_KEY);
    assert_int_equal(f.address.offset, 0x1180);
    assert_int_equal(f.address.type, 1);
    assert_int_equal(f.address.len, 15);
    assert_string_equal(f.address.host, "device.spark.io");
    assert_int_equal(f.address.port, 5683);
    assert_int_equal(f.address.port_used, 5683);
    assert_int_equal(f.n_found, 0);
    kr_flash_clear(&f);
    assert_null(f.device_private.key);

    /* keys written elsewhere are found too */
    load_dump("core-backup.bin", KR_FLASH_AUTO, &f);
    assert_int_equal(f.n_found, 3);
    assert_int_equal(f.found[0].offset, 0x80000);
    assert_true(f.found[0].key->is_private);
    assert_int_equal(f.found[0].key->bits, 1024);
    assert_false(kr_key_same_public(f.found[0].key, f.device_private.key));
    assert_int_equal(f.found[1].offset, 0x81000);
    assert_int_equal(f.found[1].key->bits, 2048);
    assert_false(kr_key_same_public(f.found[1].key, f.server_public.key));
    assert_int_equal(f.found[2].offset, 0x82000);
    assert_true(kr_key_same_public(f.found[2].key, f.device_private.key));
    kr_flash_clear(&f);
    assert_int_equal(f.n_found, 0);
    /* a PKCS#8 key holds a PKCS#1 key inside: not reported as another key */
    load_dump("core-pkcs8.bin", KR_FLASH_CORE, &f);
    assert_int_equal(f.n_found, 0);
    kr_flash_clear(&f);
    /* the DCT's own public key slot is not "another" key */
    load_dump("dct.bin", KR_FLASH_DCT, &f);
    assert_int_equal(f.n_found, 0);
    kr_flash_clear(&f);

    /* a read of the first 12 KB has both keys too */
    load_dump("core-short.bin", KR_FLASH_AUTO, &f);
    assert_int_equal(f.layout, KR_FLASH_CORE);
    assert_int_equal(f.device_private.state, KR_SLOT_KEY);
    assert_int_equal(f.server_public.state, KR_SLOT_KEY);
    kr_flash_clear(&f);
}

static void test_blank_and_missing(void **state)
{
    (void)state;
    kr_flash f;
    load_dump("core-blank.bin", KR_FLASH_AUTO, &f);
    assert_int_equal(f.device_private.state, KR_SLOT_BLANK);
    assert_non_null(strstr(f.device_private.why, "blank"));
    assert_non_null(strstr(f.device_private.why, "0x2000"));
    assert_int_equal(f.server_public.state, KR_SLOT_BLANK);
    assert_int_equal(f.address.state, KR_SLOT_BLANK);
    assert_null(f.device_private.key);
    kr_flash_clear(&f);

    load_dump("core-nodevice.bin", KR_FLASH_CORE, &f);
    assert_int_equal(f.device_private.state, KR_SLOT_BLANK);
    assert_int_equal(f.server_public.state, KR_SLOT_KEY);
    kr_flash_clear(&f);

    load_dump("core-tooshort.bin", KR_FLASH_CORE, &f);
    assert_int_equal(f.device_private.state, KR_SLOT_ABSENT);
    assert_non_null(strstr(f.device_private.why, "not in the dump"));
    assert_int_equal(f.server_public.state, KR_SLOT_KEY);
    kr_flash_clear(&f);

    load_dump("core-garbage.bin", KR_FLASH_CORE, &f);
    assert_int_equal(f.device_private.state, KR_SLOT_INVALID);
    assert_non_null(strstr(f.device_private.why, "not a valid key"));
    kr_flash_clear(&f);

    /* not a dump at all */
    kr_err err = {{0}};
    uint8_t small[2500];
    memset(small, 0xff, sizeof small);
    assert_int_equal(kr_flash_parse(small, sizeof small, KR_FLASH_AUTO, &f, &err), -1);
    assert_non_null(strstr(err.msg, "too short"));
    size_t klen;
    uint8_t *key = fx_read("device.der", &klen);   /* a key file is not a dump */
    assert_int_equal(kr_flash_parse(key, klen, KR_FLASH_AUTO, &f, &err), -1);
    assert_non_null(strstr(err.msg, "sparkkeys show"));
    free(key);
    assert_int_equal(kr_flash_load_file(fx_path("no-such.bin"), KR_FLASH_AUTO, &f, &err), -1);
    assert_non_null(strstr(err.msg, "cannot open"));
}

static void test_slot_contents(void **state)
{
    (void)state;
    size_t len;
    uint8_t *dump = fx_read("core-nodevice.bin", &len);
    kr_flash f;
    kr_err err = {{0}};

    /* PKCS#8 in the device slot: a key, which the checks flag */
    assert_int_equal(kr_flash_load_file(fx_path("core-pkcs8.bin"), KR_FLASH_CORE, &f, &err), 0);
    assert_int_equal(f.device_private.state, KR_SLOT_KEY);
    assert_int_equal(f.device_private.key->encoding, KR_ENC_PKCS8_PRIVATE);
    kr_note notes[8];
    int n = kr_key_check(f.device_private.key, KR_ROLE_DEVICE_PRIVATE, notes, 8);
    assert_true(n >= 1);
    assert_int_equal(notes[0].level, KR_NOTE_PROBLEM);
    kr_flash_clear(&f);

    /* a public key where the private key belongs */
    size_t plen;
    uint8_t *pub = fx_read("device.pub.der", &plen);
    memcpy(dump + 0x2000, pub, plen);
    assert_int_equal(kr_flash_parse(dump, len, KR_FLASH_CORE, &f, &err), 0);
    assert_int_equal(f.device_private.state, KR_SLOT_INVALID);
    assert_non_null(strstr(f.device_private.why, "public key"));
    kr_flash_clear(&f);
    free(pub);

    /* a private key whose numbers do not fit together */
    size_t dlen;
    uint8_t *der = fx_read("device.der", &dlen);
    der[dlen - 150] ^= 0x01;
    memcpy(dump + 0x2000, der, dlen);
    assert_int_equal(kr_flash_parse(dump, len, KR_FLASH_CORE, &f, &err), 0);
    assert_int_equal(f.device_private.state, KR_SLOT_INVALID);
    kr_flash_clear(&f);
    free(der);

    /* address records: IPv4 with port 0 (default), and an invalid type */
    static const uint8_t ip[] = {0, 4, 192, 168, 1, 20};
    memset(dump + 0x1180, 0xff, 128);
    memcpy(dump + 0x1180, ip, sizeof ip);
    dump[0x1180 + 66] = 0;
    dump[0x1180 + 67] = 0;
    assert_int_equal(kr_flash_parse(dump, len, KR_FLASH_CORE, &f, &err), 0);
    assert_int_equal(f.address.state, KR_SLOT_KEY);
    assert_string_equal(f.address.host, "192.168.1.20");
    assert_int_equal(f.address.port, 0);
    assert_int_equal(f.address.port_used, 5683);
    kr_flash_clear(&f);
    dump[0x1180] = 7;
    assert_int_equal(kr_flash_parse(dump, len, KR_FLASH_CORE, &f, &err), 0);
    assert_int_equal(f.address.state, KR_SLOT_INVALID);
    assert_non_null(strstr(f.address.why, "device.spark.io"));
    kr_flash_clear(&f);
    free(dump);
}

/* Dumps are told apart by content and size: a 4,352-byte read from a Core's address 0 is a short Core
 * read (ending inside the server key), not a DCT; a DCT is known by its keys, or by its 16 KB. */
static void test_layout_by_content(void **state)
{
    (void)state;
    kr_flash f;
    load_dump("core-4352.bin", KR_FLASH_AUTO, &f);
    assert_int_equal(f.layout, KR_FLASH_CORE);
    assert_non_null(strstr(f.layout_why, "Core's addresses"));
    assert_int_equal(f.server_public.state, KR_SLOT_ABSENT);
    assert_non_null(strstr(f.server_public.why, "the dump ends inside it (at 0x1100"));
    assert_int_equal(f.device_private.state, KR_SLOT_ABSENT);
    char fix[KR_NOTE_FIX_LEN];
    kr_flash_slot_fix(&f, &f.server_public, NULL, fix, sizeof fix);
    assert_non_null(strstr(fix, "dfu-util -d 1d50:607f -a 1 -s 0x00000000:2097152 -U core-flash.bin"));
    kr_flash_clear(&f);

    load_dump("dct.bin", KR_FLASH_AUTO, &f);
    assert_int_equal(f.layout, KR_FLASH_DCT);
    assert_non_null(strstr(f.layout_why, "DCT's offsets"));
    kr_flash_clear(&f);

    load_dump("core-blank.bin", KR_FLASH_AUTO, &f);   /* no key anywhere: 2 MB is no DCT */
    assert_int_equal(f.layout, KR_FLASH_CORE);
    assert_non_null(strstr(f.layout_why, "not the 16384 of a DCT read"));
    /* blank slots: a server key for the Particle cloud or one's own, a new device key */
    kr_flash_slot_fix(&f, &f.server_public, NULL, fix, sizeof fix);
    assert_non_null(strstr(fix, "`particle keys server` writes the Particle cloud key"));
    kr_flash_slot_fix(&f, &f.device_private, "0123456789abcdef01234567", fix, sizeof fix);
    assert_non_null(strstr(fix, "particle keys doctor 0123456789abcdef01234567"));
    kr_flash_clear(&f);

    load_dump("core-particle.bin", KR_FLASH_AUTO, &f);
    assert_int_equal(f.layout, KR_FLASH_CORE);
    assert_int_equal(f.server_public.state, KR_SLOT_KEY);
    assert_true(kr_key_is_particle_cloud(f.server_public.key));
    kr_flash_slot_fix(&f, &f.server_public, NULL, fix, sizeof fix);
    assert_string_equal(fix, "");
    kr_flash_clear(&f);
}

static void test_dct(void **state)
{
    (void)state;
    kr_flash f;
    load_dump("dct.bin", KR_FLASH_AUTO, &f);
    assert_int_equal(f.layout, KR_FLASH_DCT);
    assert_int_equal(f.device_private.state, KR_SLOT_KEY);
    assert_int_equal(f.device_private.offset, 34);
    assert_int_equal(f.device_public.state, KR_SLOT_KEY);
    assert_true(kr_key_same_public(f.device_public.key, f.device_private.key));
    assert_int_equal(f.server_public.state, KR_SLOT_KEY);
    assert_int_equal(f.server_public.offset, 2082);
    assert_int_equal(f.address.state, KR_SLOT_KEY);
    assert_int_equal(f.address.type, 0);
    assert_string_equal(f.address.host, "10.1.2.3");
    assert_int_equal(f.address.port, 5684);
    char fp[65];
    assert_string_equal(kr_key_fingerprint(f.server_public.key, fp), fx_expected("server_fp"));
    kr_flash_clear(&f);
    /* forced to the Core layout, the same file holds no keys where a Core keeps them */
    load_dump("dct.bin", KR_FLASH_CORE, &f);
    assert_int_equal(f.layout, KR_FLASH_CORE);
    assert_int_not_equal(f.device_private.state, KR_SLOT_KEY);
    assert_int_not_equal(f.server_public.state, KR_SLOT_KEY);
    kr_flash_clear(&f);
    assert_string_equal(kr_slot_state_str(KR_SLOT_BLANK), "blank");
    assert_string_equal(kr_flash_layout_str(KR_FLASH_DCT), "Photon/P1 DCT");
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixture_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_dump),
        cmocka_unit_test(test_blank_and_missing),
        cmocka_unit_test(test_slot_contents),
        cmocka_unit_test(test_dct),
        cmocka_unit_test(test_layout_by_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
