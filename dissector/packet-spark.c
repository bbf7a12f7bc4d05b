/* sparkwire Wireshark plugin: the Spark Core / Particle device-cloud protocol on TCP 5683.
 *
 * Glue only. libkeyring's tracker (keyring/tracker.h) splits the two byte streams of a connection into
 * handshake steps and frames, opens what the keyfile's keys allow, decrypts the session and names a
 * verdict. This file:
 *   - feeds the tracker the new, in-order bytes of each TCP segment, once, on the first pass;
 *   - records what the tracker reports against the frame that completed it (file scope);
 *   - renders those records on every pass (no crypto after the first pass, so a second pass, a display
 *     filter or a click on a packet shows the same thing);
 *   - hands each decrypted CoAP message to Wireshark's own CoAP dissector.
 * A postdissector sees every frame of a Spark connection (also the ones without payload) to tell the
 * tracker about FIN and RST.
 */
#include <math.h>
#include <string.h>

#include <epan/packet.h>
#include <epan/conversation.h>
#include <epan/expert.h>
#include <epan/prefs.h>
#include <epan/proto_data.h>
#include <wsutil/report_message.h>
#include <epan/to_str.h>
#include <epan/dissectors/packet-tcp.h>
#include <wsutil/wmem/wmem.h>
#include <glib/gstdio.h>

#include <keyring/keyring.h>

#include "spark.h"

#define SPARK_TCP_PORT 5683

/* TCP flag bits as in the TCP header */
#define SPARK_TH_FIN 0x01
#define SPARK_TH_RST 0x04

/* ---- registration handles ---------------------------------------------------------------------- */

static int proto_spark = -1;
static dissector_handle_t spark_handle;
static dissector_handle_t spark_post_handle;
static dissector_handle_t coap_handle;
static int hf_tcp_flags_id = -1;
static int hf_tcp_seq_id = -1;
static int hf_tcp_payload_id = -1;

static int hf_spark_step = -1;
static int hf_spark_direction = -1;
static int hf_spark_pdu_index = -1;
static int hf_spark_stream_offset = -1;
static int hf_spark_pdu_first_frame = -1;
static int hf_spark_pdu_completed_in = -1;
static int hf_spark_continuation = -1;
static int hf_spark_retransmitted = -1;
static int hf_spark_gap = -1;
static int hf_spark_device_id = -1;
static int hf_spark_nonce = -1;
static int hf_spark_nonce_ok = -1;
static int hf_spark_id_block = -1;
static int hf_spark_id_block_opened = -1;
static int hf_spark_id_plain_len = -1;
static int hf_spark_offered_key_known = -1;
static int hf_spark_session_block = -1;
static int hf_spark_session_e = -1;
static int hf_spark_signature = -1;
static int hf_spark_session_opened = -1;
static int hf_spark_signature_valid = -1;
static int hf_spark_signature_ok = -1;
static int hf_spark_hs_result = -1;
static int hf_spark_generation = -1;
static int hf_spark_note = -1;
static int hf_spark_frame_length = -1;
static int hf_spark_frame_ciphertext = -1;
static int hf_spark_frame_state = -1;
static int hf_spark_data = -1;
static int hf_spark_msg_kind = -1;
static int hf_spark_msg_summary = -1;
static int hf_spark_msg_index = -1;
static int hf_spark_uri = -1;
static int hf_spark_query = -1;
static int hf_spark_event_name = -1;
static int hf_spark_event_data = -1;
static int hf_spark_event_ttl = -1;
static int hf_spark_event_public = -1;
static int hf_spark_function_name = -1;
static int hf_spark_function_arg = -1;
static int hf_spark_function_result = -1;
static int hf_spark_variable_name = -1;
static int hf_spark_variable_value = -1;
static int hf_spark_variable_type = -1;
static int hf_spark_time = -1;
static int hf_spark_product_id = -1;
static int hf_spark_product_version = -1;
static int hf_spark_hello_flags = -1;
static int hf_spark_platform_id = -1;
static int hf_spark_ota_chunk_index = -1;
static int hf_spark_ota_crc = -1;
static int hf_spark_ota_crc_ok = -1;
static int hf_spark_ota_chunk_size = -1;
static int hf_spark_response_to = -1;
static int hf_spark_response_in = -1;
static int hf_spark_response_time = -1;
static int hf_spark_answers = -1;
static int hf_spark_verdict = -1;
static int hf_spark_verdict_meaning = -1;
static int hf_spark_verdict_evidence = -1;
static int hf_spark_verdict_proven = -1;
static int hf_spark_verdict_final = -1;
static int hf_spark_verdict_candidate = -1;
static int hf_spark_verdict_last_step = -1;
static int hf_spark_finding = -1;
static int hf_spark_finding_text = -1;
static int hf_spark_close = -1;

static gint ett_spark = -1;
static gint ett_spark_step = -1;
static gint ett_spark_session_block = -1;
static gint ett_spark_msg = -1;
static gint ett_spark_verdict = -1;
static gint ett_spark_finding = -1;

static expert_field ei_spark_verdict_ok = EI_INIT;
static expert_field ei_spark_verdict_proven = EI_INIT;
static expert_field ei_spark_verdict_inferred = EI_INIT;
static expert_field ei_spark_verdict_not_spark = EI_INIT;
static expert_field ei_spark_verdict_capture = EI_INIT;
static expert_field ei_spark_not_opened = EI_INIT;
static expert_field ei_spark_no_key = EI_INIT;
static expert_field ei_spark_not_decrypted = EI_INIT;
static expert_field ei_spark_partial = EI_INIT;
static expert_field ei_spark_decrypt_error = EI_INIT;
static expert_field ei_spark_not_spark = EI_INIT;
static expert_field ei_spark_nonce_bad = EI_INIT;
static expert_field ei_spark_signature_bad = EI_INIT;
static expert_field ei_spark_finding_gap = EI_INIT;
static expert_field ei_spark_finding_ota = EI_INIT;
static expert_field ei_spark_finding_counter = EI_INIT;
static expert_field ei_spark_finding_decrypt = EI_INIT;
static expert_field ei_spark_gap = EI_INIT;
static expert_field ei_spark_retransmitted = EI_INIT;
static expert_field ei_spark_keyfile = EI_INIT;
static expert_field ei_spark_closed = EI_INIT;

/* ---- preferences and keys ---------------------------------------------------------------------- */

static const char *pref_keyfile = "";
static gboolean pref_heuristic_strict = TRUE;

static kr_keyfile *spark_keys;          /* never NULL while a file is open */
static char *spark_keys_path;           /* what spark_keys was loaded from ("" = no keyfile) */
static char *spark_keys_error;          /* the load error, NULL when the keyfile loaded */
static gboolean spark_keys_dirty = TRUE;
static gint64 spark_keys_mtime;         /* of the keyfile when it was read: an edited keyfile is read again */

/* ---- per-connection state (file scope) -------------------------------------------------------- */

typedef enum spark_ev_type {
    SPARK_EV_STEP = 1,
    SPARK_EV_FINDING,
    SPARK_EV_VERDICT,
    SPARK_EV_CLOSE
} spark_ev_type;

/* What the plugin keeps of a kr_message / kr_step: the fields it shows, strings only when set ("" else).
 * A capture holds many of them, so they stay small. */
typedef struct spark_msg_info {
    kr_dir dir;
    uint32_t index;
    kr_msg_kind kind;
    const char *uri, *query, *summary, *name, *arg, *value;
    kr_var_type var_type;
    bool event_public;
    uint32_t ttl;
    uint16_t product_id, product_version;
    uint8_t hello_flags;
    int platform_id;
    uint32_t unix_time;
    uint32_t chunk_crc;
    kr_tri chunk_crc_ok;
    int chunk_index;
    uint32_t chunk_size;
    int answers;
    kr_msg_kind answers_kind;
    double response_time;
} spark_msg_info;

