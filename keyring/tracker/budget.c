/* sparkwire libkeyring: the RSA budget (keyring/budget.h): a token bucket of private-key operations, a
 * per-address limit, and a bounded queue of waiting handshakes served best class first. */
#include <stdlib.h>
#include <string.h>
#include "keyring/budget.h"

#define ADDR_SLOTS 4096      /* per-address buckets kept (two probes; the least recently used gives way) */
#define ADDR_BURST 4         /* handshakes one address may start at once (within its rate) */
#define FLOOD_MEMORY 10.0    /* seconds an address that went over its limit counts as flooding */

typedef struct addr_slot {
    uint8_t addr[16];
    bool used, known;
    double tokens, last;
    double flooding_until;   /* capture time until which it counts as flooding */
} addr_slot;

typedef struct waiter {
    void *who;
    kr_budget_resume_fn fn;
    kr_budget_class cls;
    double since;
    uint64_t seq;
} waiter;

struct kr_budget {
    kr_budget_options o;
    double tokens, last;
    bool started;
    addr_slot *slots;
    waiter *q;
    size_t n;
    size_t n_cls[KR_BUDGET_CLASSES];
    uint64_t seq;
    kr_budget_stats st;
};

void kr_budget_options_default(kr_budget_options *o, double rate)
{
    o->rate = rate;
    o->per_addr = rate / 10 > 2 ? rate / 10 : 2;
    o->queue_max = 256;
    o->max_wait = 2.0;
}

kr_budget *kr_budget_new(const kr_budget_options *o)
{
    if (!o || !(o->rate > 0) || !(o->per_addr > 0) || o->queue_max == 0 || !(o->max_wait >= 0))
        return NULL;
    kr_budget *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->o = *o;
    b->slots = calloc(ADDR_SLOTS, sizeof *b->slots);
    b->q = calloc(o->queue_max, sizeof *b->q);
    if (!b->slots || !b->q) {
        kr_budget_free(b);
        return NULL;
    }
    b->tokens = o->rate > 1 ? o->rate : 1;
    return b;
}

void kr_budget_free(kr_budget *b)
{
    if (!b)
        return;
    free(b->slots);
    free(b->q);
    free(b);
}

static double cap_of(double per_second)
{
    return per_second > 1 ? per_second : 1;
}

static double addr_cap(const kr_budget *b)
{
    return cap_of(b->o.per_addr < ADDR_BURST ? b->o.per_addr : ADDR_BURST);
}

static void refill(kr_budget *b, double now)
{
    if (!b->started) {
        b->started = true;
        b->last = now;
    }
    if (now > b->last) {
        b->tokens += (now - b->last) * b->o.rate;
        if (b->tokens > cap_of(b->o.rate))
            b->tokens = cap_of(b->o.rate);
        b->last = now;
    }
}

static uint32_t addr_hash(const uint8_t a[16])
{
    uint32_t h = 2166136261u;              /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ a[i]) * 16777619u;
    return h;
}

/* The bucket of addr, made (in place of the least recently used of its two slots) when absent. */
static addr_slot *slot_of(kr_budget *b, const uint8_t addr[16], double now)
{
    uint32_t h = addr_hash(addr);
    addr_slot *s[2] = { &b->slots[h % ADDR_SLOTS], &b->slots[(h >> 12) % ADDR_SLOTS] };
    for (int i = 0; i < 2; i++)
        if (s[i]->used && memcmp(s[i]->addr, addr, 16) == 0)
            return s[i];
    addr_slot *v = !s[0]->used ? s[0] : !s[1]->used ? s[1]
                   : (s[0]->known != s[1]->known) ? (s[0]->known ? s[1] : s[0])
                   : s[0]->last <= s[1]->last ? s[0] : s[1];
    memset(v, 0, sizeof *v);
    v->used = true;
    memcpy(v->addr, addr, 16);
    v->tokens = addr_cap(b);
    v->last = now;
    return v;
}

/* Takes one of the address's starts; false when it has none left this second. */
static bool addr_take(kr_budget *b, addr_slot *s, double now)
{
    if (now > s->last) {
        s->tokens += (now - s->last) * b->o.per_addr;
        if (s->tokens > addr_cap(b))
            s->tokens = addr_cap(b);
        s->last = now;
    }
    if (s->tokens < 1) {
        s->flooding_until = now + FLOOD_MEMORY;
        return false;
    }
    s->tokens -= 1;
    return true;
}

/* Whether a handshake of class cls may start now: an operation is left and nothing as good waits. */
static bool may_start(const kr_budget *b, kr_budget_class cls)
{
    if (b->tokens < 1)
        return false;
    for (int c = 0; c <= (int)cls; c++)
        if (b->n_cls[c])
            return false;
    return true;
}

