/* sparkwire libkeyring: one direction's TCP byte stream. Segments come in capture order; bytes leave in
 * stream order. Retransmitted and overlapping bytes are handed on once. Segments ahead of the next
 * expected byte wait in a bounded list; a hole is given up (a gap) when the list is over its byte limit,
 * when the peer acknowledges past it, when it waited too long, or when the stream ends. */
#include <stdlib.h>
#include <string.h>
#include "conn_int.h"

struct kr_seg {
    uint32_t seq;
    uint32_t len;
    double ts;
    bool bad;                /* its checksum is known to be bad */
    kr_seg *next;
    uint8_t data[];
};

#define KR_SETTLE_WAIT 1.0   /* seconds the first segments of a stream joined late wait for their order */

void kr_reasm_init(kr_reasm *r, kr_reasm_rare *rare, size_t max_ooo_bytes)
{
    memset(r, 0, sizeof *r);
    memset(rare, 0, sizeof *rare);
    r->rare = rare;
    rare->max_ooo_bytes = (uint32_t)(max_ooo_bytes < KR_REASM_MAX_WAITING ? max_ooo_bytes : KR_REASM_MAX_WAITING);
}

/* More bytes wait than the limit allows. */
static inline bool over_limit(const kr_reasm *r)
{
    return r->rare->ooo_bytes > r->rare->max_ooo_bytes;
}

void kr_reasm_free(kr_reasm *r)
{
    kr_seg *s = r->ooo;
    while (s) {
        kr_seg *n = s->next;
        free(s);
        s = n;
    }
    r->ooo = NULL;
    r->rare->ooo_bytes = 0;
}

size_t kr_reasm_memory(const kr_reasm *r)
{
    size_t n = r->rare->ooo_bytes;
    for (const kr_seg *s = r->ooo; s; s = s->next)
        n += sizeof *s;
    return n;
}

void kr_reasm_syn(kr_reasm *r, uint32_t isn)
{
    if (r->saw_syn)
        return;                       /* a retransmitted SYN */
    r->saw_syn = true;
    r->rare->isn = isn;
    if (!r->started) {
        r->next_seq = isn + 1;
        r->started = true;
    }
    if (!r->have_max) {
        r->have_max = true;
        r->max_end = isn + 1;
    }
}

bool kr_reasm_snd_nxt(const kr_reasm *r, uint32_t *out)
{
    if (!r->have_max)
        return false;
    *out = r->max_end;
    return true;
}

static inline void check_fin(kr_reasm *r, double ts, const kr_reasm_ops *ops, void *ud)
{
    if (r->fin_seen && !r->fin_done && r->started && kr_seq_diff(r->next_seq, r->rare->fin_seq) >= 0) {
        r->fin_done = true;
        if (ops->fin)
            ops->fin(ud, ts);
    }
}

/* How a copy of m bytes at seq ranks against the copy handed on: 1 when it checks and that one did not, -1
 * when it does not check and that one did (a copy with a valid checksum beats one with a bad one). */
static int copy_rank(const kr_reasm *r, uint32_t seq, uint32_t m, bool bad)
{
    const kr_reasm_rare *x = r->rare;
    bool first_bad = r->have_bad && kr_seq_diff(seq, x->bad_end) < 0 && kr_seq_diff(seq + m, x->bad_seq) > 0;
    return first_bad == bad ? 0 : bad ? -1 : 1;
}

static KR_RARE void note_bad(kr_reasm *r, uint32_t from, uint32_t n)
{
    kr_reasm_rare *x = r->rare;
    if (!r->have_bad || x->bad_end != from)
        x->bad_seq = from;
    r->have_bad = true;
    x->bad_end = from + n;
}

/* Hands on in-order bytes of [seq, seq+len), skipping what was already handed on (later copies of those go
 * to ops->copy). */
