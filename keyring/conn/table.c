/* sparkwire libkeyring: the connection table: identity (one entry for both directions), which side is
 * the device, following a connection, bounded size with eviction that spares protocol sessions, expiry. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "conn_int.h"

#define KR_LINGER 60.0       /* seconds an ended connection absorbs its late packets */

void kr_conn_options_default(kr_conn_options *o)
{
    memset(o, 0, sizeof *o);
    o->cloud_port = 5683;
    o->heuristic = true;
    o->strict = true;
    o->max_conns = 1024;
    o->max_waiting = 256 * 1024;
    o->hole_wait = 5.0;
    o->idle = 600.0;
}

static void put_end(uint8_t *o, const kr_endpoint *e)
{
    memcpy(o, e->ip, 16);
    o[16] = (uint8_t)(e->port >> 8);
    o[17] = (uint8_t)e->port;
}

void kr_conn_key_of(const kr_conn *c, uint8_t key[KR_CONN_KEY_LEN])
{
    uint8_t a[18], b[18];
    put_end(a, &c->dev);
    put_end(b, &c->cloud);
    key[0] = c->dev.family;
    bool a_first = memcmp(a, b, 18) <= 0;
    memcpy(key + 1, a_first ? a : b, 18);
    memcpy(key + 19, a_first ? b : a, 18);
}

kr_dir kr_conn_dir(const kr_conn *c, const kr_packet *p)
{
    return kr_end_equal(&p->src, &c->dev) ? KR_D2S : KR_S2D;
}

/* ---- tracker callbacks: the connection is the user pointer ---- */

static void on_step(void *ud, const kr_step *s)
{
    kr_conn *c = ud;
    if (s->kind != KR_STEP_DATA)
        c->steps++;
    if (c->tab->cb.step)
        c->tab->cb.step(c->tab->ud, c, s);
}

static void on_message(void *ud, const kr_message *m)
{
    kr_conn *c = ud;
    if (c->tab->cb.message)
        c->tab->cb.message(c->tab->ud, c, m);
}

static void on_finding(void *ud, const kr_finding *f)
{
    kr_conn *c = ud;
    if (c->tab->cb.finding)
        c->tab->cb.finding(c->tab->ud, c, f);
}

static void on_verdict(void *ud, const kr_verdict *v)
{
    kr_conn *c = ud;
    if (c->tab->cb.verdict)
        c->tab->cb.verdict(c->tab->ud, c, v);
}

static const kr_callbacks conn_tracker_cb = { on_step, on_message, on_finding, on_verdict };

void kr_conn_follow(kr_conn *c, double ts)
{
    if (c->state == KR_CS_FOLLOWED)
        return;
    c->state = KR_CS_FOLLOWED;
    c->tr = kr_tracker_new(c->tab->kf, &conn_tracker_cb, c);
    kr_tracker_set_cloud(c->tr, c->cloud.family, c->cloud.ip, c->cloud.port);
    c->tab->st.conns++;
    c->id = ++c->tab->next_id;
    if (c->tab->cb.open)
        c->tab->cb.open(c->tab->ud, c);
    if (c->saw_syn) {
        kr_tracker_open(c->tr, c->first);
        kr_conn_event(c, KR_TCP_EV_SYN, KR_D2S, c->first, 0, "the device connects");
    } else if (c->joined) {
        kr_conn_event(c, KR_TCP_EV_JOINED, KR_D2S, ts, 0, "no SYN: the capture joined the connection after its start");
    }
    if (c->saw_synack)
        kr_conn_event(c, KR_TCP_EV_SYNACK, KR_S2D, c->first, 0, "the cloud accepts");
}

/* ---- the table ---- */

kr_conn_table *kr_conn_table_new(const kr_keyfile *kf, const kr_conn_options *o, const kr_conn_callbacks *cb,
                                 void *ud)
{
    kr_conn_table *t = g_new0(kr_conn_table, 1);
    t->kf = kf;
    if (o)
        t->o = *o;
    else
        kr_conn_options_default(&t->o);
    if (!t->o.max_waiting)
        t->o.max_waiting = 256 * 1024;
    if (t->o.hole_wait <= 0)
        t->o.hole_wait = 5.0;
    if (t->o.idle <= 0)
        t->o.idle = 600.0;
    if (cb)
        t->cb = *cb;
    t->ud = ud;
    kr_map_init(&t->map);
    return t;
}

static KR_RARE void conn_free(kr_conn *c)
{
    for (int d = 0; d < 2; d++)
        kr_reasm_free(&c->rs[d]);
    g_free(c->pre);
    if (c->tr)
        kr_tracker_free(c->tr);
    free(c);
}

