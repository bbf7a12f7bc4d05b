/* cloudmon: the panels of the screen: header, connection list, detail (handshake ladder, messages,
 * verdict), help, footer, and the "terminal too small" screen. Drawing only: no state changes besides
 * clamping scroll positions to what fits. */
#include "screen.h"
#include "keyring/names.h"

#include <curses.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { C_OK = 1, C_FAIL, C_WARN, C_BAR, C_DIM, C_SEL };

void cm_panels_init_colors(cm_screen *s)
{
    const char *nc = getenv("NO_COLOR");
    s->color = has_colors() && !(nc && *nc);
    if (!s->color)
        return;
    start_color();
    use_default_colors();
    init_pair(C_OK, COLOR_GREEN, -1);
    init_pair(C_FAIL, COLOR_RED, -1);
    init_pair(C_WARN, COLOR_YELLOW, -1);
    init_pair(C_BAR, COLOR_BLACK, COLOR_CYAN);
    init_pair(C_DIM, COLOR_BLUE, -1);
    init_pair(C_SEL, COLOR_BLACK, COLOR_WHITE);
}

static int pair_attr(cm_screen *s, int pair)
{
    return s->color && pair ? COLOR_PAIR(pair) : 0;
}

static int verdict_pair(kr_verdict_code v)
{
    switch (v) {
    case KR_V_NONE: return 0;
    case KR_V_OK: return C_OK;
    case KR_V_INCOMPLETE: case KR_V_MID_SESSION: case KR_V_STALLED: return C_WARN;
    default: return C_FAIL;
    }
}

/* Writes text at (y, x) cut to at most w columns. */
static void put(int y, int x, int w, const char *text)
{
    if (w <= 0 || y < 0 || y >= LINES)
        return;
    mvaddnstr(y, x, text, w);
}

