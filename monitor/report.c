/* cloudmon: the support report. Entries are taken when a connection ends (its events are complete
 * then), and written grouped by device at the end. */
#include "report.h"
#include "devices.h"
#include "outfile.h"

#include "keyring/advice.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct rentry {
    char device[48];
    unsigned conn;
    char client[80], server[80];
    double first;
    kr_verdict_code code;
    bool proven;
    char *evidence, *meaning, *candidates, *ladder, *keys, *fix;
} rentry;

static void entry_free(gpointer p)
{
    rentry *e = p;
    g_free(e->evidence);
    g_free(e->meaning);
    g_free(e->candidates);
    g_free(e->ladder);
    g_free(e->keys);
    g_free(e->fix);
    g_free(e);
}

int cm_report_init(cm_report *r, const char *path, const kr_keyfile *kf, char *err, size_t errcap)
{
    memset(r, 0, sizeof *r);
    const char *dot = strrchr(path, '.');
    if (!dot || (g_ascii_strcasecmp(dot, ".md") != 0 && g_ascii_strcasecmp(dot, ".html") != 0 &&
                 g_ascii_strcasecmp(dot, ".htm") != 0)) {
        snprintf(err, errcap, "--report %s: name it FILE.md for Markdown or FILE.html for HTML", path);
        return -1;
    }
    r->path = path;
    r->html = g_ascii_strcasecmp(dot, ".md") != 0;
    r->kf = kf;
    r->entries = g_ptr_array_new_with_free_func(entry_free);
    return 0;
}

void cm_report_free(cm_report *r)
{
    if (r->entries)
        g_ptr_array_free(r->entries, TRUE);
    r->entries = NULL;
}

/* The ladder: one line per TCP event, handshake step and finding, and the close, with times from the
 * first packet. Later frames are summed up. */
static char *ladder(const cm_conn *c)
{
    GString *g = g_string_new("");
    unsigned frames = 0;
    for (guint i = 0; i < c->events->len; i++) {
        const cm_event *e = &g_array_index(c->events, cm_event, i);
        double rel = e->time - c->first;
        const char *arrow = e->dir == KR_D2S ? "device -> cloud" : "device <- cloud";
        if (e->type == CM_EV_STEP && e->kind == KR_STEP_FRAME) {
            frames++;
        } else if (e->type == CM_EV_STEP) {
            g_string_append_printf(g, "%+9.3fs  %s  %s (%u bytes)\n", rel, arrow, e->title, e->length);
        } else if (e->type == CM_EV_TCP && strcmp(e->title, "joined") != 0) {
            g_string_append_printf(g, "%+9.3fs  %s  %s\n", rel, arrow, e->title);
        } else if (e->type == CM_EV_FINDING) {
            g_string_append_printf(g, "%+9.3fs  finding %s: %s\n", rel, e->title, e->text);
        } else if (e->type == CM_EV_END) {
            g_string_append_printf(g, "%+9.3fs  %s\n", rel, e->text);
        }
    }
    if (frames)
        g_string_append_printf(g, "           (%u later frames)\n", frames);
    if (c->events_dropped)
        g_string_append_printf(g, "           (%llu events in the middle no longer kept)\n",
                               (unsigned long long)c->events_dropped);
    return g_string_free(g, FALSE);
}

/* The keyfile entries that apply to this device: named by line and path, never by their bytes. */
static char *keys_used(const kr_keyfile *kf, const kr_conn_info *i)
{
    GString *g = g_string_new("");
    size_t n = kf ? kr_keyfile_count(kf) : 0;
    for (size_t k = 0; k < n; k++) {
        const kr_entry *e = kr_keyfile_entry(kf, k);
        bool mine = e->has_id && i->device_id_known && strcmp(e->device_id_hex, i->device_id_hex) == 0;
        if (e->kind == KR_ENTRY_SERVER_PRIVATE)
            g_string_append_printf(g, "server private key %s (keyfile line %d)\n", e->path, e->line);
        else if (e->kind == KR_ENTRY_SERVER_PUBLIC)
            g_string_append_printf(g, "server public key %s (keyfile line %d)\n", e->path, e->line);
        else if (e->kind == KR_ENTRY_DEVICE && (mine || e->wildcard || !i->device_id_known))
            g_string_append_printf(g, "device key %s for %s (keyfile line %d)\n", e->path,
                                   e->wildcard ? "any device" : e->device_id_hex, e->line);
        else if (e->kind == KR_ENTRY_SESSION && mine)
            g_string_append_printf(g, "session line for %s (keyfile line %d)\n", e->device_id_hex, e->line);
    }
    if (!g->len)
        g_string_append(g, kf && kr_keyfile_path(kf)[0] ? "none of the keyfile's entries applies\n"
                                                        : "no keyfile given (-k): the verdict rests on the wire alone\n");
    return g_string_free(g, FALSE);
}

