/* sparkwire Wireshark plugin: the first pass keeps what the tracker reports (steps, messages, findings,
 * verdicts) as compact records against the frame that completed it (file scope); later passes only read
 * them (spark-render.c). */
#include <string.h>

#include "spark-int.h"


/* The records by frame number: pages of SPARK_PAGE pointers, made when a frame of theirs gets a record
 * (file scope; frame numbers run from 1 up without holes), so finding a frame's record is two reads. */
#define SPARK_PAGE_BITS 12
#define SPARK_PAGE (1u << SPARK_PAGE_BITS)
static spark_frame_rec ***rec_pages;
static guint rec_n_pages;

/* A frame the connection layer reported on while it handled it (a SYN, say) that brought nothing the plugin
 * keeps still shows an empty Spark item in a tree: one shared record, never written, stands for all of them,
 * so such a frame costs a pointer, not a record. A bare acknowledgement, on which the layer reports nothing,
 * gets no record and shows no Spark item, as Wireshark shows no TLS on one. */
static const spark_frame_rec rec_nothing;

void rec_store_reset(void)
{
    rec_pages = NULL;           /* its memory went with the file scope */
    rec_n_pages = 0;
}

static spark_frame_rec **rec_slot(guint32 num)
{
    guint32 page = num >> SPARK_PAGE_BITS;
    if (page >= rec_n_pages) {
        guint n = MAX(rec_n_pages * 2, page + 1);
        rec_pages = (spark_frame_rec ***)wmem_realloc(wmem_file_scope(), rec_pages, n * sizeof *rec_pages);
        memset(rec_pages + rec_n_pages, 0, (n - rec_n_pages) * sizeof *rec_pages);
        rec_n_pages = n;
    }
    if (!rec_pages[page])
        rec_pages[page] = wmem_alloc0_array(wmem_file_scope(), spark_frame_rec *, SPARK_PAGE);
    return &rec_pages[page][num & (SPARK_PAGE - 1)];
}

const spark_frame_rec *rec_get(packet_info *pinfo)
{
    guint32 page = pinfo->num >> SPARK_PAGE_BITS;
    if (page >= rec_n_pages || !rec_pages[page])
        return NULL;
    return rec_pages[page][pinfo->num & (SPARK_PAGE - 1)];
}

gboolean rec_is_empty(const spark_frame_rec *rec)
{
    return rec == &rec_nothing;
}

void rec_mark(guint32 num)
{
    spark_frame_rec **slot = rec_slot(num);
    if (!*slot)
        *slot = (spark_frame_rec *)&rec_nothing;
}

spark_frame_rec *rec_of_num(guint32 num)
{
    spark_frame_rec **slot = rec_slot(num);
    if (!*slot || *slot == &rec_nothing) {
        *slot = wmem_new0(wmem_file_scope(), spark_frame_rec);
        (*slot)->frame = num;   /* events: made with the first (most frames have none) */
    }
    return *slot;
}

spark_frame_rare *rec_rare(spark_frame_rec *rec)
{
    if (!rec->rare)
        rec->rare = wmem_new0(wmem_file_scope(), spark_frame_rare);
    return rec->rare;
}

spark_frame_rec *rec_cur(spark_conv *conv)
{
    if (!conv->bound)
        return NULL;
    if (!conv->last_rec) {
        conv->last_rec = rec_of_num(conv->last_frame);
        conv->last_rec->conv = conv;
    }
    return conv->last_rec;
}

void rec_add(spark_frame_rec *rec, spark_ev_type type, void *p)
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
    if (rec->n_events == 0) {
        rec->events = &rec->first;
        rec->cap_events = 1;
    } else if (rec->n_events == rec->cap_events) {
        spark_ev *more = (spark_ev *)wmem_alloc(wmem_file_scope(), 2 * rec->cap_events * sizeof ev);
        memcpy(more, rec->events, rec->n_events * sizeof ev);
        if (rec->events != &rec->first)
            wmem_free(wmem_file_scope(), rec->events);
        rec->events = more;
        rec->cap_events *= 2;
    }
    rec->events[rec->n_events++] = ev;
}

guint rec_count(const spark_frame_rec *rec)
{
    return rec->n_events;
}

static spark_step_rec *rec_last_step(spark_frame_rec *rec)
{
    guint n = rec_count(rec);
    while (n > 0) {
        spark_ev *ev = &rec->events[--n];
        if (ev->type == SPARK_EV_STEP)
            return ev->u.step;
    }
    return NULL;
}

/* A record and the strings and bytes it keeps are one allocation: the sizes are summed first (room), then
 * the pieces are copied behind the record (pack). */
typedef struct spark_pack {
    char *at;
} spark_pack;

static size_t str_room(const char *text)
{
    return text[0] ? strlen(text) + 1 : 0;
}