static void putf(int y, int x, int w, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void putf(int y, int x, int w, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    put(y, x, w, buf);
}

static void bar(cm_screen *s, int y, const char *text)
{
    attron(s->color ? COLOR_PAIR(C_BAR) : A_REVERSE);
    move(y, 0);
    hline(' ', COLS);
    put(y, 0, COLS, text);
    attroff(s->color ? COLOR_PAIR(C_BAR) : A_REVERSE);
}

static const char *verdict_word(const cm_conn *c)
{
    kr_verdict_code v = cm_conn_info(c)->verdict.code;
    return v == KR_V_NONE ? (c->ended ? "none" : "...") : kr_verdict_str(v);
}

static void header(cm_screen *s, cm_app *a)
{
    char buf[1024], drops[48] = "";
    uint64_t dropped = cm_capture_drops(&a->cap);
    if (dropped)
        snprintf(drops, sizeof drops, " (%llu dropped)", (unsigned long long)dropped);
    char snap[96] = "";
    if (a->snap_cut)
        snprintf(snap, sizeof snap, "  [snaplen %u cut %llu packets: capture with -s 0]", a->snap_len,
                 (unsigned long long)a->snap_cut);
    char prog[96] = "";
    if (!a->cap.live && !s->finished) {
        char t[80];
        snprintf(prog, sizeof prog, "  [%s]", cm_progress_text(&a->prog, &a->cap, a->mon.st.packets, cm_wall(), t, sizeof t));
    }
    snprintf(buf, sizeof buf, " cloudmon  %s  packets %llu%s%s%s  connections %llu (%zu live)  sort: %s%s%s%s%s",
             a->source, (unsigned long long)a->mon.st.packets, prog, drops, snap, (unsigned long long)a->mon.st.conns,
             cm_mon_live_count(&a->mon), s->view == CM_VIEW_DEVICES ? cm_dev_sort_name(s->dsort) : cm_sort_name(s->sort), s->filter[0] ? "  filter: " : "", s->filter,
             s->paused ? "  [PAUSED]" : "", s->finished ? (a->cap.live ? "  [stopped]" : "  [end of file]") : "");
    bar(s, 0, buf);
}

static void footer(cm_screen *s, cm_app *a)
{
    int y = LINES - 1;
    move(y, 0);
    clrtoeol();
    if (s->editing) {
        putf(y, 0, COLS, "Filter: %s", s->filter);
        curs_set(1);
        move(y, 8 + (int)strlen(s->filter) < COLS ? 8 + (int)strlen(s->filter) : COLS - 1);
        return;
    }
    curs_set(0);
    if (s->status[0] && cm_wall() < s->status_until) {
        attron(A_BOLD);
        put(y, 0, COLS, s->status);
        attroff(A_BOLD);
        return;
    }
    if (a->failed) {
        attron(pair_attr(s, C_FAIL) | A_BOLD);
        put(y, 0, COLS, a->err);
        attroff(pair_attr(s, C_FAIL) | A_BOLD);
        return;
    }
    const char *keys = s->view == CM_VIEW_LIST
        ? "F1/? help  Enter detail  d devices  / filter  s sort  p pause  w save  q quit"
        : s->view == CM_VIEW_DETAIL  ? "F1/? help  Esc list  Tab next  j/k scroll  w save  q quit"
        : s->view == CM_VIEW_DEVICES ? "F1/? help  Enter connections  s sort  Esc list  q quit"
                                     : "Esc back  j/k scroll  q quit";
    attron(pair_attr(s, C_DIM));
    put(y, 0, COLS, keys);
    attroff(pair_attr(s, C_DIM));
}

/* Scrolls so that the selected row sel of n stays among the rows shown from *top. */
static void keep_visible(int sel, int *top, int rows, int n)
{
    if (sel < *top)
        *top = sel;
    if (sel >= *top + rows)
        *top = sel - rows + 1;
    if (*top > n - rows)
        *top = n - rows > 0 ? n - rows : 0;
}

/* A row of a table: cleared and drawn in the selection's colours when selected; returns its attribute
 * (the caller turns it off at the end of the row). */
static int row_start(cm_screen *s, int y, bool sel, const char *line)
{
    int base = sel ? (s->color ? COLOR_PAIR(C_SEL) : A_REVERSE) : 0;
    attron(base);
    move(y, 0);
    hline(' ', COLS);
    put(y, 0, COLS, line);
    return base;
}

/* The verdict cell at x, in the verdict's colour unless the row is selected. */
static void verdict_cell(cm_screen *s, int y, int x, bool sel, kr_verdict_code v, const char *text)
{
    int vp = sel ? 0 : pair_attr(s, verdict_pair(v));
    attron(vp | A_BOLD);
    putf(y, x, COLS - x, "%-23s", text);
    attroff(vp | A_BOLD);
}

/* ---- list ---- */

static void list_panel(cm_screen *s, cm_app *a)
{
    int top = 1, height = LINES - 2;
    char addr1[80], addr2[80], t[32];
    /* the addresses go first when the terminal is narrow */
    /* the note (why a session is not decrypted) matters more than the times and the addresses; a
     * device whose id is not known is named by its address */
    bool show_last = COLS >= 120, show_dev = COLS >= 150, show_cloud = COLS >= 173;
    char hdr[512];
    snprintf(hdr, sizeof hdr, "%4s %-24s %s%s%-13s %-23s %s%5s %s %s", "#", "DEVICE",
             show_dev ? "DEVICE ADDRESS         " : "", show_cloud ? "CLOUD ADDRESS          " : "",
             "STEP", "VERDICT", show_last ? "LAST     " : "", "MSGS", show_last ? "   BYTES " : "", "NOTE");
    attron(A_BOLD);
    put(top, 0, COLS, hdr);
    attroff(A_BOLD);
    int rows = height - 1;
    int n = (int)s->rows->len;
    uint64_t older = a->mon.st.conns > a->mon.conns->len ? a->mon.st.conns - a->mon.conns->len : 0;
    if (older) {
        /* the history limit let the oldest ended connections go */
        rows--;
        attron(pair_attr(s, C_DIM));
        putf(top + height - 1, 0, COLS, "%llu older connections not shown (--history %zu keeps the newest ended ones)",
             (unsigned long long)older, a->mon.max_history);
        attroff(pair_attr(s, C_DIM));
    }
    if (n == 0) {
        put(top + 2, 2, COLS - 2, a->mon.st.conns ? "No connection matches the filter (/ to change it)."
                                                 : "No connection seen yet.");
        return;
    }
    keep_visible(s->sel, &s->list_top, rows, n);
    for (int i = 0; i < rows && s->list_top + i < n; i++) {
        const cm_conn *c = g_ptr_array_index(s->rows, s->list_top + i);
        const kr_conn_info *in = cm_conn_info(c);
        const char *note = !in->decrypting && in->no_decrypt_reason[0] ? in->no_decrypt_reason
                         : c->ended ? c->end_reason : in->decrypting ? "decrypting" : "";
        char line[1024], da[40] = "", ca[40] = "";
        if (show_dev)
            snprintf(da, sizeof da, "%-22s ", cm_addr_str(&c->client, addr1, sizeof addr1));
        if (show_cloud)
            snprintf(ca, sizeof ca, "%-22s ", cm_addr_str(&c->server, addr2, sizeof addr2));
        char who[40];
        if (in->device_id_known)
            g_strlcpy(who, in->device_id_hex, sizeof who);
        else
            snprintf(who, sizeof who, "? %s", cm_addr_str(&c->client, addr1, sizeof addr1));
        snprintf(line, sizeof line, "%4u %-24.24s %s%s%-13s ", c->id, who, da, ca, kr_step_str(in->last_step));
        int y = top + 1 + i;
        bool sel = s->list_top + i == s->sel;
        int base = row_start(s, y, sel, line);
        int x = (int)strlen(line);
        char vw[40];
        snprintf(vw, sizeof vw, "%s%s", verdict_word(c), in->verdict.code && !in->verdict.proven ? "?" : "");
        verdict_cell(s, y, x, sel, in->verdict.code, vw);
        x += 24;
        cm_time_str(c->last, t, sizeof t);
        t[8] = 0;
        if (show_last)
            putf(y, x, COLS - x, "%-8s %5u %8llu  %s", t, in->messages, (unsigned long long)c->wire_bytes, note);
        else
            putf(y, x, COLS - x, "%5u %s", in->messages, note);
        attroff(base);
    }
}

/* ---- detail: built as lines, then scrolled ---- */

typedef struct dline {
    int pair;
    int attr;
    char *text;
} dline;

static void add(GArray *l, int pair, int attr, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add(GArray *l, int pair, int attr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dline d = { pair, attr, g_strdup_vprintf(fmt, ap) };
    va_end(ap);
    g_array_append_val(l, d);
}

/* Adds text wrapped to width, each line indented. */
static void add_wrapped(GArray *l, int pair, int indent, int width, const char *text)
{
    int w = width - indent;
    if (w < 20)
        w = 20;
    const char *p = text;
    while (*p) {
        int n = (int)strlen(p);
        if (n > w) {
            n = w;
            while (n > 0 && p[n] != ' ')
                n--;
            if (n == 0)
                n = w;
        }
        add(l, pair, 0, "%*s%.*s", indent, "", n, p);
        p += n;
        while (*p == ' ')
            p++;
    }
}

static void arrow(GArray *l, int pair, double rel, kr_dir dir, const char *label, int width)
{
    int inner = width - 14;
    if (inner > 66)
        inner = 66;
    if (inner < 24)
        inner = 24;
    char mid[512];
    int ll = (int)strlen(label);
    if (ll > inner - 6)
        ll = inner - 6;
    int left = (inner - ll - 2) / 2, right = inner - ll - 2 - left;
    int o = 0;
    mid[o++] = dir == KR_S2D ? '<' : '-';
    for (int i = 1; i < left; i++)
        mid[o++] = '-';
    mid[o++] = ' ';
    memcpy(mid + o, label, (size_t)ll);
    o += ll;
    mid[o++] = ' ';
    for (int i = 1; i < right; i++)
        mid[o++] = '-';
    mid[o++] = dir == KR_D2S ? '>' : '-';
    mid[o] = 0;
    add(l, pair, 0, "%+10.3fs |%s|", rel, mid);
}

/* The verdict at the end of the detail view: meaning, evidence, candidates. */
static void verdict_lines(GArray *l, const cm_conn *c, int width)
{
    const kr_verdict *v = &cm_conn_info(c)->verdict;
    if (v->code == KR_V_NONE) {
        add(l, 0, A_BOLD, "Verdict: %s", c->ended ? "none" : "not decided yet");
    } else {
        add(l, verdict_pair(v->code), A_BOLD, "Verdict: %s (%s%s)", kr_verdict_str(v->code),
            v->proven ? "proven by a key" : "inferred from the wire", v->final ? "" : ", so far");
        add_wrapped(l, 0, 2, width, kr_verdict_meaning(v->code));
        if (v->evidence[0]) {
            add(l, 0, 0, "  Evidence:");
            add_wrapped(l, 0, 4, width, v->evidence);
        }
        if (v->n_candidates > 0) {
            GString *g = g_string_new("");
            for (int i = 0; i < v->n_candidates && i < KR_MAX_CANDIDATES; i++)
                g_string_append_printf(g, "%s%s", i ? ", " : "", kr_verdict_str(v->candidates[i]));
            add(l, C_WARN, 0, "  Candidates: %s", g->str);
            g_string_free(g, TRUE);
        }
    }
}

static GArray *detail_lines(cm_screen *s, cm_app *a, const cm_conn *c, int width)
{
    GArray *l = g_array_new(FALSE, FALSE, sizeof(dline));
    const kr_conn_info *in = cm_conn_info(c);
    char a1[80], a2[80], t1[32], t2[32];
    add(l, 0, A_BOLD, "Connection %u   device %s   %s -> %s", c->id, in->device_id_known ? in->device_id_hex : "(id not known)",
        cm_addr_str(&c->client, a1, sizeof a1), cm_addr_str(&c->server, a2, sizeof a2));
    add(l, 0, 0, "First %s  last %s UTC   %llu packets  %llu bytes (device %llu, cloud %llu)   %s",
        cm_time_str(c->first, t1, sizeof t1), cm_time_str(c->last, t2, sizeof t2), (unsigned long long)c->packets,
        (unsigned long long)c->wire_bytes, (unsigned long long)in->bytes[KR_D2S], (unsigned long long)in->bytes[KR_S2D],
        c->ended ? c->end_reason : "open");
    if (in->generation)
        add(l, 0, 0, "Firmware generation: %s", kr_generation_str(in->generation));
    if (in->decrypting)
        add(l, C_OK, 0, "Decrypting: yes");
    else
        add(l, C_WARN, 0, "Not decrypted: %s", in->no_decrypt_reason[0] ? in->no_decrypt_reason : "no session key");
    const char *hex = cm_sessions_hex(&a->ses, c->id);
    if (hex)
        add(l, C_WARN, 0, "Session key %.32s  IV %.32s  salt %.16s (--show-keys)", hex, hex + 32, hex + 64);
    if (!c->saw_syn)
        add(l, C_WARN, 0, "The capture joined this connection after its start (no SYN seen).");
    add(l, 0, 0, "%s", "");

    /* the handshake ladder: every step that is not a later frame, and the close */
    int inner = width - 14 > 66 ? 66 : (width - 14 < 24 ? 24 : width - 14);
    add(l, 0, A_BOLD, "%10s  %-*s%s", "time", inner - 3, "device", "cloud");
    unsigned frames_shown = 0, frames_hidden = 0;
    for (guint i = 0; i < c->events->len; i++) {
        const cm_event *e = &g_array_index(c->events, cm_event, i);
        double rel = e->time - c->first;
        if (e->type == CM_EV_STEP) {
            if (e->kind == KR_STEP_FRAME) {
                if (in->decrypting || frames_shown >= 8) {
                    frames_hidden++;
                    continue;
                }
                frames_shown++;
            }
            char label[128];
            snprintf(label, sizeof label, "%s (%u)", e->title, e->length);
            arrow(l, e->kind == KR_STEP_DATA ? C_WARN : 0, rel, e->dir, label, width);
            if (e->text[0] && e->kind != KR_STEP_FRAME)
                add_wrapped(l, C_DIM, 14, width, e->text);
        } else if (e->type == CM_EV_FINDING) {
            add(l, C_WARN, 0, "%+10.3fs   ! %s (%s)", rel, e->title, kr_dir_short(e->dir));
            add_wrapped(l, C_WARN, 16, width, e->text);
        } else if (e->type == CM_EV_TCP && strcmp(e->title, "joined") != 0) {
            arrow(l, strcmp(e->title, "RST") == 0 ? C_FAIL : C_DIM, rel, e->dir, e->title, width);
        } else if (e->type == CM_EV_END) {
            add(l, 0, 0, "%+10.3fs   %s", rel, e->text);
        }
    }
    if (frames_hidden && !in->decrypting)
        add(l, C_DIM, 0, "%14s... and %u more frames not decrypted", "", frames_hidden);
    add(l, 0, 0, "%s", "");

    /* messages */
    unsigned nmsg = 0;
    for (guint i = 0; i < c->events->len; i++)
        nmsg += g_array_index(c->events, cm_event, i).type == CM_EV_MESSAGE;
    add(l, 0, A_BOLD, "Messages (%u)", in->messages);
    if (!nmsg)
        add(l, C_DIM, 0, "  %s", in->decrypting ? "none yet" : "none: the session is not decrypted (see above)");
    for (guint i = 0; i < c->events->len; i++) {
        const cm_event *e = &g_array_index(c->events, cm_event, i);
        if (e->type != CM_EV_MESSAGE)
            continue;
        add(l, 0, 0, "%+10.3fs %s %-16s %s", e->time - c->first, e->dir == KR_D2S ? "D->S" : "S->D", e->title, e->text);
    }
    if (c->events_dropped)
        add(l, C_WARN, 0, "  (%llu events between the opening and the newest %d are no longer kept)",
            (unsigned long long)c->events_dropped, CM_MAX_EVENTS - CM_KEEP_HEAD);
    size_t nf = kr_tracker_function_count(c->tr), nv = kr_tracker_variable_count(c->tr);
    if (nf || nv) {
        GString *g = g_string_new("");
        for (size_t i = 0; i < nf; i++)
            g_string_append_printf(g, "%s%s", i ? ", " : "", kr_tracker_function(c->tr, i));
        add(l, 0, 0, "%s", "");
        add(l, 0, A_BOLD, "Functions: %s", nf ? g->str : "none");
        g_string_truncate(g, 0);
        for (size_t i = 0; i < nv; i++)
            g_string_append_printf(g, "%s%s", i ? ", " : "", kr_tracker_variable(c->tr, i, NULL));
        add(l, 0, A_BOLD, "Variables: %s", nv ? g->str : "none");
        g_string_free(g, TRUE);
    }
    add(l, 0, 0, "%s", "");

    verdict_lines(l, c, width);
    (void)s;
    return l;
}

static void free_lines(GArray *l)
{
    for (guint i = 0; i < l->len; i++)
        g_free(g_array_index(l, dline, i).text);
    g_array_free(l, TRUE);
}

static const cm_conn *selected(cm_screen *s)
{
    if (s->sel < 0 || s->sel >= (int)s->rows->len)
        return NULL;
    return g_ptr_array_index(s->rows, s->sel);
}

static void scroll_lines(cm_screen *s, GArray *l, int *top)
{
    int height = LINES - 2;
    int n = (int)l->len;
    s->detail_lines = n;
    if (*top > n - height)
        *top = n - height;
    if (*top < 0)
        *top = 0;
    for (int i = 0; i < height && *top + i < n; i++) {
        const dline *d = &g_array_index(l, dline, *top + i);
        int at = pair_attr(s, d->pair) | d->attr;
        attron(at);
        put(1 + i, 0, COLS, d->text);
        attroff(at);
    }
}

static void detail_panel(cm_screen *s, cm_app *a)
{
    const cm_conn *c = selected(s);
    if (!c) {
        put(2, 2, COLS - 2, "No connection selected (Esc for the list).");
        return;
    }
    GArray *l = detail_lines(s, a, c, COLS);
    scroll_lines(s, l, &s->detail_top);
    free_lines(l);
}

static void help_panel(cm_screen *s)
{
    GArray *l = g_array_new(FALSE, FALSE, sizeof(dline));
    add(l, 0, A_BOLD, "cloudmon keys");
    add(l, 0, 0, "%s", "");
    static const char *const vn[CM_NVIEWS] = { "list", "detail", "help", "devices" };
    for (size_t i = 0; i < cm_nkeys; i++) {
        char where[64] = "";
        for (int v = 0; v < CM_NVIEWS; v++)
            if (cm_keys[i].views & (1u << v))
                snprintf(where + strlen(where), sizeof where - strlen(where), "%s%s", where[0] ? ", " : "", vn[v]);
        add(l, 0, 0, "  %-18s %-44s (%s)", cm_keys[i].label, cm_keys[i].help, where);
    }
    add(l, 0, 0, "%s", "");
    add(l, 0, A_BOLD, "Verdicts");
    for (int v = KR_V_OK; v < CM_NVERDICTS && kr_verdict_str((kr_verdict_code)v)[0]; v++) {
        char buf[600];
        snprintf(buf, sizeof buf, "  %-23s %s", kr_verdict_str((kr_verdict_code)v), kr_verdict_meaning((kr_verdict_code)v));
        add_wrapped(l, verdict_pair((kr_verdict_code)v), 0, COLS, buf);
    }
    add(l, 0, 0, "%s", "");
    add(l, C_DIM, 0, "A '?' after a verdict in the list: inferred from the wire, not proven by a key.");
    add(l, C_DIM, 0, "Colours follow the verdict; set NO_COLOR to turn them off.");
    scroll_lines(s, l, &s->help_top);
    free_lines(l);
}

/* ---- devices ---- */

static void device_row(cm_screen *s, int y, const cm_device *v, bool sel, bool wide)
{
    char t[32], pl[16], lv[32], line[512];
    snprintf(lv, sizeof lv, "%s%s", v->last_verdict ? kr_verdict_str(v->last_verdict) : "-",
             v->last_verdict && !v->last_proven ? "?" : "");
    cm_time_str(v->last_seen, t, sizeof t);
    t[8] = 0;
    snprintf(line, sizeof line, "%-26.26s %5llu %4llu %5llu %6llu ", v->name, (unsigned long long)v->conns,
             (unsigned long long)v->live, (unsigned long long)v->verdicts[KR_V_OK],
             (unsigned long long)cm_device_failed(v));
    int base = row_start(s, y, sel, line);
    int x = (int)strlen(line);
    verdict_cell(s, y, x, sel, v->last_verdict, lv);
    x += 24;
    if (wide)
        putf(y, x, COLS - x, "%-8s %6llu %10llu %3s %s", t, (unsigned long long)v->messages,
             (unsigned long long)v->bytes, v->generation ? (v->generation == 1 ? "1" : "2") : "-",
             cm_platform_str(v->platform, pl, sizeof pl));
    else
        putf(y, x, COLS - x, "%-8s %6llu", t, (unsigned long long)v->messages);
    attroff(base);
}

static void devices_panel(cm_screen *s, cm_app *a)
{
    int top = 1, rows = LINES - 3;
    bool wide = COLS >= 110;
    attron(A_BOLD);
    putf(top, 0, COLS, "%-26s %5s %4s %5s %6s %-23s %-8s %6s%s", "DEVICE", "CONNS", "OPEN", "OK", "FAILED",
         "LAST VERDICT", "LAST", "MSGS", wide ? "      BYTES GEN PLATFORM" : "");
    attroff(A_BOLD);
    int n = s->devrows ? (int)s->devrows->len : 0;
    if (!n) {
        put(top + 2, 2, COLS - 2, a->mon.st.conns ? "No device named yet." : "No connection seen yet.");
        return;
    }
    keep_visible(s->dsel, &s->dev_top, rows, n);
    for (int i = 0; i < rows && s->dev_top + i < n; i++)
        device_row(s, top + 1 + i, &g_array_index(s->devrows, cm_device, s->dev_top + i), s->dev_top + i == s->dsel,
                   wide);
}

void cm_panels_draw(cm_screen *s, cm_app *a)
{
    erase();
    if (COLS < CM_MIN_COLS || LINES < CM_MIN_LINES) {
        putf(0, 0, COLS, "Terminal too small: %dx%d,", COLS, LINES);
        putf(1, 0, COLS, "cloudmon needs %dx%d.", CM_MIN_COLS, CM_MIN_LINES);
        putf(2, 0, COLS, "Enlarge it, or q to quit.");
        refresh();
        return;
    }
    header(s, a);
    switch (s->view) {
    case CM_VIEW_LIST: list_panel(s, a); break;
    case CM_VIEW_DETAIL: detail_panel(s, a); break;
    case CM_VIEW_HELP: help_panel(s); break;
    case CM_VIEW_DEVICES: devices_panel(s, a); break;
    }
    footer(s, a);
    refresh();
}
