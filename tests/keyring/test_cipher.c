/* Session cipher: frames made by `openssl enc -aes-128-cbc` with the IV rule, and docs/protocol.md 8.3 / 8.4. */
#include "testutil.h"
#include "vectors.h"

#include <openssl/evp.h>

/* ---- 8.3: each sequence is one fresh session of 8.2; frames as on the wire, plaintext without padding */
typedef struct frame_vec {
    const char *frame;
    const char *plain;     /* hex, "|" separates hex from ASCII parts: see expand() */
} frame_vec;

/* plain: hex digits, with ASCII between single quotes, e.g. "410297b2efb16604'brew'46'32,240'" */
static uint8_t *expand(const char *spec, size_t *len)
{
    uint8_t *out = malloc(strlen(spec) + 1);
    size_t o = 0;
    bool ascii = false;
    for (const char *p = spec; *p; p++) {
        if (*p == '\'') {
            ascii = !ascii;
            continue;
        }
        if (ascii) {
            out[o++] = (uint8_t)*p;
        } else {
            char pair[3] = {p[0], p[1], 0};
            assert_true(p[1] != 0);
            out[o++] = (uint8_t)strtoul(pair, NULL, 16);
            p++;
        }
    }
    *len = o;
    return out;
}

static const frame_vec d2s_describe[] = {
    {"0010de896027ba111a95be396f4dfc309b6b", "500297b2b168ffffffffff0000"},
    {"00308c757e24f756de78d84f1980a8e0d184b0960094769211c884f5956ae416216110f5e51af1780b756aed83c5e05d5c5a",
     "614597b228ff'{\"f\":[\"brew\"],\"v\":{\"temperature\":2}}'"},
};
static const frame_vec d2s_function[] = {
    {"0010de896027ba111a95be396f4dfc309b6b", "500297b2b168ffffffffff0000"},
    {"001080ef0849d1bee320f506f97df1ce2536", "600097b2"},
    {"0010a571325f7ad0f13ab91c092de28b4fe0", "514497b3efff000001c8"},
};
static const frame_vec d2s_variable[] = {
    {"0010de896027ba111a95be396f4dfc309b6b", "500297b2b168ffffffffff0000"},
    {"00105928fa3d00eab28515b5066d446583a8", "614597b288fffffe7e33"},
};
static const frame_vec d2s_time[] = {
    {"0010de896027ba111a95be396f4dfc309b6b", "500297b2b168ffffffffff0000"},
    {"0010493608a838fdb809a5f28656dcf81f8e", "410197b398b174"},
};
static const frame_vec d2s_event[] = {
    {"0010de896027ba111a95be396f4dfc309b6b", "500297b2b168ffffffffff0000"},
    {"00205af0b52602633ddffd09af73307b006c5e9f9d79a10787fdf83b7510cd9ce51c",
     "500297b3b1450c'lake-depth/1'33005460ff'28m'"},
};
static const frame_vec d2s_public_event[] = {
    {"0010de896027ba111a95be396f4dfc309b6b", "500297b2b168ffffffffff0000"},
    {"00207ff708e3cc6bf8fc82a20a5185f5c3c5dbe3f9edb06d088b75398de1e234140d",
     "500297b3b1650d02'motion-detected'"},
};
static const frame_vec d2s_subscribe[] = {
    {"0010de896027ba111a95be396f4dfc309b6b", "500297b2b168ffffffffff0000"},
    {"0020236e5d0c02f177934c49f27bbafed589af19f6dea8539634208f7615ba0cf7b5",
     "400197b3b1650b'motion/open'4175"},
};
static const frame_vec d2s_update[] = {
    {"0010de896027ba111a95be396f4dfc309b6b", "500297b2b168ffffffffff0000"},
    {"0010108ab83f2dbffb183d5bf16db3fb464d", "6000abd0"},
    {"001069d70483e74921da83a8e432552f21cb", "514497b333"},
    {"00104ea464263e480952722c62bc9c4863c2", "400197b4b163ff0000"},
};
static const frame_vec d2s_chunk_ok[] = {
    {"0010de896027ba111a95be396f4dfc309b6b", "500297b2b168ffffffffff0000"},
    {"00104da21a09c0d7223690f7256370b888e3", "6000abd1"},
    {"0010f443edbac5b4f37052cd48bdf1902420", "514497b322"},
};
static const frame_vec d2s_chunk_bad[] = {
    {"0010de896027ba111a95be396f4dfc309b6b", "500297b2b168ffffffffff0000"},
    {"00104da21a09c0d7223690f7256370b888e3", "6000abd1"},
    {"0010ef69a660ca6c1c89c26137b4d4a5d687", "518097b322"},
};
static const frame_vec d2s_done[] = {
    {"0010de896027ba111a95be396f4dfc309b6b", "500297b2b168ffffffffff0000"},
    {"001089dc435c638e7a2e76b2f5abb9b22dae", "6144abd211"},
};
/* cloud->device: every one is the first frame of its session (IV = M[16..31]) */
static const frame_vec s2d_first[] = {
    {"00104d2b016f13eededcaf7923fb7681b37a", "410197b228b164"},
    {"0020c6f4cb2885d81edd231c56b8d8032894ce89ab4248867876a0140723b5a9fe75", "410297b2efb16604'brew'46'32,240'"},
    {"0020bc99431b9a7444938f91a84bc2092bb5752857a6c6f44407ddd20a7232b01cbf", "410197b288b1760b'temperature'"},
    {"0010b9a0a43e054fbbb3356abc0f64e9bca1", "6145999999ff535966ad"},
    {"0020c8678851926b300338b39a1fc41ec1f502c3bc38ed78c9c0a2baa986e5807a7a", "50029753b1650161016201630164313cff'xyz'"},
    {"00106130c74c9c115c5b03838a9aa76cf183", "4102abd033b175"},
    {"0060af83488cebfa6598e9b5a4acb9865e415504c41bf668f5b7fb2897169d1f"
     "de983e2adf0d3709bb1de1c7169d0ac5eadb2af08dcb2bdc5ad65c87d4f36419"
     "ae11ec324f750dc093da7585cd00b680ba412f5d1d114609c2a0d938882f3aec60df",
     "4102abd122b1634401234567ff'not actually a valid firmware data chunk payload, but the header is fine'"},
    {"00107da6d14f574c09c986a0aec226d20ab2", "4103abd211b175"},
    {"00100bd93111f21dd2482b78264338059bb2", "4103abcdefb1734101"},
    {"0010c02f1e989253c612672ae010eb20cc9f", "4103abcdefb1734100"},
};

