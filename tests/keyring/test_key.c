/* Key loading and checks, on keys made by the openssl command line and the docs/protocol.md 8 keys. */
#include <ctype.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "testutil.h"
#include "vectors.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

static int count_level(const kr_note *n, int cnt, kr_note_level l)
{
    int c = 0;
    for (int i = 0; i < cnt; i++)
        c += n[i].level == l;
    return c;
}

static const kr_note *find_note(const kr_note *n, int cnt, kr_note_level l, const char *word)
{
    for (int i = 0; i < cnt; i++)
        if (n[i].level == l && strstr(n[i].text, word))
            return &n[i];
    return NULL;
}

/* find_note's note, which must be there: the test fails (and does not go on) when it is not */
static const kr_note *need_note(const kr_note *n, int cnt, kr_note_level l, const char *word)
{
    const kr_note *x = find_note(n, cnt, l, word);
    if (!x) {
        fail_msg("no note of level %d with \"%s\"", (int)l, word);
        abort();   /* not reached: fail_msg ends the test */
    }
    return x;
}

static void load_error(const char *name, const char *word)
{
    kr_err err = {{0}};
    kr_key *k = kr_key_load_file(fx_path(name), &err);
    assert_null(k);
    if (!strstr(err.msg, word))
        fail_msg("%s: error \"%s\" does not mention \"%s\"", name, err.msg, word);
    /* one line naming the file */
    assert_null(strchr(err.msg, '\n'));
    assert_non_null(strstr(err.msg, name));
}

static void test_device_der(void **state)
{
    (void)state;
    size_t len;
    uint8_t *raw = fx_read("device.der", &len);
    kr_key *k = fx_key("device.der");
    assert_int_equal(k->bits, 1024);
    assert_int_equal(k->exponent, 65537);
    assert_true(k->is_private);
    assert_false(k->pem);
    assert_int_equal(k->encoding, KR_ENC_PKCS1_PRIVATE);
    assert_int_equal(k->der_len, len);
    assert_memory_equal(k->der, raw, len);
    assert_int_equal(k->trailing_len, 0);
    char fp[65];
    assert_string_equal(kr_key_fingerprint(k, fp), fx_expected("device_fp"));
    assert_int_equal(kr_key_guess_role(k), KR_ROLE_DEVICE_PRIVATE);
    assert_true(kr_key_device_layout_ok(k->der, k->der_len, NULL, 0));
    assert_true(kr_key_private_consistent(k));
    kr_note notes[16];
    int n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
    assert_int_equal(n, 0);
    /* the public half, as SubjectPublicKeyInfo, equals what openssl wrote */
    size_t plen;
    uint8_t *pub = fx_read("device.pub.der", &plen);
    uint8_t spki[600];
    assert_int_equal(kr_key_public_spki(k, spki, sizeof spki), (int)plen);
    assert_memory_equal(spki, pub, plen);
    assert_int_equal(kr_key_public_spki(k, spki, 100), -1);
    free(pub);
    free(raw);
    kr_key_free(k);
}

static void test_same_key_every_form(void **state)
{
    (void)state;
    const char *names[] = {"device.pem", "device.pkcs8.der", "device.pkcs8.pem", "device.cer",
                           "device.pub.pem", "device.pub.der", "device-slot.der", "device-junk.der"};
    const kr_key_encoding enc[] = {KR_ENC_PKCS1_PRIVATE, KR_ENC_PKCS8_PRIVATE, KR_ENC_PKCS8_PRIVATE,
                                   KR_ENC_PKCS1_PRIVATE, KR_ENC_SPKI_PUBLIC, KR_ENC_SPKI_PUBLIC,
                                   KR_ENC_PKCS1_PRIVATE, KR_ENC_PKCS1_PRIVATE};
    const bool pem[] = {true, false, true, true, true, false, false, false};
    kr_key *ref = fx_key("device.der");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        kr_key *k = fx_key(names[i]);
        assert_int_equal(k->encoding, enc[i]);
        assert_int_equal(k->pem, pem[i]);
        assert_true(kr_key_same_public(k, ref));
        assert_int_equal(k->bits, 1024);
        kr_key_free(k);
    }
    kr_key_free(ref);
}

