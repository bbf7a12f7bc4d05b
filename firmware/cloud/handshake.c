/* sparkcloud: the server side of the handshake (docs/protocol.md 2): nonce, id block, session block, Hellos. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cloud.h"
#include "crypto_port.h"

/* Reads and opens the id block; returns its plaintext length, 0 when the connection ended. */
static size_t id_block(conn *c, const uint8_t nonce[SC_NONCE_LEN], uint8_t plain[256])
{
    uint64_t global = c->accepted + sc_opt.handshake_timeout_ms;
    uint8_t block[256];
    uint64_t dl = sw_now_ms() + sc_opt.id_timeout_ms;
    int r = sc_read_exact(c, block, sizeof block, dl < global ? dl : global);
    if (r <= 0) {
        sc_end(c, r == 0 ? "id-timeout" : "device-closed", r == 0 ? "no id block in time (read_coreid timed out); "
               "closing" : "the device closed the connection before its id block");
        return 0;
    }
    size_t plen = 0;
    if (sw_crypto_rsa_private_decrypt(sc_opt.server_key.der, sc_opt.server_key.len, block, sizeof block, plain, 256,
                                      &plen) < 0) {
        sc_end(c, "id-block-undecryptable", "id block does not decrypt with the server key (pkcs decoding error): "
               "the device holds another server public key; closing");
        return 0;
    }
    if (plen < 52) {
        char why[100];
        snprintf(why, sizeof why, "id block plaintext is %zu bytes, at least 52 expected; closing", plen);
        sc_end(c, "id-block-too-short", why);
        return 0;
    }
    if (memcmp(plain, nonce, SC_NONCE_LEN) != 0) {
        sc_end(c, "nonce-mismatch", "id block does not echo the nonce; closing");
        return 0;
    }
    memcpy(c->id, plain + 40, 12);
    sw_to_hex(c->id, 12, c->id_hex);
    CLOG(c, "id block: device %s, %zu bytes (%s)", c->id_hex, plen,
         plen == 52 ? "early firmware" : plen == 214 ? "offers its public key" : "unexpected length");
    return plen;
}

static void log_session(const conn *c, const uint8_t material[SW_SESSION_LEN])
{
    char hex[81], line[120];
    sw_to_hex(material, SW_SESSION_LEN, hex);
    int n = snprintf(line, sizeof line, "%s %s\n", c->id_hex, hex);
    /* session material is a secret: the log is made 0600, never written through a symlink, and only a
     * regular file owned by this user is appended to */
    int fd = open(sc_opt.session_log, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())) {
        sw_err("session log %s: not a regular file of this user; name a new file for --session-log",
               sc_opt.session_log);
    } else if (fd < 0 || write(fd, line, (size_t)n) != n) {
        sw_err("session log %s: cannot write (%s)%s", sc_opt.session_log, strerror(errno),
               errno == ELOOP ? ": it is a symlink; name the file itself" : "");
    }
    if (fd >= 0)
        close(fd);
}

/* Encrypts fresh session material to the key on file, signs it and sends the session block. */
static bool session_block(conn *c, const uint8_t *dkey, size_t klen)
{
    uint8_t material[SW_SESSION_LEN], sblock[384], hmac[20];
    size_t elen = 0, slen = 0;
    if (RAND_bytes(material, sizeof material) != 1 ||
        sw_crypto_rsa_public_encrypt(dkey, klen, material, sizeof material, sblock, 128, &elen) < 0 || elen != 128) {
        sc_end(c, "key-error", "device public key on file is not RSA 1024; closing");
        return false;
    }
    const sw_keybuf *sk = sc_opt.have_sign_key ? &sc_opt.sign_key : &sc_opt.server_key;
    if (sw_crypto_hmac_sha1(material, sizeof material, sblock, 128, hmac) < 0 ||
        sw_crypto_rsa_private_sign_raw(sk->der, sk->len, hmac, 20, sblock + 128, 256, &slen) < 0 || slen != 256) {
        sc_end(c, "key-error", "cannot sign the session block (the signing key must be RSA 2048); closing");
        return false;
    }
    if (sw_send_all(c->fd, sblock, sizeof sblock) < 0) {
        sc_end(c, "device-closed", "the device closed the connection before the session block");
        return false;
    }
    CLOG(c, "session block sent%s", sc_opt.have_sign_key ? " (signed with the impostor key)" : "");
    if (sc_opt.session_log)
        log_session(c, material);
    sw_cipher_init(&c->cipher, material);
    return true;
}

