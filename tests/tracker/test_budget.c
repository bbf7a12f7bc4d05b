/* sparkwire tests: the RSA budget (keyring/budget.h): the per-address limit, the bound of the queue,
 * the order it serves in, waiting too long, the debt of operations done, and cancelling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "keyring/keyring.h"

/* Each waiting handshake is a slot here; the budget's callback records what happened to it. */
typedef struct slot {
    int served, skipped, order;
    kr_budget_why why;
} slot;

static int served_count;
static kr_budget *cur;   /* a served handshake does its RSA work at once, as the tracker does: one operation */

static void on_resume(void *who, bool granted, kr_budget_why why)
{
    slot *s = who;
    if (granted) {
        kr_budget_charge(cur, 1);
        s->served++;
        s->order = ++served_count;
    } else {
        s->skipped++;
        s->why = why;
    }
}

static void addr_of(uint8_t a[16], int n)
{
    memset(a, 0, 16);
    a[0] = 10;
    a[2] = (uint8_t)(n >> 8);
    a[3] = (uint8_t)n;
}

static kr_budget *make(double rate, double per_addr, size_t queue_max, double max_wait)
{
    kr_budget_options o;
    kr_budget_options_default(&o, rate);
    o.per_addr = per_addr;
    o.queue_max = queue_max;
    o.max_wait = max_wait;
    kr_budget *b = kr_budget_new(&o);
    assert_non_null(b);
    served_count = 0;
    cur = b;
    return b;
}

static kr_budget_answer ask(kr_budget *b, int addr, bool fits, double now, slot *s, kr_budget_why *why)
{
    uint8_t a[16];
    addr_of(a, addr);
    return kr_budget_ask(b, a, fits, now, s, on_resume, why);
}

static void test_per_address_limit(void **state)
{
    (void)state;
    kr_budget *b = make(1000, 3, 16, 2);
    kr_budget_why why;
    slot s[6] = { 0 };
    for (int i = 0; i < 3; i++)
        assert_int_equal(ask(b, 1, true, 0.0, &s[i], &why), KR_BUDGET_GO);
    /* the fourth start of that address in the same second is skipped, whatever the budget has left */
    assert_int_equal(ask(b, 1, true, 0.1, &s[3], &why), KR_BUDGET_SKIP);
    assert_int_equal(why, KR_BUDGET_WHY_ADDRESS);
    assert_string_equal(kr_budget_why_str(why), kr_name_of(kr_budget_why_names, KR_BUDGET_WHY_ADDRESS));
    /* another address is not concerned; and however high the limit, an address starts at most 4 at once */
    assert_int_equal(ask(b, 2, true, 0.1, &s[4], &why), KR_BUDGET_GO);
    /* a second later the address has its starts back */
    assert_int_equal(ask(b, 1, true, 1.2, &s[5], &why), KR_BUDGET_GO);
    assert_int_equal(kr_budget_get_stats(b)->skipped[KR_BUDGET_WHY_ADDRESS], 1);
    kr_budget_free(b);
    b = make(1000, 100, 16, 2);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ask(b, 9, true, 0.0, &s[i], &why), KR_BUDGET_GO);
    assert_int_equal(ask(b, 9, true, 0.0, &s[4], &why), KR_BUDGET_SKIP);
    assert_int_equal(ask(b, 9, true, 0.011, &s[5], &why), KR_BUDGET_GO);   /* 100 a second: one per 10 ms */
    kr_budget_free(b);

    /* for ten seconds after, that address comes last: after one whose timing does not fit */
    b = make(1, 3, 16, 100);
    slot f[5] = { 0 }, plain = { 0 }, late = { 0 };
    for (int i = 0; i < 3; i++)
        ask(b, 1, true, 0.0, &f[i], &why);
    assert_int_equal(ask(b, 1, true, 0.0, &f[3], &why), KR_BUDGET_SKIP);
    kr_budget_charge(b, 1);
    assert_int_equal(ask(b, 1, true, 0.5, &f[4], &why), KR_BUDGET_WAIT);     /* flooding: waits */
    assert_int_equal(ask(b, 2, false, 0.6, &plain, &why), KR_BUDGET_WAIT);
    kr_budget_run(b, 1.6);
    assert_int_equal(plain.served, 1);
    assert_int_equal(f[4].served, 0);
    kr_budget_run(b, 2.6);
    assert_int_equal(f[4].served, 1);
    /* ... and then it is an address like any other */
    assert_int_equal(ask(b, 1, true, 14.0, &late, &why), KR_BUDGET_GO);
    kr_budget_free(b);
}

static void test_queue_bound(void **state)
{
    (void)state;
    kr_budget *b = make(1, 100, 3, 10);
    kr_budget_why why;
    slot s[8] = { 0 };
    assert_int_equal(ask(b, 1, false, 0.0, &s[0], &why), KR_BUDGET_GO);
    kr_budget_charge(b, 1);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(ask(b, 1 + i, false, 0.0, &s[i], &why), KR_BUDGET_WAIT);
    assert_int_equal(kr_budget_waiting(b), 3);
    /* full of handshakes as good: the new one of the same class is skipped */
    assert_int_equal(ask(b, 5, false, 0.0, &s[4], &why), KR_BUDGET_SKIP);
    assert_int_equal(why, KR_BUDGET_WHY_FULL);
    /* a better one takes the place of the newest of the worst class, which is told */
    assert_int_equal(ask(b, 6, true, 0.0, &s[5], &why), KR_BUDGET_WAIT);
    assert_int_equal(kr_budget_waiting(b), 3);
    assert_int_equal(s[3].skipped, 1);
    assert_int_equal(s[3].why, KR_BUDGET_WHY_GAVE_WAY);
    assert_int_equal(s[1].skipped + s[2].skipped, 0);
    /* the queue never holds more than its bound */
    for (int i = 0; i < 20; i++) {
        slot x = { 0 };
        kr_budget_answer a = ask(b, 100 + i, true, 0.0, &x, &why);
        assert_true(a == KR_BUDGET_SKIP || a == KR_BUDGET_WAIT);
        assert_true(kr_budget_waiting(b) <= 3);
        if (a == KR_BUDGET_WAIT)
            kr_budget_cancel(b, &x);   /* x leaves this scope */
    }
    assert_int_equal(kr_budget_get_stats(b)->most_waiting, 3);
    kr_budget_cancel(b, &s[1]);
    kr_budget_cancel(b, &s[2]);
    kr_budget_cancel(b, &s[5]);
    assert_int_equal(kr_budget_waiting(b), 0);
    kr_budget_free(b);
}

