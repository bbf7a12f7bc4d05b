/* cloudmon: TCP byte-stream reassembly for one direction of one connection. */
#include "reasm.h"

#include <stdlib.h>
#include <string.h>

struct cm_seg {
    uint32_t seq;
    uint32_t len;
    double ts;
    cm_seg *next;
    uint8_t data[];
};

#define CM_SETTLE_WAIT 1.0   /* seconds the first segments of a stream joined late wait for their order */

/* Signed distance from b to a in sequence space. */
static int32_t seq_diff(uint32_t a, uint32_t b) { return (int32_t)(a - b); }

void cm_reasm_init(cm_reasm *r, size_t max_ooo_bytes)
{
    memset(r, 0, sizeof *r);
    r->max_ooo_bytes = max_ooo_bytes;
}

void cm_reasm_free(cm_reasm *r)
{
    cm_seg *s = r->ooo;
    while (s) {
        cm_seg *n = s->next;
        free(s);
        s = n;
    }
    r->ooo = NULL;
    r->ooo_bytes = r->ooo_count = 0;
}

size_t cm_reasm_memory(const cm_reasm *r)
{
    return r->ooo_bytes + r->ooo_count * sizeof(cm_seg);
}

void cm_reasm_syn(cm_reasm *r, uint32_t isn)
{
    if (r->started && r->saw_syn)
        return;                       /* a retransmitted SYN */
    if (!r->started) {
        r->next_seq = isn + 1;
        r->started = true;
    }
    r->saw_syn = true;
}

static void check_fin(cm_reasm *r, double ts, const cm_reasm_ops *ops, void *ud)
{
    if (r->fin_seen && !r->fin_done && seq_diff(r->next_seq, r->fin_seq) >= 0) {
        r->fin_done = true;
        if (ops->fin)
            ops->fin(ud, ts);
    }
}

/* Hands on in-order bytes of [seq, seq+len), skipping what was already delivered. */
static void take(cm_reasm *r, uint32_t seq, const uint8_t *data, uint32_t len, double ts,
                 const cm_reasm_ops *ops, void *ud)
{
    int32_t d = seq_diff(r->next_seq, seq);   /* bytes at the front already delivered */
    if (d < 0)
        return;
    if ((uint32_t)d >= len) {
        r->retransmitted += len;
        return;
    }
    r->retransmitted += (uint32_t)d;
    uint32_t n = len - (uint32_t)d;
    if (r->fin_seen && seq_diff(r->fin_seq, r->next_seq) >= 0 && seq_diff(r->next_seq + n, r->fin_seq) > 0)
        n = (uint32_t)seq_diff(r->fin_seq, r->next_seq);   /* nothing after the FIN */
    if (n == 0)
        return;
    r->next_seq += n;
    r->delivered += n;
    if (ops->deliver)
        ops->deliver(ud, data + d, n, ts);
}

/* Delivers waiting segments that now touch the stream. */
static void drain(cm_reasm *r, const cm_reasm_ops *ops, void *ud)
{
    while (r->ooo && seq_diff(r->ooo->seq, r->next_seq) <= 0) {
        cm_seg *s = r->ooo;
        r->ooo = s->next;
        r->ooo_bytes -= s->len;
        r->ooo_count--;
        take(r, s->seq, s->data, s->len, s->ts, ops, ud);
        free(s);
    }
}

/* Gives up the hole before the first waiting segment. */
static void skip_hole(cm_reasm *r, double ts, const cm_reasm_ops *ops, void *ud)
{
    if (!r->ooo)
        return;
    uint32_t missing = (uint32_t)seq_diff(r->ooo->seq, r->next_seq);
    r->gaps++;
    r->gap_bytes += missing;
    r->next_seq = r->ooo->seq;
    if (ops->gap)
        ops->gap(ud, missing, ts);
    drain(r, ops, ud);
}

void cm_reasm_settle(cm_reasm *r, double ts, const cm_reasm_ops *ops, void *ud);