static void test_trailing(void **state)
{
    (void)state;
    kr_key *k = fx_key("device-slot.der");
    size_t len;
    uint8_t *raw = fx_read("device.der", &len);
    assert_int_equal(k->der_len, len);
    assert_int_equal(k->trailing_len, 1024 - len);
    assert_true(k->trailing_all_ff);
    kr_note notes[16];
    int n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
    assert_non_null(find_note(notes, n, KR_NOTE_INFO, "0xFF"));
    assert_int_equal(count_level(notes, n, KR_NOTE_PROBLEM), 0);
    kr_key_free(k);

    k = fx_key("device-junk.der");
    assert_int_equal(k->trailing_len, 4);
    assert_false(k->trailing_all_ff);
    n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
    assert_non_null(find_note(notes, n, KR_NOTE_WARNING, "not erased"));
    kr_key_free(k);
    free(raw);
}

static void test_pkcs8_device_key_problem(void **state)
{
    (void)state;
    kr_key *k = fx_key("device.pkcs8.der");
    kr_note notes[16];
    int n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
    const kr_note *x = need_note(notes, n, KR_NOTE_PROBLEM, "PKCS#8");
    assert_true(x->storage);
    assert_non_null(strstr(x->text, "decryption error"));
    assert_non_null(strstr(x->fix, "openssl rsa -in"));
    assert_non_null(strstr(x->fix, "-traditional -outform DER"));
    /* the key inside is laid out fine: only the wrapping is wrong */
    assert_int_equal(count_level(notes, n, KR_NOTE_PROBLEM), 1);
    kr_key_free(k);

    k = fx_key("device.pem");
    n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
    x = need_note(notes, n, KR_NOTE_WARNING, "PEM");
    assert_true(x->storage);
    assert_int_equal(count_level(notes, n, KR_NOTE_PROBLEM), 0);
    kr_key_free(k);
}

static void test_short_integer(void **state)
{
    (void)state;
    kr_key *k = fx_key("short-int.der");
    char why[256];
    assert_false(kr_key_device_layout_ok(k->der, k->der_len, why, sizeof why));
    assert_non_null(strstr(why, "instead of"));
    kr_note notes[16];
    int n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
    const kr_note *x = need_note(notes, n, KR_NOTE_PROBLEM, "instead of");
    assert_false(x->storage);
    assert_non_null(strstr(x->fix, "particle keys doctor DEVICE_ID"));
    assert_non_null(strstr(x->fix, "sparkkeys new --device DEVICE_ID"));
    assert_true(kr_key_private_consistent(k));   /* a valid key all the same */
    kr_key_free(k);
}

static void test_exponent_and_size(void **state)
{
    (void)state;
    kr_note notes[16];
    kr_key *k = fx_key("e3.der");
    assert_int_equal(k->exponent, 3);
    int n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
    assert_non_null(find_note(notes, n, KR_NOTE_PROBLEM, "exponent 3"));
    kr_key_free(k);

    k = fx_key("small.der");
    assert_int_equal(k->bits, 512);
    n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
    assert_non_null(find_note(notes, n, KR_NOTE_PROBLEM, "RSA-512"));
    n = kr_key_check(k, KR_ROLE_ANY, notes, 16);
    assert_non_null(find_note(notes, n, KR_NOTE_WARNING, "neither"));
    assert_int_equal(count_level(notes, n, KR_NOTE_PROBLEM), 0);
    kr_key_free(k);

    k = fx_key("server.pem");
    n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
    assert_non_null(find_note(notes, n, KR_NOTE_PROBLEM, "RSA-2048"));
    n = kr_key_check(k, KR_ROLE_SERVER_PRIVATE, notes, 16);
    assert_int_equal(count_level(notes, n, KR_NOTE_PROBLEM), 0);
    kr_key_free(k);

    /* a device-sized key loads, but in the server role its size is a problem, not a warning */
    k = fx_key("device.der");
    assert_int_equal(k->bits, 1024);
    n = kr_key_check(k, KR_ROLE_SERVER_PRIVATE, notes, 16);
    assert_non_null(find_note(notes, n, KR_NOTE_PROBLEM, "RSA-1024: server keys are RSA-2048"));
    assert_null(find_note(notes, n, KR_NOTE_WARNING, "RSA-1024"));
    n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
    assert_int_equal(count_level(notes, n, KR_NOTE_PROBLEM), 0);
    kr_key_free(k);
}

