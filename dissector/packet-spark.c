/* sparkwire Wireshark plugin: the Spark Core / Particle device-cloud protocol on TCP 5683.
 *
 * Glue only. libkeyring's tracker (keyring/tracker.h) splits the two byte streams of a connection into
 * handshake steps and frames, opens what the keys allow, decrypts the session and names a verdict.
 * This file holds the dissectors and the TCP side: it feeds the tracker the new, in-order bytes of each
 * TCP segment, once, on the first pass. spark-record.c keeps what the tracker reports against the frame
 * that completed it, spark-render.c shows those records on every pass, spark-fields.c registers the
 * fields, spark-keys.c the keys and preferences.
 * A postdissector sees every frame of a Spark connection (also the ones without payload) to tell the
 * tracker about FIN and RST.
 */
#include <string.h>

#include <epan/packet.h>
#include <epan/conversation.h>
#include <epan/proto_data.h>
#include <epan/to_str.h>
#include <epan/dissectors/packet-tcp.h>

#include "spark.h"
#include "spark-int.h"

#define SPARK_TCP_PORT 5683

/* TCP flag bits as in the TCP header */
#define SPARK_TH_FIN 0x01
#define SPARK_TH_RST 0x04

static dissector_handle_t spark_handle;
static dissector_handle_t spark_post_handle;
static int hf_tcp_flags_id = -1;
static int hf_tcp_seq_id = -1;
static int hf_tcp_payload_id = -1;

static GPtrArray *spark_trackers; /* every live tracker, freed by the cleanup routine */
static GQueue *spark_live;        /* connections with a live tracker, oldest first (the cap) */
static GPtrArray *spark_convs;    /* every connection of the open file (file scope), for the end of the read */

/* ---- small helpers ---------------------------------------------------------------------------- */

static double ts_of(const nstime_t *t)
{
    return (double)t->secs + (double)t->nsecs / 1e9;
}

/* ---- connections ------------------------------------------------------------------------------ */

static spark_conv *conv_get(conversation_t *c)
{
    return c ? (spark_conv *)conversation_get_proto_data(c, proto_spark) : NULL;
}

/* server_is_src: the sender of this packet is the cloud side. */
static spark_conv *conv_new(conversation_t *c, packet_info *pinfo, gboolean server_is_src)
{
    spark_conv *conv = wmem_new0(wmem_file_scope(), spark_conv);
    int d;

    if (!spark_keys)
        spark_keys_load();
    conv->tracker = kr_tracker_new(spark_keys, &spark_callbacks, conv);
    if (server_is_src) {
        copy_address_wmem(wmem_file_scope(), &conv->server_addr, &pinfo->src);
        conv->server_port = pinfo->srcport;
    } else {
        copy_address_wmem(wmem_file_scope(), &conv->server_addr, &pinfo->dst);
        conv->server_port = pinfo->destport;
    }
    for (d = 0; d < 2; d++)
        conv->pending[d] = wmem_array_new(wmem_file_scope(), sizeof(spark_frame_rec *));
    conv->messages = wmem_array_new(wmem_file_scope(), sizeof(spark_msg_rec *));
    conversation_add_proto_data(c, proto_spark, conv);
    if (conv->tracker && pinfo->ptype == PT_TCP) {
        struct tcp_analysis *tcpd = get_tcp_conversation_data(c, pinfo);
        if (tcpd && tcpd->server_port != 0)   /* the SYN is in the capture: the connection starts here */
            kr_tracker_open(conv->tracker, ts_of(&tcpd->ts_first));
    }
    if (conv->tracker) {
        if (!spark_trackers)
            spark_trackers = g_ptr_array_new();
        g_ptr_array_add(spark_trackers, conv->tracker);
        if (!spark_convs)
            spark_convs = g_ptr_array_new();
        g_ptr_array_add(spark_convs, conv);
    }
    return conv;
}

