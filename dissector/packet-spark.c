/* sparkwire Wireshark plugin: the Spark Core / Particle device-cloud protocol on TCP 5683.
 *
 * Glue only. libkeyring's connection layer (keyring/conn.h, fed by spark-conn.c with each TCP frame's
 * facts, as cloudmon feeds it) follows the connections and drives libkeyring's tracker, which splits the
 * two byte streams into handshake steps and frames, opens what the keys allow, decrypts the session and
 * names a verdict. This file holds the dissectors and the layer's hooks. spark-record.c keeps what the
 * tracker reports against the frame being handled, spark-render.c shows those records on every pass,
 * spark-fields.c registers the fields, spark-keys.c the keys and preferences.
 * The plugin's entry in front of TCP notes every segment (also the ones without payload, spark-conn.c); a
 * postdissector hands it to the connection layer on the first pass and renders what the frame brought on
 * every pass.
 */
#include <string.h>

#include <epan/packet.h>
#include <epan/conversation.h>
#include <epan/proto_data.h>
#include <epan/to_str.h>
#include <epan/dissectors/packet-tcp.h>

#include "spark.h"
#include "spark-int.h"
#include "spark-conn.h"

#define SPARK_TCP_PORT 5683

static dissector_handle_t spark_handle;
static dissector_handle_t spark_post_handle;
static guint32 main_ran_frame;       /* first pass: the frame whose TCP payload went through dissect_spark */


/* ---- connections: the connection layer's hooks (spark-conn.c) ----------------------------------- */

static SPARK_RARE void *conv_open(kr_conn *kc)
{
    spark_conv *conv = wmem_new0(wmem_file_scope(), spark_conv);

    conv->tracker = kr_conn_tracker(kc);
    return conv;
}

/* The frame the next callbacks of conv go to: this one, or (pinfo NULL) the connection's last one. Its
 * record is made when something is kept for it (rec_cur); till then the frame only counts as one of the
 * connection's. */
static void conv_bind(void *p, packet_info *pinfo)
{
    spark_conv *conv = (spark_conv *)p;
    gboolean first = conv->last_frame == 0;
    if (!pinfo) {
        conv->bound = !first;
        return;
    }
    conv->bound = TRUE;
    if (conv->last_frame == pinfo->num)
        return;                         /* bound to this frame already */
    conv->last_frame = pinfo->num;
    conv->last_rec = NULL;
    rec_mark(pinfo->num);
    if (first)
        spark_follow_mark(pinfo);
    if (first && spark_keys_error)
        rec_rare(rec_cur(conv))->keyfile_error = wmem_strdup(wmem_file_scope(), spark_keys_error);
}

/* The bytes of the last chunk after the last PDU it completed belong to a PDU still to come. */
static void chunk_done(spark_conv *conv)
{
    kr_dir dir = conv->chunk_dir;
    if (!conv->chunk_active)
        return;
    conv->chunk_active = FALSE;
    conv->chunk = NULL;
    if (conv->bound && (!conv->step_in_chunk || conv->last_step_end[dir] != conv->stream_pos[dir])) {
        spark_frame_rec *rec = rec_cur(conv);
        spark_frame_rare *rare = rec_rare(rec);
        rare->range_start = conv->chunk_start;
        rare->range_end = conv->stream_pos[dir];
        rec_pend(conv, dir, rec);
    }
}

static void conv_data(void *p, kr_dir dir, guint64 offset, const guint8 *bytes, size_t len, gint tvb_offset)
{
    spark_conv *conv = (spark_conv *)p;
    spark_frame_rec *rec;
    chunk_done(conv);
    conv->chunk_active = TRUE;
    conv->chunk_dir = dir;
    conv->chunk_start = offset;
    conv->chunk_len = (guint32)len;
    conv->chunk = bytes;
    conv->chunk_tvb_offset = tvb_offset;
    conv->step_in_chunk = FALSE;
    conv->stream_pos[dir] = offset + len;
    rec = rec_cur(conv);
    if (rec)
        rec->fed += (guint32)len;
}

static void conv_done(void *p)
{
    spark_conv *conv = (spark_conv *)p;
    chunk_done(conv);
    conv->bound = FALSE;
}

