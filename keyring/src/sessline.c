/* sparkwire libkeyring: writing session lines, the keyfile's `session ID HEX` entries, as cloudmon
 * (--export-sessions), the Wireshark plugin (spark.export_sessions) and sparkwire-gen write them. A keyfile
 * holds one session line per device, so a device's later connections are written as comments: a file of
 * these lines always loads as a keyfile. */
#include "keyring/keyfile.h"
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

struct kr_session_lines {
    GHashTable *devices;    /* device ids (hex) that have their session line */
};

kr_session_lines *kr_session_lines_new(void)
{
    kr_session_lines *s = calloc(1, sizeof *s);
    if (s)
        s->devices = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return s;
}

void kr_session_lines_free(kr_session_lines *s)
{
    if (!s)
        return;
    g_hash_table_destroy(s->devices);
    free(s);
}

static bool id_hex_ok(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++)
        if (!isxdigit((unsigned char)id[n]) || n >= KR_DEVICE_ID_HEX_LEN)
            return false;
    return n == KR_DEVICE_ID_HEX_LEN;
}

size_t kr_session_line(kr_session_lines *s, const char *device_id_hex, const uint8_t session[KR_SESSION_LEN],
                       char out[KR_SESSION_LINE_MAX])
{
    out[0] = '\0';
    if (!s || !device_id_hex || !session || !id_hex_ok(device_id_hex))
        return 0;
    bool again = g_hash_table_contains(s->devices, device_id_hex);
    char hex[2 * KR_SESSION_LEN + 1];
    int n = snprintf(out, KR_SESSION_LINE_MAX, "%ssession %s %s\n", again ? "# another connection: " : "",
                     device_id_hex, kr_hex(session, KR_SESSION_LEN, hex));
    if (!again)
        g_hash_table_add(s->devices, g_strdup(device_id_hex));
    return n > 0 && n < KR_SESSION_LINE_MAX ? (size_t)n : 0;
}