static void test_server_public_forms(void **state)
{
    (void)state;
    kr_note notes[16];
    kr_key *k = fx_key("server.pub.der");
    assert_int_equal(k->der_len, KR_SERVER_SPKI_LEN);
    assert_int_equal(kr_key_guess_role(k), KR_ROLE_SERVER_PUBLIC);
    int n = kr_key_check(k, KR_ROLE_SERVER_PUBLIC, notes, 16);
    /* one note only: not the Particle cloud key, with its fingerprint and the command for Particle's */
    assert_int_equal(n, 1);
    assert_int_equal(notes[0].level, KR_NOTE_INFO);
    char fp[65];
    assert_string_equal(kr_key_fingerprint(k, fp), fx_expected("server_fp"));
    assert_non_null(strstr(notes[0].text, "not the published Particle cloud key"));
    assert_non_null(strstr(notes[0].text, fp));
    assert_non_null(strstr(notes[0].fix, "particle keys server"));
    kr_key *priv = fx_key("server.pem");
    kr_key *p8 = fx_key("server.pkcs8.pem");
    kr_key *other = fx_key("server2.pub.der");
    assert_true(kr_key_same_public(k, priv));
    assert_true(kr_key_same_public(p8, priv));
    assert_false(kr_key_same_public(k, other));

    n = kr_key_check(priv, KR_ROLE_SERVER_PUBLIC, notes, 16);
    assert_non_null(find_note(notes, n, KR_NOTE_PROBLEM, "private key"));
    kr_key_free(k);
    kr_key_free(priv);
    kr_key_free(p8);
    kr_key_free(other);

    k = fx_key("server.pub.pem");
    n = kr_key_check(k, KR_ROLE_SERVER_PUBLIC, notes, 16);
    const kr_note *x = need_note(notes, n, KR_NOTE_PROBLEM, "PEM");
    assert_true(x->storage);
    assert_non_null(strstr(x->fix, "openssl rsa -pubin -in"));
    assert_non_null(strstr(x->fix, "-outform DER"));
    kr_key_free(k);

    k = fx_key("server.rsapub.der");
    assert_int_equal(k->encoding, KR_ENC_PKCS1_PUBLIC);
    assert_false(k->is_private);
    n = kr_key_check(k, KR_ROLE_SERVER_PUBLIC, notes, 16);
    x = need_note(notes, n, KR_NOTE_PROBLEM, "RSAPublicKey");
    assert_non_null(strstr(x->fix, "-RSAPublicKey_in"));
    kr_key_free(k);
}

static void test_load_errors(void **state)
{
    (void)state;
    load_error("truncated.der", "truncated");
    load_error("enc.pem", "password");
    load_error("enc-trad.pem", "password");
    load_error("enc.der", "password");
    load_error("ec.pem", "EC");
    load_error("ec.der", "EC");
    load_error("ec.pub.pem", "EC");
    load_error("ec.pkcs8.der", "EC");
    load_error("text.txt", "not a key");
    load_error("empty.der", "empty");
    load_error("no-such-file.der", "cannot open");

    kr_err err = {{0}};
    uint8_t ff[612];
    memset(ff, 0xff, sizeof ff);
    assert_null(kr_key_load_mem(ff, sizeof ff, "slot", &err));
    assert_non_null(strstr(err.msg, "blank"));

    /* a DER header that claims more than there is, for every cut of a real key */
    size_t len;
    uint8_t *raw = fx_read("device.der", &len);
    for (size_t cut = 0; cut < len; cut += 7) {
        kr_key *k = kr_key_load_mem(raw, cut, "cut", &err);
        assert_null(k);
    }
    free(raw);
}

static void test_inconsistent_key(void **state)
{
    (void)state;
    size_t len;
    uint8_t *raw = fx_read("device.der", &len);
    raw[len - 150] ^= 0x01;   /* a bit inside p or q */
    kr_err err = {{0}};
    kr_key *k = kr_key_load_mem(raw, len, "damaged", &err);
    if (k) {
        assert_false(kr_key_private_consistent(k));
        kr_note notes[16];
        int n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
        assert_non_null(find_note(notes, n, KR_NOTE_PROBLEM, "broken key ("));
        char why[256];
        assert_true(kr_key_broken(k, why, sizeof why));
        assert_non_null(strstr(why, "damaged: broken key ("));
        kr_key_free(k);
    } else {
        assert_non_null(strstr(err.msg, "damaged"));
    }
    free(raw);
}

