/* sparkwire Wireshark plugin: each TCP segment, read from its own bytes as IP hands it to Wireshark's TCP
 * dissector (addresses, ports, raw sequence and acknowledgement numbers, flags, window, the payload's
 * captured bytes and its length on the wire, whether the capture cut the frame, the checksum and the window
 * scale option), becomes one kr_packet for libkeyring's connection layer. The layer follows the connections
 * and reports back; this file ties each report to the frame being handled and passes it to the dissector's
 * hooks. */
#include <string.h>

#include <epan/packet.h>
#include <epan/prefs.h>
#include <epan/proto.h>
#include <epan/ipproto.h>

#include "compat.h"
#include "spark-conn.h"

static kr_conn_table *spark_tab;
static spark_conn_hooks spark_hooks;
static packet_info *cur_pinfo;       /* the frame being handled */
static const guint8 *cur_payload;    /* its payload bytes and where they are in its tvb */
static gint cur_payload_offset;
static double last_time;
static guint spark_max_conns;        /* the table's bound (spark.max_conns) */
static guint16 spark_cloud_port;     /* the layer's cloud port (0: none) */

/* The TCP segment of the frame being dissected, noted before TCP reads it (see tcp_seen) */
typedef struct spark_seg {
    guint32 frame;           /* the frame noted (0: none); the last segment of a frame that holds several */
    kr_packet p;
    tvbuff_t *ds;            /* the data source holding the segment, and where its payload starts there */
    gint payload_offset;
} spark_seg;
static spark_seg seg;

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

static SPARK_RARE void on_open(void *ud, kr_conn *kc)
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

static SPARK_RARE void on_finding(void *ud, kr_conn *kc, const kr_finding *f)
{
    (void)ud;
    spark_hooks.tracker->finding(bound(kc), f);
}

static SPARK_RARE void on_verdict(void *ud, kr_conn *kc, const kr_verdict *v)
{
    (void)ud;
    spark_hooks.tracker->verdict(bound(kc), v);
}

static SPARK_RARE void on_tcp(void *ud, kr_conn *kc, const kr_tcp_event *e)
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

static SPARK_RARE void on_end(void *ud, kr_conn *kc, const char *reason)
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
    o.cloud_port = spark_cloud_port = cloud_port();
    o.heuristic = heuristic;
    o.strict = strict;
    o.max_conns = max_conns;  /* 0: unbounded; else the layer's eviction, as cloudmon's --max-conns */
    spark_max_conns = max_conns;
    spark_hooks = *hooks;
    spark_tab = kr_conn_table_new(kf, &o, &spark_conn_cb, NULL);
    last_time = 0;
    seg.frame = 0;
}

void spark_conn_stop(void)
{
    if (spark_tab) {
        cur_pinfo = NULL;
        kr_conn_table_free(spark_tab);
        spark_tab = NULL;
    }
}

/* ---- a frame's TCP segment ---- */

/* Wireshark's IP dissectors hand TCP segments to TCP through the "ip.proto" table. The plugin's entry there
 * (spark_conn_hook_tcp) notes each segment's header facts from its bytes, then calls TCP unchanged; the
 * postdissector hands the noted segment to the layer. Reading the header's bytes, rather than TCP's fields,
 * spares every frame a protocol tree when nothing else asks for one (tshark builds none for a summary). */
static dissector_handle_t tcp_handle;

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

/* The checksum of the whole segment (bytes: its header and payload as captured), read by libkeyring as for
 * cloudmon (Wireshark does not verify checksums by default), when the capture holds it and its IP length is
 * believed. */
static void segment_checksum(const guint8 *bytes, guint cap, guint hl, kr_packet *p)
{
    if (p->cut || p->wire_len != p->captured_len || cap < hl + p->wire_len)
        return;
    p->checksum = kr_tcp_checksum(&p->src, &p->dst, bytes, hl + p->wire_len);
}

/* Notes the segment TCP is about to read (tvb: its header and payload, as IP hands them on), its header read
 * by libkeyring's one reader. A header TCP rejects (shorter than 20 bytes, or longer than the segment) gives
 * no segment length: not noted. */
