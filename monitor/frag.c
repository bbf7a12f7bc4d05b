/* cloudmon: IPv4 and IPv6 fragment reassembly. */
#include "frag.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KEY_LEN 38                       /* family, source, destination, identification, protocol */
#define MAX_PAYLOAD 65535u

typedef struct piece {
    struct piece *next;                  /* sorted by offset */
    size_t off, len;
    uint8_t data[];
} piece;

typedef struct dgram {
    uint8_t key[KEY_LEN];
    double first;                        /* time of its first fragment */
    bool poisoned;                       /* dropped: later fragments are ignored until it times out */
    bool has_last;
    size_t total;                        /* payload length, known from the last fragment */
    uint8_t hdr[60];                     /* IPv4: the first fragment's header */
    size_t hdr_len;
    piece *pieces;
    unsigned n_pieces;
    size_t bytes;                        /* held for it, bookkeeping included */
    GList *link;                         /* in the order queue */
} dgram;

/* The identification spreads the datagrams; the low address bytes tell hosts with the same one apart. */
static guint key_hash(gconstpointer k)
{
    const uint8_t *b = k;
    uint32_t id, src, dst;
    memcpy(&id, b + 33, 4);
    size_t low = b[0] == 4 ? 0 : 12;    /* IPv4 addresses are the first 4 of the 16 bytes */
    memcpy(&src, b + 1 + low, 4);
    memcpy(&dst, b + 17 + low, 4);
    return (id * 2654435761u) ^ src ^ (dst << 7 | dst >> 25) ^ b[37];
}

static gboolean key_equal(gconstpointer a, gconstpointer b)
{
    return memcmp(a, b, KEY_LEN) == 0;
}

static void make_key(const cm_pkt *p, uint8_t *k)
{
    memset(k, 0, KEY_LEN);
    k[0] = p->src.family;
    memcpy(k + 1, p->src.ip, 16);
    memcpy(k + 17, p->dst.ip, 16);
    memcpy(k + 33, &p->frag.id, 4);
    k[37] = p->frag.proto;
}

void cm_frag_init(cm_frag *f, size_t max_bytes, size_t max_datagrams, double timeout)
{
    memset(f, 0, offsetof(cm_frag, out));
    f->table = g_hash_table_new(key_hash, key_equal);
    g_queue_init(&f->order);
    f->max_bytes = max_bytes ? max_bytes : CM_FRAG_MAX_BYTES;
    f->max_datagrams = max_datagrams ? max_datagrams : CM_FRAG_MAX_DATAGRAMS;
    f->timeout = timeout > 0 ? timeout : CM_FRAG_TIMEOUT;
}

static void free_pieces(cm_frag *f, dgram *d)
{
    while (d->pieces) {
        piece *n = d->pieces->next;
        free(d->pieces);
        d->pieces = n;
    }
    f->bytes -= d->bytes - sizeof *d;
    d->bytes = sizeof *d;
    d->n_pieces = 0;
}

static void remove_dgram(cm_frag *f, dgram *d)
{
    free_pieces(f, d);
    f->bytes -= d->bytes;
    g_hash_table_remove(f->table, d->key);
    g_queue_delete_link(&f->order, d->link);
    free(d);
}

/* Drops a datagram counted under *why; a poisoned one is only forgotten. */
static void drop_dgram(cm_frag *f, dgram *d, uint64_t *why)
{
    if (!d->poisoned && why)
        (*why)++;
    remove_dgram(f, d);
}

/* Keeps the datagram's key so that its later fragments are ignored, frees what it held. */
static void poison(cm_frag *f, dgram *d, uint64_t *why)
{
    if (!d->poisoned)
        (*why)++;
    d->poisoned = true;
    free_pieces(f, d);
}

void cm_frag_free(cm_frag *f)
{
    dgram *d;
    while ((d = g_queue_peek_head(&f->order)))
        remove_dgram(f, d);
    if (f->table)
        g_hash_table_destroy(f->table);
    f->table = NULL;
}

void cm_frag_expire(cm_frag *f, double now)
{
    dgram *d;
    while ((d = g_queue_peek_head(&f->order)) && (isinf(now) || now - d->first > f->timeout))
        drop_dgram(f, d, &f->st.timeout);
}

uint64_t cm_frag_dropped(const cm_frag *f)
{
    return f->st.overlap + f->st.limit + f->st.timeout + f->st.cut;
}

static dgram *find_or_add(cm_frag *f, double ts, const cm_pkt *p)
{
    uint8_t key[KEY_LEN];
    make_key(p, key);
    dgram *d = g_hash_table_lookup(f->table, key);
    if (d)
        return d;
    while (f->order.length >= f->max_datagrams)
        drop_dgram(f, g_queue_peek_head(&f->order), &f->st.limit);
    d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    memcpy(d->key, key, KEY_LEN);
    d->first = ts;
    d->bytes = sizeof *d;
    f->bytes += d->bytes;
    g_hash_table_insert(f->table, d->key, d);
    g_queue_push_tail(&f->order, d);
    d->link = f->order.tail;
    return d;
}

/* Compares the new bytes with every piece they overlap. Returns -1 when they differ somewhere, 1 when
 * one piece already holds all of them, 0 otherwise. */