static SPARK_RARE void conv_tcp(void *p, packet_info *pinfo, const kr_tcp_event *e)
{
    spark_conv *conv = (spark_conv *)p;
    spark_frame_rec *rec;
    spark_close_rec *cr;

    conv_bind(conv, pinfo);
    switch (e->kind) {
    case KR_TCP_EV_GAP: case KR_TCP_EV_RETRANSMITTED:
    case KR_TCP_EV_FIN: case KR_TCP_EV_RST: case KR_TCP_EV_REFUSED: case KR_TCP_EV_RST_IGNORED: break;
    default: return;
    }
    rec = rec_cur(conv);
    if (!rec)
        return;
    if (e->kind == KR_TCP_EV_GAP) {
        rec_rare(rec)->gap += e->nbytes;
        return;
    }
    if (e->kind == KR_TCP_EV_RETRANSMITTED) {
        rec_rare(rec)->retransmitted += (guint32)e->nbytes;
        return;
    }
    cr = wmem_new0(wmem_file_scope(), spark_close_rec);
    cr->by = e->dir;
    cr->rst = e->kind == KR_TCP_EV_RST;
    if (e->kind == KR_TCP_EV_REFUSED || e->kind == KR_TCP_EV_RST_IGNORED)
        cr->text = wmem_strdup_printf(wmem_file_scope(), "%s: %s", kr_tcp_kind_str(e->kind), e->text);
    rec_add(rec, SPARK_EV_CLOSE, cr);
}

static SPARK_RARE void conv_end(void *p)
{
    spark_conv *conv = (spark_conv *)p;
    chunk_done(conv);
    conv->tracker = NULL;
    conv->bound = FALSE;
}

static SPARK_RARE void conv_table_full(packet_info *pinfo, guint evicted, gboolean untracked, guint cap);

static const spark_conn_hooks spark_hooks = {
    &spark_callbacks, conv_open, conv_bind, conv_tcp, conv_data, conv_done, conv_end, conv_table_full,
};

/* Wireshark and tshark -2 call this when the sequential read of the file (or a live capture) is over:
 * every connection ends, and what that decides (e.g. "incomplete") stays with its last frame. */
static void spark_postseq(void)
{
    spark_conn_finish();
}

static void spark_init(void)
{
    heur_dtbl_entry_t *h = find_heur_dissector_by_unique_short_name("spark_tcp");
    rec_store_reset();
    spark_keys_load();
    spark_conn_start(spark_keys, &spark_hooks, h ? h->enabled : TRUE, pref_heuristic_strict, pref_max_conns);
}

static void spark_cleanup(void)
{
    /* the connections' records live in file scope, which goes away with the file */
    spark_conn_stop();
    rec_store_reset();
    spark_keys_cleanup();
}

/* Wireshark closes: everything the plugin and libkeyring hold goes before the plugin is unloaded (nothing
 * would point at it afterwards). */
static void spark_shutdown(void)
{
    spark_conn_stop();
    spark_keys_unload();
    spark_stats_end();
    kr_library_end();
}

/* ---- the connection cap (spark.max_conns) ------------------------------------------------------ */

/* The layer's table was full at this frame: what it ended to make room, or that this frame's new
 * connection is not followed, is said on the frame. */
static SPARK_RARE void conv_table_full(packet_info *pinfo, guint evicted, gboolean untracked, guint cap)
{
    spark_frame_rare *rare = rec_rare(rec_of_num(pinfo->num));
    rare->released += evicted;
    rare->untracked = rare->untracked || untracked;
    rare->cap = cap;
}

/* ---- dissectors ------------------------------------------------------------------------------- */

static int dissect_spark_common(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_,
                                gboolean server_is_src_if_new, gboolean claim)
{
    const spark_frame_rec *rec;
    spark_pass *pass;

    /* the postdissector hands the frame to the connection layer; what it recorded is shown here when the
     * frame is dissected again (positions are in the frame's data source), and else by the postdissector,
     * told by main_ran_frame that the payload came here */
    if (!PINFO_FD_VISITED(pinfo)) {
        if (claim)
            spark_conn_claim(pinfo, server_is_src_if_new);
        main_ran_frame = pinfo->num;
        return tvb_captured_length(tvb);
    }
    pass = pass_get(pinfo);
    pass->main_ran = TRUE;
    rec = rec_get(pinfo);
    if (rec)
        render_rec(tvb_get_ds_tvb(tvb), pinfo, tree, pass, rec);
    return tvb_captured_length(tvb);
}

