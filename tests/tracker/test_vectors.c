/* sparkwire tests: the tracker on the test vectors of docs/protocol.md 8.2 / 8.3 (a G1 session).
 *
 * Each row of the 8.3 table was made in a fresh session, so each test below is its own connection:
 * nonce, an id block (random bytes: no server private key is given), the R384 of 8.2, then the frames
 * in the order the table's IV column requires. The keyfile holds the 8.2 device key and server public
 * key, so the tracker must open E, verify the signature and decrypt every frame. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "util.h"

static const char V_SERVER_PUB[] =
    "30820122300d06092a864886f70d01010105000382010f003082010a0282010100a44b8f50bfd79477f6c9bceb1a00f3"
    "1d3151a8e0b0d40f3cff498571bafa54809c913d24d89a4f996430fcb59644b1248aa8d2c1beea3d959b2fb20f1c9df7"
    "2651e9747b8e7b3aeff54783c97185ef3c51103540a57961fb21601edbcca3e79818a5614e7cb291b992a7815c4935f2"
    "0b2371cafe104d9d5004d8f10f19d8c37a639df52223670912dc8dc90f7fccd4526496cf7a2c763238ca9b7ac7d4270f"
    "3fd1fb8a62048bb7032518cbf43b0a90502a5ebe1fc8363e8f79d2b3dae144e309f712174900c9388ca3ffdd6ad143b8"
    "05f86a4ab6e0192a0245926ff961b7e8391705191428b38e4f63a57f877aa7626b7a8cfdd310ed9eab8bc5a128b6178e"
    "3d0203010001"
    ;
static const char V_DEVICE_PRIV[] =
    "3082025e02010002818100c4c8ebfa99a5d1e5f99d33ea1c93f24a71c71ea01ee67187395e5f69564f76c1836110ea78"
    "696e5aa24d5e834e41d0e544bc485f7d856524b09c9c3cd00f426a6d46519c3edc883384c5f46dad89fd01dc2b3fb06f"
    "1280ece2d953006693583c0b1566ea47d9dd8f49eed71a81bae6585c637addc511f1d2ce8c0160adf3b45f0203010001"
    "02818100bbc558def413b4f8b3b95c5b2ccfc32763eff37a28620dbc51728aaa51d05b6a0579ee913d3aa53158a368e6"
    "f41a7b40f9d88b5a8ac469a19be0a478a6b398d396207be4939a0efed944546ccf2d5e9b9194589030ac08a5e18e5f84"
    "c336d0cd0f10bf056e29278a167ac6c278cf2cbc5e5b00383e66bf122b20178ee7e27a09024100ea0b61d68d8cad1cfc"
    "0a6f37693ad79f3c4efffa97725c31361f12234b002970825f3fbf98e33524d23fe6889da672e34a09eacaf242ce8bb6"
    "1804ac01734ccd024100d73ebe61a3f0752be4dd6067a69e6adf41b171c954daf1b6aceb3e123ca86ccb75fcdae569bf"
    "b1614f4fd03221f852271c5969be3eb3f31641bcaf3a6f1505db02405a18e9a01bbbb504bc6e13e463e9180a9fbfd5c1"
    "153e1c0981c932454de11112d3cd711003fe2b7e3246112c346c583bf14ba20c6078a1649d43dfc08b8a645d024100d3"
    "42de116f9adf2649e78e6bad79e76361530c5f934da1d8ae37e6207830c7379b82a6466d589c7cea1f68350c6a7217b9"
    "17795624acf27671e70405d2694be9024100837b910266a081a9bdbaa2863d2b0361e88f0512e333af6c9dfd22bfc5c0"
    "3bd3694537af3dc5fe9114735c8eeceea31b90b72343c35d7ef8bedb3e621a17e9bf"
    ;
static const char V_R384[] =
    "0bad1922b660f4c7b4ea34d9bfbb31dc1a6099d857f54a88c75c612f9159e9e69e6b1f86cf83e3e5e78f7b891263eca2"
    "85a7871141c2e0a15c4fd31d23dd19f538b06c4b70e42631e616812a8280a6e0783ee3deb2290f817248276e480113ed"
    "ff098dfcbba2465cb207dc8d58368ba821a65dac6e6ef08e395ad37165926bf09e27751379a7cdad74f8afa44dda111d"
    "0a8fe77bfcb71a454588017e86033d75e2379c3d2651593f73f73644d1b76c59720ee9421048e0a0b53f1135d25c6f55"
    "9813afef0cfe2d36b96320d76981e8ab2e780afd275b4ec91f1ac1fb06868e63a3e5dc970509165ad2541ca01667534c"
    "fb306ab6854e9611cfa1c4854f1bb5d68a91ea26d1a7d025589305932bec93d2cd963d03f4eb809e173e64b2a1a895b8"
    "e5b0c9d839da1832c1c7f88562ba8f2e45a241312f26445ba6a44d70cdc0fb8b686aba0ee0d5f428316cc7e540306ac1"
    "ee2f3fa674813da1dcba34e4c744583f0c99d0cdc0c04a9f1095504909ce09e2f7bd882eae86cd191eac3a0eb2291b6b"
    ;
static const char V_NONCE[] =
    "31e830246f2d7d987c42477ef033f424ff62d382b17a0931130b236398de90847141f5830484177b"
    ;
#define V_CHUNK_FRAME_HEX \
"0060af83488cebfa6598e9b5a4acb9865e415504c41bf668f5b7fb2897169d1fde983e2adf0d3709bb1de1c7169d0ac5" \
    "eadb2af08dcb2bdc5ad65c87d4f36419ae11ec324f750dc093da7585cd00b680ba412f5d1d114609c2a0d938882f3aec" \
    "60df"


#define HELLO_D      "0010de896027ba111a95be396f4dfc309b6b"
#define DESCRIBE_S   "00104d2b016f13eededcaf7923fb7681b37a"
#define DESCRIBE_ANS "00308c757e24f756de78d84f1980a8e0d184b0960094769211c884f5956ae416216110f5e51af1780b756aed83c5e05d5c5a"
#define FCALL_S      "0020c6f4cb2885d81edd231c56b8d8032894ce89ab4248867876a0140723b5a9fe75"
#define FACK_D       "001080ef0849d1bee320f506f97df1ce2536"
#define FRET_D       "0010a571325f7ad0f13ab91c092de28b4fe0"
#define VREQ_S       "0020bc99431b9a7444938f91a84bc2092bb5752857a6c6f44407ddd20a7232b01cbf"
#define VVAL_D       "00105928fa3d00eab28515b5066d446583a8"
#define TREQ_D       "0010493608a838fdb809a5f28656dcf81f8e"
#define TANS_S       "0010b9a0a43e054fbbb3356abc0f64e9bca1"
#define EVPRIV_D     "00205af0b52602633ddffd09af73307b006c5e9f9d79a10787fdf83b7510cd9ce51c"
#define EVPUB_D      "00207ff708e3cc6bf8fc82a20a5185f5c3c5dbe3f9edb06d088b75398de1e234140d"
#define SUB_D        "0020236e5d0c02f177934c49f27bbafed589af19f6dea8539634208f7615ba0cf7b5"
#define EVCLOUD_S    "0020c8678851926b300338b39a1fc41ec1f502c3bc38ed78c9c0a2baa986e5807a7a"
#define UBEGIN_S     "00106130c74c9c115c5b03838a9aa76cf183"
#define UBACK_D      "0010108ab83f2dbffb183d5bf16db3fb464d"
#define UREADY_D     "001069d70483e74921da83a8e432552f21cb"
#define CMISSED_D    "00104ea464263e480952722c62bc9c4863c2"
#define CACK_D       "00104da21a09c0d7223690f7256370b888e3"
#define CRECV_OK_D   "0010f443edbac5b4f37052cd48bdf1902420"
#define CRECV_BAD_D  "0010ef69a660ca6c1c89c26137b4d4a5d687"
#define UDONE_S      "00107da6d14f574c09c986a0aec226d20ab2"
#define UDACK_D      "001089dc435c638e7a2e76b2f5abb9b22dae"
#define SIGSTART_S   "00100bd93111f21dd2482b78264338059bb2"
#define SIGSTOP_S    "0010c02f1e989253c612672ae010eb20cc9f"

/* ---- what the tracker said --------------------------------------------------------------------- */

