/* Handshake crypto: blocks made by `openssl pkeyutl` / `openssl mac`, and the docs/protocol.md 8.1 / 8.2 vectors. */
#include "testutil.h"
#include "vectors.h"

#include <openssl/evp.h>

static void fx_exact(const char *name, uint8_t *out, size_t want)
{
    size_t len;
    uint8_t *b = fx_read(name, &len);
    assert_int_equal(len, want);
    memcpy(out, b, len);
    free(b);
}

static void hex_exact(const char *hex, uint8_t *out, size_t want)
{
    size_t len;
    uint8_t *b = hexbytes(hex, &len);
    assert_int_equal(len, want);
    memcpy(out, b, len);
    free(b);
}

static void test_idblock_g1(void **state)
{
    (void)state;
    kr_key *sp = fx_key("server.pem");
    uint8_t block[256], nonce[40], id[12];
    fx_exact("idblock52.bin", block, 256);
    fx_exact("nonce.bin", nonce, 40);
    fx_exact("id.bin", id, 12);
    kr_idblock ib;
    assert_int_equal(kr_hs_open_idblock(sp, block, nonce, &ib), KR_HS_OK);
    assert_int_equal(ib.plain_len, 52);
    assert_false(ib.has_public_key);
    assert_memory_equal(ib.nonce, nonce, 40);
    assert_memory_equal(ib.device_id, id, 12);
    assert_string_equal(ib.device_id_hex, fx_expected("id"));
    /* without the captured nonce the echo is not checked */
    assert_int_equal(kr_hs_open_idblock(sp, block, NULL, &ib), KR_HS_OK);
    /* another nonce: the id is still read */
    nonce[7] ^= 0x40;
    assert_int_equal(kr_hs_open_idblock(sp, block, nonce, &ib), KR_HS_NONCE);
    assert_string_equal(ib.device_id_hex, fx_expected("id"));
    kr_key_free(sp);
}

static void test_idblock_g2(void **state)
{
    (void)state;
    kr_key *sp = fx_key("server.pkcs8.pem");
    uint8_t block[256], nonce[40], spki[162];
    fx_exact("idblock214.bin", block, 256);
    fx_exact("nonce.bin", nonce, 40);
    fx_exact("device.pub.der", spki, 162);
    kr_idblock ib;
    assert_int_equal(kr_hs_open_idblock(sp, block, nonce, &ib), KR_HS_OK);
    assert_int_equal(ib.plain_len, 214);
    assert_true(ib.has_public_key);
    assert_memory_equal(ib.public_key, spki, 162);
    kr_key_free(sp);
}

static void test_idblock_failures(void **state)
{
    (void)state;
    kr_key *sp = fx_key("server.pem");
    kr_key *other = fx_key("server2.pem");
    kr_key *pub = fx_key("server.pub.der");
    uint8_t block[256], nonce[40];
    fx_exact("idblock52.bin", block, 256);
    fx_exact("nonce.bin", nonce, 40);
    kr_idblock ib;
    /* made for another server key */
    assert_int_equal(kr_hs_open_idblock(other, block, nonce, &ib), KR_HS_DECRYPT);
    fx_exact("idblock-other.bin", block, 256);
    assert_int_equal(kr_hs_open_idblock(sp, block, nonce, &ib), KR_HS_DECRYPT);
    /* a public key cannot open anything */
    assert_int_equal(kr_hs_open_idblock(pub, block, nonce, &ib), KR_HS_NO_KEY);
    assert_int_equal(kr_hs_open_idblock(NULL, block, nonce, &ib), KR_HS_NO_KEY);
    /* too short a plaintext */
    fx_exact("idblock30.bin", block, 256);
    assert_int_equal(kr_hs_open_idblock(sp, block, nonce, &ib), KR_HS_LENGTH);
    assert_int_equal(ib.plain_len, 30);
    /* a damaged block */
    fx_exact("idblock52.bin", block, 256);
    block[100] ^= 0x01;
    assert_int_equal(kr_hs_open_idblock(sp, block, nonce, &ib), KR_HS_DECRYPT);
    /* a device key (1024) cannot have made a 256-byte block */
    kr_key *dev = fx_key("device.der");
    fx_exact("idblock52.bin", block, 256);
    assert_int_equal(kr_hs_open_idblock(dev, block, nonce, &ib), KR_HS_DECRYPT);
    kr_key_free(dev);
    kr_key_free(sp);
    kr_key_free(other);
    kr_key_free(pub);
}

static void test_session_open(void **state)
{
    (void)state;
    kr_key *dev = fx_key("device.der");
    uint8_t e[128], m[40], want[40];
    fx_exact("e.bin", e, 128);
    fx_exact("m.bin", want, 40);
    assert_int_equal(kr_hs_open_session(dev, e, m), KR_HS_OK);
    assert_memory_equal(m, want, 40);

    fx_exact("e-other.bin", e, 128);
    assert_int_equal(kr_hs_open_session(dev, e, m), KR_HS_DECRYPT);
    fx_exact("e41.bin", e, 128);
    assert_int_equal(kr_hs_open_session(dev, e, m), KR_HS_LENGTH);
    kr_key *pub = fx_key("device.pub.pem");
    assert_int_equal(kr_hs_open_session(pub, e, m), KR_HS_NO_KEY);
    kr_key *srv = fx_key("server.pem");
    fx_exact("e.bin", e, 128);
    assert_int_equal(kr_hs_open_session(srv, e, m), KR_HS_DECRYPT);
    kr_key_free(srv);
    kr_key_free(pub);
    kr_key_free(dev);
}

