/* sparkwire libkeyring: conflicting copies of the same stream bytes. The connection layer hands each byte
 * on once (the first copy) and reports every later copy of bytes already handed on (kr_tracker_copy). A
 * copy that differs is a candidate until the meaning of the bytes decides:
 * - the nonce: the id block's echo names the copy the device received;
 * - the id block: the copy that opens with the server private key;
 * - the session block: the copy that opens with a device key;
 * - a frame: the copy that passes (frames its length, decrypts with the session key, parses as CoAP) where
 *   the other does not (krt_choose_copy, one rule for frames being read and frames read already); when
 *   both pass, or neither, or without the key, the frame is disputed; a copy whose length prefix frames a whole
 *   frame that decrypts wins over a prefix the frame being read cannot have, or one no frame has (the
 *   search for the next boundary that began there stops). Copies of frames read already: reread.c.
 * When no copy is decided by its meaning, the step is disputed and proves nothing. A copy whose TCP checksum
 * is valid beats one whose checksum is bad: it replaces the bytes that can still be read, and a copy with a
 * bad checksum is not taken against one that checks. */
#include <stdlib.h>
#include <string.h>
#include "tracker_int.h"

#define KR_COPY_SLOTS 4      /* candidate copies held per direction for the PDU being read */

typedef struct krt_copy {
    uint64_t off;
    size_t len;
    uint8_t bytes[KR_SESSIONBLOCK_LEN];
} krt_copy;

struct krt_copies {
    bool have_nonce;
    uint8_t nonce[KR_NONCE_LEN];           /* the other copy of the nonce */
    krt_copy slot[2][KR_COPY_SLOTS];       /* copies of bytes of the PDU being read */
    int n[2];
};

static struct krt_copies *copies_of(kr_tracker *t)
{
    if (!t->copies)
        t->copies = calloc(1, sizeof *t->copies);
    return t->copies;
}

size_t krt_copies_memory(const kr_tracker *t)
{
    return (t->copies ? sizeof *t->copies : 0) + krt_kept_memory(t);
}

void krt_copies_free(kr_tracker *t)
{
    free(t->copies);
    t->copies = NULL;
    krt_kept_free(t);
}

/* The handshake block [a, b) of dir that is complete and still in dir's buffer with nothing read after it;
 * returns its parser state (PST_NONCE, PST_IDBLOCK, PST_SESSION) or PST_DATA when there is none. */
static enum kr_pst last_block(const kr_tracker *t, kr_dir dir, uint64_t *a, uint64_t *b)
{
    const kr_dirstate *ds = &t->d[dir];
    if (ds->have != 0 || t->mid_session || t->not_spark)
        return PST_DATA;
    *a = ds->pdu_offset;
    *b = ds->offset;
    if (dir == KR_S2D && *a == 0 && *b == KR_NONCE_LEN && t->nonce_seen)
        return PST_NONCE;
    if (dir == KR_D2S && *a == 0 && *b == KR_IDBLOCK_LEN && t->idblock_seen && !t->sessionblock_seen &&
        ds->cap >= KR_IDBLOCK_LEN)
        return PST_IDBLOCK;
    if (dir == KR_S2D && *a == KR_NONCE_LEN && *b == KR_NONCE_LEN + KR_SESSIONBLOCK_LEN && t->sessionblock_seen &&
        t->d[KR_D2S].frames == 0 && t->d[KR_S2D].frames == 0 && ds->cap >= KR_SESSIONBLOCK_LEN)
        return PST_SESSION;
    return PST_DATA;
}

/* Whether dir's buffer still holds a handshake block that a conflicting copy may have to be read against
 * (until the next block or frame of the handshake comes): the buffer is then kept between PDUs. */
bool krt_copies_need_buffer(const kr_tracker *t, kr_dir dir)
{
    uint64_t a, b;
    enum kr_pst st = last_block(t, dir, &a, &b);
    return st == PST_IDBLOCK || st == PST_SESSION;   /* not the nonce: the tracker keeps it apart */
}

/* Reads the block again from its other copy (alt, laid over the buffer) when the copy read first did not
 * open: the copy that opens wins. When neither opens, the block does not open whichever copy the peer
 * received, so that result stands (read from the other copy, the last one). Without a key to open it,
 * nothing can decide between the copies: the block is disputed. */
static void reread_block(kr_tracker *t, kr_dir dir, enum kr_pst st, const uint8_t *alt, uint64_t a, uint64_t off,
                         size_t len, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    kr_tri opened = st == PST_IDBLOCK ? t->id_block_opened : t->session_opened;
    bool damaged = st == PST_IDBLOCK ? t->idblock_damaged : t->sessionblock_damaged;
    if (opened == KR_YES || damaged)
        return;                 /* the copy read first opened (it wins), or the block proves nothing already */
    memcpy(ds->buf + (off - a), alt, len);
    ds->have = (size_t)(ds->offset - a);
    ds->st = st;
    if (opened == KR_UNKNOWN)
        kr_tracker_dispute(t, dir, a, ds->have);
    if (st == PST_IDBLOCK)
        krt_do_idblock(t, ts);
    else
        krt_do_sessionblock(t, ts);
    krt_evaluate(t, ts);
}

