/* sparkwire tests: the tracker on hand-made connections for every verdict, every key subset, gaps at
 * every position, chunking, bounded memory and the connection table.
 *
 * Keys are made fresh (RSA 2048 cloud, RSA 1024 devices), the handshake blocks with kr_hs_make_* and
 * the frames with kr_cipher_encrypt, so these tests need nothing from samples/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include "util.h"

/* ---- keys -------------------------------------------------------------------------------------- */

typedef struct keys {
    char *dir;
    kr_key *srv, *srv_other;           /* private (public half used to make id blocks) */
    kr_key *dev, *dev_other;
    uint8_t dev_spki[KR_DEVICE_SPKI_LEN];
    uint8_t id[KR_DEVICE_ID_LEN];
    char id_hex[KR_DEVICE_ID_HEX_LEN + 1];
    uint8_t m[KR_SESSION_LEN];         /* session material used by every built session */
    char m_hex[81];
} keys;

static keys K;

static kr_key *make_key(int bits, const char *file)
{
    EVP_PKEY *p = EVP_RSA_gen((unsigned)bits);
    assert_non_null(p);
    unsigned char *der = NULL;
    int n = i2d_PrivateKey(p, &der);
    assert_true(n > 0);
    tk_write(K.dir, file, der, (size_t)n);
    OPENSSL_free(der);
    EVP_PKEY_free(p);
    char *path = g_build_filename(K.dir, file, NULL);
    kr_err err;
    kr_key *k = kr_key_load_file(path, &err);
    if (!k)
        fprintf(stderr, "%s\n", err.msg);
    assert_non_null(k);
    g_free(path);
    return k;
}

static int setup(void **state)
{
    (void)state;
    K.dir = tk_tmpdir();
    K.srv = make_key(2048, "server.der");
    K.srv_other = make_key(2048, "other-server.der");
    K.dev = make_key(1024, "device.der");
    K.dev_other = make_key(1024, "other-device.der");
    /* the server public key file, as the keyfile's server-public line wants it */
    uint8_t spki[600];
    int n = kr_key_public_spki(K.srv, spki, sizeof spki);
    assert_true(n > 0);
    tk_write(K.dir, "server-public.der", spki, (size_t)n);
    n = kr_key_public_spki(K.srv_other, spki, sizeof spki);
    assert_true(n > 0);
    tk_write(K.dir, "other-server-public.der", spki, (size_t)n);
    n = kr_key_public_spki(K.dev_other, spki, sizeof spki);
    assert_true(n > 0);
    tk_write(K.dir, "other-device-public.der", spki, (size_t)n);
    n = kr_key_public_spki(K.dev, K.dev_spki, sizeof K.dev_spki);
    assert_int_equal(n, KR_DEVICE_SPKI_LEN);
    tk_write(K.dir, "device-public.der", K.dev_spki, (size_t)n);
    for (int i = 0; i < KR_DEVICE_ID_LEN; i++)
        K.id[i] = (uint8_t)(0x53 + i * 7);
    kr_hex(K.id, KR_DEVICE_ID_LEN, K.id_hex);
    for (int i = 0; i < KR_SESSION_LEN; i++)
        K.m[i] = (uint8_t)(i * 13 + 5);
    K.m[32] = 0x12;
    K.m[33] = 0x34; /* message-id counter 0x1234: the device Hello carries 0x1235 */
    kr_hex(K.m, KR_SESSION_LEN, K.m_hex);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kr_key_free(K.srv);
    kr_key_free(K.srv_other);
    kr_key_free(K.dev);
    kr_key_free(K.dev_other);
    tk_rmdir(K.dir);
    g_free(K.dir);
    return 0;
}

/* Keyfile with the chosen kinds of keys: a = all, or letters p (server-private), u (server-public),
 * d (device key for the id), w (device * wildcard), s (session line), n (none). */
static kr_keyfile *keyfile(const char *what)
{
    GString *t = g_string_new(NULL);
    bool all = strcmp(what, "a") == 0;
    if (all || strchr(what, 'p'))
        g_string_append(t, "server-private server.der\n");
    if (all || strchr(what, 'u'))
        g_string_append(t, "server-public server-public.der\n");
    /* bound to the cloud address every hand-made connection goes to (TK_CLOUD), or to another one */
    if (strchr(what, 'P'))
        g_string_append(t, "server-private server.der cloud=" TK_CLOUD "\n");
    if (strchr(what, 'U'))
        g_string_append(t, "server-public server-public.der cloud=" TK_CLOUD "\n");
    if (strchr(what, 'X'))
        g_string_append(t, "server-private server.der cloud=198.51.100.7\n");
    /* the server key in the device's flash: the cloud's (k) or another (K) */
    if (strchr(what, 'k'))
        g_string_append_printf(t, "device-server-key %s server-public.der\n", K.id_hex);
    if (strchr(what, 'K'))
        g_string_append_printf(t, "device-server-key %s other-server-public.der\n", K.id_hex);
    /* the cloud's record of the device key: the device's (r) or another (R) */
    if (strchr(what, 'r'))
        g_string_append_printf(t, "device-public %s device-public.der\n", K.id_hex);
    if (strchr(what, 'R'))
        g_string_append_printf(t, "device-public %s other-device-public.der\n", K.id_hex);
    if (all || strchr(what, 'd'))
        g_string_append_printf(t, "device %s device.der\n", K.id_hex);
    if (strchr(what, 'w'))
        g_string_append(t, "device * device.der\n");
    if (strchr(what, 's'))
        g_string_append_printf(t, "session %s %s\n", K.id_hex, K.m_hex);
    kr_keyfile *kf = tk_keyfile(K.dir, t->str);
    g_string_free(t, TRUE);
    return kf;
}

/* ---- CoAP builder ------------------------------------------------------------------------------- */

/* CoAP types and the codes the protocol uses, for the tests that name them. */
enum { CON = 0, NON = 1, ACK = 2 };
enum { EMPTY = 0x00, GET = 0x01, POST = 0x02, PUT = 0x03, CHANGED = 0x44, CONTENT = 0x45, BAD_REQUEST = 0x80 };
enum { NO_TOKEN = -1 };

typedef struct coap {
    uint8_t b[1024];
    size_t n;
    int last_opt;
} coap;

static void c_start(coap *c, int type, int code, uint16_t id, int tok)
{
    c->n = 0;
    c->last_opt = 0;
    c->b[c->n++] = (uint8_t)(0x40 | type << 4 | (tok >= 0 ? 1 : 0));
    c->b[c->n++] = (uint8_t)code;
    c->b[c->n++] = (uint8_t)(id >> 8);
    c->b[c->n++] = (uint8_t)id;
    if (tok >= 0)
        c->b[c->n++] = (uint8_t)tok;
}

static void c_opt(coap *c, int num, const void *v, size_t len)
{
    int delta = num - c->last_opt;
    c->last_opt = num;
    uint8_t *h = &c->b[c->n++];
    int dn = delta < 13 ? delta : 13, ln = len < 13 ? (int)len : len < 269 ? 13 : 14;
    *h = (uint8_t)(dn << 4 | ln);
    if (dn == 13)
        c->b[c->n++] = (uint8_t)(delta - 13);
    if (ln == 13)
        c->b[c->n++] = (uint8_t)(len - 13);
    if (ln == 14) {     /* two extension bytes: length - 269, big-endian */
        c->b[c->n++] = (uint8_t)((len - 269) >> 8);
        c->b[c->n++] = (uint8_t)(len - 269);
    }
    memcpy(c->b + c->n, v, len);
    c->n += len;
}

static void c_path(coap *c, const char *s)
{
    c_opt(c, 11, s, strlen(s));
}

static void c_query(coap *c, const void *v, size_t len)
{
    c_opt(c, 15, v, len);
}

static void c_payload(coap *c, const void *p, size_t len)
{
    c->b[c->n++] = 0xff;
    memcpy(c->b + c->n, p, len);
    c->n += len;
}

/* ---- sessions ----------------------------------------------------------------------------------- */

typedef struct sess {
    tk_conn *c;
    kr_cipher *enc[2];
    uint16_t dev_id;     /* next device message id */
    uint16_t srv_id;
    uint8_t srv_tok;
} sess;

static uint8_t NONCE[KR_NONCE_LEN];

/* open + nonce + id block (G2 unless g1) made with `srv_pub` for the id block. */
static void s_begin(sess *s, bool g1, const kr_key *idblock_key, bool bad_nonce)
{
    memset(s, 0, sizeof *s);
    s->c = tk_conn_new();
    for (int i = 0; i < KR_NONCE_LEN; i++)
        NONCE[i] = (uint8_t)(i * 91 + 17);
    tk_conn_open(s->c, 0);
    tk_conn_data(s->c, KR_S2D, 0.001, NONCE, KR_NONCE_LEN);
    uint8_t echo[KR_NONCE_LEN];
    memcpy(echo, NONCE, sizeof echo);
    if (bad_nonce)
        echo[5] ^= 0x40;
    uint8_t blk[KR_IDBLOCK_LEN];
    kr_err err;
    assert_int_equal(kr_hs_make_idblock(idblock_key, echo, K.id, g1 ? NULL : K.dev_spki, blk, &err), 0);
    tk_conn_data(s->c, KR_D2S, 0.002, blk, sizeof blk);
}

/* session block: E to `dev_pub`, signed by `srv_priv`; ciphers keyed with M. */
static void s_session(sess *s, const kr_key *dev_pub, const kr_key *srv_priv)
{
    uint8_t blk[KR_SESSIONBLOCK_LEN];
    kr_err err;
    assert_int_equal(kr_hs_make_session_block(dev_pub, srv_priv, K.m, blk, &err), 0);
    tk_conn_data(s->c, KR_S2D, 0.005, blk, sizeof blk);
    s->enc[KR_D2S] = kr_cipher_new(K.m, K.m + 16);
    s->enc[KR_S2D] = kr_cipher_new(K.m, K.m + 16);
    s->dev_id = 0x1235;
    s->srv_id = 0x7000;
}

static void s_send(sess *s, kr_dir dir, double dt, const coap *c)
{
    uint8_t out[1100];
    int n = kr_cipher_encrypt(s->enc[dir], c->b, c->n, out, sizeof out);
    assert_true(n > 0);
    tk_conn_data(s->c, dir, dt, out, (size_t)n);
}

static void s_end(sess *s)
{
    kr_cipher_free(s->enc[0]);
    kr_cipher_free(s->enc[1]);
    tk_conn_free(s->c);
}

/* Device Hello (G2: platform 6) and cloud Hello. */
static void s_hellos(sess *s)
{
    coap c;
    c_start(&c, NON, POST, s->dev_id++, NO_TOKEN);
    c_path(&c, "h");
    uint8_t hp[8] = { 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 6 };
    c_payload(&c, hp, sizeof hp);
    s_send(s, KR_D2S, 0.002, &c);
    c_start(&c, NON, POST, s->srv_id++, ++s->srv_tok);
    c_path(&c, "h");
    s_send(s, KR_S2D, 0.001, &c);
}

/* The cloud asks for a Describe and the device answers with this JSON. */
static void s_describe(sess *s, const char *js)
{
    coap c;
    c_start(&c, CON, GET, s->srv_id, ++s->srv_tok);
    c_path(&c, "d");
    s_send(s, KR_S2D, 0.010, &c);
    c_start(&c, ACK, CONTENT, s->srv_id++, s->srv_tok);
    c_payload(&c, js, strlen(js));
    s_send(s, KR_D2S, 0.012, &c);
}

/* A healthy G2 session with a describe, typed variables, a function, events, a ping and the time. */
static tk_conn *healthy(sess *s)
{
    s_begin(s, false, K.srv, false);
    s_session(s, K.dev, K.srv);
    s_hellos(s);
    coap c;
    s_describe(s, "{\"f\":[\"brew\",\"led\"],\"v\":{\"temperature\":9,\"count\":2,\"ready\":1,\"label\":4}}");
    /* variable reads */
    struct { const char *name; uint8_t v[8]; size_t n; } vars[] = {
        { "temperature", { 0, 0, 0, 0, 0, 0x80, 0x35, 0x40 }, 8 },  /* 21.5 little-endian */
        { "count", { 0xff, 0xff, 0xff, 0xfe }, 4 },
        { "ready", { 1 }, 1 },
        { "label", { 'k', 'i', 't' }, 3 },
    };
    for (size_t i = 0; i < 4; i++) {
        c_start(&c, CON, GET, s->srv_id, ++s->srv_tok);
        c_path(&c, "v");
        c_path(&c, vars[i].name);
        s_send(s, KR_S2D, 0.1, &c);
        c_start(&c, ACK, CONTENT, s->srv_id++, s->srv_tok);
        c_payload(&c, vars[i].v, vars[i].n);
        s_send(s, KR_D2S, 0.012, &c);
    }
    /* function call: empty ACK, then the return */
    c_start(&c, CON, POST, s->srv_id, ++s->srv_tok);
    c_path(&c, "f");
    c_path(&c, "brew");
    c_query(&c, "coffee", 6);
    s_send(s, KR_S2D, 0.1, &c);
    c_start(&c, ACK, EMPTY, s->srv_id++, NO_TOKEN);
    s_send(s, KR_D2S, 0.003, &c);
    c_start(&c, NON, CHANGED, s->dev_id++, s->srv_tok);
    uint8_t one[4] = { 0, 0, 0, 1 };
    c_payload(&c, one, 4);
    s_send(s, KR_D2S, 0.020, &c);
    /* event and its ACK */
    c_start(&c, NON, POST, s->dev_id, NO_TOKEN);
    c_path(&c, "e");
    c_path(&c, "temperature");
    c_payload(&c, "21.5", 4);
    s_send(s, KR_D2S, 0.1, &c);
    c_start(&c, ACK, EMPTY, s->dev_id++, 0);
    s_send(s, KR_S2D, 0.004, &c);
    /* time */
    c_start(&c, CON, GET, s->dev_id, 0x20);
    c_path(&c, "t");
    s_send(s, KR_D2S, 0.1, &c);
    c_start(&c, ACK, CONTENT, s->dev_id++, 0x20);
    uint8_t tm[4] = { 0x53, 0x59, 0x66, 0xad };
    c_payload(&c, tm, 4);
    s_send(s, KR_S2D, 0.008, &c);
    /* ping */
    c_start(&c, CON, EMPTY, s->dev_id, NO_TOKEN);
    s_send(s, KR_D2S, 15.0, &c);
    c_start(&c, ACK, EMPTY, s->dev_id++, NO_TOKEN);
    s_send(s, KR_S2D, 0.005, &c);
    /* signal */
    c_start(&c, CON, PUT, s->srv_id, ++s->srv_tok);
    c_path(&c, "s");
    uint8_t on = 1;
    c_query(&c, &on, 1);
    s_send(s, KR_S2D, 0.1, &c);
    c_start(&c, ACK, CHANGED, s->srv_id++, s->srv_tok);
    s_send(s, KR_D2S, 0.002, &c);
    return s->c;
}

