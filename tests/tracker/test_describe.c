/* sparkwire tests: the quick reader of Describe answers (keyring/tracker/describe_json.c) against json-c.
 * Every answer the quick reader takes must read exactly as json-c reads it (the same functions, variables,
 * platform and module count); an answer it leaves must leave the tracker as it was. Hand-made answers in
 * and out of its subset, then many mutations of the firmware's answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../keyring/tracker/msg_int.h"

/* The tracker's functions and variables as one text, to compare two trackers. */
static void state_text(const kr_tracker *t, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "f%zu v%zu:", (size_t)t->n_funcs, (size_t)t->n_vars);
    for (size_t i = 0; i < t->n_funcs && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, " %s()", t->funcs[i]);
    for (size_t i = 0; i < t->n_vars && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, " %s:%d", t->vars[i].name, (int)t->vars[i].type);
}

static const char prior[] = "{\"f\":[\"old\"],\"v\":{\"oldvar\":2}}";

/* Reads d both ways from the same prior state; returns whether the quick reader took it. */
static bool compare(const char *d, size_t n)
{
    kr_tracker *a = kr_tracker_new(NULL, NULL, NULL), *b = kr_tracker_new(NULL, NULL, NULL);
    assert_non_null(a);
    assert_non_null(b);
    kr_describe_seen sa, sb, s0;
    assert_true(kr_describe_jsonc(a, (const uint8_t *)prior, strlen(prior), &s0));
    assert_true(kr_describe_jsonc(b, (const uint8_t *)prior, strlen(prior), &s0));
    char before[4096], ta[4096], tb[4096];
    state_text(a, before, sizeof before);
    memset(&sa, 0x55, sizeof sa);
    memset(&sb, 0x55, sizeof sb);
    bool quick = kr_describe_quick(a, (const uint8_t *)d, n, &sa);
    state_text(a, ta, sizeof ta);
    if (quick) {
        if (!kr_describe_jsonc(b, (const uint8_t *)d, n, &sb))
            fail_msg("the quick reader took what json-c refuses: %.*s", (int)n, d);
        state_text(b, tb, sizeof tb);
        if (strcmp(ta, tb) != 0 || sa.hf != sb.hf || sa.hv != sb.hv || sa.hp != sb.hp || sa.hm != sb.hm ||
            (sa.hp && sa.platform != sb.platform) || (sa.hm && sa.modules != sb.modules))
            fail_msg("readers differ on %.*s: quick %s p%d m%zu, json-c %s p%d m%zu", (int)n, d, ta,
                     sa.platform, sa.modules, tb, sb.platform, sb.modules);
    } else {
        assert_string_equal(ta, before);   /* left untouched for json-c */
    }
    kr_tracker_free(a);
    kr_tracker_free(b);
    return quick;
}

static bool cmp(const char *s)
{
    return compare(s, strlen(s));
}

/* The answers the firmware sends (firmware/core/messages.c) */
static const char *const usual[] = {
    "{\"f\":[\"digitalwrite\",\"brew\"],\"v\":{\"name\":4,\"count\":2,\"temp\":9,\"on\":1}}",
    "{\"f\":[\"f1\"],\"v\":{\"a\":2,\"b\":4,\"c\":9,\"d\":1},\"p\":6,\"m\":[{\"s\":16384,\"l\":\"m\",\"vc\":30,"
    "\"vv\":30,\"f\":\"b\",\"n\":\"0\",\"v\":11,\"d\":[]},{\"s\":262144,\"l\":\"m\",\"vc\":30,\"vv\":30,\"f\":\"s\","
    "\"n\":\"1\",\"v\":110,\"d\":[{\"f\":\"b\",\"n\":\"0\",\"v\":11}]},{\"s\":131072,\"l\":\"m\",\"vc\":30,\"vv\":30,"
    "\"f\":\"u\",\"n\":\"1\",\"v\":4,\"d\":[{\"f\":\"s\",\"n\":\"1\",\"v\":110}]}]}",
    "{\"p\":10,\"m\":[]}",
    "{}",
    " {\n\t\"f\" : [ ] , \"v\" : { } }\r\n",
    "{\"f\":[1,\"x\",null,true,{\"y\":[1.5e3,-2]}],\"v\":{\"k\":-7}}",
    "{\"f\":\"notarray\",\"v\":[1,2],\"m\":{\"a\":false},\"p\":0}",
    "{\"x\":\"y\",\"f\":[\"a b\",\"\"],\"v\":{\"\":3}} trailing",
};

/* Outside the quick reader's subset: left to json-c */
static const char *const other[] = {
    "", "[]", "{", "{\"f\":[\"a\\\"b\"]}", "{\"v\":{\"a\":1,\"a\":2}}", "{\"f\":[],\"f\":[\"x\"]}",
    "{\"p\":\"6\"}", "{\"p\":1234567890}", "{\"v\":{\"a\":1.0}}", "{\"f\":[\"\xc3\xa9\"]}", "{\"a\":01}",
    "{\"a\":[1,]}", "{\"a\":1,}", "{'f':[]}", "{\"a\":NaN}", "{/*c*/}", "{\"a\":tru}",
    "{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
};

static void test_handmade(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof usual / sizeof usual[0]; i++)
        if (!cmp(usual[i]))
            fail_msg("the quick reader leaves a usual answer to json-c: %s", usual[i]);
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (cmp(other[i]))
            fail_msg("the quick reader takes an answer outside its subset: %s", other[i]);
}

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Mutations of the usual answers: bytes changed, dropped, doubled and cut; both readers must agree on
 * every one the quick reader takes. */
static void test_mutations(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\",:0123456789-+.eE tfnrul\\ab\x01\xc3\t\n";
    uint32_t seed = 0x9e3779b9u;
    size_t taken = 0, total = 0;
    char buf[1024];
    for (size_t i = 0; i < sizeof usual / sizeof usual[0]; i++) {
        for (int round = 0; round < 3000; round++) {
            size_t n = strlen(usual[i]);
            memcpy(buf, usual[i], n);
            for (int k = 1 + (int)(rnd(&seed) % 3); k > 0 && n > 0; k--) {
                size_t at = rnd(&seed) % n;
                switch (rnd(&seed) % 4) {
                case 0: buf[at] = alphabet[rnd(&seed) % (sizeof alphabet - 1)]; break;
                case 1: memmove(buf + at, buf + at + 1, n - at - 1); n--; break;
                case 2: if (n < sizeof buf - 1) { memmove(buf + at + 1, buf + at, n - at); n++; } break;
                default: n = at; break;
                }
            }
            taken += compare(buf, n);
            total++;
        }
    }
    /* the comparison is not empty: a good share of the mutations stays within the subset */
    assert_true(taken > total / 10);
    assert_true(taken < total);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handmade),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
