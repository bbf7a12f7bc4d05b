/* cloudmon: lines and JSON Lines. */
#include "output.h"
#include "keyring/names.h"

#include <json-c/json.h>
#include <string.h>
#include <time.h>

char *cm_time_str(double t, char *out, size_t cap)
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    long us = (long)((t - (double)s) * 1e6 + 0.5);
    if (us >= 1000000)
        us = 999999;
    snprintf(out, cap, "%02d:%02d:%02d.%06ld", tm.tm_hour, tm.tm_min, tm.tm_sec, us);
    return out;
}

/* ---- JSON ---- */

static json_object *jbase(const char *type, const cm_conn *c, double time)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string(type));
    json_object_object_add(o, "conn", json_object_new_int64(c->id));
    json_object_object_add(o, "time", json_object_new_double(time));
    return o;
}

static void jstr(json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, json_object_new_string(v));
}

static void jdevice(json_object *o, const cm_conn *c)
{
    const kr_conn_info *i = kr_tracker_info(c->tr);
    if (i->device_id_known)
        jstr(o, "device_id", i->device_id_hex);
}

/* Every line goes out at once (a live capture is followed as it happens); a failed write stops the run. */
static void line_done(cm_output *o)
{
    if (fflush(o->out) != 0 || ferror(o->out))
        o->broken = true;
}

static void jemit(cm_output *o, json_object *j)
{
    fputs(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), o->out);
    fputc('\n', o->out);
    line_done(o);
    json_object_put(j);
}

static void jtri(json_object *o, const char *k, kr_tri t)
{
    if (t != KR_UNKNOWN)
        json_object_object_add(o, k, json_object_new_boolean(t == KR_YES));
}

static void j_step(void *ud, const cm_conn *c, const kr_step *s)
{
    cm_output *o = ud;
    json_object *j = jbase("step", c, s->time);
    jstr(j, "dir", kr_dir_str(s->dir));
    jstr(j, "step", kr_step_str(s->kind));
    jstr(j, "title", kr_step_title(s->kind, s->dir));
    json_object_object_add(j, "length", json_object_new_int64(s->length));
    json_object_object_add(j, "offset", json_object_new_int64((int64_t)s->offset));
    if (s->device_id_known)
        jstr(j, "device_id", s->device_id_hex);
    else
        jdevice(j, c);
    jtri(j, "id_block_opened", s->id_block_opened);
    jtri(j, "nonce_ok", s->nonce_ok);
    jtri(j, "session_opened", s->session_opened);
    jtri(j, "signature_valid", s->signature_valid);
    jtri(j, "signature_ok", s->signature_ok);
    if (s->kind == KR_STEP_HELLO || s->kind == KR_STEP_FRAME)
        jstr(j, "frame", kr_frame_state_str(s->frame_state));
    if (s->note[0])
        jstr(j, "note", s->note);
    jemit(o, j);
}

static void j_message(void *ud, const cm_conn *c, const kr_message *m)
{
    cm_output *o = ud;
    char code[8], tok[17];
    json_object *j = jbase("message", c, m->time);
    jdevice(j, c);
    jstr(j, "dir", kr_dir_str(m->dir));
    jstr(j, "message", kr_msg_kind_str(m->kind));
    jstr(j, "summary", m->summary);
    if (!m->first_block_lost) {
        jstr(j, "coap_type", kr_coap_type_str(m->type));
        jstr(j, "code", kr_coap_code_str(m->code, code));
        json_object_object_add(j, "msg_id", json_object_new_int(m->msg_id));
        jstr(j, "token", kr_hex(m->token, m->token_len > 8 ? 8 : m->token_len, tok));
        if (m->uri[0])
            jstr(j, "uri", m->uri);
    } else {
        json_object_object_add(j, "first_block_lost", json_object_new_boolean(1));
    }
    if (m->name[0])
        jstr(j, "name", m->name);
    if (m->arg[0])
        jstr(j, "arg", m->arg);
    if (m->value[0])
        jstr(j, "value", m->value);
    json_object_object_add(j, "payload_length", json_object_new_int64((int64_t)m->payload_len));
    if (m->answers >= 0) {
        json_object_object_add(j, "answers", json_object_new_int(m->answers));
        json_object_object_add(j, "response_time", json_object_new_double(m->response_time));
    }
    jemit(o, j);
}

static void j_finding(void *ud, const cm_conn *c, const kr_finding *f)
{
    cm_output *o = ud;
    json_object *j = jbase("finding", c, f->time);
    jdevice(j, c);
    jstr(j, "dir", kr_dir_str(f->dir));
    jstr(j, "finding", kr_finding_str(f->code));
    json_object_object_add(j, "offset", json_object_new_int64((int64_t)f->offset));
    jstr(j, "evidence", f->text);
    jemit(o, j);
}