static void run_sequence(const frame_vec *v, size_t n)
{
    uint8_t key[16], iv[16];
    size_t l;
    uint8_t *b = hexbytes(V82_KEY, &l);
    memcpy(key, b, 16);
    free(b);
    b = hexbytes(V82_IV, &l);
    memcpy(iv, b, 16);
    free(b);
    kr_cipher *dec = kr_cipher_new(key, iv);
    kr_cipher *enc = kr_cipher_new(key, iv);
    for (size_t i = 0; i < n; i++) {
        size_t flen, plen;
        uint8_t *frame = hexbytes(v[i].frame, &flen);
        uint8_t *plain = expand(v[i].plain, &plen);
        size_t body = (size_t)(frame[0] << 8 | frame[1]);
        assert_int_equal(body + 2, flen);
        uint8_t pt[256];
        size_t pt_len = 99, skip = 99;
        assert_int_equal(kr_cipher_decrypt(dec, frame + 2, body, pt, &pt_len, &skip), KR_DEC_OK);
        assert_int_equal(skip, 0);
        assert_int_equal(pt_len, plen);
        assert_memory_equal(pt, plain, plen);
        uint8_t out[256];
        assert_int_equal(kr_cipher_encrypt(enc, plain, plen, out, sizeof out), (int)flen);
        assert_memory_equal(out, frame, flen);
        free(frame);
        free(plain);
    }
    kr_cipher_free(dec);
    kr_cipher_free(enc);
}

static void test_protocol_frames(void **state)
{
    (void)state;
#define SEQ(x) run_sequence(x, sizeof x / sizeof x[0])
    SEQ(d2s_describe);
    SEQ(d2s_function);
    SEQ(d2s_variable);
    SEQ(d2s_time);
    SEQ(d2s_event);
    SEQ(d2s_public_event);
    SEQ(d2s_subscribe);
    SEQ(d2s_update);
    SEQ(d2s_chunk_ok);
    SEQ(d2s_chunk_bad);
    SEQ(d2s_done);
    for (size_t i = 0; i < sizeof s2d_first / sizeof s2d_first[0]; i++)
        run_sequence(&s2d_first[i], 1);
}

