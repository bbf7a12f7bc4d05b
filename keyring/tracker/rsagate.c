/* sparkwire libkeyring: the tracker's side of the RSA budget (rsagate.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rsagate.h"
#include "keyring/budget.h"

#define HOLD_MAX (256u << 10)   /* bytes held while a block waits; beyond, it is decided at once */

enum held_kind { H_DATA, H_FEED, H_GAP, H_CLOSE, H_DISPUTE };

typedef struct held {
    enum held_kind kind;
    kr_dir dir;
    bool flag;
    double ts;
    uint64_t a, b;
    uint8_t *bytes;
    size_t len;
} held;

struct krt_rsa {
    kr_budget *b;
    uint8_t addr[16];
    bool decided;            /* the budget answered for this handshake */
    bool skipped;
    kr_budget_why why;
    kr_dir park_dir;
    double park_ts;
    held *log;
    size_t n, cap, bytes;
};

void kr_tracker_set_budget(kr_tracker *t, kr_budget *b, const uint8_t device[16])
{
    if (!t || !b || t->rsa)
        return;
    t->rsa = calloc(1, sizeof *t->rsa);
    if (!t->rsa)
        return;   /* without memory for it the tracker runs unlimited */
    t->rsa->b = b;
    memcpy(t->rsa->addr, device, 16);
}

/* Whether the block would cost private-key work with this keyfile. */
static bool needs_rsa(const kr_tracker *t, kr_dir dir)
{
    if (dir == KR_D2S)
        return krt_server_entry(t, KR_ENTRY_SERVER_PRIVATE) != NULL;
    return kr_keyfile_device_key_count(t->kf) > 0 || kr_keyfile_wildcard_count(t->kf) > 0;
}

/* A device's handshake: the connection opened, the nonce came whole, and the id block began after it
 * (within the device's 20 s), at the start of the device's stream, and arrived within a second. */
static bool looks_genuine(const kr_tracker *t, kr_dir dir, double ts)
{
    const kr_dirstate *dd = &t->d[KR_D2S];
    if (!t->opened || !t->nonce_seen || t->nonce_damaged || t->nonce_time - t->open_time > 30.0)
        return false;
    double first = dir == KR_D2S ? dd->pdu_first_time : t->idblock_time - t->idblock_split;
    double last = dir == KR_D2S ? ts : t->idblock_time;
    if (dir == KR_D2S && dd->pdu_offset != 0)
        return false;
    if (dir == KR_S2D && (!t->idblock_seen || t->d[KR_S2D].pdu_first_time < t->idblock_time))
        return false;
    return first >= t->nonce_time && first - t->nonce_time <= 20.0 && last - first <= 1.0;
}

static void decide(struct krt_rsa *r, bool granted, kr_budget_why why)
{
    r->decided = true;
    r->skipped = !granted;
    r->why = why;
}

/* The waiting block is opened (or reported skipped), then what came meanwhile is given again. */
static void replay(kr_tracker *t)
{
    struct krt_rsa *r = t->rsa;
    held *log = r->log;
    size_t n = r->n;
    r->log = NULL;
    r->n = r->cap = r->bytes = 0;
    if (r->park_dir == KR_D2S)
        krt_do_idblock(t, r->park_ts);
    else
        krt_do_sessionblock(t, r->park_ts);
    krt_evaluate(t, r->park_ts);
    for (size_t i = 0; i < n; i++) {
        held *h = &log[i];
        switch (h->kind) {
        case H_DATA: kr_tracker_data(t, h->dir, h->bytes, h->len, h->ts); break;
        case H_FEED:
            if (!krt_rsa_hold_feed(t, h->dir, h->bytes, h->len, h->ts))
                krt_feed(t, h->dir, h->bytes, h->len, h->ts);
            break;
        case H_GAP: kr_tracker_gap(t, h->dir, h->a, h->ts); break;
        case H_CLOSE: kr_tracker_close(t, h->dir, h->flag, h->ts); break;
        case H_DISPUTE: kr_tracker_dispute(t, h->dir, h->a, h->b); break;
        }
        free(h->bytes);
    }
    free(log);
}

static void resume(void *who, bool granted, kr_budget_why why)
{
    kr_tracker *t = who;
    t->rsa_parked = false;
    decide(t->rsa, granted, why);
    replay(t);
}

