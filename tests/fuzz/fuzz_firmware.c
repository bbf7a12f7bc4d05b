/* libFuzzer target: the firmware core's receive path (frame layer, CoAP parser, message handlers), with
 * the sample device key and server key.
 *   byte 0 % 4 selects:
 *     0: sw_coap_parse on the rest
 *     1: a device in session (real handshake with a session block made here once) receives the rest as
 *        the raw cloud->device byte stream: frame lengths, ciphertext, anything
 *     2: the same device receives messages sealed here with the session key: records of length (1 byte)
 *        and that many plaintext bytes, so the CoAP handlers see arbitrary plaintext
 *     3: a fresh device receives the rest as the handshake itself (nonce, session block, ...)
 * The device is polled after each delivery; its clock advances 300 ms per poll so its timers fire. */
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "coap.h"
#include "crypto_port.h"
#include "device.h"

static uint8_t dev_der[2048], srv_pub[1024], srv_priv[4096];
static size_t dev_der_len, srv_pub_len, srv_priv_len;
static uint8_t session_block[SW_SESSION_BLOCK_LEN];
static const uint8_t material[SW_SESSION_LEN] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
    21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 0x12, 0x34, 0x56, 0, 0, 0, 0, 0 };

static struct {
    const uint8_t *in;
    size_t in_len, in_off;
    uint32_t ms;
    size_t sent;
} io;

static int h_send(void *ctx, const uint8_t *buf, size_t len) { (void)ctx; (void)buf; io.sent += len; return 0; }
static int h_recv(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    size_t n = io.in_len - io.in_off;
    if (n == 0)
        return 0;
    if (n > len)
        n = len;
    memcpy(buf, io.in + io.in_off, n);
    io.in_off += n;
    return (int)n;
}
static uint32_t h_millis(void *ctx) { (void)ctx; return io.ms += 300; }
static int h_random(void *ctx, uint8_t *buf, size_t len) { (void)ctx; memset(buf, 0x5a, len); return 0; }

static int f_fn(void *u, const char *arg) { (void)u; return (int)strlen(arg); }
static void f_ev(void *u, const char *name, const uint8_t *d, size_t len) { (void)u; (void)name; (void)d; (void)len; }
static void f_ota(void *u, uint32_t off, const uint8_t *d, size_t len) { (void)u; (void)off; (void)d; (void)len; }
static const double v_d = 1.5;
static const int32_t v_i = 7;
static const bool v_b = true;
static const char v_s[] = "hello";

static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_firmware: cannot read %s\n", path);
        exit(1);
    }
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *src = getenv("SPARKWIRE_SOURCE_ROOT");
    char path[2048];
    snprintf(path, sizeof path, "%s/samples/keys/53ff6c065067544816300187.der", src ? src : FUZZ_SOURCE_ROOT);
    dev_der_len = read_file(path, dev_der, sizeof dev_der);
    snprintf(path, sizeof path, "%s/samples/keys/server-public.der", src ? src : FUZZ_SOURCE_ROOT);
    srv_pub_len = read_file(path, srv_pub, sizeof srv_pub);
    snprintf(path, sizeof path, "%s/samples/keys/server-private.pem", src ? src : FUZZ_SOURCE_ROOT);
    FILE *f = fopen(path, "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    uint8_t *p = srv_priv;
    int n = k ? i2d_PrivateKey(k, &p) : -1;
    EVP_PKEY_free(k);
    if (n <= 0) {
        fprintf(stderr, "fuzz_firmware: cannot load %s\n", path);
        exit(1);
    }
    srv_priv_len = (size_t)n;
    /* the session block a genuine cloud sends: E = RSA(device public, M), SIG = sign(HMAC(M, E)) */
    uint8_t spki[512], hmac[SW_HMAC_SHA1_LEN];
    size_t spki_len = 0, elen = 0, slen = 0;
    if (sw_crypto_rsa_public_from_private(dev_der, dev_der_len, spki, sizeof spki, &spki_len) < 0 ||
        sw_crypto_rsa_public_encrypt(spki, spki_len, material, sizeof material, session_block, 128, &elen) < 0 ||
        sw_crypto_hmac_sha1(material, sizeof material, session_block, 128, hmac) < 0 ||
        sw_crypto_rsa_private_sign_raw(srv_priv, srv_priv_len, hmac, sizeof hmac, session_block + 128, 256, &slen) < 0 ||
        elen != 128 || slen != 256) {
        fprintf(stderr, "fuzz_firmware: cannot build the session block\n");
        exit(1);
    }
    return 0;
}