/* ---- running ------------------------------------------------------------------------------------ */

typedef struct rec {
    GPtrArray *summaries;   /* message summaries */
    GPtrArray *findings;    /* "code: text" */
    int verdicts;
    int steps;
    int partial;
    int decrypted;
    int undecrypted;
    int reasons[16];        /* steps per kr_step_reason */
    kr_verdict first;
    kr_verdict all[8];      /* the first eight verdicts given */
    double idblock_time, sessionblock_time;
} rec;

static void r_step(void *ud, const kr_step *s)
{
    rec *r = ud;
    r->steps++;
    if ((unsigned)s->reason < 16)
        r->reasons[s->reason]++;
    if (s->kind == KR_STEP_IDBLOCK)
        r->idblock_time = s->time;
    if (s->kind == KR_STEP_SESSIONBLOCK)
        r->sessionblock_time = s->time;
    if (s->frame_state == KR_FRAME_PARTIAL)
        r->partial++;
    if (s->frame_state == KR_FRAME_DECRYPTED)
        r->decrypted++;
    if ((s->kind == KR_STEP_FRAME || s->kind == KR_STEP_HELLO) && s->frame_state == KR_FRAME_NOT_DECRYPTED)
        r->undecrypted++;
}

static void r_msg(void *ud, const kr_message *m)
{
    rec *r = ud;
    g_ptr_array_add(r->summaries, g_strdup(m->summary));
}

static void r_find(void *ud, const kr_finding *f)
{
    rec *r = ud;
    g_ptr_array_add(r->findings, g_strdup_printf("%s: %s", kr_finding_str(f->code), f->text));
}

static void r_verdict(void *ud, const kr_verdict *v)
{
    rec *r = ud;
    if (r->verdicts < 8)
        r->all[r->verdicts] = *v;
    if (r->verdicts++ == 0)
        r->first = *v;
}

static const kr_callbacks rec_cb = { r_step, r_msg, r_find, r_verdict };

static void rec_init(rec *r)
{
    memset(r, 0, sizeof *r);
    r->summaries = g_ptr_array_new_with_free_func(g_free);
    r->findings = g_ptr_array_new_with_free_func(g_free);
}

static void rec_free(rec *r)
{
    g_ptr_array_free(r->summaries, TRUE);
    g_ptr_array_free(r->findings, TRUE);
}

static bool has(GPtrArray *a, const char *s)
{
    for (guint i = 0; i < a->len; i++)
        if (strstr(a->pdata[i], s))
            return true;
    return false;
}

/* Runs with the keys `what`; checks that byte-by-byte and random chunks print the same text. */
static kr_verdict run(const tk_conn *c, const char *what, rec *r)
{
    kr_keyfile *kf = keyfile(what);
    kr_verdict v;
    char *whole = tk_conn_run_cb(c, kf, 0, &v, r ? &rec_cb : NULL, r);
    if (getenv("TK_VERBOSE"))
        fprintf(stderr, "--- keys %s\n%s", what, whole);
    static const unsigned chunkings[] = { 1, 5, 99 };
    for (size_t i = 0; i < 3; i++) {
        char *o = tk_conn_run(c, kf, chunkings[i], NULL);
        assert_string_equal(whole, o);
        g_free(o);
    }
    g_free(whole);
    kr_keyfile_free(kf);
    return v;
}

static void expect(const tk_conn *c, const char *what, kr_verdict_code code, bool proven, const char *cands)
{
    kr_verdict v = run(c, what, NULL);
    if (v.code != code || v.proven != proven)
        fprintf(stderr, "keys '%s': got %s (%s): %s\n", what, kr_verdict_str(v.code), v.proven ? "proven" : "inferred",
                v.evidence);
    assert_string_equal(kr_verdict_str(v.code), kr_verdict_str(code));
    assert_int_equal(v.proven, proven);
    assert_true(v.final);
    char got[128] = "";
    size_t o = 0;
    for (int i = 0; i < v.n_candidates; i++)
        o += (size_t)snprintf(got + o, sizeof got - o, "%s%s", i ? "," : "", kr_verdict_str(v.candidates[i]));
    assert_string_equal(got, cands);
    assert_true(v.evidence[0] != '\0');
}

/* ---- verdicts ----------------------------------------------------------------------------------- */

/* A Describe naming a variable with bytes outside printable ASCII (UTF-8 and a backslash): its value is still
 * typed, because names are compared as raw bytes (both sides kept in the same escaped form), and no text
 * the tracker gives carries the raw bytes. */
static void test_describe_raw_names(void **state)
{
    (void)state;
    sess s;
    s_begin(&s, false, K.srv, false);
    s_session(&s, K.dev, K.srv);
    s_hellos(&s);
    coap c;
    s_describe(&s, "{\"f\":[],\"v\":{\"temp\xc3\xa9rature\":2,\"a\\\\b\":2}}");
    const char *names[] = { "temp\xc3\xa9rature", "a\\b" };
    for (size_t i = 0; i < 2; i++) {
        c_start(&c, CON, GET, s.srv_id, ++s.srv_tok);
        c_path(&c, "v");
        c_path(&c, names[i]);
        s_send(&s, KR_S2D, 0.1, &c);
        uint8_t v[4] = { 0, 0, 0, 7 };
        c_start(&c, ACK, CONTENT, s.srv_id++, s.srv_tok);
        c_payload(&c, v, 4);
        s_send(&s, KR_D2S, 0.012, &c);
    }
    tk_conn *conn = s.c;
    tk_conn_close(conn, KR_D2S, 1.0, false);
    tk_conn_close(conn, KR_S2D, 0.001, false);
    rec r;
    rec_init(&r);
    run(conn, "a", &r);
    assert_true(has(r.summaries, "Variable temp\\xc3\\xa9rature = 7 (int32)"));
    assert_true(has(r.summaries, "Variable a\\\\b = 7 (int32)"));
    rec_free(&r);
    s_end(&s);
}

/* A G2 session with all keys, up to both Hellos. */
static void s_ready(sess *s)
{
    s_begin(s, false, K.srv, false);
    s_session(s, K.dev, K.srv);
    s_hellos(s);
}

/* Both sides close; with all keys the session is ok and gives no finding. r keeps what it gave. */
static void s_close_ok(sess *s, rec *r)
{
    tk_conn_close(s->c, KR_D2S, 1.0, false);
    tk_conn_close(s->c, KR_S2D, 0.001, false);
    rec_init(r);
    kr_verdict v = run(s->c, "a", r);
    assert_int_equal(v.code, KR_V_OK);
    assert_int_equal(r->findings->len, 0);
}

/* Firmware 0.4-0.6.0 answer a Describe twice, the second time with a message id that is not the request's (the
 * first two ciphertext bytes of the first answer): both answers are named and neither gives a finding. Then
 * the session goes on as usual. */
static void test_describe_twice(void **state)
{
    (void)state;
    sess s;
    s_ready(&s);
    coap c;
    s_describe(&s, "{\"f\":[\"brew\"],\"v\":{\"t\":2},\"p\":6,\"m\":[{\"s\":16384,\"l\":\"m\"}]}");
    const char *app = "{\"f\":[\"brew\"],\"v\":{\"t\":2}}";
    c_start(&c, ACK, CONTENT, 0x8c75, s.srv_tok);
    c_payload(&c, app, strlen(app));
    s_send(&s, KR_D2S, 0.002, &c);
    c_start(&c, CON, GET, s.srv_id, ++s.srv_tok);
    c_path(&c, "v");
    c_path(&c, "t");
    s_send(&s, KR_S2D, 0.1, &c);
    uint8_t v[4] = { 0, 0, 0, 7 };
    c_start(&c, ACK, CONTENT, s.srv_id++, s.srv_tok);
    c_payload(&c, v, 4);
    s_send(&s, KR_D2S, 0.01, &c);
    rec r;
    s_close_ok(&s, &r);
    assert_true(has(r.summaries, "Describe: 1 function, 1 variable, platform 6, 1 firmware module"));
    assert_true(has(r.summaries, "Describe: 1 function, 1 variable"));
    assert_true(has(r.summaries, "Variable t = 7 (int32)"));
    rec_free(&r);
    s_end(&s);
}

/* A Photon takes frames up to 800 bytes: an event of 720 bytes on the wire to a subscribed device is followed
 * without a finding. */
static void test_photon_large_frame(void **state)
{
    (void)state;
    sess s;
    s_ready(&s);
    coap c;
    char data[700];
    memset(data, 'a', sizeof data);
    c_start(&c, NON, POST, s.srv_id++, NO_TOKEN);
    c_path(&c, "e");
    c_path(&c, "big");
    c_payload(&c, data, sizeof data);
    s_send(&s, KR_S2D, 0.01, &c);
    c_start(&c, CON, EMPTY, s.dev_id++, NO_TOKEN);
    s_send(&s, KR_D2S, 0.5, &c);
    c_start(&c, ACK, EMPTY, (uint16_t)(s.dev_id - 1), NO_TOKEN);
    s_send(&s, KR_S2D, 0.01, &c);
    rec r;
    s_close_ok(&s, &r);
    assert_true(has(r.summaries, "Event big = aaaa"));
    rec_free(&r);
    s_end(&s);
}

/* A Photon takes function arguments of up to 622 bytes, carried in one Uri-Query: an option length of 13..268
 * takes one extension byte, of 269 and more two. Every such call (and a variable request with a long name) is
 * read as the message it is, without a finding. */
static void test_long_options(void **state)
{
    (void)state;
    const size_t lens[] = { 12, 13, 255, 256, 268, 269, 270, 300, 622 };
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        sess s;
        s_ready(&s);
        coap c;
        char arg[622], name[400];
        memset(arg, 'q', sizeof arg);
        arg[lens[k] - 1] = 'Z';
        c_start(&c, CON, POST, s.srv_id, ++s.srv_tok);
        c_path(&c, "f");
        c_path(&c, "brew");
        c_query(&c, arg, lens[k]);
        s_send(&s, KR_S2D, 0.1, &c);
        c_start(&c, ACK, EMPTY, s.srv_id++, NO_TOKEN);
        s_send(&s, KR_D2S, 0.003, &c);
        c_start(&c, NON, CHANGED, s.dev_id++, s.srv_tok);
        uint8_t one[4] = { 0, 0, 0, 1 };
        c_payload(&c, one, 4);
        s_send(&s, KR_D2S, 0.020, &c);
        size_t nl = lens[k] < sizeof name ? lens[k] : sizeof name - 1;
        memset(name, 'n', nl);
        name[nl] = '\0';
        c_start(&c, CON, GET, s.srv_id, ++s.srv_tok);
        c_path(&c, "v");
        c_path(&c, name);
        s_send(&s, KR_S2D, 0.1, &c);
        c_start(&c, ACK, CONTENT, s.srv_id++, s.srv_tok);
        c_payload(&c, one, 4);
        s_send(&s, KR_D2S, 0.012, &c);
        rec r;
        s_close_ok(&s, &r);     /* no finding: no decrypt-error */
        char want[64] = "Function brew(qqqq";
        if (lens[k] < 40)
            snprintf(want, sizeof want, "Function brew(%.*sZ)", (int)lens[k] - 1, arg);
        assert_true(has(r.summaries, want));
        assert_true(has(r.summaries, "Variable request nnnnnnnn"));
        for (guint i = 0; i < r.summaries->len; i++)
            assert_null(strstr(g_ptr_array_index(r.summaries, i), "not a valid CoAP"));
        rec_free(&r);
        s_end(&s);
    }
}

static void test_healthy(void **state)
{
    (void)state;
    sess s;
    tk_conn *c = healthy(&s);
    tk_conn_close(c, KR_D2S, 1.0, false);
    tk_conn_close(c, KR_S2D, 0.001, false);
    rec r;
    rec_init(&r);
    kr_verdict v = run(c, "a", &r);
    assert_int_equal(v.code, KR_V_OK);
    assert_true(v.proven);
    assert_true(has(r.summaries, "Describe: 2 functions, 4 variables"));
    assert_true(has(r.summaries, "Variable temperature = 21.5 (double)"));
    assert_true(has(r.summaries, "Variable count = -2 (int32)"));
    assert_true(has(r.summaries, "Variable ready = true (bool)"));
    assert_true(has(r.summaries, "Variable label = kit (string)"));
    assert_true(has(r.summaries, "Function brew(coffee)"));
    assert_true(has(r.summaries, "Function brew(coffee) -> 1"));
    assert_true(has(r.summaries, "Event temperature = 21.5"));
    assert_true(has(r.summaries, "ACK to Event temperature (4 ms)"));
    assert_true(has(r.summaries, "Time 2014-04-24T19:31:57Z"));
    assert_true(has(r.summaries, "Ping"));
    assert_true(has(r.summaries, "ACK to Ping (5 ms)"));
    assert_true(has(r.summaries, "ACK 2.04 to Signal start (2 ms)"));
    assert_true(has(r.summaries, "Device Hello: product 65535, version 65535, flags 0x01, platform 6 (Photon)"));
    assert_int_equal(r.findings->len, 0);
    rec_free(&r);
    /* without keys every frame says why it was not decrypted in a code, not only in words */
    rec_init(&r);
    run(c, "n", &r);
    assert_true(r.undecrypted > 0);
    assert_int_equal(r.reasons[KR_WHY_NO_SESSION_KEY], r.undecrypted);
    assert_int_equal(r.reasons[KR_WHY_NO_SERVER_KEY], 1);
    assert_int_equal(r.reasons[KR_WHY_NO_DEVICE_KEY], 1);
    rec_free(&r);
    /* no key material in any note or evidence (the steps carry the session bytes for who asks for them) */
    {
        kr_keyfile *kf = keyfile("a");
        char *out = tk_conn_run(c, kf, 0, NULL);
        char key_hex[33], iv_hex[33], salt_hex[17];
        kr_hex(K.m, 16, key_hex);
        kr_hex(K.m + 16, 16, iv_hex);
        kr_hex(K.m + 32, 8, salt_hex);
        assert_null(strstr(out, key_hex));
        assert_null(strstr(out, iv_hex));
        assert_null(strstr(out, salt_hex));
        assert_non_null(strstr(out, "the session key is known"));
        g_free(out);
        kr_keyfile_free(kf);
    }

    /* every key subset reaches ok; what is proven depends on the keys */
    expect(c, "n", KR_V_OK, false, "");
    expect(c, "p", KR_V_OK, false, "");
    expect(c, "u", KR_V_OK, false, "");
    expect(c, "d", KR_V_OK, true, "");
    expect(c, "w", KR_V_OK, true, "");
    expect(c, "s", KR_V_OK, true, "");
    /* the id learned from the server private key selects the device key */
    rec_init(&r);
    v = run(c, "pd", &r);
    assert_true(v.proven);
    assert_true(has(r.summaries, "Variable temperature = 21.5 (double)"));
    rec_free(&r);
    s_end(&s);
}

