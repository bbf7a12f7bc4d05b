/* sparkwire libkeyring: the per-connection tracker's public calls and its output (steps, findings).
 *
 * The work is split by phase: stream.c cuts each direction into PDUs (handshake blocks, frames, resync,
 * data of other protocols), hsteps.c opens the handshake blocks, session.c keeps the session key and
 * decrypts frames, message.c gives them their meaning, verdict.c names the verdict. Every decision depends
 * only on the bytes and their order, never on how they were chunked. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tracker_int.h"
#include "rsagate.h"

void krt_note_time(kr_tracker *t, double ts)
{
    if (!t->any_time) {
        t->any_time = true;
        t->first_time = ts;
    }
    if (ts > t->last_time || t->last_time == 0)
        t->last_time = ts;
}

static void fill_step_keys(const kr_tracker *t, kr_step *s)
{
    s->device_id_known = t->device_id_known;
    if (t->device_id_known) {
        memcpy(s->device_id, t->device_id, KR_DEVICE_ID_LEN);
        memcpy(s->device_id_hex, t->device_id_hex, sizeof s->device_id_hex);
    }
    s->id_block_opened = t->id_block_opened;
    s->id_plain_len = t->id_plain_len;
    s->nonce_ok = t->nonce_ok;
    s->offered_key_known = t->offered_key_known;
    s->session_opened = t->session_opened;
    s->session_known = t->session_known;
    if (t->session_known)
        memcpy(s->session, t->sess.material, KR_SESSION_LEN);
    s->session_hint_known = t->session_hint_known;
    if (t->session_hint_known)
        memcpy(s->session_hint, t->session_hint, KR_SESSION_HINT_LEN);
    s->signature_valid = t->signature_valid;
    s->signature_ok = t->signature_ok;
}

void krt_step_init(kr_tracker *t, kr_step *s, kr_step_kind kind, kr_dir dir, const uint8_t *bytes,
                      size_t len, uint64_t off, double first, double ts)
{
    /* all but the note's bytes after its end: a step is begun for every PDU */
    krt_zero(s, offsetof(kr_step, note));
    s->note[0] = '\0';
    krt_zero(&s->reason, sizeof *s - offsetof(kr_step, reason));
    s->kind = kind;
    s->dir = dir;
    s->offset = off;
    s->length = (uint32_t)len;
    s->bytes = bytes;
    s->time = ts;
    s->first_time = first;
    s->hs_result = KR_HS_OK;
    fill_step_keys(t, s);
}

void krt_emit_step(kr_tracker *t, kr_step *s)
{
    s->index = t->step_index++;
    s->supersedes = t->supersedes;
    t->supersedes = 0;
    t->last_step = s->kind;
    t->step_time[s->dir] = s->time;
    if (t->cb.step)
        t->cb.step(t->ud, s);
}

void kr_tracker_emit_finding(kr_tracker *t, kr_finding_code code, kr_dir dir, double ts, uint64_t off,
                             const char *fmt, ...)
{
    kr_finding f;
    memset(&f, 0, sizeof f);
    f.code = code;
    f.dir = dir;
    f.time = ts;
    f.offset = off;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f.text, sizeof f.text, fmt, ap);
    va_end(ap);
    t->findings++;
    if (t->cb.finding)
        t->cb.finding(t->ud, &f);
}

void krt_emit_data(kr_tracker *t, kr_dir dir, size_t n, double ts, const char *why)
{
    kr_dirstate *ds = &t->d[dir];
    if (n == 0)
        return;
    kr_step s;
    krt_step_init(t, &s, KR_STEP_DATA, dir, ds->buf, n, ds->pdu_offset, ds->pdu_first_time, ts);
    snprintf(s.note, sizeof s.note, "%zu bytes %s", n, why);
    s.reason = KR_WHY_NOT_PROTOCOL;
    krt_emit_step(t, &s);
    if (n < ds->have)
        memmove(ds->buf, ds->buf + n, ds->have - n);
    ds->have -= n;
    ds->pdu_offset += n;
}

/* bytes before a tracker in its block at most: malloc aligns for max_align_t */
#define KRT_SLACK (_Alignof(kr_tracker) - _Alignof(max_align_t))

