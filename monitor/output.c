/* cloudmon: lines and JSON Lines. */
#include "output.h"
#include "digits.h"
#include "keyring/names.h"

#include <math.h>
#include <string.h>

/* The time of day of t (seconds since 1970, UTC) to the microsecond, written digit by digit (a line of
 * output each). Times before 1970 count back from the day's end (-1.25 is 23:59:58.750000); a time that is
 * not a number, or too far to be a time, is written as "??:??:??.??????". cap < 16 cuts the text, as
 * snprintf would. */
char *cm_time_str(double t, char *out, size_t cap)
{
    char b[16];
    if (isfinite(t) && fabs(t) < 9e15) {
        double whole = floor(t);
        int64_t us = (int64_t)((t - whole) * 1e6 + 0.5);
        if (us >= 1000000)
            us = 999999;
        int64_t day = (int64_t)whole % 86400;
        if (day < 0)
            day += 86400;
        cm_digits_fixed(b, (uint64_t)day / 3600, 2);
        b[2] = ':';
        cm_digits_fixed(b + 3, (uint64_t)day / 60 % 60, 2);
        b[5] = ':';
        cm_digits_fixed(b + 6, (uint64_t)day % 60, 2);
        b[8] = '.';
        cm_digits_fixed(b + 9, (uint64_t)us, 6);
    } else {
        memcpy(b, "??:??:??.??????", 15);
    }
    b[15] = 0;
    if (cap >= sizeof b) {
        memcpy(out, b, sizeof b);
    } else if (cap > 0) {
        memcpy(out, b, cap - 1);
        out[cap - 1] = 0;
    }
    return out;
}

/* ---- JSON ---- */

static cm_json *jbase(cm_output *o, const char *type, const cm_conn *c, double time)
{
    cm_json *j = &o->j;
    cm_json_reset(j);
    cm_json_obj(j, NULL);
    cm_json_word(j, "type", type);
    cm_json_int(j, "conn", c->id);
    cm_json_time(j, "time", time);
    return j;
}

static void jdevice(cm_json *j, const cm_conn *c)
{
    const char *id = kr_tracker_device_id(c->tr);
    if (id)
        cm_json_word(j, "device_id", id);
}

/* A live capture is followed as it happens: every line goes out at once. A file is written in large
 * blocks. A failed write stops the run. */
static void line_done(cm_output *o)
{
    if (ferror(o->out) || (o->live && fflush(o->out) != 0))
        o->broken = true;
}

static void jemit(cm_output *o)
{
    cm_json_end(&o->j, '}');
    if (!cm_json_line(&o->j, o->out))
        o->broken = true;
    line_done(o);
}

static void jtri(cm_json *j, const char *k, kr_tri t)
{
    if (t != KR_UNKNOWN)
        cm_json_bool(j, k, t == KR_YES);
}

/* With --show-keys: true the first time a connection's session material is known. */
static bool keys_now(cm_output *o, const cm_conn *c, const kr_step *s)
{
    if (!o->show_keys || !s->session_known)
        return false;
    if (!o->keyed)
        o->keyed = g_hash_table_new(g_direct_hash, g_direct_equal);
    return g_hash_table_add(o->keyed, GUINT_TO_POINTER(c->id));
}

static void j_step(void *ud, const cm_conn *c, const kr_step *s)
{
    cm_output *o = ud;
    cm_json *j = jbase(o, "step", c, s->time);
    cm_json_word(j, "dir", kr_dir_str(s->dir));
    cm_json_word(j, "step", kr_step_str(s->kind));
    cm_json_word(j, "title", kr_step_title(s->kind, s->dir));
    cm_json_int(j, "length", s->length);
    cm_json_int(j, "offset", (int64_t)s->offset);
    if (s->device_id_known)
        cm_json_word(j, "device_id", s->device_id_hex);
    else
        jdevice(j, c);
    jtri(j, "id_block_opened", s->id_block_opened);
    jtri(j, "nonce_ok", s->nonce_ok);
    jtri(j, "session_opened", s->session_opened);
    jtri(j, "signature_valid", s->signature_valid);
    jtri(j, "signature_ok", s->signature_ok);
    if (s->kind == KR_STEP_HELLO || s->kind == KR_STEP_FRAME)
        cm_json_word(j, "frame", kr_frame_state_str(s->frame_state));
    if (s->note[0])
        cm_json_str(j, "note", s->note);
    if (s->reason != KR_WHY_NONE)
        cm_json_word(j, "reason", kr_step_reason_str(s->reason));
    if (keys_now(o, c, s)) {
        char hex[2 * KR_SESSION_LEN + 1];
        cm_json_str(j, "session_key", kr_hex(s->session, 16, hex));
        cm_json_str(j, "iv", kr_hex(s->session + 16, 16, hex));
        cm_json_str(j, "salt", kr_hex(s->session + 32, 8, hex));
    }
    jemit(o);
}