static void sha256_hex(const uint8_t *d, size_t n, char out[65])
{
    uint8_t h[32];
    assert_true(EVP_Digest(d, n, h, NULL, EVP_sha256(), NULL));
    kr_hex(h, 32, out);
}

static void test_protocol_keys(void **state)
{
    (void)state;
    char hex[65];
    size_t len;
    uint8_t *der = hexbytes(V81_DEVICE_PRIV, &len);
    assert_int_equal(len, 607);
    sha256_hex(der, len, hex);
    assert_string_equal(hex, V81_DEVICE_PRIV_SHA256);
    /* the slot as the test suite had it: zero padded to 612 */
    uint8_t slot[612];
    memset(slot, 0, sizeof slot);
    memcpy(slot, der, len);
    kr_err err = {{0}};
    kr_key *k = kr_key_load_mem(slot, sizeof slot, "v81-device", &err);
    assert_non_null(k);
    assert_int_equal(k->der_len, 607);
    assert_int_equal(k->trailing_len, 5);
    assert_false(k->trailing_all_ff);
    assert_true(kr_key_device_layout_ok(k->der, k->der_len, NULL, 0));   /* 02 81 80 d and 02 40 dq/qinv */
    kr_note notes[16];
    int n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
    assert_int_equal(count_level(notes, n, KR_NOTE_PROBLEM), 0);
    kr_key_free(k);
    free(der);

    k = hex_key(V81_SERVER_PUB, "v81-server");
    assert_string_equal(kr_key_fingerprint(k, hex), V81_SERVER_PUB_SHA256);
    assert_false(kr_key_is_particle_cloud(k));
    n = kr_key_check(k, KR_ROLE_SERVER_PUBLIC, notes, 16);
    assert_int_equal(n, 1);
    assert_non_null(find_note(notes, n, KR_NOTE_INFO, "not the published Particle cloud key (fingerprint "
                              V81_SERVER_PUB_SHA256));
    kr_key_free(k);

    k = hex_key(V82_SERVER_PUB, "v82-server");
    assert_string_equal(kr_key_fingerprint(k, hex), V82_SERVER_PUB_SHA256);
    kr_key_free(k);

    der = hexbytes(V82_DEVICE_PRIV, &len);
    assert_int_equal(len, 610);
    sha256_hex(der, len, hex);
    assert_string_equal(hex, V82_DEVICE_PRIV_SHA256);
    free(der);
    k = hex_key(V82_DEVICE_PRIV, "v82-device");
    uint8_t spki[200];
    size_t elen;
    uint8_t *expect = hexbytes(V82_DEVICE_SPKI, &elen);
    assert_int_equal(kr_key_public_spki(k, spki, sizeof spki), KR_DEVICE_SPKI_LEN);
    assert_memory_equal(spki, expect, elen);
    free(expect);
    kr_key_free(k);
}

static void test_particle_cloud(void **state)
{
    (void)state;
    /* the fingerprint of docs/protocol.md 5.3 */
    assert_string_equal(KR_PARTICLE_CLOUD_FINGERPRINT,
                        "aa8aba3c973ed4b668999047a09597948f36eefde525352e705fe8ef98c1677e");

    /* fingerprint matching, against the value openssl computed for server.pub.der */
    char want[80] = {0};
    FILE *f = fopen(fx_path("server.pub.sha256"), "r");
    assert_non_null(f);
    assert_non_null(fgets(want, sizeof want, f));
    fclose(f);
    want[strcspn(want, "\r\n")] = 0;
    assert_int_equal(strlen(want), 64);
    kr_key *k = fx_key("server.pub.der");
    assert_true(kr_key_has_fingerprint(k, want));
    for (char *p = want; *p; p++)   /* either case */
        *p = (char)toupper((unsigned char)*p);
    assert_true(kr_key_has_fingerprint(k, want));
    want[10] = want[10] == '0' ? '1' : '0';
    assert_false(kr_key_has_fingerprint(k, want));
    assert_false(kr_key_has_fingerprint(k, "aa8a"));
    assert_false(kr_key_is_particle_cloud(k));
    kr_key_free(k);

    /* the file spark-cli wrote to the server-key slot: key, 0xFF, address record at 384 */
    k = fx_key("server-cli.der");
    assert_int_equal(k->der_len, 294);
    assert_int_equal(k->trailing_len, 512 - 294);
    assert_false(k->trailing_all_ff);
    assert_true(k->trailing_address);
    assert_string_equal(k->trailing_address_text, "domain device.spark.io port 5683");
    kr_note notes[16];
    int n = kr_key_check(k, KR_ROLE_SERVER_PUBLIC, notes, 16);
    assert_non_null(find_note(notes, n, KR_NOTE_INFO, "server address record"));
    assert_int_equal(count_level(notes, n, KR_NOTE_WARNING), 0);
    assert_int_equal(count_level(notes, n, KR_NOTE_PROBLEM), 0);
    kr_key_free(k);
}

