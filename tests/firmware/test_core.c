/* Unit tests of the sparkwire firmware core: docs/protocol.md section 8 vectors (handshake crypto, session
 * frames, encoders) and malformed or truncated input to every parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coap.h"
#include "crc32.h"
#include "crypto_port.h"
#include "device.h"
#include "device_int.h"
#include "frame.h"
#include "vectors.h"

/* ---- helpers ---- */

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (h[0] && h[1]) {
        if (h[0] == ' ') {
            h++;
            continue;
        }
        unsigned v;
        assert_int_equal(sscanf(h, "%2x", &v), 1);
        assert_true(n < cap);
        out[n++] = (uint8_t)v;
        h += 2;
    }
    return n;
}

/* A HAL over two buffers and a settable clock. */
typedef struct mock {
    uint8_t in[4096];
    size_t in_len, in_pos;
    int closed;              /* recv returns -1 once the input is used up */
    uint8_t out[8192];
    size_t out_len;
    uint32_t now;
} mock;

static mock M;

static int m_send(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    assert_true(M.out_len + len <= sizeof M.out);
    memcpy(M.out + M.out_len, buf, len);
    M.out_len += len;
    return 0;
}

static int m_recv(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    size_t avail = M.in_len - M.in_pos;
    if (avail == 0)
        return M.closed ? -1 : 0;
    if (len > avail)
        len = avail;
    if (len > 7)
        len = 7;   /* arrive in small pieces: the core must reassemble */
    memcpy(buf, M.in + M.in_pos, len);
    M.in_pos += len;
    return (int)len;
}

static uint32_t m_millis(void *ctx)
{
    (void)ctx;
    return M.now;
}

static int m_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    memset(buf, 0x42, len);
    return 0;
}

static void feed(const uint8_t *data, size_t len)
{
    assert_true(M.in_len + len <= sizeof M.in);
    memcpy(M.in + M.in_len, data, len);
    M.in_len += len;
}

static void feed_hex(const char *h)
{
    uint8_t b[512];
    feed(b, unhex(h, b, sizeof b));
}

/* Notes recorded from the core. */
static struct {
    int count[32];
    long last_value[32];
    char last_name[32][80];
} N;

static void notify(void *user, sw_note n, const char *name, long value)
{
    (void)user;
    N.count[n]++;
    N.last_value[n] = value;
    snprintf(N.last_name[n], sizeof N.last_name[n], "%s", name ? name : "");
}

static int brew(void *user, const char *arg)
{
    (void)user;
    return strcmp(arg, "32,240") == 0 ? 456 : -1;
}

static int32_t temperature = -98765;
static char last_event[80];

static void on_event(void *user, const char *name, const uint8_t *data, size_t len)
{
    (void)user;
    snprintf(last_event, sizeof last_event, "%s=%.*s", name, (int)len, (const char *)data);
}

static sw_device dev;
static const sw_hal hal = {NULL, m_send, m_recv, m_millis, m_random};

static sw_status poll_until_quiet(void)
{
    sw_status st = SW_RUNNING;
    for (int i = 0; i < 200 && st == SW_RUNNING; i++)
        st = sw_device_poll(&dev);
    return st;
}

/* Runs the 8.2 handshake as a G1 device: returns with the Hello (and whatever follows) in M.out after the
 * 256-byte id block. */
static void handshake_82(int generation, bool time_request, bool subscribe)
{
    memset(&M, 0, sizeof M);
    memset(&N, 0, sizeof N);
    sw_device_config cfg;
    sw_device_defaults(&cfg, generation);
    assert_int_equal(unhex("54e1c888f6d9492bebee1ee9", cfg.device_id, 12), 12);
    cfg.private_key = v82_device_key;
    cfg.private_key_len = sizeof v82_device_key;
    cfg.server_key = v82_server_pub;
    cfg.server_key_len = sizeof v82_server_pub;
    cfg.send_time_request = time_request;
    cfg.notify = notify;
    sw_device_init(&dev, &cfg, &hal);
    assert_int_equal(sw_device_function(&dev, "brew", brew, NULL), 0);
    assert_int_equal(sw_device_variable(&dev, "temperature", SW_VAR_INT, &temperature), 0);
    if (subscribe)
        assert_int_equal(sw_device_subscribe(&dev, "motion/open", true, on_event, NULL), 0);
    feed_hex("31e830246f2d7d987c42477ef033f424ff62d382b17a0931130b236398de90847141f5830484177b");
    sw_device_start(&dev);
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    assert_int_equal(M.out_len, 256);
    feed(v82_r384, sizeof v82_r384);
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
}

static void expect_out(size_t from, const char *hex)
{
    uint8_t want[256];
    size_t n = unhex(hex, want, sizeof want);
    assert_true(M.out_len >= from + n);
    assert_memory_equal(M.out + from, want, n);
}

