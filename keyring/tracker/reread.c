/* sparkwire libkeyring: frames read already that a conflicting copy may still contradict. Each direction
 * keeps its last frames read with the session key (at most KR_KEPT_FRAMES of them, KR_KEPT_BYTES bytes in
 * all, or one frame alone up to KR_KEPT_ONE bytes): their bytes and where the cipher stood before each
 * (kept.c holds them). A record is made when its frame is read and given back once the receiver
 * acknowledges the frame's last byte (kr_tracker_acked: a copy seen after that is not what the receiver
 * read), or when the frames stop following each other (a gap, a resync).
 *
 * A copy that differs from a kept frame is read against it at the frame's place in the IV chain:
 * - the copy passes (its padding is right, it frames the same length and it parses as CoAP) and the
 *   frame as read did not: the frame is read again from the copy (its step re-stated, its message
 *   given; a decrypt-error finding of the first reading is named as no longer standing, and taken out
 *   of the counts), and when its first ciphertext block changed, so is the frame after it (its IV);
 * - the frame as read passes and the copy does not: the frame stands;
 * - both pass, or neither: the frame is disputed (its step re-stated as such) and nothing rests on it:
 *   a Hello read from it no longer counts, unless a verdict was already proven by it (a proven verdict
 *   is never overturned). */
#include <stdlib.h>
#include <string.h>
#include "kept.h"

static bool passes(kr_tracker *t, kr_dir dir, const kr_cipher_state *at, const uint8_t *f, size_t len);

/* The frame being read in dir has a length prefix no frame has: the bytes from it on are searched for the
 * next frame boundary. Where the cipher stood (at) is kept with the boundary, as a record of no length:
 * another copy of the prefix may still frame a frame there (krt_kept_resync_copy). */
void krt_kept_boundary(kr_tracker *t, kr_dir dir, const kr_cipher_state *at)
{
    kr_dirstate *ds = &t->d[dir];
    krt_kept_forget(t, dir);
    struct krt_frec *r;
    if (!t->session_known || !krt_keyed(ds) || !(r = krt_kept_new(ds, 0)))
        return;
    r->off = ds->pdu_offset;
    r->before = *at;
}

/* A copy of the bytes at the start of dir's buffer whose length prefix frames a frame that is whole in the
 * buffer: when that frame passes with the cipher at `at`, the copy is laid over the buffer, the cipher set
 * there and the frame read at its length, the bytes after it read again. Returns whether it was taken. */
bool krt_take_framing(kr_tracker *t, kr_dir dir, const uint8_t *b, uint64_t off, size_t len, kr_cipher_state at,
                      double ts)
{
    kr_dirstate *ds = &t->d[dir];
    if (off != ds->pdu_offset || len < 2 || !t->session_known || !krt_keyed(ds))
        return false;
    size_t n = 2 + ((size_t)b[0] << 8 | b[1]);
    if (!valid_len((unsigned)(n - 2), KR_FRAME_MAX) || n > ds->have)
        return false;
    uint8_t *f = malloc(n);
    if (!f)
        return false;
    memcpy(f, ds->buf, n);
    memcpy(f, b, len < n ? len : n);
    bool ok = passes(t, dir, &at, f, n);
    if (ok) {
        memcpy(ds->buf, f, n);
        kr_cipher_restore(ds->cipher, &at);
        if (krt_kept_first(ds->kept) && krt_kept_first(ds->kept)->len == 0)
            krt_kept_drop_first(ds);            /* the boundary is found: the frame is read there */
        ds->st = PST_FRAMES;
        krt_reframe(t, dir, n, ts);
    }
    free(f);
    if (ok && len > n)
        kr_tracker_copy(t, dir, off + n, b + n, len - n, 0, ts);   /* the rest of the copy, against what follows */
    return ok;
}

/* A copy of bytes at the start of dir's resync window, kept since its length prefix fitted no frame: taken
 * when its prefix frames a frame that passes where the cipher stood (krt_take_framing). */