static int check_overlap(const dgram *d, size_t off, const uint8_t *data, size_t len)
{
    for (const piece *q = d->pieces; q && q->off < off + len; q = q->next) {
        size_t lo = q->off > off ? q->off : off;
        size_t hi = q->off + q->len < off + len ? q->off + q->len : off + len;
        if (lo >= hi)
            continue;
        if (memcmp(q->data + (lo - q->off), data + (lo - off), hi - lo) != 0)
            return -1;
        if (lo == off && hi == off + len)
            return 1;
    }
    return 0;
}

static void insert_piece(cm_frag *f, dgram *d, piece *n)
{
    piece **at = &d->pieces;
    while (*at && (*at)->off <= n->off)
        at = &(*at)->next;
    n->next = *at;
    *at = n;
    d->n_pieces++;
    d->bytes += sizeof *n + n->len;
    f->bytes += sizeof *n + n->len;
}

/* The payload is whole when the pieces cover 0..total without a hole. */
static bool complete(const dgram *d)
{
    if (!d->has_last)
        return false;
    size_t end = 0;
    for (const piece *q = d->pieces; q; q = q->next) {
        if (q->off > end)
            return false;
        if (q->off + q->len > end)
            end = q->off + q->len;
    }
    return end == d->total;
}

/* Writes the whole datagram into f->out with an IP header that says so. Returns its length. */
static size_t assemble(cm_frag *f, const dgram *d)
{
    uint8_t *o = f->out;
    size_t h;
    if (d->key[0] == 4) {
        h = d->hdr_len;
        memcpy(o, d->hdr, h);
        o[2] = (uint8_t)((h + d->total) >> 8);
        o[3] = (uint8_t)(h + d->total);
        o[6] = o[7] = 0;                 /* no longer a fragment */
        o[10] = o[11] = 0;
        uint16_t c = cm_inet_fold(cm_inet_sum(o, h, 0));
        o[10] = (uint8_t)(c >> 8);
        o[11] = (uint8_t)c;
    } else {
        h = 40;
        memset(o, 0, 40);
        o[0] = 0x60;
        o[4] = (uint8_t)(d->total >> 8);
        o[5] = (uint8_t)d->total;
        o[6] = d->key[37];
        o[7] = 64;
        memcpy(o + 8, d->key + 1, 32);
    }
    for (const piece *q = d->pieces; q; q = q->next)
        memcpy(o + h + q->off, q->data, q->len);
    return h + d->total;
}

/* Checks the fragment against what the datagram already holds; returns false when it poisoned it. */
static bool fits(cm_frag *f, dgram *d, const cm_ipfrag *fr, int *dup)
{
    size_t end = fr->offset + fr->len;
    bool clash = (!fr->more && d->has_last && d->total != end) || (d->has_last && end > d->total);
    if (!fr->more && !clash)
        for (const piece *q = d->pieces; q; q = q->next)
            clash |= q->off + q->len > end;
    *dup = clash ? 0 : check_overlap(d, fr->offset, fr->data, fr->len);
    if (clash || *dup < 0) {
        poison(f, d, &f->st.overlap);
        return false;
    }
    if (d->n_pieces >= CM_FRAG_MAX_PIECES) {
        poison(f, d, &f->st.limit);
        return false;
    }
    return true;
}

/* A fragment no datagram can hold: beyond the largest IP packet, or a middle one not a multiple of 8. */
static bool bad_fragment(const cm_ipfrag *fr)
{
    return fr->offset + fr->len + fr->hdr_len > MAX_PAYLOAD || (fr->more && (fr->len == 0 || fr->len % 8));
}

cm_dec_result cm_frag_add(cm_frag *f, double ts, cm_pkt *p)
{
    const cm_ipfrag *fr = &p->frag;
    f->st.fragments++;
    cm_frag_expire(f, ts);
    if (bad_fragment(fr)) {
        f->st.bad++;
        return CM_DEC_FRAGMENT;
    }
    dgram *d = find_or_add(f, ts, p);
    if (!d || d->poisoned)
        return CM_DEC_FRAGMENT;
    if (fr->cut) {
        poison(f, d, &f->st.cut);
        return CM_DEC_FRAGMENT;
    }
    int dup;
    if (!fits(f, d, fr, &dup) || dup)
        return CM_DEC_FRAGMENT;
    piece *n = malloc(sizeof *n + fr->len);
    if (!n)
        return CM_DEC_FRAGMENT;
    n->off = fr->offset;
    n->len = fr->len;
    memcpy(n->data, fr->data, fr->len);
    insert_piece(f, d, n);
    if (!fr->more) {
        d->has_last = true;
        d->total = fr->offset + fr->len;
    }
    if (fr->offset == 0 && fr->hdr) {
        memcpy(d->hdr, fr->hdr, fr->hdr_len);
        d->hdr_len = fr->hdr_len;
    }
    /* over the byte limit: the oldest datagrams go first, this one too when it alone is too big */
    bool gone = false;
    while (f->bytes > f->max_bytes) {
        dgram *old = g_queue_peek_head(&f->order);
        gone |= old == d;
        drop_dgram(f, old, &f->st.limit);
    }
    if (gone || !complete(d))
        return CM_DEC_FRAGMENT;
    size_t len = assemble(f, d);
    remove_dgram(f, d);
    f->st.reassembled++;
    cm_dec_result r = cm_decode_ip(f->out, len, p);
    p->reassembled = true;
    return r == CM_DEC_FRAGMENT ? CM_DEC_OTHER : r;
}