static void test_priority(void **state)
{
    (void)state;
    kr_budget *b = make(1, 100, 8, 100);
    kr_budget_why why;
    slot first = { 0 }, plain1 = { 0 }, fits1 = { 0 }, plain2 = { 0 }, known = { 0 }, fits2 = { 0 };
    uint8_t k[16];
    addr_of(k, 50);
    kr_budget_known(b, k, 0.0);
    assert_int_equal(ask(b, 1, true, 0.0, &first, &why), KR_BUDGET_GO);
    kr_budget_charge(b, 1);
    assert_int_equal(ask(b, 2, false, 0.01, &plain1, &why), KR_BUDGET_WAIT);
    assert_int_equal(ask(b, 3, true, 0.02, &fits1, &why), KR_BUDGET_WAIT);
    assert_int_equal(ask(b, 4, false, 0.03, &plain2, &why), KR_BUDGET_WAIT);
    /* the address that completed a handshake before comes first, even when its timing does not fit */
    assert_int_equal(ask(b, 50, false, 0.04, &known, &why), KR_BUDGET_WAIT);
    assert_int_equal(ask(b, 5, true, 0.05, &fits2, &why), KR_BUDGET_WAIT);
    /* one operation a second: each run serves one, each served one spends it */
    slot *want[] = { &known, &fits1, &fits2, &plain1, &plain2 };
    for (int i = 0; i < 5; i++) {
        kr_budget_run(b, 1.0 + i);
        assert_int_equal(want[i]->served, 1);
        assert_int_equal(want[i]->order, i + 1);
        for (int k = i + 1; k < 5; k++)
            assert_int_equal(want[k]->served, 0);
    }
    assert_int_equal(kr_budget_waiting(b), 0);
    assert_int_equal(kr_budget_get_stats(b)->served, 5);
    assert_int_equal(kr_budget_get_stats(b)->deferred, 5);
    /* while one as good waits, a new one does not pass it even with an operation left */
    kr_budget_run(b, 20.0);
    kr_budget_charge(b, 1);
    slot w = { 0 }, v = { 0 };
    assert_int_equal(ask(b, 7, true, 20.1, &w, &why), KR_BUDGET_WAIT);
    assert_int_equal(ask(b, 8, true, 21.5, &v, &why), KR_BUDGET_WAIT);
    kr_budget_run(b, 21.5);
    assert_int_equal(w.served, 1);
    assert_int_equal(v.served, 0);
    kr_budget_cancel(b, &v);
    kr_budget_free(b);
}

static void test_wait_and_debt(void **state)
{
    (void)state;
    kr_budget *b = make(2, 100, 8, 1.5);
    kr_budget_why why;
    slot a = { 0 }, c = { 0 }, d = { 0 };
    assert_int_equal(ask(b, 1, true, 0.0, &a, &why), KR_BUDGET_GO);
    /* a handshake that tried many device keys leaves a debt: nothing starts until it is paid */
    kr_budget_charge(b, 5);
    assert_int_equal(ask(b, 2, true, 0.1, &c, &why), KR_BUDGET_WAIT);
    kr_budget_run(b, 1.0);
    assert_int_equal(c.served + c.skipped, 0);
    /* waiting longer than max_wait: skipped, and said why */
    kr_budget_run(b, 1.7);
    assert_int_equal(c.skipped, 1);
    assert_int_equal(c.why, KR_BUDGET_WHY_WAITED);
    /* a connection that ends while waiting is decided at once: no operation left, so skipped */
    kr_budget_charge(b, 2);
    assert_int_equal(ask(b, 3, true, 1.8, &d, &why), KR_BUDGET_WAIT);
    assert_false(kr_budget_try_now(b, &d, 1.8));
    assert_int_equal(kr_budget_get_stats(b)->skipped[KR_BUDGET_WHY_ENDED], 1);
    assert_int_equal(kr_budget_waiting(b), 0);
    /* the debt was bounded at one second's worth: after it is paid, starts again */
    slot e = { 0 };
    assert_int_equal(ask(b, 4, true, 4.0, &e, &why), KR_BUDGET_GO);
    assert_int_equal(kr_budget_get_stats(b)->ops, 7);
    assert_int_equal(kr_budget_skipped_total(b), 2);
    kr_budget_free(b);
}

static void test_bad_options(void **state)
{
    (void)state;
    kr_budget_options o;
    kr_budget_options_default(&o, 0);
    assert_null(kr_budget_new(&o));
    kr_budget_options_default(&o, 400);
    assert_true(o.per_addr == 40);
    o.queue_max = 0;
    assert_null(kr_budget_new(&o));
    assert_null(kr_budget_new(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_address_limit),
        cmocka_unit_test(test_queue_bound),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_wait_and_debt),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
