/* sparkwire Wireshark plugin: shows a frame's records on every pass (no crypto after the first pass, so a
 * second pass, a display filter or a click on a packet shows the same thing); the decrypted CoAP goes to
 * Wireshark's own CoAP dissector. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "spark-int.h"
#include <keyring/conn.h>

#include <epan/proto_data.h>
#include <epan/tap.h>

static dissector_handle_t coap_handle;
static int expert_tap = -1;

void spark_render_handoff(void)
{
    coap_handle = find_dissector("coap");
    expert_tap = find_tap_id("expert");
}

/* Wireshark's CoAP dissector reads the decrypted message when what it finds can be seen: in a tree, in an
 * expert tap or any other tap listener (a statistic or script may read CoAP's), or on a later pass of the same frame (CoAP pairs requests with answers on the first pass).
 * A first pass that fills the columns and builds no tree is a summary of a single-pass read (tshark's;
 * Wireshark's first pass and tshark -2's fill no columns): the Info column stays Spark's, the Protocol
 * column is set to CoAP here, so CoAP would add nothing there. */
static gboolean coap_shows(packet_info *pinfo, const spark_pass *pass)
{
    return pass->top || !pinfo->cinfo || (expert_tap >= 0 && have_tap_listener(expert_tap)) ||
           tap_listeners_require_dissection();
}

spark_pass *pass_get(packet_info *pinfo)
{
    spark_pass *p = (spark_pass *)p_get_proto_data(pinfo->pool, pinfo, proto_spark, 1);
    if (!p) {
        p = wmem_new0(pinfo->pool, spark_pass);
        p_add_proto_data(pinfo->pool, pinfo, proto_spark, 1, p);
    }
    return p;
}

/* kept: text outlives the packet's columns (a constant or a record's, file scope), so the column may point
 * at it instead of copying it (a record's texts are far shorter than the column) */
static void info_add(packet_info *pinfo, spark_pass *pass, const char *text, gboolean kept)
{
    if (!pass->info_started) {
        pass->name_spark = TRUE;        /* the Protocol column: set once, when the record is shown */
        col_clear(pinfo->cinfo, COL_INFO);
        if (kept)
            col_set_str(pinfo->cinfo, COL_INFO, text);
        else
            col_add_str(pinfo->cinfo, COL_INFO, text);
        pass->info_started = TRUE;
    } else {
        col_append_sep_str(pinfo->cinfo, COL_INFO, ", ", text);
    }
}

/* ---- generated-field helpers: a value the tracker found, shown as a zero-length generated item ---- */

static proto_item *gen(proto_item *it)
{
    proto_item_set_generated(it);
    return it;
}

static proto_item *add_gen_uint(proto_tree *tree, int hf, tvbuff_t *tvb, guint32 v)
{
    return gen(proto_tree_add_uint(tree, hf, tvb, 0, 0, v));
}

static proto_item *add_gen_bool(proto_tree *tree, int hf, tvbuff_t *tvb, gboolean v)
{
    return gen(proto_tree_add_boolean(tree, hf, tvb, 0, 0, v));
}

static void add_tri(proto_tree *tree, int hf, tvbuff_t *tvb, kr_tri v)
{
    if (v != KR_UNKNOWN)
        add_gen_bool(tree, hf, tvb, v == KR_YES);
}

static proto_item *add_gen_string(proto_tree *tree, int hf, tvbuff_t *tvb, const char *s)
{
    return gen(proto_tree_add_string(tree, hf, tvb, 0, 0, s));
}

/* An expert info's text stays short (about 100 characters): "WHAT: DETAIL" when that fits, else "WHAT
 * (see FIELD)", the detail being in that field of the tree. */
#define SPARK_EXPERT_MAX 100

static void expert_brief(packet_info *pinfo, proto_item *it, expert_field *ei, const char *what,
                         const char *detail, const char *field)
{
    if (!detail || !detail[0])
        expert_add_info_format(pinfo, it, ei, "%s", what);
    else if (strlen(what) + 2 + strlen(detail) <= SPARK_EXPERT_MAX)
        expert_add_info_format(pinfo, it, ei, "%s: %s", what, detail);
    else
        expert_add_info_format(pinfo, it, ei, "%s (see %s)", what, field);
}

