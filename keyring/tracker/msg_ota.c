/* sparkwire libkeyring: the firmware update (docs/protocol.md 4.11): update begin, chunks, missed chunks,
 * update done, the answers to them, and the report of an update that did not finish. */
#include <stdio.h>
#include <string.h>
#include "msg_int.h"

static bool ota_seen(const kr_ota *o, int idx)
{
    return idx >= 0 && idx < (int)(sizeof o->seen * 8) && (o->seen[idx / 8] >> (idx % 8) & 1);
}

static void ota_mark(kr_ota *o, int idx)
{
    if (idx >= 0 && idx < (int)(sizeof o->seen * 8))
        o->seen[idx / 8] |= (uint8_t)(1u << (idx % 8));
}

static void ota_touch(kr_tracker *t, const kr_message *m)
{
    kr_ota *o = krt_ota(t);
    if (!o)
        return;
    o->last_time = m->time;
    o->last_offset = m->frame_offset;
    o->last_dir = m->dir;
    o->last_kind = m->kind;
}

static void ota_start(kr_tracker *t, double ts)
{
    kr_ota *o = krt_ota(t);
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->active = true;
    o->begin_time = ts;
    o->last_chunk_index = -1;
    o->last_ok_index = -1;
    o->last_answered_index = -1;
    t->ota_reported = false;
}

void kr_msg_update_begin(kr_tracker *t, kr_message *m, const kr_coap_view *cv)
{
    (void)cv;
    ota_start(t, m->time);
    kr_ota *o = t->ota;
    if (o && m->payload_len >= 12) {
        const uint8_t *p = m->payload;
        o->chunk_size = (uint32_t)(p[1] << 8 | p[2]);
        o->file_size = kr_msg_be(p + 3, 4);
        m->chunk_size = o->chunk_size;
        snprintf(m->summary, sizeof m->summary, "Update begin: %u bytes in chunks of %u%s", o->file_size,
                 o->chunk_size, (p[0] & 1) ? ", fast OTA offered" : "");
    } else {
        snprintf(m->summary, sizeof m->summary, "Update begin");
    }
    ota_touch(t, m);
}

/* Takes idx off the list of chunks the device asked for; true when it was on it. */
static bool ota_asked(kr_ota *o, int idx)
{
    for (int i = 0; i < o->n_missed; i++)
        if (o->missed[i] == idx) {
            memmove(o->missed + i, o->missed + i + 1, (size_t)(o->n_missed - i - 1) * sizeof o->missed[0]);
            o->n_missed--;
            return true;
        }
    return false;
}

static int chunk_index_of(kr_ota *o, const kr_coap_view *cv, bool *asked)
{
    int idx;
    if (cv->n_query >= 2)      /* fast OTA: the index travels with the chunk */
        idx = (int)kr_msg_be(cv->query[1].v, cv->query[1].len);
    else if (o->n_missed > 0)  /* the first chunk the device asked for */
        idx = o->missed[0];
    else
        idx = o->next_index;
    *asked = ota_asked(o, idx);
    return idx;
}

void kr_msg_chunk(kr_tracker *t, kr_message *m, const kr_coap_view *cv)
{
    kr_ota *o = krt_ota(t);
    if (!o)
        return;
    if (!o->active)
        ota_start(t, m->time);
    if (cv->n_query >= 1)
        m->chunk_crc = kr_msg_be(cv->query[0].v, cv->query[0].len);
    bool asked;
    int idx = chunk_index_of(o, cv, &asked);
    bool resend = ota_seen(o, idx);
    ota_mark(o, idx);
    m->chunk_index = idx;
    m->chunk_size = (uint32_t)m->payload_len;
    uint32_t crc = kr_crc32(m->payload, m->payload_len);
    m->chunk_crc_ok = (cv->n_query >= 1 && crc == m->chunk_crc) ? KR_YES : KR_NO;
    o->chunks++;
    o->last_chunk_index = idx;
    o->last_chunk_time = m->time;
    o->last_chunk_acked = false;
    o->last_resend = resend;
    o->next_index = idx + 1;
    snprintf(m->value, sizeof m->value, "crc %08x", m->chunk_crc);
    if (m->chunk_crc_ok == KR_YES)
        snprintf(m->summary, sizeof m->summary, "Chunk %d: %zu bytes, CRC ok%s", idx, m->payload_len,
                 asked ? ", asked for again" : resend ? ", sent again" : "");
    else
        snprintf(m->summary, sizeof m->summary, "Chunk %d: %zu bytes, CRC BAD (option %08x, data %08x)%s", idx,
                 m->payload_len, m->chunk_crc, crc, asked ? ", asked for again" : resend ? ", sent again" : "");
    if (m->chunk_crc_ok != KR_YES)
        kr_msg_pend(t, KR_FIND_OTA_CHUNK_ERROR, "chunk %d (%zu bytes): the CRC option says %08x but the data's "
                    "CRC-32 is %08x", idx, m->payload_len, m->chunk_crc, crc);
    /* a chunk the device asked for is the protocol's recovery, not a fault */
    if (resend && !asked)
        kr_msg_pend(t, KR_FIND_OTA_CHUNK_ERROR, "chunk %d sent again", idx);
    ota_touch(t, m);
}