static KR_RARE void conn_remove(kr_conn_table *t, kr_conn *c, double ts, const char *reason)
{
    kr_conn_end_now(c, ts, reason);
    kr_map_remove(&t->map, c);
    conn_free(c);
}

void kr_conn_table_free(kr_conn_table *t)
{
    if (!t)
        return;
    kr_conn_finish(t, 0, "table freed");
    size_t pos = 0;
    for (kr_conn *c; (c = kr_map_next(&t->map, &pos));)
        conn_free(c);
    kr_map_free(&t->map);
    g_free(t);
}

/* Connections ended together end in a stable order, not the map's order: by their first packet, then
 * their number, then their addresses. */
static gint by_first(gconstpointer a, gconstpointer b)
{
    const kr_conn *x = *(kr_conn *const *)a, *y = *(kr_conn *const *)b;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    uint8_t kx[KR_CONN_KEY_LEN], ky[KR_CONN_KEY_LEN];
    kr_conn_key_of(x, kx);
    kr_conn_key_of(y, ky);
    return memcmp(kx, ky, KR_CONN_KEY_LEN);
}

/* Which connections go first when the table is full; -1: never for a new connection. */
static int evict_class(const kr_conn *c)
{
    switch (c->state) {
    case KR_CS_ENDED: return 0;
    case KR_CS_IGNORED: return 1;
    case KR_CS_UNDECIDED: return 2;
    default: break;
    }
    if (c->steps > 0)
        return -1;                           /* it carried protocol data */
    return c->stream_pos[0] + c->stream_pos[1] == 0 ? 3 : 4;
}

static KR_RARE bool make_room(kr_conn_table *t, double ts)
{
    if (!t->o.max_conns || t->map.n < t->o.max_conns)
        return true;
    kr_conn *victim = NULL;
    int vclass = 99;
    size_t pos = 0;
    for (kr_conn *c; (c = kr_map_next(&t->map, &pos));) {
        int cl = evict_class(c);
        /* the lowest class, then the longest silent, then the oldest (by_first): never the map's order */
        if (cl >= 0 && (cl < vclass || (cl == vclass && (c->last < victim->last ||
                                                          (c->last == victim->last && by_first(&c, &victim) < 0))))) {
            victim = c;
            vclass = cl;
        }
    }
    if (!victim) {
        t->st.untracked++;
        return false;
    }
    if (victim->state != KR_CS_ENDED)
        t->st.evicted++;
    conn_remove(t, victim, ts, "evicted (connection table full)");
    return true;
}

/* The earliest capture time at which c can be expired: open, after idle seconds of silence; ended, KR_LINGER
 * seconds after its last packet; ended by the frontend, never. Its last packet only moves later, and a
 * connection that ends tells the table then (kr_conn_due_at_least from kr_conn_end_now). */
static double due(const kr_conn_table *t, const kr_conn *c)
{
    if (c->state == KR_CS_ENDED)
        return c->held ? INFINITY : c->last + KR_LINGER;
    return c->last + t->o.idle;
}

void kr_conn_due_at_least(kr_conn_table *t, const kr_conn *c)
{
    double d = due(t, c);
    if (d < t->next_due)
        t->next_due = d;
}

/* A connection's allocation: whole cache lines */
#define CONN_BYTES ((sizeof(kr_conn) + KR_CONN_ALIGN - 1) / KR_CONN_ALIGN * KR_CONN_ALIGN)

static KR_RARE kr_conn *conn_new(kr_conn_table *t, const kr_packet *p, uint32_t hash, bool src_is_dev)
{
    if (!make_room(t, p->time))
        return NULL;
    kr_conn *c = aligned_alloc(KR_CONN_ALIGN, CONN_BYTES);
    if (!c)
        g_error("out of memory for a connection");
    memset(c, 0, sizeof *c);
    c->tab = t;
    c->dev = src_is_dev ? p->src : p->dst;
    c->cloud = src_is_dev ? p->dst : p->src;
    c->first = c->last = p->time;
    kr_conn_due_at_least(t, c);
    c->state = KR_CS_UNDECIDED;
    c->wscale[0] = c->wscale[1] = c->scale = -2;   /* not known until the SYNs are read */
    t->cur = c;                              /* made for the packet being handled */
    for (int d = 0; d < 2; d++)
        kr_reasm_init(&c->rs[d], &c->rare[d], t->o.max_waiting);
    kr_map_insert(&t->map, c, hash);
    t->live++;
    return c;
}