bool krt_kept_resync_copy(kr_tracker *t, kr_dir dir, const uint8_t *b, uint64_t off, size_t len, double ts)
{
    const struct krt_frec *r = krt_kept_first(t->d[dir].kept);
    return r && r->len == 0 && r->off == t->d[dir].pdu_offset && krt_take_framing(t, dir, b, off, len, r->before, ts);
}

/* What a re-read changes of the direction besides the frame: put aside and put back. */
typedef struct stash {
    uint8_t *buf;
    size_t cap, have, scan_from;
    uint64_t pdu_offset;
    double pdu_first_time;
    enum kr_pst st;
    bool damaged, disputed, first_frame_done;
} stash;

static void put_aside(kr_dirstate *ds, stash *s)
{
    *s = (stash){ ds->buf, ds->cap, ds->have, ds->scan_from, ds->pdu_offset, ds->pdu_first_time, ds->st,
                  ds->damaged, ds->disputed, ds->first_frame_done };
}

static void put_back(kr_dirstate *ds, const stash *s)
{
    free(ds->buf);
    ds->buf = s->buf;
    ds->cap = s->cap;
    ds->have = s->have;
    ds->scan_from = s->scan_from;
    ds->pdu_offset = s->pdu_offset;
    ds->pdu_first_time = s->pdu_first_time;
    ds->st = s->st;
    ds->damaged = s->damaged;
    ds->disputed = s->disputed;
    ds->first_frame_done = s->first_frame_done;
}

/* The frame no longer counts as it was read: its counts and the Hello facts it gave are taken back. */
static void take_back(kr_tracker *t, kr_dir dir, const struct krt_frec *r)
{
    kr_dirstate *ds = &t->d[dir];
    ds->frames--;
    ds->frames_ok -= r->ok;
    ds->frames_bad -= r->bad;
    if (!r->hello)
        return;
    if (dir == KR_D2S)
        t->device_hello_ok = t->device_hello_bad = false;
    else
        t->cloud_hello_ok = false;
}

/* Reads the kept frame r again from the bytes b (its length), at its place in the IV chain. The frame
 * after it is read again too when its IV (b's first ciphertext block) changed. */
static void reread(kr_tracker *t, kr_dir dir, struct krt_frec *r, const uint8_t *b, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    uint8_t *f = malloc(r->len);
    if (!f)
        return;
    memcpy(f, b, r->len);
    bool chain_moves = memcmp(f + 2, r->bytes + 2, 16) != 0;
    kr_cipher_state now;
    kr_cipher_save(ds->cipher, &now);
    bool had_id = ds->have_last_id;
    uint16_t last_id = ds->last_id;
    stash s;
    put_aside(ds, &s);
    take_back(t, dir, r);
    ds->buf = f;
    ds->cap = ds->have = r->len;
    ds->pdu_offset = r->off;
    ds->pdu_first_time = r->first_time;
    ds->st = PST_FRAMES;
    ds->damaged = ds->disputed = false;
    ds->first_frame_done = !r->hello;
    ds->have_last_id = false;              /* the counter is not judged on a frame read again */
    kr_cipher_restore(ds->cipher, &r->before);
    uint32_t ok = ds->frames_ok, bad = ds->frames_bad;
    char again[160] = "read again from another copy of its bytes: ";
    if (r->bad) {
        /* the decrypt-error finding the first reading gave no longer stands: named, and no longer counted */
        snprintf(again, sizeof again, "read again from another copy of its bytes (the %s finding at offset %llu "
                 "no longer stands): ", kr_finding_str(KR_FIND_DECRYPT_ERROR), (unsigned long long)r->off);
        if (t->findings > 0)
            t->findings--;
        t->supersedes = KR_FIND_DECRYPT_ERROR;
    }
    krt_read_frame(t, dir, ts, again);
    r->ok = ds->frames_ok > ok;
    r->bad = ds->frames_bad > bad;
    memcpy(r->bytes, f, r->len);
    put_back(ds, &s);
    krt_release(ds, true);
    struct krt_frec *next = krt_kept_next(ds->kept, r);
    if (next && chain_moves) {
        kr_cipher_save(ds->cipher, &next->before);
        reread(t, dir, next, next->bytes, ts);
    } else if (next) {
        kr_cipher_restore(ds->cipher, &now);   /* the frames after it keep their IVs */
        ds->have_last_id = had_id;
        ds->last_id = last_id;
    }
}