/* The device id once per packet: on the first step or verdict that knows it. */
static void add_device_id(proto_tree *tree, tvbuff_t *tvb, spark_pass *pass, const char *id)
{
    if (pass->id_shown)
        return;
    add_gen_string(tree, spark_hf.device_id, tvb, id);
    pass->id_shown = TRUE;
}

/* ---- decrypted messages: what libkeyring read from the CoAP ----------------------------------------- */

static void add_chunk_index(proto_tree *mt, tvbuff_t *tvb, int index)
{
    if (index >= 0)
        add_gen_uint(mt, spark_hf.ota_chunk_index, tvb, (guint32)index);
}

static void render_msg_hello(proto_tree *mt, tvbuff_t *tvb, const spark_msg_info *m)
{
    if (m->dir != KR_D2S)
        return;
    add_gen_uint(mt, spark_hf.product_id, tvb, m->product_id);
    add_gen_uint(mt, spark_hf.product_version, tvb, m->product_version);
    add_gen_uint(mt, spark_hf.hello_flags, tvb, m->hello_flags);
    if (m->platform_id >= 0)
        add_gen_uint(mt, spark_hf.platform_id, tvb, (guint32)m->platform_id);
}

static void render_msg_chunk(proto_tree *mt, tvbuff_t *tvb, const spark_msg_info *m)
{
    add_chunk_index(mt, tvb, m->chunk_index);
    if (m->kind == KR_MSG_CHUNK) {
        add_gen_uint(mt, spark_hf.ota_crc, tvb, m->chunk_crc);
        if (m->chunk_size)
            add_gen_uint(mt, spark_hf.ota_chunk_size, tvb, m->chunk_size);
    }
    if (m->kind != KR_MSG_CHUNK_MISSED)
        add_tri(mt, spark_hf.ota_crc_ok, tvb, m->chunk_crc_ok);
}

static void render_msg_body(proto_tree *mt, tvbuff_t *tvb, const spark_msg_info *m)
{
    nstime_t t;

    switch (m->kind) {
    case KR_MSG_HELLO:
        render_msg_hello(mt, tvb, m);
        break;
    case KR_MSG_EVENT:
        add_gen_string(mt, spark_hf.event_name, tvb, m->name);
        add_gen_string(mt, spark_hf.event_data, tvb, m->value);
        add_gen_uint(mt, spark_hf.event_ttl, tvb, m->ttl);
        add_gen_bool(mt, spark_hf.event_public, tvb, m->event_public);
        break;
    case KR_MSG_SUBSCRIBE:
        if (m->name[0])
            add_gen_string(mt, spark_hf.event_name, tvb, m->name);
        break;
    case KR_MSG_FUNCTION_CALL:
        add_gen_string(mt, spark_hf.function_name, tvb, m->name);
        add_gen_string(mt, spark_hf.function_arg, tvb, m->arg);
        break;
    case KR_MSG_FUNCTION_RETURN:
        if (m->name[0])
            add_gen_string(mt, spark_hf.function_name, tvb, m->name);
        add_gen_string(mt, spark_hf.function_result, tvb, m->value);
        break;
    case KR_MSG_VARIABLE_REQUEST:
        add_gen_string(mt, spark_hf.variable_name, tvb, m->name);
        break;
    case KR_MSG_VARIABLE_VALUE:
        if (m->name[0])
            add_gen_string(mt, spark_hf.variable_name, tvb, m->name);
        add_gen_string(mt, spark_hf.variable_value, tvb, m->value);
        add_gen_uint(mt, spark_hf.variable_type, tvb, m->var_type);
        break;
    case KR_MSG_TIME_RESPONSE:
        t.secs = (time_t)m->unix_time;
        t.nsecs = 0;
        gen(proto_tree_add_time(mt, spark_hf.time, tvb, 0, 0, &t));
        break;
    case KR_MSG_CHUNK:
    case KR_MSG_CHUNK_RECEIVED:
    case KR_MSG_CHUNK_MISSED:
        render_msg_chunk(mt, tvb, m);
        break;
    default:
        if (m->name[0])
            add_gen_string(mt, spark_hf.variable_name, tvb, m->name);
        break;
    }
}