/* The published Particle cloud key (built by mkfixtures.sh from its modulus, checked against the published
 * fingerprint there): recognised, and said so either way with the fingerprint. */
static void test_particle_key_said(void **state)
{
    (void)state;
    kr_key *k = fx_key("particle-cloud.der");
    assert_true(kr_key_is_particle_cloud(k));
    kr_note notes[16];
    int n = kr_key_check(k, KR_ROLE_SERVER_PUBLIC, notes, 16);
    assert_int_equal(n, 1);
    assert_int_equal(notes[0].level, KR_NOTE_INFO);
    assert_non_null(strstr(notes[0].text, "the published Particle cloud key (fingerprint "
                           KR_PARTICLE_CLOUD_FINGERPRINT ")"));
    assert_string_equal(notes[0].fix, "");
    char words[KR_NOTE_TEXT_LEN];
    assert_ptr_equal(kr_key_particle_words(k, words, sizeof words), words);
    assert_string_equal(words, notes[0].text);
    kr_key_free(k);
    /* any other server key: "not", its own fingerprint, and the command that writes Particle's */
    k = fx_key("server2.pub.der");
    char fp[65];
    kr_key_fingerprint(k, fp);
    n = kr_key_check_for(k, KR_ROLE_SERVER_PUBLIC, KR_FLASH_CORE, NULL, notes, 16);
    const kr_note *x = need_note(notes, n, KR_NOTE_INFO, "not the published Particle cloud key");
    assert_non_null(strstr(x->text, fp));
    assert_non_null(strstr(x->fix, "`particle keys server`"));
    kr_key_free(k);
}

/* Broken numbers: each refused with its reason; the intact key is not broken. */
static void test_broken_keys(void **state)
{
    (void)state;
    static const struct { const char *file, *reason; } cases[] = {
        {"broken-e1.der", "public exponent 1"},
        {"broken-e2.der", "an even public exponent"},
        {"broken-d0.der", "private exponent d = 0"},
        {"broken-dp.der", "the CRT exponent dp is not d mod (p-1)"},
        {"broken-qinv.der", "the CRT coefficient qinv is not the inverse of q mod p"},
    };
    char why[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kr_key *k = fx_key(cases[i].file);
        if (!kr_key_broken(k, why, sizeof why))
            fail_msg("%s: not called broken", cases[i].file);
        if (!strstr(why, cases[i].reason) || !strstr(why, cases[i].file) || strchr(why, '\n'))
            fail_msg("%s: reason \"%s\" lacks \"%s\"", cases[i].file, why, cases[i].reason);
        assert_false(kr_key_private_consistent(k));
        kr_note notes[16];
        int n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
        const kr_note *x = need_note(notes, n, KR_NOTE_PROBLEM, cases[i].reason);
        assert_non_null(strstr(x->fix, "particle keys doctor"));
        n = kr_key_check(k, KR_ROLE_ANY, notes, 16);
        x = need_note(notes, n, KR_NOTE_PROBLEM, cases[i].reason);
        assert_non_null(strstr(x->fix, "use an intact copy of the key"));
        kr_key_free(k);
    }
    kr_key *k = fx_key("device.der");
    assert_false(kr_key_broken(k, why, sizeof why));
    assert_string_equal(why, "");
    assert_true(kr_key_private_consistent(k));
    kr_key_free(k);
    k = fx_key("device.pub.der");       /* a public key is judged on n and e */
    assert_false(kr_key_broken(k, NULL, 0));
    kr_key_free(k);
}