static void on_end(void *ud, const cm_conn *c)
{
    cm_report *r = ud;
    const kr_conn_info *i = kr_tracker_info(c->tr);
    r->conns++;
    if (i->verdict.code == KR_V_OK || i->verdict.code == KR_V_NONE)
        return;
    r->failed++;
    if (r->entries->len >= CM_REPORT_MAX) {
        r->left_out++;
        return;
    }
    rentry *e = g_new0(rentry, 1);
    cm_device_name(c, e->device, sizeof e->device);
    e->conn = c->id;
    cm_addr_str(&c->client, e->client, sizeof e->client);
    cm_addr_str(&c->server, e->server, sizeof e->server);
    e->first = c->first;
    e->code = i->verdict.code;
    e->proven = i->verdict.proven;
    e->evidence = g_strdup(i->verdict.evidence);
    e->meaning = g_strdup(kr_verdict_meaning(e->code));
    GString *cand = g_string_new("");
    for (int k = 0; k < i->verdict.n_candidates && k < KR_MAX_CANDIDATES; k++)
        g_string_append_printf(cand, "%s%s", k ? ", " : "", kr_verdict_str(i->verdict.candidates[k]));
    e->candidates = g_string_free(cand, FALSE);
    e->ladder = ladder(c);
    e->keys = keys_used(r->kf, i);
    char *fix = kr_verdict_fix_for(e->code, e->device);
    e->fix = g_strdup(fix ? fix : kr_verdict_fix(e->code));
    free(fix);
    g_ptr_array_add(r->entries, e);
}

cm_observer cm_report_observer(cm_report *r)
{
    return (cm_observer){ .end = on_end, .ud = r };
}

static int by_device(gconstpointer pa, gconstpointer pb)
{
    const rentry *a = *(rentry *const *)pa, *b = *(rentry *const *)pb;
    int c = strcmp(a->device, b->device);
    return c ? c : (a->conn > b->conn) - (a->conn < b->conn);
}