typedef struct rec_msg {
    kr_message m;          /* payload pointer cleared */
    char payload[128];
} rec_msg;

typedef struct rec {
    rec_msg msgs[16];
    int n_msgs;
    kr_finding finds[8];
    int n_finds;
    kr_step steps[16];
    int n_steps;
} rec;

static void r_step(void *ud, const kr_step *s)
{
    rec *r = ud;
    if (r->n_steps < 16) {
        r->steps[r->n_steps] = *s;
        r->steps[r->n_steps].bytes = NULL;
        r->steps[r->n_steps].plaintext = NULL;
        r->steps[r->n_steps].msg = NULL;
        r->n_steps++;
    }
}

static void r_msg(void *ud, const kr_message *m)
{
    rec *r = ud;
    if (r->n_msgs < 16) {
        rec_msg *x = &r->msgs[r->n_msgs++];
        x->m = *m;
        x->m.payload = NULL;
        size_t n = m->payload_len < sizeof x->payload - 1 ? m->payload_len : sizeof x->payload - 1;
        if (n > 0)
            memcpy(x->payload, m->payload, n);
        x->payload[n] = '\0';
    }
}

static void r_find(void *ud, const kr_finding *f)
{
    rec *r = ud;
    if (r->n_finds < 8)
        r->finds[r->n_finds++] = *f;
}