static void setup(sw_device *d, int generation)
{
    sw_device_config cfg;
    sw_device_defaults(&cfg, generation);
    memcpy(cfg.device_id, "\x53\xff\x6c\x06\x50\x67\x54\x48\x16\x30\x01\x87", 12);
    cfg.private_key = dev_der;
    cfg.private_key_len = dev_der_len;
    cfg.server_key = srv_pub;
    cfg.server_key_len = srv_pub_len;
    cfg.ota_write = f_ota;
    cfg.send_time_request = true;
    sw_hal hal = { NULL, h_send, h_recv, h_millis, h_random };
    sw_device_init(d, &cfg, &hal);
    sw_device_function(d, "brew", f_fn, NULL);
    sw_device_variable(d, "d", SW_VAR_DOUBLE, &v_d);
    sw_device_variable(d, "i", SW_VAR_INT, &v_i);
    sw_device_variable(d, "b", SW_VAR_BOOL, &v_b);
    sw_device_variable(d, "s", SW_VAR_STRING, v_s);
    sw_device_subscribe(d, "ev", true, f_ev, NULL);
}

static sw_status deliver(sw_device *d, const uint8_t *buf, size_t len)
{
    io.in = buf;
    io.in_len = len;
    io.in_off = 0;
    sw_status st = SW_RUNNING;
    for (int i = 0; i < 64 && st == SW_RUNNING; i++) {
        st = sw_device_poll(d);
        if (io.in_off == io.in_len && i > 2)
            break;
    }
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static sw_device dev;
    int mode = data[0] % 4;
    const uint8_t *rest = data + 1;
    size_t rlen = size - 1;
    if (mode == 0) {
        sw_coap_msg m;
        if (sw_coap_parse(rest, rlen, &m) == 0) {
            (void)sw_coap_path_letter(&m);
            (void)sw_coap_find(&m, SW_OPT_URI_QUERY, 0);
        }
        return 0;
    }
    memset(&io, 0, sizeof io);
    setup(&dev, (data[0] & 4) ? 1 : 2);
    sw_device_start(&dev);
    if (mode == 3) {
        deliver(&dev, rest, rlen);
        return 0;
    }
    /* handshake with the genuine session block, then the server Hello */
    static const uint8_t nonce[SW_NONCE_LEN] = { 0 };
    if (deliver(&dev, nonce, sizeof nonce) != SW_RUNNING || deliver(&dev, session_block, sizeof session_block) != SW_RUNNING)
        abort();   /* the harness itself is wrong */
    sw_cipher cloud;
    sw_cipher_init(&cloud, material);
    uint8_t frame[2 + 1024];
    const uint8_t hello[] = { 0x51, 0x02, 0x00, 0x01, 0x01, 0xb1, 'h' };
    int n = sw_frame_seal(&cloud, hello, sizeof hello, frame, sizeof frame);
    if (n < 0 || deliver(&dev, frame, (size_t)n) != SW_RUNNING || !sw_device_connected(&dev))
        abort();
    if (mode == 1) {
        deliver(&dev, rest, rlen);
        return 0;
    }
    size_t i = 0;
    while (i < rlen) {
        size_t len = rest[i++];
        if (len > rlen - i)
            len = rlen - i;
        n = sw_frame_seal(&cloud, rest + i, len, frame, sizeof frame);
        i += len;
        if (n < 0 || deliver(&dev, frame, (size_t)n) != SW_RUNNING)
            break;
    }
    return 0;
}