static void test_device_key_mismatch(void **state)
{
    (void)state;
    sess s;
    /* G2: the cloud encrypts to another key; the device closes 250 ms later without a frame */
    s_begin(&s, false, K.srv, false);
    s_session(&s, K.dev_other, K.srv);
    tk_conn_close(s.c, KR_D2S, 0.25, false);
    tk_conn_close(s.c, KR_S2D, 0.001, false);
    /* the server private key reads the public key the device offers: it is the keyfile's device key, which
     * does not open E: proven */
    expect(s.c, "a", KR_V_DEVICE_KEY_MISMATCH, true, "");
    /* the device key alone is only the keyfile's claim: inferred */
    expect(s.c, "d", KR_V_DEVICE_KEY_MISMATCH, false, "");
    expect(s.c, "n", KR_V_SESSION_BLOCK_REJECTED, false, "device-key-mismatch,bad-signature");
    /* the server public key (or its private half) sees a genuine signature: bad-signature is ruled out, the
     * one cause left is named, inferred, and the evidence says which key ruled out which cause */
    expect(s.c, "u", KR_V_DEVICE_KEY_MISMATCH, false, "");
    expect(s.c, "p", KR_V_DEVICE_KEY_MISMATCH, false, "");
    {
        kr_keyfile *kf = keyfile("u");
        kr_verdict v;
        char *out = tk_conn_run(s.c, kf, 0, &v);
        assert_non_null(strstr(v.evidence, "verifies with the server public key, which rules out bad-signature"));
        g_free(out);
        kr_keyfile_free(kf);
    }
    /* the cloud's record of the device key (device-public) is not the key the device offers: with the
     * server private key that proves the mismatch without the device's private key */
    expect(s.c, "pR", KR_V_DEVICE_KEY_MISMATCH, true, "");
    /* the record says the cloud holds the offered key, the signature is genuine: the keys contradict each
     * other, and both causes stay candidates */
    expect(s.c, "pr", KR_V_SESSION_BLOCK_REJECTED, false, "device-key-mismatch,bad-signature");
    /* the keyfile holds the key the cloud has on file, not the device's: E opens with it, and the id block
     * shows the device offering another public key */
    {
        char text[256];
        snprintf(text, sizeof text, "server-private server.der\ndevice %s other-device.der\n", K.id_hex);
        kr_keyfile *kf = tk_keyfile(K.dir, text);
        kr_verdict v;
        char *out = tk_conn_run(s.c, kf, 0, &v);
        assert_int_equal(v.code, KR_V_DEVICE_KEY_MISMATCH);
        assert_true(v.proven);
        assert_non_null(strstr(v.evidence, "offers in its id block is another one"));
        assert_non_null(strstr(out, "offered=no"));
        g_free(out);
        kr_keyfile_free(kf);
    }
    s_end(&s);

    /* G1: the device keeps sending frames the cloud cannot read; the cloud closes 30 s later */
    s_begin(&s, true, K.srv, false);
    s_session(&s, K.dev_other, K.srv);
    uint8_t junk[50];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 29 + 3);
    junk[0] = 0;
    junk[1] = 16;
    tk_conn_data(s.c, KR_D2S, 0.3, junk, 18);
    junk[1] = 48;
    tk_conn_data(s.c, KR_D2S, 0.01, junk, 50);
    tk_conn_close(s.c, KR_S2D, 29.7, false);
    tk_conn_close(s.c, KR_D2S, 0.05, true);
    /* G1 offers no public key: the keyfile's key for the id is a claim the wire could contradict */
    expect(s.c, "a", KR_V_DEVICE_KEY_MISMATCH, false, "");
    expect(s.c, "n", KR_V_SESSION_BLOCK_REJECTED, false, "device-key-mismatch,bad-signature");
    s_end(&s);
}

static void test_bad_signature(void **state)
{
    (void)state;
    sess s;
    s_begin(&s, false, K.srv, false);
    s_session(&s, K.dev, K.srv_other);
    tk_conn_close(s.c, KR_D2S, 0.25, false);
    tk_conn_close(s.c, KR_S2D, 0.001, false);
    /* the server public key is the public half of the key that opened this id block: proven */
    expect(s.c, "a", KR_V_BAD_SIGNATURE, true, "");
    /* an unbound server public key alone is the keyfile's claim; bound to this cloud it proves */
    expect(s.c, "u", KR_V_BAD_SIGNATURE, false, "");
    expect(s.c, "U", KR_V_BAD_SIGNATURE, true, "");
    /* with the cloud's record of the device key as well, the proof stands */
    expect(s.c, "pr", KR_V_BAD_SIGNATURE, true, "");
    expect(s.c, "n", KR_V_SESSION_BLOCK_REJECTED, false, "device-key-mismatch,bad-signature");
    /* the device key alone opens E but cannot judge the signature */
    expect(s.c, "d", KR_V_SESSION_BLOCK_REJECTED, false, "device-key-mismatch,bad-signature");
    s_end(&s);
}

static void test_id_block_failures(void **state)
{
    (void)state;
    sess s;
    /* server-key-mismatch: the device used another cloud key; the cloud closes at once */
    s_begin(&s, false, K.srv_other, false);
    tk_conn_close(s.c, KR_S2D, 0.002, false);
    tk_conn_close(s.c, KR_D2S, 0.001, false);
    /* an unbound server private key is the keyfile's claim: inferred; bound to this cloud: proven */
    expect(s.c, "a", KR_V_SERVER_KEY_MISMATCH, false, "");
    expect(s.c, "p", KR_V_SERVER_KEY_MISMATCH, false, "");
    expect(s.c, "P", KR_V_SERVER_KEY_MISMATCH, true, "");
    expect(s.c, "n", KR_V_ID_BLOCK_REJECTED, false, "server-key-mismatch,unknown-device,nonce-mismatch");
    expect(s.c, "ud", KR_V_ID_BLOCK_REJECTED, false, "server-key-mismatch,unknown-device,nonce-mismatch");
    /* the server key in the device's flash is another key than the cloud's: server-key-mismatch, both
     * fingerprints named; the same key: server-key-mismatch leaves the candidates */
    expect(s.c, "uK", KR_V_SERVER_KEY_MISMATCH, false, "");
    expect(s.c, "d", KR_V_ID_BLOCK_REJECTED, false, "server-key-mismatch,unknown-device,nonce-mismatch");
    expect(s.c, "uk", KR_V_ID_BLOCK_REJECTED, false, "unknown-device,nonce-mismatch");
    {
        kr_keyfile *kf = keyfile("uK");
        kr_verdict v;
        char *out = tk_conn_run(s.c, kf, 0, &v);
        char a[65], b[65];
        kr_key_fingerprint(K.srv, a);
        kr_key_fingerprint(K.srv_other, b);
        assert_non_null(strstr(v.evidence, a));
        assert_non_null(strstr(v.evidence, b));
        g_free(out);
        kr_keyfile_free(kf);
    }
    /* without a server-public line the device's copy is compared with the published Particle cloud key */
    expect(s.c, "K", KR_V_SERVER_KEY_MISMATCH, false, "");
    /* a server private key bound to another cloud does not judge this one */
    expect(s.c, "X", KR_V_ID_BLOCK_REJECTED, false, "server-key-mismatch,unknown-device,nonce-mismatch");
    /* nor is it the cloud's key the device's copy is compared with: the evidence says why Particle's is used */
    {
        kr_keyfile *kf = keyfile("XK");
        kr_verdict v;
        char *out = tk_conn_run(s.c, kf, 0, &v);
        assert_int_equal(v.code, KR_V_SERVER_KEY_MISMATCH);
        assert_non_null(strstr(v.evidence, "as no server key line of the keyfile applies to this cloud"));
        assert_null(strstr(v.evidence, "gives no server-public line"));
        g_free(out);
        kr_keyfile_free(kf);
    }
    s_end(&s);
    /* unknown-device: the block is fine, the cloud closes anyway */
    s_begin(&s, true, K.srv, false);
    tk_conn_close(s.c, KR_S2D, 0.002, false);
    tk_conn_close(s.c, KR_D2S, 0.001, false);
    rec r;
    rec_init(&r);
    kr_verdict v = run(s.c, "p", &r);
    assert_int_equal(v.code, KR_V_UNKNOWN_DEVICE);
    assert_true(v.proven);
    assert_non_null(strstr(v.evidence, K.id_hex));
    rec_free(&r);
    expect(s.c, "n", KR_V_ID_BLOCK_REJECTED, false, "server-key-mismatch,unknown-device,nonce-mismatch");
    /* the same, but the id block came in two segments 50 ms apart: a cloud that decrypts one read fails */
    {
        tk_conn *c = tk_conn_new();
        tk_conn_open(c, 0);
        tk_ev *nonce = &g_array_index(s.c->ev, tk_ev, 1);
        tk_ev *blk = &g_array_index(s.c->ev, tk_ev, 2);
        assert_int_equal(blk->data->len, KR_IDBLOCK_LEN);
        tk_conn_data(c, KR_S2D, 0.001, nonce->data->data, nonce->data->len);
        tk_conn_data(c, KR_D2S, 0.002, blk->data->data, 100);
        tk_conn_data(c, KR_D2S, 0.050, blk->data->data + 100, KR_IDBLOCK_LEN - 100);
        tk_conn_close(c, KR_S2D, 0.002, false);
        v = run(c, "p", NULL);
        assert_int_equal(v.code, KR_V_UNKNOWN_DEVICE);
        assert_false(v.proven);
        assert_non_null(strstr(v.evidence, "split block"));
        tk_conn_free(c);
    }
    s_end(&s);
    /* nonce-mismatch */
    s_begin(&s, false, K.srv, true);
    tk_conn_close(s.c, KR_S2D, 0.002, false);
    expect(s.c, "a", KR_V_NONCE_MISMATCH, true, "");
    s_end(&s);
}

static void test_not_spark(void **state)
{
    (void)state;
    /* HTTP answer from a captive portal: decided on its first bytes, before the connection ends */
    tk_conn *c = tk_conn_new();
    tk_conn_open(c, 0);
    const char *http = "HTTP/1.1 302 Found\r\nLocation: http://portal.example/\r\nContent-Length: 0\r\n\r\n";
    tk_conn_data(c, KR_S2D, 0.01, (const uint8_t *)http, strlen(http));
    rec r;
    rec_init(&r);
    kr_verdict v = run(c, "n", &r);
    assert_int_equal(v.code, KR_V_NOT_SPARK);
    assert_int_equal(r.first.code, KR_V_NOT_SPARK);
    assert_false(r.first.final);
    rec_free(&r);
    tk_conn_free(c);

    /* TLS */
    c = tk_conn_new();
    tk_conn_open(c, 0);
    tk_conn_hex(c, KR_S2D, 0.01, "160303003d020000390303");
    expect(c, "n", KR_V_NOT_SPARK, false, "");
    tk_conn_free(c);

    /* a "nonce" of few byte values */
    c = tk_conn_new();
    tk_conn_open(c, 0);
    uint8_t low[40];
    for (int i = 0; i < 40; i++)
        low[i] = (uint8_t)(i % 4);
    tk_conn_data(c, KR_S2D, 0.01, low, sizeof low);
    expect(c, "n", KR_V_NOT_SPARK, false, "");
    tk_conn_free(c);

    /* the cloud sends more than 40 bytes before the device's id block */
    c = tk_conn_new();
    tk_conn_open(c, 0);
    for (int i = 0; i < 40; i++)
        low[i] = (uint8_t)(i * 97 + 1);
    tk_conn_data(c, KR_S2D, 0.01, low, 40);
    tk_conn_data(c, KR_S2D, 0.01, low, 20);
    expect(c, "n", KR_V_NOT_SPARK, false, "");
    tk_conn_free(c);

    /* accepted but silent; first Core firmware sends its frames anyway after 20 s */
    c = tk_conn_new();
    tk_conn_open(c, 0);
    uint8_t f[18] = { 0x00, 0x10, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 1 };
    tk_conn_data(c, KR_D2S, 20.0, f, sizeof f);
    tk_conn_data(c, KR_D2S, 0.01, f, sizeof f);
    rec_init(&r);
    v = run(c, "n", &r);
    assert_int_equal(v.code, KR_V_NOT_SPARK);
    assert_non_null(strstr(v.evidence, "sent no nonce"));
    assert_int_equal(r.steps, 2);   /* the two frames */
    rec_free(&r);
    tk_conn_free(c);

    /* accepted but silent; the device gives up after 20 s */
    c = tk_conn_new();
    tk_conn_open(c, 0);
    tk_conn_close(c, KR_D2S, 20.0, false);
    tk_conn_close(c, KR_S2D, 0.001, false);
    expect(c, "n", KR_V_NOT_SPARK, false, "");
    tk_conn_free(c);
}

/* Bytes lost inside the nonce (a snapshot length cut its packet): the zeros standing in for them are not
 * judged, and the verdict says the handshake could not be read. */
static void test_gap_in_nonce(void **state)
{
    (void)state;
    uint8_t head[14];
    for (int i = 0; i < 14; i++)
        head[i] = (uint8_t)(i * 37 + 11);
    tk_conn *c = tk_conn_new();
    tk_conn_open(c, 0);
    tk_conn_data(c, KR_S2D, 0.01, head, sizeof head);
    tk_conn_gap(c, KR_S2D, 0.0, 26);
    kr_verdict v = run(c, "n", NULL);
    assert_string_equal(kr_verdict_str(v.code), "incomplete");
    assert_non_null(strstr(v.evidence, "the handshake could not be read: bytes of the nonce are missing"));
    tk_conn_free(c);

    /* the same nonce whole, with few byte values: that is judged */
    c = tk_conn_new();
    tk_conn_open(c, 0);
    uint8_t low[40];
    memcpy(low, head, sizeof head);
    memset(low + sizeof head, 0, sizeof low - sizeof head);
    tk_conn_data(c, KR_S2D, 0.01, low, sizeof low);
    v = run(c, "n", NULL);
    assert_string_equal(kr_verdict_str(v.code), "not-spark");
    assert_non_null(strstr(v.evidence, "different byte values"));
    tk_conn_free(c);

    /* nonce and id block cut, the cloud closes at once: inferred from the wire, and the evidence says why no
     * key could tell more */
    c = tk_conn_new();
    tk_conn_open(c, 0);
    tk_conn_data(c, KR_S2D, 0.01, head, sizeof head);
    tk_conn_gap(c, KR_S2D, 0.0, 26);
    tk_conn_data(c, KR_D2S, 0.01, head, sizeof head);
    tk_conn_gap(c, KR_D2S, 0.0, KR_IDBLOCK_LEN - sizeof head);
    tk_conn_close(c, KR_S2D, 0.01, false);
    v = run(c, "du", NULL);
    assert_string_equal(kr_verdict_str(v.code), "id-block-rejected");
    assert_false(v.proven);
    assert_non_null(strstr(v.evidence, "bytes of the nonce and the id block are missing from the capture"));
    tk_conn_free(c);
}