/* Index of the best waiter (lowest class, then oldest), or of the worst (highest class, then newest). */
static size_t pick(const kr_budget *b, bool best)
{
    size_t k = 0;
    for (size_t i = 1; i < b->n; i++) {
        const waiter *w = &b->q[i], *x = &b->q[k];
        bool better = w->cls != x->cls ? w->cls < x->cls : w->seq < x->seq;
        if (better == best)
            k = i;
    }
    return k;
}

static waiter take(kr_budget *b, size_t i)
{
    waiter w = b->q[i];
    b->q[i] = b->q[--b->n];
    b->n_cls[w.cls]--;
    return w;
}

static void skip(kr_budget *b, waiter w, kr_budget_why why)
{
    b->st.skipped[why]++;
    w.fn(w.who, false, why);
}

kr_budget_answer kr_budget_ask(kr_budget *b, const uint8_t addr[16], bool fits, double now, void *who,
                               kr_budget_resume_fn fn, kr_budget_why *why)
{
    *why = KR_BUDGET_WHY_NONE;
    b->st.asked++;
    refill(b, now);
    addr_slot *s = slot_of(b, addr, now);
    if (!addr_take(b, s, now)) {
        *why = KR_BUDGET_WHY_ADDRESS;
        b->st.skipped[*why]++;
        return KR_BUDGET_SKIP;
    }
    kr_budget_class cls = now < s->flooding_until ? KR_BUDGET_FLOODING : s->known ? KR_BUDGET_KNOWN
                          : fits ? KR_BUDGET_FITS : KR_BUDGET_PLAIN;
    if (may_start(b, cls)) {
        b->st.granted++;
        return KR_BUDGET_GO;
    }
    if (b->n == b->o.queue_max) {
        size_t worst = pick(b, false);
        if (b->q[worst].cls <= cls) {
            *why = KR_BUDGET_WHY_FULL;
            b->st.skipped[*why]++;
            return KR_BUDGET_SKIP;
        }
        skip(b, take(b, worst), KR_BUDGET_WHY_GAVE_WAY);
    }
    b->q[b->n++] = (waiter){ who, fn, cls, now, b->seq++ };
    b->n_cls[cls]++;
    b->st.deferred++;
    if (b->n > b->st.most_waiting)
        b->st.most_waiting = b->n;
    return KR_BUDGET_WAIT;
}

static size_t find(const kr_budget *b, const void *who)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->q[i].who == who)
            return i;
    return b->n;
}

bool kr_budget_try_now(kr_budget *b, void *who, double now)
{
    size_t i = find(b, who);
    if (i == b->n)
        return false;
    refill(b, now);
    waiter w = take(b, i);
    if (!may_start(b, w.cls)) {
        b->st.skipped[KR_BUDGET_WHY_ENDED]++;
        return false;
    }
    b->st.served++;
    return true;
}

void kr_budget_charge(kr_budget *b, unsigned ops)
{
    b->st.ops += ops;
    b->tokens -= ops;
    /* the debt is bounded: a second's worth */
    if (b->tokens < -cap_of(b->o.rate))
        b->tokens = -cap_of(b->o.rate);
}

void kr_budget_known(kr_budget *b, const uint8_t addr[16], double now)
{
    slot_of(b, addr, now)->known = true;
}

void kr_budget_cancel(kr_budget *b, void *who)
{
    size_t i = find(b, who);
    if (i < b->n)
        take(b, i);
}

void kr_budget_run(kr_budget *b, double now)
{
    refill(b, now);
    /* one at a time: a callback may ask again or cancel */
    for (;;) {
        size_t i;
        for (i = 0; i < b->n && now - b->q[i].since <= b->o.max_wait; i++)
            ;
        if (i == b->n)
            break;
        skip(b, take(b, i), KR_BUDGET_WHY_WAITED);
    }
    while (b->n && b->tokens >= 1) {
        waiter w = take(b, pick(b, true));
        b->st.served++;
        w.fn(w.who, true, KR_BUDGET_WHY_NONE);
    }
}

size_t kr_budget_waiting(const kr_budget *b)
{
    return b ? b->n : 0;
}

const kr_budget_stats *kr_budget_get_stats(const kr_budget *b)
{
    return &b->st;
}

const kr_budget_options *kr_budget_get_options(const kr_budget *b)
{
    return &b->o;
}

uint64_t kr_budget_skipped_total(const kr_budget *b)
{
    uint64_t n = 0;
    for (int i = 0; i <= KR_BUDGET_WHY_ENDED; i++)
        n += b->st.skipped[i];
    return n;
}