/* A key whose public exponent was swapped (e = 3 beside the d of e = 65537): n = p*q and the CRT values
 * still fit each other, only e does not fit d. The arithmetic check alone (the keyfile's) finds it. */
static void test_exponent_does_not_fit_d(void **state)
{
    (void)state;
    kr_key *src = fx_key("device.der");
    static const char *names[] = {
        OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
        OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn[7] = {0}, *e = BN_new();
    assert_non_null(bld);
    assert_true(BN_set_word(e, 3) && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e));
    for (int i = 0; i < 7; i++) {
        assert_int_equal(EVP_PKEY_get_bn_param(kr_key_pkey(src), names[i], &bn[i]), 1);
        assert_true(OSSL_PARAM_BLD_push_BN(bld, names[i], bn[i]));
    }
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;
    assert_true(params && pctx && EVP_PKEY_fromdata_init(pctx) == 1 &&
                EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEYPAIR, params) == 1);
    kr_err err = {{0}};
    kr_key *k = kr_key_from_pkey(pkey, "swapped-e", &err);
    assert_non_null(k);
    char why[256];
    assert_true(kr_key_numbers_broken(k, why, sizeof why));
    assert_non_null(strstr(why, "d does not invert e"));
    assert_true(kr_key_broken(k, why, sizeof why));
    assert_false(kr_key_numbers_broken(src, why, sizeof why));
    assert_string_equal(why, "");
    kr_key_free(k);
    kr_key_free(src);
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    for (int i = 0; i < 7; i++)
        BN_free(bn[i]);
    BN_free(e);
}

/* Keys over 8192 bits are refused by the loader, in one line, before any check. */
static void test_key_size_limit(void **state)
{
    (void)state;
    kr_key *k = fx_key("rsa8192.pub.der");
    assert_int_equal(k->bits, 8192);
    kr_key_free(k);
    load_error("rsa8193.pub.der", "RSA-8193: larger than 8192 bits, refused");
    load_error("rsa8193.rsapub.der", "larger than 8192 bits");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    load_error("rsa16384-fake.der", "RSA-16384: larger than 8192 bits, refused");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (s > 2.0)
        fail_msg("refusing an RSA-16384 key took %.1f s", s);
}

/* A key path that is not a regular file is refused in one line without blocking; a symlink to a key is
 * read. */
static void test_not_regular_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/sparkkeys-kt.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[64], link[64];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(link, sizeof link, "%s/link.der", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);   /* no writer: a blocking open would wait for ever */
    assert_int_equal(symlink(fx_path("device.der"), link), 0);
    static const struct { const char *path_kind, *word; } cases[] = {
        {"fifo", "a named pipe (FIFO), not a regular file: give the path of the key file itself"},
        {"dir", "a folder, not a regular file"},
        {"/dev/null", "a device, not a regular file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = i == 0 ? fifo : i == 1 ? dir : cases[i].path_kind;
        kr_err err = {{0}};
        assert_null(kr_key_load_file(path, &err));
        if (!strstr(err.msg, cases[i].word) || !strstr(err.msg, path) || strchr(err.msg, '\n'))
            fail_msg("%s: \"%s\" lacks \"%s\"", path, err.msg, cases[i].word);
        kr_flash fl;
        assert_int_equal(kr_flash_load_file(path, KR_FLASH_AUTO, &fl, &err), -1);
        assert_non_null(strstr(err.msg, "not a regular file: give the path of the dump itself"));
    }
    kr_key *k = fx_key("device.der");
    kr_err err = {{0}};
    kr_key *viaLink = kr_key_load_file(link, &err);
    assert_non_null(viaLink);
    assert_true(kr_key_same_public(k, viaLink));
    kr_key_free(k);
    kr_key_free(viaLink);
    unlink(fifo);
    unlink(link);
    rmdir(dir);
}

