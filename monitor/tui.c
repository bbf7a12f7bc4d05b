/* cloudmon: the screen's main loop and its key table. The loop only moves packets, dispatches keys
 * through cm_keys[] and redraws; the help screen is generated from the same table. */
#include "screen.h"

#include <curses.h>
#include <locale.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

const char *cm_sort_name(cm_sort s)
{
    static const char *const n[] = { "first seen", "last activity", "device", "verdict", "bytes" };
    return (unsigned)s < CM_SORT_COUNT ? n[s] : "?";
}

void cm_screen_status(cm_screen *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->status, sizeof s->status, fmt, ap);
    va_end(ap);
    s->status_until = cm_wall() + 4;
}

/* ---- rows: filter and sort ---- */

static bool matches(const cm_conn *c, const char *filter)
{
    if (!filter[0])
        return true;
    char a1[80], a2[80], hay[512];
    snprintf(hay, sizeof hay, "%u %s %s %s %s %s %s", c->id, cm_conn_info(c)->device_id_known ? cm_conn_info(c)->device_id_hex : "",
             cm_addr_str(&c->client, a1, sizeof a1), cm_addr_str(&c->server, a2, sizeof a2),
             kr_verdict_str(cm_conn_info(c)->verdict.code), kr_step_str(cm_conn_info(c)->last_step), c->ended ? c->end_reason : "open");
    return strcasestr(hay, filter) != NULL;
}

static cm_sort sort_key;

static int cmp_conn(gconstpointer pa, gconstpointer pb)
{
    const cm_conn *a = *(cm_conn *const *)pa, *b = *(cm_conn *const *)pb;
    int r = 0;
    switch (sort_key) {
    case CM_SORT_LAST: r = (a->last < b->last) - (a->last > b->last); break;
    case CM_SORT_DEVICE: r = strcmp(cm_conn_info(a)->device_id_known ? cm_conn_info(a)->device_id_hex : "~",
                                    cm_conn_info(b)->device_id_known ? cm_conn_info(b)->device_id_hex : "~"); break;
    case CM_SORT_VERDICT: r = strcmp(kr_verdict_str(cm_conn_info(a)->verdict.code), kr_verdict_str(cm_conn_info(b)->verdict.code)); break;
    case CM_SORT_BYTES: r = (a->wire_bytes < b->wire_bytes) - (a->wire_bytes > b->wire_bytes); break;
    default: break;
    }
    return r ? r : (a->id > b->id) - (a->id < b->id);
}

void cm_screen_rows(cm_screen *s, cm_app *a)
{
    g_ptr_array_set_size(s->rows, 0);
    for (guint i = 0; i < a->mon.conns->len; i++) {
        cm_conn *c = g_ptr_array_index(a->mon.conns, i);
        if (matches(c, s->filter))
            g_ptr_array_add(s->rows, c);
    }
    sort_key = s->sort;
    g_ptr_array_sort(s->rows, cmp_conn);
    s->sel = -1;
    for (guint i = 0; i < s->rows->len; i++)
        if (((cm_conn *)g_ptr_array_index(s->rows, i))->id == s->sel_id)
            s->sel = (int)i;
    if (s->sel < 0 && s->rows->len) {
        s->sel = 0;
        s->sel_id = ((cm_conn *)g_ptr_array_index(s->rows, 0))->id;
    }
}

void cm_screen_devrows(cm_screen *s, cm_app *a)
{
    if (s->devrows)
        g_array_free(s->devrows, TRUE);
    s->devrows = cm_devices_rows(&a->devs, &a->mon, s->dsort);
    s->dsel = -1;
    for (guint i = 0; i < s->devrows->len; i++)
        if (strcmp(g_array_index(s->devrows, cm_device, i).name, s->dev_sel) == 0)
            s->dsel = (int)i;
    if (s->dsel < 0 && s->devrows->len) {
        s->dsel = 0;
        g_strlcpy(s->dev_sel, g_array_index(s->devrows, cm_device, 0).name, sizeof s->dev_sel);
    }
}