#define HELLO_82 "0010de896027ba111a95be396f4dfc309b6b"

/* ---- 8.1 / 8.2: handshake crypto through the port ---- */

static void test_81_session_block(void **state)
{
    (void)state;
    uint8_t m[128], hmac[20], rec[256];
    size_t mlen = 0, rlen = 0;
    assert_int_equal(sw_crypto_rsa_private_decrypt(v81_device_key, sizeof v81_device_key, v81_e, sizeof v81_e, m,
                                                   sizeof m, &mlen), 0);
    uint8_t want_m[40];
    unhex("3e78eb7a0bb21dfbf2b1534b06e56612145a01f1070e40a11188f784c49bc653c57694fc1f3b7d72", want_m, 40);
    assert_int_equal(mlen, 40);
    assert_memory_equal(m, want_m, 40);
    assert_int_equal(sw_crypto_hmac_sha1(m, 40, v81_e, sizeof v81_e, hmac), 0);
    uint8_t want_h[20];
    unhex("34a47a49b4f4bed37495a5fc0b3e0f414ae6b92b", want_h, 20);
    assert_memory_equal(hmac, want_h, 20);
    assert_int_equal(sw_crypto_rsa_public_verify_recover(v81_server_pub, sizeof v81_server_pub, v81_sig,
                                                         sizeof v81_sig, rec, sizeof rec, &rlen), 0);
    assert_int_equal(rlen, 20);
    assert_memory_equal(rec, want_h, 20);
    /* A signature from the other vector set does not verify with this server key. */
    assert_int_equal(sw_crypto_rsa_public_verify_recover(v81_server_pub, sizeof v81_server_pub, v82_r384 + 128,
                                                         256, rec, sizeof rec, &rlen), -1);
}

static void test_82_device_public_key(void **state)
{
    (void)state;
    uint8_t spki[400];
    size_t n = 0;
    assert_int_equal(sw_crypto_rsa_public_from_private(v82_device_key, sizeof v82_device_key, spki, sizeof spki,
                                                       &n), 0);
    assert_int_equal(n, sizeof v82_device_spki);
    assert_memory_equal(spki, v82_device_spki, n);
}

static void test_82_handshake_g1(void **state)
{
    (void)state;
    handshake_82(1, true, false);
    uint8_t want_m[40];
    unhex("ead9e1e2014903b9e76632f6fa5afa669522a567e100cd3cfe5215473921b63d97b197250038fa09", want_m, 40);
    assert_memory_equal(dev.material, want_m, 40);
    assert_true(sw_device_connected(&dev));
    /* Hello (id 0x97b2), then the TimeRequest (id 0x97b3, token 0x98) with IV = C1(Hello). */
    expect_out(256, HELLO_82);
    expect_out(256 + 18, "0010493608a838fdb809a5f28656dcf81f8e");
    assert_int_equal(N.count[SW_NOTE_STEP] >= 4, 1);
}

static void test_82_g2_id_block_and_hello_wait(void **state)
{
    (void)state;
    handshake_82(2, false, false);
    /* G2 sends a 15-byte Hello and waits for the server Hello; none comes within 2 s. */
    assert_false(sw_device_connected(&dev));
    assert_int_equal(M.out_len, 256 + 18);
    M.now += 2001;
    assert_int_equal(sw_device_poll(&dev), SW_ERR_MESSAGE_TIMEOUT);
}

static void test_82_g2_server_hello(void **state)
{
    (void)state;
    handshake_82(2, false, false);
    /* A server Hello (any valid frame under the session key) connects the G2 device. Build one as the
     * server would: cipher state from M. */
    sw_cipher server;
    sw_cipher_init(&server, dev.material);
    uint8_t hello[7] = {0x51, 0x02, 0x12, 0x34, 0x01, 0xb1, 'h'}, frame[64];
    int n = sw_frame_seal(&server, hello, 7, frame, sizeof frame);
    assert_int_equal(n, 18);
    feed(frame, (size_t)n);
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    assert_true(sw_device_connected(&dev));
    assert_int_equal(N.count[SW_NOTE_SERVER_HELLO], 1);
}

/* ---- 8.3: session frames ---- */

static void test_83_describe(void **state)
{
    (void)state;
    handshake_82(1, false, false);
    expect_out(256, HELLO_82);
    feed_hex("00104d2b016f13eededcaf7923fb7681b37a");
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    expect_out(256 + 18, "00308c757e24f756de78d84f1980a8e0d184b0960094769211c884f5956ae416216110f5e51af1780b756aed83c5e05d5c5a");
}