static const kr_callbacks rec_cb = { r_step, r_msg, r_find, NULL };

typedef struct fixture {
    char *dir;
    kr_keyfile *kf;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tk_tmpdir();
    GByteArray *a = tk_unhex(V_SERVER_PUB);
    tk_write(f->dir, "server.der", a->data, a->len);
    g_byte_array_unref(a);
    a = tk_unhex(V_DEVICE_PRIV);
    tk_write(f->dir, "device.der", a->data, a->len);
    g_byte_array_unref(a);
    f->kf = tk_keyfile(f->dir, "server-public server.der\n"
                               "device 54e1c888f6d9492bebee1ee9 device.der\n");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    kr_keyfile_free(f->kf);
    tk_rmdir(f->dir);
    g_free(f->dir);
    free(f);
    return 0;
}

/* A connection: handshake of 8.2, then frames given as "D:hex" / "S:hex". */
static tk_conn *vector_conn(const char *const *frames, size_t n)
{
    tk_conn *c = tk_conn_new();
    uint8_t idblock[KR_IDBLOCK_LEN];
    for (size_t i = 0; i < sizeof idblock; i++)
        idblock[i] = (uint8_t)(i * 37 + 11);
    tk_conn_open(c, 0);
    tk_conn_hex(c, KR_S2D, 0.001, V_NONCE);
    tk_conn_data(c, KR_D2S, 0.010, idblock, sizeof idblock);
    tk_conn_hex(c, KR_S2D, 0.020, V_R384);
    for (size_t i = 0; i < n; i++)
        tk_conn_hex(c, frames[i][0] == 'D' ? KR_D2S : KR_S2D, 0.005, frames[i] + 2);
    return c;
}

/* Runs it whole, byte by byte and in random pieces: the text must be the same; returns the record of
 * the whole run. */
static void run_vectors(fixture *f, const char *const *frames, size_t n, rec *r)
{
    tk_conn *c = vector_conn(frames, n);
    memset(r, 0, sizeof *r);
    char *whole = tk_conn_run_cb(c, f->kf, 0, NULL, &rec_cb, r);
    char *bytes = tk_conn_run(c, f->kf, 1, NULL);
    char *rnd = tk_conn_run(c, f->kf, 7, NULL);
    assert_string_equal(whole, bytes);
    assert_string_equal(whole, rnd);
    if (getenv("TK_VERBOSE"))
        fputs(whole, stderr);
    g_free(whole);
    g_free(bytes);
    g_free(rnd);
    tk_conn_free(c);
}

static int count_findings(const rec *r, kr_finding_code code)
{
    int n = 0;
    for (int i = 0; i < r->n_finds; i++)
        n += r->finds[i].code == code;
    return n;
}

/* ---- the tests --------------------------------------------------------------------------------- */