void kr_msg_chunk_missed(kr_tracker *t, kr_message *m, const kr_coap_view *cv)
{
    (void)cv;
    kr_ota *o = krt_ota(t);
    if (!o)
        return;
    size_t w = 0;
    m->value[0] = '\0';
    for (size_t i = 0; i + 2 <= m->payload_len; i += 2) {
        int idx = m->payload[i] << 8 | m->payload[i + 1];
        if (o->n_missed < 8)
            o->missed[o->n_missed++] = idx;
        if (w + 8 < sizeof m->value)
            w += (size_t)snprintf(m->value + w, sizeof m->value - w, "%s%d", w ? ", " : "", idx);
    }
    snprintf(m->summary, sizeof m->summary, "Chunk missed: %s", m->value[0] ? m->value : "(no index)");
    if (o->done_refused && !o->done_acked) {
        o->missed_after_done += (int)(m->payload_len / 2);
        snprintf(o->missed_text, sizeof o->missed_text, "%s", m->value);
    }
    if (o->active)
        ota_touch(t, m);
}

void kr_msg_update_done(kr_tracker *t, kr_message *m, const kr_coap_view *cv)
{
    (void)cv;
    kr_ota *o = krt_ota(t);
    if (!o)
        return;
    o->done = true;
    if (m->dir == KR_D2S)
        o->done_acked = true;   /* fast OTA: the device ends the update itself once it has every chunk */
    snprintf(m->summary, sizeof m->summary, "Update done%s", m->dir == KR_D2S ? " (from the device)" : "");
    if (o->active)
        ota_touch(t, m);
}

/* An ACK to an update request r. */
void kr_ota_answer(kr_tracker *t, const kr_message *m, const kr_request *r)
{
    if (r->kind == KR_MSG_UPDATE_DONE && t->ota && t->ota->active) {
        if (m->code == KR_COAP_CHANGED)
            t->ota->done_acked = true;
        else if (m->code == KR_COAP_BAD_REQUEST)
            t->ota->done_refused = true;
        ota_touch(t, m);
    }
    if (r->kind == KR_MSG_UPDATE_BEGIN || r->kind == KR_MSG_CHUNK || r->kind == KR_MSG_CHUNK_MISSED)
        ota_touch(t, m);
}

void kr_msg_update_ready(kr_tracker *t, kr_message *m)
{
    m->kind = KR_MSG_UPDATE_READY;
    kr_ota *o = krt_ota(t);
    if (!o)
        return;
    o->fast = m->payload_len >= 1 && (m->payload[0] & 1);
    snprintf(m->summary, sizeof m->summary, "Update ready (%d ms)%s", kr_msg_ms(m->response_time),
             o->fast ? ", fast OTA accepted" : "");
    ota_touch(t, m);
}

/* The device's separate answer to chunk request r: 2.04 good, 4.00 bad CRC. */
void kr_msg_chunk_received(kr_tracker *t, kr_message *m, const kr_request *r)
{
    char cs[8];
    m->kind = KR_MSG_CHUNK_RECEIVED;
    m->chunk_index = r->chunk_index;
    bool ok = m->code == KR_COAP_CHANGED;
    kr_ota *o = krt_ota(t);
    if (!o)
        return;
    if (r->chunk_index == o->last_chunk_index)
        o->last_chunk_acked = true;
    o->last_answered_index = r->chunk_index;
    if (ok) {
        o->chunks_ok++;
        o->last_ok_index = r->chunk_index;
    } else {
        o->chunks_bad++;
        o->next_index = r->chunk_index;
        kr_msg_pend(t, KR_FIND_OTA_CHUNK_ERROR, "the device reports chunk %d bad (code %s)", r->chunk_index,
                    kr_coap_code_str(m->code, cs));
    }
    snprintf(m->summary, sizeof m->summary, "Chunk %d received %s (%d ms)", r->chunk_index, ok ? "OK" : "BAD",
             kr_msg_ms(m->response_time));
    ota_touch(t, m);
}