static void test_83_function(void **state)
{
    (void)state;
    handshake_82(1, false, false);
    feed_hex("0020c6f4cb2885d81edd231c56b8d8032894ce89ab4248867876a0140723b5a9fe75");
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    expect_out(256 + 18, "001080ef0849d1bee320f506f97df1ce2536");
    expect_out(256 + 36, "0010a571325f7ad0f13ab91c092de28b4fe0");
    assert_int_equal(N.last_value[SW_NOTE_FUNCTION], 456);
}

static void test_83_variable(void **state)
{
    (void)state;
    handshake_82(1, false, false);
    feed_hex("0020bc99431b9a7444938f91a84bc2092bb5752857a6c6f44407ddd20a7232b01cbf");
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    expect_out(256 + 18, "00105928fa3d00eab28515b5066d446583a8");
}

static void test_83_time_answer(void **state)
{
    (void)state;
    handshake_82(1, false, false);
    feed_hex("0010b9a0a43e054fbbb3356abc0f64e9bca1");
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    assert_int_equal(N.count[SW_NOTE_TIME], 1);
    assert_int_equal(N.last_value[SW_NOTE_TIME], 1398367917L);
}

static void test_83_events(void **state)
{
    (void)state;
    handshake_82(1, false, false);
    assert_int_equal(sw_device_publish(&dev, "lake-depth/1", (const uint8_t *)"28m", 3, 21600, true), 0);
    expect_out(256 + 18, "00205af0b52602633ddffd09af73307b006c5e9f9d79a10787fdf83b7510cd9ce51c");
    handshake_82(1, false, false);
    assert_int_equal(sw_device_publish(&dev, "motion-detected", NULL, 0, 60, false), 0);
    expect_out(256 + 18, "00207ff708e3cc6bf8fc82a20a5185f5c3c5dbe3f9edb06d088b75398de1e234140d");
}

static void test_83_subscribe_and_server_event(void **state)
{
    (void)state;
    handshake_82(1, false, true);
    expect_out(256 + 18, "0020236e5d0c02f177934c49f27bbafed589af19f6dea8539634208f7615ba0cf7b5");
    size_t before = M.out_len;
    /* Event a/b/c/d does not match the prefix motion/open: delivered to nobody, never acknowledged. */
    feed_hex("0020c8678851926b300338b39a1fc41ec1f502c3bc38ed78c9c0a2baa986e5807a7a");
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    assert_string_equal(N.last_name[SW_NOTE_EVENT_RECEIVED], "a/b/c/d");
    assert_int_equal(N.last_value[SW_NOTE_EVENT_RECEIVED], 3);
    assert_int_equal(M.out_len, before);
    assert_string_equal(last_event, "");
}

static void test_83_update(void **state)
{
    (void)state;
    handshake_82(1, false, false);
    feed_hex("00106130c74c9c115c5b03838a9aa76cf183");
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    expect_out(256 + 18, "0010108ab83f2dbffb183d5bf16db3fb464d");
    expect_out(256 + 36, "001069d70483e74921da83a8e432552f21cb");
    /* 3 s without a chunk: ChunkMissed for index 0. */
    M.now += 3000;
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    expect_out(256 + 54, "00104ea464263e480952722c62bc9c4863c2");
}

static void test_83_chunk_bad_crc(void **state)
{
    (void)state;
    handshake_82(1, false, false);
    feed(v83_chunk_frame, sizeof v83_chunk_frame);
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    expect_out(256 + 18, "00104da21a09c0d7223690f7256370b888e3");
    /* The CRC option is a placeholder, so a real check fails: ChunkReceived 4.00. */
    expect_out(256 + 36, "0010ef69a660ca6c1c89c26137b4d4a5d687");
    assert_string_equal(N.last_name[SW_NOTE_CHUNK], "bad-crc");
}

static void test_83_update_done_and_signal(void **state)
{
    (void)state;
    handshake_82(1, false, false);
    feed_hex("00107da6d14f574c09c986a0aec226d20ab2");
    assert_int_equal(poll_until_quiet(), SW_UPDATE_APPLIED);
    expect_out(256 + 18, "001089dc435c638e7a2e76b2f5abb9b22dae");

    handshake_82(1, false, false);
    feed_hex("00100bd93111f21dd2482b78264338059bb2");
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    assert_int_equal(N.last_value[SW_NOTE_SIGNAL], 1);
    handshake_82(1, false, false);
    feed_hex("0010c02f1e989253c612672ae010eb20cc9f");
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    assert_int_equal(N.count[SW_NOTE_SIGNAL], 1);
    assert_int_equal(N.last_value[SW_NOTE_SIGNAL], 0);
    /* The acknowledgement (ACK 2.04 with the token) decrypts under the device's send direction. */
    sw_cipher server;
    sw_cipher_init(&server, dev.material);
    uint8_t plain[64];
    assert_int_equal(sw_frame_open(&server, M.out + 256 + 2, 16, plain, sizeof plain), 13);  /* the Hello */
    int n = sw_frame_open(&server, M.out + 256 + 18 + 2, 16, plain, sizeof plain);
    assert_int_equal(n, 5);
    uint8_t want[5] = {0x61, 0x44, 0xab, 0xcd, 0xef};
    assert_memory_equal(plain, want, 5);
}