static void test_hmac_and_signature(void **state)
{
    (void)state;
    uint8_t e[128], m[40], hmac[20], want[20], sig[256], rec[20];
    fx_exact("e.bin", e, 128);
    fx_exact("m.bin", m, 40);
    fx_exact("hmac.bin", want, 20);
    assert_int_equal(kr_hs_hmac(m, e, hmac), 0);
    assert_memory_equal(hmac, want, 20);

    kr_key *spub = fx_key("server.pub.der");
    kr_key *spriv = fx_key("server.pem");
    kr_key *other = fx_key("server2.pub.der");
    fx_exact("sig.bin", sig, 256);
    memset(rec, 0, sizeof rec);
    assert_int_equal(kr_hs_verify_signature(spub, sig, hmac, rec), KR_HS_OK);
    assert_memory_equal(rec, want, 20);
    assert_int_equal(kr_hs_verify_signature(spub, sig, NULL, NULL), KR_HS_OK);
    assert_int_equal(kr_hs_verify_signature(spriv, sig, hmac, NULL), KR_HS_OK);
    /* signed by another server */
    assert_int_equal(kr_hs_verify_signature(other, sig, hmac, NULL), KR_HS_SIG_FORMAT);
    fx_exact("sig-other.bin", sig, 256);
    assert_int_equal(kr_hs_verify_signature(spub, sig, NULL, NULL), KR_HS_SIG_FORMAT);
    /* right server, other 20 bytes */
    fx_exact("sig-mismatch.bin", sig, 256);
    assert_int_equal(kr_hs_verify_signature(spub, sig, NULL, rec), KR_HS_OK);
    assert_memory_equal(rec, "twenty bytes, wrong.", 20);
    assert_int_equal(kr_hs_verify_signature(spub, sig, hmac, NULL), KR_HS_SIG_MISMATCH);
    /* garbage */
    memset(sig, 0x5a, sizeof sig);
    assert_int_equal(kr_hs_verify_signature(spub, sig, hmac, NULL), KR_HS_SIG_FORMAT);
    assert_int_equal(kr_hs_verify_signature(NULL, sig, hmac, NULL), KR_HS_NO_KEY);
    kr_key *dev = fx_key("device.der");
    assert_int_equal(kr_hs_verify_signature(dev, sig, hmac, NULL), KR_HS_SIG_FORMAT);
    kr_key_free(dev);
    kr_key_free(spub);
    kr_key_free(spriv);
    kr_key_free(other);
}

static void test_vectors_81(void **state)
{
    (void)state;
    kr_key *dev = hex_key(V81_DEVICE_PRIV, "v81-device");
    kr_key *srv = hex_key(V81_SERVER_PUB, "v81-server");
    uint8_t e[128], m[40], want_m[40], hmac[20], want_hmac[20], sig[256], rec[20];
    hex_exact(V81_E, e, 128);
    hex_exact(V81_M, want_m, 40);
    hex_exact(V81_HMAC, want_hmac, 20);
    hex_exact(V81_SIG, sig, 256);
    assert_int_equal(kr_hs_open_session(dev, e, m), KR_HS_OK);
    assert_memory_equal(m, want_m, 40);
    assert_int_equal(kr_hs_hmac(m, e, hmac), 0);
    assert_memory_equal(hmac, want_hmac, 20);
    assert_int_equal(kr_hs_verify_signature(srv, sig, hmac, rec), KR_HS_OK);
    assert_memory_equal(rec, want_hmac, 20);
    /* one bit of E changed: the HMAC no longer matches what was signed */
    e[5] ^= 1;
    assert_int_equal(kr_hs_hmac(m, e, hmac), 0);
    assert_int_equal(kr_hs_verify_signature(srv, sig, hmac, NULL), KR_HS_SIG_MISMATCH);

    /* a G1 id block for this server key opens nowhere here (no server private key), but is well made */
    uint8_t nonce[40], id[12], block[256];
    hex_exact(V81_NONCE, nonce, 40);
    hex_exact(V81_ID, id, 12);
    kr_err err = {{0}};
    assert_int_equal(kr_hs_make_idblock(srv, nonce, id, NULL, block, &err), 0);
    kr_key_free(dev);
    kr_key_free(srv);
}

