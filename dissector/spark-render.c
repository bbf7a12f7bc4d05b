/* sparkwire Wireshark plugin: shows a frame's records on every pass (no crypto after the first pass, so a
 * second pass, a display filter or a click on a packet shows the same thing); the decrypted CoAP goes to
 * Wireshark's own CoAP dissector. */
#include <math.h>
#include <string.h>

#include "spark-int.h"

#include <epan/proto_data.h>

static dissector_handle_t coap_handle;

void spark_render_handoff(void)
{
    coap_handle = find_dissector("coap");
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

static void info_add(packet_info *pinfo, spark_pass *pass, const char *text)
{
    if (!pass->info_started) {
        col_set_str(pinfo->cinfo, COL_PROTOCOL, "Spark");
        col_clear(pinfo->cinfo, COL_INFO);
        col_add_str(pinfo->cinfo, COL_INFO, text);
        pass->info_started = TRUE;
    } else {
        col_append_sep_str(pinfo->cinfo, COL_INFO, ", ", text);
    }
}

static void add_tri(proto_tree *tree, int hf, tvbuff_t *tvb, kr_tri v)
{
    if (v != KR_UNKNOWN) {
        proto_item *it = proto_tree_add_boolean(tree, hf, tvb, 0, 0, v == KR_YES);
        proto_item_set_generated(it);
    }
}

static proto_item *add_gen_string(proto_tree *tree, int hf, tvbuff_t *tvb, const char *s)
{
    proto_item *it = proto_tree_add_string(tree, hf, tvb, 0, 0, s);
    proto_item_set_generated(it);
    return it;
}

static void render_message(packet_info *pinfo, proto_tree *tree, tvbuff_t *tvb, const spark_msg_rec *mr)
{
    const spark_msg_info *m = &mr->m;
    proto_tree *mt;
    proto_item *it;

    mt = proto_tree_add_subtree_format(tree, tvb, 0, 0, spark_ett.msg, NULL, "Spark message: %s",
                                       m->summary[0] ? m->summary : kr_msg_kind_str(m->kind));
    add_gen_string(mt, spark_hf.msg_kind, tvb, kr_msg_kind_str(m->kind));
    if (m->summary[0])
        add_gen_string(mt, spark_hf.msg_summary, tvb, m->summary);
    it = proto_tree_add_uint(mt, spark_hf.msg_index, tvb, 0, 0, m->index);
    proto_item_set_generated(it);
    if (m->uri[0])
        add_gen_string(mt, spark_hf.uri, tvb, m->uri);
    if (m->query[0])
        add_gen_string(mt, spark_hf.query, tvb, m->query);

    switch (m->kind) {
    case KR_MSG_HELLO:
        if (m->dir == KR_D2S) {
            it = proto_tree_add_uint(mt, spark_hf.product_id, tvb, 0, 0, m->product_id);
            proto_item_set_generated(it);
            it = proto_tree_add_uint(mt, spark_hf.product_version, tvb, 0, 0, m->product_version);
            proto_item_set_generated(it);
            it = proto_tree_add_uint(mt, spark_hf.hello_flags, tvb, 0, 0, m->hello_flags);
            proto_item_set_generated(it);
            if (m->platform_id >= 0) {
                it = proto_tree_add_uint(mt, spark_hf.platform_id, tvb, 0, 0, (guint32)m->platform_id);
                proto_item_set_generated(it);
            }
        }
        break;
    case KR_MSG_EVENT:
        add_gen_string(mt, spark_hf.event_name, tvb, m->name);
        add_gen_string(mt, spark_hf.event_data, tvb, m->value);
        it = proto_tree_add_uint(mt, spark_hf.event_ttl, tvb, 0, 0, m->ttl);
        proto_item_set_generated(it);
        it = proto_tree_add_boolean(mt, spark_hf.event_public, tvb, 0, 0, m->event_public);
        proto_item_set_generated(it);
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
        it = proto_tree_add_uint(mt, spark_hf.variable_type, tvb, 0, 0, m->var_type);
        proto_item_set_generated(it);
        break;
    case KR_MSG_TIME_RESPONSE: {
        nstime_t t;
        t.secs = (time_t)m->unix_time;
        t.nsecs = 0;
        it = proto_tree_add_time(mt, spark_hf.time, tvb, 0, 0, &t);
        proto_item_set_generated(it);
        break;
    }
    case KR_MSG_CHUNK:
        if (m->chunk_index >= 0) {
            it = proto_tree_add_uint(mt, spark_hf.ota_chunk_index, tvb, 0, 0, (guint32)m->chunk_index);
            proto_item_set_generated(it);
        }
        it = proto_tree_add_uint(mt, spark_hf.ota_crc, tvb, 0, 0, m->chunk_crc);
        proto_item_set_generated(it);
        add_tri(mt, spark_hf.ota_crc_ok, tvb, m->chunk_crc_ok);
        if (m->chunk_size) {
            it = proto_tree_add_uint(mt, spark_hf.ota_chunk_size, tvb, 0, 0, m->chunk_size);
            proto_item_set_generated(it);
        }
        break;
    case KR_MSG_CHUNK_RECEIVED:
        if (m->chunk_index >= 0) {
            it = proto_tree_add_uint(mt, spark_hf.ota_chunk_index, tvb, 0, 0, (guint32)m->chunk_index);
            proto_item_set_generated(it);
        }
        add_tri(mt, spark_hf.ota_crc_ok, tvb, m->chunk_crc_ok);
        break;
    case KR_MSG_CHUNK_MISSED:
        if (m->chunk_index >= 0) {
            it = proto_tree_add_uint(mt, spark_hf.ota_chunk_index, tvb, 0, 0, (guint32)m->chunk_index);
            proto_item_set_generated(it);
        }
        break;
    default:
        if (m->name[0])
            add_gen_string(mt, spark_hf.variable_name, tvb, m->name);
        break;
    }

    if (m->answers >= 0) {
        add_gen_string(mt, spark_hf.answers, tvb, kr_msg_kind_str(m->answers_kind));
        if (mr->request_frame) {
            it = proto_tree_add_uint(mt, spark_hf.response_to, tvb, 0, 0, mr->request_frame);
            proto_item_set_generated(it);
            {
                nstime_t d;
                double us = floor(m->response_time * 1e6 + 0.5);   /* captures count microseconds */
                d.secs = (time_t)(us / 1e6);
                d.nsecs = (int)(us - (double)d.secs * 1e6) * 1000;
                it = proto_tree_add_time(mt, spark_hf.response_time, tvb, 0, 0, &d);
                proto_item_set_generated(it);
            }
        }
    }
    if (mr->response_in) {
        it = proto_tree_add_uint(mt, spark_hf.response_in, tvb, 0, 0, mr->response_in);
        proto_item_set_generated(it);
    }
    (void)pinfo;
}

static void render_step(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, spark_pass *pass,
                        spark_step_rec *sr)
{
    const spark_step_info *s = &sr->s;
    tvbuff_t *stvb = tvb;
    gint off = 0;
    guint32 len = s->length;
    proto_item *sti, *it;
    proto_tree *st;
    const char *title = kr_step_title(s->kind, s->dir);
    char info[512];

    if (!title)
        title = "Spark PDU";
    if (sr->in_packet >= 0 && (guint32)sr->in_packet + len <= tvb_captured_length(tvb)) {
        off = sr->in_packet;
    } else if (sr->bytes && len > 0) {
        char *name = wmem_strdup_printf(pinfo->pool, "Reassembled %s (%u bytes)", title, len);
        stvb = tvb_new_child_real_data(tvb, sr->bytes, len, len);
        add_new_data_source(pinfo, stvb, name);
    } else {
        len = 0;
    }

    st = proto_tree_add_subtree_format(tree, stvb, off, (gint)len, spark_ett.step, &sti, "%s, %u bytes, %s",
                                       title, s->length, val_to_str_const(s->dir, spark_dir_vals, "?"));
    add_gen_string(st, spark_hf.step, stvb, kr_step_str(s->kind));
    it = proto_tree_add_uint(st, spark_hf.direction, stvb, 0, 0, s->dir);
    proto_item_set_generated(it);
    if (len > 0) {
        it = proto_tree_add_uint(st, spark_hf.pdu_index, stvb, 0, 0, s->index);
        proto_item_set_generated(it);
        it = proto_tree_add_uint64(st, spark_hf.stream_offset, stvb, 0, 0, s->offset);
        proto_item_set_generated(it);
    }
    if (sr->first_frame && sr->first_frame != pinfo->num) {
        it = proto_tree_add_uint(st, spark_hf.pdu_first_frame, stvb, 0, 0, sr->first_frame);
        proto_item_set_generated(it);
    }
    if (sr->conn_id_known) {
        it = add_gen_string(st, spark_hf.device_id, stvb, sr->conn_id);
        (void)it;
    }
    if (sr->generation) {
        it = proto_tree_add_uint(st, spark_hf.generation, stvb, 0, 0, (guint32)sr->generation);
        proto_item_set_generated(it);
    }

    g_strlcpy(info, title, sizeof info);
    switch (s->kind) {
    case KR_STEP_NONCE:
        if (len >= KR_NONCE_LEN)
            proto_tree_add_item(st, spark_hf.nonce, stvb, off, KR_NONCE_LEN, ENC_NA);
        break;
    case KR_STEP_IDBLOCK:
        if (len >= KR_IDBLOCK_LEN)
            proto_tree_add_item(st, spark_hf.id_block, stvb, off, KR_IDBLOCK_LEN, ENC_NA);
        add_tri(st, spark_hf.id_block_opened, stvb, s->id_block_opened);
        if (s->id_block_opened == KR_YES) {
            it = proto_tree_add_uint(st, spark_hf.id_plain_len, stvb, 0, 0, (guint32)s->id_plain_len);
            proto_item_set_generated(it);
        }
        it = proto_tree_add_boolean(st, spark_hf.nonce_ok, stvb, 0, 0, s->nonce_ok == KR_YES);
        if (s->nonce_ok == KR_UNKNOWN)
            proto_item_append_text(it, " (unknown: the id block was not opened)");
        proto_item_set_generated(it);
        if (s->nonce_ok == KR_UNKNOWN)
            proto_item_set_hidden(it);
        if (s->nonce_ok == KR_NO)
            expert_add_info_format(pinfo, it, &spark_ei.nonce_bad,
                                   "The id block does not echo the nonce the cloud sent");
        add_tri(st, spark_hf.offered_key_known, stvb, s->offered_key_known);
        if (s->id_block_opened == KR_NO)
            expert_add_info_format(pinfo, sti, &spark_ei.not_opened, "Device ID block not opened: %s",
                                   s->note[0] ? s->note : kr_hs_result_str(s->hs_result));
        if (s->device_id_known)
            g_snprintf(info, sizeof info, "%s (device %s)", title, sr->conn_id);
        break;
    case KR_STEP_SESSIONBLOCK: {
        proto_tree *bt;
        if (len >= KR_SESSIONBLOCK_LEN) {
            it = proto_tree_add_item(st, spark_hf.session_block, stvb, off, KR_SESSIONBLOCK_LEN, ENC_NA);
            bt = proto_item_add_subtree(it, spark_ett.session_block);
            proto_tree_add_item(bt, spark_hf.session_e, stvb, off, KR_SESSION_E_LEN, ENC_NA);
            proto_tree_add_item(bt, spark_hf.signature, stvb, off + KR_SESSION_E_LEN, KR_SIGNATURE_LEN, ENC_NA);
        }
        add_tri(st, spark_hf.session_opened, stvb, s->session_opened);
        add_tri(st, spark_hf.signature_valid, stvb, s->signature_valid);
        add_tri(st, spark_hf.signature_ok, stvb, s->signature_ok);
        if (s->session_opened == KR_NO)
            expert_add_info_format(pinfo, sti, &spark_ei.not_opened, "Session key block not opened: %s",
                                   s->note[0] ? s->note : kr_hs_result_str(s->hs_result));
        else if (s->session_opened == KR_UNKNOWN && !s->session_known) {
            if (sr->conn_id_known)
                expert_add_info_format(pinfo, sti, &spark_ei.no_key,
                                       "No key for device %s: the session stays encrypted (add a line "
                                       "'device %s PATH' with its private key to the keyfile)",
                                       sr->conn_id, sr->conn_id);
            else
                expert_add_info_format(pinfo, sti, &spark_ei.no_key,
                                       "No device key: the session stays encrypted (add 'device * PATH' with "
                                       "the device's private key to the keyfile)");
        }
        if (s->signature_valid == KR_NO || s->signature_ok == KR_NO)
            expert_add_info_format(pinfo, sti, &spark_ei.signature_bad,
                                   "The session block's signature does not verify: %s",
                                   s->note[0] ? s->note : kr_hs_result_str(s->hs_result));
        break;
    }
    case KR_STEP_HELLO:
    case KR_STEP_FRAME:
        if (len >= 2) {
            proto_tree_add_item(st, spark_hf.frame_length, stvb, off, 2, ENC_BIG_ENDIAN);
            if (len > 2)
                proto_tree_add_item(st, spark_hf.frame_ciphertext, stvb, off + 2, (gint)len - 2, ENC_NA);
        }
        it = proto_tree_add_uint(st, spark_hf.frame_state, stvb, 0, 0, s->frame_state);
        proto_item_set_generated(it);
        switch (s->frame_state) {
        case KR_FRAME_NOT_DECRYPTED:
            if (g_ascii_strncasecmp(s->note, "not decrypted", 13) == 0)
                expert_add_info_format(pinfo, it, &spark_ei.not_decrypted, "%c%s", 'N', s->note + 1);
            else
                expert_add_info_format(pinfo, it, &spark_ei.not_decrypted, "Not decrypted: %s",
                                       s->note[0] ? s->note : "no session key");
            break;
        case KR_FRAME_PARTIAL:
            expert_add_info_format(pinfo, it, &spark_ei.partial,
                                   "Frame follows a gap: first block lost, %u bytes of the tail decrypted%s%s",
                                   (unsigned)s->plaintext_len, s->note[0] ? ": " : "", s->note);
            break;
        case KR_FRAME_DECRYPT_ERROR:
            expert_add_info_format(pinfo, it, &spark_ei.decrypt_error, "Decryption error: %s",
                                   s->note[0] ? s->note : "bad padding or not CoAP");
            break;
        default:
            break;
        }
        if (sr->plaintext && s->plaintext_len > 0) {
            tvbuff_t *ptvb = tvb_new_child_real_data(tvb, sr->plaintext, (guint)s->plaintext_len,
                                                     (gint)s->plaintext_len);
            add_new_data_source(pinfo, ptvb, s->plaintext_skip ? "Decrypted Spark (tail)" : "Decrypted Spark");
            if (s->frame_state == KR_FRAME_DECRYPTED && s->plaintext_skip == 0 && coap_handle) {
                /* CoAP must not rewrite our columns; its tree and fields go under this step */
                col_set_writable(pinfo->cinfo, -1, FALSE);
                call_dissector(coap_handle, ptvb, pinfo, st);
                col_set_writable(pinfo->cinfo, -1, TRUE);
            } else {
                proto_tree_add_item(st, spark_hf.data, ptvb, 0, -1, ENC_NA);
            }
        }
        if (sr->msg) {
            render_message(pinfo, st, stvb, sr->msg);
            if (sr->msg->m.summary[0])
                g_strlcpy(info, sr->msg->m.summary, sizeof info);
        } else if (s->frame_state != KR_FRAME_DECRYPTED) {
            g_snprintf(info, sizeof info, "%s (%s)", title,
                       val_to_str_const(s->frame_state, spark_frame_state_vals, "?"));
        }
        break;
    case KR_STEP_DATA:
        if (len > 0)
            proto_tree_add_item(st, spark_hf.data, stvb, off, (gint)len, ENC_NA);
        expert_add_info_format(pinfo, sti, &spark_ei.not_spark, "Not the Spark protocol: %s",
                               s->note[0] ? s->note : "these bytes do not fit the handshake or the frames");
        break;
    default:
        break;
    }
    if (s->note[0])
        add_gen_string(st, spark_hf.note, stvb, s->note);
    if (s->hs_result != KR_HS_OK)
        add_gen_string(st, spark_hf.hs_result, stvb, kr_hs_result_str(s->hs_result));
    info_add(pinfo, pass, info);
}

static void render_verdict(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, spark_pass *pass,
                           const spark_verdict_rec *vr)
{
    const kr_verdict *v = &vr->v;
    const char *code = kr_verdict_str(v->code);
    const char *meaning = kr_verdict_meaning(v->code);
    proto_item *vi, *it;
    proto_tree *vt;
    int i;
    char cands[256];
    char info[320];

    if (!code || !code[0])
        return;
    cands[0] = '\0';
    for (i = 0; i < v->n_candidates && i < KR_MAX_CANDIDATES; i++) {
        const char *c = kr_verdict_str(v->candidates[i]);
        if (i)
            g_strlcat(cands, ", ", sizeof cands);
        g_strlcat(cands, c ? c : "?", sizeof cands);
    }

    vi = proto_tree_add_string_format_value(tree, spark_hf.verdict, tvb, 0, 0, code, "%s (%s)", code,
                                            meaning ? meaning : "");
    proto_item_set_generated(vi);
    vt = proto_item_add_subtree(vi, spark_ett.verdict);
    if (meaning)
        add_gen_string(vt, spark_hf.verdict_meaning, tvb, meaning);
    it = proto_tree_add_boolean(vt, spark_hf.verdict_proven, tvb, 0, 0, v->proven);
    proto_item_set_generated(it);
    it = proto_tree_add_boolean(vt, spark_hf.verdict_final, tvb, 0, 0, v->final);
    proto_item_set_generated(it);
    if (v->evidence[0])
        add_gen_string(vt, spark_hf.verdict_evidence, tvb, v->evidence);
    for (i = 0; i < v->n_candidates && i < KR_MAX_CANDIDATES; i++)
        add_gen_string(vt, spark_hf.verdict_candidate, tvb, kr_verdict_str(v->candidates[i]));
    if (v->last_step != KR_STEP_NONE)
        add_gen_string(vt, spark_hf.verdict_last_step, tvb, kr_step_str(v->last_step));
    if (vr->id_known)
        add_gen_string(vt, spark_hf.device_id, tvb, vr->id);
    if (vr->generation) {
        it = proto_tree_add_uint(vt, spark_hf.generation, tvb, 0, 0, (guint32)vr->generation);
        proto_item_set_generated(it);
    }

    switch (v->code) {
    case KR_V_OK:
        expert_add_info_format(pinfo, vi, &spark_ei.verdict_ok, "Verdict ok: %s",
                               v->evidence[0] ? v->evidence : meaning);
        break;
    case KR_V_NOT_SPARK:
        expert_add_info_format(pinfo, vi, &spark_ei.verdict_not_spark, "Verdict not-spark: %s",
                               v->evidence[0] ? v->evidence : meaning);
        break;
    case KR_V_INCOMPLETE:
    case KR_V_MID_SESSION:
        expert_add_info_format(pinfo, vi, &spark_ei.verdict_capture, "Verdict %s: %s%s%s", code,
                               v->code == KR_V_MID_SESSION ? "handshake not in capture: " : "",
                               v->evidence[0] ? v->evidence : meaning, "");
        break;
    default:
        if (v->proven)
            expert_add_info_format(pinfo, vi, &spark_ei.verdict_proven, "Verdict %s (proven by a key): %s",
                                   code, v->evidence[0] ? v->evidence : meaning);
        else
            expert_add_info_format(pinfo, vi, &spark_ei.verdict_inferred,
                                   "Verdict %s (inferred from the wire%s%s): %s", code,
                                   cands[0] ? "; candidates: " : "", cands,
                                   v->evidence[0] ? v->evidence : meaning);
        break;
    }
    g_snprintf(info, sizeof info, "[verdict: %s]", code);
    info_add(pinfo, pass, info);
}

static void render_finding(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, spark_pass *pass,
                           const kr_finding *f)
{
    const char *code = kr_finding_str(f->code);
    proto_item *fi;
    proto_tree *ft;
    expert_field *ei;
    char info[128];

    fi = proto_tree_add_string_format_value(tree, spark_hf.finding, tvb, 0, 0, code ? code : "?", "%s: %s",
                                            code ? code : "?", f->text);
    proto_item_set_generated(fi);
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
    expert_add_info_format(pinfo, fi, ei, "%s: %s", code ? code : "finding", f->text);
    g_snprintf(info, sizeof info, "[%s]", code ? code : "finding");
    info_add(pinfo, pass, info);
}

static void render_close(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, spark_pass *pass,
                         const spark_close_rec *c)
{
    char text[96];
    proto_item *it;

    g_snprintf(text, sizeof text, "%s by the %s", c->rst ? "reset" : "closed",
               c->by == KR_D2S ? "device" : "cloud");
    it = add_gen_string(tree, spark_hf.close, tvb, text);
    expert_add_info_format(pinfo, it, &spark_ei.closed, "Connection %s", text);
    text[0] = g_ascii_toupper(text[0]);
    info_add(pinfo, pass, text);
}

/* Shows the events of this frame's record not yet shown in this pass. */
void render_rec(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, spark_frame_rec *rec)
{
    spark_pass *pass = pass_get(pinfo);
    guint i, n;

    if (!pass->tree) {
        pass->root = proto_tree_add_item(tree, proto_spark, tvb, 0, -1, ENC_NA);
        pass->tree = proto_item_add_subtree(pass->root, spark_ett.top);
    }
    if (!pass->header_done) {
        proto_item *it;
        if (rec->keyfile_error)
            expert_add_info_format(pinfo, pass->root, &spark_ei.keyfile, "%s", rec->keyfile_error);
        if (rec->gap) {
            it = proto_tree_add_uint64(pass->tree, spark_hf.gap, tvb, 0, 0, rec->gap);
            proto_item_set_generated(it);
            expert_add_info_format(pinfo, it, &spark_ei.gap,
                                   "%" G_GUINT64_FORMAT " bytes before this segment are missing from the capture",
                                   rec->gap);
        }
        if (rec->retransmitted) {
            it = proto_tree_add_uint(pass->tree, spark_hf.retransmitted, tvb, 0, 0, rec->retransmitted);
            proto_item_set_generated(it);
            expert_add_info_format(pinfo, it, &spark_ei.retransmitted,
                                   "%u bytes were seen before (retransmission): not given to the tracker again",
                                   rec->retransmitted);
        }
    }
    n = wmem_array_get_count(rec->events);
    for (i = pass->rendered; i < n; i++) {
        spark_ev *ev = (spark_ev *)wmem_array_index(rec->events, i);
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
        if (rec->completed_in) {
            proto_item *c = proto_tree_add_uint(pass->tree, spark_hf.pdu_completed_in, tvb, 0, 0, rec->completed_in);
            proto_item_set_generated(c);
            g_snprintf(info, sizeof info, "[PDU segment, completed in frame %u]", rec->completed_in);
        } else {
            g_snprintf(info, sizeof info, "[PDU segment]");
        }
        proto_item_append_text(it, " (part of a PDU completed in a later segment)");
        info_add(pinfo, pass, info);
    } else if (!pass->header_done && n == 0 && rec->retransmitted) {
        info_add(pinfo, pass, "[retransmission]");
    }
    pass->header_done = TRUE;
    pass->rendered = n;
}