/* The request/response pair: which request this answers, when, and where the answer is. */
static void render_msg_answer(proto_tree *mt, tvbuff_t *tvb, const spark_msg_rec *mr)
{
    const spark_msg_info *m = &mr->m;

    if (m->answers >= 0) {
        add_gen_string(mt, spark_hf.answers, tvb, kr_msg_kind_str(m->answers_kind));
        if (mr->request_frame) {
            nstime_t d;
            double us = floor(m->response_time * 1e6 + 0.5);   /* captures count microseconds */
            add_gen_uint(mt, spark_hf.response_to, tvb, mr->request_frame);
            d.secs = (time_t)(us / 1e6);
            d.nsecs = (int)(us - (double)d.secs * 1e6) * 1000;
            gen(proto_tree_add_time(mt, spark_hf.response_time, tvb, 0, 0, &d));
        }
    }
    if (mr->response_in)
        add_gen_uint(mt, spark_hf.response_in, tvb, mr->response_in);
}

static void render_message(proto_tree *tree, tvbuff_t *tvb, const spark_msg_rec *mr)
{
    const spark_msg_info *m = &mr->m;
    proto_tree *mt = proto_tree_add_subtree_format(tree, tvb, 0, 0, spark_ett.msg, NULL, "Spark message: %s",
                                                   m->summary[0] ? m->summary : kr_msg_kind_str(m->kind));

    add_gen_string(mt, spark_hf.msg_kind, tvb, kr_msg_kind_str(m->kind));
    if (m->summary[0])
        add_gen_string(mt, spark_hf.msg_summary, tvb, m->summary);
    add_gen_uint(mt, spark_hf.msg_index, tvb, m->index);
    if (m->uri[0])
        add_gen_string(mt, spark_hf.uri, tvb, m->uri);
    if (m->query[0])
        add_gen_string(mt, spark_hf.query, tvb, m->query);
    render_msg_body(mt, tvb, m);
    render_msg_answer(mt, tvb, mr);
}

/* ---- steps: one render function per step kind ------------------------------------------------------ */

/* Where a step's PDU is shown: in this frame's bytes, in a reassembled copy, or nowhere (len 0). */
typedef struct spark_view {
    packet_info *pinfo;
    spark_pass *pass;
    const spark_step_rec *sr;
    const spark_step_info *s;
    tvbuff_t *tvb;                /* the frame's tvb (decrypted data sources hang off it) */
    tvbuff_t *stvb;               /* the PDU's tvb */
    gint off;
    guint32 len;
    proto_tree *tree;             /* the step's subtree */
    proto_item *item;
    const char *title;
    const char *text;             /* what the Info column gets: the title, a record's text or info */
    char info[512];
} spark_view;

static SPARK_RARE void render_nonce(spark_view *v)
{
    if (v->len >= KR_NONCE_LEN)
        proto_tree_add_item(v->tree, spark_hf.nonce, v->stvb, v->off, KR_NONCE_LEN, ENC_NA);
}

static SPARK_RARE void render_idblock(spark_view *v)
{
    const spark_step_info *s = v->s;
    proto_item *it;

    if (v->len >= KR_IDBLOCK_LEN)
        proto_tree_add_item(v->tree, spark_hf.id_block, v->stvb, v->off, KR_IDBLOCK_LEN, ENC_NA);
    add_tri(v->tree, spark_hf.id_block_opened, v->stvb, s->id_block_opened);
    if (s->id_block_opened == KR_YES)
        add_gen_uint(v->tree, spark_hf.id_plain_len, v->stvb, (guint32)s->id_plain_len);
    it = add_gen_bool(v->tree, spark_hf.nonce_ok, v->stvb, s->nonce_ok == KR_YES);
    if (s->nonce_ok == KR_UNKNOWN) {
        proto_item_append_text(it, " (unknown: the id block was not opened)");
        proto_item_set_hidden(it);
    }
    if (s->nonce_ok == KR_NO)
        expert_add_info_format(v->pinfo, it, &spark_ei.nonce_bad, "The id block does not echo the nonce the "
                               "cloud sent");
    add_tri(v->tree, spark_hf.offered_key_known, v->stvb, s->offered_key_known);
    if (s->id_block_opened == KR_NO)
        expert_add_info_format(v->pinfo, v->item, &spark_ei.not_opened, "Device ID block not opened: %s",
                               kr_hs_result_str(s->hs_result));
    if (s->device_id_known) {
        g_snprintf(v->info, sizeof v->info, "%s (device %s)", v->title, v->sr->conn_id);
        v->text = v->info;
    }
}

