/* sparkwire libkeyring: the kept frames' store (kept.h): blocks of three sizes, a per-thread cache of them,
 * and the rules of what a direction keeps (at most KR_KEPT_FRAMES frames and KR_KEPT_BYTES bytes of them,
 * or one frame alone up to KR_KEPT_ONE, until the receiver acknowledges them). */
#include <stdlib.h>
#include <string.h>
#include "kept.h"
#include "../src/internal.h"

/* the most a direction holds at once: 8 records of 512 bytes in all (each padded by up to 7), or one alone */
#define KEPT_MANY (KR_KEPT_FRAMES * KRT_REC_SIZE(0) + KR_KEPT_BYTES + KR_KEPT_FRAMES * 7)
#define KEPT_ONE KRT_REC_SIZE(KR_KEPT_ONE)
#define KEPT_MOST (KEPT_MANY > KEPT_ONE ? KEPT_MANY : KEPT_ONE)
#define KEPT_SIZES 3
/* bytes of rec per block size: two usual frames (up to about 80 bytes each) with their records, then the
 * two bounds above; and how many free blocks of each size a thread keeps for later */
static const uint16_t block_cap[KEPT_SIZES] = { 240, KEPT_MANY < KEPT_ONE ? KEPT_MANY : KEPT_ONE, KEPT_MOST };
static const uint8_t cache_keep[KEPT_SIZES] = { 16, 4, 2 };
_Static_assert(KEPT_MANY <= UINT16_MAX && KEPT_ONE <= UINT16_MAX, "block offsets fit 16 bits");

static _Thread_local struct kept_cache {
    struct krt_kept *free[KEPT_SIZES][16];
    uint8_t n[KEPT_SIZES];
    bool registered;           /* emptied when the thread ends (kr_at_thread_end) */
} cache;

/* The thread ends: its free blocks go (a block given back after this registers the cache again). */
static void cache_empty(void *p)
{
    struct kept_cache *c = p;
    for (int s = 0; s < KEPT_SIZES; s++)
        while (c->n[s])
            free(c->free[s][--c->n[s]]);
    c->registered = false;
}

static struct krt_kept *block_take(unsigned size)
{
    struct krt_kept *k = cache.n[size] ? cache.free[size][--cache.n[size]] : malloc(sizeof *k + block_cap[size]);
    if (k)
        *k = (struct krt_kept){ .size = (uint8_t)size };
    return k;
}

/* Gives block k of size class `size` back (the size is passed: a block given back whole is not read). */
static void block_give_sized(struct krt_kept *k, unsigned size)
{
    if (!cache.registered)
        cache.registered = kr_at_thread_end(cache_empty, &cache);
    if (cache.registered && cache.n[size] < cache_keep[size])
        cache.free[size][cache.n[size]++] = k;
    else
        free(k);
}

static void block_give(struct krt_kept *k)
{
    block_give_sized(k, k->size);
}

size_t krt_kept_memory(const kr_tracker *t)
{
    size_t m = 0;
    for (int d = 0; d < 2; d++)
        m += t->d[d].kept ? sizeof *t->d[d].kept + block_cap[t->d[d].kept->size] : 0;
    return m;
}

void krt_kept_forget(kr_tracker *t, kr_dir dir)
{
    if (t->d[dir].kept)
        block_give(t->d[dir].kept);
    t->d[dir].kept = NULL;
}

void krt_kept_free(kr_tracker *t)
{
    krt_kept_forget(t, KR_D2S);
    krt_kept_forget(t, KR_S2D);
}

void krt_kept_drop_first(kr_dirstate *ds)
{
    struct krt_kept *k = ds->kept;
    struct krt_frec *r = krt_kept_first(k);
    k->bytes = (uint16_t)(k->bytes - r->len);
    k->head = (uint16_t)(k->head + KRT_REC_SIZE(r->len));
    if (--k->n == 0) {
        block_give(k);         /* nothing kept: the block goes back to the cache */
        ds->kept = NULL;
    }
}

struct krt_frec *krt_kept_new(kr_dirstate *ds, size_t len)
{
    struct krt_kept *k = ds->kept;
    size_t need = KRT_REC_SIZE(len), used = k ? (size_t)(k->tail - k->head) : 0;
    if (!k || k->tail + need > block_cap[k->size]) {
        unsigned size = 0;
        while (size + 1 < KEPT_SIZES && used + need > block_cap[size])
            size++;
        struct krt_kept *g = k && size == k->size ? k : block_take(size);
        if (!g)
            return NULL;
        if (k) {               /* the records kept move to the start of the (new) block */
            memmove(g->rec, k->rec + k->head, used);
            g->bytes = k->bytes;
            g->n = k->n;
            if (g != k)
                block_give(k);
        }
        g->head = 0;
        g->tail = (uint16_t)used;
        ds->kept = k = g;
        ds->kept_size = g->size;
    }
    struct krt_frec *r = (struct krt_frec *)(void *)(k->rec + k->tail);
    memset(r, 0, sizeof *r);
    r->len = (uint16_t)len;
    k->tail = (uint16_t)(k->tail + need);
    k->bytes = (uint16_t)(k->bytes + len);
    k->n++;
    return r;
}

void krt_kept_add(kr_tracker *t, kr_dir dir, const kr_cipher_state *before, uint64_t off, const uint8_t *b,
                  size_t len, double first, bool hello, bool ok, bool bad)
{
    kr_dirstate *ds = &t->d[dir];
    struct krt_frec *last = NULL;
    for (struct krt_frec *r = krt_kept_first(ds->kept); r; r = krt_kept_next(ds->kept, r))
        last = r;
    if (len < 18 || len > KR_KEPT_ONE || (last && last->off + last->len != off)) {
        krt_kept_forget(t, dir);       /* the frames no longer follow each other: the chain is broken */
        if (len < 18 || len > KR_KEPT_ONE)
            return;
    }
    /* the oldest go first; the frame being kept stays, even alone (a boundary record before a frame at its
     * place goes too when both do not fit the largest block) */
    while (ds->kept && (ds->kept->n + 1 > KR_KEPT_FRAMES || ds->kept->bytes + len > KR_KEPT_BYTES ||
                        (size_t)(ds->kept->tail - ds->kept->head) + KRT_REC_SIZE(len) > KEPT_MOST))
        krt_kept_drop_first(ds);
    struct krt_frec *r = krt_kept_new(ds, len);
    if (!r)
        return;
    r->off = off;
    r->first_time = first;
    r->before = *before;
    r->ok = ok;
    r->bad = bad;
    r->hello = hello;
    memcpy(r->bytes, b, len);
}

void kr_tracker_acked(kr_tracker *t, kr_dir dir, uint64_t offset)
{
    if (!t || (dir != KR_D2S && dir != KR_S2D))
        return;
    kr_dirstate *ds = &t->d[dir];
    if (!ds->kept)
        return;
    if (offset >= ds->offset) {
        /* every byte read is acknowledged, so every frame kept (each ends by ds->offset; a boundary record
         * has its prefix read): the block goes back whole, unread (usually: one frame was kept) */
        block_give_sized(ds->kept, ds->kept_size);
        ds->kept = NULL;
        return;
    }
    for (struct krt_frec *r; (r = krt_kept_first(ds->kept)) && r->off + (r->len ? r->len : 1) <= offset;)
        krt_kept_drop_first(ds);
}