static tk_conn *short_session(sess *s, int frames);

/* A copy of a hand-made connection with every timestamp rounded down to a multiple of unit. */
static tk_conn *rounded(const tk_conn *c, double unit)
{
    tk_conn *r = tk_conn_new();
    for (guint i = 0; i < c->ev->len; i++) {
        tk_ev e = g_array_index(c->ev, tk_ev, i);
        e.ts = floor(e.ts / unit) * unit;
        if (e.data)
            e.data = g_byte_array_ref(e.data);
        g_array_append_val(r->ev, e);
    }
    return r;
}

/* The same verdicts with timestamps in s, ms, us and ns: no tie is decided by the clock's resolution. */
static void test_timestamp_units(void **state)
{
    (void)state;
    static const double units[] = { 1.0, 1e-3, 1e-6, 1e-9 };
    sess s;
    /* unknown-device: the cloud closes 0.4 ms after the id block, the device right after it (the same
     * millisecond): the cloud closed first, whatever the clock shows */
    s_begin(&s, true, K.srv, false);
    tk_conn_close(s.c, KR_S2D, 0.0004, false);
    tk_conn_close(s.c, KR_D2S, 0.0001, false);
    for (size_t i = 0; i < 4; i++) {
        tk_conn *r = rounded(s.c, units[i]);
        kr_verdict v = run(r, "p", NULL);
        if (v.code != KR_V_UNKNOWN_DEVICE)
            fprintf(stderr, "unit %g: %s: %s\n", units[i], kr_verdict_str(v.code), v.evidence);
        assert_int_equal(v.code, KR_V_UNKNOWN_DEVICE);
        assert_non_null(strstr(v.evidence, "the cloud closed"));
        v = run(r, "n", NULL);
        assert_int_equal(v.code, KR_V_ID_BLOCK_REJECTED);
        tk_conn_free(r);
    }
    s_end(&s);
    /* a healthy session and a device-key-mismatch */
    tk_conn *h = short_session(&s, 3);
    tk_conn_close(h, KR_D2S, 0.0002, false);
    tk_conn_close(h, KR_S2D, 0.0001, false);
    for (size_t i = 0; i < 4; i++) {
        tk_conn *r = rounded(h, units[i]);
        assert_int_equal(run(r, "a", NULL).code, KR_V_OK);
        assert_int_equal(run(r, "n", NULL).code, KR_V_OK);
        tk_conn_free(r);
    }
    s_end(&s);
    s_begin(&s, false, K.srv, false);
    s_session(&s, K.dev_other, K.srv);
    tk_conn_close(s.c, KR_D2S, 0.25, false);
    tk_conn_close(s.c, KR_S2D, 0.0001, false);
    for (size_t i = 0; i < 4; i++) {
        tk_conn *r = rounded(s.c, units[i]);
        assert_int_equal(run(r, "a", NULL).code, KR_V_DEVICE_KEY_MISMATCH);
        assert_int_equal(run(r, "n", NULL).code, KR_V_SESSION_BLOCK_REJECTED);
        tk_conn_free(r);
    }
    s_end(&s);
}

/* A capture that ends inside the nonce is incomplete; a cloud that closes after a short nonce is not. */
static void test_capture_ends_in_nonce(void **state)
{
    (void)state;
    uint8_t part[20];
    for (int i = 0; i < 20; i++)
        part[i] = (uint8_t)(i * 53 + 7);
    tk_conn *c = tk_conn_new();
    tk_conn_open(c, 0);
    tk_conn_data(c, KR_S2D, 0.01, part, sizeof part);
    rec r;
    rec_init(&r);
    kr_verdict v = run(c, "n", &r);
    assert_string_equal(kr_verdict_str(v.code), "incomplete");
    assert_non_null(strstr(v.evidence, "inside the nonce"));
    assert_true(v.final);
    rec_free(&r);
    /* the same bytes, then the cloud's FIN: it sent 20 bytes and stopped, not a nonce */
    tk_conn_close(c, KR_S2D, 0.01, false);
    v = run(c, "n", NULL);
    assert_string_equal(kr_verdict_str(v.code), "not-spark");
    tk_conn_free(c);
}

/* One flipped bit in a frame's length prefix (0x0010 -> 0x8010) resynchronises at the next frame instead of
 * swallowing the session; with the session key the frames after it decrypt whole. */
static void test_damaged_length_prefix(void **state)
{
    (void)state;
    for (int which = 0; which < 2; which++) {
        sess s;
        tk_conn *c = short_session(&s, 6);
        tk_conn_close(c, KR_D2S, 0.5, false);
        tk_conn_close(c, KR_S2D, 0.001, false);
        /* the device's data events after the id block: [0] is the Hello, [3] the third event */
        int seen = 0, target = which == 0 ? 3 : 0;
        for (guint i = 0; i < c->ev->len; i++) {
            tk_ev *e = &g_array_index(c->ev, tk_ev, i);
            if (e->kind != TK_DATA || e->dir != KR_D2S || e->data->len == KR_IDBLOCK_LEN)
                continue;
            if (seen++ == target) {
                assert_int_equal(e->data->data[0], 0);
                e->data->data[0] ^= 0x80;
            }
        }
        rec r;
        rec_init(&r);
        kr_verdict v = run(c, "a", &r);
        if (v.code != KR_V_OK || r.decrypted != 13)
            fprintf(stderr, "flip %d: %s, %d decrypted: %s\n", which, kr_verdict_str(v.code), r.decrypted, v.evidence);
        assert_int_equal(v.code, KR_V_OK);
        /* 14 frames besides the damaged one, all decrypted: the frame after it too */
        assert_int_equal(r.decrypted, 13);
        assert_int_equal(r.findings->len, 0);
        rec_free(&r);
        v = run(c, "n", NULL);
        assert_int_equal(v.code, KR_V_OK);
        s_end(&s);
    }
}

/* A lost handshake block is named, and what can still be decided is: a lost id block does not stop the
 * session block opening with the device key, nor the frames decrypting. */
static void test_lost_id_block(void **state)
{
    (void)state;
    sess s;
    tk_conn *full = short_session(&s, 3);
    tk_conn_close(full, KR_D2S, 0.5, false);
    tk_conn_close(full, KR_S2D, 0.001, false);
    /* the id block's segment is not in the capture: the connection layer learns of the gap when the
     * device's next segment (its Hello) arrives, after the cloud's session block */
    tk_conn *c = tk_conn_new();
    bool pending_gap = false;
    for (guint i = 0; i < full->ev->len; i++) {
        const tk_ev *e = &g_array_index(full->ev, tk_ev, i);
        if (e->kind == TK_DATA && e->dir == KR_D2S && e->data->len == KR_IDBLOCK_LEN) {
            pending_gap = true;
            continue;
        }
        if (e->kind == TK_DATA && e->dir == KR_D2S && pending_gap) {
            tk_conn_gap(c, KR_D2S, 0.0, KR_IDBLOCK_LEN);
            pending_gap = false;
        }
        if (e->kind == TK_OPEN)
            tk_conn_open(c, 0);
        else if (e->kind == TK_DATA)
            tk_conn_data(c, e->dir, 0.001, e->data->data, e->data->len);
        else if (e->kind == TK_CLOSE)
            tk_conn_close(c, e->dir, 0.001, e->rst);
    }
    rec r;
    rec_init(&r);
    kr_verdict v = run(c, "d", &r);
    if (v.code != KR_V_OK || r.decrypted < 8)
        fprintf(stderr, "lost id block: %s, %d decrypted: %s\n", kr_verdict_str(v.code), r.decrypted, v.evidence);
    assert_int_equal(v.code, KR_V_OK);
    assert_int_equal(r.decrypted, 8);        /* both Hellos, 3 events, 3 ACKs */
    assert_non_null(strstr(v.evidence, "id block"));
    rec_free(&r);
    /* without keys: frames flow both ways, the verdict is ok, never a handshake failure */
    v = run(c, "n", NULL);
    assert_int_equal(v.code, KR_V_OK);
    tk_conn_free(c);
    s_end(&s);
}

/* A whole connection: nonce, id block (made with idkey), session block (E to devkey, signed by the
 * server key), the Hellos when asked, and both sides closing. */
static void open_session(sess *s, const kr_key *idkey, const kr_key *devkey, bool hellos)
{
    s_begin(s, false, idkey, false);
    s_session(s, devkey, K.srv);
    if (hellos)
        s_hellos(s);
}

static void closed_session(sess *s, const kr_key *idkey, const kr_key *devkey, bool hellos)
{
    open_session(s, idkey, devkey, hellos);
    tk_conn_close(s->c, KR_D2S, 0.25, false);
    tk_conn_close(s->c, KR_S2D, 0.001, false);
}

/* A damaged length prefix that still looks plausible (0x0010 read as 0x0110): the frame swallows the start
 * of the frames after it and does not decrypt; the boundary whose frame decrypts under the IV rule is
 * found, and every later frame is read. */
static void damaged_prefix(int which, guint messages)
{
    sess s;
    open_session(&s, K.srv, K.dev, true);
    coap c;
    guint damaged = 4;                        /* which < 0: the device Hello (open, nonce, id block, E) */
    for (int i = 0; i < 20; i++) {
        c_start(&c, NON, POST, s.dev_id++, NO_TOKEN);
        c_path(&c, "e");
        c_path(&c, "x");
        s_send(&s, KR_D2S, 0.01, &c);
        if (i == which)
            damaged = s.c->ev->len - 1;
    }
    tk_conn_close(s.c, KR_D2S, 0.25, false);
    tk_conn_close(s.c, KR_S2D, 0.001, false);
    tk_ev *e = &g_array_index(s.c->ev, tk_ev, damaged);
    assert_int_equal(e->dir, KR_D2S);
    assert_int_equal(e->data->data[0], 0x00);
    assert_int_equal(e->data->data[1], 0x10);
    e->data->data[0] = 0x01;                  /* one flipped bit: 16 bytes read as 272 */
    rec r;
    rec_init(&r);
    kr_verdict v = run(s.c, "a", &r);
    assert_int_equal(v.code, KR_V_OK);
    assert_int_equal(r.summaries->len, messages);
    assert_true(has(r.findings, "damaged length prefix"));
    rec_free(&r);
    s_end(&s);
}

static void test_damaged_prefix_resync_by_decryption(void **state)
{
    (void)state;
    /* mid-stream: both Hellos and every event but the damaged one */
    damaged_prefix(2, 2 + 19);
    /* the stream ends before the length the damaged prefix claims: the frame itself decrypts at the
     * boundary found, and so do the two after it */
    damaged_prefix(17, 2 + 20);
    /* the device Hello: the frame after it decrypts with the session key, so the handshake is not failed */
    damaged_prefix(-1, 1 + 20);
}

typedef void (*tk_alter)(tk_conn *c, const tk_ev *e, uint64_t off);

/* The same connection, with data event `which` (from 0) fed by alter (given its stream offset). */
static tk_conn *replay(const tk_conn *src, int which, tk_alter alter)
{
    tk_conn *c = tk_conn_new();
    uint64_t off[2] = { 0, 0 };
    int k = 0;
    for (guint i = 0; i < src->ev->len; i++) {
        const tk_ev *e = &g_array_index(src->ev, tk_ev, i);
        if (e->kind == TK_OPEN)
            tk_conn_open(c, 0);
        else if (e->kind == TK_CLOSE)
            tk_conn_close(c, e->dir, 0.001, e->rst);
        if (e->kind != TK_DATA)
            continue;
        if (k++ == which)
            alter(c, e, off[e->dir]);
        else
            tk_conn_data(c, e->dir, 0.001, e->data->data, e->data->len);
        off[e->dir] += e->data->len;
    }
    return c;
}

/* Garbage of the same length first, the real bytes after it as another copy (a garbage segment just
 * before the real one). */
static void garbage_then_real(tk_conn *c, const tk_ev *e, uint64_t off)
{
    uint8_t *junk = g_malloc(e->data->len);
    for (guint j = 0; j < e->data->len; j++)
        junk[j] = (uint8_t)(j * 29 + 101);
    tk_conn_data(c, e->dir, 0.001, junk, e->data->len);
    tk_conn_copy(c, e->dir, 0.000001, off, e->data->data, e->data->len, 0);
    g_free(junk);
}

/* The first 8 bytes, a copy of them with the same bytes, one with other bytes, then the rest. */
static void head_with_other_copy(tk_conn *c, const tk_ev *e, uint64_t off)
{
    uint8_t other[8];
    memcpy(other, e->data->data, 8);
    other[5] ^= 0x20;
    tk_conn_data(c, e->dir, 0.001, e->data->data, 8);
    tk_conn_copy(c, e->dir, 0.000001, off, e->data->data, 8, 0);   /* the same bytes */
    tk_conn_copy(c, e->dir, 0.000001, off, other, 8, 0);
    tk_conn_data(c, e->dir, 0.001, e->data->data + 8, e->data->len - 8);
}

/* The first 8 bytes with other bytes, then a copy of the real ones, then the rest. */
static void other_head_then_real(tk_conn *c, const tk_ev *e, uint64_t off)
{
    uint8_t other[8];
    memcpy(other, e->data->data, 8);
    other[5] ^= 0x20;
    tk_conn_data(c, e->dir, 0.001, other, 8);
    tk_conn_copy(c, e->dir, 0.000001, off, e->data->data, 8, 0);
    tk_conn_data(c, e->dir, 0.001, e->data->data + 8, e->data->len - 8);
}

static tk_conn *garbage_first(const tk_conn *src, int which)
{
    return replay(src, which, garbage_then_real);
}

/* Each handshake block read first from a garbage copy: the copy whose meaning holds (the nonce the id block
 * echoes, the block that opens with the key) wins, and a result both copies give stands, so the verdict is
 * the one the real bytes give, as strong as theirs. */
static void check_garbage_first(const tk_conn *src, const char *keys)
{
    kr_verdict want = run(src, keys, NULL);
    for (int which = 0; which < 3; which++) {
        tk_conn *c = garbage_first(src, which);
        kr_verdict v = run(c, keys, NULL);
        if (v.code != want.code || v.proven != want.proven)
            fprintf(stderr, "keys '%s', garbage before data event %d: %s (%s), the real bytes give %s (%s)\n",
                    keys, which, kr_verdict_str(v.code), v.proven ? "proven" : "inferred",
                    kr_verdict_str(want.code), want.proven ? "proven" : "inferred");
        assert_string_equal(kr_verdict_str(v.code), kr_verdict_str(want.code));
        assert_int_equal(v.proven, want.proven);
        tk_conn_free(c);
    }
}