static void test_protocol_iv_rule(void **state)
{
    (void)state;
    /* the second device frame decrypts only with C1 of the Hello as its IV, not with M[16..31] */
    size_t l, flen;
    uint8_t *key = hexbytes(V82_KEY, &l);
    uint8_t *iv = hexbytes(V82_IV, &l);
    uint8_t *frame = hexbytes(d2s_function[1].frame, &flen);
    kr_cipher *c = kr_cipher_new(key, iv);
    uint8_t pt[64];
    size_t pt_len, skip;
    /* decrypting it as if it were the first frame gives wrong padding */
    assert_int_equal(kr_cipher_decrypt(c, frame + 2, 16, pt, &pt_len, &skip), KR_DEC_BAD_PADDING);
    kr_cipher_free(c);
    uint8_t c1[16];
    uint8_t *hello = hexbytes(d2s_function[0].frame, &l);
    memcpy(c1, hello + 2, 16);
    c = kr_cipher_new(key, c1);
    assert_int_equal(kr_cipher_decrypt(c, frame + 2, 16, pt, &pt_len, &skip), KR_DEC_OK);
    assert_int_equal(pt_len, 4);
    kr_cipher_free(c);
    free(key);
    free(iv);
    free(frame);
    free(hello);
}

static void test_protocol_aes(void **state)
{
    (void)state;
    size_t l, cl;
    uint8_t *m = hexbytes(V84_AES_M, &l);
    uint8_t *ct = hexbytes(V84_AES_CT, &cl);
    kr_cipher *c = kr_cipher_new(m, m + 16);
    const char *msg = "Super secret message\n";
    uint8_t out[64];
    assert_int_equal(kr_cipher_encrypt(c, (const uint8_t *)msg, strlen(msg), out, sizeof out), 34);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 32);
    assert_memory_equal(out + 2, ct, 32);
    kr_cipher_free(c);
    c = kr_cipher_new(m, m + 16);
    uint8_t pt[64];
    size_t pt_len, skip;
    assert_int_equal(kr_cipher_decrypt(c, ct, 32, pt, &pt_len, &skip), KR_DEC_OK);
    assert_int_equal(pt_len, strlen(msg));
    assert_memory_equal(pt, msg, pt_len);
    kr_cipher_free(c);
    free(ct);

    /* TestCoAP: same M, the Hello with message id counter 0xf648 + 1 */
    kr_session s;
    kr_session_from_material(m, &s);
    assert_int_equal(s.msgid_counter, 0xf648);
    uint8_t *hello = hexbytes(V84_HELLO, &l);
    assert_int_equal(hello[2] << 8 | hello[3], s.msgid_counter + 1);
    ct = hexbytes(V84_HELLO_CT, &cl);
    c = kr_cipher_new(s.key, s.iv);
    assert_int_equal(kr_cipher_encrypt(c, hello, l, out, sizeof out), 18);
    assert_memory_equal(out + 2, ct, 16);
    kr_cipher_free(c);
    free(ct);
    free(hello);
    free(m);
}

/* ---- frames made by openssl enc ---- */

typedef struct stream {
    uint8_t *frames, *plains;
    size_t flen, plen;
    size_t n;
    size_t foff[16], fl[16], poff[16], pl[16];
} stream;

static void load_stream(const char *dir, stream *s)
{
    char name[64];
    snprintf(name, sizeof name, "%s.frames", dir);
    s->frames = fx_read(name, &s->flen);
    snprintf(name, sizeof name, "%s.plains", dir);
    s->plains = fx_read(name, &s->plen);
    size_t fo = 0, po = 0;
    s->n = 0;
    while (fo < s->flen) {
        assert_true(s->n < 16);
        s->fl[s->n] = (size_t)(s->frames[fo] << 8 | s->frames[fo + 1]);
        s->foff[s->n] = fo + 2;
        fo += 2 + s->fl[s->n];
        s->pl[s->n] = (size_t)(s->plains[po] << 8 | s->plains[po + 1]);
        s->poff[s->n] = po + 2;
        po += 2 + s->pl[s->n];
        s->n++;
    }
    assert_int_equal(fo, s->flen);
    assert_int_equal(po, s->plen);
}

