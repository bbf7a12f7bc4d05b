/* sparkwire libkeyring: the connection layer's internal state (see keyring/conn.h). */
#ifndef KEYRING_CONN_INT_H
#define KEYRING_CONN_INT_H

#include <glib.h>
#include <stddef.h>
#include <string.h>
#include "keyring/conn.h"

/* What a connection does once or seldom (its start and end, SYN, RST, events, holes): out of the way of the
 * code every segment runs, so that code stays compact in the instruction cache. */
#define KR_RARE __attribute__((cold))

/* ---- one direction's byte stream (reasm.c) ---- */

typedef struct kr_seg kr_seg;

typedef struct kr_reasm_ops {
    void (*deliver)(void *ud, const uint8_t *data, size_t len, double ts, bool from_packet);
    void (*gap)(void *ud, uint64_t nbytes, double ts);
    void (*fin)(void *ud, double ts);      /* every byte before the FIN was handled */
    /* another copy of len bytes handed on before, the first of them `back` bytes before the next one */
    void (*copy)(void *ud, const uint8_t *data, size_t len, uint32_t back, int rank, double ts);
} kr_reasm_ops;

/* What only some segments of a direction read (waiting segments, the FIN, bad checksums), apart from its
 * stream's half line. */
typedef struct kr_reasm_rare {
    uint32_t max_ooo_bytes;  /* KR_REASM_MAX_WAITING at most */
    uint32_t ooo_bytes;      /* bytes waiting: at most max_ooo_bytes and one segment */
    uint32_t isn;            /* saw_syn */
    uint32_t fin_seq;        /* fin_seen */
    uint32_t bad_seq, bad_end;   /* have_bad: the last bytes handed on from segments whose checksum is bad */
} kr_reasm_rare;

typedef struct kr_reasm {   /* half a cache line: a segment reads its direction's and the other's */
    kr_seg *ooo;             /* waiting segments, sorted by seq */
    kr_reasm_rare *rare;
    uint32_t retransmitted;  /* bytes seen before and not handed on again, modulo 2^32 */
    uint32_t next_seq;       /* sequence number of the next byte to hand on */
    uint32_t max_end;        /* highest sequence number + length seen in this direction (have_max) */
    bool have_bad : 1;
    bool started : 1;        /* next_seq is known (ISN+1 from the SYN, or settled from the first segments) */
    bool saw_syn : 1;
    bool have_max : 1;
    bool fin_seen : 1, fin_done : 1;
    bool any_segment : 1;    /* a segment was seen */
    bool any_delivered : 1;  /* a byte was handed on */
} kr_reasm;

#define KR_REASM_MAX_WAITING (1u << 30)   /* bytes waiting per direction, whatever the option asks */

/* rare: r's own, for as long as r is used */
void kr_reasm_init(kr_reasm *r, kr_reasm_rare *rare, size_t max_ooo_bytes);
void kr_reasm_free(kr_reasm *r);
void kr_reasm_syn(kr_reasm *r, uint32_t isn);
/* Returns the number of new bytes (beyond everything seen in this direction) the segment carries. */
/* bad: the segment's checksum is known to be bad (its bytes are taken, but a copy that checks wins). */
uint32_t kr_reasm_segment(kr_reasm *r, uint32_t seq, const uint8_t *data, size_t len, size_t wire_len, bool fin,
                          bool bad, double ts, const kr_reasm_ops *ops, void *ud);
void kr_reasm_settle(kr_reasm *r, double ts, const kr_reasm_ops *ops, void *ud);
uint32_t kr_reasm_first_waiting(const kr_reasm *r);
void kr_reasm_ack(kr_reasm *r, uint32_t ack, double ts, const kr_reasm_ops *ops, void *ud);
void kr_reasm_age(kr_reasm *r, double now, double max_wait, const kr_reasm_ops *ops, void *ud);
void kr_reasm_flush(kr_reasm *r, double ts, const kr_reasm_ops *ops, void *ud);
size_t kr_reasm_memory(const kr_reasm *r);
/* The sequence number the sender would use next (for RST checks); false when nothing is known. */
bool kr_reasm_snd_nxt(const kr_reasm *r, uint32_t *out);

