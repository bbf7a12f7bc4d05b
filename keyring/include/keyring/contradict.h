/* sparkwire libkeyring: which line of the keyfile a verdict contradicts, and the command that fixes it.
 *
 * A handshake that fails on a key says that one key is not what the other side expects: the server key in
 * the device's flash is not the cloud's (server-key-mismatch), the cloud's record of the device key is not
 * the key the device holds (device-key-mismatch), the cloud signs with another key than the one the device
 * checks with (bad-signature), the cloud has no record of the device (unknown-device). One table says, per
 * verdict code, which kind of keyfile line names the key at fault, which line it is compared with, and which
 * fix applies; frontends (`sparkkeys check KEYFILE CAPTURE`) print what it returns.
 */
#ifndef KEYRING_CONTRADICT_H
#define KEYRING_CONTRADICT_H

#include <stdbool.h>
#include "conn.h"
#include "keyfile.h"
#include "tracker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kr_contradiction {
    kr_verdict_code code;
    kr_entry_kind kind;          /* the kind of line that names the key at fault */
    const kr_entry *line;        /* that line of the keyfile; NULL when the keyfile has none for this device
                                    (or several, and the device id is not known) */
    kr_entry_kind against_kind;  /* the kind of line it is compared with */
    const kr_entry *against;     /* that line, NULL when none (for the cloud's key: the Particle key counts) */
    char what[384];              /* one line: the key at fault and what the capture shows about it */
    char detail[KR_NOTE_TEXT_LEN]; /* the two lines compared, with their fingerprints ("" when not compared) */
    char fix[KR_NOTE_FIX_LEN];   /* the command(s) that fix it */
} kr_contradiction;

/* Fills out for a verdict code of a connection whose tracker info is info, to the cloud at cloud (NULL when
 * not known: only unbound server keys apply). Returns true when the code blames a key (the four codes
 * above); false, with out->what saying so, for every other code (ok, not-spark, nonce-mismatch ...). */
bool kr_contradiction_of(const kr_keyfile *kf, kr_verdict_code code, const kr_conn_info *info,
                         const kr_endpoint *cloud, kr_contradiction *out);

/* One line naming a keyfile line: "line 4: device-server-key 53ff... keys/x.der (fingerprint ...)". */
char *kr_entry_describe(const kr_entry *e, char *out, size_t cap);

/* The server key in a device's flash (a device-server-key line) against the cloud's key (a server-public
 * or server-private line, or NULL for the published Particle cloud key): true when they are the same key;
 * text says so either way with both fingerprints, fix gets the command when they differ ("" otherwise; a
 * server-private line gets the openssl command that makes its public half first). */
bool kr_contradiction_server_copy(const kr_entry *copy, const kr_entry *cloud, char *text, size_t text_cap,
                                  char *fix, size_t fix_cap);

#ifdef __cplusplus
}
#endif
#endif
