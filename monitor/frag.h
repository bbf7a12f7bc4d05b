/* cloudmon: IPv4 and IPv6 fragment reassembly, bounded. Fragments of a TCP datagram are held until the
 * datagram is whole, then it is decoded like any packet. Bounded in bytes held, datagrams in progress and
 * time (the oldest datagram goes first). Overlaps are safe: a fragment that repeats bytes already held is
 * taken when the bytes agree; when they differ the whole datagram is dropped (no copy can be trusted over
 * the other), and its later fragments are ignored until it times out. */
#ifndef CLOUDMON_FRAG_H
#define CLOUDMON_FRAG_H

#include <glib.h>
#include "decode.h"

#define CM_FRAG_MAX_BYTES (4u << 20)     /* fragment bytes held (with bookkeeping), as Linux's default */
#define CM_FRAG_MAX_DATAGRAMS 1024u     /* datagrams in progress */
#define CM_FRAG_TIMEOUT 30.0            /* seconds from a datagram's first fragment, as Linux's default */
#define CM_FRAG_MAX_PIECES 1024u        /* fragments per datagram */

typedef struct cm_frag_stats {
    uint64_t fragments;      /* fragments taken */
    uint64_t reassembled;    /* datagrams made whole */
    uint64_t overlap;        /* datagrams dropped: fragments gave different bytes for the same place */
    uint64_t limit;          /* datagrams dropped to stay within the limits */
    uint64_t timeout;        /* datagrams dropped incomplete (timed out, or the capture ended) */
    uint64_t cut;            /* datagrams dropped: the snapshot length cut a fragment */
    uint64_t bad;            /* fragments that cannot be part of a datagram (beyond 65,535 bytes, odd sizes) */
} cm_frag_stats;

typedef struct cm_frag {
    GHashTable *table;       /* key -> datagram */
    GQueue order;            /* datagrams, oldest first */
    size_t bytes;            /* held, bookkeeping included */
    size_t max_bytes, max_datagrams;
    double timeout;
    cm_frag_stats st;
    uint8_t out[40 + 65535]; /* the datagram made whole last */
} cm_frag;

/* Limits of 0 take the defaults above. */
void cm_frag_init(cm_frag *f, size_t max_bytes, size_t max_datagrams, double timeout);
void cm_frag_free(cm_frag *f);
/* One fragment (cm_decode returned CM_DEC_FRAGMENT for p) seen at ts. When it completes its datagram,
 * p is rewritten with the decoded datagram (payload inside f, valid until the next call; reassembled set)
 * and the decode result returned; otherwise CM_DEC_FRAGMENT (held or dropped: the counters say which). */
cm_dec_result cm_frag_add(cm_frag *f, double ts, cm_pkt *p);
/* Drops datagrams whose first fragment came before now - timeout. */
void cm_frag_expire(cm_frag *f, double now);
/* Datagrams dropped so far, for any reason. */
uint64_t cm_frag_dropped(const cm_frag *f);

#endif