kr_tracker *kr_tracker_new(const kr_keyfile *kf, const kr_callbacks *cb, void *ud)
{
    /* on a cache line boundary, a frame reads the tracker's first lines only (tracker_int.h); placed in a
     * block a line longer rather than by aligned_alloc, whose leftovers before and after stay unused */
    uint8_t *mem = malloc(sizeof(kr_tracker) + KRT_SLACK);
    if (!mem)
        return NULL;
    kr_tracker *t = (kr_tracker *)(void *)(mem + (-(uintptr_t)mem & (_Alignof(kr_tracker) - 1)));
    memset(t, 0, sizeof *t);
    t->mem_off = (uint8_t)((uint8_t *)t - mem);
    t->kf = kf;
    if (cb)
        t->cb = *cb;
    t->ud = ud;
    t->d[KR_S2D].st = PST_NONCE;
    t->d[KR_D2S].st = PST_IDBLOCK;
    t->id_block_opened = t->nonce_ok = t->offered_key_known = KR_UNKNOWN;
    t->session_opened = t->signature_valid = t->signature_ok = KR_UNKNOWN;
    t->record_differs = KR_UNKNOWN;
    t->last_step = KR_STEP_NONE;
    return t;
}

void kr_tracker_free(kr_tracker *t)
{
    if (!t)
        return;
    for (int i = 0; i < 2; i++) {
        free(t->d[i].buf);
        free(t->d[i].pt);
        if (t->d[i].cipher)
            kr_cipher_clear(t->d[i].cipher);
        free(t->d[i].disp);
        free(t->req[i]);
        free(t->req_text[i]);
    }
    krt_rsa_free(t);
    kr_tracker_clear_describe(t);
    free(t->info);
    krt_copies_free(t);
    free(t->not_spark_why);
    free(t->device_key_name);
    free(t->no_decrypt_reason);
    free(t->ota);
    free(t->pend);
    free(t->verdict);
    free(t->early);
    free(t->vars);
    free(t->funcs);
    free((uint8_t *)t - t->mem_off);
}

void kr_tracker_open(kr_tracker *t, double ts)
{
    if (!t || t->finished)
        return;
    krt_note_time(t, ts);
    if (t->d[0].bytes || t->d[1].bytes)
        return; /* data came first: too late to start a handshake */
    t->opened = true;
    t->open_time = ts;
    t->d[0].started_at_zero = t->d[1].started_at_zero = true;
}

/* The lines a frame of dir reads (tracker_int.h), asked for at once: the processor fetches them together
 * instead of one after another as the frame's code comes to each (about 1,000 connections alternate in a
 * capture, so a connection's state is rarely in the nearest caches). */
static void krt_prefetch(const kr_tracker *t, kr_dir dir)
{
    const char *p = (const char *)t, *d = (const char *)&t->d[dir], *o = (const char *)&t->d[!dir];
    for (size_t at = 0; at < offsetof(kr_tracker, d); at += 64)
        __builtin_prefetch(p + at);
    __builtin_prefetch(d);
    __builtin_prefetch(d + 64);
    __builtin_prefetch(d + 128);
    __builtin_prefetch(o, 1);
}

void kr_tracker_prefetch(const kr_tracker *t)
{
    if (t) {
        krt_prefetch(t, KR_D2S);
        __builtin_prefetch((const char *)&t->d[KR_S2D] + 64);
        __builtin_prefetch((const char *)&t->d[KR_S2D] + 128);
    }
}

void kr_tracker_data(kr_tracker *t, kr_dir dir, const uint8_t *data, size_t len, double ts)
{
    if (!t || len == 0 || !data || (dir != KR_D2S && dir != KR_S2D))
        return;
    krt_prefetch(t, dir);   /* before the first of them is read */
    if (t->finished || (krt_rsa_holding(t) && krt_rsa_hold_data(t, dir, data, len, ts)))
        return;
    kr_dirstate *ds = &t->d[dir];
    if (ds->cipher)
        kr_cipher_prefetch(ds->cipher);   /* its context is read when the frame is decrypted, later */
    krt_note_time(t, ts);
    if (!t->opened && !t->mid_session && !t->not_spark && t->d[0].bytes == 0 && t->d[1].bytes == 0) {
        /* no connection start seen: the handshake is not in the capture */
        t->mid_session = true;
        for (int i = 0; i < 2; i++)
            krt_enter_resync(t, (kr_dir)i);
        krt_consider_session_lines(t);
        if (!t->session_known && t->n_session_cands == 0)
            krt_set_text(&t->no_decrypt_reason, KR_WHY_CAP, "no session key: the capture starts "
                         "after the handshake and the keyfile has no session line");
        else if (!t->session_known)
            krt_set_text(&t->no_decrypt_reason, KR_WHY_CAP, "no session key yet: the keyfile's session lines are tried "
                         "on the frames (a one-block frame cut at the start cannot tell)");
    }
    ds->last_data_time = ts;
    ds->bytes += len;
    if (dir == KR_D2S)
        krt_flush_early(t, ts);
    krt_feed(t, dir, data, len, ts);
    if (t->mid_session && !t->verdict_emitted)
        krt_evaluate(t, ts);
}