static inline __attribute__((always_inline)) void take(kr_reasm *r, uint32_t seq, const uint8_t *data,
                                                       uint32_t len, bool bad, double ts, bool from_packet,
                                                       const kr_reasm_ops *ops, void *ud)
{
    int32_t d = kr_seq_diff(r->next_seq, seq);
    if (d < 0)
        return;
    if (d > 0 && ops->copy) {
        uint32_t m = (uint32_t)d < len ? (uint32_t)d : len;
        ops->copy(ud, data, m, (uint32_t)d, copy_rank(r, seq, m, bad), ts);
    }
    if ((uint32_t)d >= len) {
        r->retransmitted += len;
        return;
    }
    r->retransmitted += (uint32_t)d;
    uint32_t n = len - (uint32_t)d;
    if (r->fin_seen && kr_seq_diff(r->rare->fin_seq, r->next_seq) >= 0 &&
        kr_seq_diff(r->next_seq + n, r->rare->fin_seq) > 0)
        n = (uint32_t)kr_seq_diff(r->rare->fin_seq, r->next_seq);   /* nothing after the FIN */
    if (n == 0)
        return;
    if (bad)
        note_bad(r, r->next_seq, n);
    r->next_seq += n;
    r->any_delivered = true;
    if (ops->deliver)
        ops->deliver(ud, data + d, n, ts, from_packet);
}

static KR_RARE void drain_waiting(kr_reasm *r, const kr_reasm_ops *ops, void *ud)
{
    while (r->ooo && kr_seq_diff(r->ooo->seq, r->next_seq) <= 0) {
        kr_seg *s = r->ooo;
        r->ooo = s->next;
        r->rare->ooo_bytes -= s->len;
        take(r, s->seq, s->data, s->len, s->bad, s->ts, false, ops, ud);
        free(s);
    }
}

/* Hands on the waiting segments the next byte has reached. */
static inline void drain(kr_reasm *r, const kr_reasm_ops *ops, void *ud)
{
    if (r->ooo)
        drain_waiting(r, ops, ud);
}

static KR_RARE void give_up(kr_reasm *r, uint32_t missing, double ts, const kr_reasm_ops *ops, void *ud)
{
    r->next_seq += missing;
    if (ops->gap)
        ops->gap(ud, missing, ts);
}

/* Gives up the hole before the first waiting segment. */
static KR_RARE void skip_hole(kr_reasm *r, double ts, const kr_reasm_ops *ops, void *ud)
{
    if (!r->ooo)
        return;
    give_up(r, (uint32_t)kr_seq_diff(r->ooo->seq, r->next_seq), ts, ops, ud);
    drain(r, ops, ud);
}

static KR_RARE void store(kr_reasm *r, uint32_t seq, const uint8_t *data, uint32_t len, bool bad, double ts)
{
    kr_seg **pp = &r->ooo;
    while (*pp && kr_seq_diff((*pp)->seq, seq) <= 0) {
        if ((*pp)->seq == seq && (*pp)->len >= len && memcmp((*pp)->data, data, len) == 0) {
            r->retransmitted += len;
            return;             /* the same bytes again (a copy that differs waits too: its meaning decides) */
        }
        pp = &(*pp)->next;
    }
    kr_seg *s = malloc(sizeof *s + len);
    if (!s)
        return;                       /* out of memory: the bytes become a hole reported later */
    s->seq = seq;
    s->len = len;
    s->ts = ts;
    s->bad = bad;
    memcpy(s->data, data, len);
    s->next = *pp;
    *pp = s;
    r->rare->ooo_bytes += len;
}

/* Bytes beyond everything seen so far in this direction. */
static uint32_t note_extent(kr_reasm *r, uint32_t seq, uint32_t wire_len)
{
    uint32_t end = seq + wire_len;
    if (!r->have_max) {
        r->have_max = true;
        r->max_end = end;
        return wire_len;
    }
    int32_t d = kr_seq_diff(end, r->max_end);
    if (d <= 0)
        return 0;
    r->max_end = end;
    return (uint32_t)d < wire_len ? (uint32_t)d : wire_len;
}

