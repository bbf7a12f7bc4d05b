/* sparkwire Wireshark plugin: each TCP frame, as Wireshark's TCP dissector read it (raw sequence and
 * acknowledgement numbers, flags, window, the payload's captured bytes and its length on the wire,
 * whether the capture cut the frame, the header's bytes for the checksum and the window scale option),
 * becomes one kr_packet for libkeyring's connection layer. The layer follows the connections and reports back; this file ties each report to
 * the frame being handled and passes it to the dissector's hooks. */
#include <string.h>

#include <epan/packet.h>
#include <epan/prefs.h>
#include <epan/proto.h>

#include "compat.h"
#include "spark-conn.h"

static kr_conn_table *spark_tab;
static spark_conn_hooks spark_hooks;
static packet_info *cur_pinfo;       /* the frame being handled */
static const guint8 *cur_payload;    /* its payload bytes and where they are in its tvb */
static gint cur_payload_offset;
static double last_time;
static guint spark_max_conns;        /* the table's bound (spark.max_conns) */

static int hf_seq = -1, hf_ack = -1, hf_flags = -1, hf_win = -1, hf_len = -1, hf_payload = -1, hf_sport = -1,
           hf_hdr_len = -1;

static double ts_of(const nstime_t *t)
{
    return (double)t->secs + (double)t->nsecs / 1e9;
}

/* The frame its callbacks go to, then the dissector's hooks. */
static void *bound(kr_conn *kc)
{
    void *conv = kr_conn_user(kc);
    if (conv && spark_hooks.bind)
        spark_hooks.bind(conv, kr_conn_in_packet(kc) ? cur_pinfo : NULL);
    return conv;
}

static void on_open(void *ud, kr_conn *kc)
{
    (void)ud;
    kr_conn_set_user(kc, spark_hooks.open(kc));
    bound(kc);               /* the connection's first record: where its end is shown if nothing else is */
}

static void on_step(void *ud, kr_conn *kc, const kr_step *s)
{
    (void)ud;
    spark_hooks.tracker->step(bound(kc), s);
}

static void on_message(void *ud, kr_conn *kc, const kr_message *m)
{
    (void)ud;
    spark_hooks.tracker->message(bound(kc), m);
}

static void on_finding(void *ud, kr_conn *kc, const kr_finding *f)
{
    (void)ud;
    spark_hooks.tracker->finding(bound(kc), f);
}

static void on_verdict(void *ud, kr_conn *kc, const kr_verdict *v)
{
    (void)ud;
    spark_hooks.tracker->verdict(bound(kc), v);
}

static void on_tcp(void *ud, kr_conn *kc, const kr_tcp_event *e)
{
    (void)ud;
    spark_hooks.tcp(kr_conn_user(kc), kr_conn_in_packet(kc) ? cur_pinfo : NULL, e);
}

static void on_data(void *ud, kr_conn *kc, kr_dir dir, uint64_t offset, const uint8_t *bytes, size_t len,
                    bool from_packet)
{
    (void)ud;
    gint at = -1;
    if (from_packet && cur_payload && cur_payload_offset >= 0 && bytes >= cur_payload)
        at = cur_payload_offset + (gint)(bytes - cur_payload);
    spark_hooks.data(bound(kc), dir, offset, bytes, len, at);
}

static void on_end(void *ud, kr_conn *kc, const char *reason)
{
    (void)ud;
    (void)reason;
    spark_hooks.end(bound(kc));
}

static const kr_conn_callbacks spark_conn_cb = {
    .open = on_open, .step = on_step, .message = on_message, .finding = on_finding,
    .verdict = on_verdict, .tcp = on_tcp, .data = on_data, .end = on_end,
};

/* The first port of the Spark port preference (5683 unless changed). */
static guint16 cloud_port(void)
{
    range_t *r = prefs_get_range_value("spark", "tcp.port");
    if (r && r->nranges > 0)
        return (guint16)r->ranges[0].low;
    return 5683;
}

void spark_conn_start(const kr_keyfile *kf, const spark_conn_hooks *hooks, gboolean heuristic, gboolean strict,
                      guint max_conns)
{
    kr_conn_options o;
    spark_conn_stop();
    kr_conn_options_default(&o);
    o.cloud_port = cloud_port();
    o.heuristic = heuristic;
    o.strict = strict;
    o.max_conns = max_conns;  /* 0: unbounded; else the layer's eviction, as cloudmon's --max-conns */
    spark_max_conns = max_conns;
    spark_hooks = *hooks;
    spark_tab = kr_conn_table_new(kf, &o, &spark_conn_cb, NULL);
    last_time = 0;
}

void spark_conn_stop(void)
{
    if (spark_tab) {
        cur_pinfo = NULL;
        kr_conn_table_free(spark_tab);
        spark_tab = NULL;
    }
}

/* ---- a frame's TCP facts ---- */

static field_info *last_field(proto_tree *tree, int hf)
{
    GPtrArray *a;
    if (!tree || hf <= 0)
        return NULL;
    a = proto_get_finfo_ptr_array(tree, hf);
    return (a && a->len > 0) ? (field_info *)g_ptr_array_index(a, a->len - 1) : NULL;
}

static guint32 field_uint(proto_tree *tree, int hf, gboolean *ok)
{
    field_info *fi = last_field(tree, hf);
    if (!fi) {
        *ok = FALSE;
        return 0;
    }
    return spark_field_uint(fi);
}

static gboolean endpoint(const address *a, guint32 port, kr_endpoint *e)
{
    memset(e, 0, sizeof *e);
    e->port = (uint16_t)port;
    if (a->type == AT_IPv4 && a->len == 4) {
        e->family = 4;
        memcpy(e->ip, a->data, 4);
        return TRUE;
    }
    if (a->type == AT_IPv6 && a->len == 16) {
        e->family = 6;
        memcpy(e->ip, a->data, 16);
        return TRUE;
    }
    return FALSE;
}

