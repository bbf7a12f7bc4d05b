/* sparkwire tests: the request ring (keyring/tracker/msg_match.c). Cloud function calls with names and
 * arguments of every length (empty, short, past the 63 bytes remembered) go by, thousands of them, and
 * device answers to some of the last ones come between them: an answer to a request the ring still holds
 * (the last 16) names that request's own name and argument, cut at 63 bytes, whatever came before and
 * after it; an answer to an older one finds no request; and what the ring holds stays within its bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../keyring/tracker/msg_int.h"

#define N     4000
#define RING  16       /* requests held per direction */
#define KEEP  63       /* bytes of a name or argument remembered */

static uint32_t seed = 0x2545f491u;

static unsigned rnd(unsigned n)
{
    seed = seed * 1103515245u + 12345u;
    return (seed >> 16) % n;
}

/* A text of random length: mostly short, as names are, some empty, some longer than is remembered. */
static void text(char *s)
{
    unsigned k = rnd(10), n = k == 0 ? 0 : k < 7 ? 1 + rnd(24) : rnd(128);
    for (unsigned i = 0; i < n; i++)
        s[i] = (char)(' ' + 1 + rnd(94));
    s[n] = '\0';
}

static void token(uint8_t tok[8], unsigned i)
{
    memset(tok, 0, 8);
    tok[0] = (uint8_t)(i >> 24);
    tok[1] = (uint8_t)(i >> 16);
    tok[2] = (uint8_t)(i >> 8);
    tok[3] = (uint8_t)i;
}

static char names[N][128], args[N][128];

static void test_names_through_the_ring(void **state)
{
    (void)state;
    kr_callbacks cb;
    memset(&cb, 0, sizeof cb);
    kr_tracker *t = kr_tracker_new(NULL, &cb, NULL);
    assert_non_null(t);
    size_t base = kr_tracker_memory(t), most = 0;
    static bool answered[N];
    int held = 0, not_held = 0;
    static const uint8_t result[4] = { 0, 0, 0, 7 };
    for (unsigned i = 0; i < N; i++) {
        static kr_message m;
        memset(&m, 0, sizeof m);
        m.dir = KR_S2D;
        m.kind = KR_MSG_FUNCTION_CALL;
        m.type = KR_COAP_CON;
        m.index = i;
        m.msg_id = (uint16_t)i;
        m.time = i;
        m.token_len = 4;
        token(m.token, i);
        text(m.name);
        text(m.arg);
        snprintf(names[i], sizeof names[i], "%.*s", KEEP, m.name);
        snprintf(args[i], sizeof args[i], "%.*s", KEEP, m.arg);
        kr_msg_remember(t, &m);
        size_t now = kr_tracker_memory(t) - base;
        most = now > most ? now : most;
        unsigned back = rnd(RING + 4);
        if (back > i || rnd(2) || answered[i - back])
            continue;
        unsigned j = i - back;
        static kr_message a;
        memset(&a, 0, sizeof a);
        a.dir = KR_D2S;
        a.type = KR_COAP_NON;
        a.code = KR_COAP_CHANGED;
        a.msg_id = (uint16_t)(40000 + i);
        a.time = i + 0.5;
        a.token_len = 4;
        token(a.token, j);
        a.payload = result;
        a.payload_len = 4;
        a.answers = -1;
        kr_msg_separate_response(t, &a);
        if (back < RING) {
            char want[256];
            snprintf(want, sizeof want, "Function %s(%s) -> 7", names[j], args[j]);
            assert_int_equal(a.answers, (int)j);
            assert_int_equal(a.kind, KR_MSG_FUNCTION_RETURN);
            assert_string_equal(a.name, names[j]);
            assert_string_equal(a.arg, args[j]);
            assert_string_equal(a.summary, want);
            answered[j] = true;
            held++;
        } else {
            assert_int_equal(a.answers, -1);    /* its slot holds a later request */
            not_held++;
        }
    }
    assert_true(held > N / 4 && not_held > 0);
    /* 16 requests of 40 bytes and their texts (at most 2 x 64 bytes each), with the texts' 4-byte header */
    printf("request ring: at most %zu bytes held\n", most);
    assert_true(most <= RING * sizeof(kr_request) + 4 + RING * 2 * (KEEP + 1));
    kr_tracker_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_through_the_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