/* A packet of no followed connection: does it start one, and which side is the device? */
static KR_RARE kr_conn *start(kr_conn_table *t, const kr_packet *p, uint32_t hash)
{
    bool syn = p->flags & KR_TCP_SYN, ack = p->flags & KR_TCP_ACK, rst = p->flags & KR_TCP_RST;
    uint16_t cp = t->o.cloud_port;
    bool to_cloud = cp && p->dst.port == cp, from_cloud = cp && p->src.port == cp;
    if (rst)
        return NULL;
    if (syn) {
        /* the SYN sender is the device, the SYN-ACK sender the cloud */
        if (!(to_cloud || from_cloud) && ack)
            return NULL;                     /* other ports: from the SYN on (heuristic or claim) */
        kr_conn *c = conn_new(t, p, hash, !ack);
        if (c && (to_cloud || from_cloud))
            kr_conn_follow(c, p->time);
        return c;
    }
    if (!(to_cloud || from_cloud) || p->wire_len == 0)
        return NULL;                         /* joined late: only at a segment with data on the cloud port */
    kr_conn *c = conn_new(t, p, hash, to_cloud && !from_cloud);
    if (c) {
        c->joined = true;
        kr_conn_follow(c, p->time);
    }
    return c;
}

static void maybe_expire(kr_conn_table *t, double now);

kr_conn *kr_conn_packet(kr_conn_table *t, const kr_packet *p)
{
    t->st.packets++;
    maybe_expire(t, p->time);
    uint32_t hash = kr_map_hash(&t->map, &p->src, &p->dst);
    kr_dir dir = KR_D2S;
    kr_conn *c = kr_map_find(&t->map, &p->src, &p->dst, hash, &dir);
    bool new_syn = (p->flags & KR_TCP_SYN) && !(p->flags & KR_TCP_ACK);
    if (c && new_syn && c->state != KR_CS_ENDED &&
        (c->rs[0].any_delivered || c->rs[1].any_delivered || c->rs[0].ooo || c->rs[1].ooo ||
         (c->rs[KR_D2S].saw_syn && c->rare[KR_D2S].isn != p->seq))) {
        /* a new SYN on ports that carried a connection: a new one reuses them, the old one is over */
        conn_remove(t, c, p->time, "its ports were reused by a new connection");
        c = NULL;
    }
    if (c && c->state == KR_CS_ENDED) {
        if (!new_syn && (c->held || p->time - c->last < KR_LINGER)) {
            t->st.late++;                    /* a retransmission or a last ACK after the end */
            return NULL;
        }
        kr_map_remove(&t->map, c);
        conn_free(c);
        c = NULL;
    }
    if (!c) {
        if (!(c = start(t, p, hash))) {
            t->cur = NULL;
            return NULL;
        }
        dir = kr_conn_dir(c, p);
    }
    t->cur = c;
    kr_conn_handle(c, p, dir);
    t->cur = NULL;
    return c->state == KR_CS_FOLLOWED || (c->state == KR_CS_ENDED && c->id) ? c : NULL;
}

void kr_conn_prefetch(const kr_conn_table *t, const kr_endpoint *src, const kr_endpoint *dst)
{
    kr_dir dir;
    const kr_conn *c = kr_map_find(&t->map, src, dst, kr_map_hash(&t->map, src, dst), &dir);
    if (!c)
        return;
    /* its first line was read to find it; the other two, the tracker's and the frontend's record follow */
    __builtin_prefetch((const char *)c + KR_CONN_ALIGN);
    __builtin_prefetch((const char *)c + 2 * KR_CONN_ALIGN);
    kr_tracker_prefetch(c->tr);
    if (c->user)
        __builtin_prefetch(c->user);
}

kr_conn *kr_conn_claim(kr_conn_table *t, const kr_packet *p, const kr_endpoint *cloud)
{
    uint32_t hash = kr_map_hash(&t->map, &p->src, &p->dst);
    kr_dir dir;
    kr_conn *c = kr_map_find(&t->map, &p->src, &p->dst, hash, &dir);
    if (c && (c->state == KR_CS_ENDED || c->state == KR_CS_FOLLOWED))
        return c->id ? c : NULL;             /* followed already: its sides stay as they are */
    if (!c) {
        c = conn_new(t, p, hash, !kr_end_equal(&p->src, cloud));
        if (!c)
            return NULL;
        c->joined = true;
    } else if (c->state == KR_CS_IGNORED) {
        return NULL;                         /* its first bytes were not followed: nothing to say */
    }
    if (!kr_end_equal(&c->cloud, cloud)) {
        kr_endpoint d = c->dev;
        c->dev = c->cloud;
        c->cloud = d;
    }
    t->cur = c;
    kr_conn_follow(c, p->time);
    t->cur = NULL;
    return c;
}