/* Both copies of the kept frame pass, or neither: it is disputed and proves nothing. */
static void dispute(kr_tracker *t, kr_dir dir, struct krt_frec *r, bool both, double ts)
{
    kr_step s;
    krt_step_init(t, &s, r->hello ? KR_STEP_HELLO : KR_STEP_FRAME, dir, r->bytes, r->len, r->off, r->first_time,
                  ts);
    s.frame_len = (uint16_t)(r->len - 2);
    s.frame_state = KR_FRAME_NOT_DECRYPTED;
    s.reason = KR_WHY_DISPUTED;
    snprintf(s.note, sizeof s.note, "read again: another copy of this frame's bytes differs and %s: not "
             "decrypted", both ? "decrypts as well" : "neither copy decrypts");
    r->disputed = true;
    if (!(t->verdict && t->verdict->proven)) {
        take_back(t, dir, r);
        t->d[dir].frames++;
        r->ok = r->bad = false;
    }
    krt_emit_step(t, &s);
}

/* Whether the frame f of len bytes passes at the kept place `at`: it frames this length, its padding is
 * right and it parses as CoAP. */
static bool passes(kr_tracker *t, kr_dir dir, const kr_cipher_state *at, const uint8_t *f, size_t len)
{
    kr_cipher *c = t->d[dir].cipher;
    if (((size_t)f[0] << 8 | f[1]) != len - 2)
        return false;
    kr_cipher_state now;
    kr_cipher_save(c, &now);
    kr_cipher_restore(c, at);
    bool ok = krt_frame_passes(t, dir, f + 2, len - 2);
    kr_cipher_restore(c, &now);
    return ok;
}

krt_choice krt_choose_copy(kr_tracker *t, kr_dir dir, const kr_cipher_state *at, const uint8_t *first,
                           const uint8_t *other, size_t len)
{
    if (len < 18 || !t->session_known || !kr_cipher_keyed(t->d[dir].cipher))
        return KRT_COPY_NEITHER;       /* without the session key no copy can be told from the other */
    bool a = passes(t, dir, at, first, len), b = passes(t, dir, at, other, len);
    return a && b ? KRT_COPY_BOTH : a ? KRT_COPY_FIRST : b ? KRT_COPY_OTHER : KRT_COPY_NEITHER;
}

/* One kept frame against the copy's bytes [off, off + len): see the head of this file. */
static void against(kr_tracker *t, kr_dir dir, struct krt_frec *r, uint64_t off, const uint8_t *b, size_t len,
                    double ts)
{
    uint64_t a = off > r->off ? off : r->off, e = off + len < r->off + r->len ? off + len : r->off + r->len;
    if (r->disputed || r->len == 0 || a >= e || memcmp(r->bytes + (a - r->off), b + (a - off), (size_t)(e - a)) == 0)
        return;
    uint8_t *cand = malloc(r->len);
    if (!cand)
        return;
    memcpy(cand, r->bytes, r->len);
    memcpy(cand + (a - r->off), b + (a - off), (size_t)(e - a));
    krt_choice c = krt_choose_copy(t, dir, &r->before, r->bytes, cand, r->len);
    if (c == KRT_COPY_OTHER)
        reread(t, dir, r, cand, ts);
    else if (c != KRT_COPY_FIRST)
        dispute(t, dir, r, c == KRT_COPY_BOTH, ts);
    free(cand);
    krt_evaluate(t, ts);
}

void krt_kept_copy(kr_tracker *t, kr_dir dir, uint64_t off, const uint8_t *b, size_t len, int rank, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    if (rank < 0 || !krt_kept_first(ds->kept) || !krt_keyed(ds) || !t->session_known)
        return;                /* a copy whose checksum is bad is not taken against one that checks */
    for (struct krt_frec *r = krt_kept_first(ds->kept); r; r = krt_kept_next(ds->kept, r))
        if (off < r->off + r->len && r->off < off + len)
            against(t, dir, r, off, b, len, ts);
}