static void test_conflicting_copies(void **state)
{
    (void)state;
    sess s;
    closed_session(&s, K.srv, K.dev, true);           /* healthy */
    check_garbage_first(s.c, "a");
    s_end(&s);
    /* unknown device: the cloud closes after the id block */
    s_begin(&s, false, K.srv, false);
    tk_conn_close(s.c, KR_S2D, 0.002, false);
    tk_conn_close(s.c, KR_D2S, 0.001, false);
    kr_verdict v = run(s.c, "P", NULL);
    assert_int_equal(v.code, KR_V_UNKNOWN_DEVICE);
    check_garbage_first(s.c, "P");
    s_end(&s);
    /* server key mismatch: neither copy opens, so the result holds whichever the cloud received */
    s_begin(&s, false, K.srv_other, false);
    tk_conn_close(s.c, KR_S2D, 0.002, false);
    tk_conn_close(s.c, KR_D2S, 0.001, false);
    check_garbage_first(s.c, "P");
    s_end(&s);
    closed_session(&s, K.srv, K.dev_other, false);    /* device key mismatch */
    check_garbage_first(s.c, "a");
    s_end(&s);
}

/* Copies nothing can judge: without the server private key the id block's copies cannot be told apart, so
 * it is disputed; a frame being read whose copies differ is disputed; a copy with the same bytes is a plain
 * retransmission. */
static void test_conflicting_copies_disputed(void **state)
{
    (void)state;
    sess s;
    closed_session(&s, K.srv, K.dev, true);
    tk_conn *c = garbage_first(s.c, 1);
    rec r;
    rec_init(&r);
    kr_verdict v = run(c, "u", &r);
    assert_int_equal(r.reasons[KR_WHY_DISPUTED], 1);
    assert_false(v.proven);
    rec_free(&r);
    tk_conn_free(c);
    /* the device Hello while it is read: its first 8 bytes come again with other bytes. With the session
     * key the copy under which the frame decrypts is read, whichever came first; without it, disputed */
    tk_alter alters[] = { head_with_other_copy, other_head_then_real };
    for (int i = 0; i < 2; i++) {
        c = replay(s.c, 3, alters[i]);
        rec_init(&r);
        v = run(c, "a", &r);
        assert_int_equal(r.reasons[KR_WHY_DISPUTED], 0);
        assert_int_equal(r.undecrypted, 0);
        assert_int_equal(v.code, KR_V_OK);
        assert_true(v.proven);
        rec_free(&r);
        rec_init(&r);
        run(c, "p", &r);
        assert_int_equal(r.reasons[KR_WHY_DISPUTED], 1);
        rec_free(&r);
        tk_conn_free(c);
    }
    s_end(&s);
}

/* Disputed bytes (another copy differs) prove nothing: the block is not opened, the frame not decrypted. */
static void test_disputed_bytes(void **state)
{
    (void)state;
    sess s;
    /* the id block disputed: the server private key does not judge it; a rejected id block stays open */
    s_begin(&s, false, K.srv_other, false);
    tk_conn *c = tk_conn_new();
    tk_conn_open(c, 0);
    tk_conn_dispute(c, KR_D2S, 0, 100, 20);
    for (guint i = 0; i < s.c->ev->len; i++) {
        const tk_ev *e = &g_array_index(s.c->ev, tk_ev, i);
        if (e->kind == TK_DATA)
            tk_conn_data(c, e->dir, 0.001, e->data->data, e->data->len);
    }
    tk_conn_close(c, KR_S2D, 0.002, false);
    tk_conn_close(c, KR_D2S, 0.001, false);
    rec r;
    rec_init(&r);
    kr_verdict v = run(c, "P", &r);
    assert_int_equal(v.code, KR_V_ID_BLOCK_REJECTED);
    assert_false(v.proven);
    assert_non_null(strstr(v.evidence, "disputed"));
    rec_free(&r);
    tk_conn_free(c);
    s_end(&s);
    /* the device Hello disputed: not decrypted, and ok is inferred from the frames both ways */
    tk_conn *h = short_session(&s, 2);
    c = tk_conn_new();
    bool done = false;
    for (guint i = 0; i < h->ev->len; i++) {
        const tk_ev *e = &g_array_index(h->ev, tk_ev, i);
        if (e->kind == TK_OPEN)
            tk_conn_open(c, 0);
        if (e->kind != TK_DATA)
            continue;
        if (!done && e->dir == KR_D2S && e->data->len != KR_IDBLOCK_LEN) {
            tk_conn_dispute(c, KR_D2S, 0, KR_IDBLOCK_LEN + 4, 1);
            done = true;
        }
        tk_conn_data(c, e->dir, 0.001, e->data->data, e->data->len);
    }
    rec_init(&r);
    v = run(c, "a", &r);
    assert_int_equal(v.code, KR_V_OK);
    assert_false(v.proven);
    assert_int_equal(r.undecrypted, 1);
    assert_int_equal(r.reasons[KR_WHY_DISPUTED], 1);
    rec_free(&r);
    tk_conn_free(c);
    s_end(&s);
}

/* A SYN answered by an RST: refused, not "accepted but silent". */
static void test_refused(void **state)
{
    (void)state;
    rec r;
    rec_init(&r);
    kr_keyfile *kf = kr_keyfile_new_empty();
    kr_tracker *t = kr_tracker_new(kf, &rec_cb, &r);
    kr_tracker_open(t, 1.0);
    kr_tracker_refused(t, 1.001);
    const kr_verdict *v = kr_tracker_verdict(t);
    assert_string_equal(kr_verdict_str(v->code), "refused");
    assert_int_equal(v->code, KR_V_REFUSED);
    assert_true(v->final);
    assert_false(v->proven);
    assert_non_null(strstr(v->evidence, "the connection was refused"));
    assert_null(strstr(v->evidence, "accepted"));
    assert_int_equal(r.verdicts, 1);
    kr_tracker_finish(t, 2.0);
    assert_string_equal(kr_verdict_str(kr_tracker_verdict(t)->code), "refused");
    kr_tracker_free(t);

    /* after data it is a plain reset, not a refusal */
    t = kr_tracker_new(kf, NULL, NULL);
    kr_tracker_open(t, 1.0);
    const uint8_t http[] = "HTTP/1.1 200 OK\r\n";
    kr_tracker_data(t, KR_S2D, http, sizeof http - 1, 1.01);
    kr_tracker_refused(t, 1.02);
    assert_null(strstr(kr_tracker_verdict(t)->evidence, "refused"));
    assert_true(kr_tracker_verdict(t)->final);
    kr_tracker_free(t);
    kr_keyfile_free(kf);
    rec_free(&r);
}

static void test_stalled_incomplete(void **state)
{
    (void)state;
    /* nonce, then nothing: the cloud closes 30 s later */
    tk_conn *c = tk_conn_new();
    tk_conn_open(c, 0);
    uint8_t n[40];
    for (int i = 0; i < 40; i++)
        n[i] = (uint8_t)(i * 97 + 1);
    tk_conn_data(c, KR_S2D, 0.01, n, 40);
    tk_conn_close(c, KR_S2D, 30.0, false);
    tk_conn_close(c, KR_D2S, 0.01, false);
    rec r;
    rec_init(&r);
    kr_verdict v = run(c, "n", &r);
    assert_int_equal(v.code, KR_V_STALLED);
    assert_non_null(strstr(v.evidence, "30.0 s"));
    rec_free(&r);
    tk_conn_free(c);

    /* id block, the cloud never answers, the device gives up after 20 s */
    sess s;
    s_begin(&s, false, K.srv, false);
    tk_conn_close(s.c, KR_D2S, 20.0, false);
    expect(s.c, "n", KR_V_STALLED, false, "");
    expect(s.c, "p", KR_V_STALLED, false, "unknown-device");
    s_end(&s);

    /* the capture ends after the id block */
    s_begin(&s, false, K.srv, false);
    expect(s.c, "n", KR_V_INCOMPLETE, false, "");
    s_end(&s);

    /* the capture ends in the middle of the session block */
    s_begin(&s, false, K.srv, false);
    tk_conn_data(s.c, KR_S2D, 0.01, n, 40);
    expect(s.c, "a", KR_V_INCOMPLETE, false, "");
    s_end(&s);

    /* G2 device Hello, no cloud Hello: the device closes 2 s later */
    s_begin(&s, false, K.srv, false);
    s_session(&s, K.dev, K.srv);
    coap co;
    c_start(&co, NON, POST, s.dev_id++, NO_TOKEN);
    c_path(&co, "h");
    uint8_t hp[8] = { 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 6 };
    c_payload(&co, hp, sizeof hp);
    s_send(&s, KR_D2S, 0.01, &co);
    tk_conn_close(s.c, KR_D2S, 2.0, false);
    expect(s.c, "a", KR_V_STALLED, true, "");
    expect(s.c, "n", KR_V_STALLED, false, "");
    s_end(&s);
}

static void test_mid_session(void **state)
{
    (void)state;
    sess s;
    healthy(&s);
    /* the same frames without the handshake: take the bytes after the handshake of each direction */
    tk_conn *m = tk_conn_new();
    uint64_t skip[2] = { KR_IDBLOCK_LEN, KR_NONCE_LEN + KR_SESSIONBLOCK_LEN };
    for (guint i = 0; i < s.c->ev->len; i++) {
        tk_ev *e = &g_array_index(s.c->ev, tk_ev, i);
        if (e->kind != TK_DATA)
            continue;
        size_t n = e->data->len;
        if (skip[e->dir] >= n) {
            skip[e->dir] -= n;
            continue;
        }
        tk_conn_data(m, e->dir, 0.01, e->data->data + skip[e->dir], n - skip[e->dir]);
        skip[e->dir] = 0;
    }
    rec r;
    rec_init(&r);
    kr_verdict v = run(m, "s", &r);
    assert_int_equal(v.code, KR_V_MID_SESSION);
    assert_true(v.proven);
    /* the first frame of each direction lost its first block (or, one block long, cannot be decrypted at
     * all); every later frame decrypts */
    assert_true(r.partial + r.undecrypted <= 2);
    assert_true(r.decrypted >= 20);
    assert_true(has(r.summaries, "Variable label = kit"));
    assert_true(has(r.summaries, "Function brew(coffee) -> 1"));
    rec_free(&r);
    expect(m, "n", KR_V_MID_SESSION, false, "");
    expect(m, "a", KR_V_MID_SESSION, false, "");
    tk_conn_free(m);

    /* an open notice, but the device speaks first with frames: the handshake is not in the capture */
    m = tk_conn_new();
    tk_conn_open(m, 0);
    skip[0] = KR_IDBLOCK_LEN;
    skip[1] = KR_NONCE_LEN + KR_SESSIONBLOCK_LEN;
    for (guint i = 0; i < s.c->ev->len; i++) {
        tk_ev *e = &g_array_index(s.c->ev, tk_ev, i);
        if (e->kind != TK_DATA)
            continue;
        size_t n = e->data->len;
        if (skip[e->dir] >= n) {
            skip[e->dir] -= n;
            continue;
        }
        /* the nonce is left out too, so the device's bytes come first and the cloud's stream starts
         * 40 bytes late, inside a frame */
        if (e->dir == KR_S2D && skip[0] == KR_IDBLOCK_LEN)
            continue;
        tk_conn_data(m, e->dir, 0.01, e->data->data + skip[e->dir], n - skip[e->dir]);
        skip[e->dir] = 0;
    }
    rec_init(&r);
    v = run(m, "s", &r);
    assert_int_equal(v.code, KR_V_MID_SESSION);
    assert_true(has(r.summaries, "Function brew(coffee) -> 1"));
    rec_free(&r);
    tk_conn_free(m);
    s_end(&s);
}