/* ---- 8.4 ---- */

static void test_84_aes_and_hello(void **state)
{
    (void)state;
    uint8_t mat[40], out[64];
    unhex("508e8afd7873233867d656c0ca46048e0abb06e39bc57e2c9bce0bdfc552c82df6480d23c50e2d6d", mat, 40);
    sw_cipher c;
    sw_cipher_init(&c, mat);
    const char *text = "Super secret message\n";
    assert_int_equal(sw_frame_seal(&c, (const uint8_t *)text, strlen(text), out, sizeof out), 34);
    uint8_t want[32];
    unhex("cf0507476764158c7b63d04c9d17e012c2c184105bdd5e36b8ad8f61db7e85d1", want, 32);
    assert_memory_equal(out + 2, want, 32);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 32);

    memset(&M, 0, sizeof M);
    sw_device_config cfg;
    sw_device_defaults(&cfg, 1);
    sw_device_init(&dev, &cfg, &hal);
    sw_device_install_session(&dev, mat);
    assert_int_equal(dev.msg_id, 0xf648);
    uint8_t msg[32];
    int n = sw_build_hello(&cfg, (uint16_t)(dev.msg_id + 1), msg, sizeof msg);
    uint8_t want_hello[13];
    unhex("5002f649b168ffffffffff0000", want_hello, 13);
    assert_int_equal(n, 13);
    assert_memory_equal(msg, want_hello, 13);
    sw_cipher_init(&c, mat);
    assert_int_equal(sw_frame_seal(&c, msg, 13, out, sizeof out), 18);
    unhex("3dc4a421b8309b9dc84b700733c1ff3e", want, 16);
    assert_memory_equal(out + 2, want, 16);
}

static void test_84_event_encoder(void **state)
{
    (void)state;
    uint8_t out[128], want[128];
    int n = sw_build_event(0xf649, "x", NULL, 0, 60, false, out, sizeof out);
    size_t w = unhex("5002f649b1650178", want, sizeof want);
    assert_int_equal(n, (int)w);
    assert_memory_equal(out, want, w);
    n = sw_build_event(0xf649, "front-door-unlocked", NULL, 0, 60, true, out, sizeof out);
    assert_int_equal(n, 8 + 19);
    w = unhex("5002f649b1450d06", want, sizeof want);
    assert_memory_equal(out, want, w);
    assert_memory_equal(out + 8, "front-door-unlocked", 19);
    const char *name = "weather/us/mn/minneapolis", *data = "t:5F,d:-2F,p:15%";
    n = sw_build_event(0x7654, name, (const uint8_t *)data, strlen(data), 3600, false, out, sizeof out);
    assert_int_equal(n, 54);
    w = unhex("50027654b1650d0c", want, sizeof want);
    assert_memory_equal(out, want, w);
    assert_memory_equal(out + 8, name, 25);
    w = unhex("33000e10ff", want, sizeof want);
    assert_memory_equal(out + 33, want, w);
    assert_memory_equal(out + 38, data, 16);
    /* Limits: name 64 bytes, data 256 bytes, TTL above 24 bits are refused. */
    char longname[65];
    memset(longname, 'a', 64);
    longname[64] = 0;
    assert_int_equal(sw_build_event(1, longname, NULL, 0, 60, false, out, sizeof out), -1);
    uint8_t big[256] = {0};
    assert_int_equal(sw_build_event(1, "x", big, 256, 60, false, out, sizeof out), -1);
    assert_int_equal(sw_build_event(1, "x", NULL, 0, 0x1000000, false, out, sizeof out), -1);
    assert_int_equal(sw_build_event(1, "x", big, 200, 60, false, out, 20), -1);
}