static void store(cm_reasm *r, uint32_t seq, const uint8_t *data, uint32_t len, double ts)
{
    cm_seg **pp = &r->ooo;
    while (*pp && seq_diff((*pp)->seq, seq) <= 0) {
        if ((*pp)->seq == seq && (*pp)->len >= len) {      /* an exact duplicate of a waiting one */
            r->retransmitted += len;
            return;
        }
        pp = &(*pp)->next;
    }
    cm_seg *s = malloc(sizeof *s + len);
    if (!s)
        return;                       /* out of memory: the bytes become a hole reported later */
    s->seq = seq;
    s->len = len;
    s->ts = ts;
    memcpy(s->data, data, len);
    s->next = *pp;
    *pp = s;
    r->ooo_bytes += len;
    r->ooo_count++;
}

void cm_reasm_segment(cm_reasm *r, uint32_t seq, const uint8_t *data, size_t len, size_t wire_len,
                      bool fin, double ts, const cm_reasm_ops *ops, void *ud)
{
    r->segments++;
    if (wire_len < len)
        wire_len = len;
    if (fin && !r->fin_seen) {
        r->fin_seen = true;
        r->fin_seq = seq + (uint32_t)wire_len;
    }
    if (!r->started) {
        /* joined without a SYN: the first segments seen may be out of order, so they wait until the
         * other side acknowledges up to the lowest one (or a second has passed), and the stream starts there */
        if (len > 0)
            store(r, seq, data, (uint32_t)len, ts);
        if (fin || r->ooo_bytes > r->max_ooo_bytes) {
            if (!r->ooo) {
                r->next_seq = seq + (uint32_t)wire_len;
                r->started = true;
            }
            cm_reasm_settle(r, ts, ops, ud);
        }
        return;
    }
    if (len > 0) {
        int32_t rel = seq_diff(seq, r->next_seq);
        if (rel <= 0) {
            take(r, seq, data, (uint32_t)len, ts, ops, ud);
            drain(r, ops, ud);
        } else {
            store(r, seq, data, (uint32_t)len, ts);
            while (r->ooo_bytes > r->max_ooo_bytes && r->ooo)
                skip_hole(r, ts, ops, ud);
        }
    }
    if (wire_len > len && seq_diff(r->next_seq, seq + (uint32_t)len) == 0) {
        /* the capture cut this segment short: the rest is a hole on the wire */
        uint32_t cut = (uint32_t)(wire_len - len);
        r->gaps++;
        r->gap_bytes += cut;
        r->next_seq += cut;
        if (ops->gap)
            ops->gap(ud, cut, ts);
        drain(r, ops, ud);
    }
    check_fin(r, ts, ops, ud);
}

uint32_t cm_reasm_first_waiting(const cm_reasm *r)
{
    return r->ooo ? r->ooo->seq : r->next_seq;
}

void cm_reasm_settle(cm_reasm *r, double ts, const cm_reasm_ops *ops, void *ud)
{
    if (!r->started && r->ooo) {
        r->next_seq = r->ooo->seq;
        r->started = true;
        drain(r, ops, ud);
        while (r->ooo_bytes > r->max_ooo_bytes && r->ooo)
            skip_hole(r, ts, ops, ud);
    }
    check_fin(r, ts, ops, ud);
}

void cm_reasm_ack(cm_reasm *r, uint32_t ack, double ts, const cm_reasm_ops *ops, void *ud)
{
    while (r->started && r->ooo && seq_diff(ack, r->ooo->seq) >= 0)
        skip_hole(r, ts, ops, ud);
}

void cm_reasm_age(cm_reasm *r, double now, double max_wait, const cm_reasm_ops *ops, void *ud)
{
    if (!r->started && r->ooo && now - r->ooo->ts > CM_SETTLE_WAIT)
        cm_reasm_settle(r, now, ops, ud);
    while (r->ooo && now - r->ooo->ts > max_wait)
        skip_hole(r, now, ops, ud);
}

void cm_reasm_flush(cm_reasm *r, double ts, const cm_reasm_ops *ops, void *ud)
{
    cm_reasm_settle(r, ts, ops, ud);
    while (r->ooo)
        skip_hole(r, ts, ops, ud);
    if (r->fin_seen && !r->fin_done && seq_diff(r->fin_seq, r->next_seq) > 0) {
        uint32_t missing = (uint32_t)seq_diff(r->fin_seq, r->next_seq);
        r->gaps++;
        r->gap_bytes += missing;
        r->next_seq = r->fin_seq;
        if (ops->gap)
            ops->gap(ud, missing, ts);
    }
    check_fin(r, ts, ops, ud);
}