static void j_verdict(void *ud, const cm_conn *c, const kr_verdict *v)
{
    cm_output *o = ud;
    char a[80];
    json_object *j = jbase("verdict", c, v->time);
    jdevice(j, c);
    jstr(j, "client", cm_addr_str(&c->client, a, sizeof a));
    jstr(j, "server", cm_addr_str(&c->server, a, sizeof a));
    jstr(j, "verdict", kr_verdict_str(v->code));
    json_object_object_add(j, "proven", json_object_new_boolean(v->proven));
    json_object_object_add(j, "final", json_object_new_boolean(v->final));
    jstr(j, "evidence", v->evidence);
    json_object *cand = json_object_new_array();
    for (int i = 0; i < v->n_candidates && i < KR_MAX_CANDIDATES; i++)
        json_object_array_add(cand, json_object_new_string(kr_verdict_str(v->candidates[i])));
    json_object_object_add(j, "candidates", cand);
    jstr(j, "step", kr_step_str(v->last_step));
    jstr(j, "dir", kr_dir_str(v->last_dir));
    jemit(o, j);
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
    /* a decrypted frame's meaning is on the message line that follows */
    if (s->note[0] && !(s->msg && s->frame_state == KR_FRAME_DECRYPTED))
        fprintf(o->out, ": %s", s->note);
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
    const kr_conn_info *i = kr_tracker_info(c->tr);
    tprefix(o, c, v->time);
    fprintf(o->out, "verdict %s (%s%s) %s > %s", kr_verdict_str(v->code), v->proven ? "proven" : "inferred",
            v->final ? "" : ", so far", cm_addr_str(&c->client, a, sizeof a), cm_addr_str(&c->server, b, sizeof b));
    if (i->device_id_known)
        fprintf(o->out, " device %s", i->device_id_hex);
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
    kr_verdict_code v = c->info.verdict.code;
    if ((unsigned)v <= KR_V_MID_SESSION)
        t->verdicts[v]++;
    t->ended++;
}

static void out_end(void *ud, const cm_conn *c)
{
    cm_output *o = ud;
    tally_end(&o->tally, c);
}

cm_observer cm_output_observer(cm_output *o)
{
    cm_observer ob = { 0 };
    if (o->json) {
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

void cm_output_summary(FILE *out, bool json, const cm_mon *m, const cm_tally *t, const char *source,
                       uint64_t dropped)
{
    if (json) {
        json_object *j = json_object_new_object();
        jstr(j, "type", "summary");
        jstr(j, "source", source);
        json_object_object_add(j, "packets", json_object_new_int64((int64_t)m->st.packets));
        json_object_object_add(j, "tcp_packets", json_object_new_int64((int64_t)m->st.tcp));
        json_object_object_add(j, "connections", json_object_new_int64((int64_t)m->st.conns));
        json_object *vs = json_object_new_object();
        for (int v = 0; v <= KR_V_MID_SESSION; v++)
            if (t->verdicts[v])
                json_object_object_add(vs, v == KR_V_NONE ? "none" : kr_verdict_str((kr_verdict_code)v),
                                       json_object_new_int64((int64_t)t->verdicts[v]));
        json_object_object_add(j, "verdicts", vs);
        json_object_object_add(j, "messages", json_object_new_int64((int64_t)m->st.messages));
        json_object_object_add(j, "findings", json_object_new_int64((int64_t)m->st.findings));
        json_object_object_add(j, "evicted", json_object_new_int64((int64_t)m->st.evicted));
        json_object_object_add(j, "expired", json_object_new_int64((int64_t)m->st.expired));
        json_object_object_add(j, "fragments_ignored", json_object_new_int64((int64_t)m->st.fragments));
        json_object_object_add(j, "dropped_by_capture", json_object_new_int64((int64_t)dropped));
        fputs(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), out);
        fputc('\n', out);
        json_object_put(j);
    } else {
        fprintf(out, "summary: %s: %llu packets (%llu TCP), %llu connections, %llu messages, %llu findings",
                source, (unsigned long long)m->st.packets, (unsigned long long)m->st.tcp,
                (unsigned long long)m->st.conns, (unsigned long long)m->st.messages,
                (unsigned long long)m->st.findings);
        const char *sep = "; verdicts:";
        for (int v = 0; v <= KR_V_MID_SESSION; v++)
            if (t->verdicts[v]) {
                fprintf(out, "%s %s %llu", sep, v == KR_V_NONE ? "none" : kr_verdict_str((kr_verdict_code)v),
                        (unsigned long long)t->verdicts[v]);
                sep = ",";
            }
        if (m->st.fragments)
            fprintf(out, "; %llu IP fragments ignored", (unsigned long long)m->st.fragments);
        if (dropped)
            fprintf(out, "; %llu packets dropped by the capture (kernel buffer full)", (unsigned long long)dropped);
        fputc('\n', out);
    }
    fflush(out);
}