static void test_vectors_82(void **state)
{
    (void)state;
    kr_key *dev = hex_key(V82_DEVICE_PRIV, "v82-device");
    kr_key *srv = hex_key(V82_SERVER_PUB, "v82-server");
    uint8_t r[384], m[40], want_m[40], hmac[20], want_hmac[20];
    hex_exact(V82_R384, r, 384);
    hex_exact(V82_M, want_m, 40);
    hex_exact(V82_HMAC, want_hmac, 20);
    assert_int_equal(kr_hs_open_session(dev, r, m), KR_HS_OK);
    assert_memory_equal(m, want_m, 40);
    assert_int_equal(kr_hs_hmac(m, r, hmac), 0);
    assert_memory_equal(hmac, want_hmac, 20);
    assert_int_equal(kr_hs_verify_signature(srv, r + 128, hmac, NULL), KR_HS_OK);

    kr_session s;
    kr_session_from_material(m, &s);
    uint8_t key[16], iv[16];
    hex_exact(V82_KEY, key, 16);
    hex_exact(V82_IV, iv, 16);
    assert_memory_equal(s.key, key, 16);
    assert_memory_equal(s.iv, iv, 16);
    assert_memory_equal(s.salt, want_m + 32, 8);
    assert_memory_equal(s.material, want_m, 40);
    assert_int_equal(s.msgid_counter, 0x97b1);
    assert_int_equal(s.msgid_counter_le, 0xb197);
    assert_int_equal(s.token_counter, 0x97);

    /* the 214-byte id block plaintext a G2 device builds: nonce || id || its SPKI */
    uint8_t plain[214], h[32];
    char hex[65];
    hex_exact(V82_NONCE, plain, 40);
    hex_exact(V82_ID, plain + 40, 12);
    assert_int_equal(kr_key_public_spki(dev, plain + 52, 162), 162);
    assert_true(EVP_Digest(plain, sizeof plain, h, NULL, EVP_sha256(), NULL));
    assert_string_equal(kr_hex(h, 32, hex), V82_H2_SHA256);
    kr_key_free(dev);
    kr_key_free(srv);
}

static void test_make_and_open(void **state)
{
    (void)state;
    kr_key *spub = fx_key("server.pub.der");
    kr_key *spriv = fx_key("server.pem");
    kr_key *dpub = fx_key("device.pub.pem");
    kr_key *dpriv = fx_key("device.der");
    uint8_t nonce[40], id[12], spki[162], block[256], block2[256];
    fx_exact("nonce.bin", nonce, 40);
    fx_exact("id.bin", id, 12);
    fx_exact("device.pub.der", spki, 162);
    kr_err err = {{0}};
    kr_idblock ib;
    assert_int_equal(kr_hs_make_idblock(spub, nonce, id, NULL, block, &err), 0);
    assert_int_equal(kr_hs_open_idblock(spriv, block, nonce, &ib), KR_HS_OK);
    assert_int_equal(ib.plain_len, 52);
    assert_memory_equal(ib.device_id, id, 12);
    assert_int_equal(kr_hs_make_idblock(spub, nonce, id, spki, block2, &err), 0);
    assert_memory_not_equal(block, block2, 256);   /* random padding */
    assert_int_equal(kr_hs_open_idblock(spriv, block2, nonce, &ib), KR_HS_OK);
    assert_int_equal(ib.plain_len, 214);
    assert_memory_equal(ib.public_key, spki, 162);
    /* a device key is the wrong size for an id block */
    assert_int_equal(kr_hs_make_idblock(dpub, nonce, id, NULL, block, &err), -1);
    assert_non_null(strstr(err.msg, "RSA-2048"));

    uint8_t m[40], sb[384], got[40], hmac[20];
    fx_exact("m.bin", m, 40);
    assert_int_equal(kr_hs_make_session_block(dpub, spriv, m, sb, &err), 0);
    assert_int_equal(kr_hs_open_session(dpriv, sb, got), KR_HS_OK);
    assert_memory_equal(got, m, 40);
    assert_int_equal(kr_hs_hmac(m, sb, hmac), 0);
    assert_int_equal(kr_hs_verify_signature(spub, sb + 128, hmac, NULL), KR_HS_OK);
    /* signing needs the private server key */
    assert_int_equal(kr_hs_make_session_block(dpub, spub, m, sb, &err), -1);
    kr_key_free(spub);
    kr_key_free(spriv);
    kr_key_free(dpub);
    kr_key_free(dpriv);
}

static void test_result_words(void **state)
{
    (void)state;
    const char *seen[7];
    for (int r = KR_HS_OK; r <= KR_HS_SIG_MISMATCH; r++) {
        seen[r] = kr_hs_result_str((kr_hs_result)r);
        assert_true(strlen(seen[r]) > 0);
        for (int j = 0; j < r; j++)
            assert_string_not_equal(seen[j], seen[r]);
    }
    assert_string_equal(kr_hs_result_str(KR_HS_NONCE), "nonce mismatch");
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixture_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idblock_g1),
        cmocka_unit_test(test_idblock_g2),
        cmocka_unit_test(test_idblock_failures),
        cmocka_unit_test(test_session_open),
        cmocka_unit_test(test_hmac_and_signature),
        cmocka_unit_test(test_vectors_81),
        cmocka_unit_test(test_vectors_82),
        cmocka_unit_test(test_make_and_open),
        cmocka_unit_test(test_result_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