static void j_message(void *ud, const cm_conn *c, const kr_message *m)
{
    cm_output *o = ud;
    char code[8], tok[17];
    cm_json *j = jbase(o, "message", c, m->time);
    jdevice(j, c);
    cm_json_word(j, "dir", kr_dir_str(m->dir));
    cm_json_word(j, "message", kr_msg_kind_str(m->kind));
    cm_json_str(j, "summary", m->summary);
    if (!m->first_block_lost) {
        cm_json_word(j, "coap_type", kr_coap_type_str(m->type));
        cm_json_word(j, "code", kr_coap_code_str(m->code, code));
        cm_json_int(j, "msg_id", m->msg_id);
        cm_json_word(j, "token", kr_hex(m->token, m->token_len > 8 ? 8 : m->token_len, tok));
        if (m->uri[0])
            cm_json_str(j, "uri", m->uri);
    } else {
        cm_json_bool(j, "first_block_lost", true);
    }
    if (m->name[0])
        cm_json_str(j, "name", m->name);
    if (m->arg[0])
        cm_json_str(j, "arg", m->arg);
    if (m->value[0])
        cm_json_str(j, "value", m->value);
    cm_json_int(j, "payload_length", (int64_t)m->payload_len);
    if (m->answers >= 0) {
        cm_json_int(j, "answers", m->answers);
        cm_json_time(j, "response_time", m->response_time);   /* seconds, to the microsecond as "time" */
    }
    jemit(o);
}

static void j_finding(void *ud, const cm_conn *c, const kr_finding *f)
{
    cm_output *o = ud;
    cm_json *j = jbase(o, "finding", c, f->time);
    jdevice(j, c);
    cm_json_str(j, "dir", kr_dir_str(f->dir));
    cm_json_str(j, "finding", kr_finding_str(f->code));
    cm_json_int(j, "offset", (int64_t)f->offset);
    cm_json_str(j, "evidence", f->text);
    jemit(o);
}

static void j_verdict(void *ud, const cm_conn *c, const kr_verdict *v)
{
    cm_output *o = ud;
    char a[80];
    cm_json *j = jbase(o, "verdict", c, v->time);
    jdevice(j, c);
    cm_json_str(j, "client", cm_addr_str(&c->client, a, sizeof a));
    cm_json_str(j, "server", cm_addr_str(&c->server, a, sizeof a));
    cm_json_str(j, "verdict", kr_verdict_str(v->code));
    cm_json_bool(j, "proven", v->proven);
    cm_json_bool(j, "final", v->final);
    cm_json_str(j, "evidence", v->evidence);
    cm_json_arr(j, "candidates");
    for (int i = 0; i < v->n_candidates && i < KR_MAX_CANDIDATES; i++)
        cm_json_str(j, NULL, kr_verdict_str(v->candidates[i]));
    cm_json_end(j, ']');
    cm_json_str(j, "step", kr_step_str(v->last_step));
    cm_json_str(j, "dir", kr_dir_str(v->last_dir));
    jemit(o);
}

/* ---- text lines ---- */

static void tprefix(cm_output *o, const cm_conn *c, double t)
{
    char ts[32];
    fprintf(o->out, "%s conn %u ", cm_time_str(t, ts, sizeof ts), c->id);
}

