/* sparkwire libkeyring: the store of frames a direction keeps for a later conflicting copy (reread.c reads
 * them again). The records of a direction lie end to end in one block, oldest first; blocks come in three
 * fixed sizes (two usual frames, the most frames kept, the longest frame kept alone) and are taken from and
 * given back to a small per-thread cache, so keeping frames and giving them back when they are acknowledged
 * costs no allocation in a running capture, and a direction with nothing kept holds no block. */
#ifndef KEYRING_KEPT_H
#define KEYRING_KEPT_H

#include "tracker_int.h"

#define KR_KEPT_FRAMES 8       /* frames kept per direction */
#define KR_KEPT_BYTES  512     /* their bytes per direction, length prefixes included */
#define KR_KEPT_ONE    1024    /* a longer frame is kept alone, up to this (a device's buffer holds 800 bytes) */

/* One kept frame: where the cipher stood before it, then its bytes, padded so the next record is aligned. */
struct krt_frec {
    uint64_t off;              /* stream offset of its length prefix */
    double first_time;
    kr_cipher_state before;    /* the cipher before the frame */
    uint16_t len;              /* 2 + body; 0 for a frame boundary searched for (krt_kept_boundary) */
    bool ok, bad;              /* counted in frames_ok / frames_bad when read */
    bool hello;                /* it was its direction's Hello */
    bool disputed;             /* re-stated as disputed: no copy decides it any more */
    uint8_t bytes[];
};

/* A direction's block: records rec[head, tail). */
struct krt_kept {
    uint16_t head, tail;
    uint16_t bytes;            /* the frames' own bytes (sum of len) */
    uint8_t n;                 /* records */
    uint8_t size;              /* which of the block sizes */
    _Alignas(8) uint8_t rec[];
};

#define KRT_REC_SIZE(len) (sizeof(struct krt_frec) + (((size_t)(len) + 7) & ~(size_t)7))

static inline struct krt_frec *krt_kept_first(const struct krt_kept *k)
{
    return k && k->n ? (struct krt_frec *)(void *)(uintptr_t)(k->rec + k->head) : NULL;
}

static inline struct krt_frec *krt_kept_next(const struct krt_kept *k, const struct krt_frec *r)
{
    const uint8_t *p = (const uint8_t *)r + KRT_REC_SIZE(r->len);
    return p < k->rec + k->tail ? (struct krt_frec *)(void *)(uintptr_t)p : NULL;
}

/* A new record of len bytes (its members zero) after dir's last; NULL when out of memory. The records kept
 * stay where they are in memory only until the next record is made. */
struct krt_frec *krt_kept_new(kr_dirstate *ds, size_t len);
/* Gives back dir's oldest record. */
void krt_kept_drop_first(kr_dirstate *ds);

#endif