uint32_t kr_reasm_segment(kr_reasm *r, uint32_t seq, const uint8_t *data, size_t len, size_t wire_len, bool fin,
                          bool bad, double ts, const kr_reasm_ops *ops, void *ud)
{
    r->any_segment = true;
    if (wire_len < len)
        wire_len = len;
    uint32_t fresh = note_extent(r, seq, (uint32_t)wire_len);
    if (fin && !r->fin_seen) {
        r->fin_seen = true;
        r->rare->fin_seq = seq + (uint32_t)wire_len;
    }
    if (!r->started) {
        /* joined without a SYN: the first segments may be out of order, so they wait until the other side
         * acknowledges up to the lowest one (or a second has passed), and the stream starts there */
        if (len > 0)
            store(r, seq, data, (uint32_t)len, bad, ts);
        if (fin || over_limit(r)) {
            if (!r->ooo) {
                r->next_seq = seq + (uint32_t)wire_len;
                r->started = true;
            }
            kr_reasm_settle(r, ts, ops, ud);
        }
        return fresh;
    }
    if (len > 0) {
        if (kr_seq_diff(seq, r->next_seq) <= 0) {
            take(r, seq, data, (uint32_t)len, bad, ts, true, ops, ud);
            drain(r, ops, ud);
        } else {
            store(r, seq, data, (uint32_t)len, bad, ts);
            while (over_limit(r) && r->ooo)
                skip_hole(r, ts, ops, ud);
        }
    }
    if (wire_len > len && kr_seq_diff(r->next_seq, seq + (uint32_t)len) == 0) {
        /* the capture cut this segment short: the rest is a hole */
        give_up(r, (uint32_t)(wire_len - len), ts, ops, ud);
        drain(r, ops, ud);
    }
    check_fin(r, ts, ops, ud);
    return fresh;
}

uint32_t kr_reasm_first_waiting(const kr_reasm *r)
{
    return r->ooo ? r->ooo->seq : r->next_seq;
}

void kr_reasm_settle(kr_reasm *r, double ts, const kr_reasm_ops *ops, void *ud)
{
    if (!r->started && r->ooo) {
        r->next_seq = r->ooo->seq;
        r->started = true;
        drain(r, ops, ud);
        while (over_limit(r) && r->ooo)
            skip_hole(r, ts, ops, ud);
    }
    check_fin(r, ts, ops, ud);
}

void kr_reasm_ack(kr_reasm *r, uint32_t ack, double ts, const kr_reasm_ops *ops, void *ud)
{
    /* the peer acknowledged past the hole: it got those bytes, the capture did not */
    while (r->started && r->ooo && kr_seq_diff(ack, r->ooo->seq) >= 0 &&
           (!r->have_max || kr_seq_diff(ack, r->max_end) <= 0))
        skip_hole(r, ts, ops, ud);
}

void kr_reasm_age(kr_reasm *r, double now, double max_wait, const kr_reasm_ops *ops, void *ud)
{
    if (!r->started && r->ooo && now - r->ooo->ts > KR_SETTLE_WAIT)
        kr_reasm_settle(r, now, ops, ud);
    while (r->started && r->ooo && now - r->ooo->ts > max_wait)
        skip_hole(r, now, ops, ud);
}

void kr_reasm_flush(kr_reasm *r, double ts, const kr_reasm_ops *ops, void *ud)
{
    kr_reasm_settle(r, ts, ops, ud);
    while (r->ooo)
        skip_hole(r, ts, ops, ud);
    if (r->fin_seen && !r->fin_done && r->started && kr_seq_diff(r->rare->fin_seq, r->next_seq) > 0)
        give_up(r, (uint32_t)kr_seq_diff(r->rare->fin_seq, r->next_seq), ts, ops, ud);
    check_fin(r, ts, ops, ud);
}
