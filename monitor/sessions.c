/* cloudmon: session material export. */
#include "sessions.h"
#include "outfile.h"

int cm_sessions_open(cm_sessions *s, const char *path, bool keep, size_t limit, char *err, size_t errcap)
{
    memset(s, 0, sizeof *s);
    s->keep = keep;
    s->limit = limit;
    g_queue_init(&s->order);
    s->seen = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    if (path) {
        s->lines = kr_session_lines_new();
        if (!s->lines) {
            snprintf(err, errcap, "--export-sessions %s: out of memory", path);
            return -1;
        }
        s->file = cm_outfile_open(path, "--export-sessions", true, err, errcap);
        if (!s->file)
            return -1;
        fputs("# session lines written by cloudmon: secret, keep this file private\n", s->file);
    }
    return 0;
}

static void on_step(void *ud, const cm_conn *c, const kr_step *st)
{
    cm_sessions *s = ud;
    if (!st->session_known || g_hash_table_contains(s->seen, GUINT_TO_POINTER(c->id)))
        return;
    const char *known = kr_tracker_device_id(c->tr);
    char hex[2 * KR_SESSION_LEN + 1];
    kr_hex(st->session, KR_SESSION_LEN, hex);
    const char *id = st->device_id_known ? st->device_id_hex : known;
    char line[KR_SESSION_LINE_MAX];
    if (s->file && id && kr_session_line(s->lines, id, st->session, st->session_hint_known ? st->session_hint : NULL, line) > 0) {
        if (fputs(line, s->file) < 0)
            s->failed = true;
        s->written++;
    }
    g_hash_table_insert(s->seen, GUINT_TO_POINTER(c->id), s->keep ? g_strdup(hex) : NULL);
    if (s->keep) {
        /* the screen shows only connections still kept: the oldest material goes */
        g_queue_push_tail(&s->order, GUINT_TO_POINTER(c->id));
        while (g_queue_get_length(&s->order) > s->limit)
            g_hash_table_remove(s->seen, g_queue_pop_head(&s->order));
    }
}

static void on_end(void *ud, const cm_conn *c)
{
    cm_sessions *s = ud;
    if (!s->keep)
        g_hash_table_remove(s->seen, GUINT_TO_POINTER(c->id));
}

cm_observer cm_sessions_observer(cm_sessions *s)
{
    return (cm_observer){ .step = on_step, .end = on_end, .ud = s };
}

const char *cm_sessions_hex(const cm_sessions *s, unsigned conn)
{
    return s->seen ? g_hash_table_lookup(s->seen, GUINT_TO_POINTER(conn)) : NULL;
}

int cm_sessions_close(cm_sessions *s)
{
    int rc = 0;
    if (s->file && (fclose(s->file) != 0 || s->failed))
        rc = -1;
    s->file = NULL;
    kr_session_lines_free(s->lines);
    s->lines = NULL;
    if (s->seen)
        g_hash_table_destroy(s->seen);
    s->seen = NULL;
    g_queue_clear(&s->order);
    return rc;
}