bool krt_rsa_gate(kr_tracker *t, kr_dir dir, double ts)
{
    struct krt_rsa *r = t->rsa;
    if (!r || r->decided || t->d[dir].damaged || !needs_rsa(t, dir))
        return false;
    kr_budget_why why;
    kr_budget_answer a = kr_budget_ask(r->b, r->addr, looks_genuine(t, dir, ts), ts, t, resume, &why);
    if (a != KR_BUDGET_WAIT) {
        decide(r, a == KR_BUDGET_GO, why);
        return false;
    }
    t->rsa_parked = true;   /* a block waits in its direction's buffer */
    r->park_dir = dir;
    r->park_ts = ts;
    return true;
}

/* Decided now, served if the budget allows; then the held calls run. */
static void settle_now(kr_tracker *t, double ts)
{
    struct krt_rsa *r = t->rsa;
    bool go = kr_budget_try_now(r->b, t, ts);
    t->rsa_parked = false;
    decide(r, go, KR_BUDGET_WHY_ENDED);
    replay(t);
}

static bool push(kr_tracker *t, held h, const uint8_t *p)
{
    struct krt_rsa *r = t->rsa;
    if (!r || !t->rsa_parked)
        return false;
    if (r->bytes + h.len > HOLD_MAX || (r->n == r->cap && r->cap >= HOLD_MAX / 16)) {
        settle_now(t, h.ts);
        return t->rsa_parked;     /* decided: the caller goes on with this call */
    }
    if (r->n == r->cap) {
        size_t c = r->cap ? r->cap * 2 : 8;
        held *nl = realloc(r->log, c * sizeof *nl);
        if (!nl) {
            settle_now(t, h.ts);
            return false;
        }
        r->log = nl;
        r->cap = c;
    }
    if (h.len) {
        h.bytes = malloc(h.len);
        if (!h.bytes) {
            settle_now(t, h.ts);
            return false;
        }
        memcpy(h.bytes, p, h.len);
    }
    r->log[r->n++] = h;
    r->bytes += h.len;
    return true;
}

bool krt_rsa_hold_feed(kr_tracker *t, kr_dir dir, const uint8_t *p, size_t len, double ts)
{
    return push(t, (held){ .kind = H_FEED, .dir = dir, .ts = ts, .len = len }, p);
}

bool krt_rsa_hold_data(kr_tracker *t, kr_dir dir, const uint8_t *p, size_t len, double ts)
{
    return push(t, (held){ .kind = H_DATA, .dir = dir, .ts = ts, .len = len }, p);
}

bool krt_rsa_hold_gap(kr_tracker *t, kr_dir dir, uint64_t nbytes, double ts)
{
    return push(t, (held){ .kind = H_GAP, .dir = dir, .ts = ts, .a = nbytes }, NULL);
}

bool krt_rsa_hold_close(kr_tracker *t, kr_dir by, bool rst, double ts)
{
    return push(t, (held){ .kind = H_CLOSE, .dir = by, .flag = rst, .ts = ts }, NULL);
}

bool krt_rsa_hold_dispute(kr_tracker *t, kr_dir dir, uint64_t offset, uint64_t len)
{
    double ts = t->rsa ? t->rsa->park_ts : 0;
    return push(t, (held){ .kind = H_DISPUTE, .dir = dir, .ts = ts, .a = offset, .b = len }, NULL);
}

void krt_rsa_settle(kr_tracker *t, double ts)
{
    if (t->rsa && t->rsa_parked)
        settle_now(t, ts);
}

void krt_rsa_free(kr_tracker *t)
{
    struct krt_rsa *r = t->rsa;
    if (!r)
        return;
    kr_budget_cancel(r->b, t);
    for (size_t i = 0; i < r->n; i++)
        free(r->log[i].bytes);
    free(r->log);
    free(r);
    t->rsa = NULL;
    t->rsa_parked = false;
}

const char *krt_rsa_skipped(const kr_tracker *t)
{
    return t->rsa && t->rsa->decided && t->rsa->skipped ? kr_budget_why_str(t->rsa->why) : NULL;
}

void krt_rsa_charge(kr_tracker *t, unsigned ops)
{
    if (t->rsa && ops)
        kr_budget_charge(t->rsa->b, ops);
}

void krt_rsa_opened(kr_tracker *t, double ts)
{
    if (t->rsa)
        kr_budget_known(t->rsa->b, t->rsa->addr, ts);
}