static void select_dev(cm_screen *s, int row)
{
    int n = s->devrows ? (int)s->devrows->len : 0;
    if (!n)
        return;
    row = row >= n ? n - 1 : row < 0 ? 0 : row;
    s->dsel = row;
    g_strlcpy(s->dev_sel, g_array_index(s->devrows, cm_device, row).name, sizeof s->dev_sel);
}

static void select_row(cm_screen *s, int row)
{
    int n = (int)s->rows->len;
    if (!n)
        return;
    if (row >= n)
        row = n - 1;
    if (row < 0)
        row = 0;
    s->sel = row;
    s->sel_id = ((cm_conn *)g_ptr_array_index(s->rows, row))->id;
}

/* ---- actions ---- */

static int page(void) { return LINES - 4 > 1 ? LINES - 4 : 1; }

static void k_help(cm_screen *s, cm_app *a)
{
    (void)a;
    if (s->view == CM_VIEW_HELP) {
        s->view = s->back;
        return;
    }
    s->back = s->view;
    s->view = CM_VIEW_HELP;
    s->help_top = 0;
}

static void k_quit(cm_screen *s, cm_app *a) { (void)a; s->quit = true; }

static void scroll_by(cm_screen *s, int d)
{
    if (s->view == CM_VIEW_LIST)
        select_row(s, s->sel + d);
    else if (s->view == CM_VIEW_DEVICES)
        select_dev(s, s->dsel + d);
    else if (s->view == CM_VIEW_DETAIL)
        s->detail_top = s->detail_top + d < 0 ? 0 : s->detail_top + d;
    else
        s->help_top = s->help_top + d < 0 ? 0 : s->help_top + d;
}

static void k_up(cm_screen *s, cm_app *a) { (void)a; scroll_by(s, -1); }
static void k_down(cm_screen *s, cm_app *a) { (void)a; scroll_by(s, 1); }
static void k_pgup(cm_screen *s, cm_app *a) { (void)a; scroll_by(s, -page()); }
static void k_pgdn(cm_screen *s, cm_app *a) { (void)a; scroll_by(s, page()); }
static void k_home(cm_screen *s, cm_app *a) { (void)a; scroll_by(s, -1000000); }
static void k_end(cm_screen *s, cm_app *a) { (void)a; scroll_by(s, 1000000); }

static void k_enter(cm_screen *s, cm_app *a)
{
    (void)a;
    if (s->sel >= 0) {
        s->view = CM_VIEW_DETAIL;
        s->detail_top = 0;
    }
}

static void k_devices(cm_screen *s, cm_app *a)
{
    (void)a;
    s->view = s->view == CM_VIEW_DEVICES ? CM_VIEW_LIST : CM_VIEW_DEVICES;
}

/* Enter on a device: the list, filtered to its connections. */
static void k_dev_open(cm_screen *s, cm_app *a)
{
    (void)a;
    if (s->dsel < 0 || !s->dev_sel[0])
        return;
    if (strcmp(s->dev_sel, CM_DEVICES_OVERFLOW) == 0) {
        cm_screen_status(s, "%s: devices past the first %d are counted together", CM_DEVICES_OVERFLOW, CM_MAX_DEVICES);
        return;
    }
    const char *name = s->dev_sel[0] == '?' ? s->dev_sel + 2 : s->dev_sel;
    g_strlcpy(s->filter, name, sizeof s->filter);
    s->view = CM_VIEW_LIST;
    cm_screen_status(s, "connections of %s (/ then Esc clears the filter)", name);
}

static void k_dev_sort(cm_screen *s, cm_app *a)
{
    (void)a;
    s->dsort = (cm_dev_sort)((s->dsort + 1) % CM_DSORT_COUNT);
    cm_screen_status(s, "devices sorted by %s", cm_dev_sort_name(s->dsort));
}

static void k_tab(cm_screen *s, cm_app *a)
{
    (void)a;
    if (s->view == CM_VIEW_LIST) {
        k_enter(s, a);
    } else {
        /* the next connection's detail */
        select_row(s, s->sel + 1 < (int)s->rows->len ? s->sel + 1 : 0);
        s->detail_top = 0;
    }
}