static void test_counter_and_ota(void **state)
{
    (void)state;
    sess s;
    s_begin(&s, true, K.srv, false);
    s_session(&s, K.dev, K.srv);
    s_hellos(&s);
    coap c;
    /* a device message id that skips one */
    s.dev_id++;
    c_start(&c, NON, POST, s.dev_id++, NO_TOKEN);
    c_path(&c, "e");
    c_path(&c, "x");
    s_send(&s, KR_D2S, 0.01, &c);
    /* OTA: begin, ready, chunk 0 ok, chunk 1 bad CRC, re-sent, then the device stops answering */
    c_start(&c, CON, POST, s.srv_id, ++s.srv_tok);
    c_path(&c, "u");
    s_send(&s, KR_S2D, 0.1, &c);
    c_start(&c, ACK, EMPTY, s.srv_id++, NO_TOKEN);
    s_send(&s, KR_D2S, 0.01, &c);
    c_start(&c, NON, CHANGED, s.dev_id++, s.srv_tok);
    s_send(&s, KR_D2S, 0.01, &c);
    /* chunks sent: 0 (good), 1 (bad CRC, device says 4.00), 1 again (good), 2 (good, never answered) */
    static const struct { int index; bool good; int answer; } plan[] = {
        { 0, true, 0x44 }, { 1, false, 0x80 }, { 1, true, 0x44 }, { 2, true, 0 },
    };
    uint8_t data[256];
    for (size_t p = 0; p < 4; p++) {
        for (size_t i = 0; i < sizeof data; i++)
            data[i] = (uint8_t)(i + (size_t)plan[p].index * 3);
        uint32_t crc = 0xdeadbeefu;
        if (plan[p].good) {
            /* a correct CRC-32, computed bit by bit here, independently of the tracker's table */
            uint32_t x = 0xffffffffu;
            for (size_t i = 0; i < sizeof data; i++) {
                x ^= data[i];
                for (int k = 0; k < 8; k++)
                    x = (x >> 1) ^ (0xedb88320u & (0u - (x & 1)));
            }
            crc = ~x;
        }
        uint8_t cb[4] = { (uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc };
        c_start(&c, CON, POST, s.srv_id, ++s.srv_tok);
        c_path(&c, "c");
        c_query(&c, cb, 4);
        c_payload(&c, data, sizeof data);
        s_send(&s, KR_S2D, 0.05, &c);
        if (!plan[p].answer)
            break;
        c_start(&c, ACK, EMPTY, s.srv_id++, NO_TOKEN);
        s_send(&s, KR_D2S, 0.01, &c);
        c_start(&c, NON, plan[p].answer, s.dev_id++, s.srv_tok);
        s_send(&s, KR_D2S, 0.01, &c);
    }
    tk_conn_close(s.c, KR_S2D, 12.0, false);
    rec r;
    rec_init(&r);
    kr_verdict v = run(s.c, "a", &r);
    assert_int_equal(v.code, KR_V_OK);
    assert_true(has(r.findings, "counter-error: device message id"));
    assert_true(has(r.findings, "ota-chunk-error: chunk 1 (256 bytes): the CRC option says deadbeef"));
    assert_true(has(r.findings, "ota-chunk-error: the device reports chunk 1 bad"));
    assert_true(has(r.findings, "ota-chunk-error: chunk 1 sent again"));
    assert_true(has(r.findings, "ota-incomplete"));
    assert_true(has(r.findings, "the device stopped"));
    assert_true(has(r.findings, "12.0 s"));
    assert_true(has(r.summaries, "Chunk 0: 256 bytes, CRC ok"));
    assert_true(has(r.summaries, "Chunk 1 received BAD"));
    rec_free(&r);
    s_end(&s);
}

/* Messages the healthy session does not carry: two describe answers, fast OTA indexes, key change,
 * save begin, an update begin with its 12-byte payload, chunk missed and the re-sent chunk. */
static void test_more_messages(void **state)
{
    (void)state;
    sess s;
    s_begin(&s, false, K.srv, false);
    s_session(&s, K.dev, K.srv);
    s_hellos(&s);
    coap c;
    /* describe answered twice (firmware 0.4-0.6): system part, then the application part with another id */
    c_start(&c, CON, GET, s.srv_id, ++s.srv_tok);
    c_path(&c, "d");
    uint8_t what = 3;   /* 1 system, 2 application, 3 both */
    c_query(&c, &what, 1);
    s_send(&s, KR_S2D, 0.01, &c);
    c_start(&c, ACK, CONTENT, s.srv_id++, s.srv_tok);
    const char *sys = "{\"p\":6,\"m\":[{\"s\":16384,\"l\":\"m\"},{\"s\":262144,\"l\":\"m\"}]}";
    c_payload(&c, sys, strlen(sys));
    s_send(&s, KR_D2S, 0.01, &c);
    c_start(&c, ACK, CONTENT, 0xbeef, s.srv_tok);
    const char *app = "{\"f\":[],\"v\":{\"t\":9}}";
    c_payload(&c, app, strlen(app));
    s_send(&s, KR_D2S, 0.01, &c);
    /* update begin with its payload: fast OTA offered, chunks of 512, 2048 bytes */
    c_start(&c, CON, POST, s.srv_id, ++s.srv_tok);
    c_path(&c, "u");
    uint8_t ub[12] = { 1, 0x02, 0x00, 0, 0, 0x08, 0x00, 0, 0, 0, 0, 0 };
    c_payload(&c, ub, sizeof ub);
    s_send(&s, KR_S2D, 0.01, &c);
    c_start(&c, ACK, EMPTY, s.srv_id++, NO_TOKEN);
    s_send(&s, KR_D2S, 0.01, &c);
    c_start(&c, NON, CHANGED, s.dev_id++, s.srv_tok);
    uint8_t yes = 1;
    c_payload(&c, &yes, 1);
    s_send(&s, KR_D2S, 0.01, &c);
    /* fast OTA chunk with its index 3 in a second query */
    c_start(&c, CON, POST, s.srv_id++, ++s.srv_tok);
    c_path(&c, "c");
    uint8_t crc[4] = { 0, 0, 0, 0 };
    c_query(&c, crc, 4);
    uint8_t idx[2] = { 0, 3 };
    c_query(&c, idx, 2);
    c_payload(&c, "abc", 3);
    s_send(&s, KR_S2D, 0.01, &c);
    /* the device misses chunk 5 */
    c_start(&c, CON, GET, s.dev_id++, NO_TOKEN);
    c_path(&c, "c");
    uint8_t miss[4] = { 0, 5, 0, 6 };
    c_payload(&c, miss, sizeof miss);
    s_send(&s, KR_D2S, 0.01, &c);
    /* key change, save begin */
    c_start(&c, CON, PUT, s.srv_id++, ++s.srv_tok);
    c_path(&c, "k");
    c_payload(&c, "0123456789", 10);
    s_send(&s, KR_S2D, 0.01, &c);
    c_start(&c, CON, POST, s.srv_id++, ++s.srv_tok);
    c_path(&c, "s");
    s_send(&s, KR_S2D, 0.01, &c);
    /* valid padding, CoAP version 1, but a reserved option nibble: not CoAP after all */
    c.n = 0;
    c.b[c.n++] = 0x50;
    c.b[c.n++] = 0x02;
    c.b[c.n++] = 0x12;
    c.b[c.n++] = 0x34;
    c.b[c.n++] = 0xf1;
    c.b[c.n++] = 0x41;
    s_send(&s, KR_D2S, 0.01, &c);
    /* a device message id that goes back */
    c_start(&c, CON, EMPTY, (uint16_t)(s.dev_id - 3), NO_TOKEN);
    s_send(&s, KR_D2S, 0.01, &c);
    tk_conn_close(s.c, KR_D2S, 1.0, false);
    tk_conn_close(s.c, KR_S2D, 0.01, false);
    rec r;
    rec_init(&r);
    kr_verdict v = run(s.c, "a", &r);
    assert_int_equal(v.code, KR_V_OK);
    assert_true(has(r.summaries, "Describe request (system and application)"));
    assert_true(has(r.summaries, "Describe: 0 functions, 0 variables, platform 6, 2 firmware modules"));
    assert_true(has(r.summaries, "Describe: 0 functions, 1 variable"));
    assert_true(has(r.summaries, "Update begin: 2048 bytes in chunks of 512, fast OTA offered"));
    assert_true(has(r.summaries, "Update ready"));
    assert_true(has(r.summaries, "fast OTA accepted"));
    assert_true(has(r.summaries, "Chunk 3: 3 bytes, CRC BAD"));
    assert_true(has(r.summaries, "Chunk missed: 5, 6"));
    assert_true(has(r.summaries, "Key change (10 bytes)"));
    assert_true(has(r.summaries, "Save begin"));
    assert_true(has(r.findings, "counter-error"));
    assert_true(has(r.findings, "ota-incomplete"));
    assert_true(has(r.findings, "decrypt-error: the frame decrypts with valid padding but is not a valid CoAP"));
    assert_true(has(r.summaries, "not a valid CoAP message (6 bytes)"));
    rec_free(&r);
    s_end(&s);
}

/* Fast OTA ends with the device's own UpdateDone: the update is complete. */
static void test_fast_ota_done(void **state)
{
    (void)state;
    sess s;
    s_begin(&s, false, K.srv, false);
    s_session(&s, K.dev, K.srv);
    s_hellos(&s);
    coap c;
    c_start(&c, CON, POST, s.srv_id, ++s.srv_tok);
    c_path(&c, "u");
    s_send(&s, KR_S2D, 0.01, &c);
    c_start(&c, ACK, EMPTY, s.srv_id++, NO_TOKEN);
    s_send(&s, KR_D2S, 0.01, &c);
    c_start(&c, NON, PUT, s.dev_id++, NO_TOKEN);
    c_path(&c, "u");
    s_send(&s, KR_D2S, 0.5, &c);
    tk_conn_close(s.c, KR_D2S, 0.1, false);
    tk_conn_close(s.c, KR_S2D, 0.01, false);
    rec r;
    rec_init(&r);
    run(s.c, "a", &r);
    assert_true(has(r.summaries, "Update done (from the device)"));
    assert_false(has(r.findings, "ota-incomplete"));
    rec_free(&r);
    s_end(&s);
}

/* Several session lines and no device id: each is tried on the first frame; the one that fits wins. */
static void test_session_candidates(void **state)
{
    (void)state;
    sess s;
    s_begin(&s, false, K.srv, false);
    s_session(&s, K.dev, K.srv);
    s_hellos(&s);
    coap c;
    c_start(&c, NON, POST, s.dev_id++, NO_TOKEN);
    c_path(&c, "e");
    c_path(&c, "found-it");
    s_send(&s, KR_D2S, 0.01, &c);
    char text[512];
    char wrong[81];
    uint8_t m2[KR_SESSION_LEN];
    for (int i = 0; i < KR_SESSION_LEN; i++)
        m2[i] = (uint8_t)(i * 3 + 1);
    kr_hex(m2, KR_SESSION_LEN, wrong);
    snprintf(text, sizeof text, "session 0102030405060708090a0b0c %s\nsession %s %s\n", wrong, K.id_hex, K.m_hex);
    kr_keyfile *kf = tk_keyfile(K.dir, text);
    rec r;
    rec_init(&r);
    kr_verdict v;
    char *out = tk_conn_run_cb(s.c, kf, 0, &v, &rec_cb, &r);
    assert_true(has(r.summaries, "Event found-it"));
    assert_int_equal(v.code, KR_V_OK);
    g_free(out);
    rec_free(&r);
    kr_keyfile_free(kf);
    /* a single session line of another device: not used, so no decrypt errors on this connection */
    snprintf(text, sizeof text, "session 0102030405060708090a0b0c %s\n", wrong);
    kf = tk_keyfile(K.dir, text);
    rec_init(&r);
    out = tk_conn_run_cb(s.c, kf, 0, &v, &rec_cb, &r);
    assert_int_equal(r.findings->len, 0);
    assert_int_equal(r.decrypted, 0);
    assert_non_null(strstr(out, "none of the keyfile's session lines decrypts"));
    assert_int_equal(v.code, KR_V_OK);
    assert_false(v.proven);
    g_free(out);
    rec_free(&r);
    kr_keyfile_free(kf);
    s_end(&s);
}

/* ---- gaps at every position --------------------------------------------------------------------- */

/* A short session: handshake, Hellos, then small frames both ways. */
static tk_conn *short_session(sess *s, int frames)
{
    s_begin(s, false, K.srv, false);
    s_session(s, K.dev, K.srv);
    s_hellos(s);
    coap c;
    for (int i = 0; i < frames; i++) {
        c_start(&c, NON, POST, s->dev_id++, NO_TOKEN);
        c_path(&c, "e");
        char name[32];
        snprintf(name, sizeof name, "ev%d%s", i, i % 3 == 0 ? "-with-a-longer-name" : "");
        c_path(&c, name);
        s_send(s, KR_D2S, 0.01, &c);
        c_start(&c, ACK, EMPTY, s->dev_id - 1, NO_TOKEN);
        s_send(s, KR_S2D, 0.001, &c);
    }
    return s->c;
}

/* Concatenation of a direction's bytes, with the timestamp of each byte. */
typedef struct flat {
    GByteArray *b;
    GArray *ts;
} flat;

static void test_gaps_everywhere(void **state)
{
    (void)state;
    sess s;
    short_session(&s, 10);
    kr_keyfile *kf = keyfile("du");
    for (int dir = 0; dir < 2; dir++) {
        /* total bytes in this direction */
        size_t total = 0;
        for (guint i = 0; i < s.c->ev->len; i++) {
            tk_ev *e = &g_array_index(s.c->ev, tk_ev, i);
            if (e->kind == TK_DATA && e->dir == (kr_dir)dir)
                total += e->data->len;
        }
        size_t hs = dir == KR_D2S ? KR_IDBLOCK_LEN : KR_NONCE_LEN + KR_SESSIONBLOCK_LEN;
        for (size_t pos = 0; pos < total; pos++) {
            for (int known = 0; known < 2; known++) {
                size_t drop = 5;
                if (pos + drop > total)
                    drop = total - pos;
                /* rebuild the connection with bytes [pos, pos+drop) of this direction missing */
                tk_conn *g = tk_conn_new();
                size_t off = 0;
                for (guint i = 0; i < s.c->ev->len; i++) {
                    tk_ev *e = &g_array_index(s.c->ev, tk_ev, i);
                    if (e->kind == TK_OPEN) {
                        tk_conn_open(g, 0);
                        continue;
                    }
                    if (e->kind != TK_DATA)
                        continue;
                    if (e->dir != (kr_dir)dir) {
                        tk_conn_data(g, e->dir, 0.001, e->data->data, e->data->len);
                        continue;
                    }
                    size_t a = off, b = off + e->data->len;
                    off = b;
                    if (b <= pos || a >= pos + drop) {
                        tk_conn_data(g, e->dir, 0.001, e->data->data, e->data->len);
                        continue;
                    }
                    if (pos > a)
                        tk_conn_data(g, e->dir, 0.001, e->data->data, pos - a);
                    if (pos >= a)
                        tk_conn_gap(g, e->dir, 0.0, known ? drop : 0);
                    size_t resume = pos + drop;
                    if (resume < b)
                        tk_conn_data(g, e->dir, 0.001, e->data->data + (resume - a), b - resume);
                }
                rec r;
                rec_init(&r);
                kr_verdict gv;
                char *txt = tk_conn_run_cb(g, kf, 0, &gv, &rec_cb, &r);
                assert_true(has(r.findings, "gap: "));
                /* frames flow both ways after the handshake, whatever the gap took */
                if (gv.code != KR_V_OK) {
                    fprintf(stderr, "gap at %zu (%s): verdict %s\n%s", pos, dir ? "S->D" : "D->S",
                            kr_verdict_str(gv.code), txt);
                    fail();
                }
                /* past the handshake, frames after the gap decrypt again: the last events are there */
                if (pos >= hs + 18 && pos + drop + 5 * 58 < total) {
                    char last[32];
                    snprintf(last, sizeof last, "%s", dir == KR_D2S ? "Event ev8" : "ACK to Event ev8");
                    if (!has(r.summaries, last)) {
                        fprintf(stderr, "gap at %zu (%s, %s): no '%s' after it\n%s", pos, dir ? "S->D" : "D->S",
                                known ? "size known" : "size unknown", last, txt);
                        fail();
                    }
                }
                g_free(txt);
                rec_free(&r);
                tk_conn_free(g);
            }
        }
    }
    kr_keyfile_free(kf);
    s_end(&s);
}

/* ---- when verdicts are given -------------------------------------------------------------------- */

/* Time of the n-th close of a hand-made connection. */
static double close_time(const tk_conn *c, int n)
{
    for (guint i = 0; i < c->ev->len; i++) {
        const tk_ev *e = &g_array_index(c->ev, tk_ev, i);
        if (e->kind == TK_CLOSE && n-- == 0)
            return e->ts;
    }
    fail_msg("no close %d", n);
    return 0;
}

/* Runs with the keys `what` and checks the verdicts given: the first at `at`, pending (open, not proven:
 * the wire may still contradict it), then only the final one (same code, proven as `proven` says), whose
 * evidence starts with the first one's and adds `wire`. */
static void expect_early(const tk_conn *c, const char *what, kr_verdict_code code, double at, const char *wire,
                         bool proven)
{
    rec r;
    rec_init(&r);
    kr_verdict v = run(c, what, &r);
    if (r.verdicts != 2 || r.first.time != at)
        fprintf(stderr, "keys '%s': %d verdicts, the first %s at %.6f (expected at %.6f): %s\n", what, r.verdicts,
                kr_verdict_str(r.first.code), r.first.time, at, r.first.evidence);
    assert_int_equal(r.verdicts, 2);
    assert_int_equal(r.all[0].code, code);
    assert_false(r.all[0].proven);
    assert_false(r.all[0].final);
    assert_true(r.all[0].time == at);
    /* at the step only the key's proof is known: no wire facts yet */
    assert_null(strstr(r.all[0].evidence, "closed"));
    assert_int_equal(r.all[1].code, code);
    assert_int_equal(r.all[1].proven, proven);
    assert_true(r.all[1].final);
    assert_int_equal(r.all[1].n_candidates, 0);
    assert_true(strncmp(r.all[1].evidence, r.all[0].evidence, strlen(r.all[0].evidence)) == 0);
    if (!strstr(r.all[1].evidence, wire))
        fprintf(stderr, "final evidence without '%s': %s\n", wire, r.all[1].evidence);
    assert_non_null(strstr(r.all[1].evidence, wire));
    assert_int_equal(v.code, code);
    rec_free(&r);
}

static void test_verdict_timing(void **state)
{
    (void)state;
    sess s;
    rec r;
    kr_verdict v;
    /* device-key-mismatch (G2): given at the session block, final at the second FIN, not again at the
     * first */
    s_begin(&s, false, K.srv, false);
    s_session(&s, K.dev_other, K.srv);
    tk_conn_close(s.c, KR_D2S, 0.25, false);
    tk_conn_close(s.c, KR_S2D, 0.001, false);
    rec_init(&r);
    run(s.c, "a", &r);
    double sb = r.sessionblock_time;
    assert_true(sb > 0);
    rec_free(&r);
    expect_early(s.c, "a", KR_V_DEVICE_KEY_MISMATCH, sb, "the device closed 0.250 s after the session block", true);
    expect_early(s.c, "d", KR_V_DEVICE_KEY_MISMATCH, sb, "the device closed 0.250 s after the session block", false);
    /* without the device key the wire decides, at the close that shows it */
    rec_init(&r);
    v = run(s.c, "n", &r);
    assert_int_equal(v.code, KR_V_SESSION_BLOCK_REJECTED);
    assert_true(r.first.time == close_time(s.c, 0));
    assert_int_equal(r.verdicts, 2);
    rec_free(&r);
    s_end(&s);

    /* device-key-mismatch (G1): the device's frames after the session block change nothing; the cloud's
     * FIN 30 s later leaves it as it is, the device's RST makes it final */
    s_begin(&s, true, K.srv, false);
    s_session(&s, K.dev_other, K.srv);
    uint8_t junk[50];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 29 + 3);
    junk[0] = 0;
    junk[1] = 48;
    tk_conn_data(s.c, KR_D2S, 0.3, junk, 50);
    tk_conn_data(s.c, KR_D2S, 0.01, junk, 50);
    tk_conn_close(s.c, KR_S2D, 29.7, false);
    tk_conn_close(s.c, KR_D2S, 0.05, true);
    rec_init(&r);
    run(s.c, "a", &r);
    sb = r.sessionblock_time;
    rec_free(&r);
    expect_early(s.c, "a", KR_V_DEVICE_KEY_MISMATCH, sb, "the cloud closed 30.0 s after the session block", false);
    s_end(&s);

    /* bad-signature: given at the session block by the server public key alone */
    s_begin(&s, false, K.srv, false);
    s_session(&s, K.dev, K.srv_other);
    tk_conn_close(s.c, KR_D2S, 0.25, false);
    tk_conn_close(s.c, KR_S2D, 0.001, false);
    rec_init(&r);
    run(s.c, "u", &r);
    sb = r.sessionblock_time;
    rec_free(&r);
    expect_early(s.c, "u", KR_V_BAD_SIGNATURE, sb, "the device closed 0.250 s after the session block", false);
    expect_early(s.c, "a", KR_V_BAD_SIGNATURE, sb, "the device closed 0.250 s after the session block", true);
    s_end(&s);

    /* server-key-mismatch: given at the id block */
    s_begin(&s, false, K.srv_other, false);
    tk_conn_close(s.c, KR_S2D, 0.002, false);
    tk_conn_close(s.c, KR_D2S, 0.001, false);
    rec_init(&r);
    run(s.c, "p", &r);
    double ib = r.idblock_time;
    assert_true(ib > 0);
    rec_free(&r);
    expect_early(s.c, "p", KR_V_SERVER_KEY_MISMATCH, ib, "the cloud closed 0.002 s after the id block", false);
    expect_early(s.c, "P", KR_V_SERVER_KEY_MISMATCH, ib, "the cloud closed 0.002 s after the id block", true);
    s_end(&s);

    /* nonce-mismatch: given at the id block; the cloud's FIN alone leaves it open, the end of the capture
     * makes it final */
    s_begin(&s, false, K.srv, true);
    tk_conn_close(s.c, KR_S2D, 0.002, false);
    rec_init(&r);
    run(s.c, "p", &r);
    ib = r.idblock_time;
    rec_free(&r);
    expect_early(s.c, "p", KR_V_NONCE_MISMATCH, ib, "the cloud closed 0.002 s after the id block", true);
    s_end(&s);

    /* unknown-device needs the cloud's reaction: given at the cloud's close, not at the id block */
    s_begin(&s, false, K.srv, false);
    tk_conn_close(s.c, KR_S2D, 0.002, false);
    tk_conn_close(s.c, KR_D2S, 0.001, false);
    rec_init(&r);
    v = run(s.c, "p", &r);
    assert_int_equal(v.code, KR_V_UNKNOWN_DEVICE);
    assert_int_equal(r.verdicts, 2);
    assert_false(r.all[0].final);
    assert_true(r.all[0].time == close_time(s.c, 0));
    assert_true(r.all[0].time > r.idblock_time);
    rec_free(&r);
    s_end(&s);
}