/* Port / Decode As entry: the cloud is the side on the matched port. */
static int dissect_spark(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    gboolean server_is_src = pinfo->srcport == pinfo->match_uint && pinfo->destport != pinfo->match_uint;
    if (pinfo->srcport == pinfo->match_uint && pinfo->destport == pinfo->match_uint)
        server_is_src = TRUE;   /* both on the port: the first talker sends the nonce */
    return dissect_spark_common(tvb, pinfo, tree, data, server_is_src, TRUE);
}

/* Heuristic entry for other ports: the first bytes of the connection are 40 bytes from the side that
 * accepted it that pass libkeyring's nonce rule (the connection layer applies the same rule to follow the
 * connection). The conversation is then given to this dissector. */
static spark_heur_result dissect_spark_heur(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    const struct tcpinfo *tcpi = (const struct tcpinfo *)data;
    conversation_t *c;
    struct tcp_analysis *tcpd;

    if (pinfo->ptype != PT_TCP || !tcpi || tvb_captured_length(tvb) != KR_NONCE_LEN ||
        tvb_reported_length(tvb) != KR_NONCE_LEN)
        return FALSE;
    c = find_or_create_conversation(pinfo);
    tcpd = get_tcp_conversation_data(c, pinfo);
    if (!tcpd || tcpd->server_port == 0 || pinfo->srcport != tcpd->server_port)
        return FALSE;           /* need the SYN, and the nonce comes from the side that accepted */
    if (tcpi->seq != 1 && tcpi->seq != tcpd->fwd->base_seq + 1)
        return FALSE;           /* not the first byte of the server's stream */
    if (pref_heuristic_strict && !kr_conn_nonce_like(tvb_get_ptr(tvb, 0, KR_NONCE_LEN), KR_NONCE_LEN))
        return FALSE;           /* text or a constant pattern: a banner, not a nonce */
    conversation_set_dissector(c, spark_handle);
    dissect_spark_common(tvb, pinfo, tree, data, TRUE, FALSE);
    return TRUE;
}

/* Sees every frame: on the first pass, every TCP frame goes to the connection layer (spark-conn.c); on
 * every pass, what it brought is shown on the frame. */
static int dissect_spark_post(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    const spark_frame_rec *rec;
    spark_pass *pass, first;
    gboolean visited = PINFO_FD_VISITED(pinfo);
    gboolean main_ran = main_ran_frame == pinfo->num;

    main_ran_frame = 0;
    if (pinfo->ptype != PT_TCP)
        return 0;
    if (!visited) {
        spark_conn_frame(tvb, pinfo);
        spark_follow_seen(pinfo);
    }
    rec = rec_get(pinfo);
    if (!rec || (!tree && rec_is_empty(rec)))
        return 0;       /* nothing to show (a frame that brought nothing shows an empty item in a tree) */
    if (!visited) {
        /* first pass: dissect_spark showed nothing of this frame (its record was still being made), so
         * this is the pass's one showing and its state needs no place in the packet's data */
        memset(&first, 0, sizeof first);
        pass = &first;
    } else {
        pass = pass_get(pinfo);
    }
    pass->main_ran = pass->main_ran || main_ran;
    if (!pass->tree && !pass->main_ran)
        pass->info_started = TRUE;  /* a frame without Spark bytes keeps TCP's columns; we append */
    render_rec(tvb, pinfo, tree, pass, rec);
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
    dissector_add_uint_with_preference("tcp.port", SPARK_TCP_PORT, spark_handle);
    heur_dissector_add("tcp", dissect_spark_heur, "Spark Cloud Protocol over TCP (other ports)", "spark_tcp",
                       proto_spark, HEURISTIC_ENABLE);
    spark_render_handoff();

    spark_conn_hook_tcp();
    register_postdissector(spark_post_handle);
}