void kr_tracker_dispute(kr_tracker *t, kr_dir dir, uint64_t offset, uint64_t len)
{
    if (!t || t->finished || (dir != KR_D2S && dir != KR_S2D) || len == 0)
        return;
    if (krt_rsa_holding(t) && krt_rsa_hold_dispute(t, dir, offset, len))
        return;
    kr_dirstate *ds = &t->d[dir];
    uint64_t end = offset + len < offset ? UINT64_MAX : offset + len;
    if (!ds->disp) {
        ds->disp = calloc(1, sizeof *ds->disp);
        if (!ds->disp)
            return;
        ds->disp->all_from = UINT64_MAX;
    }
    kr_disputes *dp = ds->disp;
    if (dp->n < 16) {
        dp->off[dp->n] = offset;
        dp->end[dp->n++] = end;
    } else if (offset < dp->all_from) {
        dp->all_from = offset;
    }
}

/* Whether the PDU of len bytes now in dir's buffer rests on disputed bytes; if so it is marked so, and
 * counts as unreadable like bytes lost in a gap. */
bool krt_take_dispute(kr_tracker *t, kr_dir dir, size_t len)
{
    kr_dirstate *ds = &t->d[dir];
    const kr_disputes *dp = ds->disp;
    if (!dp)
        return false;
    uint64_t a = ds->pdu_offset, b = ds->pdu_offset + len;
    bool hit = b > dp->all_from;
    for (int i = 0; i < dp->n && !hit; i++)
        hit = dp->off[i] < b && a < dp->end[i];
    if (hit) {
        ds->disputed = true;
        ds->damaged = true;
    }
    return hit;
}

void kr_tracker_set_cloud(kr_tracker *t, int family, const uint8_t *addr, uint16_t port)
{
    if (!t || !addr || (family != 4 && family != 6))
        return;
    t->cloud_family = family;
    memset(t->cloud_addr, 0, sizeof t->cloud_addr);
    memcpy(t->cloud_addr, addr, family == 4 ? 4 : 16);
    t->cloud_port = port;
}

void kr_tracker_set_texts(kr_tracker *t, bool on)
{
    if (t)
        t->no_texts = !on;
}

void kr_tracker_refused(kr_tracker *t, double ts)
{
    if (!t || t->finished)
        return;
    if (t->d[KR_D2S].bytes == 0 && t->d[KR_S2D].bytes == 0 && !t->mid_session)
        t->refused = true;
    kr_tracker_close(t, KR_S2D, true, ts);
}

void kr_tracker_close(kr_tracker *t, kr_dir by, bool rst, double ts)
{
    if (!t || t->finished || (by != KR_D2S && by != KR_S2D))
        return;
    if (krt_rsa_holding(t) && krt_rsa_hold_close(t, by, rst, ts))
        return;
    krt_note_time(t, ts);
    kr_dirstate *ds = &t->d[by];
    if (ds->closed && !(rst && !ds->rst))
        return;
    if (!ds->closed) {
        ds->closed = true;
        ds->close_time = ts;
        ds->close_order = (uint8_t)++t->closes;
    }
    if (rst)
        ds->rst = true;
    krt_flush_early(t, ts);
    krt_end_direction(t, by, ts, false);
    if (rst)
        krt_end_direction(t, (kr_dir)!by, ts, false);
    if (rst || (t->d[0].closed && t->d[1].closed))
        kr_ota_finish(t, ts);   /* the connection is over: an unfinished update is reported now */
    krt_evaluate(t, ts);
}