static void free_stream(stream *s)
{
    free(s->frames);
    free(s->plains);
}

static void session_key(uint8_t key[16], uint8_t iv[16])
{
    size_t l;
    uint8_t *m = fx_read("m.bin", &l);
    assert_int_equal(l, 40);
    memcpy(key, m, 16);
    memcpy(iv, m + 16, 16);
    free(m);
}

static void test_openssl_streams(void **state)
{
    (void)state;
    const char *dirs[] = {"d2s", "s2d"};
    uint8_t key[16], iv[16];
    session_key(key, iv);
    for (int d = 0; d < 2; d++) {
        stream s;
        load_stream(dirs[d], &s);
        assert_true(s.n >= 4);
        kr_cipher *dec = kr_cipher_new(key, iv);
        kr_cipher *enc = kr_cipher_new(key, iv);
        for (size_t i = 0; i < s.n; i++) {
            uint8_t pt[512], out[512];
            size_t pt_len, skip;
            assert_int_equal(kr_cipher_decrypt(dec, s.frames + s.foff[i], s.fl[i], pt, &pt_len, &skip), KR_DEC_OK);
            assert_int_equal(pt_len, s.pl[i]);
            assert_memory_equal(pt, s.plains + s.poff[i], pt_len);
            int n = kr_cipher_encrypt(enc, s.plains + s.poff[i], s.pl[i], out, sizeof out);
            assert_int_equal(n, (int)s.fl[i] + 2);
            assert_memory_equal(out, s.frames + s.foff[i] - 2, (size_t)n);
        }
        kr_cipher_free(dec);
        kr_cipher_free(enc);
        free_stream(&s);
    }
}

static void test_lose_sync(void **state)
{
    (void)state;
    uint8_t key[16], iv[16];
    session_key(key, iv);
    stream s;
    load_stream("d2s", &s);
    /* d2s: 0 "P hello", 1 "exactly sixteen!" (two blocks), 2 a 59-byte message, 3 "x", 4 the fifth */
    kr_cipher *c = kr_cipher_new(key, iv);
    assert_true(kr_cipher_in_sync(c));
    uint8_t pt[512];
    size_t pt_len, skip;
    assert_int_equal(kr_cipher_decrypt(c, s.frames + s.foff[0], s.fl[0], pt, &pt_len, &skip), KR_DEC_OK);
    /* frame 1 is lost */
    kr_cipher_lose_sync(c);
    assert_false(kr_cipher_in_sync(c));
    assert_int_equal(kr_cipher_decrypt(c, s.frames + s.foff[2], s.fl[2], pt, &pt_len, &skip), KR_DEC_PARTIAL);
    assert_int_equal(skip, 16);
    assert_int_equal(pt_len, s.pl[2] - 16);
    assert_memory_equal(pt, s.plains + s.poff[2] + 16, pt_len);
    assert_true(kr_cipher_in_sync(c));
    /* the next frame decrypts whole again */
    assert_int_equal(kr_cipher_decrypt(c, s.frames + s.foff[3], s.fl[3], pt, &pt_len, &skip), KR_DEC_OK);
    assert_int_equal(skip, 0);
    assert_int_equal(pt_len, s.pl[3]);
    assert_memory_equal(pt, s.plains + s.poff[3], pt_len);
    kr_cipher_free(c);

    /* a capture that starts mid-session: IV unknown */
    uint8_t zero[16] = {0};
    c = kr_cipher_new(key, zero);
    kr_cipher_lose_sync(c);
    assert_int_equal(kr_cipher_decrypt(c, s.frames + s.foff[1], s.fl[1], pt, &pt_len, &skip), KR_DEC_PARTIAL);
    /* "exactly sixteen!" is all in the lost block; the second block is padding only */
    assert_int_equal(pt_len, 0);
    assert_int_equal(kr_cipher_decrypt(c, s.frames + s.foff[2], s.fl[2], pt, &pt_len, &skip), KR_DEC_OK);
    assert_memory_equal(pt, s.plains + s.poff[2], s.pl[2]);
    /* a one-block frame after a loss gives nothing, but keeps the chain */
    kr_cipher_lose_sync(c);
    assert_int_equal(kr_cipher_decrypt(c, s.frames + s.foff[3], s.fl[3], pt, &pt_len, &skip), KR_DEC_PARTIAL);
    assert_int_equal(pt_len, 0);
    assert_int_equal(skip, 16);
    assert_int_equal(kr_cipher_decrypt(c, s.frames + s.foff[4], s.fl[4], pt, &pt_len, &skip), KR_DEC_OK);
    assert_memory_equal(pt, s.plains + s.poff[4], s.pl[4]);
    kr_cipher_free(c);
    free_stream(&s);
}

