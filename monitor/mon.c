/* cloudmon: connections, reassembly and the tracker, and the events they produce. */
#include "mon.h"

#include <stdlib.h>
#include <string.h>

#define KEY_LEN 37
#define CM_HOLE_WAIT 5.0   /* seconds a hole may wait for a retransmission before it is given up */

static void make_key(const cm_addr *a, const cm_addr *b, uint8_t key[KEY_LEN])
{
    uint8_t ea[18], eb[18];
    memcpy(ea, a->ip, 16);
    ea[16] = (uint8_t)(a->port >> 8);
    ea[17] = (uint8_t)a->port;
    memcpy(eb, b->ip, 16);
    eb[16] = (uint8_t)(b->port >> 8);
    eb[17] = (uint8_t)b->port;
    key[0] = a->family;
    if (memcmp(ea, eb, 18) <= 0) {
        memcpy(key + 1, ea, 18);
        memcpy(key + 19, eb, 18);
    } else {
        memcpy(key + 1, eb, 18);
        memcpy(key + 19, ea, 18);
    }
}

static guint key_hash(gconstpointer k)
{
    const uint8_t *p = k;
    guint h = 2166136261u;
    for (int i = 0; i < KEY_LEN; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static gboolean key_equal(gconstpointer a, gconstpointer b)
{
    return memcmp(a, b, KEY_LEN) == 0;
}

const char *cm_ev_type_str(cm_ev_type t)
{
    static const char *const names[] = { "step", "message", "finding", "verdict", "tcp", "end" };
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static void event_clear(gpointer p)
{
    cm_event *e = p;
    g_free(e->title);
    g_free(e->text);
}

static void add_event(cm_conn *c, cm_ev_type type, kr_dir dir, double time, uint32_t length, int kind,
                      const char *title, const char *text)
{
    c->mon->version++;
    if (c->events->len >= CM_MAX_EVENTS) {
        /* keep the opening (the handshake) and the newest: drop the oldest after the opening */
        g_array_remove_index(c->events, CM_KEEP_HEAD);
        c->events_dropped++;
    }
    cm_event e = { type, dir, time, length, kind, g_strdup(title ? title : ""),
                   g_strdup(text ? text : "") };
    g_array_append_val(c->events, e);
}

/* ---- tracker callbacks ---- */

/* Passes one event to every observer that takes it. */
#define NOTIFY(c, member, arg)                                                  \
    for (int i_ = 0; i_ < (c)->mon->n_obs; i_++)                                \
        if ((c)->mon->obs[i_].member)                                           \
            (c)->mon->obs[i_].member((c)->mon->obs[i_].ud, (c), (arg))

static void on_step(void *ud, const kr_step *s)
{
    cm_conn *c = ud;
    add_event(c, CM_EV_STEP, s->dir, s->time, s->length, s->kind, kr_step_title(s->kind, s->dir), s->note);
    NOTIFY(c, step, s);
}

static void on_message(void *ud, const kr_message *msg)
{
    cm_conn *c = ud;
    c->mon->st.messages++;
    add_event(c, CM_EV_MESSAGE, msg->dir, msg->time, 0, msg->kind, kr_msg_kind_str(msg->kind), msg->summary);
    NOTIFY(c, message, msg);
}

static void on_finding(void *ud, const kr_finding *f)
{
    cm_conn *c = ud;
    c->mon->st.findings++;
    add_event(c, CM_EV_FINDING, f->dir, f->time, 0, f->code, kr_finding_str(f->code), f->text);
    NOTIFY(c, finding, f);
}

static void on_verdict(void *ud, const kr_verdict *v)
{
    cm_conn *c = ud;
    c->verdict_changes++;
    if (v->final)
        c->final_reported = true;
    add_event(c, CM_EV_VERDICT, v->last_dir, v->time, 0, v->code, kr_verdict_str(v->code), v->evidence);
    NOTIFY(c, verdict, v);
}

static const kr_callbacks tracker_cb = { on_step, on_message, on_finding, on_verdict };

/* ---- reassembly callbacks: ud is the connection, the direction is passed through a small wrapper ---- */

typedef struct dir_ctx {
    cm_conn *c;
    kr_dir dir;
} dir_ctx;

static void rs_deliver(void *ud, const uint8_t *data, size_t len, double ts)
{
    dir_ctx *d = ud;
    kr_tracker_data(d->c->tr, d->dir, data, len, ts);
}

static void rs_gap(void *ud, uint64_t nbytes, double ts)
{
    dir_ctx *d = ud;
    kr_tracker_gap(d->c->tr, d->dir, nbytes, ts);
}

static void rs_fin(void *ud, double ts)
{
    dir_ctx *d = ud;
    d->c->closed[d->dir] = true;
    add_event(d->c, CM_EV_TCP, d->dir, ts, 0, 0, "FIN", d->dir == KR_D2S ? "the device closed" : "the cloud closed");
    kr_tracker_close(d->c->tr, d->dir, false, ts);
}

static const cm_reasm_ops rs_ops = { rs_deliver, rs_gap, rs_fin };

/* ---- connections ---- */

void cm_mon_init(cm_mon *m, const kr_keyfile *kf)
{
    memset(m, 0, sizeof *m);
    m->kf = kf;
    m->live = g_hash_table_new(key_hash, key_equal);
    m->closed = g_hash_table_new(key_hash, key_equal);
    m->conns = g_ptr_array_new();
    m->max_conns = 1024;
    m->max_history = 200;
    m->max_ooo = 256 * 1024;
    m->idle = 600;
    m->server_port = 5683;
    m->next_id = 1;
}

static void conn_free(cm_conn *c)
{
    if (c->lingering)
        g_hash_table_remove(c->mon->closed, c->key);
    cm_reasm_free(&c->rs[0]);
    cm_reasm_free(&c->rs[1]);
    if (c->tr)
        kr_tracker_free(c->tr);
    g_array_free(c->events, TRUE);
    g_free(c);
}

void cm_mon_free(cm_mon *m)
{
    for (guint i = 0; i < m->conns->len; i++)
        conn_free(g_ptr_array_index(m->conns, i));
    g_ptr_array_free(m->conns, TRUE);
    g_hash_table_destroy(m->live);
    g_hash_table_destroy(m->closed);
}

void cm_mon_observe(cm_mon *m, const cm_observer *o)
{
    if (m->n_obs < CM_MAX_OBSERVERS)
        m->obs[m->n_obs++] = *o;
}

size_t cm_mon_live_count(const cm_mon *m)
{
    return g_hash_table_size(m->live);
}

static void refresh(cm_conn *c)
{
    c->info = *kr_tracker_info(c->tr);
}

/* Drops the oldest ended connections beyond the history limit. */
static void trim_history(cm_mon *m)
{
    size_t ended = m->conns->len - g_hash_table_size(m->live);
    for (guint i = 0; ended > m->max_history && i < m->conns->len;) {
        cm_conn *c = g_ptr_array_index(m->conns, i);
        if (c->ended) {
            g_ptr_array_remove_index(m->conns, i);
            conn_free(c);
            ended--;
            m->version++;
        } else {
            i++;
        }
    }
}

static void conn_end(cm_conn *c, double ts, const char *reason, bool linger)
{
    if (c->ended)
        return;
    for (int d = 0; d < 2; d++) {
        dir_ctx dc = { c, (kr_dir)d };
        cm_reasm_flush(&c->rs[d], ts, &rs_ops, &dc);
        cm_reasm_free(&c->rs[d]);
    }
    kr_tracker_finish(c->tr, ts);
    if (!c->final_reported) {
        /* the verdict did not change at the end: say once that it is the final one */
        kr_verdict v = *kr_tracker_verdict(c->tr);
        v.final = true;
        if (v.time < c->last)
            v.time = ts;
        on_verdict(c, &v);
    }
    refresh(c);
    c->ended = true;
    g_strlcpy(c->end_reason, reason, sizeof c->end_reason);
    add_event(c, CM_EV_END, KR_D2S, ts, 0, 0, "end", reason);
    g_hash_table_remove(c->mon->live, c->key);
    if (linger) {
        cm_conn *old = g_hash_table_lookup(c->mon->closed, c->key);
        if (old)
            old->lingering = false;
        g_hash_table_replace(c->mon->closed, c->key, c);
        c->lingering = true;
    }
    for (int i = 0; i < c->mon->n_obs; i++)
        if (c->mon->obs[i].end)
            c->mon->obs[i].end(c->mon->obs[i].ud, c);     /* the one callback without an argument */
    c->mon->version++;
}

static void evict_one(cm_mon *m, double ts)
{
    cm_conn *oldest = NULL;
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, m->live);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        cm_conn *c = v;
        if (!oldest || c->last < oldest->last)
            oldest = c;
    }
    if (oldest) {
        m->st.evicted++;
        conn_end(oldest, ts, "evicted (connection table full)", false);
    }
}

static cm_conn *conn_new(cm_mon *m, const cm_pkt *p, const uint8_t *key, double ts)
{
    if (g_hash_table_size(m->live) >= m->max_conns)
        evict_one(m, ts);
    cm_conn *c = g_new0(cm_conn, 1);
    c->mon = m;
    c->id = m->next_id++;
    memcpy(c->key, key, KEY_LEN);
    bool src_is_client;
    if (p->flags & CM_TCP_SYN)
        src_is_client = !(p->flags & CM_TCP_ACK);
    else if (p->dst.port == m->server_port && p->src.port != m->server_port)
        src_is_client = true;
    else if (p->src.port == m->server_port && p->dst.port != m->server_port)
        src_is_client = false;
    else
        src_is_client = p->src.port > p->dst.port;
    c->client = src_is_client ? p->src : p->dst;
    c->server = src_is_client ? p->dst : p->src;
    c->first = c->last = ts;
    c->events = g_array_new(FALSE, FALSE, sizeof(cm_event));
    g_array_set_clear_func(c->events, event_clear);
    cm_reasm_init(&c->rs[0], m->max_ooo);
    cm_reasm_init(&c->rs[1], m->max_ooo);
    c->tr = kr_tracker_new(m->kf, &tracker_cb, c);
    if (p->flags & CM_TCP_SYN) {
        c->saw_syn = true;
        kr_tracker_open(c->tr, ts);
    }
    refresh(c);
    if (!(p->flags & CM_TCP_SYN))
        add_event(c, CM_EV_TCP, src_is_client ? KR_D2S : KR_S2D, ts, 0, 0, "joined",
                  "no SYN: the capture joined the connection after its start");
    g_hash_table_insert(m->live, c->key, c);
    g_ptr_array_add(m->conns, c);
    m->st.conns++;
    m->version++;
    return c;
}

void cm_mon_packet(cm_mon *m, double ts, cm_dec_result r, const cm_pkt *p)
{
    m->st.packets++;
    if (ts > m->now)
        m->now = ts;
    switch (r) {
    case CM_DEC_TCP: m->st.tcp++; break;
    case CM_DEC_FRAGMENT: m->st.fragments++; return;
    case CM_DEC_SHORT: m->st.short_pkts++; return;
    default: m->st.other++; return;
    }
    uint8_t key[KEY_LEN];
    make_key(&p->src, &p->dst, key);
    cm_conn *c = g_hash_table_lookup(m->live, key);
    if (c && (p->flags & CM_TCP_SYN) && !(p->flags & CM_TCP_ACK) &&
        (c->rs[0].delivered || c->rs[1].delivered || c->rs[0].ooo || c->rs[1].ooo)) {
        /* a SYN on ports that carried data: a new connection reuses them, the old one is over */
        conn_end(c, ts, "its ports were reused by a new connection", false);
        c = NULL;
    }
    if (!c) {
        cm_conn *gone = g_hash_table_lookup(m->closed, key);
        if (gone && !((p->flags & CM_TCP_SYN) && !(p->flags & CM_TCP_ACK)) && ts - gone->last < CM_LINGER) {
            /* a retransmission or a last ACK after the end: it belongs to the ended connection */
            gone->late_packets++;
            gone->packets++;
            gone->wire_bytes += p->payload_wire_len;
            return;
        }
        if (gone) {
            gone->lingering = false;
            g_hash_table_remove(m->closed, key);
        }
        /* a new connection starts with a SYN, or is joined late at a segment with data */
        if (!(p->flags & CM_TCP_SYN) && p->payload_wire_len == 0)
            return;
        if (p->flags & CM_TCP_RST)
            return;
        c = conn_new(m, p, key, ts);
    }
    kr_dir dir = cm_addr_equal(&p->src, &c->client) ? KR_D2S : KR_S2D;
    c->packets++;
    c->wire_bytes += p->payload_wire_len;
    if (ts > c->last)
        c->last = ts;
    m->version++;
    if (p->flags & CM_TCP_SYN) {
        if (!c->saw_syn && c->rs[dir].segments == 0 && c->rs[!dir].segments == 0) {
            c->saw_syn = true;
            kr_tracker_open(c->tr, ts);
        }
        if (!c->rs[dir].saw_syn)
            add_event(c, CM_EV_TCP, dir, ts, 0, 0, (p->flags & CM_TCP_ACK) ? "SYN-ACK" : "SYN",
                      dir == KR_D2S ? "the device connects" : "the cloud accepts");
        cm_reasm_syn(&c->rs[dir], p->seq);
    }
    /* what the sender had received before it sent this segment comes first */
    if (!c->rs[!dir].started && c->rs[!dir].ooo &&
        (!(p->flags & CM_TCP_ACK) || (int32_t)(p->ack - cm_reasm_first_waiting(&c->rs[!dir])) >= 0)) {
        /* the peer expects no byte before the lowest one waiting: the stream joined late starts there */
        dir_ctx sc = { c, (kr_dir)!dir };
        cm_reasm_settle(&c->rs[!dir], ts, &rs_ops, &sc);
    }
    if ((p->flags & CM_TCP_ACK) && c->rs[!dir].ooo) {
        dir_ctx oc = { c, (kr_dir)!dir };
        cm_reasm_ack(&c->rs[!dir], p->ack, ts, &rs_ops, &oc);
    }
    dir_ctx dc = { c, dir };
    uint32_t seq = p->seq + ((p->flags & CM_TCP_SYN) ? 1u : 0u);
    if (p->payload_wire_len > 0 || (p->flags & CM_TCP_FIN))
        cm_reasm_segment(&c->rs[dir], seq, p->payload, p->payload_len, p->payload_wire_len,
                         (p->flags & CM_TCP_FIN) != 0, ts, &rs_ops, &dc);
    for (int d = 0; d < 2; d++)
        if (c->rs[d].ooo) {
            dir_ctx ac = { c, (kr_dir)d };
            cm_reasm_age(&c->rs[d], ts, CM_HOLE_WAIT, &rs_ops, &ac);
        }
    if ((p->flags & CM_TCP_RST) && dir == KR_S2D && c->saw_syn && c->rs[KR_D2S].saw_syn &&
        !c->rs[KR_S2D].saw_syn && c->rs[KR_D2S].segments == 0 && c->rs[KR_S2D].segments == 0) {
        /* an RST answers the SYN and no SYN-ACK was seen: the connection was refused */
        add_event(c, CM_EV_TCP, dir, ts, 0, 0, "RST", "the connection was refused (no SYN-ACK)");
        kr_tracker_refused(c->tr, ts);
        conn_end(c, ts, "refused: an RST answered the SYN", true);
    } else if (p->flags & CM_TCP_RST) {
        /* the sender drops the connection: what is still missing will not come */
        cm_reasm_flush(&c->rs[dir], ts, &rs_ops, &dc);
        add_event(c, CM_EV_TCP, dir, ts, 0, 0, "RST", dir == KR_D2S ? "the device reset" : "the cloud reset");
        kr_tracker_close(c->tr, dir, true, ts);
        conn_end(c, ts, dir == KR_D2S ? "reset by the device" : "reset by the cloud", true);
    } else if (c->closed[0] && c->closed[1]) {
        conn_end(c, ts, "closed by both sides", true);
    } else {
        refresh(c);
    }
    trim_history(m);
}

void cm_mon_expire(cm_mon *m, double now)
{
    GPtrArray *old = g_ptr_array_new();
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, m->live);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        cm_conn *c = v;
        if (c->last < now - m->idle)
            g_ptr_array_add(old, c);
    }
    g_hash_table_iter_init(&it, m->closed);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        cm_conn *c = v;
        if (c->last < now - CM_LINGER) {
            c->lingering = false;
            g_hash_table_iter_remove(&it);
        }
    }
    for (guint i = 0; i < old->len; i++) {
        m->st.expired++;
        conn_end(g_ptr_array_index(old, i), now, "idle timeout", false);
    }
    g_ptr_array_free(old, TRUE);
    trim_history(m);
}

void cm_mon_finish(cm_mon *m, double now, const char *reason)
{
    for (guint i = 0; i < m->conns->len; i++) {
        cm_conn *c = g_ptr_array_index(m->conns, i);
        if (!c->ended)
            conn_end(c, now > c->last ? now : c->last, reason, false);
    }
}
