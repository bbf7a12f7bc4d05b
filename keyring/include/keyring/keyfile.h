/* sparkwire libkeyring: the keyfile (docs/design.md), one format for the plugin, cloudmon and keyring.
 *
 *   server-private  keys/server-private.pem
 *   server-public   keys/cloud_public.der
 *   device  55ff6d065075555332071787  keys/55ff6d065075555332071787.der
 *   device  *  keys/core-private.der
 *   session 55ff6d065075555332071787  <80 hex digits>  [block=<16 hex digits>]
 *   device-server-key 55ff6d065075555332071787  keys/55ff..-server-key.der   (the copy in its flash)
 *   device-public 55ff6d065075555332071787  keys/55ff...pub.pem   (the cloud's record of its key)
 *   server-public keys/lab-cloud.der  cloud=192.0.2.10:5683        (judges only that cloud)
 *
 * cloud=ADDR binds a server-private or server-public line to one cloud: IPv4 `192.0.2.10` or IPv6 in
 * brackets `[2001:db8::1]`, optionally `:PORT`. Several server keys of a kind may be given when bound to
 * different addresses; at most one of each kind is unbound, and it judges every other cloud.
 *
 * block=HEX16 on a session line names the connection it came from: the first 8 bytes of the SHA-256 of
 * the session block's E (its 128-byte RSA ciphertext). A connection whose E hashes to it tries that line
 * first, instead of every line; the line still has to decrypt the frames (a hint selects, never proves).
 *
 * '#' starts a comment, blank lines are ignored, paths are relative to the keyfile's folder.
 * Every bad line is an error "FILE:LINE: what is wrong (what to do)"; nothing is skipped.
 */
#ifndef KEYRING_KEYFILE_H
#define KEYRING_KEYFILE_H

#include <stdbool.h>
#include "common.h"
#include "key.h"
#include "cipher.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kr_entry_kind {
    KR_ENTRY_SERVER_PRIVATE = 1,
    KR_ENTRY_SERVER_PUBLIC,
    KR_ENTRY_DEVICE,          /* a device private key, for one id or for any id (wildcard) */
    KR_ENTRY_SESSION,         /* 40 bytes of session material for a device id */
    KR_ENTRY_DEVICE_SERVER_KEY, /* the server public key stored in device ID's flash (RSA-2048) */
    KR_ENTRY_DEVICE_PUBLIC    /* the device public key the cloud holds on record for ID (RSA-1024) */
} kr_entry_kind;

/* The keyword of a line of this kind: "server-private", "device-server-key", ... */
const char *kr_entry_kind_str(kr_entry_kind kind);

/* The longest key file path a line may resolve to: a longer one is an error, never cut. */
#define KR_ENTRY_PATH_MAX 1023

typedef struct kr_entry {
    kr_entry_kind kind;
    int line;                         /* line number in the keyfile */
    bool wildcard;                    /* device * */
    bool has_id;
    uint8_t device_id[KR_DEVICE_ID_LEN];
    char device_id_hex[KR_DEVICE_ID_HEX_LEN + 1];
    const char *path;                 /* resolved path of the key file, at most KR_ENTRY_PATH_MAX characters
                                         (owned by the keyfile; "" for session lines) */
    kr_key *key;                      /* loaded key (owned by the keyfile), NULL for session lines */
    uint8_t session[KR_SESSION_LEN];  /* session lines */
    bool has_hint;                    /* session line with block=HEX16 */
    uint8_t hint[KR_SESSION_HINT_LEN];
    /* server-private / server-public bound to one cloud with cloud=ADDR */
    bool bound;
    int cloud_family;                 /* 4 or 6 */
    uint8_t cloud_addr[16];           /* 4 bytes for IPv4 */
    uint16_t cloud_port;              /* 0: any port */
    char cloud[64];                   /* ADDR as written */
} kr_entry;

typedef struct kr_keyfile kr_keyfile;

/* Loads and checks a keyfile, loading every key it names. NULL + err ("FILE:LINE: ...") on the first
 * bad line: unknown keyword, missing or unreadable key file, a key file that is not a regular file, a path
 * too long to keep whole, key of the wrong kind (public where a private key is needed...), a key the checks
 * call broken (exponent 1 or even, private numbers that do not fit together: d, CRT values), bad device id
 * (not 24 hex digits), bad session hex (not 80 hex digits), bad block= hint (not 16 hex digits, or a hint
 * already on another line), bad cloud=ADDR, duplicate device id or
 * duplicate server key (for one cloud). Lines naming the same key file share one loaded key; loading is
 * linear in the number of lines. */
kr_keyfile *kr_keyfile_load(const char *path, kr_err *err);
/* Parses keyfile text; base_dir resolves relative paths, name is used in error messages. */
kr_keyfile *kr_keyfile_parse(const char *text, size_t len, const char *base_dir, const char *name,
                             kr_err *err);
/* An empty keyfile (no keys): the tools work without keys. */
kr_keyfile *kr_keyfile_new_empty(void);
void kr_keyfile_free(kr_keyfile *kf);

