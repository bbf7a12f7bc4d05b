/* sparkwire Wireshark plugin: the keys and the plugin's preferences.
 *
 * Keys come from three places, merged into one kr_keyfile that libkeyring parses (so its rules hold for
 * all): the keyfile preference, the key table (UAT spark_keys: key type, device id or *, cloud address,
 * key file; -o uat:spark_keys:...), and a session-secrets file of `session ID HEX` lines (as TLS takes a
 * key log file). The session lines of the connections the plugin decrypts can be written to a file
 * (export_sessions), and the session key shown in the tree (show_session_key): key material only when a
 * preference asks for it. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <epan/prefs.h>
#include <epan/uat.h>
#include <wsutil/report_message.h>
#include <glib/gstdio.h>

#include "spark-int.h"

#define SPARK_TEXT_MAX (4 * 1024 * 1024)   /* keyfile or session file: larger is not a keyfile */

static const char *pref_keyfile = "";
static const char *pref_session_file = "";
static const char *pref_export_sessions = "";
spark_pref_bool pref_heuristic_strict = TRUE;
spark_pref_bool pref_show_session_key = FALSE;
guint pref_max_conns = 1024;

kr_keyfile *spark_keys;                 /* never NULL while a file is open */
char *spark_keys_error;                 /* the load error, NULL when the keys loaded */
static char *spark_keys_sig;            /* what spark_keys was loaded from (paths, mtimes, table) */
static gboolean spark_keys_dirty = TRUE;

/* ---- the key table (UAT) ------------------------------------------------------------------------ */

typedef struct spark_key_row {
    char *type;                         /* server-private, server-public, device, device-public, ... */
    char *device;                       /* 24 hex digits or *, for the device kinds */
    char *cloud;                        /* IPv4, or [IPv6], optionally :PORT, for the server kinds */
    char *file;
} spark_key_row;

static spark_key_row *spark_key_rows;
static guint spark_key_nrows;
static guint spark_key_table_gen;       /* bumped on every change of the table */

UAT_CSTRING_CB_DEF(spark_keys, type, spark_key_row)
UAT_CSTRING_CB_DEF(spark_keys, device, spark_key_row)
UAT_CSTRING_CB_DEF(spark_keys, cloud, spark_key_row)
UAT_FILENAME_CB_DEF(spark_keys, file, spark_key_row)

static gboolean is_server_kind(const char *t)
{
    return g_strcmp0(t, "server-private") == 0 || g_strcmp0(t, "server-public") == 0;
}

static gboolean is_device_kind(const char *t)
{
    return g_strcmp0(t, "device") == 0 || g_strcmp0(t, "device-public") == 0 ||
           g_strcmp0(t, "device-server-key") == 0;
}

/* One keyfile line for a table row; the key file's path made absolute (relative: to the working folder). */
static char *row_line(const spark_key_row *r)
{
    char *cwd = g_get_current_dir();
    char *abs = g_path_is_absolute(r->file) ? g_strdup(r->file) : g_build_filename(cwd, r->file, NULL);
    char *line;

    g_free(cwd);
    if (is_server_kind(r->type))
        line = g_strdup_printf("%s %s%s%s\n", r->type, abs, r->cloud && r->cloud[0] ? " cloud=" : "",
                               r->cloud && r->cloud[0] ? r->cloud : "");
    else
        line = g_strdup_printf("%s %s %s\n", r->type, r->device, abs);
    g_free(abs);
    return line;
}

static spark_uat_result spark_key_row_check(void *rec, char **error)
{
    const spark_key_row *r = (const spark_key_row *)rec;
    kr_keyfile *kf;
    kr_err err;
    char *line;

    if (!is_server_kind(r->type) && !is_device_kind(r->type)) {
        *error = g_strdup_printf("Key type '%s' is not one of server-private, server-public, device, "
                                 "device-public, device-server-key", r->type ? r->type : "");
        return FALSE;
    }
    if (is_device_kind(r->type) && (!r->device || !r->device[0])) {
        *error = g_strdup_printf("A %s key needs a device id (24 hex digits, or * for any device)", r->type);
        return FALSE;
    }
    if (is_server_kind(r->type) && r->device && r->device[0]) {
        *error = g_strdup_printf("A %s key belongs to the cloud: leave the device id empty", r->type);
        return FALSE;
    }
    if (is_device_kind(r->type) && r->cloud && r->cloud[0]) {
        *error = g_strdup("Only server keys are bound to a cloud address: leave it empty for device keys");
        return FALSE;
    }
    if (!r->file || !r->file[0]) {
        *error = g_strdup("The key file is missing");
        return FALSE;
    }
    /* the row as a keyfile line: libkeyring checks the id, the address and the key itself */
    line = row_line(r);
    memset(&err, 0, sizeof err);
    kf = kr_keyfile_parse(line, strlen(line), ".", "Spark keys table", &err);
    g_free(line);
    if (!kf) {
        *error = g_strdup(err.msg[0] ? err.msg : "the key was not loaded");
        return FALSE;
    }
    kr_keyfile_free(kf);
    return TRUE;
}