static SPARK_RARE void render_sessionblock(spark_view *v)
{
    const spark_step_info *s = v->s;

    if (v->len >= KR_SESSIONBLOCK_LEN) {
        proto_item *it = proto_tree_add_item(v->tree, spark_hf.session_block, v->stvb, v->off,
                                             KR_SESSIONBLOCK_LEN, ENC_NA);
        proto_tree *bt = proto_item_add_subtree(it, spark_ett.session_block);
        proto_tree_add_item(bt, spark_hf.session_e, v->stvb, v->off, KR_SESSION_E_LEN, ENC_NA);
        proto_tree_add_item(bt, spark_hf.signature, v->stvb, v->off + KR_SESSION_E_LEN, KR_SIGNATURE_LEN, ENC_NA);
    }
    add_tri(v->tree, spark_hf.session_opened, v->stvb, s->session_opened);
    add_tri(v->tree, spark_hf.signature_valid, v->stvb, s->signature_valid);
    add_tri(v->tree, spark_hf.signature_ok, v->stvb, s->signature_ok);
    if (s->session_opened == KR_NO)
        expert_add_info_format(v->pinfo, v->item, &spark_ei.not_opened, "Session key block not opened: %s",
                               kr_hs_result_str(s->hs_result));
    else if (s->session_opened == KR_UNKNOWN && !s->session_known)
        expert_add_info_format(v->pinfo, v->item, &spark_ei.no_key, "No key for device %s: the session stays "
                               "encrypted (keyfile: device ID PATH)",
                               v->sr->conn_id_known ? v->sr->conn_id : "(id unknown)");
    if (pref_show_session_key && v->sr->session) {
        const guint8 *m = v->sr->session;
        gen(proto_tree_add_bytes_with_length(v->tree, spark_hf.session_key, v->stvb, 0, 0, m, 16));
        gen(proto_tree_add_bytes_with_length(v->tree, spark_hf.session_iv, v->stvb, 0, 0, m + 16, 16));
        gen(proto_tree_add_bytes_with_length(v->tree, spark_hf.session_salt, v->stvb, 0, 0, m + 32, 8));
    }
    if (s->signature_valid == KR_NO || s->signature_ok == KR_NO)
        expert_add_info_format(v->pinfo, v->item, &spark_ei.signature_bad,
                               "The session block's signature does not verify: %s", kr_hs_result_str(s->hs_result));
}

static void frame_state_expert(spark_view *v, proto_item *it)
{
    const spark_step_info *s = v->s;
    char what[96];

    switch (s->frame_state) {
    case KR_FRAME_NOT_DECRYPTED:
        if (s->reason == KR_WHY_NO_SESSION_KEY && s->note[0] && strlen(s->note) <= SPARK_EXPERT_MAX)
            expert_add_info_format(v->pinfo, it, &spark_ei.not_decrypted, "%c%s", 'N', s->note + 1);
        else
            expert_brief(v->pinfo, it, &spark_ei.not_decrypted, "Not decrypted",
                         s->note[0] ? s->note : "no session key", "spark.note");
        break;
    case KR_FRAME_PARTIAL:
        g_snprintf(what, sizeof what, "Frame follows a gap: first block lost, %u bytes of the tail decrypted",
                   (unsigned)s->plaintext_len);
        expert_brief(v->pinfo, it, &spark_ei.partial, what, NULL, NULL);
        break;
    case KR_FRAME_DECRYPT_ERROR:
        expert_brief(v->pinfo, it, &spark_ei.decrypt_error, "Decryption error",
                     s->note[0] ? s->note : "bad padding or not CoAP", "spark.note");
        break;
    default:
        break;
    }
}