static kr_dir conv_dir(const spark_conv *conv, packet_info *pinfo)
{
    if (pinfo->srcport == conv->server_port && addresses_equal(&pinfo->src, &conv->server_addr))
        return KR_S2D;
    return KR_D2S;
}

/* The capture has been read once: tell the tracker nothing more will come, and keep what that decides
 * (e.g. "incomplete") with the connection's last frame, where later passes show it. */
static void conv_finish(spark_conv *conv)
{
    if (conv->finished)
        return;
    conv->finished = TRUE;
    if (!conv->tracker || !conv->last_rec)
        return;
    conv->cur = conv->last_rec;
    kr_tracker_finish(conv->tracker, conv->last_ts);
    conv->cur = NULL;
}

/* Wireshark and tshark -2 call this when the sequential read of the file (or a live capture) is over. */
static void spark_postseq(void)
{
    guint i;
    if (!spark_convs)
        return;
    for (i = 0; i < spark_convs->len; i++)
        conv_finish((spark_conv *)g_ptr_array_index(spark_convs, i));
}

static void spark_init(void)
{
    spark_keys_load();
}

static void spark_cleanup(void)
{
    guint i;
    if (spark_live) {
        g_queue_free(spark_live);
        spark_live = NULL;
    }
    /* the connections themselves live in file scope, which goes away with the file */
    if (spark_convs) {
        g_ptr_array_free(spark_convs, TRUE);
        spark_convs = NULL;
    }
    if (spark_trackers) {
        for (i = 0; i < spark_trackers->len; i++)
            kr_tracker_free((kr_tracker *)g_ptr_array_index(spark_trackers, i));
        g_ptr_array_free(spark_trackers, TRUE);
        spark_trackers = NULL;
    }
    spark_keys_cleanup();
}

static void spark_shutdown(void)
{
    spark_keys_unload();
}

/* ---- the connection cap (spark.max_conns) ------------------------------------------------------ */

#define SPARK_CAP_LOOK 64         /* idle candidates looked at per release, from the oldest */

/* Ends a connection's tracking: its verdict so far becomes final on its last frame, the tracker is freed,
 * later bytes of the connection are not followed. */
static void conv_release(spark_conv *conv)
{
    conv_finish(conv);
    if (spark_trackers)
        g_ptr_array_remove_fast(spark_trackers, conv->tracker);
    kr_tracker_free(conv->tracker);
    conv->tracker = NULL;
}

/* A new connection beyond the cap releases the longest idle of the oldest SPARK_CAP_LOOK live ones, and
 * says so on the new connection's first frame. */
static void conv_cap(spark_conv *conv, spark_frame_rec *rec)
{
    if (!conv->tracker)
        return;
    if (!spark_live)
        spark_live = g_queue_new();
    g_queue_push_tail(spark_live, conv);
    while (pref_max_conns > 0 && g_queue_get_length(spark_live) > pref_max_conns) {
        GList *l, *idle = NULL;
        guint n = 0;
        for (l = spark_live->head; l && n < SPARK_CAP_LOOK; l = l->next, n++) {
            spark_conv *c = (spark_conv *)l->data;
            if (c != conv && (!idle || c->last_ts < ((spark_conv *)idle->data)->last_ts))
                idle = l;
        }
        if (!idle)
            break;
        conv_release((spark_conv *)idle->data);
        g_queue_delete_link(spark_live, idle);
        rec->released++;
    }
    if (rec->released)
        rec->cap = pref_max_conns;
}

/* ---- first pass: feed the tracker ------------------------------------------------------------- */