/* Waits for the device Hello; its message id starts the device counter. */
static bool device_hello(conn *c)
{
    uint64_t global = c->accepted + sc_opt.handshake_timeout_ms;
    uint64_t dl = sw_now_ms() + sc_opt.hello_timeout_ms;
    if (dl > global)
        dl = global;
    for (;;) {
        size_t len = 0;
        int r = sc_read_frame(c, dl, &len);
        if (r < 0)
            return false;
        if (r == 0) {
            sc_end(c, "hello-timeout", "no device Hello in time (get_hello timed out); closing");
            return false;
        }
        if (r == 2)
            continue;
        sw_coap_msg m;
        if (sw_coap_parse(c->plain, len, &m) < 0 || m.code != SW_COAP_POST || sw_coap_path_letter(&m) != 'h') {
            sc_end(c, "bad-hello", "first message is not a Hello (failed to parse hello); closing");
            return false;
        }
        c->dev_id = m.id;
        const uint8_t *p = m.payload;
        size_t pl = m.payload_len;
        CLOG(c, "hello from the device: %zu bytes (%s), id 0x%04x, product %u version %u%s", len,
             pl >= 8 ? "platform id present" : "early firmware", m.id, pl >= 2 ? (unsigned)(p[0] << 8 | p[1]) : 0,
             pl >= 4 ? (unsigned)(p[2] << 8 | p[3]) : 0, pl >= 6 && (p[5] & 1) ? ", last update ok" : "");
        return true;
    }
}

/* The cloud Hello: a random id counter start, token 1. */
static bool cloud_hello(conn *c)
{
    uint16_t start;
    uint8_t rnd[2];
    do {
        RAND_bytes(rnd, 2);
        start = (uint16_t)(rnd[0] << 8 | rnd[1]);
    } while (start == 0);
    c->next_id = start;
    c->token = 0;
    uint8_t tok = sc_new_token(c);
    uint16_t id = sc_new_id(c);
    uint8_t hello[7] = {0x51, SW_COAP_POST, (uint8_t)(id >> 8), (uint8_t)id, tok, 0xb1, 'h'};
    if (sc_opt.no_hello) {
        CLOG(c, "server Hello withheld; handshake complete on the cloud side");
        return true;
    }
    if (sc_send(c, hello, 7) < 0)
        return false;
    CLOG(c, "hello sent (id 0x%04x, token %u); handshake complete", id, tok);
    return true;
}

void sc_handle(conn *c)
{
    if (sc_fault_before_nonce(c))
        return;
    uint8_t nonce[SC_NONCE_LEN];
    if (RAND_bytes(nonce, sizeof nonce) != 1 || sw_send_all(c->fd, nonce, sizeof nonce) < 0) {
        c->outcome = "device-closed";
        return;
    }
    CLOG(c, "nonce sent");
    if (sc_fault_after_nonce(c))
        return;
    uint8_t plain[256];
    size_t plen = id_block(c, nonce, plain);
    if (plen == 0)
        return;
    char kpath[1200];
    size_t klen = 0;
    const uint8_t *dkey = sc_device_key(c->id_hex, &klen, kpath, sizeof kpath);
    if (dkey == NULL) {
        char why[200];
        snprintf(why, sizeof why, "unknown device %s: no public key on file; closing", c->id_hex);
        sc_end(c, "unknown-device", why);
        return;
    }
    if (plen == 214) {
        bool same = klen == 162 && memcmp(plain + 52, dkey, 162) == 0;
        const char *base = strrchr(kpath, '/');
        CLOG(c, "the public key the device offers %s the one on file %s", same ? "matches" : "differs from",
             base ? base + 1 : kpath);
    }
    if (!session_block(c, dkey, klen) || !device_hello(c) || !cloud_hello(c))
        return;
    c->outcome = "ok";
    sc_run_session(c);
}