/* A cipher sharing a session line's keyed context decrypts every frame as one keyed its own, whole or
 * after a lost frame, interleaved with other ciphers; a context for another key is not taken. */
static void test_share(void **state)
{
    (void)state;
    uint8_t key[16], iv[16], other[16];
    session_key(key, iv);
    memcpy(other, key, 16);
    other[0] ^= 1;
    stream s;
    load_stream("d2s", &s);
    kr_probe_key *k = kr_probe_key_new(key), *wrong = kr_probe_key_new(other);
    for (int lost = -1; lost < (int)s.n; lost++) {
        kr_cipher *a = kr_cipher_new(key, iv), *b = kr_cipher_new(key, iv), *mis = kr_cipher_new(key, iv);
        kr_cipher_share(b, k);
        kr_cipher_share(mis, wrong);   /* not taken: mis decrypts with its own key */
        for (size_t i = 0; i < s.n; i++) {
            if ((int)i == lost) {
                kr_cipher_lose_sync(a);
                kr_cipher_lose_sync(b);
                kr_cipher_lose_sync(mis);
                continue;
            }
            uint8_t pa[512], pb[512], pm[512];
            size_t la, sa, lb, sb, lm, sm;
            kr_dec_result ra = kr_cipher_decrypt(a, s.frames + s.foff[i], s.fl[i], pa, &la, &sa);
            kr_dec_result rb = kr_cipher_decrypt(b, s.frames + s.foff[i], s.fl[i], pb, &lb, &sb);
            kr_dec_result rm = kr_cipher_decrypt(mis, s.frames + s.foff[i], s.fl[i], pm, &lm, &sm);
            assert_int_equal(ra, (int)i == lost + 1 && lost >= 0 ? KR_DEC_PARTIAL : KR_DEC_OK);
            assert_int_equal(rb, ra);
            assert_int_equal(rm, ra);
            assert_int_equal(lb, la);
            assert_int_equal(sb, sa);
            assert_int_equal(lm, la);
            assert_memory_equal(pb, pa, la);
            assert_memory_equal(pm, pa, la);
            assert_memory_equal(pa, s.plains + s.poff[i] + sa, la);
        }
        kr_cipher_free(a);
        kr_cipher_free(b);
        kr_cipher_free(mis);
    }
    /* a new key ends the sharing: the shared context would decrypt to garbage */
    kr_cipher *c = kr_cipher_new(other, iv);
    kr_cipher_share(c, wrong);
    kr_cipher_set_key(c, key, iv);
    uint8_t pt[512];
    size_t pl, skip;
    assert_int_equal(kr_cipher_decrypt(c, s.frames + s.foff[0], s.fl[0], pt, &pl, &skip), KR_DEC_OK);
    assert_memory_equal(pt, s.plains + s.poff[0], pl);
    kr_cipher_free(c);
    kr_probe_key_free(k);
    kr_probe_key_free(wrong);
    free_stream(&s);
}

static void test_bad_length(void **state)
{
    (void)state;
    uint8_t key[16], iv[16];
    session_key(key, iv);
    stream s;
    load_stream("s2d", &s);
    kr_cipher *c = kr_cipher_new(key, iv);
    uint8_t pt[512];
    size_t pt_len, skip;
    const size_t bad[] = {0, 1, 15, 17, 31, 33};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(kr_cipher_decrypt(c, s.frames + s.foff[0], bad[i], pt, &pt_len, &skip), KR_DEC_BAD_LENGTH);
    /* the IV did not move: the first frame still decrypts */
    assert_int_equal(kr_cipher_decrypt(c, s.frames + s.foff[0], s.fl[0], pt, &pt_len, &skip), KR_DEC_OK);
    assert_memory_equal(pt, s.plains + s.poff[0], s.pl[0]);
    kr_cipher_free(c);
    free_stream(&s);
}