/* tvb: the TCP payload; tvb_base: where it starts in the tvb the frame's steps are shown on. */
static void feed_segment(spark_conv *conv, spark_frame_rec *rec, tvbuff_t *tvb, gint tvb_base,
                         packet_info *pinfo, const struct tcpinfo *tcpi, kr_dir dir)
{
    double ts = ts_of(&pinfo->abs_ts);
    guint32 captured = tvb_captured_length(tvb);
    guint32 reported = tvb_reported_length(tvb);
    guint32 skip = 0;

    if (conv->finished || !conv->tracker)
        return;
    conv->cur = rec;
    conv->last_ts = ts;

    if (tcpi) {
        if (!conv->seq_known[dir]) {
            conv->seq_known[dir] = TRUE;
            conv->next_seq[dir] = tcpi->seq;
        }
        gint32 diff = (gint32)(tcpi->seq - conv->next_seq[dir]);
        if (diff > 0) {
            rec->gap += (guint64)diff;
            conv->stream_pos[dir] += (guint64)diff;
            kr_tracker_gap(conv->tracker, dir, (guint64)diff, ts);
            conv->next_seq[dir] = tcpi->seq;
        } else if (diff < 0) {
            guint32 dup = (guint32)(-(gint64)diff);
            if (dup >= reported) {
                rec->retransmitted += reported;
                conv->cur = NULL;
                return;
            }
            skip = dup;
            rec->retransmitted += dup;
        }
        conv->next_seq[dir] = tcpi->seq + reported;
    }

    if (captured > skip) {
        guint32 len = captured - skip;
        const guint8 *bytes = tvb_get_ptr(tvb, (gint)skip, (gint)len);

        conv->chunk_active = TRUE;
        conv->chunk_dir = dir;
        conv->chunk_start = conv->stream_pos[dir];
        conv->chunk_len = len;
        conv->chunk = bytes;
        conv->chunk_tvb_offset = tvb_base + (gint)skip;
        conv->step_in_chunk = FALSE;

        kr_tracker_data(conv->tracker, dir, bytes, len, ts);

        conv->chunk_active = FALSE;
        conv->chunk = NULL;
        conv->stream_pos[dir] += len;
        rec->fed += len;
        /* bytes after the last PDU this frame completed belong to a PDU still to come */
        if (!conv->step_in_chunk || conv->last_step_end[dir] != conv->stream_pos[dir]) {
            rec->range_start = conv->chunk_start;
            rec->range_end = conv->stream_pos[dir];
            wmem_array_append_one(conv->pending[dir], rec);
        }
    }
    if (reported > captured && captured >= skip) {
        /* the capture cut this segment short (snap length): the rest is missing */
        guint64 lost = reported - (captured > skip ? captured : skip);
        conv->stream_pos[dir] += lost;
        kr_tracker_gap(conv->tracker, dir, lost, ts);
    }
    conv->cur = NULL;
}

/* ---- dissectors ------------------------------------------------------------------------------- */

static int dissect_spark_common(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data,
                                gboolean server_is_src_if_new)
{
    conversation_t *c = find_or_create_conversation(pinfo);
    spark_conv *conv = conv_get(c);
    spark_frame_rec *rec;

    if (!PINFO_FD_VISITED(pinfo)) {
        const struct tcpinfo *tcpi = pinfo->ptype == PT_TCP ? (const struct tcpinfo *)data : NULL;
        gboolean first = conv == NULL;
        if (first)
            conv = conv_new(c, pinfo, server_is_src_if_new);
        rec = rec_get_or_new(pinfo, conv);
        if (first)
            conv_cap(conv, rec);
        if (first && spark_keys_error)
            rec->keyfile_error = wmem_strdup(wmem_file_scope(), spark_keys_error);
        feed_segment(conv, rec, tvb, 0, pinfo, tcpi, conv_dir(conv, pinfo));
        pass_get(pinfo)->main_ran = TRUE;
    } else {
        rec = rec_get(pinfo);
    }
    if (!rec)
        return tvb_captured_length(tvb);
    render_rec(tvb, pinfo, tree, rec);
    return tvb_captured_length(tvb);
}

/* Port / Decode As entry: the cloud is the side on the matched port. */
static int dissect_spark(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    gboolean server_is_src = pinfo->srcport == pinfo->match_uint && pinfo->destport != pinfo->match_uint;
    if (pinfo->srcport == pinfo->match_uint && pinfo->destport == pinfo->match_uint)
        server_is_src = TRUE;   /* both on the port: the first talker sends the nonce */
    return dissect_spark_common(tvb, pinfo, tree, data, server_is_src);
}