/* A key's proof given at a step, then the wire shows the handshake went on: the verdict follows the wire
 * and its evidence says which proof does not stand and why. */
static void test_verdict_contradicted(void **state)
{
    (void)state;
    sess s;
    short_session(&s, 2);
    tk_conn_close(s.c, KR_D2S, 1.0, false);
    tk_conn_close(s.c, KR_S2D, 0.001, false);
    /* every key wrong: another cloud's private key, another device's key */
    kr_keyfile *kf = tk_keyfile(K.dir, "server-private other-server.der\ndevice * other-device.der\n");
    rec r;
    rec_init(&r);
    kr_verdict v;
    char *out = tk_conn_run_cb(s.c, kf, 0, &v, &rec_cb, &r);
    if (r.verdicts != 4)
        fprintf(stderr, "%s", out);
    assert_int_equal(r.verdicts, 4);
    assert_int_equal(r.all[0].code, KR_V_SERVER_KEY_MISMATCH);
    assert_false(r.all[0].proven);   /* pending: the cloud's answer may still contradict it */
    assert_true(r.all[0].time == r.idblock_time);
    /* the cloud answered the id block: the server key's proof does not stand; the device key's proof is
     * given at the session block */
    assert_int_equal(r.all[1].code, KR_V_DEVICE_KEY_MISMATCH);
    assert_false(r.all[1].proven);
    assert_true(r.all[1].time == r.sessionblock_time);
    assert_non_null(strstr(r.all[1].evidence, "so the server-key-mismatch given at the id block does not stand"));
    /* frames both ways: the device took the session block */
    assert_int_equal(r.all[2].code, KR_V_OK);
    assert_false(r.all[2].proven);
    assert_false(r.all[2].final);
    assert_non_null(strstr(r.all[2].evidence, "so the device-key-mismatch given at the session block does not "
                                               "stand"));
    assert_non_null(strstr(r.all[2].evidence, "so the server-key-mismatch given at the id block does not stand"));
    assert_int_equal(r.all[3].code, KR_V_OK);
    assert_true(r.all[3].final);
    assert_int_equal(v.code, KR_V_OK);
    g_free(out);
    rec_free(&r);
    kr_keyfile_free(kf);

    /* only the device key is wrong: device-key-mismatch at the session block, ok at the cloud's Hello */
    kf = tk_keyfile(K.dir, "device * other-device.der\n");
    rec_init(&r);
    out = tk_conn_run_cb(s.c, kf, 0, &v, &rec_cb, &r);
    assert_int_equal(r.verdicts, 3);
    assert_int_equal(r.all[0].code, KR_V_DEVICE_KEY_MISMATCH);
    assert_true(r.all[0].time == r.sessionblock_time);
    assert_int_equal(r.all[1].code, KR_V_OK);
    assert_non_null(strstr(r.all[1].evidence, "yet the device and the cloud went on"));
    assert_non_null(strstr(r.all[1].evidence, "so the device-key-mismatch given at the session block does not "
                                               "stand"));
    assert_int_equal(v.code, KR_V_OK);
    assert_true(v.final);
    g_free(out);
    rec_free(&r);
    kr_keyfile_free(kf);
    s_end(&s);

    /* nonce-mismatch given at the id block, then the cloud sends a session block that no key here decides:
     * the verdict given stays until the next one, and its evidence says the cloud answered */
    s_begin(&s, false, K.srv, true);
    s_session(&s, K.dev, K.srv);
    kf = keyfile("p");
    kr_tracker *t = kr_tracker_new(kf, NULL, NULL);
    for (guint i = 0; i < s.c->ev->len; i++) {
        const tk_ev *e = &g_array_index(s.c->ev, tk_ev, i);
        if (e->kind == TK_OPEN)
            kr_tracker_open(t, e->ts);
        else if (e->kind == TK_DATA)
            kr_tracker_data(t, e->dir, e->data->data, e->data->len, e->ts);
    }
    const kr_verdict *tv = kr_tracker_verdict(t);
    assert_int_equal(tv->code, KR_V_NONCE_MISMATCH);
    assert_false(tv->final);
    assert_non_null(strstr(tv->evidence, "yet the cloud answered it, so the nonce-mismatch given at the id block "
                                         "does not stand"));
    assert_string_equal(kr_tracker_info(t)->verdict.evidence, tv->evidence);
    kr_tracker_free(t);
    kr_keyfile_free(kf);
    s_end(&s);
}

/* ---- robustness --------------------------------------------------------------------------------- */

static void test_memory_and_junk(void **state)
{
    (void)state;
    kr_keyfile *kf = keyfile("a");
    /* junk without a handshake: bounded memory, no crash, a verdict at the end */
    kr_tracker *t = kr_tracker_new(kf, NULL, NULL);
    GRand *rnd = g_rand_new_with_seed(99);
    uint8_t buf[4096];
    size_t peak = 0;
    for (int i = 0; i < 256; i++) {
        for (size_t k = 0; k < sizeof buf; k++)
            buf[k] = (uint8_t)g_rand_int(rnd);
        kr_tracker_data(t, (kr_dir)(i & 1), buf, (size_t)g_rand_int_range(rnd, 1, (gint32)sizeof buf), i * 0.01);
        size_t m = kr_tracker_memory(t);
        if (m > peak)
            peak = m;
    }
    kr_tracker_finish(t, 10.0);
    assert_true(peak < 64 * 1024);
    assert_int_not_equal(kr_tracker_verdict(t)->code, KR_V_NONE);
    kr_tracker_free(t);

    /* one huge frame: the buffer grows to one PDU and shrinks back after it */
    sess s;
    s_begin(&s, false, K.srv, false);
    s_session(&s, K.dev, K.srv);
    s_hellos(&s);
    coap c;
    static uint8_t big[1000];
    memset(big, 'x', sizeof big);
    c_start(&c, NON, POST, s.dev_id++, NO_TOKEN);
    c_path(&c, "e");
    c_path(&c, "big");
    c_payload(&c, big, 900);
    s_send(&s, KR_D2S, 0.01, &c);
    t = kr_tracker_new(kf, NULL, NULL);
    size_t small = 0;
    for (guint i = 0; i < s.c->ev->len; i++) {
        tk_ev *e = &g_array_index(s.c->ev, tk_ev, i);
        if (e->kind == TK_OPEN)
            kr_tracker_open(t, e->ts);
        else if (e->kind == TK_DATA) {
            kr_tracker_data(t, e->dir, e->data->data, e->data->len, e->ts);
            if (e->data->len == 18)
                small = kr_tracker_memory(t);
        }
    }
    /* a 64 KB frame body, fed in pieces */
    uint8_t hdr[2] = { 0xff, 0xf0 };
    kr_tracker_data(t, KR_D2S, hdr, 2, 5.0);
    for (int i = 0; i < 16; i++) {
        memset(buf, i, sizeof buf);
        kr_tracker_data(t, KR_D2S, buf, 4095, 5.0);
        assert_true(kr_tracker_memory(t) < small + 2 * 65537 + 4096);
    }
    kr_tracker_data(t, KR_D2S, buf, 65520 - 16 * 4095, 5.0);
    assert_true(kr_tracker_memory(t) < small + 16384);
    kr_tracker_finish(t, 6.0);
    kr_tracker_free(t);
    s_end(&s);
    g_rand_free(rnd);
    kr_keyfile_free(kf);
}

static void test_bad_lengths(void **state)
{
    (void)state;
    /* after a good session, a frame length that is not a multiple of 16: resync, later frames decrypt */
    sess s;
    short_session(&s, 2);
    tk_conn_hex(s.c, KR_D2S, 0.01, "0011aabbccdd");
    coap c;
    for (int i = 0; i < 5; i++) {
        c_start(&c, NON, POST, s.dev_id++, NO_TOKEN);
        c_path(&c, "e");
        c_path(&c, "after");
        s_send(&s, KR_D2S, 0.01, &c);
    }
    rec r;
    rec_init(&r);
    run(s.c, "a", &r);
    assert_true(has(r.summaries, "Event after"));
    rec_free(&r);
    s_end(&s);
}

/* Damaged copies of a healthy session (bytes flipped, cut, repeated) in random pieces: no crash, no read
 * past the data (the sanitizer build checks), a verdict at the end, bounded memory. */