static void test_handshake_steps(void **state)
{
    fixture *f = *state;
    static const char *const fr[] = { "D:" HELLO_D, "S:" DESCRIBE_S };
    rec r;
    run_vectors(f, fr, 2, &r);
    assert_true(r.n_steps >= 5);
    assert_int_equal(r.steps[0].kind, KR_STEP_NONCE);
    assert_int_equal(r.steps[0].length, 40);
    assert_int_equal(r.steps[1].kind, KR_STEP_IDBLOCK);
    assert_int_equal(r.steps[1].offset, 0);
    assert_int_equal(r.steps[1].id_block_opened, KR_UNKNOWN);
    assert_int_equal(r.steps[2].kind, KR_STEP_SESSIONBLOCK);
    assert_int_equal(r.steps[2].offset, 40);
    assert_int_equal(r.steps[2].session_opened, KR_YES);
    assert_int_equal(r.steps[2].signature_valid, KR_YES);
    assert_int_equal(r.steps[2].signature_ok, KR_YES);
    assert_true(r.steps[2].session_known);
    /* M of 8.2 */
    GByteArray *m = tk_unhex("ead9e1e2014903b9e76632f6fa5afa669522a567e100cd3cfe5215473921b63d97b197250038fa09");
    assert_memory_equal(r.steps[2].session, m->data, 40);
    g_byte_array_unref(m);
    /* the device id is learned from the keyfile line whose key opened E */
    assert_true(r.steps[2].device_id_known);
    assert_string_equal(r.steps[2].device_id_hex, "54e1c888f6d9492bebee1ee9");
    assert_int_equal(r.steps[3].kind, KR_STEP_HELLO);
    assert_int_equal(r.steps[3].dir, KR_D2S);
    assert_int_equal(r.steps[3].offset, 256);
    assert_int_equal(r.steps[3].length, 18);
    assert_int_equal(r.steps[3].frame_state, KR_FRAME_DECRYPTED);
    assert_int_equal(r.steps[4].kind, KR_STEP_HELLO);
    assert_int_equal(r.steps[4].dir, KR_S2D);
    assert_int_equal(r.steps[4].offset, 424);
    /* the device Hello of 8.3 */
    assert_int_equal(r.msgs[0].m.kind, KR_MSG_HELLO);
    assert_int_equal(r.msgs[0].m.msg_id, 0x97b2);
    assert_int_equal(r.msgs[0].m.type, 1);
    assert_int_equal(r.msgs[0].m.product_id, 0xffff);
    assert_int_equal(r.msgs[0].m.product_version, 0xffff);
    assert_int_equal(r.msgs[0].m.hello_flags, 0);
    assert_int_equal(r.msgs[0].m.platform_id, -1);
    assert_string_equal(r.msgs[0].m.uri, "/h");
    assert_int_equal(count_findings(&r, KR_FIND_COUNTER_ERROR), 0);
    assert_int_equal(count_findings(&r, KR_FIND_DECRYPT_ERROR), 0);
}

static void test_describe(void **state)
{
    fixture *f = *state;
    static const char *const fr[] = { "D:" HELLO_D, "S:" DESCRIBE_S, "D:" DESCRIBE_ANS };
    rec r;
    run_vectors(f, fr, 3, &r);
    assert_int_equal(r.n_msgs, 3);
    assert_int_equal(r.msgs[1].m.kind, KR_MSG_DESCRIBE);
    assert_int_equal(r.msgs[1].m.token_len, 1);
    assert_int_equal(r.msgs[1].m.token[0], 0x28);
    assert_int_equal(r.msgs[2].m.kind, KR_MSG_DESCRIBE_REPLY);
    assert_int_equal(r.msgs[2].m.answers, 1);
    assert_string_equal(r.msgs[2].payload, "{\"f\":[\"brew\"],\"v\":{\"temperature\":2}}");
    assert_string_equal(r.msgs[2].m.summary, "Describe: 1 function, 1 variable");
}

static void test_function(void **state)
{
    fixture *f = *state;
    static const char *const fr[] = { "D:" HELLO_D, "S:" FCALL_S, "D:" FACK_D, "D:" FRET_D };
    rec r;
    run_vectors(f, fr, 4, &r);
    assert_int_equal(r.n_msgs, 4);
    assert_int_equal(r.msgs[1].m.kind, KR_MSG_FUNCTION_CALL);
    assert_string_equal(r.msgs[1].m.name, "brew");
    assert_string_equal(r.msgs[1].m.arg, "32,240");
    assert_string_equal(r.msgs[1].m.summary, "Function brew(32,240)");
    assert_int_equal(r.msgs[2].m.kind, KR_MSG_EMPTY_ACK);
    assert_int_equal(r.msgs[2].m.answers, 1);
    assert_int_equal(r.msgs[2].m.answers_kind, KR_MSG_FUNCTION_CALL);
    assert_int_equal(r.msgs[3].m.kind, KR_MSG_FUNCTION_RETURN);
    assert_int_equal(r.msgs[3].m.msg_id, 0x97b3);
    assert_int_equal(r.msgs[3].m.answers, 1);
    assert_string_equal(r.msgs[3].m.value, "456");
    assert_string_equal(r.msgs[3].m.summary, "Function brew(32,240) -> 456");
    assert_int_equal(count_findings(&r, KR_FIND_COUNTER_ERROR), 0);
}