/* The decrypted CoAP is a protocol layer of its own beside Spark (as TLS hands HTTP on): the Protocol
 * column says CoAP, -z io,phs counts it; the Info column stays Spark's. */
static void render_plaintext(spark_view *v)
{
    const spark_step_info *s = v->s;
    tvbuff_t *ptvb;

    if (!v->sr->plaintext || s->plaintext_len == 0)
        return;
    ptvb = tvb_new_child_real_data(v->tvb, v->sr->plaintext, (guint)s->plaintext_len, (gint)s->plaintext_len);
    add_new_data_source(v->pinfo, ptvb, s->plaintext_skip ? "Decrypted Spark (tail)" : "Decrypted Spark");
    if (s->frame_state == KR_FRAME_DECRYPTED && s->plaintext_skip == 0 && coap_handle) {
        if (coap_shows(v->pinfo, v->pass)) {
            col_set_writable(v->pinfo->cinfo, COL_INFO, FALSE);
            call_dissector(coap_handle, ptvb, v->pinfo, v->pass->top);
            col_set_writable(v->pinfo->cinfo, COL_INFO, TRUE);
        }
        v->pass->coap_layer = TRUE;
        spark_follow_queue(v->pinfo, ptvb);
    } else {
        proto_tree_add_item(v->tree, spark_hf.data, ptvb, 0, -1, ENC_NA);
    }
}

static void render_frame(spark_view *v)
{
    const spark_step_info *s = v->s;
    proto_item *it;

    if (v->tree && v->len >= 2) {
        proto_tree_add_item(v->tree, spark_hf.frame_length, v->stvb, v->off, 2, ENC_BIG_ENDIAN);
        if (v->len > 2)
            proto_tree_add_item(v->tree, spark_hf.frame_ciphertext, v->stvb, v->off + 2, (gint)v->len - 2, ENC_NA);
    }
    it = add_gen_uint(v->tree, spark_hf.frame_state, v->stvb, s->frame_state);
    frame_state_expert(v, it);
    render_plaintext(v);
    if (v->sr->msg) {
        if (v->tree)
            render_message(v->tree, v->stvb, v->sr->msg);
        if (v->sr->msg->m.summary[0])
            v->text = v->sr->msg->m.summary;
    } else if (s->frame_state != KR_FRAME_DECRYPTED) {
        g_snprintf(v->info, sizeof v->info, "%s (%s)", v->title,
                   val_to_str_const(s->frame_state, spark_frame_state_vals, "?"));
        v->text = v->info;
    }
}

static void render_data(spark_view *v)
{
    if (v->len > 0)
        proto_tree_add_item(v->tree, spark_hf.data, v->stvb, v->off, (gint)v->len, ENC_NA);
    expert_brief(v->pinfo, v->item, &spark_ei.not_spark, "Not the Spark protocol",
                 v->s->note[0] ? v->s->note : "the bytes fit neither the handshake nor the frames", "spark.note");
}

static void (*const step_renderers[])(spark_view *) = {
    [KR_STEP_NONCE] = render_nonce,
    [KR_STEP_IDBLOCK] = render_idblock,
    [KR_STEP_SESSIONBLOCK] = render_sessionblock,
    [KR_STEP_HELLO] = render_frame,
    [KR_STEP_FRAME] = render_frame,
    [KR_STEP_DATA] = render_data,
};