static void k_back(cm_screen *s, cm_app *a)
{
    (void)a;
    s->view = s->view == CM_VIEW_HELP ? s->back : CM_VIEW_LIST;
    if (s->view == CM_VIEW_HELP)
        s->view = CM_VIEW_LIST;
}

static void k_filter(cm_screen *s, cm_app *a)
{
    (void)a;
    s->editing = true;
    s->view = CM_VIEW_LIST;
}

static void k_sort(cm_screen *s, cm_app *a)
{
    (void)a;
    s->sort = (cm_sort)((s->sort + 1) % CM_SORT_COUNT);
    cm_screen_status(s, "sorted by %s", cm_sort_name(s->sort));
}

static void k_pause(cm_screen *s, cm_app *a)
{
    s->paused = !s->paused;
    cm_screen_status(s, s->paused ? "paused: packets wait %s" : "running", a->cap.live ? "in the kernel buffer" : "in the file");
}

static void k_save(cm_screen *s, cm_app *a)
{
    char path[128], err[CM_ERRLEN];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(path, sizeof path, "cloudmon-%Y%m%d-%H%M%S.pcap", &tm);
    long n = cm_capture_save(&a->cap, path, err);
    if (n < 0)
        cm_screen_status(s, "%s", err);
    else
        cm_screen_status(s, "saved %ld packets to %s%s", n, path,
                         a->cap.ring_dropped ? " (the oldest were no longer kept)" : "");
}

#define ALL ((1u << CM_VIEW_LIST) | (1u << CM_VIEW_DETAIL) | (1u << CM_VIEW_HELP) | (1u << CM_VIEW_DEVICES))
#define DEVS (1u << CM_VIEW_DEVICES)
#define LIST (1u << CM_VIEW_LIST)
#define DETAIL (1u << CM_VIEW_DETAIL)
#define HELP (1u << CM_VIEW_HELP)

const cm_key cm_keys[] = {
    { { '?', KEY_F(1) }, "? F1", "show or leave this help", ALL, k_help },
    { { 'q', 'Q' }, "q", "quit (prints a summary)", ALL, k_quit },
    { { KEY_UP, 'k' }, "Up k", "previous connection / scroll up", ALL, k_up },
    { { KEY_DOWN, 'j' }, "Down j", "next connection / scroll down", ALL, k_down },
    { { KEY_PPAGE }, "PgUp", "a page up", ALL, k_pgup },
    { { KEY_NPAGE, ' ' }, "PgDn Space", "a page down", ALL, k_pgdn },
    { { KEY_HOME, 'g' }, "Home g", "first line", ALL, k_home },
    { { KEY_END, 'G' }, "End G", "last line", ALL, k_end },
    { { '\n', '\r', KEY_ENTER, KEY_RIGHT }, "Enter Right", "details of the selected connection", LIST, k_enter },
    { { '\n', '\r', KEY_ENTER, KEY_RIGHT }, "Enter Right", "the selected device's connections", DEVS, k_dev_open },
    { { 'd' }, "d", "Devices view: one line per device (d again: the list)", LIST | DETAIL | DEVS, k_devices },
    { { 's' }, "s", "sort devices: id, failed, connections, last seen, bytes", DEVS, k_dev_sort },
    { { '\t' }, "Tab", "list: open details; details: next connection", LIST | DETAIL, k_tab },
    { { 27, KEY_LEFT, KEY_BACKSPACE, 127 }, "Esc Left", "back to the list", DETAIL | HELP | DEVS, k_back },
    { { '/' }, "/", "filter by device, address, verdict or step", LIST | DETAIL, k_filter },
    { { 's' }, "s", "sort: first seen, last activity, device, verdict, bytes", LIST, k_sort },
    { { 'p' }, "p", "pause or resume reading packets", LIST | DETAIL, k_pause },
    { { 'w' }, "w", "save the captured packets to cloudmon-DATE-TIME.pcap", LIST | DETAIL, k_save },
};
const size_t cm_nkeys = sizeof cm_keys / sizeof cm_keys[0];