static void test_variable_without_describe(void **state)
{
    fixture *f = *state;
    static const char *const fr[] = { "D:" HELLO_D, "S:" VREQ_S, "D:" VVAL_D };
    rec r;
    run_vectors(f, fr, 3, &r);
    assert_int_equal(r.n_msgs, 3);
    assert_int_equal(r.msgs[1].m.kind, KR_MSG_VARIABLE_REQUEST);
    assert_string_equal(r.msgs[1].m.name, "temperature");
    assert_int_equal(r.msgs[2].m.kind, KR_MSG_VARIABLE_VALUE);
    assert_string_equal(r.msgs[2].m.name, "temperature");
    /* no describe in this connection: the type is unknown, the bytes are shown */
    assert_int_equal(r.msgs[2].m.var_type, KR_VAR_UNKNOWN);
    assert_non_null(strstr(r.msgs[2].m.value, "fffe7e33"));
}

static void test_time(void **state)
{
    fixture *f = *state;
    static const char *const fr[] = { "D:" HELLO_D, "D:" TREQ_D, "S:" TANS_S };
    rec r;
    run_vectors(f, fr, 3, &r);
    assert_int_equal(r.n_msgs, 3);
    assert_int_equal(r.msgs[1].m.kind, KR_MSG_TIME_REQUEST);
    assert_int_equal(r.msgs[1].m.token[0], 0x98);
    assert_int_equal(r.msgs[2].m.kind, KR_MSG_TIME_RESPONSE);
    assert_int_equal(r.msgs[2].m.unix_time, 1398367917u);
    assert_string_equal(r.msgs[2].m.value, "2014-04-24T19:31:57Z");
    assert_string_equal(r.msgs[2].m.summary, "Time 2014-04-24T19:31:57Z");
    assert_int_equal(count_findings(&r, KR_FIND_COUNTER_ERROR), 0);
}

static void test_events(void **state)
{
    fixture *f = *state;
    static const char *const a[] = { "D:" HELLO_D, "D:" EVPRIV_D };
    static const char *const b[] = { "D:" HELLO_D, "D:" EVPUB_D };
    static const char *const c[] = { "D:" HELLO_D, "S:" EVCLOUD_S };
    static const char *const d[] = { "D:" HELLO_D, "D:" SUB_D };
    rec r;
    run_vectors(f, a, 2, &r);
    assert_int_equal(r.msgs[1].m.kind, KR_MSG_EVENT);
    assert_string_equal(r.msgs[1].m.name, "lake-depth/1");
    assert_false(r.msgs[1].m.event_public);
    assert_int_equal(r.msgs[1].m.ttl, 21600);
    assert_string_equal(r.msgs[1].m.value, "28m");
    assert_string_equal(r.msgs[1].m.summary, "Event lake-depth/1 = 28m (private, TTL 21600 s)");
    run_vectors(f, b, 2, &r);
    assert_string_equal(r.msgs[1].m.name, "motion-detected");
    assert_true(r.msgs[1].m.event_public);
    assert_int_equal(r.msgs[1].m.ttl, 60);
    assert_string_equal(r.msgs[1].m.summary, "Event motion-detected");
    run_vectors(f, c, 2, &r);
    assert_int_equal(r.msgs[1].m.kind, KR_MSG_EVENT);
    assert_int_equal(r.msgs[1].m.dir, KR_S2D);
    assert_string_equal(r.msgs[1].m.name, "a/b/c/d");
    assert_int_equal(r.msgs[1].m.ttl, 60);
    assert_string_equal(r.msgs[1].m.value, "xyz");
    run_vectors(f, d, 2, &r);
    assert_int_equal(r.msgs[1].m.kind, KR_MSG_SUBSCRIBE);
    assert_string_equal(r.msgs[1].m.name, "motion/open");
    assert_string_equal(r.msgs[1].m.query, "u");
    assert_string_equal(r.msgs[1].m.summary, "Subscribe motion/open (my devices only)");
}