/* The step's subtree and what every step shows: kind, direction, place in the stream, device id. */
static void render_step_head(spark_view *v, proto_tree *tree)
{
    const spark_step_info *s = v->s;
    const spark_step_rec *sr = v->sr;

    v->stvb = v->tvb;
    v->off = 0;
    v->len = s->length;
    if (sr->in_packet >= 0 && (guint32)sr->in_packet + v->len <= tvb_captured_length(v->tvb)) {
        v->off = sr->in_packet;
    } else if (sr->bytes && v->len > 0) {
        char *name = wmem_strdup_printf(v->pinfo->pool, "Reassembled %s (%u bytes)", v->title, v->len);
        v->stvb = tvb_new_child_real_data(v->tvb, sr->bytes, v->len, v->len);
        add_new_data_source(v->pinfo, v->stvb, name);
    } else {
        v->len = 0;
    }
    if (!tree)
        return;         /* no tree (a summary): nothing below is shown */
    v->tree = proto_tree_add_subtree_format(tree, v->stvb, v->off, (gint)v->len, spark_ett.step, &v->item,
                                            "%s, %u bytes, %s", v->title, s->length,
                                            val_to_str_const(s->dir, spark_dir_vals, "?"));
    add_gen_string(v->tree, spark_hf.step, v->stvb, kr_step_str(s->kind));
    add_gen_uint(v->tree, spark_hf.direction, v->stvb, s->dir);
    if (v->len > 0) {
        add_gen_uint(v->tree, spark_hf.pdu_index, v->stvb, s->index);
        gen(proto_tree_add_uint64(v->tree, spark_hf.stream_offset, v->stvb, 0, 0, s->offset));
    }
    if (sr->first_frame && sr->first_frame != v->pinfo->num)
        add_gen_uint(v->tree, spark_hf.pdu_first_frame, v->stvb, sr->first_frame);
    if (sr->conn_id_known)
        add_device_id(v->tree, v->stvb, v->pass, sr->conn_id);
    if (sr->generation)
        add_gen_uint(v->tree, spark_hf.generation, v->stvb, (guint32)sr->generation);
}

static void render_step(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, spark_pass *pass,
                        spark_step_rec *sr)
{
    spark_view v;
    const spark_step_info *s = &sr->s;

    memset(&v, 0, offsetof(spark_view, info));     /* the Info text buffer is written before it is read */
    v.info[0] = '\0';
    v.pinfo = pinfo;
    v.pass = pass;
    v.sr = sr;
    v.s = s;
    v.tvb = tvb;
    v.title = kr_step_title(s->kind, s->dir);
    if (!v.title)
        v.title = "Spark PDU";
    render_step_head(&v, tree);
    v.text = v.title;
    if ((size_t)s->kind < array_length(step_renderers) && step_renderers[s->kind])
        step_renderers[s->kind](&v);
    if (v.tree && s->note[0])
        add_gen_string(v.tree, spark_hf.note, v.stvb, s->note);
    if (v.tree && s->hs_result != KR_HS_OK)
        add_gen_string(v.tree, spark_hf.hs_result, v.stvb, kr_hs_result_str(s->hs_result));
    info_add(pinfo, pass, v.text, v.text != v.info);
}

static SPARK_RARE void render_verdict(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, spark_pass *pass,
                           const spark_verdict_rec *vr)
{
    const kr_verdict *v = &vr->v;
    const char *code = kr_verdict_str(v->code);
    const char *meaning = kr_verdict_meaning(v->code);
    proto_item *vi;
    proto_tree *vt;
    expert_field *ei;
    int i;
    char what[96];
    char info[320];

    if (!code || !code[0])
        return;

    vi = gen(proto_tree_add_string_format_value(tree, spark_hf.verdict, tvb, 0, 0, code, "%s (%s)", code,
                                                meaning ? meaning : ""));
    vt = proto_item_add_subtree(vi, spark_ett.verdict);
    if (meaning)
        add_gen_string(vt, spark_hf.verdict_meaning, tvb, meaning);
    add_gen_bool(vt, spark_hf.verdict_proven, tvb, v->proven);
    add_gen_bool(vt, spark_hf.verdict_final, tvb, v->final);
    if (v->evidence[0])
        add_gen_string(vt, spark_hf.verdict_evidence, tvb, v->evidence);
    for (i = 0; i < v->n_candidates && i < KR_MAX_CANDIDATES; i++)
        add_gen_string(vt, spark_hf.verdict_candidate, tvb, kr_verdict_str(v->candidates[i]));
    if (v->last_step != KR_STEP_NONE)
        add_gen_string(vt, spark_hf.verdict_last_step, tvb, kr_step_str(v->last_step));
    if (vr->id_known)
        add_device_id(vt, tvb, pass, vr->id);
    if (vr->generation)
        add_gen_uint(vt, spark_hf.generation, tvb, (guint32)vr->generation);

    switch (v->code) {
    case KR_V_OK:
    case KR_V_NOT_SPARK:
        g_snprintf(what, sizeof what, "Verdict %s", code);
        ei = v->code == KR_V_OK ? &spark_ei.verdict_ok : &spark_ei.verdict_not_spark;
        break;
    case KR_V_INCOMPLETE:
    case KR_V_MID_SESSION:
        g_snprintf(what, sizeof what, "Verdict %s%s", code,
                   v->code == KR_V_MID_SESSION ? " (handshake not in the capture)" : "");
        ei = &spark_ei.verdict_capture;
        break;
    default:
        if (v->proven) {
            g_snprintf(what, sizeof what, "Verdict %s (proven by a key)", code);
            ei = &spark_ei.verdict_proven;
        } else {
            g_snprintf(what, sizeof what, "Verdict %s (inferred from the wire)", code);
            ei = &spark_ei.verdict_inferred;
        }
        break;
    }
    expert_brief(pinfo, vi, ei, what, v->evidence[0] ? v->evidence : meaning, "spark.verdict.evidence");
    g_snprintf(info, sizeof info, "[verdict: %s]", code);
    info_add(pinfo, pass, info, FALSE);
}