static void test_crc32(void **state)
{
    (void)state;
    assert_int_equal(sw_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
    assert_int_equal(sw_crc32(NULL, 0), 0);
}

/* ---- malformed and truncated input ---- */

static void test_coap_malformed(void **state)
{
    (void)state;
    sw_coap_msg m;
    uint8_t b[64];
    assert_int_equal(sw_coap_parse(NULL, 0, &m), -1);
    assert_int_equal(sw_coap_parse(b, unhex("4101", b, 64), &m), -1);                  /* short header */
    assert_int_equal(sw_coap_parse(b, unhex("01010000", b, 64), &m), -1);              /* version 0 */
    assert_int_equal(sw_coap_parse(b, unhex("c9010000", b, 64), &m), -1);              /* version 3 */
    assert_int_equal(sw_coap_parse(b, unhex("49010000", b, 64), &m), -1);              /* TKL 9 */
    assert_int_equal(sw_coap_parse(b, unhex("420100001a", b, 64), &m), -1);            /* token cut */
    assert_int_equal(sw_coap_parse(b, unhex("41010000aab1", b, 64), &m), -1);          /* option value cut */
    assert_int_equal(sw_coap_parse(b, unhex("41010000aad1", b, 64), &m), -1);          /* ext delta cut */
    assert_int_equal(sw_coap_parse(b, unhex("41010000aae1ff", b, 64), &m), -1);       /* 2-byte ext cut */
    assert_int_equal(sw_coap_parse(b, unhex("41010000aabd", b, 64), &m), -1);          /* ext length cut */
    assert_int_equal(sw_coap_parse(b, unhex("41010000aa1f", b, 64), &m), -1);          /* length nibble 15 */
    assert_int_equal(sw_coap_parse(b, unhex("41010000aaf1", b, 64), &m), -1);          /* delta nibble 15 */
    assert_int_equal(sw_coap_parse(b, unhex("41010000aaff", b, 64), &m), -1);          /* marker, no payload */
    assert_int_equal(sw_coap_parse(b, unhex("41010000aae1ffff00", b, 64), &m), -1);    /* number > 65535 */
    assert_int_equal(sw_coap_parse(b, unhex("41010000aab1", b, 64), &m), -1);
    /* 17 options: more than the parser holds. */
    size_t n = unhex("40010000", b, 64);
    for (int i = 0; i < 17; i++)
        b[n++] = 0x00;
    assert_int_equal(sw_coap_parse(b, n, &m), -1);
    /* Valid: CON GET /v/temperature, token 0x88. */
    n = unhex("410197b288b1760b74656d7065726174757265", b, 64);
    assert_int_equal(sw_coap_parse(b, n, &m), 0);
    assert_int_equal(m.type, SW_COAP_CON);
    assert_int_equal(m.code, SW_COAP_GET);
    assert_int_equal(m.id, 0x97b2);
    assert_int_equal(m.tkl, 1);
    assert_int_equal(m.token[0], 0x88);
    assert_int_equal(m.nopts, 2);
    assert_int_equal(sw_coap_path_letter(&m), 'v');
    assert_int_equal(sw_coap_find(&m, SW_OPT_URI_PATH, 1)->len, 11);
    assert_null(sw_coap_find(&m, SW_OPT_URI_QUERY, 0));
    assert_null(m.payload);
    /* Extended delta and length round trip through the builder. */
    uint8_t big[300], msg[400];
    memset(big, 'z', sizeof big);
    sw_coap_builder bl;
    sw_coap_begin(&bl, msg, sizeof msg, SW_COAP_NON, SW_COAP_POST, 7, NULL, 0);
    sw_coap_add_option(&bl, 11, big, 20);
    sw_coap_add_option(&bl, 300, big, 270);
    sw_coap_add_payload(&bl, "p", 1);
    int len = sw_coap_end(&bl);
    assert_true(len > 0);
    assert_int_equal(sw_coap_parse(msg, (size_t)len, &m), 0);
    assert_int_equal(m.opts[1].number, 300);
    assert_int_equal(m.opts[1].len, 270);
    assert_int_equal(m.payload_len, 1);
    /* Builder overflow and option order errors. */
    sw_coap_begin(&bl, msg, 10, SW_COAP_NON, SW_COAP_POST, 7, NULL, 0);
    sw_coap_add_option(&bl, 11, big, 20);
    assert_int_equal(sw_coap_end(&bl), -1);
    sw_coap_begin(&bl, msg, sizeof msg, SW_COAP_NON, SW_COAP_POST, 7, NULL, 0);
    sw_coap_add_option(&bl, 15, "a", 1);
    sw_coap_add_option(&bl, 11, "a", 1);
    assert_int_equal(sw_coap_end(&bl), -1);
    /* Every truncation of a valid message either parses or fails cleanly. */
    n = unhex("4102abd122b1634401234567ff414243", b, 64);
    for (size_t k = 0; k <= n; k++)
        (void)sw_coap_parse(b, k, &m);
}

static void test_frame_malformed(void **state)
{
    (void)state;
    uint8_t mat[40] = {0}, ct[48], out[48];
    sw_cipher c;
    sw_cipher_init(&c, mat);
    assert_int_equal(sw_frame_open(&c, ct, 0, out, sizeof out), -1);
    assert_int_equal(sw_frame_open(&c, ct, 15, out, sizeof out), -1);
    assert_int_equal(sw_frame_open(&c, ct, 17, out, sizeof out), -1);
    assert_int_equal(sw_frame_open(&c, ct, 48, out, 32), -1);
    /* Encrypt blocks with chosen last bytes to produce each kind of bad padding. */
    const uint8_t lasts[] = {0x00, 0x11, 0xff};
    for (size_t i = 0; i < sizeof lasts; i++) {
        uint8_t plain[16], iv[16] = {0};
        memset(plain, 0x02, 16);
        plain[15] = lasts[i];
        assert_int_equal(sw_crypto_aes128_cbc_encrypt(mat, iv, plain, 16, ct), 0);
        sw_cipher_init(&c, mat);
        memset(c.recv_iv, 0, 16);
        assert_int_equal(sw_frame_open(&c, ct, 16, out, sizeof out), -1);
    }
    /* Inconsistent padding: last byte 3, the byte before it 2. */
    uint8_t plain[16], iv[16] = {0};
    memset(plain, 0x03, 16);
    plain[14] = 0x02;
    assert_int_equal(sw_crypto_aes128_cbc_encrypt(mat, iv, plain, 16, ct), 0);
    sw_cipher_init(&c, mat);
    memset(c.recv_iv, 0, 16);
    assert_int_equal(sw_frame_open(&c, ct, 16, out, sizeof out), -1);
    /* Seal refuses a buffer too small. */
    sw_cipher_init(&c, mat);
    assert_int_equal(sw_frame_seal(&c, plain, 16, out, 33), -1);
    assert_int_equal(sw_frame_seal(&c, plain, 16, out, 34), 34);
}

static void test_device_bad_session_blocks(void **state)
{
    (void)state;
    uint8_t block[384];
    /* E damaged: decryption error. */
    memcpy(block, v82_r384, sizeof block);
    block[5] ^= 1;
    memset(&M, 0, sizeof M);
    sw_device_config cfg;
    sw_device_defaults(&cfg, 2);
    cfg.private_key = v82_device_key;
    cfg.private_key_len = sizeof v82_device_key;
    cfg.server_key = v82_server_pub;
    cfg.server_key_len = sizeof v82_server_pub;
    sw_device_init(&dev, &cfg, &hal);
    feed(v82_r384, 40);   /* any 40 bytes serve as a nonce */
    feed(block, sizeof block);
    sw_device_start(&dev);
    assert_int_equal(poll_until_quiet(), SW_RUNNING);   /* G2 waits 250 ms before closing */
    assert_int_equal(M.out_len, 256);
    M.now += 250;
    assert_int_equal(sw_device_poll(&dev), SW_ERR_DECRYPTION);

    /* SIG damaged: signature error, nothing sent after the id block. */
    memcpy(block, v82_r384, sizeof block);
    block[300] ^= 1;
    memset(&M, 0, sizeof M);
    sw_device_init(&dev, &cfg, &hal);
    feed(v82_r384, 40);
    feed(block, sizeof block);
    sw_device_start(&dev);
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    M.now += 250;
    assert_int_equal(sw_device_poll(&dev), SW_ERR_AUTHENTICATION);
    assert_int_equal(M.out_len, 256);

    /* Signed by another server (the 8.1 key): signature error. */
    memcpy(block, v82_r384, 128);
    memcpy(block + 128, v81_sig, 256);
    memset(&M, 0, sizeof M);
    sw_device_init(&dev, &cfg, &hal);
    feed(v82_r384, 40);
    feed(block, sizeof block);
    sw_device_start(&dev);
    poll_until_quiet();
    M.now += 250;
    assert_int_equal(sw_device_poll(&dev), SW_ERR_AUTHENTICATION);

    /* G1 keeps the socket after the failure and sends two frames; the error surfaces when it closes. */
    sw_device_defaults(&cfg, 1);
    cfg.private_key = v82_device_key;
    cfg.private_key_len = sizeof v82_device_key;
    cfg.server_key = v82_server_pub;
    cfg.server_key_len = sizeof v82_server_pub;
    memset(&M, 0, sizeof M);
    sw_device_init(&dev, &cfg, &hal);
    feed(v82_r384, 40);
    feed(block, sizeof block);
    sw_device_start(&dev);
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    assert_true(M.out_len > 256 + 18);
    assert_int_equal(M.out[256], 0);
    assert_int_equal(M.out[257], 16);
    M.closed = 1;
    assert_int_equal(sw_device_poll(&dev), SW_ERR_AUTHENTICATION);

    /* Truncated session block then close: I/O error. */
    sw_device_defaults(&cfg, 2);
    cfg.private_key = v82_device_key;
    cfg.private_key_len = sizeof v82_device_key;
    cfg.server_key = v82_server_pub;
    cfg.server_key_len = sizeof v82_server_pub;
    memset(&M, 0, sizeof M);
    sw_device_init(&dev, &cfg, &hal);
    feed(v82_r384, 40);
    feed(v82_r384, 100);
    M.closed = 1;
    sw_device_start(&dev);
    assert_int_equal(poll_until_quiet(), SW_ERR_IO);

    /* Nothing after the nonce: timeout after io_timeout_ms. */
    memset(&M, 0, sizeof M);
    sw_device_init(&dev, &cfg, &hal);
    feed(v82_r384, 40);
    sw_device_start(&dev);
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    M.now += 20000;
    assert_int_equal(poll_until_quiet(), SW_RUNNING);   /* G2 closes 250 ms after the failure */
    M.now += 250;
    assert_int_equal(sw_device_poll(&dev), SW_ERR_TIMEOUT);

    /* Wrong server key (1024 bits, the device key's public half): the id block cannot be built. */
    cfg.server_key = v82_device_spki;
    cfg.server_key_len = sizeof v82_device_spki;
    memset(&M, 0, sizeof M);
    sw_device_init(&dev, &cfg, &hal);
    feed(v82_r384, 40);
    sw_device_start(&dev);
    assert_int_equal(poll_until_quiet(), SW_ERR_SERVER_KEY);
}

static void test_device_bad_frames(void **state)
{
    (void)state;
    /* Length above the 640-byte buffer. */
    handshake_82(1, false, false);
    feed_hex("0290");
    assert_int_equal(poll_until_quiet(), SW_ERR_FRAME_TOO_LARGE);
    /* Length not a multiple of 16. */
    handshake_82(1, false, false);
    feed_hex("0011");
    assert_int_equal(poll_until_quiet(), SW_ERR_BAD_FRAME);
    handshake_82(1, false, false);
    feed_hex("0000");
    assert_int_equal(poll_until_quiet(), SW_ERR_BAD_FRAME);
    /* A frame that does not decrypt (Describe with its last byte changed). */
    handshake_82(1, false, false);
    feed_hex("00104d2b016f13eededcaf7923fb7681b37b");
    assert_int_equal(poll_until_quiet(), SW_ERR_BAD_FRAME);
    /* A frame cut short, then the peer closes. */
    handshake_82(1, false, false);
    feed_hex("00104d2b016f13eede");
    assert_int_equal(poll_until_quiet(), SW_RUNNING);
    M.closed = 1;
    assert_int_equal(poll_until_quiet(), SW_ERR_IO);

    /* Well-encrypted but malformed or odd CoAP: never a crash, never an answer to garbage. */
    const char *msgs[] = {
        "41",                      /* too short */
        "4101ffff",                /* GET, no token, no path */
        "410197b2",                /* no path */
        "410197b288",              /* token, no options */
        "410197b288b1",            /* path option cut */
        "410197b288b176",          /* /v without a name */
        "410297b288b166",          /* /f without a name */
        "410297b288b16604627265774f",  /* query length beyond the message */
        "500297b2b165",            /* event with no name */
        "410297b288b163",          /* chunk without CRC or data */
        "410397b288b175",          /* update done without begin */
        "7001ffff",                /* RST */
        "610097b2",                /* ACK with a token, code 0 */
        "6145999999",              /* time answer without payload */
    };
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        handshake_82(1, false, false);
        sw_cipher server;
        sw_cipher_init(&server, dev.material);
        uint8_t plain[64], frame[96];
        size_t n = unhex(msgs[i], plain, sizeof plain);
        int f = sw_frame_seal(&server, plain, n, frame, sizeof frame);
        assert_true(f > 0);
        feed(frame, (size_t)f);
        sw_status st = poll_until_quiet();
        assert_true(st == SW_RUNNING || st == SW_UPDATE_APPLIED);
    }
    /* Random plaintexts under a valid cipher: the device survives them all (run under ASan). */
    srand(1234);
    handshake_82(1, false, false);
    sw_cipher server;
    sw_cipher_init(&server, dev.material);
    for (int round = 0; round < 3000; round++) {
        uint8_t plain[80], frame[128];
        size_t n = (size_t)(rand() % 80);
        for (size_t k = 0; k < n; k++)
            plain[k] = (uint8_t)rand();
        if (n > 0)
            plain[0] = (uint8_t)(0x40 | (plain[0] & 0x3f));
        int f = sw_frame_seal(&server, plain, n, frame, sizeof frame);
        M.in_len = M.in_pos = 0;
        M.out_len = 0;
        feed(frame, (size_t)f);
        sw_status st = poll_until_quiet();
        if (st != SW_RUNNING) {
            handshake_82(1, false, false);
            sw_cipher_init(&server, dev.material);
        }
    }
}