/* Encrypts raw blocks (no padding added) with EVP, as a broken sender would. */
static void raw_cbc(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in, size_t len, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, f = 0;
    assert_true(EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, key, iv));
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    assert_true(EVP_EncryptUpdate(ctx, out, &n, in, (int)len));
    assert_true(EVP_EncryptFinal_ex(ctx, out + n, &f));
    assert_int_equal((size_t)(n + f), len);
    EVP_CIPHER_CTX_free(ctx);
}

/* Every padding length from 1 to 16 over two blocks: accepted as it is, refused when any one of its bytes
 * differs (the check reads the last 16 bytes as words); the byte before the padding never matters. */
static void test_padding_every_length(void **state)
{
    (void)state;
    uint8_t key[16], iv[16];
    session_key(key, iv);
    for (int pad = 1; pad <= 16; pad++) {
        for (int bad = -1; bad < pad; bad++) {        /* -1: none; else the pad byte changed, from the end */
            uint8_t plain[32], ct[32], pt[32];
            size_t pt_len = 99, skip = 99;
            memset(plain, pad + 1, sizeof plain);      /* the byte before the padding looks like padding too */
            memset(plain + 32 - pad, pad, (size_t)pad);
            if (bad >= 0)
                plain[31 - bad] ^= 0x40;
            raw_cbc(key, iv, plain, 32, ct);
            kr_cipher *c = kr_cipher_new(key, iv);
            kr_dec_result r = kr_cipher_decrypt(c, ct, 32, pt, &pt_len, &skip);
            if (bad < 0) {
                assert_int_equal(r, KR_DEC_OK);
                assert_int_equal(pt_len, 32 - pad);
                assert_memory_equal(pt, plain, pt_len);
            } else {
                assert_int_equal(r, KR_DEC_BAD_PADDING);
                assert_int_equal(pt_len, 0);
            }
            kr_cipher_free(c);
        }
    }
}

static void test_bad_padding(void **state)
{
    (void)state;
    uint8_t key[16], iv[16];
    session_key(key, iv);
    /* last byte 0, last byte 17, inconsistent pad bytes */
    uint8_t blocks[3][32];
    for (int i = 0; i < 3; i++)
        memset(blocks[i], 'a', 32);
    blocks[0][31] = 0x00;
    blocks[1][31] = 0x11;
    blocks[2][29] = 0x02; blocks[2][30] = 0x03; blocks[2][31] = 0x03;
    for (int i = 0; i < 3; i++) {
        uint8_t ct[32], pt[32];
        size_t pt_len, skip;
        raw_cbc(key, iv, blocks[i], 32, ct);
        kr_cipher *c = kr_cipher_new(key, iv);
        assert_int_equal(kr_cipher_decrypt(c, ct, 32, pt, &pt_len, &skip), KR_DEC_BAD_PADDING);
        assert_int_equal(pt_len, 0);
        /* the IV advanced anyway: a good frame made with C1 of that one decrypts */
        uint8_t good[32], out[64];
        memset(good, 'b', 16);
        kr_cipher *e = kr_cipher_new(key, ct);
        assert_int_equal(kr_cipher_encrypt(e, good, 16, out, sizeof out), 34);
        assert_int_equal(kr_cipher_decrypt(c, out + 2, 32, pt, &pt_len, &skip), KR_DEC_OK);
        assert_int_equal(pt_len, 16);
        assert_memory_equal(pt, good, 16);
        kr_cipher_free(e);
        kr_cipher_free(c);
    }
    /* the other direction's key: padding fails */
    stream s;
    load_stream("d2s", &s);
    uint8_t wrong[16];
    memcpy(wrong, key, 16);
    wrong[0] ^= 0x80;
    kr_cipher *c = kr_cipher_new(wrong, iv);
    uint8_t pt[512];
    size_t pt_len, skip;
    int bad = 0;
    for (size_t i = 0; i < s.n; i++)
        bad += kr_cipher_decrypt(c, s.frames + s.foff[i], s.fl[i], pt, &pt_len, &skip) == KR_DEC_BAD_PADDING;
    assert_true(bad >= (int)s.n - 1);
    kr_cipher_free(c);
    free_stream(&s);
}