static void *spark_key_row_copy(void *dest, const void *src, size_t len _U_)
{
    spark_key_row *d = (spark_key_row *)dest;
    const spark_key_row *s = (const spark_key_row *)src;
    d->type = g_strdup(s->type);
    d->device = g_strdup(s->device);
    d->cloud = g_strdup(s->cloud);
    d->file = g_strdup(s->file);
    return d;
}

static void spark_key_row_free(void *rec)
{
    spark_key_row *r = (spark_key_row *)rec;
    g_free(r->type);
    g_free(r->device);
    g_free(r->cloud);
    g_free(r->file);
}

static void spark_key_table_changed(void)
{
    spark_key_table_gen++;
    spark_keys_dirty = TRUE;
}

/* ---- loading ------------------------------------------------------------------------------------- */

void spark_keys_unload(void)
{
    kr_keyfile_free(spark_keys);
    spark_keys = NULL;
    g_free(spark_keys_sig);
    spark_keys_sig = NULL;
    g_free(spark_keys_error);
    spark_keys_error = NULL;
}

static gint64 mtime_of(const char *path)
{
    GStatBuf st;
    return path[0] && g_stat(path, &st) == 0 ? (gint64)st.st_mtime : 0;
}

/* The text of a keyfile or session file: a regular file of at most SPARK_TEXT_MAX bytes. */
static char *read_text(const char *path, const char *what, gsize *len, char **error)
{
    char *text = NULL;
    GError *gerr = NULL;

    if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
        *error = g_strdup_printf("%s %s is not a regular file (name the file itself)", what, path);
        return NULL;
    }
    if (!g_file_get_contents(path, &text, len, &gerr)) {
        *error = g_strdup_printf("%s %s: %s", what, path, gerr->message);
        g_error_free(gerr);
        return NULL;
    }
    if (*len > SPARK_TEXT_MAX) {
        *error = g_strdup_printf("%s %s is larger than %d bytes: not a keyfile", what, path, SPARK_TEXT_MAX);
        g_free(text);
        return NULL;
    }
    return text;
}

static gboolean only_session_lines(const char *text, const char *path, char **error)
{
    char **lines = g_strsplit(text, "\n", -1);
    gboolean ok = TRUE;
    guint i;

    for (i = 0; ok && lines[i]; i++) {
        const char *l = lines[i] + strspn(lines[i], " \t\r");
        if (l[0] && l[0] != '#' && strncmp(l, "session", 7) != 0) {
            *error = g_strdup_printf("Session file %s:%u holds another line than 'session ID HEX [block=HINT]' "
                                     "(keys belong in the keyfile or the Spark keys table)", path, i + 1);
            ok = FALSE;
        }
    }
    g_strfreev(lines);
    return ok;
}

/* The session-secrets file holds only session lines; libkeyring checks each (id, 80 hex digits). */
static gboolean add_session_file(GString *all, const char *path, char **error)
{
    gsize len = 0;
    char *text = read_text(path, "Session file", &len, error);
    kr_keyfile *kf;
    kr_err err;
    size_t i;

    if (!text)
        return FALSE;
    if (!only_session_lines(text, path, error)) {
        g_free(text);
        return FALSE;
    }
    memset(&err, 0, sizeof err);
    kf = kr_keyfile_parse(text, len, ".", path, &err);
    g_free(text);
    if (!kf) {
        *error = g_strdup_printf("%s", err.msg);
        return FALSE;
    }
    if (kr_keyfile_count(kf) != kr_keyfile_session_count(kf)) {
        *error = g_strdup_printf("Session file %s holds other lines than 'session ID HEX [block=HINT]' (keys "
                                 "belong in the keyfile or the Spark keys table)", path);
        kr_keyfile_free(kf);
        return FALSE;
    }
    for (i = 0; i < kr_keyfile_session_count(kf); i++) {
        const kr_entry *e = kr_keyfile_session_entry(kf, i);
        char hex[2 * KR_SESSION_LEN + 1];
        size_t j;
        for (j = 0; j < KR_SESSION_LEN; j++)
            g_snprintf(hex + 2 * j, 3, "%02x", e->session[j]);
        g_string_append_printf(all, "session %s %s", e->device_id_hex, hex);
        for (j = 0; e->has_hint && j < KR_SESSION_HINT_LEN; j++)
            g_string_append_printf(all, j ? "%02x" : " block=%02x", e->hint[j]);
        g_string_append_c(all, '\n');
    }
    kr_keyfile_free(kf);
    return TRUE;
}

