/* cloudmon: session material as it becomes known, once per connection: --export-sessions writes the
 * keyfile `session` line of every decrypted connection (libkeyring's kr_session_line: a device's later
 * connections as comments, so the file loads as a keyfile; file 0600, never through a link), and with
 * --show-keys the screen shows it. Nothing is kept or written otherwise. */
#ifndef CLOUDMON_SESSIONS_H
#define CLOUDMON_SESSIONS_H

#include "output.h"

typedef struct cm_sessions {
    FILE *file;              /* --export-sessions, or NULL */
    kr_session_lines *lines; /* what is written: one session line per device, later ones as comments */
    bool keep;               /* --show-keys with the screen: keep the hex per connection */
    GHashTable *seen;        /* conn id -> hex (keep) or a mark */
    GQueue order;            /* kept ids, oldest first: at most limit are kept */
    size_t limit;
    uint64_t written;
    bool failed;
} cm_sessions;

/* path may be NULL (no export); keep: hold the hex of the newest `limit` connections for the screen.
 * Returns 0, or -1 with a message in err. */
int cm_sessions_open(cm_sessions *s, const char *path, bool keep, size_t limit, char *err, size_t errcap);
cm_observer cm_sessions_observer(cm_sessions *s);
/* The session material of a connection in hex (key, IV, salt), or NULL (not known or not kept). */
const char *cm_sessions_hex(const cm_sessions *s, unsigned conn);
/* Closes the file. Returns -1 when writing failed. */
int cm_sessions_close(cm_sessions *s);

#endif
