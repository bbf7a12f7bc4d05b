/* sparkwire libkeyring: writing session lines, the keyfile's `session ID HEX` entries, as cloudmon
 * (--export-sessions), the Wireshark plugin (spark.export_sessions) and sparkwire-gen write them. A keyfile
 * holds one session line per device, so a device's later connections are written as comments: a file of
 * these lines always loads as a keyfile. A line may end in block=HEX16, the hint that names the connection
 * by its session block (kr_session_hint). */
#include "keyring/keyfile.h"
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <openssl/evp.h>

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

bool kr_session_hint(const uint8_t e[KR_SESSION_E_LEN], uint8_t out[KR_SESSION_HINT_LEN])
{
    uint8_t h[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;
    if (!e || !EVP_Digest(e, KR_SESSION_E_LEN, h, &hl, kr_fetched_sha256(), NULL) || hl < KR_SESSION_HINT_LEN)
        return false;
    memcpy(out, h, KR_SESSION_HINT_LEN);
    return true;
}

size_t kr_session_line(kr_session_lines *s, const char *device_id_hex, const uint8_t session[KR_SESSION_LEN],
                       const uint8_t *hint, char out[KR_SESSION_LINE_MAX])
{
    out[0] = '\0';
    if (!s || !device_id_hex || !session || !id_hex_ok(device_id_hex))
        return 0;
    bool again = g_hash_table_contains(s->devices, device_id_hex);
    char hex[2 * KR_SESSION_LEN + 1], hhex[2 * KR_SESSION_HINT_LEN + 1] = "";
    if (hint)
        kr_hex(hint, KR_SESSION_HINT_LEN, hhex);
    int n = snprintf(out, KR_SESSION_LINE_MAX, "%ssession %s %s%s%s\n", again ? "# another connection: " : "",
                     device_id_hex, kr_hex(session, KR_SESSION_LEN, hex), hint ? " block=" : "", hhex);
    if (!again)
        g_hash_table_add(s->devices, g_strdup(device_id_hex));
    return n > 0 && n < KR_SESSION_LINE_MAX ? (size_t)n : 0;
}