static void test_encrypt_limits(void **state)
{
    (void)state;
    uint8_t key[16] = {1}, iv[16] = {2};
    kr_cipher *c = kr_cipher_new(key, iv);
    uint8_t msg[16], out[64];
    memcpy(msg, "0123456789abcdef", sizeof msg);
    assert_int_equal(kr_cipher_encrypt(c, msg, 16, out, 33), -1);
    assert_int_equal(kr_cipher_encrypt(c, msg, 16, out, 34), 34);
    assert_int_equal(out[1], 32);   /* a full block of padding */
    assert_int_equal(kr_cipher_encrypt(c, msg, 0, out, 18), 18);
    kr_cipher_free(c);
    kr_cipher_free(NULL);
}

/* A cipher made before the session key is known follows the IV rule over the frames that go by. */
static void test_pending(void **state)
{
    (void)state;
    uint8_t key[16], iv[16], other[16];
    for (int i = 0; i < 16; i++) {
        key[i] = (uint8_t)(i * 7 + 1);
        iv[i] = (uint8_t)(i * 11 + 3);
        other[i] = (uint8_t)(i * 5 + 9);
    }
    const char *msgs[3] = { "first message, two blocks long", "second", "the third message" };
    uint8_t frames[3][64];
    int flen[3];
    kr_cipher *enc = kr_cipher_new(key, iv);
    for (int i = 0; i < 3; i++) {
        flen[i] = kr_cipher_encrypt(enc, (const uint8_t *)msgs[i], strlen(msgs[i]), frames[i], sizeof frames[i]);
        assert_true(flen[i] > 0);
    }
    kr_cipher_free(enc);
    uint8_t pt[64];
    size_t pl, skip;

    /* keyed before any frame: the first frame uses the first IV */
    kr_cipher *c = kr_cipher_new_pending();
    assert_false(kr_cipher_keyed(c));
    assert_int_equal(kr_cipher_decrypt(c, frames[0] + 2, (size_t)flen[0] - 2, pt, &pl, &skip), KR_DEC_BAD_LENGTH);
    kr_cipher_set_key(c, key, iv);
    assert_true(kr_cipher_keyed(c));
    assert_int_equal(kr_cipher_decrypt(c, frames[0] + 2, (size_t)flen[0] - 2, pt, &pl, &skip), KR_DEC_OK);
    assert_memory_equal(pt, msgs[0], strlen(msgs[0]));
    kr_cipher_free(c);

    /* a frame went by, then the key came: the second frame decrypts whole; trials change nothing */
    c = kr_cipher_new_pending();
    kr_cipher_pass(c, frames[0] + 2, (size_t)flen[0] - 2);
    assert_int_equal(kr_cipher_trial(c, other, iv, frames[1] + 2, (size_t)flen[1] - 2, pt, &pl, &skip),
                     KR_DEC_BAD_PADDING);
    assert_int_equal(kr_cipher_trial(c, key, iv, frames[1] + 2, (size_t)flen[1] - 2, pt, &pl, &skip), KR_DEC_OK);
    kr_cipher_set_key(c, key, iv);
    assert_int_equal(kr_cipher_decrypt(c, frames[1] + 2, (size_t)flen[1] - 2, pt, &pl, &skip), KR_DEC_OK);
    assert_memory_equal(pt, msgs[1], strlen(msgs[1]));
    assert_int_equal(kr_cipher_decrypt(c, frames[2] + 2, (size_t)flen[2] - 2, pt, &pl, &skip), KR_DEC_OK);
    kr_cipher_free(c);

    /* a frame was lost: the next one loses its first block, even when the key comes later */
    c = kr_cipher_new_pending();
    kr_cipher_lose_sync(c);
    kr_cipher_set_key(c, key, iv);
    assert_int_equal(kr_cipher_decrypt(c, frames[2] + 2, (size_t)flen[2] - 2, pt, &pl, &skip), KR_DEC_PARTIAL);
    assert_int_equal(skip, 16);
    assert_memory_equal(pt, msgs[2] + 16, strlen(msgs[2]) - 16);
    kr_cipher_free(c);
}