/* HTML text: & < > " escaped (the strings come from the wire and the keyfile). */
static void h(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Markdown text outside code: characters that would start markup are escaped. */
static void md_word(GString *g, const char *s, size_t n, bool code)
{
    for (size_t i = 0; i < n; i++) {
        if (!code && strchr("\\`*_[]<>#|", s[i]))
            g_string_append_c(g, '\\');
        g_string_append_c(g, code && s[i] == '`' ? '\'' : s[i]);
    }
}

/* Writes text as lines of at most 80 columns (a word longer than that stays whole): the first line
 * starts with lead, the others with cont. Prose is escaped and its spaces and newlines are word breaks;
 * code (a fenced block) keeps its lines and spacing, and only lines over 80 columns are broken. */
static void md_wrap(FILE *f, const char *lead, const char *cont, const char *text, bool code)
{
    GString *line = g_string_new(lead), *w = g_string_new("");
    size_t start = line->len;
    for (const char *p = text; *p;) {
        if (code && *p == '\n') {
            fprintf(f, "%s\n", line->str);
            g_string_assign(line, "");
            start = 0;
            p++;
            continue;
        }
        size_t sp = code ? strspn(p, " ") : strspn(p, " \n");
        size_t n = strcspn(p + sp, " \n");
        g_string_truncate(w, 0);
        md_word(w, p + sp, n, code);
        if (line->len > start && line->len + (sp ? sp : 1) + w->len > 80) {
            fprintf(f, "%s\n", line->str);
            g_string_assign(line, cont);
            start = line->len;
        } else if (line->len > start || code) {
            for (size_t k = 0; k < (code ? sp : sp ? 1 : 0); k++)
                g_string_append_c(line, ' ');
        }
        g_string_append(line, w->str);
        p += sp + n;
    }
    if (line->len > 0 || !code)
        fprintf(f, "%s\n", line->str);
    g_string_free(line, TRUE);
    g_string_free(w, TRUE);
}

static void write_md(cm_report *r, FILE *f, const char *source, const char *when)
{
    fputs("# cloudmon report\n\n", f);
    md_wrap(f, "- Source: ", "  ", source, false);
    fprintf(f, "- Written: %s\n- Connections: %llu, failed: %llu\n", when, (unsigned long long)r->conns,
            (unsigned long long)r->failed);
    if (r->left_out)
        fprintf(f, "- Not described: %llu more failed connections (the report stops at %d)\n",
                (unsigned long long)r->left_out, CM_REPORT_MAX);
    if (!r->entries->len)
        fputs("\nNo connection failed.\n", f);
    const char *dev = NULL;
    for (guint k = 0; k < r->entries->len; k++) {
        const rentry *e = g_ptr_array_index(r->entries, k);
        char t[32];
        if (!dev || strcmp(dev, e->device) != 0) {
            md_wrap(f, "\n## Device ", "", e->device, false);
            dev = e->device;
        }
        fprintf(f, "\n### Connection %u: %s (%s)\n\n", e->conn, kr_verdict_str(e->code),
                e->proven ? "proven by a key" : "inferred from the wire");
        fprintf(f, "%s to %s, from %s UTC\n\n```text\n", e->client, e->server, cm_time_str(e->first, t, sizeof t));
        md_wrap(f, "", "", e->ladder, true);
        fputs("```\n\n", f);
        md_wrap(f, "- Verdict: ", "  ", e->meaning, false);
        md_wrap(f, "- Evidence: ", "  ", e->evidence[0] ? e->evidence : "none given", false);
        if (e->candidates[0])
            md_wrap(f, "- Candidates: ", "  ", e->candidates, false);
        fputs("\nKeys used:\n\n", f);
        char **lines = g_strsplit(e->keys, "\n", -1);
        for (char **p = lines; *p; p++)
            if (**p)
                md_wrap(f, "- ", "  ", *p, false);
        g_strfreev(lines);
        fputs("\nFix:\n\n```text\n", f);
        md_wrap(f, "", "  ", e->fix, true);
        fputs("```\n", f);
    }
}

static void write_html(cm_report *r, FILE *f, const char *source, const char *when)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>cloudmon report</title>\n"
          "<style>body{font-family:sans-serif;margin:2em;color:#222}h2{border-bottom:1px solid #999}"
          "pre{background:#f4f4f4;padding:.6em;overflow-x:auto}.fail{color:#b00}.fix{background:#eef6ee}"
          ".wrap{white-space:pre-wrap;overflow-wrap:anywhere}"
          "</style></head><body>\n<h1>cloudmon report</h1>\n<ul><li>Source: ", f);
    h(f, source);
    fprintf(f, "</li><li>Written: %s</li><li>Connections: %llu, failed: %llu</li>", when,
            (unsigned long long)r->conns, (unsigned long long)r->failed);
    if (r->left_out)
        fprintf(f, "<li>Not described: %llu more failed connections (the report stops at %d)</li>",
                (unsigned long long)r->left_out, CM_REPORT_MAX);
    fputs("</ul>\n", f);
    if (!r->entries->len)
        fputs("<p>No connection failed.</p>\n", f);
    const char *dev = NULL;
    for (guint k = 0; k < r->entries->len; k++) {
        const rentry *e = g_ptr_array_index(r->entries, k);
        char t[32];
        if (!dev || strcmp(dev, e->device) != 0) {
            fputs("<h2>Device ", f);
            h(f, e->device);
            fputs("</h2>\n", f);
            dev = e->device;
        }
        fprintf(f, "<h3>Connection %u: <span class=\"fail\">%s</span> (%s)</h3>\n<p>%s to %s, from %s UTC</p>\n<pre>",
                e->conn, kr_verdict_str(e->code), e->proven ? "proven by a key" : "inferred from the wire",
                e->client, e->server, cm_time_str(e->first, t, sizeof t));
        h(f, e->ladder);
        fputs("</pre>\n<p><b>Verdict:</b> ", f);
        h(f, e->meaning);
        fputs("</p>\n<p><b>Evidence:</b> ", f);
        h(f, e->evidence[0] ? e->evidence : "none given");
        if (e->candidates[0]) {
            fputs("</p>\n<p><b>Candidates:</b> ", f);
            h(f, e->candidates);
        }
        fputs("</p>\n<p><b>Keys used:</b></p>\n<pre class=\"wrap\">", f);
        h(f, e->keys);
        fputs("</pre>\n<p><b>Fix:</b></p>\n<pre class=\"fix wrap\">", f);
        h(f, e->fix);
        fputs("</pre>\n", f);
    }
    fputs("</body></html>\n", f);
}

int cm_report_write(cm_report *r, const char *source, char *err, size_t errcap)
{
    FILE *f = cm_outfile_open(r->path, "--report", false, err, errcap);
    if (!f)
        return -1;
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    g_ptr_array_sort(r->entries, by_device);
    if (r->html)
        write_html(r, f, source, when);
    else
        write_md(r, f, source, when);
    bool bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        snprintf(err, errcap, "--report %s: write failed", r->path);
        return -1;
    }
    return 0;
}