static inline int32_t kr_seq_diff(uint32_t a, uint32_t b) { return (int32_t)(a - b); }

/* ---- one connection ---- */

typedef enum kr_conn_state {
    KR_CS_UNDECIDED = 0,     /* other port, SYN seen: waiting for the cloud's first bytes */
    KR_CS_FOLLOWED,          /* the protocol's: a tracker is fed */
    KR_CS_IGNORED,           /* decided not to be the protocol's */
    KR_CS_ENDED              /* ended; kept a while so late packets are not taken for a new connection */
} kr_conn_state;

#define KR_CONN_KEY_LEN 37
#define KR_CONN_PRE_MAX 40   /* bytes of an undecided connection's cloud stream held for the heuristic */

/* A million open connections each hold one, allocated on a cache line's boundary: the first line holds what
 * a lookup compares and the flags every segment reads, the second what every segment reads and writes, the
 * third both directions' streams; what only some segments read comes last. */
struct kr_conn {
    kr_endpoint dev, cloud;
    uint32_t hash;           /* of its ends (kr_map_hash), in its table's map */
    uint32_t steps;          /* protocol PDUs seen: such a connection is never evicted for a new one */
    uint8_t state;           /* kr_conn_state */
    int8_t wscale[2];        /* each sender's window scale option in its SYN: -1 none, -2 not known */
    int8_t scale;            /* what both SYNs say of window scaling (tcp.c, scale_state): 0 in force, -1 not,
                                -2 not known */
    bool saw_syn, saw_synack, joined;
    bool have_ack[2];        /* ack_of[d] is set */
    bool closed[2];
    bool rst_pending;        /* rst_dir, rst_time: an RST is pending */
    bool held;               /* ended by the frontend (kr_conn_end): its later packets stay its own */
    uint8_t pre_len;         /* bytes in pre */
    uint8_t rst_dir;         /* kr_dir */
    kr_conn_table *tab;      /* the second line */
    kr_tracker *tr;
    void *user;
    double last;
    uint32_t window[2];      /* last window advertised by the receiver of each direction (scaled when the
                                scale is known) */
    uint32_t ack_of[2];      /* last acknowledgement the receiver of each direction sent */
    uint64_t stream_pos[2];  /* bytes of each direction handed to the tracker, gaps included */
    kr_reasm rs[2];          /* the third line */
    kr_reasm_rare rare[2];   /* rs[d].rare */
    double rst_time;         /* an accepted RST waiting to see whether the connection survives it */
    double first;
    uint8_t *pre;            /* undecided: the first bytes of the cloud stream (KR_CONN_PRE_MAX), made at need */
    unsigned id;
};

#define KR_CONN_ALIGN 64
_Static_assert(offsetof(kr_conn, tab) == KR_CONN_ALIGN && offsetof(kr_conn, rs) == 2 * KR_CONN_ALIGN &&
               sizeof(kr_reasm) == KR_CONN_ALIGN / 2, "kr_conn: the lines as laid out");

/* The connection's key: its address family, then its two ends (address, port) in byte order, so that both
 * directions of a connection have the same (table.c; the order of connections ended together). */
void kr_conn_key_of(const kr_conn *c, uint8_t key[KR_CONN_KEY_LEN]);

static inline bool kr_end_equal(const kr_endpoint *a, const kr_endpoint *b)
{
    return a->port == b->port && a->family == b->family && memcmp(a->ip, b->ip, 16) == 0;
}

/* Whether x and y are c's two ends, in either order; *dir: KR_D2S when x is the device's. */
static inline bool kr_conn_has_ends(const kr_conn *c, const kr_endpoint *x, const kr_endpoint *y, kr_dir *dir)
{
    if (kr_end_equal(x, &c->dev)) {
        *dir = KR_D2S;
        return kr_end_equal(y, &c->cloud);
    }
    *dir = KR_S2D;
    return kr_end_equal(x, &c->cloud) && kr_end_equal(y, &c->dev);
}

/* connmap.c: two ends -> connection (live and ended-lingering) */
typedef struct kr_map_slot {
    kr_conn *c;              /* NULL: empty */
    uint32_t hash;           /* kr_map_hash of c's ends */
} kr_map_slot;

