/* sparkwire tests: the quick CoAP reader (keyring/tracker/coap_quick.c) against libcoap. Every message the
 * quick reader takes must read exactly as libcoap reads it: type, code, message id, token, payload and the
 * options the protocol uses. Messages the protocol sends, then many built from random parts and mutated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../keyring/tracker/msg_int.h"

static void same_seg(const kr_seg *a, const kr_seg *b)
{
    assert_int_equal(a->len, b->len);
    assert_ptr_equal(a->v, b->v);
}

/* Reads d both ways; returns whether the quick reader took it. */
static bool compare(const uint8_t *d, size_t n)
{
    kr_message a, b;
    kr_coap_view va, vb;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&va, 0x5a, sizeof va);
    if (!kr_coap_quick(d, n, &a, &va)) {
        assert_int_equal(a.type, 0);    /* nothing set */
        assert_int_equal(a.payload_len, 0);
        return false;
    }
    if (!kr_coap_libcoap(d, n, &b, &vb)) {
        /* libcoap refuses a Uri-Path or Uri-Query over CoAP's 255 bytes, which the devices send and read */
        bool long_uri = false;
        for (int i = 0; i < va.n_path; i++)
            long_uri |= va.path[i].len > 255;
        for (int i = 0; i < va.n_query; i++)
            long_uri |= va.query[i].len > 255;
        if (long_uri)
            return true;
        char hex[600] = "";
        for (size_t i = 0; i < n && i < 250; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
        fail_msg("the quick reader took a message libcoap refuses: %s", hex);
    }
    assert_int_equal(a.type, b.type);
    assert_int_equal(a.code, b.code);
    assert_int_equal(a.msg_id, b.msg_id);
    assert_int_equal(a.token_len, b.token_len);
    assert_memory_equal(a.token, b.token, sizeof a.token);
    assert_ptr_equal(a.payload, b.payload);
    assert_int_equal(a.payload_len, b.payload_len);
    assert_int_equal(va.n_path, vb.n_path);
    assert_int_equal(va.n_query, vb.n_query);
    for (int i = 0; i < va.n_path; i++)
        same_seg(&va.path[i], &vb.path[i]);
    for (int i = 0; i < va.n_query; i++)
        same_seg(&va.query[i], &vb.query[i]);
    assert_int_equal(va.has_max_age, vb.has_max_age);
    if (va.has_max_age)
        assert_int_equal(va.max_age, vb.max_age);
    return true;
}

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* One option: the delta and length nibbles with their extension bytes, then the value. */
static size_t put_option(uint8_t *o, unsigned delta, unsigned len, uint32_t *seed)
{
    size_t i = 1;
    unsigned dn = delta < 13 ? delta : delta < 269 ? 13 : 14, ln = len < 13 ? len : len < 269 ? 13 : 14;
    o[0] = (uint8_t)(dn << 4 | ln);
    if (dn == 13)
        o[i++] = (uint8_t)(delta - 13);
    if (dn == 14) {
        o[i++] = (uint8_t)((delta - 269) >> 8);
        o[i++] = (uint8_t)(delta - 269);
    }
    if (ln == 13)
        o[i++] = (uint8_t)(len - 13);
    if (ln == 14) {
        o[i++] = (uint8_t)((len - 269) >> 8);
        o[i++] = (uint8_t)(len - 269);
    }
    for (unsigned k = 0; k < len; k++)
        o[i++] = (uint8_t)('a' + rnd(seed) % 26);
    return i;
}

/* A message from random parts: mostly the protocol's shapes, sometimes anything. */
static size_t build(uint8_t *d, uint32_t *seed)
{
    static const unsigned numbers[] = { 11, 11, 15, 14, 12, 1, 4, 6, 17, 60, 258, 300, 2048 };
    unsigned tkl = rnd(seed) % 10 == 0 ? rnd(seed) % 16 : rnd(seed) % 3;
    unsigned version = rnd(seed) % 20 == 0 ? rnd(seed) % 4 : 1;
    uint8_t code = rnd(seed) % 10 == 0 ? (uint8_t)rnd(seed) : (const uint8_t[]){ 1, 2, 3, 0x44, 0x45, 0x80 }[rnd(seed) % 6];
    d[0] = (uint8_t)(version << 6 | (rnd(seed) % 4) << 4 | tkl);
    d[1] = code;
    d[2] = (uint8_t)rnd(seed);
    d[3] = (uint8_t)rnd(seed);
    size_t n = 4;
    for (unsigned k = 0; k < tkl && k < 8; k++)
        d[n++] = (uint8_t)rnd(seed);
    unsigned number = 0, nopt = rnd(seed) % 6;
    for (unsigned k = 0; k < nopt; k++) {
        unsigned want = numbers[rnd(seed) % (sizeof numbers / sizeof numbers[0])];
        if (want < number)
            want = number;
        unsigned len = rnd(seed) % 8 == 0 ? rnd(seed) % 300 : rnd(seed) % 12;
        n += put_option(d + n, want - number, len, seed);
        number = want;
    }
    if (rnd(seed) % 3) {
        d[n++] = 0xff;
        for (unsigned k = rnd(seed) % 40; k > 0; k--)
            d[n++] = (uint8_t)rnd(seed);
    }
    return n;
}

