/* The keyfile parser: good files, and one test per kind of bad line (FILE:LINE errors). */
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

#define ID1 "53ff6d065067544809140287"
#define ID2 "0123456789abcdef01234567"
#define SESSION80 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627"

static kr_keyfile *parse(const char *text, kr_err *err)
{
    return kr_keyfile_parse(text, strlen(text), fixture_dir, "kf", err);
}

static void expect_error(const char *text, const char *where, const char *word)
{
    kr_err err = {{0}};
    kr_keyfile *kf = parse(text, &err);
    if (kf)
        fail_msg("keyfile accepted: %s", text);
    if (strncmp(err.msg, where, strlen(where)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", err.msg, where);
    if (!strstr(err.msg, word))
        fail_msg("error \"%s\" does not mention \"%s\"", err.msg, word);
    assert_null(strchr(err.msg, '\n'));
}

static void test_good_keyfile(void **state)
{
    (void)state;
    const char *text =
        "# lab keys\n"
        "\n"
        "server-private  server.pem          # RSA 2048\n"
        "server-public   server.pub.der\n"
        "device  " ID1 "  device.der\r\n"
        "device  *  device2.der\n"
        "   device " "0123456789ABCDEF01234567" " device.pkcs8.pem   \n"
        "session " ID1 " " SESSION80 "\n";
    kr_err err = {{0}};
    kr_keyfile *kf = parse(text, &err);
    if (!kf)
        fail_msg("%s", err.msg);
    assert_int_equal(kr_keyfile_count(kf), 6);
    assert_string_equal(kr_keyfile_path(kf), "");
    const kr_entry *e = kr_keyfile_entry(kf, 0);
    assert_int_equal(e->kind, KR_ENTRY_SERVER_PRIVATE);
    assert_int_equal(e->line, 3);
    assert_string_equal(e->path, fx_path("server.pem"));
    assert_null(kr_keyfile_entry(kf, 6));

    const kr_key *sp = kr_keyfile_server_private(kf);
    const kr_key *spub = kr_keyfile_server_public(kf);
    assert_non_null(sp);
    assert_non_null(spub);
    assert_true(sp->is_private);
    assert_false(spub->is_private);
    assert_true(kr_key_same_public(sp, spub));

    uint8_t id1[12], id2[12], other[12] = {0};
    kr_unhex(ID1, id1, 12);
    kr_unhex(ID2, id2, 12);
    const kr_key *d1 = kr_keyfile_device_key(kf, id1);
    const kr_key *d2 = kr_keyfile_device_key(kf, id2);   /* given in upper case */
    assert_non_null(d1);
    assert_non_null(d2);
    assert_true(kr_key_same_public(d1, d2));   /* same key, two forms */
    assert_null(kr_keyfile_device_key(kf, other));
    assert_int_equal(kr_keyfile_wildcard_count(kf), 1);
    assert_non_null(kr_keyfile_wildcard(kf, 0));
    assert_null(kr_keyfile_wildcard(kf, 1));
    assert_int_equal(kr_keyfile_device_key_count(kf), 3);
    assert_true(kr_keyfile_device_entry(kf, 1)->wildcard);
    assert_string_equal(kr_keyfile_device_entry(kf, 2)->device_id_hex, ID2);

    const uint8_t *m = kr_keyfile_session(kf, id1);
    assert_non_null(m);
    assert_int_equal(m[0], 0x00);
    assert_int_equal(m[39], 0x27);
    assert_null(kr_keyfile_session(kf, id2));
    assert_int_equal(kr_keyfile_session_count(kf), 1);
    assert_int_equal(kr_keyfile_session_entry(kf, 0)->line, 8);
    assert_null(kr_keyfile_session_entry(kf, 0)->key);

    /* the public key a device offers in its id block finds its entry */
    size_t len;
    uint8_t *spki = fx_read("device.pub.der", &len);
    const kr_entry *found = kr_keyfile_find_device_by_public(kf, spki, len);
    assert_non_null(found);
    assert_int_equal(found->line, 5);
    spki[40] ^= 1;
    assert_null(kr_keyfile_find_device_by_public(kf, spki, len));
    free(spki);
    kr_keyfile_free(kf);
}

static void test_server_public_from_private(void **state)
{
    (void)state;
    kr_err err = {{0}};
    kr_keyfile *kf = parse("server-private server.pkcs8.pem\n", &err);
    assert_non_null(kf);
    assert_ptr_equal(kr_keyfile_server_public(kf), kr_keyfile_server_private(kf));
    kr_keyfile_free(kf);
    /* server-public may name a private key: its public half is used */
    kf = parse("server-public server.pem\n", &err);
    assert_non_null(kf);
    assert_null(kr_keyfile_server_private(kf));
    assert_true(kr_keyfile_server_public(kf)->is_private);
    kr_keyfile_free(kf);
}

static void test_empty(void **state)
{
    (void)state;
    kr_keyfile *kf = kr_keyfile_new_empty();
    assert_int_equal(kr_keyfile_count(kf), 0);
    assert_null(kr_keyfile_server_private(kf));
    assert_null(kr_keyfile_server_public(kf));
    assert_int_equal(kr_keyfile_device_key_count(kf), 0);
    kr_keyfile_free(kf);
    kr_err err = {{0}};
    kf = parse("# nothing\n\n   \n", &err);
    assert_non_null(kf);
    assert_int_equal(kr_keyfile_count(kf), 0);
    kr_keyfile_free(kf);
}

static void test_bad_lines(void **state)
{
    (void)state;
    expect_error("# ok\nserver-private server.pem\ndevise " ID1 " device.der\n", "kf:3:", "unknown keyword");
    expect_error("device " ID1 " no-such.der\n", "kf:1:", "does not exist");
    expect_error("session " ID1 " " "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627\n",
                 "kf:1:", "not hex");
    expect_error("session " ID1 " 0001020304\n", "kf:1:", "80 hex digits");
    expect_error("device 53ff6d06506754480914028 device.der\n", "kf:1:", "bad device id");
    expect_error("device 53ff6d06506754480914028g device.der\n", "kf:1:", "bad device id");
    expect_error("session * " SESSION80 "\n", "kf:1:", "bad device id");
    expect_error("device " ID1 " device.der\n\ndevice " ID1 " device2.der\n", "kf:3:", "duplicate device");
    expect_error("device " ID1 " device.der\ndevice 53FF6D065067544809140287 device.pem\n", "kf:2:", "duplicate device");
    expect_error("session " ID1 " " SESSION80 "\nsession " ID1 " " SESSION80 "\n", "kf:2:", "duplicate session");
    expect_error("server-private server.pem\nserver-private server.pkcs8.pem\n", "kf:2:", "duplicate server-private");
    expect_error("server-public server.pub.der\nserver-public server.pub.pem\n", "kf:2:", "duplicate server-public");
    expect_error("device * device.der\ndevice * device.pem\n", "kf:2:", "same key");
    /* wrong kind of key */
    expect_error("device " ID1 " device.pub.pem\n", "kf:1:", "public key");
    expect_error("server-private server.pub.der\n", "kf:1:", "public key");
    expect_error("device " ID1 " server.pem\n", "kf:1:", "RSA-2048");
    expect_error("server-private device.der\n", "kf:1:", "RSA-1024");
    expect_error("server-public device.pub.der\n", "kf:1:", "RSA-1024");
    /* keys that do not load: the key's own error, with the line */
    expect_error("device " ID1 " enc.pem\n", "kf:1:", "password");
    expect_error("device " ID1 " ec.pem\n", "kf:1:", "EC");
    expect_error("device " ID1 " truncated.der\n", "kf:1:", "truncated");
    /* word counts */
    expect_error("device " ID1 "\n", "kf:1:", "device ID|* PATH");
    expect_error("server-private server.pem extra\n", "kf:1:", "server-private PATH");
    expect_error("session " ID1 "\n", "kf:1:", "session ID HEX80");
    expect_error("server-public\n", "kf:1:", "server-public PATH");
    expect_error("device a b c d e f\n", "kf:1:", "write:");
    /* binary junk (a key file given as the keyfile) */
    static const char junk[] = "server-private server.pem\n\x30\x82\x02\x5d\x00\x01\n";
    kr_err err = {{0}};
    assert_null(kr_keyfile_parse(junk, sizeof junk - 1, fixture_dir, "kf", &err));
    assert_non_null(strstr(err.msg, "kf:2:"));
    assert_non_null(strstr(err.msg, "NUL"));
}

/* block= hints on session lines: read and found by one lookup when good, absent means none, and a bad one
 * stops the load with the line named */
static void test_session_hints(void **state)
{
    (void)state;
    kr_err err = {{0}};
    kr_keyfile *kf = parse("session " ID1 " " SESSION80 "   block=0123456789ABCDEF  # hinted\n"
                           "session " ID2 " " SESSION80 "\n", &err);
    if (!kf)
        fail_msg("%s", err.msg);
    assert_int_equal(kr_keyfile_session_count(kf), 2);
    const kr_entry *e = kr_keyfile_session_entry(kf, 0);
    static const uint8_t want[KR_SESSION_HINT_LEN] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
    assert_true(e->has_hint);
    assert_memory_equal(e->hint, want, KR_SESSION_HINT_LEN);
    assert_int_equal(kr_keyfile_session_by_hint(kf, want), 0);
    assert_false(kr_keyfile_session_entry(kf, 1)->has_hint);
    static const uint8_t other[KR_SESSION_HINT_LEN] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xee };
    assert_int_equal(kr_keyfile_session_by_hint(kf, other), -1);
    static const uint8_t zero[KR_SESSION_HINT_LEN] = { 0 };
    assert_int_equal(kr_keyfile_session_by_hint(kf, zero), -1);   /* the unhinted line is not found as 0 */
    kr_keyfile_free(kf);
    kf = kr_keyfile_new_empty();
    assert_int_equal(kr_keyfile_session_by_hint(kf, want), -1);
    kr_keyfile_free(kf);

    expect_error("session " ID1 " " SESSION80 " block=0123\n", "kf:1:", "block= and 16 hex digits");
    expect_error("session " ID1 " " SESSION80 " block=0123456789abcdeg\n", "kf:1:", "block= and 16 hex digits");
    expect_error("session " ID1 " " SESSION80 " block=0123456789abcdef0\n", "kf:1:", "block= and 16 hex digits");
    expect_error("session " ID1 " " SESSION80 " hint=0123456789abcdef\n", "kf:1:", "block= and 16 hex digits");
    expect_error("session " ID1 " " SESSION80 " block=\n", "kf:1:", "block= and 16 hex digits");
    expect_error("session " ID1 " " SESSION80 " block=0123456789abcdef\n\nsession " ID2 " " SESSION80
                 " block=0123456789ABCDEF\n", "kf:3:", "duplicate hint");
    expect_error("session " ID1 " " SESSION80 " block=0123456789abcdef extra\n", "kf:1:",
                 "session ID HEX80 [block=HEX16]");
}

static void test_load_relative(void **state)
{
    (void)state;
    char dir[] = "/tmp/keyring-kf-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[512], path[600];
    snprintf(sub, sizeof sub, "%s/keys", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    size_t len;
    uint8_t *der = fx_read("device.der", &len);
    snprintf(path, sizeof path, "%s/keys/d.der", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(der, 1, len, f);
    fclose(f);
    free(der);
    char kfpath[600];
    snprintf(kfpath, sizeof kfpath, "%s/keyfile", dir);
    f = fopen(kfpath, "w");
    fprintf(f, "device " ID1 " keys/d.der\n");
    fclose(f);

    kr_err err = {{0}};
    kr_keyfile *kf = kr_keyfile_load(kfpath, &err);
    if (!kf)
        fail_msg("%s", err.msg);
    assert_string_equal(kr_keyfile_path(kf), kfpath);
    assert_string_equal(kr_keyfile_entry(kf, 0)->path, path);
    kr_keyfile_free(kf);

    /* the same line in a keyfile elsewhere does not find the key */
    f = fopen(kfpath, "w");
    fprintf(f, "device " ID1 " d.der\n");
    fclose(f);
    kf = kr_keyfile_load(kfpath, &err);
    assert_null(kf);
    assert_non_null(strstr(err.msg, ":1: key file"));
    assert_non_null(strstr(err.msg, kfpath));

    unlink(path);
    unlink(kfpath);
    rmdir(sub);
    rmdir(dir);

    kf = kr_keyfile_load("/nonexistent/keyfile", &err);
    assert_null(kf);
    assert_non_null(strstr(err.msg, "/nonexistent/keyfile: cannot open"));
}


/* device-server-key, device-public and server keys bound to a cloud address. */
static void test_new_lines(void **state)
{
    (void)state;
    const char *text =
        "server-private server.pem cloud=192.0.2.10\n"
        "server-public server2.pub.der cloud=[2001:db8::1]:5683\n"
        "server-public server.pub.der\n"
        "device-server-key " ID1 " server-cli.der\n"
        "device-public " ID1 " device.pub.pem\n"
        "device-public " ID2 " device2.pub.pem\n";
    kr_err err = {{0}};
    kr_keyfile *kf = parse(text, &err);
    if (!kf)
        fail_msg("%s", err.msg);
    assert_int_equal(kr_keyfile_count(kf), 6);
    uint8_t id1[12], id2[12];
    kr_unhex(ID1, id1, 12);
    kr_unhex(ID2, id2, 12);
    /* the device's copy of the server key: the flash slot, address record and all */
    assert_non_null(kr_keyfile_device_server_key(kf, id1));
    assert_null(kr_keyfile_device_server_key(kf, id2));
    assert_int_equal(kr_keyfile_device_server_key_count(kf), 1);
    assert_int_equal(kr_keyfile_device_server_key_entry(kf, 0)->line, 4);
    assert_non_null(kr_keyfile_device_public(kf, id2));
    assert_null(kr_keyfile_device_key(kf, id1));   /* a device-public line is not a device key */
    assert_int_equal(kr_keyfile_device_key_count(kf), 0);

    uint8_t v4[16] = { 192, 0, 2, 10 }, v4b[16] = { 192, 0, 2, 11 }, v6[16];
    int fam;
    uint16_t port;
    assert_int_equal(kr_keyfile_parse_cloud("[2001:db8::1]", &fam, v6, &port), 0);
    assert_int_equal(fam, 6);
    assert_int_equal(port, 0);
    /* bound private key for 192.0.2.10 only; the unbound public key for every other cloud */
    const kr_entry *e = kr_keyfile_server_entry(kf, KR_ENTRY_SERVER_PRIVATE, 4, v4, 5683);
    assert_non_null(e);
    assert_true(e->bound);
    assert_string_equal(e->cloud, "192.0.2.10");
    assert_null(kr_keyfile_server_entry(kf, KR_ENTRY_SERVER_PRIVATE, 4, v4b, 5683));
    assert_null(kr_keyfile_server_entry(kf, KR_ENTRY_SERVER_PRIVATE, 0, NULL, 0));
    e = kr_keyfile_server_entry(kf, KR_ENTRY_SERVER_PUBLIC, 6, v6, 5683);
    assert_int_equal(e->line, 2);
    e = kr_keyfile_server_entry(kf, KR_ENTRY_SERVER_PUBLIC, 6, v6, 80);   /* another port */
    assert_int_equal(e->line, 3);
    e = kr_keyfile_server_entry(kf, KR_ENTRY_SERVER_PUBLIC, 4, v4, 5683);
    assert_false(e->bound);
    /* tools that serve one cloud get the unbound key, else the first bound one */
    assert_true(kr_keyfile_server_private(kf)->is_private);
    assert_int_equal(kr_keyfile_server_public(kf)->bits, 2048);
    kr_keyfile_free(kf);

    expect_error("server-public server.pub.der cloud=192.0.2.300\n", "kf:1:", "bad cloud address");
    expect_error("server-public server.pub.der cloud=[2001:db8::1\n", "kf:1:", "bad cloud address");
    expect_error("server-public server.pub.der cloud=192.0.2.1:0\n", "kf:1:", "bad cloud address");
    expect_error("server-public server.pub.der cloud=192.0.2.1:99999\n", "kf:1:", "bad cloud address");
    expect_error("server-public server.pub.der 192.0.2.1\n", "kf:1:", "cloud=ADDR");
    expect_error("server-public server.pub.der cloud=192.0.2.1\nserver-public server2.pub.der cloud=192.0.2.1\n",
                 "kf:2:", "duplicate server-public for cloud 192.0.2.1");
    expect_error("device-server-key " ID1 " device.pub.der\n", "kf:1:", "RSA-1024");
    expect_error("device-public " ID1 " server.pub.der\n", "kf:1:", "RSA-2048");
    expect_error("device-public " ID1 " device.pub.der\ndevice-public " ID1 " device2.pub.pem\n", "kf:2:",
                 "duplicate device-public");
    expect_error("device-server-key * server.pub.der\n", "kf:1:", "bad device id");
    expect_error("device-public " ID1 "\n", "kf:1:", "device-public ID PATH");
}

/* Paths that do not fit, files that are not regular, keys the checks call broken. */
static void test_refused_files(void **state)
{
    (void)state;
    char line[3000];
    char longname[1100];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    snprintf(line, sizeof line, "device " ID1 " %s\n", longname);
    expect_error(line, "kf:1:", "move the key to a shorter path");
    expect_error("device " ID1 " .\n", "kf:1:", "not a regular file");

    char dir[] = "/tmp/keyring-kfb-XXXXXX";
    assert_non_null(mkdtemp(dir));
    size_t len;
    uint8_t *der = fx_read("device.der", &len);
    der[len - 1] ^= 0x01;      /* the last number: the CRT coefficient */
    char path[600];
    snprintf(path, sizeof path, "%s/broken.der", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(der, 1, len, f);
    fclose(f);
    free(der);
    snprintf(line, sizeof line, "# a corrupt copy\ndevice " ID1 " %s\n", path);
    expect_error(line, "kf:2:", "broken key (the CRT coefficient qinv is not the inverse of q mod p)");
    unlink(path);
    rmdir(dir);
}

/* Many device lines naming few key files load; lookups find every id. (Speed is measured in tests/bench.) */
static void test_many_devices(void **state)
{
    (void)state;
    const int n = 5000;
    size_t cap = (size_t)(n + 1) * 64, len = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(t + len, cap - len, "device %024x %s\n", i, i % 2 ? "device.der" : "device2.der");
    kr_err err = {{0}};
    kr_keyfile *kf = kr_keyfile_parse(t, len, fixture_dir, "kf", &err);
    if (!kf)
        fail_msg("%s", err.msg);
    assert_int_equal(kr_keyfile_device_key_count(kf), n);
    uint8_t id[12] = {0};
    id[10] = (uint8_t)(4321 >> 8);
    id[11] = (uint8_t)(4321 & 0xff);
    assert_ptr_equal(kr_keyfile_device_key(kf, id), kr_keyfile_device_entry(kf, 1)->key);
    id[0] = 1;
    assert_null(kr_keyfile_device_key(kf, id));
    kr_keyfile_free(kf);
    snprintf(t + len, cap - len, "device 000000000000000000000007 device.der\n");
    expect_error(t, "kf:5001:", "duplicate device");
    free(t);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixture_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_keyfile),
        cmocka_unit_test(test_server_public_from_private),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_session_hints),
        cmocka_unit_test(test_load_relative),
        cmocka_unit_test(test_new_lines),
        cmocka_unit_test(test_refused_files),
        cmocka_unit_test(test_many_devices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