static void test_device_ping(void **state)
{
    (void)state;
    handshake_82(1, false, false);
    size_t before = M.out_len;
    M.now += 14999;
    poll_until_quiet();
    assert_int_equal(M.out_len, before);
    M.now += 1;
    poll_until_quiet();
    assert_int_equal(M.out_len, before + 18);
    assert_int_equal(N.count[SW_NOTE_PING_SENT], 1);
    assert_int_equal(N.last_value[SW_NOTE_PING_SENT], 0x97b3);
    M.now += 10000;
    assert_int_equal(poll_until_quiet(), SW_ERR_PING_TIMEOUT);
}

/* The --corrupt-frame fault spoils a frame so that it never decrypts: across 4000 sessions and one-, two- and
 * three-block frames, only the frame's last byte differs from the sealed frame, the sender's chain is the
 * unspoiled one, and the receiver's sw_frame_open refuses every spoiled frame (one spoiled byte alone would
 * leave valid padding about once in 256). */
static void test_device_corrupt_frame_never_opens(void **state)
{
    (void)state;
    static const int lens[3] = {4, 20, 40};
    uint8_t msg[40], mat[SW_SESSION_LEN], plain[64], sealed[64];
    memset(msg, 0x33, sizeof msg);
    for (int i = 0; i < 4000; i++) {
        for (int j = 0; j < SW_SESSION_LEN; j++)
            mat[j] = (uint8_t)(i * 131 + j * 29 + (i >> 8) * j);
        memset(&M, 0, sizeof M);
        sw_device_config cfg;
        sw_device_defaults(&cfg, 1);
        cfg.corrupt_frame = 1;
        sw_device_init(&dev, &cfg, &hal);
        sw_device_install_session(&dev, mat);
        int len = lens[i % 3];
        assert_int_equal(sw_dev_send(&dev, msg, len), SW_RUNNING);
        sw_cipher c;
        sw_cipher_init(&c, mat);
        int n = sw_frame_seal(&c, msg, (size_t)len, sealed, sizeof sealed);
        assert_int_equal(M.out_len, (size_t)n);
        assert_memory_equal(M.out, sealed, (size_t)n - 1);
        assert_int_not_equal(M.out[n - 1], sealed[n - 1]);
        assert_memory_equal(dev.cipher.send_iv, c.send_iv, 16);
        sw_cipher_init(&c, mat);
        assert_int_equal(sw_frame_open(&c, M.out + 2, (size_t)n - 2, plain, sizeof plain), -1);
    }
}