static void t_step(void *ud, const cm_conn *c, const kr_step *s)
{
    cm_output *o = ud;
    tprefix(o, c, s->time);
    fprintf(o->out, "%s step %s (%s, %u bytes)", kr_dir_short(s->dir), kr_step_str(s->kind),
            kr_step_title(s->kind, s->dir), s->length);
    if (s->device_id_known)
        fprintf(o->out, " device %s", s->device_id_hex);
    /* a decrypted frame's meaning is on the message line that follows (its note says more only when the
     * frame was read again from another copy of its bytes) */
    if (s->note[0] && !(s->msg && s->frame_state == KR_FRAME_DECRYPTED && strcmp(s->note, s->msg->summary) == 0))
        fprintf(o->out, ": %s", s->note);
    if (keys_now(o, c, s)) {
        char k[33], iv[33], salt[17];
        fprintf(o->out, " [session key %s iv %s salt %s]", kr_hex(s->session, 16, k), kr_hex(s->session + 16, 16, iv),
                kr_hex(s->session + 32, 8, salt));
    }
    fputc('\n', o->out);
    line_done(o);
}

static void t_message(void *ud, const cm_conn *c, const kr_message *m)
{
    cm_output *o = ud;
    char code[8];
    tprefix(o, c, m->time);
    fprintf(o->out, "%s message %s", kr_dir_short(m->dir), kr_msg_kind_str(m->kind));
    if (!m->first_block_lost)
        fprintf(o->out, " [%s %s id %u]", kr_coap_type_str(m->type), kr_coap_code_str(m->code, code),
                m->msg_id);
    else
        fprintf(o->out, " [first block lost]");
    fprintf(o->out, ": %s\n", m->summary);
    line_done(o);
}

static void t_finding(void *ud, const cm_conn *c, const kr_finding *f)
{
    cm_output *o = ud;
    tprefix(o, c, f->time);
    fprintf(o->out, "%s finding %s: %s\n", kr_dir_short(f->dir), kr_finding_str(f->code), f->text);
    line_done(o);
}

static void t_verdict(void *ud, const cm_conn *c, const kr_verdict *v)
{
    cm_output *o = ud;
    char a[80], b[80];
    const char *id = kr_tracker_device_id(c->tr);
    tprefix(o, c, v->time);
    fprintf(o->out, "verdict %s (%s%s) %s > %s", kr_verdict_str(v->code), v->proven ? "proven" : "inferred",
            v->final ? "" : ", so far", cm_addr_str(&c->client, a, sizeof a), cm_addr_str(&c->server, b, sizeof b));
    if (id)
        fprintf(o->out, " device %s", id);
    fprintf(o->out, ": %s", v->evidence);
    if (v->n_candidates > 0) {
        fprintf(o->out, " [candidates:");
        for (int k = 0; k < v->n_candidates && k < KR_MAX_CANDIDATES; k++)
            fprintf(o->out, " %s", kr_verdict_str(v->candidates[k]));
        fputc(']', o->out);
    }
    fputc('\n', o->out);
    line_done(o);
}

static void tally_end(void *ud, const cm_conn *c)
{
    cm_tally *t = ud;
    kr_verdict_code v = cm_conn_info(c)->verdict.code;
    if ((unsigned)v < CM_NVERDICTS)
        t->verdicts[v]++;
    t->ended++;
}

static void out_end(void *ud, const cm_conn *c)
{
    cm_output *o = ud;
    tally_end(&o->tally, c);
    if (o->keyed)
        g_hash_table_remove(o->keyed, GUINT_TO_POINTER(c->id));
}

cm_observer cm_output_observer(cm_output *o)
{
    cm_observer ob = { 0 };
    if (o->quiet) {
        /* only the summary */
    } else if (o->json) {
        ob.step = j_step;
        ob.message = j_message;
        ob.finding = j_finding;
        ob.verdict = j_verdict;
    } else {
        ob.step = t_step;
        ob.message = t_message;
        ob.finding = t_finding;
        ob.verdict = t_verdict;
    }
    ob.end = out_end;
    ob.ud = o;
    return ob;
}

cm_observer cm_tally_observer(cm_tally *t)
{
    cm_observer ob = { 0 };
    ob.end = tally_end;
    ob.ud = t;
    return ob;
}

void cm_output_free(cm_output *o)
{
    cm_json_free(&o->j);
    if (o->keyed)
        g_hash_table_destroy(o->keyed);
    o->keyed = NULL;
}