/* keyfile text + table rows + session lines, parsed once by libkeyring */
static kr_keyfile *load_merged(const char *keyfile, const char *session_file, char **error)
{
    GString *all = g_string_new(NULL);
    char *base = keyfile[0] ? g_path_get_dirname(keyfile) : g_strdup(".");
    kr_keyfile *kf = NULL;
    kr_err err;
    guint i;

    if (keyfile[0]) {
        gsize len = 0;
        char *text = read_text(keyfile, "Spark keyfile", &len, error);
        if (!text)
            goto out;
        g_string_append_len(all, text, (gssize)len);
        g_string_append_c(all, '\n');
        g_free(text);
    }
    for (i = 0; i < spark_key_nrows; i++) {
        char *line = row_line(&spark_key_rows[i]);
        g_string_append(all, line);
        g_free(line);
    }
    if (session_file[0] && !add_session_file(all, session_file, error))
        goto out;
    memset(&err, 0, sizeof err);
    kf = kr_keyfile_parse(all->str, all->len, base, "keyfile + Spark keys table + session file", &err);
    if (!kf)
        *error = g_strdup(err.msg[0] ? err.msg : "unknown error");
out:
    g_string_free(all, TRUE);
    g_free(base);
    return kf;
}

/* Loads the keys when a preference, the table or a file changed. Only called while no tracker is alive
 * (trackers point into the keyfile). Bad keys are reported once and the file is dissected without keys. */
void spark_keys_load(void)
{
    const char *path = pref_keyfile ? pref_keyfile : "";
    const char *sess = pref_session_file ? pref_session_file : "";
    char *sig = g_strdup_printf("%s|%" G_GINT64_FORMAT "|%s|%" G_GINT64_FORMAT "|%u", path, mtime_of(path), sess,
                                mtime_of(sess), spark_key_table_gen);
    char *error = NULL;

    if (spark_keys && !spark_keys_dirty && g_strcmp0(spark_keys_sig, sig) == 0) {
        g_free(sig);
        return;
    }
    spark_keys_unload();
    spark_keys_dirty = FALSE;
    spark_keys_sig = sig;
    if (spark_key_nrows == 0 && !sess[0] && path[0]) {
        kr_err err;
        memset(&err, 0, sizeof err);
        spark_keys = kr_keyfile_load(path, &err);
        if (!spark_keys)
            error = g_strdup(err.msg[0] ? err.msg : "unknown error");
    } else if (spark_key_nrows > 0 || sess[0] || path[0]) {
        spark_keys = load_merged(path, sess, &error);
    }
    if (!spark_keys && error) {
        spark_keys_error = g_strdup_printf("Spark keys were not loaded: %s (fix it, or clear the preference; "
                                           "until then nothing is decrypted)", error);
        report_failure("%s", spark_keys_error);
    }
    g_free(error);
    if (!spark_keys)
        spark_keys = kr_keyfile_new_empty();
}

static void spark_prefs_apply(void)
{
    /* The keys are (re)read when the next dissection starts (init routine), after the old trackers are
     * gone; changing a key preference makes Wireshark dissect the file again. */
    spark_keys_dirty = TRUE;
}

/* The keys changed: drop them once the old trackers are gone. */
void spark_keys_cleanup(void)
{
    if (spark_keys_dirty)
        spark_keys_unload();
    spark_export_close();
}

/* ---- preferences ---------------------------------------------------------------------------------- */