typedef struct spark_step_info {
    kr_step_kind kind;
    kr_dir dir;
    uint64_t offset;
    uint32_t length;
    uint32_t index;
    bool device_id_known;         /* this step revealed the device id (then it is the record's conn_id) */
    kr_tri id_block_opened;
    size_t id_plain_len;
    kr_tri nonce_ok;
    kr_tri offered_key_known;
    kr_tri session_opened;
    bool session_known;
    kr_tri signature_valid;
    kr_tri signature_ok;
    kr_hs_result hs_result;
    kr_frame_state frame_state;
    size_t plaintext_len;
    size_t plaintext_skip;
    const char *note;
} spark_step_info;

typedef struct spark_msg_rec {
    spark_msg_info m;
    guint32 frame;
    guint32 response_in;          /* frame of the answer (request side), 0 when none seen */
    guint32 request_frame;        /* frame of the request this answers, 0 none */
} spark_msg_rec;

typedef struct spark_step_rec {
    spark_step_info s;
    guint8 *bytes;                /* the PDU, kept only when it is not whole in this frame (in_packet < 0) */
    guint8 *plaintext;
    spark_msg_rec *msg;
    gint in_packet;               /* offset of the PDU in this frame's TCP payload, -1 when it spans segments */
    guint32 first_frame;          /* frame holding the PDU's first byte */
    gboolean conn_id_known;       /* the connection's device id, known when this step completed */
    char conn_id[KR_DEVICE_ID_HEX_LEN + 1];
    int generation;
} spark_step_rec;

typedef struct spark_verdict_rec {
    kr_verdict v;
    gboolean id_known;            /* the connection's device id when the verdict was given */
    char id[KR_DEVICE_ID_HEX_LEN + 1];
    int generation;
} spark_verdict_rec;

typedef struct spark_close_rec {
    kr_dir by;
    gboolean rst;
} spark_close_rec;

typedef struct spark_ev {
    spark_ev_type type;
    union {
        spark_step_rec *step;
        kr_finding *finding;
        spark_verdict_rec *verdict;
        spark_close_rec *close;
    } u;
} spark_ev;

struct spark_conv;

/* Everything one frame showed on the first pass. */
typedef struct spark_frame_rec {
    guint32 frame;
    wmem_array_t *events;         /* spark_ev, in the order the tracker reported them */
    guint32 fed;                  /* new stream bytes this frame gave the tracker */
    guint32 retransmitted;        /* bytes already seen, dropped */
    guint64 gap;                  /* bytes missing before this frame's bytes */
    guint32 completed_in;         /* the bytes continue a PDU completed in that frame (0 unknown) */
    guint64 range_start;          /* stream offsets of the bytes it gave the tracker (while some of */
    guint64 range_end;            /* them belong to a PDU not yet complete) */
    const char *keyfile_error;    /* shown on the first frame of a connection */
} spark_frame_rec;

typedef struct spark_conv {
    kr_tracker *tracker;
    address server_addr;
    guint32 server_port;
    gboolean finished;
    gboolean closed[2];
    gboolean reset[2];
    gboolean seq_known[2];
    guint32 next_seq[2];
    guint64 stream_pos[2];        /* bytes of each direction given to the tracker, gaps included */
    /* during a feed */
    spark_frame_rec *cur;
    kr_dir chunk_dir;
    guint64 chunk_start;
    guint32 chunk_len;
    const guint8 *chunk;
    gint chunk_tvb_offset;
    gboolean chunk_active;
    guint64 last_step_end[2];
    gboolean step_in_chunk;
    wmem_array_t *pending[2];     /* spark_frame_rec * waiting for the PDU their bytes start */
    wmem_array_t *messages;       /* spark_msg_rec *, by message index */
    spark_frame_rec *last_rec;    /* the last frame of this connection with a record */
    double last_ts;               /* time of the last bytes or close given to the tracker */
} spark_conv;

static GPtrArray *spark_trackers; /* every live tracker, freed by the cleanup routine */
static GPtrArray *spark_convs;    /* every connection of the open file (file scope), for the end of the read */

/* ---- small helpers ---------------------------------------------------------------------------- */

static double ts_of(const nstime_t *t)
{
    return (double)t->secs + (double)t->nsecs / 1e9;
}

static const value_string spark_dir_vals[] = {
    { KR_D2S, "device->cloud" },
    { KR_S2D, "cloud->device" },
    { 0, NULL }
};

/* the words come from libkeyring (keyring/names.h, laid out as a value_string) */
G_STATIC_ASSERT(sizeof(kr_name) == sizeof(value_string));
#define spark_frame_state_vals ((const value_string *)kr_frame_state_names)

/* the words come from libkeyring (keyring/names.h, laid out as a value_string) */
#define spark_var_type_vals ((const value_string *)kr_var_type_names)

/* the words come from libkeyring (keyring/names.h, laid out as a value_string) */
#define spark_platform_vals ((const value_string *)kr_platform_names)
#define spark_generation_vals ((const value_string *)kr_generation_names)

/* ---- keys ------------------------------------------------------------------------------------- */

static void spark_keys_unload(void)
{
    kr_keyfile_free(spark_keys);
    spark_keys = NULL;
    g_free(spark_keys_path);
    spark_keys_path = NULL;
    g_free(spark_keys_error);
    spark_keys_error = NULL;
}

/* Loads the keyfile named by the preference, when it changed. Only called while no tracker is alive
 * (trackers point into the keyfile). A bad keyfile is reported once and the file is dissected
 * without keys. */
static void spark_keys_load(void)
{
    const char *path = pref_keyfile ? pref_keyfile : "";
    gint64 mtime = 0;
    GStatBuf st;

    if (path[0] != '\0' && g_stat(path, &st) == 0)
        mtime = (gint64)st.st_mtime;
    if (spark_keys && !spark_keys_dirty && g_strcmp0(spark_keys_path, path) == 0 && mtime == spark_keys_mtime)
        return;
    spark_keys_unload();
    spark_keys_dirty = FALSE;
    spark_keys_path = g_strdup(path);
    spark_keys_mtime = mtime;
    if (path[0] != '\0') {
        kr_err err;
        memset(&err, 0, sizeof err);
        spark_keys = kr_keyfile_load(path, &err);
        if (!spark_keys) {
            spark_keys_error = g_strdup_printf("Spark keyfile %s was not loaded: %s (fix the keyfile, or clear "
                                               "the preference spark.keyfile; until then nothing is decrypted)",
                                               path, err.msg[0] ? err.msg : "unknown error");
            report_failure("%s", spark_keys_error);
        }
    }
    if (!spark_keys)
        spark_keys = kr_keyfile_new_empty();
}

static void spark_prefs_apply(void)
{
    /* The keyfile is (re)read when the next dissection starts (init routine), after the old trackers
     * are gone; changing this preference makes Wireshark dissect the file again. */
    spark_keys_dirty = TRUE;
}

/* ---- recording what the tracker reports (first pass only) ------------------------------------- */

static spark_frame_rec *rec_get(packet_info *pinfo)
{
    return (spark_frame_rec *)p_get_proto_data(wmem_file_scope(), pinfo, proto_spark, 0);
}

static spark_frame_rec *rec_get_or_new(packet_info *pinfo, spark_conv *conv)
{
    spark_frame_rec *rec = rec_get(pinfo);
    if (!rec) {
        rec = wmem_new0(wmem_file_scope(), spark_frame_rec);
        rec->frame = pinfo->num;
        rec->events = wmem_array_new(wmem_file_scope(), sizeof(spark_ev));
        p_add_proto_data(wmem_file_scope(), pinfo, proto_spark, 0, rec);
    }
    conv->last_rec = rec;
    return rec;
}