static void summary_json(FILE *out, const cm_mon *m, const cm_tally *t, const char *source, uint64_t dropped,
                         int64_t queue_dropped)
{
    cm_json jj, *j = &jj;
    cm_json_init(j);
    cm_json_obj(j, NULL);
    cm_json_str(j, "type", "summary");
    cm_json_str(j, "source", source);
    cm_json_int(j, "packets", (int64_t)m->st.packets);
    cm_json_int(j, "tcp_packets", (int64_t)m->st.tcp);
    cm_json_int(j, "connections", (int64_t)m->st.conns);
    cm_json_obj(j, "verdicts");
    for (int v = 0; v < CM_NVERDICTS; v++)
        if (t->verdicts[v])
            cm_json_int(j, v == KR_V_NONE ? "none" : kr_verdict_str((kr_verdict_code)v), (int64_t)t->verdicts[v]);
    cm_json_end(j, '}');
    cm_json_int(j, "messages", (int64_t)m->st.messages);
    cm_json_int(j, "findings", (int64_t)m->st.findings);
    cm_json_int(j, "evicted", (int64_t)m->st.evicted);
    cm_json_int(j, "expired", (int64_t)m->st.expired);
    cm_json_int(j, "untracked", (int64_t)m->st.untracked);
    cm_json_int(j, "fragments_held", (int64_t)m->st.fragments);
    cm_json_int(j, "dropped_by_capture", (int64_t)dropped);
    if (queue_dropped >= 0)
        cm_json_int(j, "dropped_by_queue", queue_dropped);
    if (m->budget) {
        const kr_budget_stats *b = kr_budget_get_stats(m->budget);
        cm_json_obj(j, "rsa_budget");
        cm_json_int(j, "rate", (int64_t)kr_budget_get_options(m->budget)->rate);
        cm_json_int(j, "granted", (int64_t)b->granted);
        cm_json_int(j, "waited", (int64_t)b->deferred);
        cm_json_int(j, "served_after_waiting", (int64_t)b->served);
        cm_json_int(j, "skipped", (int64_t)kr_budget_skipped_total(m->budget));
        cm_json_int(j, "operations", (int64_t)b->ops);
        cm_json_end(j, '}');
    }
    cm_json_end(j, '}');
    cm_json_line(j, out);
    cm_json_free(j);
}

void cm_output_summary(FILE *out, bool json, const cm_mon *m, const cm_tally *t, const char *source,
                       uint64_t dropped, int64_t queue_dropped)
{
    if (json) {
        summary_json(out, m, t, source, dropped, queue_dropped);
    } else {        fprintf(out, "summary: %s: %llu packets (%llu TCP), %llu connections, %llu messages, %llu findings",
                source, (unsigned long long)m->st.packets, (unsigned long long)m->st.tcp,
                (unsigned long long)m->st.conns, (unsigned long long)m->st.messages,
                (unsigned long long)m->st.findings);
        const char *sep = "; verdicts:";
        for (int v = 0; v < CM_NVERDICTS; v++)
            if (t->verdicts[v]) {
                fprintf(out, "%s %s %llu", sep, v == KR_V_NONE ? "none" : kr_verdict_str((kr_verdict_code)v),
                        (unsigned long long)t->verdicts[v]);
                sep = ",";
            }
        if (m->st.untracked) {
            char why[200];
            kr_conn_untracked_text(m->max_conns, why, sizeof why);
            fprintf(out, "; %llu packets %s", (unsigned long long)m->st.untracked, why);
        }
        if (m->st.fragments)
            fprintf(out, "; %llu IP fragments held for reassembly", (unsigned long long)m->st.fragments);
        if (dropped && queue_dropped > 0)
            fprintf(out, "; %llu packets dropped by the capture (%llu with the kernel buffer full, %lld with the "
                    "capture queue full: --queue-mb sets its size)", (unsigned long long)dropped,
                    (unsigned long long)dropped - (unsigned long long)queue_dropped, (long long)queue_dropped);
        else if (dropped)
            fprintf(out, "; %llu packets dropped by the capture (kernel buffer full)", (unsigned long long)dropped);
        if (m->budget && kr_budget_skipped_total(m->budget))
            fprintf(out, "; %llu handshakes not opened for the RSA budget (%g operations a second)",
                    (unsigned long long)kr_budget_skipped_total(m->budget), kr_budget_get_options(m->budget)->rate);
        fputc('\n', out);
    }
    fflush(out);
}
