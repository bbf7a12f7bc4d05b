/* sparkwire tests: the tracker's callbacks as stable text lines (the golden format).
 *
 *   step <n> <kind> <dir> off=<offset> len=<bytes> t=+<s> [<frame state>]: <note>
 *   msg <n> <kind> <dir> <CON|NON|ACK|RST> <code> id=0x<id> tok=<hex|-> [re=<n> rt=<ms>ms]: <summary>
 *   finding <code> <dir> off=<offset> t=+<s>: <text>
 *   verdict <code> <proven|inferred> <final|open> cands=<a,b|-> t=+<s>: <evidence>
 * plus "open", "close", "gap", "finish" and "info" lines written by the driver. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dump.h"

static const char *tri(kr_tri v)
{
    return v == KR_YES ? "yes" : v == KR_NO ? "no" : "?";
}

static const char *frame_state(kr_frame_state s)
{
    switch (s) {
    case KR_FRAME_NOT_DECRYPTED: return "not-decrypted";
    case KR_FRAME_DECRYPTED: return "decrypted";
    case KR_FRAME_PARTIAL: return "partial";
    case KR_FRAME_DECRYPT_ERROR: return "decrypt-error";
    }
    return "?";
}

static void vline(tk_dump *d, const char *fmt, va_list ap)
{
    if (d->conn)
        g_string_append_printf(d->out, "[%d] ", d->conn);
    g_string_append_vprintf(d->out, fmt, ap);
    g_string_append_c(d->out, '\n');
}

void tk_dump_line(tk_dump *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(d, fmt, ap);
    va_end(ap);
}

void tk_dump_init(tk_dump *d, GString *out, int conn, double t0)
{
    d->out = out;
    d->conn = conn;
    d->t0 = t0;
    d->proven_given = false;
}

static void on_step(void *ud, const kr_step *s)
{
    tk_dump *d = ud;
    char extra[160] = "";
    switch (s->kind) {
    case KR_STEP_IDBLOCK:
        snprintf(extra, sizeof extra, " id=%s opened=%s nonce=%s offered=%s", s->device_id_known ? s->device_id_hex : "-",
                 tri(s->id_block_opened), tri(s->nonce_ok), tri(s->offered_key_known));
        break;
    case KR_STEP_SESSIONBLOCK:
        snprintf(extra, sizeof extra, " id=%s opened=%s session=%s sig=%s/%s",
                 s->device_id_known ? s->device_id_hex : "-", tri(s->session_opened),
                 s->session_known ? "yes" : "no", tri(s->signature_valid), tri(s->signature_ok));
        break;
    case KR_STEP_HELLO:
    case KR_STEP_FRAME:
        snprintf(extra, sizeof extra, " %s", frame_state(s->frame_state));
        break;
    default:
        break;
    }
    tk_dump_line(d, "step %u %s %s off=%llu len=%u t=+%.6f%s: %s", s->index, kr_step_str(s->kind),
                 kr_dir_short(s->dir), (unsigned long long)s->offset, s->length, s->time - d->t0, extra, s->note);
}

static void on_message(void *ud, const kr_message *m)
{
    tk_dump *d = ud;
    static const char *types[] = { "CON", "NON", "ACK", "RST" };
    char tok[20] = "-";
    if (m->token_len)
        kr_hex(m->token, m->token_len, tok);
    char re[48] = "";
    if (m->answers >= 0)
        snprintf(re, sizeof re, " re=%d rt=%.0fms", m->answers, m->response_time * 1000.0);
    if (m->first_block_lost)
        tk_dump_line(d, "msg %u %s %s ? ?: %s", m->index, kr_msg_kind_str(m->kind), kr_dir_short(m->dir),
                     m->summary);
    else
        tk_dump_line(d, "msg %u %s %s %s %u.%02u id=0x%04x tok=%s%s: %s", m->index, kr_msg_kind_str(m->kind),
                     kr_dir_short(m->dir), types[m->type & 3], (unsigned)(m->code >> 5), (unsigned)(m->code & 31),
                     m->msg_id, tok, re, m->summary);
}

static void on_finding(void *ud, const kr_finding *f)
{
    tk_dump *d = ud;
    tk_dump_line(d, "finding %s %s off=%llu t=+%.6f: %s", kr_finding_str(f->code), kr_dir_short(f->dir),
                 (unsigned long long)f->offset, f->time - d->t0, f->text);
}

static void on_verdict(void *ud, const kr_verdict *v)
{
    tk_dump *d = ud;
    char c[128] = "";
    size_t o = 0;
    for (int i = 0; i < v->n_candidates; i++)
        o += (size_t)snprintf(c + o, sizeof c - o, "%s%s", i ? "," : "", kr_verdict_str(v->candidates[i]));
    tk_dump_line(d, "verdict %s %s %s cands=%s t=+%.6f: %s", kr_verdict_str(v->code),
                 v->proven ? "proven" : "inferred", v->final ? "final" : "open", o ? c : "-", v->time - d->t0,
                 v->evidence);
    /* every tracker test runs through here: a verdict given as proven is never changed or withdrawn */
    if (d->proven_given && (v->code != d->proven.code || !v->proven)) {
        fprintf(stderr, "tracker test: the proven verdict %s was followed by %s (%s): %s\n%s",
                kr_verdict_str(d->proven.code), kr_verdict_str(v->code), v->proven ? "proven" : "inferred",
                v->evidence, d->out->str);
        abort();
    }
    if (v->proven && !d->proven_given) {
        d->proven_given = true;
        d->proven = *v;
    }
}

const kr_callbacks tk_dump_callbacks = { on_step, on_message, on_finding, on_verdict };

void tk_dump_info(tk_dump *d, const kr_tracker *t)
{
    const kr_conn_info *i = kr_tracker_info(t);
    tk_dump_line(d, "info device=%s gen=%d handshake=%s decrypting=%s bytes=%llu/%llu frames=%u/%u messages=%u "
                 "findings=%u verdict=%s", i->device_id_known ? i->device_id_hex : "-", i->generation,
                 i->handshake_done ? "done" : "no", i->decrypting ? "yes" : "no",
                 (unsigned long long)i->bytes[KR_D2S], (unsigned long long)i->bytes[KR_S2D], i->frames[KR_D2S],
                 i->frames[KR_S2D], i->messages, i->findings, kr_verdict_str(i->verdict.code));
}