static void test_update_begin_missed(void **state)
{
    fixture *f = *state;
    static const char *const fr[] = { "D:" HELLO_D, "S:" UBEGIN_S, "D:" UBACK_D, "D:" UREADY_D, "D:" CMISSED_D };
    rec r;
    run_vectors(f, fr, 5, &r);
    assert_int_equal(r.n_msgs, 5);
    assert_int_equal(r.msgs[1].m.kind, KR_MSG_UPDATE_BEGIN);
    assert_int_equal(r.msgs[2].m.kind, KR_MSG_EMPTY_ACK);
    assert_int_equal(r.msgs[2].m.answers_kind, KR_MSG_UPDATE_BEGIN);
    assert_int_equal(r.msgs[3].m.kind, KR_MSG_UPDATE_READY);
    assert_int_equal(r.msgs[3].m.answers, 1);
    assert_int_equal(r.msgs[4].m.kind, KR_MSG_CHUNK_MISSED);
    assert_string_equal(r.msgs[4].m.value, "0");
    /* the update never finished: one ota-incomplete finding at the end */
    assert_int_equal(count_findings(&r, KR_FIND_OTA_INCOMPLETE), 1);
    assert_int_equal(count_findings(&r, KR_FIND_COUNTER_ERROR), 0);
}

static void test_chunk(void **state)
{
    fixture *f = *state;
    static const char *const ok[] = { "D:" HELLO_D, "S:" V_CHUNK_FRAME_HEX, "D:" CACK_D, "D:" CRECV_OK_D };
    static const char *const bad[] = { "D:" HELLO_D, "S:" V_CHUNK_FRAME_HEX, "D:" CACK_D, "D:" CRECV_BAD_D };
    rec r;
    run_vectors(f, ok, 4, &r);
    assert_int_equal(r.n_msgs, 4);
    assert_int_equal(r.msgs[1].m.kind, KR_MSG_CHUNK);
    assert_int_equal(r.msgs[1].m.chunk_crc, 0x01234567u);
    assert_int_equal(r.msgs[1].m.chunk_size, 72);
    assert_int_equal(r.msgs[1].m.chunk_index, 0);
    /* the CRC option is a placeholder: a real CRC-32 of the data differs */
    assert_int_equal(r.msgs[1].m.chunk_crc_ok, KR_NO);
    assert_string_equal(r.msgs[1].payload,
                        "not actually a valid firmware data chunk payload, but the header is fine");
    assert_int_equal(r.msgs[2].m.kind, KR_MSG_EMPTY_ACK);
    assert_int_equal(r.msgs[2].m.answers_kind, KR_MSG_CHUNK);
    assert_int_equal(r.msgs[3].m.kind, KR_MSG_CHUNK_RECEIVED);
    assert_int_equal(r.msgs[3].m.chunk_index, 0);
    assert_int_equal(r.msgs[3].m.code, 0x44);
    assert_int_equal(count_findings(&r, KR_FIND_OTA_CHUNK_ERROR), 1);
    assert_int_equal(count_findings(&r, KR_FIND_OTA_INCOMPLETE), 1);
    run_vectors(f, bad, 4, &r);
    assert_int_equal(r.msgs[3].m.kind, KR_MSG_CHUNK_RECEIVED);
    assert_int_equal(r.msgs[3].m.code, 0x80);
    assert_int_equal(count_findings(&r, KR_FIND_OTA_CHUNK_ERROR), 2);
}