/* The dfu-util commands: USB ids, alternate setting, address and length of the Core and the Photon. */
static void test_dfu_commands(void **state)
{
    (void)state;
    static const struct {
        kr_flash_layout l;
        kr_area a;
        bool write;
        const char *file, *want;
    } cases[] = {
        {KR_FLASH_CORE, KR_AREA_DEVICE_KEY, false, "d.der", "dfu-util -d 1d50:607f -a 1 -s 0x00002000:1024 -U d.der"},
        {KR_FLASH_CORE, KR_AREA_DEVICE_KEY, true, "d.der", "dfu-util -d 1d50:607f -a 1 -i 0 -s 0x00002000:leave -D d.der"},
        {KR_FLASH_CORE, KR_AREA_SERVER_KEY, false, "s.der", "dfu-util -d 1d50:607f -a 1 -s 0x00001000:2048 -U s.der"},
        {KR_FLASH_CORE, KR_AREA_WHOLE, false, "c.bin", "dfu-util -d 1d50:607f -a 1 -s 0x00000000:2097152 -U c.bin"},
        {KR_FLASH_DCT, KR_AREA_DEVICE_KEY, false, "d.der", "dfu-util -d 2b04:d006 -a 1 -s 34:612 -U d.der"},
        {KR_FLASH_DCT, KR_AREA_SERVER_KEY, true, "s.der", "dfu-util -d 2b04:d006 -a 1 -i 0 -s 2082:leave -D s.der"},
        {KR_FLASH_DCT, KR_AREA_WHOLE, false, "dct.bin", "dfu-util -d 2b04:d006 -a 1 -s 0:16384 -U dct.bin"},
    };
    char out[KR_NOTE_FIX_LEN];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(kr_dfu_command(cases[i].l, cases[i].a, cases[i].write, cases[i].file, out, sizeof out),
                            cases[i].want);
    kr_dfu_command(KR_FLASH_AUTO, KR_AREA_DEVICE_KEY, true, "x.der", out, sizeof out);
    assert_non_null(strstr(out, "Core: dfu-util -d 1d50:607f -a 1 -i 0 -s 0x00002000:leave -D x.der; "
                                "Photon: dfu-util -d 2b04:d006 -a 1 -i 0 -s 34:leave -D x.der"));
    /* a PKCS#8 device key: convert with openssl, then the command that writes the result back */
    kr_key *k = fx_key("device.pkcs8.der");
    kr_note notes[16];
    int n = kr_key_check_for(k, KR_ROLE_DEVICE_PRIVATE, KR_FLASH_DCT, "0123456789abcdef01234567", notes, 16);
    const kr_note *x = need_note(notes, n, KR_NOTE_PROBLEM, "PKCS#8");
    assert_non_null(strstr(x->fix, "-traditional -outform DER -out "));
    assert_non_null(strstr(x->fix, "device.pkcs8-pkcs1.der, then write "));
    assert_non_null(strstr(x->fix, "dfu-util -d 2b04:d006 -a 1 -i 0 -s 34:leave -D "));
    assert_null(strstr(x->fix, "1d50:607f"));
    kr_key_free(k);
    /* a device key of the wrong size: a new key for that device */
    k = fx_key("small.der");
    n = kr_key_check_for(k, KR_ROLE_DEVICE_PRIVATE, KR_FLASH_CORE, "0123456789abcdef01234567", notes, 16);
    x = need_note(notes, n, KR_NOTE_PROBLEM, "RSA-512");
    assert_non_null(strstr(x->fix, "particle keys doctor 0123456789abcdef01234567"));
    kr_key_free(k);
}

/* A device's copy of the server key against the cloud's, and the cloud's record against the device key:
 * one line either way with both fingerprints, a command when they differ. */