void kr_tracker_finish(kr_tracker *t, double ts)
{
    if (!t || t->finished)
        return;
    krt_rsa_settle(t, ts);   /* a handshake block waiting for the RSA budget is decided now */
    /* the end cannot lie before the last thing seen (callers without a clock pass 0) */
    if (t->any_time && ts < t->last_time)
        ts = t->last_time;
    krt_note_time(t, ts);
    krt_flush_early(t, ts);
    krt_end_direction(t, KR_D2S, ts, true);
    krt_end_direction(t, KR_S2D, ts, true);
    kr_ota_finish(t, ts);
    t->finished = true;
    krt_evaluate(t, ts);
    if (!t->verdict_emitted) {
        /* nothing at all happened */
        kr_verdict v;
        memset(&v, 0, sizeof v);
        v.code = KR_V_INCOMPLETE;
        v.final = true;
        v.time = ts;
        snprintf(v.evidence, sizeof v.evidence, "no data on this connection");
        if (!krt_verdict_put(t, &v))
            return;
        t->verdict_emitted = true;
        if (t->cb.verdict)
            t->cb.verdict(t->ud, &v);
    }
}

/* Computed from the tracker's state each time it is asked. */
int kr_tracker_generation(const kr_tracker *t)
{
    return t ? t->generation : 0;
}

void kr_tracker_fill_info(const kr_tracker *t, kr_conn_info *i)
{
    memset(i, 0, sizeof *i);
    if (!t)
        return;
    i->device_id_known = t->device_id_known;
    if (t->device_id_known)
        memcpy(i->device_id_hex, t->device_id_hex, sizeof i->device_id_hex);
    i->generation = t->generation;
    i->last_step = t->last_step;
    i->handshake_done = t->handshake_done;
    i->decrypting = t->session_known;
    bool no_keys = !t->kf || (kr_keyfile_device_key_count(t->kf) == 0 && kr_keyfile_session_count(t->kf) == 0);
    if (!t->session_known && t->no_decrypt_reason && t->no_decrypt_reason[0])
        snprintf(i->no_decrypt_reason, sizeof i->no_decrypt_reason, "%s", t->no_decrypt_reason);
    else if (!t->session_known && no_keys)
        snprintf(i->no_decrypt_reason, sizeof i->no_decrypt_reason, "no device key and no session line in the "
                 "keyfile");
    for (int d = 0; d < 2; d++) {
        i->bytes[d] = t->d[d].bytes;
        i->frames[d] = t->d[d].frames;
    }
    i->messages = t->msg_index;
    i->findings = t->findings;
    i->first_time = t->first_time;
    i->last_time = t->last_time;
    krt_verdict_get(t, &i->verdict);
}

const char *kr_tracker_device_id(const kr_tracker *t)
{
    return t && t->device_id_known ? t->device_id_hex : NULL;
}

kr_step_kind kr_tracker_last_step(const kr_tracker *t)
{
    return t ? t->last_step : (kr_step_kind)0;
}

kr_verdict_code kr_tracker_verdict_code(const kr_tracker *t)
{
    return t && t->verdict ? t->verdict->code : KR_V_NONE;
}

/* The buffer is the tracker's, made at the first call (a tracker nobody asks carries none). */
const kr_conn_info *kr_tracker_info(const kr_tracker *t)
{
    if (!t)
        return NULL;
    kr_tracker *w = (kr_tracker *)t;
    if (!w->info && !(w->info = malloc(sizeof *w->info)))
        return NULL;
    kr_tracker_fill_info(t, w->info);
    return w->info;
}

/* Kept in the info buffer: a tracker holds its verdict compact. */
const kr_verdict *kr_tracker_verdict(const kr_tracker *t)
{
    const kr_conn_info *i = kr_tracker_info(t);
    return i ? &i->verdict : NULL;
}

size_t kr_tracker_function_count(const kr_tracker *t)
{
    return t ? t->n_funcs : 0;
}

const char *kr_tracker_function(const kr_tracker *t, size_t i)
{
    return t && i < t->n_funcs ? t->funcs[i] : NULL;
}

size_t kr_tracker_variable_count(const kr_tracker *t)
{
    return t ? t->n_vars : 0;
}

const char *kr_tracker_variable(const kr_tracker *t, size_t i, kr_var_type *type)
{
    if (!t || i >= t->n_vars)
        return NULL;
    if (type)
        *type = t->vars[i].type;
    return t->vars[i].name;
}