/* The TCP header's bytes as captured (where the source port field starts): libkeyring reads the window
 * scale option of a SYN and the checksum of the whole segment from them, as it does for cloudmon
 * (Wireshark does not verify checksums by default). */
static void header_facts(proto_tree *tree, kr_packet *p)
{
    gboolean ok = TRUE;
    field_info *fi = last_field(tree, hf_sport);
    guint32 hl = field_uint(tree, hf_hdr_len, &ok);
    gint have;
    const guint8 *h;
    p->options_known = TRUE;
    p->wscale = -1;
    if (!fi || !fi->ds_tvb || !ok || hl < 20 || hl > 60)
        return;
    have = tvb_captured_length_remaining(fi->ds_tvb, fi->start);
    if (have < (gint)hl)
        return;
    if (p->flags & KR_TCP_SYN)
        p->wscale = (int8_t)kr_tcp_wscale(tvb_get_ptr(fi->ds_tvb, fi->start, (gint)hl), hl);
    /* the whole segment, when the capture holds it and its IP length is believed */
    if (p->cut || p->wire_len != p->captured_len || (size_t)have < hl + p->wire_len)
        return;
    h = tvb_get_ptr(fi->ds_tvb, fi->start, (gint)(hl + p->wire_len));
    p->checksum = kr_tcp_checksum(&p->src, &p->dst, h, hl + p->wire_len);
}

/* Fills p from the frame's TCP fields; FALSE when the frame is not a TCP segment the layer can take. */
static gboolean packet_of(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, kr_packet *p)
{
    gboolean ok = TRUE;
    field_info *pfi;
    memset(p, 0, sizeof *p);
    if (pinfo->ptype != PT_TCP || !endpoint(&pinfo->src, pinfo->srcport, &p->src) ||
        !endpoint(&pinfo->dst, pinfo->destport, &p->dst))
        return FALSE;
    p->seq = field_uint(tree, hf_seq, &ok);
    p->ack = field_uint(tree, hf_ack, &ok);
    p->flags = (uint8_t)field_uint(tree, hf_flags, &ok);
    p->wire_len = field_uint(tree, hf_len, &ok);
    if (!ok)
        return FALSE;
    p->window = field_uint(tree, hf_win, &ok);
    ok = TRUE;
    p->time = ts_of(&pinfo->abs_ts);
    p->cut = pinfo->fd->cap_len < pinfo->fd->pkt_len;
    cur_payload = NULL;
    cur_payload_offset = 0;
    pfi = last_field(tree, hf_payload);
    if (pfi && pfi->ds_tvb && pfi->length > 0) {
        /* the payload lies in the frame, or in a data source of its own (IP fragments reassembled) */
        gint have = tvb_captured_length_remaining(pfi->ds_tvb, pfi->start);
        gint n = have < pfi->length ? have : pfi->length;
        if (n > 0) {
            cur_payload = tvb_get_ptr(pfi->ds_tvb, pfi->start, n);
            cur_payload_offset = pfi->ds_tvb == tvb ? pfi->start : -1;
            p->payload = cur_payload;
            p->captured_len = (size_t)n;
        }
    }
    if (p->captured_len > p->wire_len)
        p->wire_len = p->captured_len;
    header_facts(tree, p);
    return TRUE;
}

void spark_conn_frame(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree)
{
    kr_packet p;
    kr_conn *kc;
    const kr_conn_stats *st;
    guint64 evicted, untracked;
    if (!spark_tab || !packet_of(tvb, pinfo, tree, &p))
        return;
    cur_pinfo = pinfo;
    last_time = p.time > last_time ? p.time : last_time;
    st = kr_conn_table_stats(spark_tab);
    evicted = st->evicted;
    untracked = st->untracked;
    kc = kr_conn_packet(spark_tab, &p);
    if ((st->evicted != evicted || st->untracked != untracked) && spark_hooks.table_full)
        spark_hooks.table_full(pinfo, (guint)(st->evicted - evicted), st->untracked != untracked,
                               spark_max_conns);
    if (kc && kr_conn_user(kc) && spark_hooks.done)
        spark_hooks.done(bound(kc));
    cur_pinfo = NULL;
    cur_payload = NULL;
}

void spark_conn_claim(packet_info *pinfo, gboolean server_is_src)
{
    kr_packet p;
    kr_endpoint cloud;
    if (!spark_tab || pinfo->ptype != PT_TCP || !endpoint(&pinfo->src, pinfo->srcport, &p.src) ||
        !endpoint(&pinfo->dst, pinfo->destport, &p.dst))
        return;
    p.time = ts_of(&pinfo->abs_ts);
    cloud = server_is_src ? p.src : p.dst;
    cur_pinfo = pinfo;
    kr_conn_claim(spark_tab, &p, &cloud);
    cur_pinfo = NULL;
}

void spark_conn_finish(void)
{
    if (spark_tab)
        kr_conn_finish(spark_tab, last_time, "capture ended");
}

void spark_conn_want(GArray *wanted)
{
    static const char *const names[] = { "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.window_size_value",
                                         "tcp.len", "tcp.payload", "tcp.srcport", "tcp.hdr_len" };
    int *ids[] = { &hf_seq, &hf_ack, &hf_flags, &hf_win, &hf_len, &hf_payload, &hf_sport, &hf_hdr_len };
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        *ids[i] = proto_registrar_get_id_byname(names[i]);
        if (*ids[i] > 0)
            g_array_append_val(wanted, *ids[i]);
    }
}