/* ---- expiry and the end ---- */

static KR_RARE size_t expire(kr_conn_table *t, double now, bool all, const char *reason)
{
    GPtrArray *old = g_ptr_array_new();
    size_t pos = 0;
    t->next_due = INFINITY;
    for (kr_conn *c; (c = kr_map_next(&t->map, &pos));) {
        bool ended = c->state == KR_CS_ENDED;
        if ((all && !ended) || (ended && !c->held && now - c->last > KR_LINGER) ||
            (!ended && c->last < now - t->o.idle))
            g_ptr_array_add(old, c);
        else
            kr_conn_due_at_least(t, c);
    }
    g_ptr_array_sort(old, by_first);
    size_t n = 0;
    for (guint i = 0; i < old->len; i++) {
        kr_conn *c = g_ptr_array_index(old, i);
        if (c->state == KR_CS_ENDED) {
            kr_map_remove(&t->map, c);
            conn_free(c);
            continue;
        }
        n++;
        if (all) {
            kr_conn_end_now(c, now > c->last ? now : c->last, reason);
        } else {
            t->st.expired++;
            conn_remove(t, c, now, "idle timeout");   /* later packets start a new (joined) connection */
        }
    }
    g_ptr_array_free(old, TRUE);
    return n;
}

static void maybe_expire(kr_conn_table *t, double now)
{
    static const double every = 1.0;
    if (t->last_expire == 0 || now - t->last_expire >= every) {
        if (t->last_expire != 0 && now >= t->next_due)
            expire(t, now, false, NULL);   /* before next_due no connection can go: no scan */
        t->last_expire = now;
    }
}

size_t kr_conn_expire(kr_conn_table *t, double now)
{
    return now < t->next_due ? 0 : expire(t, now, false, NULL);   /* none can go yet: no scan */
}

void kr_conn_end(kr_conn_table *t, kr_conn *c, double now, const char *reason)
{
    if (c->tab == t && c->state != KR_CS_ENDED) {
        c->held = true;
        kr_conn_end_now(c, now > c->last ? now : c->last, reason);
    }
}

void kr_conn_finish(kr_conn_table *t, double now, const char *reason)
{
    expire(t, now, true, reason ? reason : "capture ended");
}

void kr_conn_untracked_text(size_t max_conns, char *out, size_t outlen)
{
    snprintf(out, outlen, "not followed: the table of %zu connections is full of connections that carry "
             "protocol data, which are never ended for a new one", max_conns);
}

void kr_conn_evicted_text(uint64_t n, size_t max_conns, char *out, size_t outlen)
{
    snprintf(out, outlen, "%llu connection%s without protocol data ended to make room: more than %zu open",
             (unsigned long long)n, n == 1 ? "" : "s", max_conns);
}

/* ---- accessors ---- */

const kr_conn_stats *kr_conn_table_stats(const kr_conn_table *t) { return &t->st; }
size_t kr_conn_live_count(const kr_conn_table *t) { return t->live; }
unsigned kr_conn_id(const kr_conn *c) { return c->id; }
const kr_endpoint *kr_conn_device(const kr_conn *c) { return &c->dev; }
const kr_endpoint *kr_conn_cloud(const kr_conn *c) { return &c->cloud; }
bool kr_conn_saw_syn(const kr_conn *c) { return c->saw_syn; }
bool kr_conn_in_packet(const kr_conn *c) { return c->tab->cur == c; }
kr_tracker *kr_conn_tracker(const kr_conn *c) { return c->tr; }
void kr_conn_set_user(kr_conn *c, void *user) { c->user = user; }
void *kr_conn_user(const kr_conn *c) { return c->user; }

kr_tracker *kr_conn_take_tracker(kr_conn *c)
{
    kr_tracker *tr = c->tr;
    c->tr = NULL;
    return tr;
}

size_t kr_conn_table_memory(const kr_conn_table *t)
{
    size_t n = sizeof *t + kr_map_memory(&t->map), pos = 0;
    for (const kr_conn *c; (c = kr_map_next(&t->map, &pos));) {
        n += CONN_BYTES + kr_reasm_memory(&c->rs[0]) + kr_reasm_memory(&c->rs[1]);
        if (c->tr)
            n += kr_tracker_memory(c->tr);
    }
    return n;
}