/* A copy of bytes of the nonce: held; the id block's echo decides (krt_nonce_candidate). */
static void keep_nonce(kr_tracker *t, const uint8_t *alt, uint64_t off, size_t len)
{
    struct krt_copies *c = copies_of(t);
    if (!c) {
        t->nonce_damaged = t->blocks_disputed = true;   /* not held: the nonce is not judged */
        return;
    }
    if (!c->have_nonce)
        memcpy(c->nonce, t->nonce, KR_NONCE_LEN);
    memcpy(c->nonce + off, alt, len);
    c->have_nonce = true;
}

const uint8_t *krt_nonce_candidate(const kr_tracker *t, const uint8_t echo[KR_NONCE_LEN])
{
    if (t->copies && t->copies->have_nonce && memcmp(t->copies->nonce, echo, KR_NONCE_LEN) == 0)
        return t->copies->nonce;
    return NULL;
}

/* Bytes of the PDU being read: held until it is complete (krt_copies_settle, krt_copies_frame). */
static void keep_pending(kr_tracker *t, kr_dir dir, const uint8_t *b, uint64_t off, size_t len)
{
    struct krt_copies *c = copies_of(t);
    if (!c || len > KR_SESSIONBLOCK_LEN || c->n[dir] == KR_COPY_SLOTS) {
        kr_tracker_dispute(t, dir, off, len);   /* a copy that is not held: the PDU proves nothing */
        return;
    }
    krt_copy *s = &c->slot[dir][c->n[dir]++];
    s->off = off;
    s->len = len;
    memcpy(s->bytes, b, len);
}

static bool differs(const kr_dirstate *ds, uint64_t base, uint64_t off, const uint8_t *b, size_t len)
{
    return memcmp(ds->buf + (off - base), b, len) != 0;
}

/* Whether the copy changes the length prefix of the frame being read (its size would change). */
static bool prefix_differs(const kr_dirstate *ds, uint64_t off, const uint8_t *b, size_t len)
{
    uint64_t end = ds->pdu_offset + 2;
    if (off >= end)
        return false;
    size_t n = (size_t)(end - off) < len ? (size_t)(end - off) : len;
    return differs(ds, ds->pdu_offset, off, b, n);
}

/* A frame of dir is complete and about to be read: the copies of its bytes held meanwhile are weighed in the
 * order they came, each laid over the bytes chosen so far, by the rule for every copy of a frame
 * (krt_choose_copy, the same as for frames read already): the copy that passes where the other does not is
 * read; when both pass, or neither (or there is no session key), the frame is disputed and nothing rests on
 * it. A copy that does not fall within the frame is not weighed. */
void krt_copies_frame(kr_tracker *t, kr_dir dir)
{
    struct krt_copies *c = t->copies;
    kr_dirstate *ds = &t->d[dir];
    if (!c || c->n[dir] == 0)
        return;
    int n = c->n[dir];
    c->n[dir] = 0;
    uint8_t *now = malloc(ds->have), *cand = malloc(ds->have);
    kr_cipher_state at;
    kr_cipher_save(ds->cipher, &at);
    krt_choice ch = now && cand ? KRT_COPY_FIRST : KRT_COPY_NEITHER;
    if (now && cand)
        memcpy(now, ds->buf, ds->have);
    for (int i = 0; i < n && (ch == KRT_COPY_FIRST || ch == KRT_COPY_OTHER); i++) {
        const krt_copy *s = &c->slot[dir][i];
        if (s->off < ds->pdu_offset || s->off + s->len > ds->pdu_offset + ds->have)
            continue;
        memcpy(cand, now, ds->have);
        memcpy(cand + (s->off - ds->pdu_offset), s->bytes, s->len);
        if (memcmp(cand, now, ds->have) == 0)
            continue;
        ch = krt_choose_copy(t, dir, &at, now, cand, ds->have);
        if (ch == KRT_COPY_OTHER)
            memcpy(now, cand, ds->have);
    }
    if (ch == KRT_COPY_FIRST || ch == KRT_COPY_OTHER)
        memcpy(ds->buf, now, ds->have);
    else
        for (int i = 0; i < n; i++)
            kr_tracker_dispute(t, dir, c->slot[dir][i].off, c->slot[dir][i].len);
    free(now);
    free(cand);
}