static void note_segment(tvbuff_t *tvb, packet_info *pinfo)
{
    kr_packet *p = &seg.p;
    guint cap = tvb_captured_length(tvb), rep = tvb_reported_length(tvb), hl, n;
    const guint8 *bytes;
    kr_tcp_hdr h;

    seg.frame = 0;
    if (cap < 20)
        return;
    bytes = tvb_get_ptr(tvb, 0, (gint)cap);     /* the segment as captured: header, then payload */
    if (!kr_tcp_header(bytes, MIN(cap, 60), rep, &h))
        return;
    hl = (guint)h.len;
    memset(p, 0, sizeof *p);
    if (!endpoint(&pinfo->src, h.sport, &p->src) || !endpoint(&pinfo->dst, h.dport, &p->dst))
        return;
    p->seq = h.seq;
    p->ack = h.ack;
    p->flags = h.flags;
    p->window = h.window;
    p->wscale = h.wscale;
    p->options_known = TRUE;
    p->wire_len = rep - hl;
    p->time = ts_of(&pinfo->abs_ts);
    p->cut = pinfo->fd->cap_len < pinfo->fd->pkt_len;
    n = cap > hl ? MIN(cap - hl, rep - hl) : 0;
    if (n > 0) {
        p->payload = bytes + hl;
        p->captured_len = n;
    }
    segment_checksum(bytes, cap, hl, p);
    seg.ds = tvb_get_ds_tvb(tvb);
    seg.payload_offset = tvb_raw_offset(tvb) + (gint)hl;
    seg.frame = pinfo->num;
}

/* The plugin's "ip.proto" entry for TCP: note the segment on the first pass (not the copy of a header an
 * ICMP error quotes), then TCP as ever. */
static int tcp_seen(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    int n;
    if (spark_tab && !PINFO_FD_VISITED(pinfo) && !pinfo->flags.in_error_pkt) {
        note_segment(tvb, pinfo);
        if (seg.frame == pinfo->num)     /* its connection's state comes into the cache while TCP works */
            kr_conn_prefetch(spark_tab, &seg.p.src, &seg.p.dst);
    }
    n = call_dissector_only(tcp_handle, tvb, pinfo, tree, data);
    if (n == 0 && seg.frame == pinfo->num)
        seg.frame = 0;       /* TCP is disabled: the frame holds no TCP segment */
    return n;
}

void spark_conn_hook_tcp(void)
{
    tcp_handle = find_dissector("tcp");
    if (tcp_handle)
        dissector_add_uint("ip.proto", IP_PROTO_TCP,
                           create_dissector_handle_with_name_and_description(tcp_seen, -1, "spark_tcp_seen",
                                                                             "TCP (segments noted by Spark)"));
}

/* The table's counts before a packet or a claim, and what changed after it: connections it ended to make
 * room, or the frame's new connection not followed (the table full), said on the frame. */
typedef struct spark_room {
    guint64 evicted, untracked;
} spark_room;

static spark_room room_before(void)
{
    const kr_conn_stats *st = kr_conn_table_stats(spark_tab);
    spark_room r = { st->evicted, st->untracked };
    return r;
}

static void room_after(packet_info *pinfo, spark_room r)
{
    const kr_conn_stats *st = kr_conn_table_stats(spark_tab);
    if ((st->evicted != r.evicted || st->untracked != r.untracked) && spark_hooks.table_full)
        spark_hooks.table_full(pinfo, (guint)(st->evicted - r.evicted), st->untracked != r.untracked,
                               spark_max_conns);
}

void spark_conn_frame(tvbuff_t *tvb, packet_info *pinfo)
{
    kr_packet *p = &seg.p;
    kr_conn *kc;
    spark_room room;
    if (!spark_tab || seg.frame != pinfo->num || pinfo->ptype != PT_TCP)
        return;
    seg.frame = 0;
    cur_pinfo = pinfo;
    cur_payload = p->payload;
    cur_payload_offset = seg.ds == tvb ? seg.payload_offset : -1;
    last_time = p->time > last_time ? p->time : last_time;
    room = room_before();
    kc = kr_conn_packet(spark_tab, p);
    room_after(pinfo, room);
    if (kc && kr_conn_user(kc) && spark_hooks.done)
        spark_hooks.done(bound(kc));
    cur_pinfo = NULL;
    cur_payload = NULL;
}

void spark_conn_claim(packet_info *pinfo, gboolean server_is_src)
{
    kr_packet p;
    kr_endpoint cloud;
    spark_room room;
    guint32 cport = server_is_src ? pinfo->srcport : pinfo->destport;
    guint32 dport = server_is_src ? pinfo->destport : pinfo->srcport;
    if (spark_cloud_port && cport == spark_cloud_port && dport != spark_cloud_port && seg.frame == pinfo->num &&
        !(seg.p.flags & KR_TCP_SYN))
        return;              /* the layer follows it from its port, with the same cloud: nothing to add */
    if (!spark_tab || pinfo->ptype != PT_TCP || !endpoint(&pinfo->src, pinfo->srcport, &p.src) ||
        !endpoint(&pinfo->dst, pinfo->destport, &p.dst))
        return;
    p.time = ts_of(&pinfo->abs_ts);
    cloud = server_is_src ? p.src : p.dst;
    cur_pinfo = pinfo;
    room = room_before();
    kr_conn_claim(spark_tab, &p, &cloud);
    room_after(pinfo, room);
    cur_pinfo = NULL;
}

void spark_conn_finish(void)
{
    if (spark_tab)
        kr_conn_finish(spark_tab, last_time, "capture ended");
}