static const char *keep_str(spark_pack *p, const char *text)
{
    const char *kept = p->at;
    size_t n = str_room(text);
    if (n == 0)
        return "";
    memcpy(p->at, text, n);
    p->at += n;
    return kept;
}

static guint8 *keep_bytes(spark_pack *p, const guint8 *bytes, size_t n)
{
    guint8 *kept = (guint8 *)p->at;
    memcpy(p->at, bytes, n);
    p->at += n;
    return kept;
}

/* A zeroed record of size bytes with room behind it; p points there. */
static void *rec_alloc(size_t size, size_t room, spark_pack *p)
{
    char *r = (char *)wmem_alloc(wmem_file_scope(), size + room);
    memset(r, 0, size);
    p->at = r + size;
    return r;
}

static void keep_step(spark_step_info *d, const kr_step *s, spark_pack *p)
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
    d->note = keep_str(p, s->note);
    d->reason = s->reason;
}

/* The room keep_message needs behind the record; shared: the summary, kept already (its step's note) */
static size_t message_room(const kr_message *m, const char *shared)
{
    return str_room(m->uri) + str_room(m->query) + (shared ? 0 : str_room(m->summary)) + str_room(m->name) +
           str_room(m->arg) + str_room(m->value);
}

static void keep_message(spark_msg_info *d, const kr_message *m, const char *shared, spark_pack *p)
{
    d->dir = m->dir;
    d->index = m->index;
    d->kind = m->kind;
    d->uri = keep_str(p, m->uri);
    d->query = keep_str(p, m->query);
    d->summary = shared ? shared : keep_str(p, m->summary);
    d->name = keep_str(p, m->name);
    d->arg = keep_str(p, m->arg);
    d->value = keep_str(p, m->value);
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

/* The connection's copy of a device id: made when the id first shows or changes, shared by the records. */
static const char *conv_id(spark_conv *conv, const char *hex)
{
    if (!conv->id || strncmp(conv->id_hex, hex, KR_DEVICE_ID_HEX_LEN + 1) != 0) {
        conv->id = wmem_strndup(wmem_file_scope(), hex, KR_DEVICE_ID_HEX_LEN);
        g_strlcpy(conv->id_hex, conv->id, sizeof conv->id_hex);
    }
    return conv->id;
}

/* What the tracker knows of the connection now: its device id (when known) and generation. */
static void conn_facts(spark_conv *conv, gboolean *id_known, const char **id, int *gen)
{
    const char *known = kr_tracker_device_id(conv->tracker);

    if (!conv->tracker)
        return;
    *id_known = known != NULL;
    if (known)
        *id = conv_id(conv, known);
    *gen = kr_tracker_generation(conv->tracker);
}

void rec_pend(spark_conv *conv, kr_dir dir, spark_frame_rec *rec)
{
    if (conv->n_pending[dir] == conv->cap_pending[dir]) {
        guint cap = conv->cap_pending[dir] ? 2 * conv->cap_pending[dir] : 4;
        conv->pending[dir] = (spark_frame_rec **)wmem_realloc(wmem_file_scope(), conv->pending[dir],
                                                              cap * sizeof *conv->pending[dir]);
        conv->cap_pending[dir] = cap;
    }
    conv->pending[dir][conv->n_pending[dir]++] = rec;
}

/* The earlier frames whose bytes the PDU of sr holds now know where it completed; the one holding its first
 * byte is where it starts. Frames whose bytes all lie before this PDU's end are done. */
static void pending_done(spark_conv *conv, spark_frame_rec *rec, spark_step_rec *sr, const kr_step *s)
{
    spark_frame_rec **pend = conv->pending[s->dir];
    guint64 s0 = s->offset, s1 = s->offset + s->length;
    gboolean start_found = FALSE;
    guint i, kept = 0, n = conv->n_pending[s->dir];
    guint32 first = n > 0 ? pend[0]->frame : 0;

    for (i = 0; i < n; i++) {
        spark_frame_rec *p = pend[i];
        spark_frame_rare *pr = p->rare;   /* (a pending frame's range is set) */
        if (p != rec && pr->range_end > s0 && pr->range_start < s1) {
            if (pr->completed_in == 0)
                pr->completed_in = rec->frame;
            if (sr->in_packet < 0 && pr->range_start <= s0 && !start_found) {
                sr->first_frame = p->frame;
                start_found = TRUE;
            }
        }
        if (pr->range_end > s1)
            pend[kept++] = p;
    }
    if (sr->in_packet < 0 && !start_found && n > 0)
        sr->first_frame = first;
    conv->n_pending[s->dir] = kept;
}

static void cb_step(void *ud, const kr_step *s)
{
    spark_conv *conv = (spark_conv *)ud;
    spark_frame_rec *rec = rec_cur(conv);
    spark_step_rec *sr;
    spark_pack pk;
    gint in_packet = -1;
    gboolean plain = s->plaintext && s->plaintext_len > 0, copy;

    if (!rec)
        return;
    /* Where is it in this frame? Only where the PDU lies whole in the bytes being fed. */
    if (conv->chunk_active && conv->chunk_tvb_offset >= 0 && s->dir == conv->chunk_dir &&
        s->offset >= conv->chunk_start &&
        s->bytes && s->length > 0) {
        guint64 pos = s->offset - conv->chunk_start;
        if (pos + s->length <= conv->chunk_len &&
            (conv->chunk + pos == s->bytes || memcmp(conv->chunk + pos, s->bytes, s->length) == 0))
            in_packet = conv->chunk_tvb_offset + (gint)pos;
    }
    copy = in_packet < 0 && s->bytes && s->length > 0;     /* later passes show it from a copy */
    sr = (spark_step_rec *)rec_alloc(sizeof *sr, str_room(s->note) + (plain ? s->plaintext_len : 0) +
                                     (copy ? s->length : 0), &pk);
    keep_step(&sr->s, s, &pk);
    sr->in_packet = in_packet;
    if (plain)
        sr->plaintext = keep_bytes(&pk, s->plaintext, s->plaintext_len);
    if (copy)
        sr->bytes = keep_bytes(&pk, s->bytes, s->length);
    sr->first_frame = rec->frame;
    pending_done(conv, rec, sr, s);
    if (conv->chunk_active && s->dir == conv->chunk_dir)
        conv->step_in_chunk = TRUE;
    conv->last_step_end[s->dir] = s->offset + s->length;

    conn_facts(conv, &sr->conn_id_known, &sr->conn_id, &sr->generation);
    if (s->device_id_known) {
        sr->conn_id_known = TRUE;
        sr->conn_id = conv_id(conv, s->device_id_hex);
    }
    if (s->kind == KR_STEP_SESSIONBLOCK && s->session_known) {
        sr->session = (guint8 *)wmem_memdup(wmem_file_scope(), s->session, KR_SESSION_LEN);
        if (sr->conn_id_known)
            spark_export_session(sr->conn_id, s->session, s->session_hint_known ? s->session_hint : NULL);
    }
    rec_add(rec, SPARK_EV_STEP, sr);
}

/* The connection's messages by index, for the answers that name their request by it. */
static void keep_msg_at(spark_conv *conv, guint32 index, spark_msg_rec *mr)
{
    if (index >= conv->cap_messages) {
        guint cap = MAX(index + 1, conv->cap_messages ? 2 * conv->cap_messages : 16);
        conv->messages = (spark_msg_rec **)wmem_realloc(wmem_file_scope(), conv->messages,
                                                         cap * sizeof *conv->messages);
        conv->cap_messages = cap;
    }
    while (conv->n_messages <= index)
        conv->messages[conv->n_messages++] = NULL;
    conv->messages[index] = mr;
}

static void cb_message(void *ud, const kr_message *m)
{
    spark_conv *conv = (spark_conv *)ud;
    spark_frame_rec *rec = rec_cur(conv);
    spark_step_rec *sr;
    spark_msg_rec *mr;
    spark_pack pk;
    const char *shared;

    if (!rec)
        return;
    sr = rec_last_step(rec);
    if (sr && sr->msg)
        sr = NULL;
    shared = sr && strcmp(sr->s.note, m->summary) == 0 ? sr->s.note : NULL;
    mr = (spark_msg_rec *)rec_alloc(sizeof *mr, message_room(m, shared), &pk);
    keep_message(&mr->m, m, shared, &pk);
    mr->frame = rec->frame;
    if (m->answers >= 0 && (guint)m->answers < conv->n_messages) {
        spark_msg_rec *req = conv->messages[m->answers];
        if (req) {
            mr->request_frame = req->frame;
            if (req->response_in == 0)
                req->response_in = rec->frame;
        }
    }
    keep_msg_at(conv, m->index, mr);

    if (sr) {
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

static SPARK_RARE void cb_finding(void *ud, const kr_finding *f)
{
    spark_frame_rec *rec = rec_cur((spark_conv *)ud);
    if (!rec)
        return;
    rec_add(rec, SPARK_EV_FINDING, wmem_memdup(wmem_file_scope(), f, sizeof *f));
}

static SPARK_RARE void cb_verdict(void *ud, const kr_verdict *v)
{
    spark_conv *conv = (spark_conv *)ud;
    spark_frame_rec *rec = rec_cur(conv);
    spark_verdict_rec *vr;

    if (!rec)
        return;
    vr = wmem_new0(wmem_file_scope(), spark_verdict_rec);
    vr->v = *v;
    conn_facts(conv, &vr->id_known, &vr->id, &vr->generation);
    rec_add(rec, SPARK_EV_VERDICT, vr);
}

const kr_callbacks spark_callbacks = { cb_step, cb_message, cb_finding, cb_verdict };