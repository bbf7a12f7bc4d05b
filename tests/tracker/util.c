/* sparkwire tests: helpers shared by the tracker tests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib/gstdio.h>
#include "util.h"
#include "dump.h"

GByteArray *tk_unhex(const char *hex)
{
    GByteArray *a = g_byte_array_new();
    int hi = -1;
    for (const char *p = hex; *p; p++) {
        int v;
        if (*p >= '0' && *p <= '9') v = *p - '0';
        else if (*p >= 'a' && *p <= 'f') v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F') v = *p - 'A' + 10;
        else if (*p == ' ' || *p == '\n') continue;
        else {
            fprintf(stderr, "tk_unhex: bad character '%c' in test data\n", *p);
            abort();
        }
        if (hi < 0)
            hi = v;
        else {
            uint8_t b = (uint8_t)(hi << 4 | v);
            g_byte_array_append(a, &b, 1);
            hi = -1;
        }
    }
    if (hi >= 0) {
        fprintf(stderr, "tk_unhex: odd number of hex digits in test data\n");
        abort();
    }
    return a;
}

char *tk_tmpdir(void)
{
    GError *e = NULL;
    char *d = g_dir_make_tmp("sparkwire-tracker-XXXXXX", &e);
    if (!d) {
        fprintf(stderr, "cannot make a temporary folder: %s\n", e->message);
        abort();
    }
    return d;
}

void tk_rmdir(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    if (d) {
        const char *n;
        while ((n = g_dir_read_name(d)) != NULL) {
            char *p = g_build_filename(dir, n, NULL);
            g_remove(p);
            g_free(p);
        }
        g_dir_close(d);
    }
    g_rmdir(dir);
}

void tk_write(const char *dir, const char *name, const uint8_t *data, size_t len)
{
    char *p = g_build_filename(dir, name, NULL);
    GError *e = NULL;
    if (!g_file_set_contents(p, (const char *)data, (gssize)len, &e)) {
        fprintf(stderr, "cannot write %s: %s\n", p, e->message);
        abort();
    }
    g_free(p);
}

kr_keyfile *tk_keyfile(const char *dir, const char *text)
{
    kr_err err;
    memset(&err, 0, sizeof err);
    kr_keyfile *kf = kr_keyfile_parse(text, strlen(text), dir, "test-keyfile", &err);
    if (!kf) {
        fprintf(stderr, "keyfile: %s\n", err.msg);
        abort();
    }
    return kf;
}

tk_conn *tk_conn_new(void)
{
    tk_conn *c = g_new0(tk_conn, 1);
    c->ev = g_array_new(FALSE, TRUE, sizeof(tk_ev));
    c->now = 1000.0;
    return c;
}

void tk_conn_free(tk_conn *c)
{
    if (!c)
        return;
    for (guint i = 0; i < c->ev->len; i++) {
        tk_ev *e = &g_array_index(c->ev, tk_ev, i);
        if (e->data)
            g_byte_array_unref(e->data);
    }
    g_array_free(c->ev, TRUE);
    g_free(c);
}

static tk_ev *push(tk_conn *c, tk_ev_kind k, double dt)
{
    tk_ev e;
    memset(&e, 0, sizeof e);
    c->now += dt;
    e.kind = k;
    e.ts = c->now;
    g_array_append_val(c->ev, e);
    return &g_array_index(c->ev, tk_ev, c->ev->len - 1);
}

void tk_conn_open(tk_conn *c, double dt)
{
    push(c, TK_OPEN, dt);
}

void tk_conn_data(tk_conn *c, kr_dir dir, double dt, const uint8_t *data, size_t len)
{
    tk_ev *e = push(c, TK_DATA, dt);
    e->dir = dir;
    e->data = g_byte_array_sized_new((guint)len);
    g_byte_array_append(e->data, data, (guint)len);
}

void tk_conn_hex(tk_conn *c, kr_dir dir, double dt, const char *hex)
{
    GByteArray *a = tk_unhex(hex);
    tk_conn_data(c, dir, dt, a->data, a->len);
    g_byte_array_unref(a);
}

void tk_conn_gap(tk_conn *c, kr_dir dir, double dt, uint64_t n)
{
    tk_ev *e = push(c, TK_GAP, dt);
    e->dir = dir;
    e->n = n;
}

void tk_conn_close(tk_conn *c, kr_dir dir, double dt, bool rst)
{
    tk_ev *e = push(c, TK_CLOSE, dt);
    e->dir = dir;
    e->rst = rst;
}

void tk_conn_dispute(tk_conn *c, kr_dir dir, double dt, uint64_t off, uint64_t n)
{
    tk_ev *e = push(c, TK_DISPUTE, dt);
    e->dir = dir;
    e->off = off;
    e->n = n;
}

void tk_conn_copy(tk_conn *c, kr_dir dir, double dt, uint64_t off, const uint8_t *data, size_t len, int rank)
{
    tk_ev *e = push(c, TK_COPY, dt);
    e->dir = dir;
    e->rank = rank;
    e->off = off;
    e->data = g_byte_array_new();
    g_byte_array_append(e->data, data, (guint)len);
}

typedef struct both {
    tk_dump dump;
    const kr_callbacks *extra;
    void *extra_ud;
} both;

static void b_step(void *ud, const kr_step *s)
{
    both *b = ud;
    tk_dump_callbacks.step(&b->dump, s);
    if (b->extra && b->extra->step)
        b->extra->step(b->extra_ud, s);
}

static void b_msg(void *ud, const kr_message *m)
{
    both *b = ud;
    tk_dump_callbacks.message(&b->dump, m);
    if (b->extra && b->extra->message)
        b->extra->message(b->extra_ud, m);
}

static void b_find(void *ud, const kr_finding *f)
{
    both *b = ud;
    tk_dump_callbacks.finding(&b->dump, f);
    if (b->extra && b->extra->finding)
        b->extra->finding(b->extra_ud, f);
}

static void b_verdict(void *ud, const kr_verdict *v)
{
    both *b = ud;
    tk_dump_callbacks.verdict(&b->dump, v);
    if (b->extra && b->extra->verdict)
        b->extra->verdict(b->extra_ud, v);
}

char *tk_conn_run_cb(const tk_conn *c, const kr_keyfile *kf, unsigned chunking, kr_verdict *final_verdict,
                     const kr_callbacks *extra, void *extra_ud)
{
    static const kr_callbacks cbs = { b_step, b_msg, b_find, b_verdict };
    GString *out = g_string_new(NULL);
    both b;
    memset(&b, 0, sizeof b);
    tk_dump_init(&b.dump, out, 0, 1000.0);
    b.extra = extra;
    b.extra_ud = extra_ud;
    kr_tracker *t = kr_tracker_new(kf, &cbs, &b);
    static const uint8_t cloud[4] = { 192, 0, 2, 10 };   /* TK_CLOUD */
    kr_tracker_set_cloud(t, 4, cloud, 5683);
    GRand *rnd = chunking > 1 ? g_rand_new_with_seed(chunking) : NULL;
    double last = 1000.0;
    for (guint i = 0; i < c->ev->len; i++) {
        const tk_ev *e = &g_array_index(c->ev, tk_ev, i);
        last = e->ts;
        switch (e->kind) {
        case TK_OPEN:
            kr_tracker_open(t, e->ts);
            break;
        case TK_DATA: {
            size_t off = 0, len = e->data->len;
            while (off < len) {
                size_t n = len - off;
                if (chunking == 1)
                    n = 1;
                else if (rnd)
                    n = (size_t)g_rand_int_range(rnd, 1, 64);
                if (n > len - off)
                    n = len - off;
                /* a copy of exactly n bytes, so reading past it is caught by the sanitizer */
                uint8_t *piece = g_memdup2(e->data->data + off, n);
                kr_tracker_data(t, e->dir, piece, n, e->ts);
                g_free(piece);
                off += n;
            }
            break;
        }
        case TK_GAP:
            kr_tracker_gap(t, e->dir, e->n, e->ts);
            break;
        case TK_CLOSE:
            kr_tracker_close(t, e->dir, e->rst, e->ts);
            break;
        case TK_DISPUTE:
            kr_tracker_dispute(t, e->dir, e->off, e->n);
            break;
        case TK_COPY:
            kr_tracker_copy(t, e->dir, e->off, e->data->data, e->data->len, e->rank, e->ts);
            break;
        case TK_FINISH:
            break;
        }
    }
    kr_tracker_finish(t, last);
    tk_dump_info(&b.dump, t);
    if (final_verdict)
        *final_verdict = *kr_tracker_verdict(t);
    kr_tracker_free(t);
    if (rnd)
        g_rand_free(rnd);
    return g_string_free(out, FALSE);
}

char *tk_conn_run(const tk_conn *c, const kr_keyfile *kf, unsigned chunking, kr_verdict *final_verdict)
{
    return tk_conn_run_cb(c, kf, chunking, final_verdict, NULL, NULL);
}