/* Heuristic entry for other ports: the first bytes of the connection are 40 random-looking bytes from
 * the side that accepted it. The conversation is then given to this dissector. */
static spark_heur_result dissect_spark_heur(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    const struct tcpinfo *tcpi = (const struct tcpinfo *)data;
    conversation_t *c;
    struct tcp_analysis *tcpd;
    guint8 seen[256];
    guint distinct = 0, printable = 0, i;

    if (pinfo->ptype != PT_TCP || !tcpi || tvb_captured_length(tvb) != KR_NONCE_LEN ||
        tvb_reported_length(tvb) != KR_NONCE_LEN)
        return FALSE;
    c = find_or_create_conversation(pinfo);
    if (conv_get(c))
        return FALSE;
    tcpd = get_tcp_conversation_data(c, pinfo);
    if (!tcpd || tcpd->server_port == 0 || pinfo->srcport != tcpd->server_port)
        return FALSE;           /* need the SYN, and the nonce comes from the side that accepted */
    if (tcpi->seq != 1 && tcpi->seq != tcpd->fwd->base_seq + 1)
        return FALSE;           /* not the first byte of the server's stream */
    memset(seen, 0, sizeof seen);
    for (i = 0; i < KR_NONCE_LEN; i++) {
        guint8 b = spark_tvb_u8(tvb, (gint)i);
        if (!seen[b]++)
            distinct++;
        if (b >= 0x20 && b < 0x7f)
            printable++;
    }
    if (pref_heuristic_strict && (distinct < 24 || printable == KR_NONCE_LEN))
        return FALSE;           /* text or a constant pattern: a banner, not a nonce */
    conversation_set_dissector(c, spark_handle);
    dissect_spark_common(tvb, pinfo, tree, data, TRUE);
    return TRUE;
}

/* The last value of a field the postdissector asked for (see set_postdissector_wanted_hfids). */
static field_info *last_field(proto_tree *tree, int hf)
{
    GPtrArray *a;
    if (!tree || hf <= 0)
        return NULL;
    a = proto_get_finfo_ptr_array(tree, hf);
    return (a && a->len > 0) ? (field_info *)g_ptr_array_index(a, a->len - 1) : NULL;
}

static guint32 field_uint(field_info *fi)
{
    return spark_field_uint(fi);
}

/* TCP gives no payload to subdissectors for segments it takes for retransmissions
 * (tcp.no_subdissector_on_error), although they may carry new bytes: feed those from here. */
static void post_feed_payload(spark_conv *conv, tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree)
{
    field_info *pfi = last_field(tree, hf_tcp_payload_id);
    field_info *sfi = last_field(tree, hf_tcp_seq_id);
    struct tcpinfo ti;

    if (!pfi || !sfi || pfi->ds_tvb != tvb || pfi->length <= 0 || !tvb_bytes_exist(tvb, pfi->start, pfi->length))
        return;
    memset(&ti, 0, sizeof ti);
    ti.seq = field_uint(sfi);
    feed_segment(conv, rec_get_or_new(pinfo, conv), tvb_new_subset_length(tvb, pfi->start, pfi->length),
                 pfi->start, pinfo, &ti, conv_dir(conv, pinfo));
}

