/* cloudmon: the model of the screen and outputs. Packets go to libkeyring's connection layer; what it
 * reports becomes events of the connection it concerns, and is passed on to the observers. */
#include "mon.h"

#include <stdlib.h>
#include <string.h>

const char *cm_ev_type_str(cm_ev_type t)
{
    static const char *const names[] = { "step", "message", "finding", "verdict", "tcp", "end" };
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static void event_clear(gpointer p)
{
    cm_event *e = p;
    g_free(e->text);
}

/* Keeps an event of c for the screen and the report (the caller has counted the change). */
static void add_event(cm_conn *c, cm_ev_type type, kr_dir dir, double time, uint32_t length, int kind,
                      const char *title, const char *text)
{
    if (c->events->len >= CM_MAX_EVENTS) {
        /* keep the opening (the handshake) and the newest: drop the oldest after the opening */
        g_array_remove_index(c->events, CM_KEEP_HEAD);
        c->events_dropped++;
    }
    cm_event e = { type, dir, time, length, kind, title ? title : "", g_strdup(text ? text : "") };
    g_array_append_val(c->events, e);
}

/* Passes one event of c to every observer that takes it (set: m's of_MEMBER). */
#define NOTIFY(m, member, c, arg)                                                   \
    for (int k_ = 0; k_ < (m)->of_##member.n; k_++)                                 \
        (m)->obs[(m)->of_##member.i[k_]].member((m)->obs[(m)->of_##member.i[k_]].ud, (c), (arg))

const kr_conn_info *cm_conn_info(const cm_conn *c)
{
    static _Thread_local kr_conn_info now;
    if (!c->tr && c->given)
        return c->given;
    kr_tracker_fill_info(c->tr, &now);
    return &now;
}

/* ---- the connection layer's callbacks ---- */

static void on_open(void *ud, kr_conn *kc)
{
    cm_mon *m = ud;
    cm_conn *c = g_new0(cm_conn, 1);
    c->mon = m;
    c->kc = kc;
    c->tr = kr_conn_tracker(kc);
    c->id = kr_conn_id(kc);
    const kr_endpoint *d = kr_conn_device(kc), *s = kr_conn_cloud(kc);
    c->client.family = d->family;
    memcpy(c->client.ip, d->ip, 16);
    c->client.port = d->port;
    c->server.family = s->family;
    memcpy(c->server.ip, s->ip, 16);
    c->server.port = s->port;
    c->first = c->last = m->now;
    c->end_reason = "";
    if (m->keep_events) {    /* only the screen and the report read them */
        c->events = g_array_new(FALSE, FALSE, sizeof(cm_event));
        g_array_set_clear_func(c->events, event_clear);
    }
    kr_conn_set_user(kc, c);
    if (m->budget)
        kr_tracker_set_budget(c->tr, m->budget, d->ip);
    if (!m->texts)
        kr_tracker_set_texts(c->tr, false);
    g_ptr_array_add(m->conns, c);
    m->version++;
}

static void on_step(void *ud, kr_conn *kc, const kr_step *s)
{
    cm_mon *m = ud;
    if (s->supersedes && m->st.findings > 0)
        m->st.findings--;        /* a frame read again: the finding of its first reading no longer stands */
    m->version++;
    if (!m->keep_events && !m->of_step.n)
        return;                  /* nobody reads it: the connection's record stays untouched */
    cm_conn *c = kr_conn_user(kc);
    if (m->keep_events)
        add_event(c, CM_EV_STEP, s->dir, s->time, s->length, s->kind, kr_step_title(s->kind, s->dir), s->note);
    NOTIFY(m, step, c, s);
}

static void on_message(void *ud, kr_conn *kc, const kr_message *msg)
{
    cm_mon *m = ud;
    m->st.messages++;
    m->version++;
    if (!m->keep_events && !m->of_message.n)
        return;
    cm_conn *c = kr_conn_user(kc);
    if (m->keep_events)
        add_event(c, CM_EV_MESSAGE, msg->dir, msg->time, 0, msg->kind, kr_msg_kind_str(msg->kind), msg->summary);
    NOTIFY(m, message, c, msg);
}

static void on_finding(void *ud, kr_conn *kc, const kr_finding *f)
{
    cm_mon *m = ud;
    cm_conn *c = kr_conn_user(kc);
    m->st.findings++;
    m->version++;
    if (m->keep_events)
        add_event(c, CM_EV_FINDING, f->dir, f->time, 0, f->code, kr_finding_str(f->code), f->text);
    NOTIFY(m, finding, c, f);
}

static void on_verdict(void *ud, kr_conn *kc, const kr_verdict *v)
{
    cm_mon *m = ud;
    cm_conn *c = kr_conn_user(kc);
    m->version++;
    if (m->keep_events)
        add_event(c, CM_EV_VERDICT, v->last_dir, v->time, 0, v->code, kr_verdict_str(v->code), v->evidence);
    NOTIFY(m, verdict, c, v);
}

static void on_tcp(void *ud, kr_conn *kc, const kr_tcp_event *e)
{
    cm_mon *m = ud;
    cm_conn *c = kr_conn_user(kc);
    if (e->kind == KR_TCP_EV_SYN)
        c->saw_syn = true;
    if (e->kind == KR_TCP_EV_GAP || e->kind == KR_TCP_EV_RETRANSMITTED)
        return;                  /* the tracker reports gaps as findings; retransmissions are not news */
    m->version++;
    if (m->keep_events)
        add_event(c, CM_EV_TCP, e->dir, e->time, 0, (int)e->kind, kr_tcp_kind_str(e->kind), e->text);
}

static void conn_free(cm_conn *c)
{
    if (c->tr)
        kr_tracker_free(c->tr);
    if (c->events)
        g_array_free(c->events, TRUE);
    g_free(c);
}

/* Drops the oldest ended connections beyond the history limit, in one pass over the list. */
static void trim_now(cm_mon *m)
{
    size_t drop = m->n_ended - m->max_history;
    guint kept = 0, i = 0;
    for (; drop && i < m->conns->len; i++) {
        cm_conn *c = g_ptr_array_index(m->conns, i);
        if (c->ended) {
            conn_free(c);
            drop--;
            m->n_ended--;
            m->version++;
        } else {
            m->conns->pdata[kept++] = c;
        }
    }
    guint rest = m->conns->len - i;
    memmove(m->conns->pdata + kept, m->conns->pdata + i, rest * sizeof(gpointer));
    g_ptr_array_set_size(m->conns, kept + rest);
}

static inline void trim_history(cm_mon *m)
{
    if (m->n_ended > m->max_history)
        trim_now(m);
}

static void on_end(void *ud, kr_conn *kc, const char *reason)
{
    cm_mon *m = ud;
    cm_conn *c = kr_conn_user(kc);
    c->tr = kr_conn_take_tracker(kc);        /* the history keeps it */
    c->kc = NULL;
    c->ended = true;
    m->n_ended++;
    c->end_reason = g_intern_string(reason);   /* a handful of distinct words, kept once */
    m->version++;
    if (m->keep_events)
        add_event(c, CM_EV_END, KR_D2S, c->last, 0, 0, "end", reason);
    for (int k = 0; k < m->of_end.n; k++)
        m->obs[m->of_end.i[k]].end(m->obs[m->of_end.i[k]].ud, c);
    m->version++;
    /* many ending at once (the capture's end, an idle sweep): the history is trimmed as they end, so
     * what the observers make of them reuses the memory of those dropped, not new memory (never while
     * a packet of this connection is handled: cm_mon_packet still reads it) */
    size_t batch = m->conns->len / 64 > 1024 ? m->conns->len / 64 : 1024;
    if (m->n_ended > m->max_history + batch && !kr_conn_in_packet(kc))
        trim_history(m);
}

static const kr_conn_callbacks conn_cb = {
    .open = on_open, .step = on_step, .message = on_message, .finding = on_finding,
    .verdict = on_verdict, .tcp = on_tcp, .end = on_end,
};

/* ---- the model ---- */

void cm_mon_init(cm_mon *m, const kr_keyfile *kf)
{
    memset(m, 0, sizeof *m);
    m->kf = kf;
    m->conns = g_ptr_array_new();
    m->max_conns = 1024;
    m->max_history = 200;
    m->max_ooo = 256 * 1024;
    m->idle = 600;
    m->server_port = 5683;
    m->next_id = 1;
    m->keep_events = true;
    m->texts = true;
}

static kr_conn_table *table(cm_mon *m)
{
    if (!m->tab) {
        kr_conn_options o;
        kr_conn_options_default(&o);
        o.cloud_port = m->server_port;
        o.max_conns = m->max_conns;
        o.max_waiting = m->max_ooo;
        o.idle = m->idle;
        m->tab = kr_conn_table_new(m->kf, &o, &conn_cb, m);
        m->tab_st = kr_conn_table_stats(m->tab);
    }
    return m->tab;
}

static void sync_stats(cm_mon *m)
{
    const kr_conn_stats *s = m->tab_st;
    m->st.conns = s->conns;
    m->st.evicted = s->evicted;
    m->st.expired = s->expired;
    m->st.untracked = s->untracked;
    m->st.late = s->late;
    m->st.rst_ignored = s->rst_ignored;
}

void cm_mon_free(cm_mon *m)
{
    if (m->tab) {
        kr_conn_finish(m->tab, m->now, "capture ended");
        kr_conn_table_free(m->tab);
    }
    for (guint i = 0; i < m->conns->len; i++) {
        conn_free(g_ptr_array_index(m->conns, i));
    }
    g_ptr_array_free(m->conns, TRUE);
}

void cm_mon_observe(cm_mon *m, const cm_observer *o)
{
    if (m->n_obs >= CM_MAX_OBSERVERS)
        return;
    uint8_t i = (uint8_t)m->n_obs++;
    m->obs[i] = *o;
    if (o->step)
        m->of_step.i[m->of_step.n++] = i;
    if (o->message)
        m->of_message.i[m->of_message.n++] = i;
    if (o->finding)
        m->of_finding.i[m->of_finding.n++] = i;
    if (o->verdict)
        m->of_verdict.i[m->of_verdict.n++] = i;
    if (o->end)
        m->of_end.i[m->of_end.n++] = i;
}

size_t cm_mon_live_count(const cm_mon *m)
{
    return m->conns->len - m->n_ended;
}

void cm_mon_packet(cm_mon *m, double ts, cm_dec_result r, const cm_pkt *p)
{
    m->st.packets++;
    if (ts > m->now)
        m->now = ts;
    if (r != CM_DEC_TCP) {
        switch (r) {
        case CM_DEC_FRAGMENT: m->st.fragments++; return;
        case CM_DEC_SHORT: m->st.short_pkts++; return;
        default: m->st.other++; return;
        }
    }
    m->st.tcp++;
    /* the layer judges the IP length itself (as for the plugin): what the header claims, unless the snap
     * length cut the frame, when the decoder knows how much was on the wire. The checksum is libkeyring's
     * (kr_tcp_checksum, as the plugin computes it too), the window scale option a SYN's. */
    size_t claimed = p->claimed_len > p->payload_len ? p->claimed_len : p->payload_len;
    cm_csum csum = cm_pkt_csum(p);
    kr_packet kp = { .seq = p->seq, .ack = p->ack, .flags = p->flags, .window = p->window,
                     .payload = p->payload, .captured_len = p->payload_len,
                     .wire_len = p->cut ? p->payload_wire_len : claimed, .cut = p->cut,
                     .checksum = csum == CM_CSUM_OK ? KR_CSUM_GOOD
                                 : csum == CM_CSUM_BAD ? KR_CSUM_BAD : KR_CSUM_UNKNOWN,
                     .options_known = true, .wscale = p->wscale, .time = ts };
    kp.src = p->src;             /* cm_addr is the layer's kr_endpoint */
    kp.dst = p->dst;
    kr_conn *kc = kr_conn_packet(table(m), &kp);
    cm_conn *c = kc ? kr_conn_user(kc) : NULL;
    if (c) {
        c->packets++;
        c->wire_bytes += p->payload_wire_len;
        if (ts > c->last)
            c->last = ts;
        m->version++;
    }
    sync_stats(m);
    trim_history(m);
}

void cm_mon_expire(cm_mon *m, double now)
{
    if (!m->tab)
        return;
    kr_conn_expire(m->tab, now);
    sync_stats(m);
    trim_history(m);
}

void cm_mon_finish(cm_mon *m, double now, const char *reason)
{
    if (!m->tab)
        return;
    kr_conn_finish(m->tab, now, reason);
    sync_stats(m);
    trim_history(m);
}