static size_t text_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* What the tracker holds allocated, part by part (the allocator's own headers aside). */
size_t kr_tracker_memory(const kr_tracker *t)
{
    if (!t)
        return 0;
    size_t n = sizeof *t + KRT_SLACK + (t->info ? sizeof *t->info : 0) + (t->ota ? sizeof *t->ota : 0) +
               (t->pend ? 4 * sizeof *t->pend : 0) + (t->verdict ? sizeof *t->verdict + strlen(t->verdict->evidence) + 1 : 0) +
               krt_copies_memory(t);
    for (int i = 0; i < 2; i++) {
        n += t->d[i].cap + t->d[i].pt_cap;   /* the cipher is in the tracker (sizeof) */
        n += (t->d[i].disp ? sizeof *t->d[i].disp : 0) + t->req_cap[i] * sizeof(kr_request);
        n += t->req_text[i] ? sizeof *t->req_text[i] + t->req_text[i]->cap : 0;
    }
    n += text_size(t->not_spark_why) + text_size(t->device_key_name) + text_size(t->no_decrypt_reason);
    n += t->cap_vars * sizeof(kr_var) + t->cap_funcs * sizeof(char *) + t->early_len;
    for (size_t i = 0; i < t->n_funcs; i++)
        n += strlen(t->funcs[i]) + 1;
    return n;
}

/* ---- parts made on need ---- */

void krt_vset_text(char **dst, size_t cap, const char *fmt, va_list ap)
{
    char buf[1024];
    vsnprintf(buf, cap < sizeof buf ? cap : sizeof buf, fmt, ap);
    char *n = strdup(buf);
    if (!n)
        return;    /* out of memory: the old text stays */
    free(*dst);
    *dst = n;
}

void krt_set_text(char **dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    krt_vset_text(dst, cap, fmt, ap);
    va_end(ap);
}

kr_ota *krt_ota(kr_tracker *t)
{
    if (!t->ota && (t->ota = calloc(1, sizeof *t->ota)) != NULL) {
        t->ota->last_chunk_index = -1;
        t->ota->last_ok_index = -1;
        t->ota->last_answered_index = -1;
    }
    return t->ota;
}

/* A direction's cipher, made when its first frame (or the session key) comes: a connection that stops in
 * the handshake holds none. NULL only when out of memory (the cipher calls take NULL). */
kr_cipher *krt_cipher(kr_dirstate *ds)
{
    if (!ds->cipher) {
        kr_cipher_init_pending(&ds->cipher_store);
        ds->cipher = &ds->cipher_store;
    }
    return ds->cipher;
}

/* Once the bytes at hand are handled, a direction between PDUs gives its buffers back: an open connection
 * holds only the part of a PDU still to be completed. */
void krt_release(kr_dirstate *ds, bool keep_buf)
{
    if (ds->have == 0 && ds->buf && !keep_buf) {
        free(ds->buf);
        ds->buf = NULL;
        ds->cap = 0;
    }
    if (ds->pt) {
        free(ds->pt);
        ds->pt = NULL;
        ds->pt_cap = 0;
    }
}

/* The members a kr_verdict and the kept kr_vstore share, from src to dst. */
#define COPY_VERDICT_HEAD(dst, src)                                             \
    do {                                                                        \
        (dst)->code = (src)->code;                                              \
        (dst)->proven = (src)->proven;                                          \
        (dst)->final = (src)->final;                                            \
        (dst)->n_candidates = (src)->n_candidates;                              \
        memcpy((dst)->candidates, (src)->candidates, sizeof (dst)->candidates); \
        (dst)->time = (src)->time;                                              \
    } while (0)

void krt_verdict_get(const kr_tracker *t, kr_verdict *out)
{
    memset(out, 0, sizeof *out);
    const kr_vstore *s = t->verdict;
    if (!s)
        return;
    COPY_VERDICT_HEAD(out, s);
    out->last_step = t->verdict_step;
    out->last_dir = (kr_dir)t->verdict_dir;
    size_t n = strnlen(s->evidence, sizeof out->evidence - 1);
    memcpy(out->evidence, s->evidence, n);   /* out is zeroed: the text ends there */
}

bool krt_verdict_put(kr_tracker *t, const kr_verdict *v)
{
    size_t len = strnlen(v->evidence, sizeof v->evidence - 1);
    kr_vstore *s = realloc(t->verdict, sizeof *s + len + 1);
    if (!s)
        return false;
    t->verdict = s;
    COPY_VERDICT_HEAD(s, v);
    t->verdict_step = v->last_step;
    t->verdict_dir = (uint8_t)v->last_dir;
    memcpy(s->evidence, v->evidence, len);
    s->evidence[len] = '\0';
    return true;
}