/* FIN and RST: once per side (an RST after a FIN too). */
static void post_close(spark_conv *conv, packet_info *pinfo, proto_tree *tree, conversation_t *c)
{
    field_info *ffi = last_field(tree, hf_tcp_flags_id);
    guint32 flags = 0;
    kr_dir by = conv_dir(conv, pinfo);
    gboolean rst;
    spark_frame_rec *rec;
    spark_close_rec *cr;

    if (ffi) {
        flags = field_uint(ffi);
    } else {
        /* no tree: TCP still remembers the frame of each side's FIN */
        struct tcp_analysis *tcpd = get_tcp_conversation_data(c, pinfo);
        if (tcpd && tcpd->fwd && tcpd->fwd->fin == pinfo->num)
            flags = SPARK_TH_FIN;
    }
    if (!(flags & (SPARK_TH_FIN | SPARK_TH_RST)) || !conv->tracker || conv->finished)
        return;
    rst = (flags & SPARK_TH_RST) != 0;
    if (conv->closed[by] && (!rst || conv->reset[by]))
        return;
    conv->closed[by] = TRUE;
    conv->reset[by] = conv->reset[by] || rst;
    rec = rec_get_or_new(pinfo, conv);
    cr = wmem_new0(wmem_file_scope(), spark_close_rec);
    cr->by = by;
    cr->rst = rst;
    rec_add(rec, SPARK_EV_CLOSE, cr);
    conv->cur = rec;
    conv->last_ts = ts_of(&pinfo->abs_ts);
    kr_tracker_close(conv->tracker, by, rst, conv->last_ts);
    conv->cur = NULL;
}

/* Sees every frame: on the first pass, the bytes TCP kept from us and FIN/RST of Spark connections go to
 * the tracker; on every pass, what they brought is shown on the frame. */
static int dissect_spark_post(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    conversation_t *c;
    spark_conv *conv;
    spark_frame_rec *rec;
    spark_pass *pass;

    if (pinfo->ptype != PT_TCP)
        return 0;
    c = find_conversation_pinfo(pinfo, 0);
    conv = conv_get(c);
    if (!conv)
        return 0;
    pass = pass_get(pinfo);
    if (!PINFO_FD_VISITED(pinfo)) {
        if (!pass->main_ran)
            post_feed_payload(conv, tvb, pinfo, tree);
        post_close(conv, pinfo, tree, c);
    }
    rec = rec_get(pinfo);
    if (!rec)
        return 0;
    if (!pass->tree)
        pass->info_started = TRUE;  /* a frame without Spark bytes keeps TCP's columns; we append */
    render_rec(tvb, pinfo, tree, rec);
    return 0;
}

/* ---- registration ----------------------------------------------------------------------------- */

void proto_register_spark(void)
{
    spark_register_fields();
    spark_register_prefs();
    spark_register_follow();
    spark_register_stats();

    spark_handle = register_dissector("spark", dissect_spark, proto_spark);
    spark_post_handle = create_dissector_handle(dissect_spark_post, proto_spark);
    register_init_routine(spark_init);
    register_cleanup_routine(spark_cleanup);
    register_postseq_cleanup_routine(spark_postseq);
    register_shutdown_routine(spark_shutdown);
}

void proto_reg_handoff_spark(void)
{
    GArray *wanted;

    dissector_add_uint_with_preference("tcp.port", SPARK_TCP_PORT, spark_handle);
    heur_dissector_add("tcp", dissect_spark_heur, "Spark Cloud Protocol over TCP (other ports)", "spark_tcp",
                       proto_spark, HEURISTIC_ENABLE);
    spark_render_handoff();

    register_postdissector(spark_post_handle);
    hf_tcp_flags_id = proto_registrar_get_id_byname("tcp.flags");
    hf_tcp_seq_id = proto_registrar_get_id_byname("tcp.seq");
    hf_tcp_payload_id = proto_registrar_get_id_byname("tcp.payload");
    wanted = g_array_new(FALSE, FALSE, (guint)sizeof(int));
    if (hf_tcp_flags_id > 0)
        g_array_append_val(wanted, hf_tcp_flags_id);
    if (hf_tcp_seq_id > 0)
        g_array_append_val(wanted, hf_tcp_seq_id);
    if (hf_tcp_payload_id > 0)
        g_array_append_val(wanted, hf_tcp_payload_id);
    set_postdissector_wanted_hfids(spark_post_handle, wanted);
}