static SPARK_RARE void render_finding(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, spark_pass *pass,
                           const kr_finding *f)
{
    const char *code = kr_finding_str(f->code);
    proto_item *fi;
    proto_tree *ft;
    expert_field *ei;
    char info[128];

    fi = gen(proto_tree_add_string_format_value(tree, spark_hf.finding, tvb, 0, 0, code ? code : "?", "%s: %s",
                                                code ? code : "?", f->text));
    ft = proto_item_add_subtree(fi, spark_ett.finding);
    if (f->text[0])
        add_gen_string(ft, spark_hf.finding_text, tvb, f->text);
    switch (f->code) {
    case KR_FIND_GAP: ei = &spark_ei.finding_gap; break;
    case KR_FIND_OTA_INCOMPLETE:
    case KR_FIND_OTA_CHUNK_ERROR: ei = &spark_ei.finding_ota; break;
    case KR_FIND_COUNTER_ERROR: ei = &spark_ei.finding_counter; break;
    default: ei = &spark_ei.finding_decrypt; break;
    }
    expert_brief(pinfo, fi, ei, code ? code : "finding", f->text, "spark.finding.text");
    g_snprintf(info, sizeof info, "[%s]", code ? code : "finding");
    info_add(pinfo, pass, info, FALSE);
}

static SPARK_RARE void render_close(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, spark_pass *pass,
                         const spark_close_rec *c)
{
    char text[200];
    proto_item *it;

    if (c->text)
        g_strlcpy(text, c->text, sizeof text);
    else
        g_snprintf(text, sizeof text, "%s by the %s", c->rst ? "reset" : "closed",
                   c->by == KR_D2S ? "device" : "cloud");
    it = add_gen_string(tree, spark_hf.close, tvb, text);
    expert_add_info_format(pinfo, it, &spark_ei.closed, "Connection %s", text);
    text[0] = g_ascii_toupper(text[0]);
    info_add(pinfo, pass, text, FALSE);
}

/* What one event adds to the packet's statistics record. */
static void tap_note(spark_tap_info *ti, const spark_ev *ev)
{
    if (ev->type == SPARK_EV_STEP) {
        const spark_step_rec *sr = ev->u.step;
        ti->bytes += sr->s.length;
        ti->messages += sr->msg ? 1 : 0;
        if (sr->conn_id_known)
            ti->device_id = sr->conn_id;
    } else if (ev->type == SPARK_EV_VERDICT) {
        const spark_verdict_rec *vr = ev->u.verdict;
        if (vr->id_known)
            ti->device_id = vr->id;
        if (vr->v.final)
            ti->final_verdict = (int)vr->v.code;
    }
}