typedef struct kr_conn_map {
    kr_map_slot *slot;       /* mask + 1 slots, a power of two */
    size_t mask, n;
    uint64_t seed;
} kr_conn_map;

void kr_map_init(kr_conn_map *m);
void kr_map_free(kr_conn_map *m);

/* The hash of a connection's ends, the same in both directions, seeded per map (every packet's lookup: here
 * to be inlined). */
static inline uint64_t kr_map_mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 31);
}

static inline uint32_t kr_map_finish(uint64_t h)
{
    h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ull;
    return (uint32_t)(h ^ (h >> 32));
}

/* IPv6 ends, or a family other than IPv4 (connmap.c) */
uint32_t kr_map_hash6(const kr_conn_map *m, const kr_endpoint *x, const kr_endpoint *y);

static inline uint32_t kr_map_hash(const kr_conn_map *m, const kr_endpoint *x, const kr_endpoint *y)
{
    if (x->family == 4 && y->family == 4) {
        /* an IPv4 end is 48 bits (address, port): the smaller one first, for both directions */
        uint32_t xa, ya;
        memcpy(&xa, x->ip, 4);
        memcpy(&ya, y->ip, 4);
        uint64_t ex = (uint64_t)xa << 16 | x->port, ey = (uint64_t)ya << 16 | y->port;
        uint64_t lo = ex < ey ? ex : ey, hi = ex ^ ey ^ lo;
        return kr_map_finish(kr_map_mix(kr_map_mix(m->seed, lo), hi));
    }
    return kr_map_hash6(m, x, y);
}

/* The connection whose ends are x and y (h: kr_map_hash of them), or NULL; *dir: KR_D2S when x is its
 * device's end. */
static inline kr_conn *kr_map_find(const kr_conn_map *m, const kr_endpoint *x, const kr_endpoint *y, uint32_t h,
                                   kr_dir *dir)
{
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const kr_map_slot *s = &m->slot[i];
        if (!s->c)
            return NULL;
        if (s->hash == h && kr_conn_has_ends(s->c, x, y, dir))
            return s->c;
    }
}

/* c, hashed to h, whose ends no connection in the map has */
void kr_map_insert(kr_conn_map *m, kr_conn *c, uint32_t h);
void kr_map_remove(kr_conn_map *m, const kr_conn *c);
/* The next connection from slot *pos on (start at 0), NULL after the last; not while entries are removed. */
kr_conn *kr_map_next(const kr_conn_map *m, size_t *pos);
/* The most slots a lookup of a connection in the map reads. */
size_t kr_map_longest_probe(const kr_conn_map *m);
size_t kr_map_memory(const kr_conn_map *m);

struct kr_conn_table {
    const kr_keyfile *kf;
    kr_conn_options o;
    kr_conn_callbacks cb;
    void *ud;
    kr_conn_map map;         /* ends -> kr_conn* (live and ended-lingering) */
    unsigned next_id;
    const kr_conn *cur;      /* the connection of the packet being handled (kr_conn_in_packet) */
    size_t live;
    double last_expire;
    double next_due;         /* no connection can expire before this capture time (expire's scan sets it,
                                each new connection lowers it): the scans between are skipped */
    kr_conn_stats st;
};

/* table.c: no connection is expired before t->next_due; a connection made or ended lowers it to its own */
void kr_conn_due_at_least(kr_conn_table *t, const kr_conn *c);

/* tcp.c */
/* p is c's, sent from dir's sender */
void kr_conn_handle(kr_conn *c, const kr_packet *p, kr_dir dir);
KR_RARE void kr_conn_event(kr_conn *c, kr_tcp_kind kind, kr_dir dir, double ts, uint64_t n, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Ends the connection: flushes both streams, commits a pending RST, finishes the tracker, calls end. */
KR_RARE void kr_conn_end_now(kr_conn *c, double ts, const char *reason);
KR_RARE void kr_conn_follow(kr_conn *c, double ts);
extern const kr_reasm_ops kr_conn_rs_ops[2];

#endif