static void test_protocol_messages(void **state)
{
    (void)state;
    /* an event with Max-Age and data, a function call with a query, a describe answer, an empty ACK */
    static const uint8_t event[] = { 0x50, 0x02, 0x12, 0x34, 0xb1, 'e', 0x04, 't', 'e', 'm', 'p', 0x31, 0x3c,
                                     0xff, '2', '1', '.', '5' };
    static const uint8_t call[] = { 0x41, 0x02, 0x00, 0x07, 0xaa, 0xb1, 'f', 0x04, 'b', 'r', 'e', 'w', 0x45, 'c',
                                    'o', 'f', 'f', 'e' };
    static const uint8_t answer[] = { 0x61, 0x45, 0x00, 0x07, 0xaa, 0xff, '{', '}' };
    static const uint8_t empty[] = { 0x60, 0x00, 0x00, 0x07 };
    assert_true(compare(event, sizeof event));
    assert_true(compare(call, sizeof call));
    assert_true(compare(answer, sizeof answer));
    assert_true(compare(empty, sizeof empty));
    /* function calls with an argument of 300 and 622 bytes (a Photon's longest): one Uri-Query whose length
     * takes two extension bytes (length - 269, big-endian) */
    const size_t arg_lens[] = { 300, 622 };
    for (size_t k = 0; k < 2; k++) {
        uint8_t big[700];
        size_t n = 0;
        memcpy(big, call, 12);
        n = 12;
        big[n++] = 0x4e;
        big[n++] = (uint8_t)((arg_lens[k] - 269) >> 8);
        big[n++] = (uint8_t)(arg_lens[k] - 269);
        memset(big + n, 'x', arg_lens[k]);
        n += arg_lens[k];
        kr_message m;
        kr_coap_view v;
        memset(&m, 0, sizeof m);
        assert_true(compare(big, n));
        assert_true(kr_coap_quick(big, n, &m, &v));
        assert_int_equal(v.n_path, 2);
        assert_int_equal(v.n_query, 1);
        assert_int_equal(v.query[0].len, arg_lens[k]);
        assert_ptr_equal(v.query[0].v, big + 15);
        assert_false(kr_coap_quick(big, n - 1, &m, &v));    /* one byte short of its length */
    }
    static const uint8_t empty_token[] = { 0x61, 0x00, 0x00, 0x07, 0x01 };
    assert_false(compare(empty_token, sizeof empty_token));   /* left to libcoap: CoAP forbids it */
    static const uint8_t marker_only[] = { 0x50, 0x02, 0x12, 0x34, 0xff };
    assert_false(compare(marker_only, sizeof marker_only));
}

static void test_random_messages(void **state)
{
    (void)state;
    uint32_t seed = 0x2545f491u;
    uint8_t d[2048];
    size_t taken = 0, total = 0;
    for (int round = 0; round < 60000; round++) {
        size_t n = build(d, &seed);
        if (round % 2) {   /* damage: bytes changed, the end cut */
            for (int k = (int)(rnd(&seed) % 3); k > 0 && n > 0; k--)
                d[rnd(&seed) % n] = (uint8_t)rnd(&seed);
            if (rnd(&seed) % 4 == 0 && n > 0)
                n = rnd(&seed) % n;
        }
        taken += compare(d, n);
        total++;
    }
    for (int round = 0; round < 20000; round++) {   /* anything at all */
        size_t n = rnd(&seed) % 64;
        for (size_t i = 0; i < n; i++)
            d[i] = (uint8_t)rnd(&seed);
        taken += compare(d, n);
        total++;
    }
    printf("quick reader took %zu of %zu messages\n", taken, total);
    assert_true(taken > total / 10);   /* the comparison covers many messages */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocol_messages),
        cmocka_unit_test(test_random_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