static void rec_add(spark_frame_rec *rec, spark_ev_type type, void *p)
{
    spark_ev ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    switch (type) {
    case SPARK_EV_STEP: ev.u.step = (spark_step_rec *)p; break;
    case SPARK_EV_FINDING: ev.u.finding = (kr_finding *)p; break;
    case SPARK_EV_VERDICT: ev.u.verdict = (spark_verdict_rec *)p; break;
    case SPARK_EV_CLOSE: ev.u.close = (spark_close_rec *)p; break;
    }
    wmem_array_append_one(rec->events, ev);
}

static spark_step_rec *rec_last_step(spark_frame_rec *rec)
{
    guint n = wmem_array_get_count(rec->events);
    while (n > 0) {
        spark_ev *ev = (spark_ev *)wmem_array_index(rec->events, --n);
        if (ev->type == SPARK_EV_STEP)
            return ev->u.step;
    }
    return NULL;
}

static const char *keep_str(const char *text)
{
    return text[0] ? wmem_strdup(wmem_file_scope(), text) : "";
}

static void keep_step(spark_step_info *d, const kr_step *s)
{
    d->kind = s->kind;
    d->dir = s->dir;
    d->offset = s->offset;
    d->length = s->length;
    d->index = s->index;
    d->device_id_known = s->device_id_known;
    d->id_block_opened = s->id_block_opened;
    d->id_plain_len = s->id_plain_len;
    d->nonce_ok = s->nonce_ok;
    d->offered_key_known = s->offered_key_known;
    d->session_opened = s->session_opened;
    d->session_known = s->session_known;
    d->signature_valid = s->signature_valid;
    d->signature_ok = s->signature_ok;
    d->hs_result = s->hs_result;
    d->frame_state = s->frame_state;
    d->plaintext_len = s->plaintext ? s->plaintext_len : 0;
    d->plaintext_skip = s->plaintext_skip;
    d->note = keep_str(s->note);
}

static void keep_message(spark_msg_info *d, const kr_message *m)
{
    d->dir = m->dir;
    d->index = m->index;
    d->kind = m->kind;
    d->uri = keep_str(m->uri);
    d->query = keep_str(m->query);
    d->summary = keep_str(m->summary);
    d->name = keep_str(m->name);
    d->arg = keep_str(m->arg);
    d->value = keep_str(m->value);
    d->var_type = m->var_type;
    d->event_public = m->event_public;
    d->ttl = m->ttl;
    d->product_id = m->product_id;
    d->product_version = m->product_version;
    d->hello_flags = m->hello_flags;
    d->platform_id = m->platform_id;
    d->unix_time = m->unix_time;
    d->chunk_crc = m->chunk_crc;
    d->chunk_crc_ok = m->chunk_crc_ok;
    d->chunk_index = m->chunk_index;
    d->chunk_size = m->chunk_size;
    d->answers = m->answers;
    d->answers_kind = m->answers_kind;
    d->response_time = m->response_time;
}

static void cb_step(void *ud, const kr_step *s)
{
    spark_conv *conv = (spark_conv *)ud;
    spark_frame_rec *rec = conv->cur;
    spark_step_rec *sr;
    const kr_conn_info *info;

    if (!rec)
        return;
    sr = wmem_new0(wmem_file_scope(), spark_step_rec);
    keep_step(&sr->s, s);
    if (s->plaintext && s->plaintext_len > 0)
        sr->plaintext = (guint8 *)wmem_memdup(wmem_file_scope(), s->plaintext, s->plaintext_len);

    /* Where is it in this frame? Only where the PDU lies whole in the bytes being fed. */
    sr->in_packet = -1;
    if (conv->chunk_active && s->dir == conv->chunk_dir && s->offset >= conv->chunk_start &&
        s->bytes && s->length > 0) {
        guint64 pos = s->offset - conv->chunk_start;
        if (pos + s->length <= conv->chunk_len && memcmp(conv->chunk + pos, s->bytes, s->length) == 0)
            sr->in_packet = conv->chunk_tvb_offset + (gint)pos;
    }
    if (sr->in_packet < 0 && s->bytes && s->length > 0)   /* later passes show it from a copy */
        sr->bytes = (guint8 *)wmem_memdup(wmem_file_scope(), s->bytes, s->length);
    /* The earlier frames whose bytes this PDU holds now know where it completed; the one holding its
     * first byte is where it starts. Frames whose bytes all lie before this PDU's end are done. */
    sr->first_frame = rec->frame;
    {
        wmem_array_t *pend = conv->pending[s->dir];
        wmem_array_t *keep = NULL;
        guint64 s0 = s->offset, s1 = s->offset + s->length;
        gboolean start_found = FALSE;
        guint i, n = wmem_array_get_count(pend);
        for (i = 0; i < n; i++) {
            spark_frame_rec *p = *(spark_frame_rec **)wmem_array_index(pend, i);
            if (p != rec && p->range_end > s0 && p->range_start < s1) {
                if (p->completed_in == 0)
                    p->completed_in = rec->frame;
                if (sr->in_packet < 0 && p->range_start <= s0 && !start_found) {
                    sr->first_frame = p->frame;
                    start_found = TRUE;
                }
            }
            if (p->range_end > s1) {
                if (!keep)
                    keep = wmem_array_new(wmem_file_scope(), sizeof(spark_frame_rec *));
                wmem_array_append_one(keep, p);
            }
        }
        if (sr->in_packet < 0 && !start_found && n > 0)
            sr->first_frame = (*(spark_frame_rec **)wmem_array_index(pend, 0))->frame;
        if (n > 0)
            conv->pending[s->dir] = keep ? keep : wmem_array_new(wmem_file_scope(), sizeof(spark_frame_rec *));
    }
    if (conv->chunk_active && s->dir == conv->chunk_dir)
        conv->step_in_chunk = TRUE;
    conv->last_step_end[s->dir] = s->offset + s->length;

    info = kr_tracker_info(conv->tracker);
    if (info) {
        sr->conn_id_known = info->device_id_known;
        if (info->device_id_known)
            g_strlcpy(sr->conn_id, info->device_id_hex, sizeof sr->conn_id);
        sr->generation = info->generation;
    }
    if (s->device_id_known) {
        sr->conn_id_known = TRUE;
        g_strlcpy(sr->conn_id, s->device_id_hex, sizeof sr->conn_id);
    }
    rec_add(rec, SPARK_EV_STEP, sr);
}

static void cb_message(void *ud, const kr_message *m)
{
    spark_conv *conv = (spark_conv *)ud;
    spark_frame_rec *rec = conv->cur;
    spark_step_rec *sr;
    spark_msg_rec *mr;

    if (!rec)
        return;
    mr = wmem_new0(wmem_file_scope(), spark_msg_rec);
    keep_message(&mr->m, m);
    mr->frame = rec->frame;
    if (m->answers >= 0 && (guint)m->answers < wmem_array_get_count(conv->messages)) {
        spark_msg_rec *req = *(spark_msg_rec **)wmem_array_index(conv->messages, (guint)m->answers);
        if (req) {
            mr->request_frame = req->frame;
            if (req->response_in == 0)
                req->response_in = rec->frame;
        }
    }
    while (wmem_array_get_count(conv->messages) <= m->index) {
        spark_msg_rec *none = NULL;
        wmem_array_append_one(conv->messages, none);
    }
    *(spark_msg_rec **)wmem_array_index(conv->messages, m->index) = mr;

    sr = rec_last_step(rec);
    if (sr && !sr->msg) {
        sr->msg = mr;
    } else {
        /* a message without its own step in this frame: give it an empty step of its own */
        spark_step_rec *lone = wmem_new0(wmem_file_scope(), spark_step_rec);
        lone->s.kind = KR_STEP_FRAME;
        lone->s.dir = m->dir;
        lone->s.frame_state = KR_FRAME_DECRYPTED;
        lone->s.note = "";
        lone->in_packet = -1;
        lone->first_frame = rec->frame;
        lone->msg = mr;
        rec_add(rec, SPARK_EV_STEP, lone);
    }
}