/* The plugin's preferences (Edit > Preferences > Protocols > Spark, or -o spark.NAME:VALUE). */
void spark_register_prefs(void)
{
    static uat_field_t fields[] = {
        UAT_FLD_CSTRING(spark_keys, type, "Key type",
                        "server-private, server-public, device, device-public or device-server-key"),
        UAT_FLD_CSTRING(spark_keys, device, "Device ID", "24 hex digits, or * for any device (device keys only)"),
        UAT_FLD_CSTRING(spark_keys, cloud, "Cloud address",
                        "Server keys only: the cloud they judge, 192.0.2.10 or [2001:db8::1], optionally :PORT"),
        UAT_FLD_FILENAME_OTHER(spark_keys, file, "Key file", NULL, "The key, PEM or DER"),
        UAT_END_FIELDS
    };
    module_t *m = prefs_register_protocol(proto_spark, spark_prefs_apply);
    uat_t *uat = uat_new("Spark keys", sizeof(spark_key_row), "spark_keys", TRUE, &spark_key_rows,
                         &spark_key_nrows, UAT_AFFECTS_DISSECTION, NULL, spark_key_row_copy,
                         spark_key_row_check, spark_key_row_free, spark_key_table_changed, NULL, fields);

    prefs_register_filename_preference(m, "keyfile", "Keyfile",
        "The sparkwire keyfile: server and device keys (and session lines) used to open the handshake and "
        "decrypt the session. One entry a line: 'server-private PATH', 'server-public PATH', "
        "'device ID|* PATH', 'session ID HEX'; paths relative to the keyfile.",
        &pref_keyfile, FALSE);
    prefs_register_uat_preference(m, "keys", "Keys",
        "Keys beside the keyfile, one a row: key type, device id or *, cloud address, key file", uat);
    prefs_register_filename_preference(m, "session_file", "Session secrets file",
        "A file of 'session ID HEX' lines (40 bytes of session material per device): decrypts those sessions "
        "without any private key, as a TLS key log does", &pref_session_file, FALSE);
    prefs_register_filename_preference(m, "export_sessions", "Export session secrets to",
        "Writes the 'session ID HEX' line of every connection the plugin decrypts to this file (created "
        "0600, never through a symlink), so a capture can be shared with its session secrets instead of "
        "private keys. Key material: empty (the default) writes nothing", &pref_export_sessions, TRUE);
    prefs_register_bool_preference(m, "show_session_key", "Show the session key",
        "Shows the session key, IV and salt of a decrypted connection in the tree (key material: off by "
        "default)", &pref_show_session_key);
    prefs_register_uint_preference(m, "max_conns", "Connections followed at once",
        "At most this many connections are tracked at once (as cloudmon --max-conns); a new one beyond it "
        "ends the tracking of the longest idle one, whose verdict so far becomes final. 0: no limit",
        10, &pref_max_conns);
    prefs_register_bool_preference(m, "heuristic_strict", "Strict heuristic",
        "On ports other than the Spark port, only take a connection whose first 40 server bytes look random "
        "(not text, not a constant pattern)",
        &pref_heuristic_strict);
}

/* ---- export of session lines ------------------------------------------------------------------------ */

static int spark_export_fd = -1;
static kr_session_lines *spark_exported;  /* the lines written: one per device, later ones as comments */
static gboolean spark_export_failed;

static void export_open(void)
{
    const char *path = pref_export_sessions ? pref_export_sessions : "";
    struct stat st;

    if (spark_export_fd >= 0 || spark_export_failed || !path[0])
        return;
    /* no O_TRUNC here: a file that is not ours must stay as it is; O_NONBLOCK: a FIFO never hangs */
    spark_export_fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
    if (spark_export_fd < 0 || fstat(spark_export_fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (st.st_uid != geteuid())) {
        report_failure("Spark session export: %s was not written: %s (name a new file, not a symlink, "
                       "a folder or another user's file)", path,
                       spark_export_fd < 0 ? g_strerror(errno) : "not a regular file of this user");
        if (spark_export_fd >= 0)
            close(spark_export_fd);
        spark_export_fd = -1;
        spark_export_failed = TRUE;
        return;
    }
    if (fchmod(spark_export_fd, 0600) != 0 || ftruncate(spark_export_fd, 0) != 0) {
        /* an existing file of ours keeps no wider mode, and holds this capture's lines only */
        report_failure("Spark session export: %s: %s", path, g_strerror(errno));
        close(spark_export_fd);
        spark_export_fd = -1;
        spark_export_failed = TRUE;
        return;
    }
    spark_exported = kr_session_lines_new();
    if (!spark_exported) {
        report_failure("Spark session export: %s: out of memory", path);
        close(spark_export_fd);
        spark_export_fd = -1;
        spark_export_failed = TRUE;
    }
}

/* One session line for a connection whose session material the plugin found (first pass only), as libkeyring
 * writes it: a device's later sessions as comments, since a keyfile holds one session per device. */
void spark_export_session(const char *device_id_hex, const uint8_t *session, const uint8_t *hint)
{
    char line[KR_SESSION_LINE_MAX];
    size_t n;

    export_open();
    if (spark_export_fd < 0)
        return;
    n = kr_session_line(spark_exported, device_id_hex, session, hint, line);
    if (n > 0 && write(spark_export_fd, line, n) != (ssize_t)n) {
        report_failure("Spark session export: writing %s failed: %s", pref_export_sessions, g_strerror(errno));
        spark_export_close();
        spark_export_failed = TRUE;
    }
}

void spark_export_close(void)
{
    if (spark_export_fd >= 0)
        close(spark_export_fd);
    spark_export_fd = -1;
    spark_export_failed = FALSE;
    kr_session_lines_free(spark_exported);
    spark_exported = NULL;
}