/* What the TCP side noted about this frame: a keyfile that did not load, missing or repeated bytes. */
static SPARK_RARE void render_header(tvbuff_t *tvb, packet_info *pinfo, spark_pass *pass, const spark_frame_rare *rare)
{
    proto_item *it;
    char what[160];

    if (rare->keyfile_error) {
        it = add_gen_string(pass->tree, spark_hf.keyfile_error, tvb, rare->keyfile_error);
        expert_brief(pinfo, it, &spark_ei.keyfile, "The Spark keyfile was not loaded", rare->keyfile_error,
                     "spark.keyfile_error");
    }
    if (rare->released) {
        it = add_gen_uint(pass->tree, spark_hf.released, tvb, rare->released);
        kr_conn_evicted_text(rare->released, rare->cap, what, sizeof what);
        expert_brief(pinfo, it, &spark_ei.released, what, NULL, NULL);
    }
    if (rare->untracked) {
        kr_conn_untracked_text(rare->cap, what, sizeof what);
        expert_brief(pinfo, pass->root, &spark_ei.untracked, what, NULL, NULL);
    }
    if (rare->gap) {
        it = gen(proto_tree_add_uint64(pass->tree, spark_hf.gap, tvb, 0, 0, rare->gap));
        g_snprintf(what, sizeof what, "%" G_GUINT64_FORMAT " bytes before this segment are missing from the "
                   "capture", rare->gap);
        expert_brief(pinfo, it, &spark_ei.gap, what, NULL, NULL);
    }
    if (rare->retransmitted) {
        it = add_gen_uint(pass->tree, spark_hf.retransmitted, tvb, rare->retransmitted);
        g_snprintf(what, sizeof what, "%u bytes were seen before (retransmission): not given to the tracker "
                   "again", rare->retransmitted);
        expert_brief(pinfo, it, &spark_ei.retransmitted, what, NULL, NULL);
    }
}

/* Shows the events of this frame's record not yet shown in this pass. */
void render_rec(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, spark_pass *pass, const spark_frame_rec *rec)
{
    spark_tap_info ti;
    guint i, n;

    memset(&ti, 0, sizeof ti);
    ti.conv = rec->conv;
    ti.final_verdict = -1;
    if (!pass->tree && tree) {   /* (without a tree every item below is NULL) */
        pass->top = tree;
        pass->root = proto_tree_add_item(tree, proto_spark, tvb, 0, -1, ENC_NA);
        pass->tree = proto_item_add_subtree(pass->root, spark_ett.top);
    }
    if (!pass->header_done && rec->rare)
        render_header(tvb, pinfo, pass, rec->rare);
    n = rec_count(rec);
    for (i = pass->rendered; i < n; i++) {
        spark_ev *ev = &rec->events[i];
        tap_note(&ti, ev);
        switch (ev->type) {
        case SPARK_EV_STEP: render_step(tvb, pinfo, pass->tree, pass, ev->u.step); break;
        case SPARK_EV_FINDING: render_finding(tvb, pinfo, pass->tree, pass, ev->u.finding); break;
        case SPARK_EV_VERDICT: render_verdict(tvb, pinfo, pass->tree, pass, ev->u.verdict); break;
        case SPARK_EV_CLOSE: render_close(tvb, pinfo, pass->tree, pass, ev->u.close); break;
        }
    }
    if (!pass->header_done && n == 0 && rec->fed > 0) {
        proto_item *it = proto_tree_add_uint(pass->tree, spark_hf.continuation, tvb, 0,
                                             (gint)tvb_captured_length(tvb), rec->fed);
        char info[96];
        if (rec->rare && rec->rare->completed_in) {
            add_gen_uint(pass->tree, spark_hf.pdu_completed_in, tvb, rec->rare->completed_in);
            g_snprintf(info, sizeof info, "[PDU segment, completed in frame %u]", rec->rare->completed_in);
        } else {
            g_snprintf(info, sizeof info, "[PDU segment]");
        }
        proto_item_append_text(it, " (part of a PDU completed in a later segment)");
        info_add(pinfo, pass, info, FALSE);
    } else if (!pass->header_done && n == 0 && rec->rare && rec->rare->retransmitted) {
        info_add(pinfo, pass, "[retransmission]", TRUE);
    }
    if (n > pass->rendered && rec->conv)
        spark_stats_queue(pinfo, &ti);
    pass->header_done = TRUE;
    pass->rendered = n;
    if (pass->coap_layer)
        col_set_str(pinfo->cinfo, COL_PROTOCOL, "CoAP");
    else if (pass->name_spark)
        col_set_str(pinfo->cinfo, COL_PROTOCOL, "Spark");
    pass->name_spark = FALSE;
}