static void test_copies_compared(void **state)
{
    (void)state;
    kr_key *srv = fx_key("server.pub.der"), *srv2 = fx_key("server2.pub.der"), *part = fx_key("particle-cloud.der");
    char text[KR_NOTE_TEXT_LEN], fix[KR_NOTE_FIX_LEN], fp[65], fp2[65];
    kr_key_fingerprint(srv, fp);
    kr_key_fingerprint(srv2, fp2);
    const char *id = "0123456789abcdef01234567";
    assert_true(kr_fix_server_copy(srv, srv, "keys/s.der", id, text, sizeof text, fix, sizeof fix));
    assert_non_null(strstr(text, "holds the cloud's server key"));
    assert_string_equal(fix, "");
    assert_false(kr_fix_server_copy(srv2, srv, "keys/s.der", id, text, sizeof text, fix, sizeof fix));
    assert_non_null(strstr(text, fp));
    assert_non_null(strstr(text, fp2));
    assert_non_null(strstr(text, "server-key-mismatch"));
    assert_non_null(strstr(fix, "particle keys server keys/s.der --host ADDRESS"));
    /* no server-public: the published Particle key is the cloud's */
    assert_true(kr_fix_server_copy(part, NULL, NULL, id, text, sizeof text, fix, sizeof fix));
    assert_non_null(strstr(text, "Particle cloud's server key"));
    assert_false(kr_fix_server_copy(srv, NULL, NULL, id, text, sizeof text, fix, sizeof fix));
    assert_non_null(strstr(text, "the published Particle cloud key is " KR_PARTICLE_CLOUD_FINGERPRINT));
    assert_non_null(strstr(fix, "`particle keys server` writes the Particle cloud key"));

    kr_key *dev = fx_key("device.der"), *pub = fx_key("device.pub.pem"), *pub2 = fx_key("device2.pub.pem");
    assert_true(kr_fix_device_record(dev, "keys/d.der", pub, id, text, sizeof text, fix, sizeof fix));
    assert_false(kr_fix_device_record(dev, "keys/d.der", pub2, id, text, sizeof text, fix, sizeof fix));
    assert_non_null(strstr(text, "device-key-mismatch"));
    assert_non_null(strstr(fix, "openssl rsa -in keys/d.der -inform DER -pubout -out " "0123456789abcdef01234567.pub.pem"));
    assert_non_null(strstr(fix, "particle keys send 0123456789abcdef01234567 0123456789abcdef01234567.pub.pem"));
    kr_key_free(srv); kr_key_free(srv2); kr_key_free(part);
    kr_key_free(dev); kr_key_free(pub); kr_key_free(pub2);
}

static void test_from_pkey(void **state)
{
    (void)state;
    kr_key *src = fx_key("device.der");
    EVP_PKEY_up_ref(kr_key_pkey(src));
    kr_err err = {{0}};
    kr_key *k = kr_key_from_pkey(kr_key_pkey(src), "copy", &err);
    assert_non_null(k);
    assert_true(k->is_private);
    assert_int_equal(k->encoding, KR_ENC_PKCS1_PRIVATE);
    assert_int_equal(k->der_len, src->der_len);
    assert_memory_equal(k->der, src->der, src->der_len);
    assert_true(kr_key_same_public(k, src));
    kr_key_free(k);
    kr_key_free(src);
    assert_null(kr_key_from_pkey(NULL, "none", &err));
}

static void test_role_words(void **state)
{
    (void)state;
    assert_string_equal(kr_role_str(KR_ROLE_DEVICE_PRIVATE), "device private key");
    assert_string_equal(kr_role_str(KR_ROLE_SERVER_PUBLIC), "server public key");
    kr_key *k = fx_key("device.pub.pem");
    assert_int_equal(kr_key_guess_role(k), KR_ROLE_DEVICE_PUBLIC);
    assert_string_equal(kr_key_encoding_str(k), "SubjectPublicKeyInfo PEM (BEGIN PUBLIC KEY)");
    kr_note notes[16];
    int n = kr_key_check(k, KR_ROLE_DEVICE_PUBLIC, notes, 16);
    assert_int_equal(n, 0);
    n = kr_key_check(k, KR_ROLE_DEVICE_PRIVATE, notes, 16);
    assert_non_null(find_note(notes, n, KR_NOTE_PROBLEM, "public key"));
    kr_key_free(k);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixture_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_der),
        cmocka_unit_test(test_same_key_every_form),
        cmocka_unit_test(test_trailing),
        cmocka_unit_test(test_pkcs8_device_key_problem),
        cmocka_unit_test(test_short_integer),
        cmocka_unit_test(test_exponent_and_size),
        cmocka_unit_test(test_server_public_forms),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_inconsistent_key),
        cmocka_unit_test(test_protocol_keys),
        cmocka_unit_test(test_particle_cloud),
        cmocka_unit_test(test_particle_key_said),
        cmocka_unit_test(test_broken_keys),
        cmocka_unit_test(test_exponent_does_not_fit_d),
        cmocka_unit_test(test_key_size_limit),
        cmocka_unit_test(test_not_regular_file),
        cmocka_unit_test(test_dfu_commands),
        cmocka_unit_test(test_copies_compared),
        cmocka_unit_test(test_from_pkey),
        cmocka_unit_test(test_role_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