static void test_device_registration_limits(void **state)
{
    (void)state;
    sw_device_config cfg;
    sw_device_defaults(&cfg, 2);
    sw_device_init(&dev, &cfg, &hal);
    assert_int_equal(sw_device_function(&dev, "", brew, NULL), -1);
    assert_int_equal(sw_device_function(&dev, "thirteenchars", brew, NULL), -1);
    assert_int_equal(sw_device_function(&dev, "twelve_chars", brew, NULL), 0);
    assert_int_equal(sw_device_variable(&dev, "v", (sw_var_type)3, &temperature), -1);
    assert_int_equal(sw_device_variable(&dev, "v", SW_VAR_INT, NULL), -1);
    for (int i = 0; i < SW_MAX_VARIABLES; i++)
        assert_int_equal(sw_device_variable(&dev, "v", SW_VAR_INT, &temperature), 0);
    assert_int_equal(sw_device_variable(&dev, "v", SW_VAR_INT, &temperature), -1);
    /* Not connected: no publish. */
    assert_int_equal(sw_device_publish(&dev, "x", NULL, 0, 60, false), -1);
    /* Rate limit: the fifth publish within a second is refused. */
    handshake_82(1, false, false);
    for (int i = 0; i < 4; i++)
        assert_int_equal(sw_device_publish(&dev, "x", NULL, 0, 60, false), 0);
    assert_int_equal(sw_device_publish(&dev, "x", NULL, 0, 60, false), -1);
    M.now += 1000;
    assert_int_equal(sw_device_publish(&dev, "x", NULL, 0, 60, false), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_81_session_block),
        cmocka_unit_test(test_82_device_public_key),
        cmocka_unit_test(test_82_handshake_g1),
        cmocka_unit_test(test_82_g2_id_block_and_hello_wait),
        cmocka_unit_test(test_82_g2_server_hello),
        cmocka_unit_test(test_83_describe),
        cmocka_unit_test(test_83_function),
        cmocka_unit_test(test_83_variable),
        cmocka_unit_test(test_83_time_answer),
        cmocka_unit_test(test_83_events),
        cmocka_unit_test(test_83_subscribe_and_server_event),
        cmocka_unit_test(test_83_update),
        cmocka_unit_test(test_83_chunk_bad_crc),
        cmocka_unit_test(test_83_update_done_and_signal),
        cmocka_unit_test(test_84_aes_and_hello),
        cmocka_unit_test(test_84_event_encoder),
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_coap_malformed),
        cmocka_unit_test(test_frame_malformed),
        cmocka_unit_test(test_device_bad_session_blocks),
        cmocka_unit_test(test_device_bad_frames),
        cmocka_unit_test(test_device_ping),
        cmocka_unit_test(test_device_corrupt_frame_never_opens),
        cmocka_unit_test(test_device_registration_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