static void cb_finding(void *ud, const kr_finding *f)
{
    spark_conv *conv = (spark_conv *)ud;
    if (!conv->cur)
        return;
    rec_add(conv->cur, SPARK_EV_FINDING, wmem_memdup(wmem_file_scope(), f, sizeof *f));
}

static void cb_verdict(void *ud, const kr_verdict *v)
{
    spark_conv *conv = (spark_conv *)ud;
    spark_verdict_rec *vr;
    const kr_conn_info *info;

    if (!conv->cur)
        return;
    vr = wmem_new0(wmem_file_scope(), spark_verdict_rec);
    vr->v = *v;
    info = kr_tracker_info(conv->tracker);
    if (info) {
        vr->id_known = info->device_id_known;
        if (info->device_id_known)
            g_strlcpy(vr->id, info->device_id_hex, sizeof vr->id);
        vr->generation = info->generation;
    }
    rec_add(conv->cur, SPARK_EV_VERDICT, vr);
}

static const kr_callbacks spark_callbacks = { cb_step, cb_message, cb_finding, cb_verdict };

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
    if (spark_keys_dirty)
        spark_keys_unload();
}

static void spark_shutdown(void)
{
    spark_keys_unload();
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

/* ---- rendering (every pass) ------------------------------------------------------------------- */

typedef struct spark_pass {
    proto_tree *tree;             /* the Spark subtree of this frame in this pass */
    proto_item *root;
    guint rendered;               /* events of the frame record already shown in this pass */
    gboolean info_started;
    gboolean header_done;         /* gap, retransmission and segment notes shown */
    gboolean main_ran;            /* the TCP payload went through dissect_spark in this pass */
} spark_pass;

static spark_pass *pass_get(packet_info *pinfo)
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

    mt = proto_tree_add_subtree_format(tree, tvb, 0, 0, ett_spark_msg, NULL, "Spark message: %s",
                                       m->summary[0] ? m->summary : kr_msg_kind_str(m->kind));
    add_gen_string(mt, hf_spark_msg_kind, tvb, kr_msg_kind_str(m->kind));
    if (m->summary[0])
        add_gen_string(mt, hf_spark_msg_summary, tvb, m->summary);
    it = proto_tree_add_uint(mt, hf_spark_msg_index, tvb, 0, 0, m->index);
    proto_item_set_generated(it);
    if (m->uri[0])
        add_gen_string(mt, hf_spark_uri, tvb, m->uri);
    if (m->query[0])
        add_gen_string(mt, hf_spark_query, tvb, m->query);

    switch (m->kind) {
    case KR_MSG_HELLO:
        if (m->dir == KR_D2S) {
            it = proto_tree_add_uint(mt, hf_spark_product_id, tvb, 0, 0, m->product_id);
            proto_item_set_generated(it);
            it = proto_tree_add_uint(mt, hf_spark_product_version, tvb, 0, 0, m->product_version);
            proto_item_set_generated(it);
            it = proto_tree_add_uint(mt, hf_spark_hello_flags, tvb, 0, 0, m->hello_flags);
            proto_item_set_generated(it);
            if (m->platform_id >= 0) {
                it = proto_tree_add_uint(mt, hf_spark_platform_id, tvb, 0, 0, (guint32)m->platform_id);
                proto_item_set_generated(it);
            }
        }
        break;
    case KR_MSG_EVENT:
        add_gen_string(mt, hf_spark_event_name, tvb, m->name);
        add_gen_string(mt, hf_spark_event_data, tvb, m->value);
        it = proto_tree_add_uint(mt, hf_spark_event_ttl, tvb, 0, 0, m->ttl);
        proto_item_set_generated(it);
        it = proto_tree_add_boolean(mt, hf_spark_event_public, tvb, 0, 0, m->event_public);
        proto_item_set_generated(it);
        break;
    case KR_MSG_SUBSCRIBE:
        if (m->name[0])
            add_gen_string(mt, hf_spark_event_name, tvb, m->name);
        break;
    case KR_MSG_FUNCTION_CALL:
        add_gen_string(mt, hf_spark_function_name, tvb, m->name);
        add_gen_string(mt, hf_spark_function_arg, tvb, m->arg);
        break;
    case KR_MSG_FUNCTION_RETURN:
        if (m->name[0])
            add_gen_string(mt, hf_spark_function_name, tvb, m->name);
        add_gen_string(mt, hf_spark_function_result, tvb, m->value);
        break;
    case KR_MSG_VARIABLE_REQUEST:
        add_gen_string(mt, hf_spark_variable_name, tvb, m->name);
        break;
    case KR_MSG_VARIABLE_VALUE:
        if (m->name[0])
            add_gen_string(mt, hf_spark_variable_name, tvb, m->name);
        add_gen_string(mt, hf_spark_variable_value, tvb, m->value);
        it = proto_tree_add_uint(mt, hf_spark_variable_type, tvb, 0, 0, m->var_type);
        proto_item_set_generated(it);
        break;
    case KR_MSG_TIME_RESPONSE: {
        nstime_t t;
        t.secs = (time_t)m->unix_time;
        t.nsecs = 0;
        it = proto_tree_add_time(mt, hf_spark_time, tvb, 0, 0, &t);
        proto_item_set_generated(it);
        break;
    }
    case KR_MSG_CHUNK:
        if (m->chunk_index >= 0) {
            it = proto_tree_add_uint(mt, hf_spark_ota_chunk_index, tvb, 0, 0, (guint32)m->chunk_index);
            proto_item_set_generated(it);
        }
        it = proto_tree_add_uint(mt, hf_spark_ota_crc, tvb, 0, 0, m->chunk_crc);
        proto_item_set_generated(it);
        add_tri(mt, hf_spark_ota_crc_ok, tvb, m->chunk_crc_ok);
        if (m->chunk_size) {
            it = proto_tree_add_uint(mt, hf_spark_ota_chunk_size, tvb, 0, 0, m->chunk_size);
            proto_item_set_generated(it);
        }
        break;
    case KR_MSG_CHUNK_RECEIVED:
        if (m->chunk_index >= 0) {
            it = proto_tree_add_uint(mt, hf_spark_ota_chunk_index, tvb, 0, 0, (guint32)m->chunk_index);
            proto_item_set_generated(it);
        }
        add_tri(mt, hf_spark_ota_crc_ok, tvb, m->chunk_crc_ok);
        break;
    case KR_MSG_CHUNK_MISSED:
        if (m->chunk_index >= 0) {
            it = proto_tree_add_uint(mt, hf_spark_ota_chunk_index, tvb, 0, 0, (guint32)m->chunk_index);
            proto_item_set_generated(it);
        }
        break;
    default:
        if (m->name[0])
            add_gen_string(mt, hf_spark_variable_name, tvb, m->name);
        break;
    }

    if (m->answers >= 0) {
        add_gen_string(mt, hf_spark_answers, tvb, kr_msg_kind_str(m->answers_kind));
        if (mr->request_frame) {
            it = proto_tree_add_uint(mt, hf_spark_response_to, tvb, 0, 0, mr->request_frame);
            proto_item_set_generated(it);
            {
                nstime_t d;
                double us = floor(m->response_time * 1e6 + 0.5);   /* captures count microseconds */
                d.secs = (time_t)(us / 1e6);
                d.nsecs = (int)(us - (double)d.secs * 1e6) * 1000;
                it = proto_tree_add_time(mt, hf_spark_response_time, tvb, 0, 0, &d);
                proto_item_set_generated(it);
            }
        }
    }
    if (mr->response_in) {
        it = proto_tree_add_uint(mt, hf_spark_response_in, tvb, 0, 0, mr->response_in);
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

    st = proto_tree_add_subtree_format(tree, stvb, off, (gint)len, ett_spark_step, &sti, "%s, %u bytes, %s",
                                       title, s->length, val_to_str_const(s->dir, spark_dir_vals, "?"));
    add_gen_string(st, hf_spark_step, stvb, kr_step_str(s->kind));
    it = proto_tree_add_uint(st, hf_spark_direction, stvb, 0, 0, s->dir);
    proto_item_set_generated(it);
    if (len > 0) {
        it = proto_tree_add_uint(st, hf_spark_pdu_index, stvb, 0, 0, s->index);
        proto_item_set_generated(it);
        it = proto_tree_add_uint64(st, hf_spark_stream_offset, stvb, 0, 0, s->offset);
        proto_item_set_generated(it);
    }
    if (sr->first_frame && sr->first_frame != pinfo->num) {
        it = proto_tree_add_uint(st, hf_spark_pdu_first_frame, stvb, 0, 0, sr->first_frame);
        proto_item_set_generated(it);
    }
    if (sr->conn_id_known) {
        it = add_gen_string(st, hf_spark_device_id, stvb, sr->conn_id);
        (void)it;
    }
    if (sr->generation) {
        it = proto_tree_add_uint(st, hf_spark_generation, stvb, 0, 0, (guint32)sr->generation);
        proto_item_set_generated(it);
    }

    g_strlcpy(info, title, sizeof info);
    switch (s->kind) {
    case KR_STEP_NONCE:
        if (len >= KR_NONCE_LEN)
            proto_tree_add_item(st, hf_spark_nonce, stvb, off, KR_NONCE_LEN, ENC_NA);
        break;
    case KR_STEP_IDBLOCK:
        if (len >= KR_IDBLOCK_LEN)
            proto_tree_add_item(st, hf_spark_id_block, stvb, off, KR_IDBLOCK_LEN, ENC_NA);
        add_tri(st, hf_spark_id_block_opened, stvb, s->id_block_opened);
        if (s->id_block_opened == KR_YES) {
            it = proto_tree_add_uint(st, hf_spark_id_plain_len, stvb, 0, 0, (guint32)s->id_plain_len);
            proto_item_set_generated(it);
        }
        it = proto_tree_add_boolean(st, hf_spark_nonce_ok, stvb, 0, 0, s->nonce_ok == KR_YES);
        if (s->nonce_ok == KR_UNKNOWN)
            proto_item_append_text(it, " (unknown: the id block was not opened)");
        proto_item_set_generated(it);
        if (s->nonce_ok == KR_UNKNOWN)
            proto_item_set_hidden(it);
        if (s->nonce_ok == KR_NO)
            expert_add_info_format(pinfo, it, &ei_spark_nonce_bad,
                                   "The id block does not echo the nonce the cloud sent");
        add_tri(st, hf_spark_offered_key_known, stvb, s->offered_key_known);
        if (s->id_block_opened == KR_NO)
            expert_add_info_format(pinfo, sti, &ei_spark_not_opened, "Device ID block not opened: %s",
                                   s->note[0] ? s->note : kr_hs_result_str(s->hs_result));
        if (s->device_id_known)
            g_snprintf(info, sizeof info, "%s (device %s)", title, sr->conn_id);
        break;
    case KR_STEP_SESSIONBLOCK: {
        proto_tree *bt;
        if (len >= KR_SESSIONBLOCK_LEN) {
            it = proto_tree_add_item(st, hf_spark_session_block, stvb, off, KR_SESSIONBLOCK_LEN, ENC_NA);
            bt = proto_item_add_subtree(it, ett_spark_session_block);
            proto_tree_add_item(bt, hf_spark_session_e, stvb, off, KR_SESSION_E_LEN, ENC_NA);
            proto_tree_add_item(bt, hf_spark_signature, stvb, off + KR_SESSION_E_LEN, KR_SIGNATURE_LEN, ENC_NA);
        }
        add_tri(st, hf_spark_session_opened, stvb, s->session_opened);
        add_tri(st, hf_spark_signature_valid, stvb, s->signature_valid);
        add_tri(st, hf_spark_signature_ok, stvb, s->signature_ok);
        if (s->session_opened == KR_NO)
            expert_add_info_format(pinfo, sti, &ei_spark_not_opened, "Session key block not opened: %s",
                                   s->note[0] ? s->note : kr_hs_result_str(s->hs_result));
        else if (s->session_opened == KR_UNKNOWN && !s->session_known) {
            if (sr->conn_id_known)
                expert_add_info_format(pinfo, sti, &ei_spark_no_key,
                                       "No key for device %s: the session stays encrypted (add a line "
                                       "'device %s PATH' with its private key to the keyfile)",
                                       sr->conn_id, sr->conn_id);
            else
                expert_add_info_format(pinfo, sti, &ei_spark_no_key,
                                       "No device key: the session stays encrypted (add 'device * PATH' with "
                                       "the device's private key to the keyfile)");
        }
        if (s->signature_valid == KR_NO || s->signature_ok == KR_NO)
            expert_add_info_format(pinfo, sti, &ei_spark_signature_bad,
                                   "The session block's signature does not verify: %s",
                                   s->note[0] ? s->note : kr_hs_result_str(s->hs_result));
        break;
    }
    case KR_STEP_HELLO:
    case KR_STEP_FRAME:
        if (len >= 2) {
            proto_tree_add_item(st, hf_spark_frame_length, stvb, off, 2, ENC_BIG_ENDIAN);
            if (len > 2)
                proto_tree_add_item(st, hf_spark_frame_ciphertext, stvb, off + 2, (gint)len - 2, ENC_NA);
        }
        it = proto_tree_add_uint(st, hf_spark_frame_state, stvb, 0, 0, s->frame_state);
        proto_item_set_generated(it);
        switch (s->frame_state) {
        case KR_FRAME_NOT_DECRYPTED:
            if (g_ascii_strncasecmp(s->note, "not decrypted", 13) == 0)
                expert_add_info_format(pinfo, it, &ei_spark_not_decrypted, "%c%s", 'N', s->note + 1);
            else
                expert_add_info_format(pinfo, it, &ei_spark_not_decrypted, "Not decrypted: %s",
                                       s->note[0] ? s->note : "no session key");
            break;
        case KR_FRAME_PARTIAL:
            expert_add_info_format(pinfo, it, &ei_spark_partial,
                                   "Frame follows a gap: first block lost, %u bytes of the tail decrypted%s%s",
                                   (unsigned)s->plaintext_len, s->note[0] ? ": " : "", s->note);
            break;
        case KR_FRAME_DECRYPT_ERROR:
            expert_add_info_format(pinfo, it, &ei_spark_decrypt_error, "Decryption error: %s",
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
                proto_tree_add_item(st, hf_spark_data, ptvb, 0, -1, ENC_NA);
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
            proto_tree_add_item(st, hf_spark_data, stvb, off, (gint)len, ENC_NA);
        expert_add_info_format(pinfo, sti, &ei_spark_not_spark, "Not the Spark protocol: %s",
                               s->note[0] ? s->note : "these bytes do not fit the handshake or the frames");
        break;
    default:
        break;
    }
    if (s->note[0])
        add_gen_string(st, hf_spark_note, stvb, s->note);
    if (s->hs_result != KR_HS_OK)
        add_gen_string(st, hf_spark_hs_result, stvb, kr_hs_result_str(s->hs_result));
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

    vi = proto_tree_add_string_format_value(tree, hf_spark_verdict, tvb, 0, 0, code, "%s (%s)", code,
                                            meaning ? meaning : "");
    proto_item_set_generated(vi);
    vt = proto_item_add_subtree(vi, ett_spark_verdict);
    if (meaning)
        add_gen_string(vt, hf_spark_verdict_meaning, tvb, meaning);
    it = proto_tree_add_boolean(vt, hf_spark_verdict_proven, tvb, 0, 0, v->proven);
    proto_item_set_generated(it);
    it = proto_tree_add_boolean(vt, hf_spark_verdict_final, tvb, 0, 0, v->final);
    proto_item_set_generated(it);
    if (v->evidence[0])
        add_gen_string(vt, hf_spark_verdict_evidence, tvb, v->evidence);
    for (i = 0; i < v->n_candidates && i < KR_MAX_CANDIDATES; i++)
        add_gen_string(vt, hf_spark_verdict_candidate, tvb, kr_verdict_str(v->candidates[i]));
    if (v->last_step != KR_STEP_NONE)
        add_gen_string(vt, hf_spark_verdict_last_step, tvb, kr_step_str(v->last_step));
    if (vr->id_known)
        add_gen_string(vt, hf_spark_device_id, tvb, vr->id);
    if (vr->generation) {
        it = proto_tree_add_uint(vt, hf_spark_generation, tvb, 0, 0, (guint32)vr->generation);
        proto_item_set_generated(it);
    }

    switch (v->code) {
    case KR_V_OK:
        expert_add_info_format(pinfo, vi, &ei_spark_verdict_ok, "Verdict ok: %s",
                               v->evidence[0] ? v->evidence : meaning);
        break;
    case KR_V_NOT_SPARK:
        expert_add_info_format(pinfo, vi, &ei_spark_verdict_not_spark, "Verdict not-spark: %s",
                               v->evidence[0] ? v->evidence : meaning);
        break;
    case KR_V_INCOMPLETE:
    case KR_V_MID_SESSION:
        expert_add_info_format(pinfo, vi, &ei_spark_verdict_capture, "Verdict %s: %s%s%s", code,
                               v->code == KR_V_MID_SESSION ? "handshake not in capture: " : "",
                               v->evidence[0] ? v->evidence : meaning, "");
        break;
    default:
        if (v->proven)
            expert_add_info_format(pinfo, vi, &ei_spark_verdict_proven, "Verdict %s (proven by a key): %s",
                                   code, v->evidence[0] ? v->evidence : meaning);
        else
            expert_add_info_format(pinfo, vi, &ei_spark_verdict_inferred,
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

    fi = proto_tree_add_string_format_value(tree, hf_spark_finding, tvb, 0, 0, code ? code : "?", "%s: %s",
                                            code ? code : "?", f->text);
    proto_item_set_generated(fi);
    ft = proto_item_add_subtree(fi, ett_spark_finding);
    if (f->text[0])
        add_gen_string(ft, hf_spark_finding_text, tvb, f->text);
    switch (f->code) {
    case KR_FIND_GAP: ei = &ei_spark_finding_gap; break;
    case KR_FIND_OTA_INCOMPLETE:
    case KR_FIND_OTA_CHUNK_ERROR: ei = &ei_spark_finding_ota; break;
    case KR_FIND_COUNTER_ERROR: ei = &ei_spark_finding_counter; break;
    default: ei = &ei_spark_finding_decrypt; break;
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
    it = add_gen_string(tree, hf_spark_close, tvb, text);
    expert_add_info_format(pinfo, it, &ei_spark_closed, "Connection %s", text);
    text[0] = g_ascii_toupper(text[0]);
    info_add(pinfo, pass, text);
}

/* Shows the events of this frame's record not yet shown in this pass. */
static void render_rec(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, spark_frame_rec *rec)
{
    spark_pass *pass = pass_get(pinfo);
    guint i, n;

    if (!pass->tree) {
        pass->root = proto_tree_add_item(tree, proto_spark, tvb, 0, -1, ENC_NA);
        pass->tree = proto_item_add_subtree(pass->root, ett_spark);
    }
    if (!pass->header_done) {
        proto_item *it;
        if (rec->keyfile_error)
            expert_add_info_format(pinfo, pass->root, &ei_spark_keyfile, "%s", rec->keyfile_error);
        if (rec->gap) {
            it = proto_tree_add_uint64(pass->tree, hf_spark_gap, tvb, 0, 0, rec->gap);
            proto_item_set_generated(it);
            expert_add_info_format(pinfo, it, &ei_spark_gap,
                                   "%" G_GUINT64_FORMAT " bytes before this segment are missing from the capture",
                                   rec->gap);
        }
        if (rec->retransmitted) {
            it = proto_tree_add_uint(pass->tree, hf_spark_retransmitted, tvb, 0, 0, rec->retransmitted);
            proto_item_set_generated(it);
            expert_add_info_format(pinfo, it, &ei_spark_retransmitted,
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
        proto_item *it = proto_tree_add_uint(pass->tree, hf_spark_continuation, tvb, 0,
                                             (gint)tvb_captured_length(tvb), rec->fed);
        char info[96];
        if (rec->completed_in) {
            proto_item *c = proto_tree_add_uint(pass->tree, hf_spark_pdu_completed_in, tvb, 0, 0, rec->completed_in);
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
static gboolean dissect_spark_heur(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
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
        guint8 b = tvb_get_guint8(tvb, i);
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
#if WIRESHARK_VERSION_MAJOR > 4 || (WIRESHARK_VERSION_MAJOR == 4 && WIRESHARK_VERSION_MINOR >= 2)
    return fvalue_get_uinteger(fi->value);
#else
    return fvalue_get_uinteger(&fi->value);
#endif
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
    static hf_register_info hf[] = {
        { &hf_spark_step, { "Step", "spark.step", FT_STRING, BASE_NONE, NULL, 0x0,
          "nonce, id-block, session-block, hello, frame or data", HFILL } },
        { &hf_spark_direction, { "Direction", "spark.direction", FT_UINT8, BASE_DEC, VALS(spark_dir_vals), 0x0,
          "0 = device->cloud, 1 = cloud->device", HFILL } },
        { &hf_spark_pdu_index, { "PDU index", "spark.pdu.index", FT_UINT32, BASE_DEC, NULL, 0x0,
          "0-based PDU number in this connection (both directions)", HFILL } },
        { &hf_spark_stream_offset, { "Stream offset", "spark.pdu.offset", FT_UINT64, BASE_DEC, NULL, 0x0,
          "Offset of the PDU's first byte in its direction's byte stream", HFILL } },
        { &hf_spark_pdu_first_frame, { "PDU starts in frame", "spark.pdu.first_frame", FT_FRAMENUM, BASE_NONE,
          NULL, 0x0, "The frame holding the first byte of this PDU", HFILL } },
        { &hf_spark_pdu_completed_in, { "PDU completed in frame", "spark.pdu.completed_in", FT_FRAMENUM,
          BASE_NONE, NULL, 0x0, "The frame where the PDU these bytes belong to is complete", HFILL } },
        { &hf_spark_continuation, { "PDU segment bytes", "spark.pdu.segment", FT_UINT32, BASE_DEC, NULL, 0x0,
          "Bytes of a PDU that is completed in a later segment", HFILL } },
        { &hf_spark_retransmitted, { "Retransmitted bytes", "spark.retransmitted", FT_UINT32, BASE_DEC, NULL,
          0x0, "Bytes already seen in an earlier segment", HFILL } },
        { &hf_spark_gap, { "Missing bytes", "spark.gap", FT_UINT64, BASE_DEC, NULL, 0x0,
          "Bytes of this direction missing from the capture before this segment", HFILL } },
        { &hf_spark_device_id, { "Device ID", "spark.device_id", FT_STRING, BASE_NONE, NULL, 0x0,
          "24 lower-case hex digits", HFILL } },
        { &hf_spark_nonce, { "Nonce", "spark.nonce", FT_BYTES, BASE_NONE, NULL, 0x0,
          "40 random bytes from the cloud", HFILL } },
        { &hf_spark_nonce_ok, { "Nonce echoed", "spark.nonce_ok", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
          "The id block carries the nonce the cloud sent", HFILL } },
        { &hf_spark_id_block, { "Device ID block", "spark.id_block", FT_BYTES, BASE_NONE, NULL, 0x0,
          "RSA-2048 block: nonce, device id (and the device public key), for the cloud's key", HFILL } },
        { &hf_spark_id_block_opened, { "Opened with the server private key", "spark.id_block.opened",
          FT_BOOLEAN, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_spark_id_plain_len, { "Plaintext length", "spark.id_block.length", FT_UINT32, BASE_DEC, NULL, 0x0,
          "52 for the first Core firmware, 214 when the device offers its public key", HFILL } },
        { &hf_spark_offered_key_known, { "Offered public key matches a device key", "spark.id_block.key_known",
          FT_BOOLEAN, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_spark_session_block, { "Session key block", "spark.session_block", FT_BYTES, BASE_NONE, NULL, 0x0,
          "RSA-1024 encrypted session material followed by the cloud's RSA-2048 signature", HFILL } },
        { &hf_spark_session_e, { "Encrypted session material", "spark.session_block.encrypted", FT_BYTES,
          BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_spark_signature, { "Signature", "spark.signature", FT_BYTES, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_spark_session_opened, { "Opened with a device key", "spark.session_block.opened", FT_BOOLEAN,
          BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_spark_signature_valid, { "Signature made by the cloud key", "spark.signature_valid", FT_BOOLEAN,
          BASE_NONE, NULL, 0x0, "The signature recovers to a PKCS#1 type 1 block with the server public key",
          HFILL } },
        { &hf_spark_signature_ok, { "Signature matches the session", "spark.signature_ok", FT_BOOLEAN, BASE_NONE,
          NULL, 0x0, "The signed bytes equal HMAC-SHA1(session, encrypted block)", HFILL } },
        { &hf_spark_hs_result, { "Key result", "spark.key_result", FT_STRING, BASE_NONE, NULL, 0x0,
          "What went wrong when opening this step with the keys at hand", HFILL } },
        { &hf_spark_generation, { "Firmware generation", "spark.generation", FT_UINT8, BASE_DEC, VALS(spark_generation_vals), 0x0,
          "1 = first Core firmware (52-byte id block), 2 = later firmware (214 bytes)", HFILL } },
        { &hf_spark_note, { "Note", "spark.note", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_spark_frame_length, { "Frame length", "spark.frame.length", FT_UINT16, BASE_DEC, NULL, 0x0,
          "Ciphertext bytes that follow", HFILL } },
        { &hf_spark_frame_ciphertext, { "Ciphertext", "spark.frame.ciphertext", FT_BYTES, BASE_NONE, NULL, 0x0,
          NULL, HFILL } },
        { &hf_spark_frame_state, { "Decryption", "spark.frame.state", FT_UINT8, BASE_DEC,
          VALS(spark_frame_state_vals), 0x0, NULL, HFILL } },
        { &hf_spark_data, { "Data", "spark.data", FT_BYTES, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_spark_msg_kind, { "Message", "spark.msg.kind", FT_STRING, BASE_NONE, NULL, 0x0,
          "hello, describe, function-call, event, ...", HFILL } },
        { &hf_spark_msg_summary, { "Summary", "spark.msg.summary", FT_STRING, BASE_NONE, NULL, 0x0, NULL,
          HFILL } },
        { &hf_spark_msg_index, { "Message index", "spark.msg.index", FT_UINT32, BASE_DEC, NULL, 0x0, NULL,
          HFILL } },
        { &hf_spark_uri, { "URI", "spark.msg.uri", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_spark_query, { "Query", "spark.msg.query", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_spark_event_name, { "Event name", "spark.event.name", FT_STRING, BASE_NONE, NULL, 0x0, NULL,
          HFILL } },
        { &hf_spark_event_data, { "Event data", "spark.event.data", FT_STRING, BASE_NONE, NULL, 0x0, NULL,
          HFILL } },
        { &hf_spark_event_ttl, { "Event TTL", "spark.event.ttl", FT_UINT32, BASE_DEC, NULL, 0x0,
          "Seconds", HFILL } },
        { &hf_spark_event_public, { "Public event", "spark.event.public", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
          NULL, HFILL } },
        { &hf_spark_function_name, { "Function", "spark.function.name", FT_STRING, BASE_NONE, NULL, 0x0, NULL,
          HFILL } },
        { &hf_spark_function_arg, { "Function argument", "spark.function.arg", FT_STRING, BASE_NONE, NULL, 0x0,
          NULL, HFILL } },
        { &hf_spark_function_result, { "Function result", "spark.function.result", FT_STRING, BASE_NONE, NULL,
          0x0, NULL, HFILL } },
        { &hf_spark_variable_name, { "Variable", "spark.variable.name", FT_STRING, BASE_NONE, NULL, 0x0, NULL,
          HFILL } },
        { &hf_spark_variable_value, { "Variable value", "spark.variable.value", FT_STRING, BASE_NONE, NULL, 0x0,
          NULL, HFILL } },
        { &hf_spark_variable_type, { "Variable type", "spark.variable.type", FT_UINT8, BASE_DEC,
          VALS(spark_var_type_vals), 0x0, NULL, HFILL } },
        { &hf_spark_time, { "Cloud time", "spark.time", FT_ABSOLUTE_TIME, ABSOLUTE_TIME_UTC, NULL, 0x0,
          "Time the cloud sent in answer to a time request", HFILL } },
        { &hf_spark_product_id, { "Product ID", "spark.hello.product_id", FT_UINT16, BASE_HEX, NULL, 0x0, NULL,
          HFILL } },
        { &hf_spark_product_version, { "Product firmware version", "spark.hello.product_version", FT_UINT16,
          BASE_HEX, NULL, 0x0, NULL, HFILL } },
        { &hf_spark_hello_flags, { "Hello flags", "spark.hello.flags", FT_UINT8, BASE_HEX, NULL, 0x0,
          "Bit 0: the previous OTA update succeeded", HFILL } },
        { &hf_spark_platform_id, { "Platform", "spark.hello.platform", FT_UINT32, BASE_DEC,
          VALS(spark_platform_vals), 0x0, NULL, HFILL } },
        { &hf_spark_ota_chunk_index, { "Chunk index", "spark.ota.chunk_index", FT_UINT32, BASE_DEC, NULL, 0x0,
          NULL, HFILL } },
        { &hf_spark_ota_crc, { "Chunk CRC-32", "spark.ota.crc", FT_UINT32, BASE_HEX, NULL, 0x0, NULL, HFILL } },
        { &hf_spark_ota_crc_ok, { "Chunk CRC matches", "spark.ota.crc_ok", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
          NULL, HFILL } },
        { &hf_spark_ota_chunk_size, { "Chunk size", "spark.ota.chunk_size", FT_UINT32, BASE_DEC, NULL, 0x0,
          NULL, HFILL } },
        { &hf_spark_response_to, { "Response to the request in", "spark.response_to", FT_FRAMENUM, BASE_NONE,
          FRAMENUM_TYPE(FT_FRAMENUM_REQUEST), 0x0, NULL, HFILL } },
        { &hf_spark_response_in, { "Response in", "spark.response_in", FT_FRAMENUM, BASE_NONE,
          FRAMENUM_TYPE(FT_FRAMENUM_RESPONSE), 0x0, NULL, HFILL } },
        { &hf_spark_response_time, { "Response time", "spark.response_time", FT_RELATIVE_TIME, BASE_NONE, NULL,
          0x0, "Seconds between the request and this answer", HFILL } },
        { &hf_spark_answers, { "Answers", "spark.answers", FT_STRING, BASE_NONE, NULL, 0x0,
          "Kind of the message this one answers", HFILL } },
        { &hf_spark_verdict, { "Verdict", "spark.verdict", FT_STRING, BASE_NONE, NULL, 0x0,
          "ok, device-key-mismatch, server-key-mismatch, unknown-device, bad-signature, nonce-mismatch, "
          "id-block-rejected, session-block-rejected, not-spark, stalled, incomplete, mid-session", HFILL } },
        { &hf_spark_verdict_meaning, { "Meaning", "spark.verdict.meaning", FT_STRING, BASE_NONE, NULL, 0x0, NULL,
          HFILL } },
        { &hf_spark_verdict_evidence, { "Evidence", "spark.verdict.evidence", FT_STRING, BASE_NONE, NULL, 0x0,
          NULL, HFILL } },
        { &hf_spark_verdict_proven, { "Proven by a key", "spark.verdict.proven", FT_BOOLEAN, BASE_NONE, NULL,
          0x0, "True: a key proves it; false: inferred from the wire alone", HFILL } },
        { &hf_spark_verdict_final, { "Final", "spark.verdict.final", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
          "The connection (or the capture) ended", HFILL } },
        { &hf_spark_verdict_candidate, { "Candidate cause", "spark.verdict.candidate", FT_STRING, BASE_NONE,
          NULL, 0x0, "A cause the wire cannot rule out", HFILL } },
        { &hf_spark_verdict_last_step, { "Last step", "spark.verdict.last_step", FT_STRING, BASE_NONE, NULL,
          0x0, NULL, HFILL } },
        { &hf_spark_finding, { "Finding", "spark.finding", FT_STRING, BASE_NONE, NULL, 0x0,
          "gap, ota-incomplete, ota-chunk-error, counter-error, decrypt-error", HFILL } },
        { &hf_spark_finding_text, { "Evidence", "spark.finding.text", FT_STRING, BASE_NONE, NULL, 0x0, NULL,
          HFILL } },
        { &hf_spark_close, { "Connection", "spark.close", FT_STRING, BASE_NONE, NULL, 0x0,
          "Which side closed (FIN) or reset (RST) the connection", HFILL } },
    };

    static gint *ett[] = {
        &ett_spark, &ett_spark_step, &ett_spark_session_block, &ett_spark_msg, &ett_spark_verdict,
        &ett_spark_finding,
    };

    static ei_register_info ei[] = {
        { &ei_spark_verdict_ok, { "spark.expert.verdict_ok", PI_SEQUENCE, PI_CHAT,
          "Handshake completed", EXPFILL } },
        { &ei_spark_verdict_proven, { "spark.expert.verdict_proven", PI_PROTOCOL, PI_ERROR,
          "Handshake failure proven by a key", EXPFILL } },
        { &ei_spark_verdict_inferred, { "spark.expert.verdict_inferred", PI_PROTOCOL, PI_WARN,
          "Handshake failure inferred from the wire", EXPFILL } },
        { &ei_spark_verdict_not_spark, { "spark.expert.verdict_not_spark", PI_MALFORMED, PI_ERROR,
          "The peer on the cloud port does not speak the Spark protocol", EXPFILL } },
        { &ei_spark_verdict_capture, { "spark.expert.verdict_capture", PI_SEQUENCE, PI_NOTE,
          "The capture does not hold the whole handshake", EXPFILL } },
        { &ei_spark_not_opened, { "spark.expert.not_opened", PI_DECRYPTION, PI_WARN,
          "Handshake block not opened with the keys at hand", EXPFILL } },
        { &ei_spark_no_key, { "spark.expert.no_key", PI_DECRYPTION, PI_WARN,
          "No device key for this connection", EXPFILL } },
        { &ei_spark_not_decrypted, { "spark.expert.not_decrypted", PI_DECRYPTION, PI_NOTE,
          "Frame not decrypted", EXPFILL } },
        { &ei_spark_partial, { "spark.expert.partial", PI_DECRYPTION, PI_WARN,
          "Frame follows a gap: first block lost", EXPFILL } },
        { &ei_spark_decrypt_error, { "spark.expert.decrypt_error", PI_DECRYPTION, PI_ERROR,
          "Frame does not decrypt", EXPFILL } },
        { &ei_spark_not_spark, { "spark.expert.not_spark", PI_MALFORMED, PI_ERROR,
          "Not the Spark protocol", EXPFILL } },
        { &ei_spark_nonce_bad, { "spark.expert.nonce_mismatch", PI_PROTOCOL, PI_ERROR,
          "The id block does not echo the nonce", EXPFILL } },
        { &ei_spark_signature_bad, { "spark.expert.bad_signature", PI_SECURITY, PI_ERROR,
          "The session block's signature does not verify", EXPFILL } },
        { &ei_spark_finding_gap, { "spark.expert.gap", PI_SEQUENCE, PI_WARN,
          "Bytes missing from the capture", EXPFILL } },
        { &ei_spark_finding_ota, { "spark.expert.ota", PI_PROTOCOL, PI_WARN,
          "Firmware update problem", EXPFILL } },
        { &ei_spark_finding_counter, { "spark.expert.counter", PI_SEQUENCE, PI_WARN,
          "Message id or token out of sequence", EXPFILL } },
        { &ei_spark_finding_decrypt, { "spark.expert.decrypt", PI_DECRYPTION, PI_ERROR,
          "A frame that should decrypt does not", EXPFILL } },
        { &ei_spark_gap, { "spark.expert.missing_bytes", PI_SEQUENCE, PI_WARN,
          "Bytes before this segment are missing", EXPFILL } },
        { &ei_spark_retransmitted, { "spark.expert.retransmitted", PI_SEQUENCE, PI_NOTE,
          "Retransmitted bytes", EXPFILL } },
        { &ei_spark_keyfile, { "spark.expert.keyfile", PI_DECRYPTION, PI_ERROR,
          "The keyfile was not loaded", EXPFILL } },
        { &ei_spark_closed, { "spark.expert.closed", PI_SEQUENCE, PI_CHAT,
          "Connection closed", EXPFILL } },
    };

    module_t *spark_module;
    expert_module_t *expert_spark;

    proto_spark = proto_register_protocol("Spark Cloud Protocol", "Spark", "spark");
    proto_register_field_array(proto_spark, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    expert_spark = expert_register_protocol(proto_spark);
    expert_register_field_array(expert_spark, ei, array_length(ei));

    spark_module = prefs_register_protocol(proto_spark, spark_prefs_apply);
    prefs_register_filename_preference(spark_module, "keyfile", "Keyfile",
        "The sparkwire keyfile: server and device keys (and session lines) used to open the handshake and "
        "decrypt the session. One entry a line: 'server-private PATH', 'server-public PATH', "
        "'device ID|* PATH', 'session ID HEX'; paths relative to the keyfile.",
        &pref_keyfile, FALSE);
    prefs_register_bool_preference(spark_module, "heuristic_strict", "Strict heuristic",
        "On ports other than the Spark port, only take a connection whose first 40 server bytes look random "
        "(not text, not a constant pattern)",
        &pref_heuristic_strict);

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
    coap_handle = find_dissector("coap");

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
