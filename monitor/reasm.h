/* cloudmon: TCP byte-stream reassembly for one direction of one connection.
 *
 * Segments come in capture order; bytes leave in stream order through deliver(). Retransmitted and
 * overlapping bytes are delivered once (the first copy seen wins). Segments ahead of the next expected
 * byte wait in a bounded out-of-order list; when it is over its byte limit, or when the stream ends, the
 * hole in front of the first waiting segment is given up and reported through gap(). */
#ifndef CLOUDMON_REASM_H
#define CLOUDMON_REASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cm_reasm_ops {
    void (*deliver)(void *ud, const uint8_t *data, size_t len, double ts);
    void (*gap)(void *ud, uint64_t nbytes, double ts);
    void (*fin)(void *ud, double ts);           /* every byte before the FIN was handled */
} cm_reasm_ops;

typedef struct cm_seg cm_seg;

typedef struct cm_reasm {
    bool started;            /* next_seq is known (from the SYN, or settled from the first segments seen) */
    bool saw_syn;
    uint32_t next_seq;       /* sequence number of the next byte to deliver */
    bool fin_seen, fin_done;
    uint32_t fin_seq;        /* sequence number the FIN occupies */
    cm_seg *ooo;             /* waiting segments, sorted by seq */
    size_t ooo_bytes, ooo_count;
    size_t max_ooo_bytes;
    /* totals */
    uint64_t delivered;      /* bytes handed on */
    uint64_t retransmitted;  /* bytes seen again (dropped) */
    uint64_t gap_bytes;      /* bytes given up */
    uint32_t gaps;           /* holes reported */
    uint32_t segments;
} cm_reasm;

void cm_reasm_init(cm_reasm *r, size_t max_ooo_bytes);
void cm_reasm_free(cm_reasm *r);
/* A SYN with this sequence number: the first data byte is isn + 1. */
void cm_reasm_syn(cm_reasm *r, uint32_t isn);
/* One segment: seq, captured payload (len), and the payload length on the wire (wire_len >= len; bytes
 * cut by the snap length become a hole), and whether it carries FIN. */
void cm_reasm_segment(cm_reasm *r, uint32_t seq, const uint8_t *data, size_t len, size_t wire_len,
                      bool fin, double ts, const cm_reasm_ops *ops, void *ud);
/* A stream joined without a SYN starts at the lowest segment waiting: called when the other side
 * acknowledges that far (and by cm_reasm_age after a second, and at the end). */
void cm_reasm_settle(cm_reasm *r, double ts, const cm_reasm_ops *ops, void *ud);
/* Sequence number of the lowest waiting segment (next_seq when none waits). */
uint32_t cm_reasm_first_waiting(const cm_reasm *r);
/* The other side acknowledged everything before ack: a hole in front of waiting segments that the
 * peer already received will never be filled (the capture missed it), so it is given up now. */
void cm_reasm_ack(cm_reasm *r, uint32_t ack, double ts, const cm_reasm_ops *ops, void *ud);
/* Gives up a hole whose first waiting segment is older than max_wait seconds at time now; settles a
 * stream joined late whose first segment waited a second. */
void cm_reasm_age(cm_reasm *r, double now, double max_wait, const cm_reasm_ops *ops, void *ud);
/* No more segments will come: hands on whatever waits, reporting the holes in between. */
void cm_reasm_flush(cm_reasm *r, double ts, const cm_reasm_ops *ops, void *ud);
/* Bytes held in the out-of-order list. */
size_t cm_reasm_memory(const cm_reasm *r);

#endif