/* The quick test of a key never rules out a key the full trial accepts, and rules out nearly all others. */
static void test_probe(void **state)
{
    (void)state;
    uint8_t key[16], iv[16], other[16], pt[64], first[16];
    for (int i = 0; i < 16; i++) {
        key[i] = (uint8_t)(i * 7 + 1);
        iv[i] = (uint8_t)(i * 11 + 3);
    }
    const char *msgs[3] = { "first message, two blocks long", "short", "the third message" };
    uint8_t frames[3][64];
    int flen[3];
    kr_cipher *enc = kr_cipher_new(key, iv);
    for (int i = 0; i < 3; i++)
        assert_true((flen[i] = kr_cipher_encrypt(enc, (const uint8_t *)msgs[i], strlen(msgs[i]), frames[i],
                                                 sizeof frames[i])) > 0);
    kr_cipher_free(enc);
    kr_probe_key *right = kr_probe_key_new(key);
    bool have_first;
    size_t pl, skip;
    kr_cipher *c = kr_cipher_new_pending();
    for (int i = 0; i < 3; i++) {   /* in the IV chain: the first block comes out too */
        assert_true(kr_cipher_probe(c, right, iv, frames[i] + 2, (size_t)flen[i] - 2, first, &have_first));
        assert_true(have_first);
        assert_memory_equal(first, msgs[i], strlen(msgs[i]) < 16 ? strlen(msgs[i]) : 16);
        /* the trial through the probe key's context reads the whole message, the cipher unchanged */
        assert_int_equal(kr_cipher_trial_probe(c, right, iv, frames[i] + 2, (size_t)flen[i] - 2, pt, &pl, &skip),
                         KR_DEC_OK);
        assert_int_equal(pl, strlen(msgs[i]));
        assert_memory_equal(pt, msgs[i], pl);
        kr_cipher_pass(c, frames[i] + 2, (size_t)flen[i] - 2);
    }
    kr_cipher_free(c);
    c = kr_cipher_new_pending();    /* a frame lost: two blocks still tell, one block cannot */
    kr_cipher_lose_sync(c);
    assert_true(kr_cipher_probe(c, right, iv, frames[0] + 2, (size_t)flen[0] - 2, first, &have_first));
    assert_false(have_first);
    assert_false(kr_cipher_probe(c, right, iv, frames[1] + 2, (size_t)flen[1] - 2, first, &have_first));
    assert_false(kr_cipher_probe(c, right, iv, frames[0] + 2, 17, first, &have_first));
    kr_cipher_free(c);
    kr_probe_key_free(right);
    int passed = 0;
    c = kr_cipher_new_pending();
    for (int k = 0; k < 2000; k++) {    /* other keys: accepted exactly when the trial finds valid padding */
        for (int i = 0; i < 16; i++)
            other[i] = (uint8_t)(k * 31 + i * 17 + (k >> 8));
        kr_probe_key *p = kr_probe_key_new(other);
        bool quick = kr_cipher_probe(c, p, iv, frames[0] + 2, (size_t)flen[0] - 2, first, &have_first);
        kr_dec_result r = kr_cipher_trial(c, other, iv, frames[0] + 2, (size_t)flen[0] - 2, pt, &pl, &skip);
        assert_int_equal(quick, r == KR_DEC_OK);
        uint8_t pt2[64];
        size_t pl2, skip2;
        assert_int_equal(kr_cipher_trial_probe(c, p, iv, frames[0] + 2, (size_t)flen[0] - 2, pt2, &pl2, &skip2), r);
        assert_int_equal(pl2, pl);
        assert_memory_equal(pt2, pt, pl);
        passed += quick;
        kr_probe_key_free(p);
    }
    kr_cipher_free(c);
    assert_true(passed < 40);       /* about 1 in 256 by chance */
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixture_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocol_frames),
        cmocka_unit_test(test_protocol_iv_rule),
        cmocka_unit_test(test_protocol_aes),
        cmocka_unit_test(test_openssl_streams),
        cmocka_unit_test(test_lose_sync),
        cmocka_unit_test(test_share),
        cmocka_unit_test(test_bad_length),
        cmocka_unit_test(test_bad_padding),
        cmocka_unit_test(test_padding_every_length),
        cmocka_unit_test(test_encrypt_limits),
        cmocka_unit_test(test_pending),
        cmocka_unit_test(test_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