static void test_update_done_signal(void **state)
{
    fixture *f = *state;
    static const char *const a[] = { "D:" HELLO_D, "S:" UDONE_S, "D:" UDACK_D };
    static const char *const b[] = { "D:" HELLO_D, "S:" SIGSTART_S };
    static const char *const c[] = { "D:" HELLO_D, "S:" SIGSTOP_S };
    rec r;
    run_vectors(f, a, 3, &r);
    assert_int_equal(r.msgs[1].m.kind, KR_MSG_UPDATE_DONE);
    assert_int_equal(r.msgs[2].m.kind, KR_MSG_ACK);
    assert_int_equal(r.msgs[2].m.code, 0x44);
    assert_int_equal(r.msgs[2].m.answers_kind, KR_MSG_UPDATE_DONE);
    run_vectors(f, b, 2, &r);
    assert_int_equal(r.msgs[1].m.kind, KR_MSG_SIGNAL);
    assert_string_equal(r.msgs[1].m.summary, "Signal start");
    run_vectors(f, c, 2, &r);
    assert_string_equal(r.msgs[1].m.summary, "Signal stop");
}

/* Without any key: the same bytes give the same steps, nothing decrypted, verdict inferred. */
static void test_no_keys(void **state)
{
    (void)state;
    static const char *const fr[] = { "D:" HELLO_D, "S:" DESCRIBE_S, "D:" DESCRIBE_ANS };
    kr_keyfile *empty = kr_keyfile_new_empty();
    tk_conn *c = vector_conn(fr, 3);
    rec r;
    memset(&r, 0, sizeof r);
    kr_verdict v;
    char *txt = tk_conn_run_cb(c, empty, 0, &v, &rec_cb, &r);
    assert_int_equal(r.n_steps, 6);
    assert_int_equal(r.n_msgs, 0);
    assert_int_equal(r.steps[3].frame_state, KR_FRAME_NOT_DECRYPTED);
    assert_int_equal(r.steps[2].session_opened, KR_UNKNOWN);
    assert_int_equal(v.code, KR_V_OK);
    assert_false(v.proven);
    /* no keyfile at all behaves as an empty one */
    char *txt2 = tk_conn_run(c, NULL, 0, NULL);
    assert_string_equal(txt, txt2);
    g_free(txt2);
    g_free(txt);
    tk_conn_free(c);
    kr_keyfile_free(empty);
}

/* A session line alone decrypts the frames (the handshake is there but no key opens it). */
static void test_session_line(void **state)
{
    fixture *f = *state;
    static const char *const fr[] = { "D:" HELLO_D, "S:" FCALL_S, "D:" FACK_D, "D:" FRET_D };
    kr_keyfile *kf = tk_keyfile(f->dir, "session 54e1c888f6d9492bebee1ee9 "
                                "ead9e1e2014903b9e76632f6fa5afa669522a567e100cd3cfe5215473921b63d97b197250038fa09\n");
    tk_conn *c = vector_conn(fr, 4);
    rec r;
    memset(&r, 0, sizeof r);
    char *txt = tk_conn_run_cb(c, kf, 0, NULL, &rec_cb, &r);
    assert_int_equal(r.n_msgs, 4);
    assert_int_equal(r.msgs[3].m.kind, KR_MSG_FUNCTION_RETURN);
    g_free(txt);
    /* the same frames without the handshake (no open notice): mid-session, first frame per direction
     * loses its first block, later ones decrypt */
    tk_conn *m = tk_conn_new();
    for (size_t i = 0; i < 4; i++)
        tk_conn_hex(m, fr[i][0] == 'D' ? KR_D2S : KR_S2D, 0.01, fr[i] + 2);
    memset(&r, 0, sizeof r);
    kr_verdict v;
    txt = tk_conn_run_cb(m, kf, 0, &v, &rec_cb, &r);
    if (getenv("TK_VERBOSE"))
        fputs(txt, stderr);
    assert_int_equal(v.code, KR_V_MID_SESSION);
    int full = 0;
    for (int i = 0; i < r.n_msgs; i++)
        full += !r.msgs[i].m.first_block_lost;
    assert_true(full >= 1);
    int returns = 0;
    for (int i = 0; i < r.n_msgs; i++)
        if (r.msgs[i].m.kind == KR_MSG_FUNCTION_RETURN && strcmp(r.msgs[i].m.value, "456") == 0)
            returns++;
    assert_int_equal(returns, 1);
    g_free(txt);
    tk_conn_free(m);
    tk_conn_free(c);
    kr_keyfile_free(kf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_steps),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_function),
        cmocka_unit_test(test_variable_without_describe),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_update_begin_missed),
        cmocka_unit_test(test_chunk),
        cmocka_unit_test(test_update_done_signal),
        cmocka_unit_test(test_no_keys),
        cmocka_unit_test(test_session_line),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
