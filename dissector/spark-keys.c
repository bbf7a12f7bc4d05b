/* sparkwire Wireshark plugin: the keys (the keyfile preference) and the plugin's preferences. */
#include <string.h>

#include <epan/prefs.h>
#include <wsutil/report_message.h>
#include <glib/gstdio.h>

#include "spark-int.h"

static const char *pref_keyfile = "";
spark_pref_bool pref_heuristic_strict = TRUE;

kr_keyfile *spark_keys;          /* never NULL while a file is open */
static char *spark_keys_path;           /* what spark_keys was loaded from ("" = no keyfile) */
char *spark_keys_error;          /* the load error, NULL when the keyfile loaded */
static gboolean spark_keys_dirty = TRUE;
static gint64 spark_keys_mtime;         /* of the keyfile when it was read: an edited keyfile is read again */

void spark_keys_unload(void)
{
    kr_keyfile_free(spark_keys);
    spark_keys = NULL;
    g_free(spark_keys_path);
    spark_keys_path = NULL;
    g_free(spark_keys_error);
    spark_keys_error = NULL;
}

/* Loads the keyfile named by the preference, when it changed. Only called while no tracker is alive
 * (trackers point into the keyfile). A bad keyfile is reported once and the file is dissected
 * without keys. */
void spark_keys_load(void)
{
    const char *path = pref_keyfile ? pref_keyfile : "";
    gint64 mtime = 0;
    GStatBuf st;

    if (path[0] != '\0' && g_stat(path, &st) == 0)
        mtime = (gint64)st.st_mtime;
    if (spark_keys && !spark_keys_dirty && g_strcmp0(spark_keys_path, path) == 0 && mtime == spark_keys_mtime)
        return;
    spark_keys_unload();
    spark_keys_dirty = FALSE;
    spark_keys_path = g_strdup(path);
    spark_keys_mtime = mtime;
    if (path[0] != '\0') {
        kr_err err;
        memset(&err, 0, sizeof err);
        spark_keys = kr_keyfile_load(path, &err);
        if (!spark_keys) {
            spark_keys_error = g_strdup_printf("Spark keyfile %s was not loaded: %s (fix the keyfile, or clear "
                                               "the preference spark.keyfile; until then nothing is decrypted)",
                                               path, err.msg[0] ? err.msg : "unknown error");
            report_failure("%s", spark_keys_error);
        }
    }
    if (!spark_keys)
        spark_keys = kr_keyfile_new_empty();
}

static void spark_prefs_apply(void)
{
    /* The keyfile is (re)read when the next dissection starts (init routine), after the old trackers
     * are gone; changing this preference makes Wireshark dissect the file again. */
    spark_keys_dirty = TRUE;
}

/* The keyfile changed (or another key preference): drop the keys once the old trackers are gone. */
void spark_keys_cleanup(void)
{
    if (spark_keys_dirty)
        spark_keys_unload();
}

/* The plugin's preferences (Edit > Preferences > Protocols > Spark, or -o spark.NAME:VALUE). */
void spark_register_prefs(void)
{
    module_t *spark_module = prefs_register_protocol(proto_spark, spark_prefs_apply);

    prefs_register_filename_preference(spark_module, "keyfile", "Keyfile",
        "The sparkwire keyfile: server and device keys (and session lines) used to open the handshake and "
        "decrypt the session. One entry a line: 'server-private PATH', 'server-public PATH', "
        "'device ID|* PATH', 'session ID HEX'; paths relative to the keyfile.",
        &pref_keyfile, FALSE);
    prefs_register_bool_preference(spark_module, "heuristic_strict", "Strict heuristic",
        "On ports other than the Spark port, only take a connection whose first 40 server bytes look random "
        "(not text, not a constant pattern)",
        &pref_heuristic_strict);
}