/* A copy of the frame being read whose length prefix says another length: when the frame it frames is whole
 * in the buffer and decrypts to a CoAP message with the session key, it is taken and that frame read (the
 * frame being read is not complete, so its own prefix cannot be right: a damaged prefix, 0x0010 read as
 * 0x8010, with its retransmission). Returns whether it was taken. */
static bool take_framing(kr_tracker *t, kr_dir dir, const uint8_t *b, uint64_t off, size_t len, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    if (ds->st != PST_FRAMES || ds->damaged || !kr_cipher_in_sync(ds->cipher))
        return false;
    kr_cipher_state now;
    kr_cipher_save(ds->cipher, &now);
    return krt_take_framing(t, dir, b, off, len, now, ts);
}

/* A copy of bytes that dir's search for the next frame boundary holds (after a gap, or a length prefix no
 * frame has): no frame's bounds are known yet, and the gap or the bad prefix broke the IV chain, so there is
 * no frame to weigh the copies as krt_choose_copy does. The bytes are disputed (what that rule gives when
 * nothing tells the copies apart): a frame found over them is read as disputed and proves nothing. A copy
 * whose checksum checks where the first did not replaces the bytes instead; one that does not check is not
 * taken against one that does. */
static void resync_copy(kr_tracker *t, kr_dir dir, const uint8_t *b, uint64_t off, size_t len, int rank)
{
    kr_dirstate *ds = &t->d[dir];
    if (rank > 0)
        memcpy(ds->buf + (off - ds->pdu_offset), b, len);
    else if (rank == 0)
        kr_tracker_dispute(t, dir, off, len);
}

/* A handshake block of dir was just read: the copies of its bytes held meanwhile are tried now. */
void krt_copies_settle(kr_tracker *t, kr_dir dir, double ts)
{
    struct krt_copies *c = t->copies;
    if (!c || c->n[dir] == 0)
        return;
    int n = c->n[dir];
    krt_copy held[KR_COPY_SLOTS];
    memcpy(held, c->slot[dir], sizeof held);
    c->n[dir] = 0;
    for (int i = 0; i < n; i++)
        kr_tracker_copy(t, dir, held[i].off, held[i].bytes, held[i].len, 0, ts);
}



void kr_tracker_copy(kr_tracker *t, kr_dir dir, uint64_t off, const uint8_t *b, size_t len, int rank,
                     double ts)
{
    if (!t || t->finished || !b || len == 0 || (dir != KR_D2S && dir != KR_S2D) || rank < 0)
        return;
    kr_dirstate *ds = &t->d[dir];
    krt_kept_copy(t, dir, off, b, len, rank, ts);   /* frames read already (reread.c) */
    /* the other bytes that can be compared are those still in the buffer: the PDU being read, or the last
     * handshake block read */
    uint64_t a = ds->pdu_offset, e = ds->offset;
    if (off < a) {
        if (off + len <= a)
            return;             /* read before: their step stands */
        b += a - off;
        len -= (size_t)(a - off);
        off = a;
    }
    if (off + len > e)
        len = off < e ? (size_t)(e - off) : 0;
    enum kr_pst st = len ? last_block(t, dir, &a, &e) : PST_DATA;   /* a, e stay what they were */
    if (len == 0 || (st == PST_NONCE ? memcmp(t->nonce + off, b, len) == 0
                                     : !ds->buf || e - a > ds->cap || !differs(ds, a, off, b, len)))
        return;                 /* the same bytes again (the nonce is kept apart from the buffer) */
    if (rank > 0 && st == PST_NONCE) {
        memcpy(t->nonce + off, b, len);         /* the copy that checks is the nonce */
        if (ds->buf && ds->cap >= KR_NONCE_LEN)
            memcpy(ds->buf + off, b, len);
    } else if (rank > 0 && st == PST_DATA && ds->have > 0 && ds->st != PST_DATA && ds->st != PST_RESYNC &&
               (ds->st != PST_FRAMES || !prefix_differs(ds, off, b, len))) {
        memcpy(ds->buf + (off - ds->pdu_offset), b, len);   /* still being read: the copy that checks */
    } else if (st == PST_NONCE)
        keep_nonce(t, b, off, len);
    else if (st != PST_DATA)
        reread_block(t, dir, st, b, a, off, len, ts);
    else if (ds->st == PST_RESYNC && rank >= 0 && krt_kept_resync_copy(t, dir, b, off, len, ts))
        return;                 /* the copy frames a frame where the first copy's prefix did not */
    else if (ds->st == PST_RESYNC && ds->have > 0)
        resync_copy(t, dir, b, off, len, rank);
    else if (ds->have == 0 || ds->st == PST_DATA || ds->st == PST_RESYNC)
        return;                 /* a frame read already (krt_kept_copy had it), or bytes of no PDU */
    else if (!(rank >= 0 && prefix_differs(ds, off, b, len) && take_framing(t, dir, b, off, len, ts)))
        keep_pending(t, dir, b, off, len);
}