const char *kr_keyfile_path(const kr_keyfile *kf);      /* "" for an empty or parsed-from-text one */
size_t kr_keyfile_count(const kr_keyfile *kf);
const kr_entry *kr_keyfile_entry(const kr_keyfile *kf, size_t i);

/* The unbound server key (else the first bound one, for tools that serve one cloud); NULL when absent. */
const kr_key *kr_keyfile_server_private(const kr_keyfile *kf);
const kr_key *kr_keyfile_server_public(const kr_keyfile *kf);   /* explicit server-public, or the public
                                                                   half of server-private; NULL if neither */
/* The server-private or server-public entry (kind) that judges connections to this cloud: one bound to
 * the address and port, else one bound to the address for any port, else the unbound one. family 0 (the
 * address is not known): the unbound one only. NULL when none applies. */
const kr_entry *kr_keyfile_server_entry(const kr_keyfile *kf, kr_entry_kind kind, int family,
                                        const uint8_t *addr, uint16_t port);
/* Parses ADDR of cloud=ADDR. 0 on success, -1 when it is not an address. */
int kr_keyfile_parse_cloud(const char *text, int *family, uint8_t addr[16], uint16_t *port);
/* device-server-key and device-public lines: the key for exactly this id, or NULL. */
const kr_key *kr_keyfile_device_server_key(const kr_keyfile *kf, const uint8_t id[KR_DEVICE_ID_LEN]);
const kr_key *kr_keyfile_device_public(const kr_keyfile *kf, const uint8_t id[KR_DEVICE_ID_LEN]);
/* All device-server-key lines, in keyfile order. */
size_t kr_keyfile_device_server_key_count(const kr_keyfile *kf);
const kr_entry *kr_keyfile_device_server_key_entry(const kr_keyfile *kf, size_t i);
/* Device private key for exactly this id, or NULL. Wildcards are not returned here. */
const kr_key *kr_keyfile_device_key(const kr_keyfile *kf, const uint8_t id[KR_DEVICE_ID_LEN]);
/* Wildcard device keys (device *), in keyfile order. */
size_t kr_keyfile_wildcard_count(const kr_keyfile *kf);
const kr_key *kr_keyfile_wildcard(const kr_keyfile *kf, size_t i);
/* All device keys (by id and wildcard), in keyfile order: what to try when the id is unknown. */
size_t kr_keyfile_device_key_count(const kr_keyfile *kf);
const kr_entry *kr_keyfile_device_entry(const kr_keyfile *kf, size_t i);
/* Session material for this id, or NULL. */
const uint8_t *kr_keyfile_session(const kr_keyfile *kf, const uint8_t id[KR_DEVICE_ID_LEN]);
/* All session lines, in keyfile order (mid-session captures where the id is not known). */
size_t kr_keyfile_session_count(const kr_keyfile *kf);
const kr_entry *kr_keyfile_session_entry(const kr_keyfile *kf, size_t i);
/* The index (as for kr_keyfile_session_entry) of the session line whose block= hint is this one; -1 when none. */
long kr_keyfile_session_by_hint(const kr_keyfile *kf, const uint8_t hint[KR_SESSION_HINT_LEN]);
/* Session line i's key, set up on first use for kr_cipher_probe (NULL when out of memory). */
const kr_probe_key *kr_keyfile_session_probe(const kr_keyfile *kf, size_t i);
/* Finds the device entry whose key's public half equals this SPKI DER (a key a device offered in
 * its id block). NULL when none matches. */
const kr_entry *kr_keyfile_find_device_by_public(const kr_keyfile *kf, const uint8_t *spki, size_t len);

/* Writing session lines (cloudmon --export-sessions, the plugin's spark.export_sessions, sparkwire-gen).
 * The writer remembers the devices that have their line: a device's later connections come out as comments
 * ("# another connection: session ID HEX"), since a keyfile holds one session line per device. */
typedef struct kr_session_lines kr_session_lines;
kr_session_lines *kr_session_lines_new(void);
void kr_session_lines_free(kr_session_lines *s);

#define KR_SESSION_LINE_MAX (64 + KR_DEVICE_ID_HEX_LEN + 2 * KR_SESSION_LEN + 2 * KR_SESSION_HINT_LEN)
/* The line, newline included, for one connection's 40 bytes of session material into out; its length, or 0
 * (out "") when device_id_hex is not 24 hex digits. hint (NULL: none) adds block=HEX16 (kr_session_hint). */
size_t kr_session_line(kr_session_lines *s, const char *device_id_hex, const uint8_t session[KR_SESSION_LEN],
                       const uint8_t *hint, char out[KR_SESSION_LINE_MAX]);
/* The block= hint of a connection: the first 8 bytes of SHA-256 over its session block's E. false when
 * the digest fails. */
bool kr_session_hint(const uint8_t e[KR_SESSION_E_LEN], uint8_t out[KR_SESSION_HINT_LEN]);

#ifdef __cplusplus
}
#endif
#endif