static void dispatch(cm_screen *s, cm_app *a, int ch)
{
    if (s->editing) {
        size_t n = strlen(s->filter);
        if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
            s->editing = false;
        } else if (ch == 27) {
            s->editing = false;
            s->filter[0] = 0;
        } else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
            if (n)
                s->filter[n - 1] = 0;
        } else if (ch >= 32 && ch < 127 && n + 1 < sizeof s->filter) {
            s->filter[n] = (char)ch;
            s->filter[n + 1] = 0;
        }
        return;
    }
    for (size_t i = 0; i < cm_nkeys; i++) {
        if (!(cm_keys[i].views & (1u << s->view)))
            continue;
        for (int k = 0; k < 4 && cm_keys[i].keys[k]; k++)
            if (cm_keys[i].keys[k] == ch) {
                cm_keys[i].run(s, a);
                return;
            }
    }
}

int cm_tui_run(cm_app *a)
{
    FILE *tty_in = stdin;
    if (!isatty(STDIN_FILENO)) {
        tty_in = fopen("/dev/tty", "r");
        if (!tty_in) {
            fprintf(stderr, "cloudmon: no terminal for the keyboard (use --batch or --json)\n");
            return 2;
        }
    }
    setlocale(LC_ALL, "");
    SCREEN *scr = newterm(NULL, stdout, tty_in);
    if (!scr) {
        fprintf(stderr, "cloudmon: cannot use the terminal (TERM=%s): use --batch or --json\n",
                getenv("TERM") ? getenv("TERM") : "unset");
        if (tty_in != stdin)
            fclose(tty_in);
        return 2;
    }
    set_term(scr);
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    cm_screen s = { 0 };
    s.rows = g_ptr_array_new();
    cm_panels_init_colors(&s);
    int pfd = cm_capture_poll_fd(&a->cap);
    unsigned drawn = (unsigned)-1;
    double last_draw = 0;
    bool dirty = true;
    while (!s.quit && !cm_stop) {
        if (!s.paused && !a->eof)
            cm_app_pump(a, a->cap.live ? 2000 : 20000);
        cm_app_tick(a);
        if (a->eof && !s.finished) {
            cm_app_finish(a);
            s.finished = true;
            dirty = true;
        }
        double now = cm_wall();
        if (dirty || (a->mon.version != drawn && now - last_draw > 0.1) || (s.status[0] && now > s.status_until)) {
            if (s.status[0] && now > s.status_until)
                s.status[0] = 0;
            cm_screen_rows(&s, a);
            if (s.view == CM_VIEW_DEVICES)
                cm_screen_devrows(&s, a);
            cm_panels_draw(&s, a);
            drawn = a->mon.version;
            last_draw = now;
            dirty = false;
        }
        /* wait for a key, or packets on a live capture; a file is read as fast as it comes */
        bool reading = !s.paused && !a->eof;
        int wait_ms = reading && !a->cap.live ? 0 : 100;
        struct pollfd fds[2] = { { fileno(tty_in), POLLIN, 0 }, { pfd, POLLIN, 0 } };
        if (poll(fds, reading && pfd >= 0 ? 2 : 1, wait_ms) > 0 && (fds[0].revents & (POLLHUP | POLLERR | POLLNVAL)))
            break;      /* the terminal hung up: nothing can be shown or typed any more */
        timeout(0);
        /* the rows point at connections: rebuild them, reading packets may have dropped old ones */
        cm_screen_rows(&s, a);
        int ch;
        while ((ch = getch()) != ERR) {
            if (ch == KEY_RESIZE) {
                dirty = true;
                continue;
            }
            dispatch(&s, a, ch);
            cm_screen_rows(&s, a);
            if (s.view == CM_VIEW_DEVICES)
                cm_screen_devrows(&s, a);
            dirty = true;
            if (s.quit)
                break;
        }
    }
    endwin();
    delscreen(scr);
    if (tty_in != stdin)
        fclose(tty_in);
    g_ptr_array_free(s.rows, TRUE);
    if (s.devrows)
        g_array_free(s.devrows, TRUE);
    return 0;
}