static void test_mutations(void **state)
{
    (void)state;
    sess s;
    healthy(&s);
    kr_keyfile *kf = keyfile("a");
    GRand *rnd = g_rand_new_with_seed(2024);
    for (int round = 0; round < 300; round++) {
        kr_tracker *t = kr_tracker_new(kf, NULL, NULL);
        size_t peak = 0;
        for (guint i = 0; i < s.c->ev->len; i++) {
            tk_ev *e = &g_array_index(s.c->ev, tk_ev, i);
            if (e->kind == TK_OPEN) {
                if (round % 7)
                    kr_tracker_open(t, e->ts);
                continue;
            }
            if (e->kind != TK_DATA)
                continue;
            size_t n = e->data->len;
            uint8_t *copy = g_memdup2(e->data->data, n);
            int flips = g_rand_int_range(rnd, 0, 3);
            for (int f = 0; f < flips; f++)
                copy[g_rand_int_range(rnd, 0, (gint32)n)] ^= (uint8_t)g_rand_int_range(rnd, 1, 256);
            if (g_rand_int_range(rnd, 0, 10) == 0)
                n = (size_t)g_rand_int_range(rnd, 0, (gint32)n + 1);
            size_t off = 0;
            while (off < n) {
                size_t k = (size_t)g_rand_int_range(rnd, 1, 40);
                if (k > n - off)
                    k = n - off;
                uint8_t *piece = g_memdup2(copy + off, k);
                kr_tracker_data(t, e->dir, piece, k, e->ts);
                g_free(piece);
                off += k;
            }
            g_free(copy);
            if (g_rand_int_range(rnd, 0, 30) == 0)
                kr_tracker_gap(t, e->dir, (uint64_t)g_rand_int_range(rnd, 0, 100), e->ts);
            size_t m = kr_tracker_memory(t);
            if (m > peak)
                peak = m;
        }
        if (round % 3 == 0)
            kr_tracker_close(t, KR_D2S, round % 2, 100.0);
        kr_tracker_finish(t, 101.0);
        assert_int_not_equal(kr_tracker_verdict(t)->code, KR_V_NONE);
        assert_true(kr_tracker_verdict(t)->final);
        assert_true(peak < 3 * 65537);
        kr_tracker_free(t);
    }
    g_rand_free(rnd);
    kr_keyfile_free(kf);
    s_end(&s);
}

/* ---- Photon firmware as the original cloud sees it (docs/protocol.md 4.2, 4.5, 4.11) -------------------- */

static size_t count_prefix(GPtrArray *a, const char *prefix)
{
    size_t n = 0;
    for (guint i = 0; i < a->len; i++)
        n += strncmp(a->pdata[i], prefix, strlen(prefix)) == 0;
    return n;
}

static void assert_no_findings(const rec *r)
{
    for (guint i = 0; i < r->findings->len; i++)
        fprintf(stderr, "unexpected: %s\n", (char *)r->findings->pdata[i]);
    assert_int_equal(r->findings->len, 0);
}

/* Handshake and Hellos of a G2 session, or of a G3 one, whose Hello id comes from the little-endian
 * counter start (0x3413, not 0x1235). */
static void photon_start(sess *s, bool g3)
{
    s_begin(s, false, K.srv, false);
    s_session(s, K.dev, K.srv);
    if (g3)
        s->dev_id = (uint16_t)((K.m[33] << 8 | K.m[32]) + 1);
    s_hellos(s);
}

/* Firmware 0.8 (G3): the first device token is 0x01, and the ACK 2.04 to a Signal carries the device's own
 * next message id with the Signal's token. */
static void g3_session(sess *s, bool signal_token_ok)
{
    photon_start(s, true);
    coap c;
    c_start(&c, CON, GET, s->dev_id, 0x01);
    c_path(&c, "t");
    s_send(s, KR_D2S, 0.01, &c);
    c_start(&c, ACK, CONTENT, s->dev_id++, 0x01);
    uint8_t tm[4] = { 0x5a, 0x00, 0x00, 0x00 };
    c_payload(&c, tm, 4);
    s_send(s, KR_S2D, 0.01, &c);
    for (int i = 0; i < 2; i++) {
        c_start(&c, CON, PUT, s->srv_id, ++s->srv_tok);
        c_path(&c, "s");
        uint8_t on = i == 0;
        c_query(&c, &on, 1);
        s_send(s, KR_S2D, 0.5, &c);
        s->srv_id++;
        c_start(&c, ACK, CHANGED, s->dev_id++, signal_token_ok ? s->srv_tok : (uint8_t)(s->srv_tok + 9));
        s_send(s, KR_D2S, 0.002, &c);
    }
    c_start(&c, NON, POST, s->dev_id++, NO_TOKEN);
    c_path(&c, "e");
    c_path(&c, "door");
    s_send(s, KR_D2S, 0.1, &c);
    c_start(&c, ACK, EMPTY, (uint16_t)(s->dev_id - 1), 0);
    s_send(s, KR_S2D, 0.003, &c);
    tk_conn_close(s->c, KR_D2S, 1.0, false);
    tk_conn_close(s->c, KR_S2D, 0.01, false);
}

static void test_photon_g3_signal_ack(void **state)
{
    (void)state;
    sess s;
    g3_session(&s, true);
    rec r;
    rec_init(&r);
    kr_verdict v = run(s.c, "a", &r);
    assert_int_equal(v.code, KR_V_OK);
    assert_no_findings(&r);
    assert_int_equal(count_prefix(r.summaries, "ACK 2.04 to Signal start"), 1);
    assert_int_equal(count_prefix(r.summaries, "ACK 2.04 to Signal stop"), 1);
    assert_true(has(r.summaries, "matched by token, it carries the device's next message id 0x3415"));
    assert_true(has(r.summaries, "Time 2017-11-"));
    rec_free(&r);
    s_end(&s);

    /* the id alone does not make an answer: with another token the ACK answers nothing, and the device's
     * next id then skips the ones the ACKs used */
    g3_session(&s, false);
    rec_init(&r);
    v = run(s.c, "a", &r);
    assert_int_equal(v.code, KR_V_OK);
    assert_true(has(r.summaries, "ACK 2.04 (id 0x3415, request not seen)"));
    assert_true(has(r.findings, "counter-error: device message id 0x3417 follows 0x3414"));
    rec_free(&r);
    s_end(&s);
}

/* G2: the cloud answers a user event with ACK 4.00 and the device drops the connection: normal. Describe
 * flags select system (1), application (2) or both (3). */
static void test_photon_g2_event_refused(void **state)
{
    (void)state;
    sess s;
    photon_start(&s, false);
    coap c;
    static const char *words[] = { "Describe request (system)", "Describe request (application)",
                                   "Describe request (system and application)" };
    for (uint8_t flags = 1; flags <= 3; flags++) {
        c_start(&c, CON, GET, s.srv_id, ++s.srv_tok);
        c_path(&c, "d");
        c_query(&c, &flags, 1);
        s_send(&s, KR_S2D, 0.01, &c);
        c_start(&c, ACK, CONTENT, s.srv_id++, s.srv_tok);
        const char *js = flags == 1 ? "{\"p\":6,\"m\":[]}" : "{\"f\":[],\"v\":{}}";
        c_payload(&c, js, strlen(js));
        s_send(&s, KR_D2S, 0.01, &c);
    }
    c_start(&c, NON, POST, s.dev_id, NO_TOKEN);
    c_path(&c, "e");
    c_path(&c, "burst");
    s_send(&s, KR_D2S, 0.1, &c);
    c_start(&c, ACK, BAD_REQUEST, s.dev_id++, 0);
    s_send(&s, KR_S2D, 0.003, &c);
    tk_conn_close(s.c, KR_D2S, 0.01, false);
    tk_conn_close(s.c, KR_S2D, 0.001, false);
    rec r;
    rec_init(&r);
    kr_verdict v = run(s.c, "a", &r);
    assert_int_equal(v.code, KR_V_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(count_prefix(r.summaries, words[i]), 1);
    assert_true(has(r.summaries, "ACK 4.00 to Event burst"));
    assert_true(has(r.summaries, ": slow down"));
    assert_no_findings(&r);
    rec_free(&r);
    s_end(&s);
}

/* CRC-32 computed bit by bit, independently of the tracker's table. */
static uint32_t bit_crc32(const uint8_t *d, size_t n)
{
    uint32_t x = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        x ^= d[i];
        for (int k = 0; k < 8; k++)
            x = (x >> 1) ^ (0xedb88320u & (0u - (x & 1)));
    }
    return ~x;
}

static void fast_chunk(sess *s, int index)
{
    uint8_t data[64];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 5 + (size_t)index);
    uint32_t crc = bit_crc32(data, sizeof data);
    uint8_t cb[4] = { (uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc };
    uint8_t ib[2] = { (uint8_t)(index >> 8), (uint8_t)index };
    coap c;
    c_start(&c, CON, POST, s->srv_id++, ++s->srv_tok);
    c_path(&c, "c");
    c_query(&c, cb, 4);
    c_query(&c, ib, 2);
    c_payload(&c, data, sizeof data);
    s_send(s, KR_S2D, 0.01, &c);
}

/* A fast OTA of chunks 0-3 where the device misses chunk 2 (lost before the capture point, or, with
 * on_wire, seen on the wire but not stored by the device); g3 selects firmware 0.8, which confirms no chunk
 * and waits for a second UpdateDone after the missed chunk; G2 confirms chunks and ends with its own. */
static void fast_ota(sess *s, bool g3, bool on_wire, bool second_done)
{
    photon_start(s, g3);
    coap c;
    c_start(&c, CON, POST, s->srv_id, ++s->srv_tok);
    c_path(&c, "u");
    uint8_t ub[12] = { 1, 0, 64, 0, 0, 1, 0, 0, 0, 0, 0, 0 };
    c_payload(&c, ub, sizeof ub);
    s_send(s, KR_S2D, 0.01, &c);
    c_start(&c, ACK, EMPTY, s->srv_id++, NO_TOKEN);
    s_send(s, KR_D2S, 0.01, &c);
    c_start(&c, NON, CHANGED, s->dev_id++, s->srv_tok);
    uint8_t yes = 1;
    c_payload(&c, &yes, 1);
    s_send(s, KR_D2S, 0.01, &c);
    for (int i = 0; i < 4; i++) {
        if (i == 2 && !on_wire)
            continue;   /* lost */
        fast_chunk(s, i);
        if (g3 || i == 2)
            continue;
        c_start(&c, ACK, EMPTY, (uint16_t)(s->srv_id - 1), NO_TOKEN);
        s_send(s, KR_D2S, 0.002, &c);
        c_start(&c, NON, CHANGED, s->dev_id++, s->srv_tok);
        s_send(s, KR_D2S, 0.002, &c);
    }
    c_start(&c, CON, PUT, s->srv_id, ++s->srv_tok);
    c_path(&c, "u");
    s_send(s, KR_S2D, 0.05, &c);
    c_start(&c, ACK, BAD_REQUEST, s->srv_id++, s->srv_tok);
    s_send(s, KR_D2S, 0.01, &c);
    c_start(&c, CON, GET, s->dev_id, NO_TOKEN);
    c_path(&c, "c");
    uint8_t miss[2] = { 0, 2 };
    c_payload(&c, miss, 2);
    s_send(s, KR_D2S, 0.01, &c);
    c_start(&c, ACK, EMPTY, s->dev_id++, NO_TOKEN);   /* the original cloud's ChunkMissed ACK: no token */
    s_send(s, KR_S2D, 0.01, &c);
    fast_chunk(s, 2);
    if (!g3) {
        c_start(&c, ACK, EMPTY, (uint16_t)(s->srv_id - 1), NO_TOKEN);
        s_send(s, KR_D2S, 0.002, &c);
        c_start(&c, NON, PUT, s->dev_id++, NO_TOKEN);
        c_path(&c, "u");
        s_send(s, KR_D2S, 0.05, &c);
    }
    if (second_done) {   /* a cloud that sends UpdateDone again: firmware 0.8 completes the update */
        c_start(&c, CON, PUT, s->srv_id, ++s->srv_tok);
        c_path(&c, "u");
        s_send(s, KR_S2D, 1.0, &c);
        c_start(&c, ACK, CHANGED, s->srv_id++, s->srv_tok);
        s_send(s, KR_D2S, 0.01, &c);
    }
    tk_conn_close(s->c, KR_S2D, 20.0, false);
    tk_conn_close(s->c, KR_D2S, 0.01, false);
}

static void test_photon_fast_ota(void **state)
{
    (void)state;
    sess s;
    rec r;
    kr_verdict v;
    /* the chunk the device asks for again is the protocol's recovery, whether or not it went out before */
    for (int on_wire = 0; on_wire < 2; on_wire++) {
        fast_ota(&s, false, on_wire, false);
        rec_init(&r);
        v = run(s.c, "a", &r);
        assert_int_equal(v.code, KR_V_OK);
        assert_true(has(r.summaries, "ACK to Chunk missed"));
        assert_int_equal(count_prefix(r.summaries, "Chunk 2: 64 bytes, CRC ok"), 1 + on_wire);
        assert_true(has(r.summaries, "Chunk 2: 64 bytes, CRC ok, asked for again"));
        assert_true(has(r.summaries, "Update done (from the device)"));
        assert_no_findings(&r);
        rec_free(&r);
        s_end(&s);
    }

    fast_ota(&s, true, false, false);
    rec_init(&r);
    v = run(s.c, "a", &r);
    assert_int_equal(v.code, KR_V_OK);
    assert_true(has(r.summaries, "ACK 4.00 to Update done"));
    assert_true(has(r.summaries, "ACK to Chunk missed"));
    assert_int_equal(r.findings->len, 1);
    assert_true(has(r.findings, "ota-incomplete: "));
    assert_true(has(r.findings, "asked for chunk 2 again"));
    assert_true(has(r.findings, "the cloud sent what it asked for and waited for the device's own update done, while the device "
                                "waits for a second update done from the cloud"));
    assert_true(has(r.findings, "both waited 20.0 s"));
    rec_free(&r);
    s_end(&s);

    fast_ota(&s, true, false, true);
    rec_init(&r);
    v = run(s.c, "a", &r);
    assert_int_equal(v.code, KR_V_OK);
    assert_true(has(r.summaries, "ACK 2.04 to Update done"));
    assert_no_findings(&r);
    rec_free(&r);
    s_end(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthy),
        cmocka_unit_test(test_describe_raw_names),
        cmocka_unit_test(test_describe_twice),
        cmocka_unit_test(test_photon_large_frame),
        cmocka_unit_test(test_long_options),
        cmocka_unit_test(test_device_key_mismatch),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_id_block_failures),
        cmocka_unit_test(test_not_spark),
        cmocka_unit_test(test_gap_in_nonce),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_timestamp_units),
        cmocka_unit_test(test_capture_ends_in_nonce),
        cmocka_unit_test(test_damaged_length_prefix),
        cmocka_unit_test(test_lost_id_block),
        cmocka_unit_test(test_disputed_bytes),
        cmocka_unit_test(test_conflicting_copies),
        cmocka_unit_test(test_damaged_prefix_resync_by_decryption),
        cmocka_unit_test(test_conflicting_copies_disputed),
        cmocka_unit_test(test_stalled_incomplete),
        cmocka_unit_test(test_mid_session),
        cmocka_unit_test(test_counter_and_ota),
        cmocka_unit_test(test_gaps_everywhere),
        cmocka_unit_test(test_memory_and_junk),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_more_messages),
        cmocka_unit_test(test_fast_ota_done),
        cmocka_unit_test(test_session_candidates),
        cmocka_unit_test(test_verdict_timing),
        cmocka_unit_test(test_verdict_contradicted),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_photon_g3_signal_ack),
        cmocka_unit_test(test_photon_g2_event_refused),
        cmocka_unit_test(test_photon_fast_ota),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