/* ---- an update that did not finish --------------------------------------------------------------- */

/* Firmware 0.8 and later, after a refused update done and the chunks it asked for again, wait for a
 * second update done from the cloud; earlier firmware sends its own (docs/protocol.md 4.11). */
static bool second_done_stall(const kr_ota *o)
{
    return o->done_refused && o->missed_after_done > 0 && o->n_missed == 0 && o->last_dir == KR_S2D;
}

static void cloud_waited(kr_tracker *t, double ts, const char *what, double waited)
{
    kr_ota *o = t->ota;
    char answered[48], last[96];
    if (second_done_stall(o)) {
        kr_tracker_emit_finding(t, KR_FIND_OTA_INCOMPLETE, o->last_dir, ts, o->last_offset,
                                "the update began %.1f s into the connection and did not finish (%s): the device "
                                "refused the cloud's update done (4.00) and asked for chunk %s again; the cloud sent "
                                "what it asked for and waited for the device's own update done, while the device waits for a "
                                "second update done from the cloud (firmware 0.8 and later) that the cloud never "
                                "sent: both waited %.1f s until the end", o->begin_time - t->first_time, what,
                                o->missed_text, waited);
        return;
    }
    if (o->last_answered_index >= 0)
        snprintf(answered, sizeof answered, "chunk %d", o->last_answered_index);
    else
        snprintf(answered, sizeof answered, "%s", o->chunks ? "the update began, before any chunk"
                                                            : "the update begin");
    if (o->last_kind == KR_MSG_CHUNK && o->last_chunk_index >= 0)
        snprintf(last, sizeof last, "chunk %d%s", o->last_chunk_index, o->last_resend ? " (sent again)" : "");
    else
        snprintf(last, sizeof last, "%s", o->last_kind == KR_MSG_UPDATE_DONE ? "update done"
                 : o->last_kind == KR_MSG_UPDATE_BEGIN ? "update begin" : kr_msg_kind_str(o->last_kind));
    kr_tracker_emit_finding(t, KR_FIND_OTA_INCOMPLETE, o->last_dir, ts, o->last_offset,
                            "the update began %.1f s into the connection and did not finish (%s): the device "
                            "stopped after %s; the cloud's %s got no answer for %.1f s until the end",
                            o->begin_time - t->first_time, what, answered, last, waited);
}

void kr_ota_finish(kr_tracker *t, double ts)
{
    kr_ota *o = t->ota;
    if (!o || !o->active || o->done_acked || t->ota_reported)
        return;
    t->ota_reported = true;
    double end = ts;
    for (int i = 0; i < 2; i++)
        if (t->d[i].closed && t->d[i].close_time < end)
            end = t->d[i].close_time;
    double waited = end - o->last_time;
    char what[160];
    if (o->chunks == 0)
        snprintf(what, sizeof what, "no chunk was sent");
    else
        snprintf(what, sizeof what, "%d chunk%s sent, %d confirmed%s", o->chunks, o->chunks == 1 ? "" : "s",
                 o->chunks_ok, o->fast && o->chunks_ok == 0 ? " (in fast OTA this firmware confirms none)" : "");
    if (o->last_dir == KR_S2D) {
        cloud_waited(t, ts, what, waited);
        return;
    }
    char after[64];
    if (o->last_chunk_index >= 0)
        snprintf(after, sizeof after, "chunk %d", o->last_chunk_index);
    else
        snprintf(after, sizeof after, "the update begin");
    kr_tracker_emit_finding(t, KR_FIND_OTA_INCOMPLETE, o->last_dir, ts, o->last_offset,
                            "the update began %.1f s into the connection and did not finish (%s): the cloud "
                            "stopped after %s; it sent nothing more of the update for %.1f s until the end",
                            o->begin_time - t->first_time, what, after, waited);
}
