/* sparkwire libkeyring: the per-connection tracker. Fed the two ordered byte streams of one TCP
 * connection (in any chunking) plus open/close/gap notices, it splits the PDUs itself (40 / 256 / 384,
 * then 2-byte-length frames), opens what the keyfile's keys allow, decrypts frames, gives each CoAP
 * message its Spark meaning, follows OTA updates and names a verdict (docs/design.md codes).
 *
 * Output is by callbacks, called synchronously from inside the feed call that completed the PDU (so a
 * frontend can tie each step to the packet it is dissecting). Pointers inside the structs passed to
 * callbacks are valid only during the callback: copy what you keep.
 *
 * The tracker never does I/O and never reads past what it was given.
 */
#ifndef KEYRING_TRACKER_H
#define KEYRING_TRACKER_H

#include <stdbool.h>
#include "common.h"
#include "keyfile.h"
#include "handshake.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- steps: one per PDU ---------------------------------------------------------------------- */

typedef enum kr_step_kind {
    KR_STEP_NONE = 0,
    KR_STEP_NONCE,          /* "nonce": 40 bytes cloud->device */
    KR_STEP_IDBLOCK,        /* "id-block": 256 bytes device->cloud */
    KR_STEP_SESSIONBLOCK,   /* "session-block": 384 bytes cloud->device */
    KR_STEP_HELLO,          /* "hello": the first frame in a direction after the handshake */
    KR_STEP_FRAME,          /* "frame": any later frame */
    KR_STEP_DATA            /* "data": bytes that are not this protocol (not-spark peer, junk after a gap) */
} kr_step_kind;

const char *kr_step_str(kr_step_kind k);    /* the words above, used in JSON and fields */
const char *kr_step_title(kr_step_kind k, kr_dir d); /* "Nonce", "Device ID block", "Session key block",
                                                       "Device Hello", "Cloud Hello", "Frame", "Data" */

typedef enum kr_tri { KR_UNKNOWN = -1, KR_NO = 0, KR_YES = 1 } kr_tri;

typedef enum kr_frame_state {
    KR_FRAME_NOT_DECRYPTED = 0, /* no session key: see kr_step.why */
    KR_FRAME_DECRYPTED,
    KR_FRAME_PARTIAL,           /* first block lost (after a gap / mid-session): tail decrypted */
    KR_FRAME_DECRYPT_ERROR      /* should decrypt but padding or CoAP is wrong (finding decrypt-error) */
} kr_frame_state;

/* Why a step was not opened or decrypted (frontends show the note; they decide on this code). */
typedef enum kr_step_reason {
    KR_WHY_NONE = 0,            /* opened / decrypted, or nothing to open */
    KR_WHY_BYTES_LOST,          /* bytes of this PDU are missing from the capture (gap) */
    KR_WHY_NO_SERVER_KEY,       /* id block: no server private key for this cloud in the keyfile */
    KR_WHY_NO_DEVICE_KEY,       /* session block: no device key in the keyfile (for this device) */
    KR_WHY_KEY_DOES_NOT_OPEN,   /* the key at hand does not open the block */
    KR_WHY_NO_SESSION_KEY,      /* frame: no session key */
    KR_WHY_BAD_PADDING,         /* frame: decrypts to a wrong padding */
    KR_WHY_NOT_COAP,            /* frame: the plaintext is not a CoAP message */
    KR_WHY_BAD_LENGTH,          /* frame: the length is not a multiple of 16 */
    KR_WHY_NOT_PROTOCOL,        /* data step: bytes of another protocol, or skipped to a frame boundary */
    KR_WHY_DISPUTED,            /* the capture holds another copy of these bytes that differs */
    KR_WHY_RSA_BUDGET           /* handshake block: not opened, the RSA budget skipped it (keyring/budget.h) */
} kr_step_reason;

const char *kr_step_reason_str(kr_step_reason r);   /* "bytes-lost", "no-server-key", ... */

struct kr_message;

typedef struct kr_step {
    kr_step_kind kind;
    kr_dir dir;
    uint64_t offset;         /* stream offset of the PDU's first byte in its direction */
    uint32_t length;         /* PDU length on the wire (frames: 2 + body) */
    double time;             /* timestamp of the chunk that completed the PDU */
    double first_time;       /* timestamp of the chunk that held its first byte */
    uint32_t index;          /* 0-based PDU index in this connection (both directions together) */
    const uint8_t *bytes;    /* the whole PDU as on the wire (length bytes) */

    /* what the keys revealed (KR_UNKNOWN where they could not tell) */
    bool device_id_known;
    uint8_t device_id[KR_DEVICE_ID_LEN];
    char device_id_hex[KR_DEVICE_ID_HEX_LEN + 1];
    kr_tri id_block_opened;  /* server private key opened the id block */
    size_t id_plain_len;     /* 52 / 214 when opened */
    kr_tri nonce_ok;         /* echo equals the captured nonce */
    kr_tri offered_key_known;/* 214-byte id block: the offered public key matches a device key in the keyfile */
    kr_tri session_opened;   /* a device key opened E */
    bool session_known;      /* session material known (opened, or from a session line) */
    uint8_t session[KR_SESSION_LEN];
    bool session_hint_known; /* the session block was read whole: its block= hint for session lines */
    uint8_t session_hint[KR_SESSION_HINT_LEN];
    kr_tri signature_valid;  /* SIG recovers to the PKCS#1 type 1 structure with the server public key */
    kr_tri signature_ok;     /* ... and equals HMAC(M, E) (needs M) */
    kr_hs_result hs_result;  /* result of the crypto done on this step (KR_HS_OK when none failed) */

    /* frames */
    uint16_t frame_len;      /* the 2-byte length value */
    kr_frame_state frame_state;
    const uint8_t *plaintext;/* decrypted CoAP message (padding removed), NULL when not decrypted */
    size_t plaintext_len;
    size_t plaintext_skip;   /* 16 when the first block was lost */
    const struct kr_message *msg; /* its meaning, NULL when not decrypted */

    char note[384];          /* one line: what this step shows, or why it was not opened / decrypted,
                                e.g. "no key for device 53ff..."; never key material (the session bytes
                                are in session[] for frontends that show them on request) */
    kr_step_reason reason;   /* why it was not opened / decrypted (KR_WHY_NONE when it was) */
    int supersedes;          /* a frame read again from another copy of its bytes: the kr_finding_code its
                                first reading gave that no longer stands (the note names it), 0 none */
} kr_step;

/* ---- messages: the Spark meaning of a decrypted CoAP message ---------------------------------- */

typedef enum kr_msg_kind {
    KR_MSG_UNKNOWN = 0,
    KR_MSG_HELLO,
    KR_MSG_DESCRIBE,          /* S->D GET /d */
    KR_MSG_DESCRIBE_REPLY,    /* ACK 2.05 + JSON */
    KR_MSG_FUNCTION_CALL,     /* POST /f/name?arg */
    KR_MSG_FUNCTION_RETURN,   /* NON 2.04 + int32 */
    KR_MSG_VARIABLE_REQUEST,  /* GET /v/name */
    KR_MSG_VARIABLE_VALUE,    /* ACK 2.05 + value */
    KR_MSG_EVENT,             /* POST /e or /E */
    KR_MSG_SUBSCRIBE,         /* D->S GET /e[/prefix] */
    KR_MSG_TIME_REQUEST,      /* GET /t */
    KR_MSG_TIME_RESPONSE,     /* ACK 2.05 + uint32 */
    KR_MSG_SIGNAL,            /* PUT /s */
    KR_MSG_UPDATE_BEGIN,      /* POST /u */
    KR_MSG_UPDATE_READY,      /* NON 2.04 with UpdateBegin's token */
    KR_MSG_CHUNK,             /* POST /c?crc[?index] */
    KR_MSG_CHUNK_RECEIVED,    /* NON 2.04 / 4.00 with the Chunk's token */
    KR_MSG_CHUNK_MISSED,      /* D->S GET /c + index list */
    KR_MSG_UPDATE_DONE,       /* PUT /u */
    KR_MSG_SAVE_BEGIN,        /* POST /s */
    KR_MSG_KEY_CHANGE,        /* PUT /k */
    KR_MSG_PING,              /* CON 0.00 */
    KR_MSG_EMPTY_ACK,         /* ACK 0.00 */
    KR_MSG_ACK,               /* ACK with a code (2.04, 4.00 ...) not covered above */
    KR_MSG_RST
} kr_msg_kind;

const char *kr_msg_kind_str(kr_msg_kind k);   /* "hello", "describe", "function-call", ... */

typedef enum kr_var_type {
    KR_VAR_UNKNOWN = 0, KR_VAR_BOOL = 1, KR_VAR_INT = 2, KR_VAR_STRING = 4, KR_VAR_NULL = 5, KR_VAR_DOUBLE = 9
} kr_var_type;

typedef struct kr_message {
    kr_dir dir;
    double time;
    uint32_t index;             /* 0-based message index in this connection */
    uint64_t frame_offset;      /* stream offset of the frame */
    bool first_block_lost;      /* header not known: kind guessed from the tail, or UNKNOWN */

    /* CoAP (RFC 7252 header) */
    uint8_t type;               /* 0 CON, 1 NON, 2 ACK, 3 RST */
    uint8_t code;               /* class << 5 | detail */
    uint16_t msg_id;
    uint8_t token_len;
    uint8_t token[8];
    char uri[256];              /* joined Uri-Path, e.g. "/e/temperature" */
    char query[256];            /* Uri-Query values joined with '&' (printable; raw bytes as \xNN) */
    const uint8_t *payload;     /* valid during the callback */
    size_t payload_len;

    kr_msg_kind kind;
    char summary[256];          /* one line for Info columns and lists: "Event temperature = 21.5" */

    /* Spark meaning (only the fields of the kind are set) */
    char name[128];             /* event, function or variable name */
    char arg[128];              /* function argument */
    char value[256];            /* variable value, function result, time (ISO 8601 UTC), event data as
                                   printable text */
    kr_var_type var_type;
    bool event_public;          /* /e vs /E */
    uint32_t ttl;               /* event TTL (60 when absent) */
    uint16_t product_id, product_version; /* Hello */
    uint8_t hello_flags;
    int platform_id;            /* -1 when the Hello has none (first Core firmware) */
    uint32_t unix_time;         /* time response */
    uint32_t chunk_crc;         /* chunk: CRC option; */
    kr_tri chunk_crc_ok;        /* CRC-32 of the chunk data equals it */
    int chunk_index;            /* fast OTA index, or position in the update when inferred; -1 none */
    uint32_t chunk_size;

    /* request / response matching (by message id for ACKs, by token for separate responses) */
    int answers;                /* index of the message this one answers, -1 none */
    kr_msg_kind answers_kind;
    double response_time;       /* seconds since that request, when answers >= 0 */
} kr_message;

/* ---- findings and verdicts --------------------------------------------------------------------- */

typedef enum kr_finding_code {
    KR_FIND_GAP = 1,            /* "gap" */
    KR_FIND_OTA_INCOMPLETE,     /* "ota-incomplete" */
    KR_FIND_OTA_CHUNK_ERROR,    /* "ota-chunk-error" */
    KR_FIND_COUNTER_ERROR,      /* "counter-error" */
    KR_FIND_DECRYPT_ERROR       /* "decrypt-error" */
} kr_finding_code;

const char *kr_finding_str(kr_finding_code c);

typedef struct kr_finding {
    kr_finding_code code;
    kr_dir dir;
    double time;
    uint64_t offset;            /* stream offset it refers to */
    char text[512];             /* evidence in words */
} kr_finding;

typedef enum kr_verdict_code {
    KR_V_NONE = 0,              /* "" undecided yet */
    KR_V_OK,                    /* "ok" */
    KR_V_DEVICE_KEY_MISMATCH,   /* "device-key-mismatch" */
    KR_V_SERVER_KEY_MISMATCH,   /* "server-key-mismatch" */
    KR_V_UNKNOWN_DEVICE,        /* "unknown-device" */
    KR_V_BAD_SIGNATURE,         /* "bad-signature" */
    KR_V_NONCE_MISMATCH,        /* "nonce-mismatch" */
    KR_V_ID_BLOCK_REJECTED,     /* "id-block-rejected" */
    KR_V_SESSION_BLOCK_REJECTED,/* "session-block-rejected" */
    KR_V_NOT_SPARK,             /* "not-spark" */
    KR_V_STALLED,               /* "stalled" */
    KR_V_INCOMPLETE,            /* "incomplete" */
    KR_V_MID_SESSION,           /* "mid-session" */
    KR_V_REFUSED                /* "refused": the device's SYN was answered by an RST */
} kr_verdict_code;

#define KR_V_COUNT (KR_V_REFUSED + 1)   /* number of codes, for tables indexed by code */

const char *kr_verdict_str(kr_verdict_code c);
/* One sentence of meaning for a code, as in docs/design.md. */
const char *kr_verdict_meaning(kr_verdict_code c);

#define KR_MAX_CANDIDATES 4

/* proven: a key that provably belongs to this connection proved it: the server private key that opened
 * this id block (the id the cloud read), the public key a G2 device offered in it, a server key bound to
 * this connection's cloud address (kr_tracker_set_cloud), or the decrypted Hellos for ok. A key in the
 * keyfile is otherwise only the user's claim: a failure it shows is inferred. A verdict is given as proven
 * only when the wire can no longer contradict it (a failure before the connection ends is pending: not
 * proven, not final), so a proven verdict never changes on a connection. When the keys at hand leave one
 * cause, the verdict names it (inferred) and the evidence says which key ruled out which cause. */
typedef struct kr_verdict {
    kr_verdict_code code;
    bool proven;                /* proven by a key, or inferred from the wire */
    bool final;                 /* the connection ended (or the capture did) */
    char evidence[768];         /* "the session key block does not open with the device key for 53ff...:
                                   the cloud holds a different public key for this device" */
    int n_candidates;           /* when the wire cannot decide: the possible causes */
    kr_verdict_code candidates[KR_MAX_CANDIDATES];
    kr_step_kind last_step;     /* the last step seen */
    kr_dir last_dir;
    double time;
} kr_verdict;

/* Everything a list view needs about one connection. */
typedef struct kr_conn_info {
    bool device_id_known;
    char device_id_hex[KR_DEVICE_ID_HEX_LEN + 1];
    int generation;             /* 0 unknown, 1 = 52-byte id block (first Core firmware), 2 = 214 bytes,
                                   3 = 214 bytes and the wire shows Photon firmware 0.8 or later (a Hello whose
                                   id is the little-endian start, a Signal ACK with the device's own id) */
    kr_step_kind last_step;
    bool handshake_done;        /* both Hellos seen (or the session came from a session line) */
    bool decrypting;            /* a session key is known */
    char no_decrypt_reason[256];/* why frames are not decrypted, "" when they are */
    uint64_t bytes[2];          /* per kr_dir */
    uint32_t frames[2];
    uint32_t messages;
    uint32_t findings;
    double first_time, last_time;
    kr_verdict verdict;         /* current (final once the connection ended) */
} kr_conn_info;

/* ---- the tracker ------------------------------------------------------------------------------- */

/* When each callback fires (always from inside the call that caused it):
 * - step: when a PDU is complete, from kr_tracker_data. Frames found by resynchronising (a capture that
 *   starts mid-session, or after a gap of unknown size) are given once three consecutive frame lengths
 *   confirm the boundary, so up to two frames after their bytes arrived, or at the end of the stream
 *   (kr_tracker_close of that side, kr_tracker_finish). "data" steps (bytes of another protocol, skipped
 *   bytes) come in blocks of at most 1024 bytes, the rest when the stream ends.
 * - message: right after the step of the frame that carried it (step->msg is the same struct).
 * - finding: after the step / message it concerns; "gap" from kr_tracker_gap; "ota-incomplete" when the
 *   connection ends (an RST, both sides' FIN, or kr_tracker_finish).
 * - verdict: when first decided and whenever its code, proven, final or candidates change, never again
 *   while those stay the same (a FIN that only adds a wire fact to the evidence gives no call; the evidence
 *   in kr_tracker_verdict / kr_tracker_info is kept up to date all the same): "ok" at the second Hello,
 *   "not-spark" on the first bytes that do not fit, "mid-session" on the first frame found without a
 *   handshake; a failure a key shows at the step that shows it ("server-key-mismatch" and
 *   "nonce-mismatch" at the id block, "device-key-mismatch" and "bad-signature" at the session block),
 *   pending (neither proven nor final) while the wire may still contradict it, and final at the close
 *   with the wire facts added, proven then when its key belongs to the connection (see kr_verdict);
 *   "unknown-device" and the failures inferred from the wire alone at the close that shows them. When the
 *   wire shows the handshake went on (the cloud answers the id block, frames flow both ways after the
 *   session block), the key was not the one in use: the verdict follows the wire and its evidence names
 *   the claim that does not stand. A verdict given as proven never changes afterwards. final is true once
 *   the connection ended (an RST, both sides' FIN) or kr_tracker_finish ran; after kr_tracker_finish there
 *   is always a final verdict (incomplete when nothing else fits; a capture that ends inside the nonce is
 *   incomplete too).
 * Damage: handshake blocks with bytes lost in a gap are not opened and the evidence names them; cloud
 *   bytes past the nonce before any device byte wait until the device's side shows whether its id block
 *   was lost; a frame length prefix too large for a resync is checked against the frame lengths that
 *   follow and resynchronised when it was damaged. A close-time tie goes to the close seen first.
 * The output depends only on the bytes, their order and the timestamps, never on how they were chunked. */
typedef struct kr_callbacks {
    void (*step)(void *ud, const kr_step *s);
    void (*message)(void *ud, const kr_message *m);   /* after the step that carried it */
    void (*finding)(void *ud, const kr_finding *f);
    /* called when the verdict is first decided or its code, proven, final or candidates change (e.g. "ok"
     * after both Hellos; device-key-mismatch at the session block, then final at the close) */
    void (*verdict)(void *ud, const kr_verdict *v);
} kr_callbacks;

typedef struct kr_tracker kr_tracker;

/* kf may be an empty keyfile; it must outlive the tracker. cb may have NULL members. */
kr_tracker *kr_tracker_new(const kr_keyfile *kf, const kr_callbacks *cb, void *ud);
void kr_tracker_free(kr_tracker *t);

/* The TCP connection opened (SYN seen). Without it, data that does not start with a handshake is
 * taken as mid-session. */
void kr_tracker_open(kr_tracker *t, double ts);
/* In-order bytes of one direction, any chunking. */
void kr_tracker_data(kr_tracker *t, kr_dir dir, const uint8_t *data, size_t len, double ts);
/* nbytes of this direction are missing from the capture (0 if unknown): a gap finding, then resync at
 * the next frame boundary. */
void kr_tracker_gap(kr_tracker *t, kr_dir dir, uint64_t nbytes, double ts);
/* The side `by` closed: FIN (rst false) or RST. */
void kr_tracker_close(kr_tracker *t, kr_dir by, bool rst, double ts);
/* The connection was refused: the device's SYN was answered by an RST and no SYN-ACK was seen, so no
 * byte could flow (nothing listens on that address and port, or a firewall rejects the connection;
 * docs/protocol.md 7.5). Ends the connection like an RST from the cloud side (kr_tracker_close) and gives
 * the final verdict refused with that evidence. Ignored once data was seen: then it is a plain RST. */
void kr_tracker_refused(kr_tracker *t, double ts);
/* Bytes [offset, offset + len) of dir are disputed: the capture holds another copy of them that differs
 * (a connection layer keeps both until their meaning decides). A step built on disputed bytes proves
 * nothing: a handshake block is not opened, a frame is not decrypted, and the evidence names them. Call it
 * before those bytes are fed; a dispute about bytes already read changes nothing. At most 16 ranges per
 * direction are kept; beyond that every later byte of the direction counts as disputed. */
void kr_tracker_dispute(kr_tracker *t, kr_dir dir, uint64_t offset, uint64_t len);
/* Another copy of bytes [offset, offset + len) of dir that were fed already (a connection layer calls it
 * for every retransmitted byte range it does not hand on again). When it differs from what was read, the
 * copies are candidates and the meaning decides: the nonce the id block echoes, the id block or session
 * block copy that opens with the key (read again from the other copy when the first did not open; a
 * result both copies give stands); a frame still being read, the copy under which it decrypts with the
 * session key. A frame no copy makes decrypt (or without the key) and a handshake block that no key can
 * judge are disputed: a disputed step proves nothing. A frame read already is compared while it is kept
 * (the last frames read with the session key until their receiver acknowledges them, kr_tracker_acked): a
 * copy that decrypts to CoAP where the frame as read did not makes it read again (its step given again, the
 * chain going on from that copy); when both copies or neither decrypt, it is given again as disputed. Bytes
 * read before that window are not compared (their steps stand).
 * rank: 1 when this copy's TCP checksum is valid and the first copy's was bad (this copy replaces the
 * bytes where they can still be read), -1 the other way round (this copy is not taken), 0 otherwise. */
void kr_tracker_copy(kr_tracker *t, kr_dir dir, uint64_t offset, const uint8_t *bytes, size_t len, int rank,
                     double ts);
/* The receiver of dir acknowledged dir's bytes before offset (a connection layer calls it for every
 * acknowledgement): it read one copy of them, so a copy seen later is not what it read. The frames kept
 * for a later copy (the last ones read in dir) are given back up to there. */
void kr_tracker_acked(kr_tracker *t, kr_dir dir, uint64_t offset);
/* A hint, changing nothing: a segment of t's connection comes soon, so the lines any of its frames reads
 * are asked for now (a connection layer that learns of the segment some work before handing it on). */
void kr_tracker_prefetch(const kr_tracker *t);
/* The cloud's address and port (family 4: 4 bytes, 6: 16 bytes) for server keys bound to a cloud with
 * cloud=ADDR. Without it only unbound server keys apply. Call before the handshake's data. */
void kr_tracker_set_cloud(kr_tracker *t, int family, const uint8_t *addr, uint16_t port);
/* on false: the caller reads no texts of messages (uri, query, summary, name, arg, value, var_type) and no
 * notes of frame and Hello steps, so the tracker need not make them (they may be left empty) and does not
 * read Describe answers (no functions or variables listed). Kinds, header fields, numbers, matching,
 * findings and verdicts stay exactly as they are. Call before the first data; texts are made by default. */
void kr_tracker_set_texts(kr_tracker *t, bool on);
/* No more data will come (capture ended, connection expired): settles the verdict (incomplete etc.). */
void kr_tracker_finish(kr_tracker *t, double ts);

/* The returned buffer belongs to the tracker (made at the first call) and is rewritten by the next call. */
const kr_conn_info *kr_tracker_info(const kr_tracker *t);
/* The same into the caller's struct: nothing is kept in the tracker (for callers that hold many). */
void kr_tracker_fill_info(const kr_tracker *t, kr_conn_info *out);
/* The device id in hex when known, else NULL, and the firmware generation (0 unknown): the same as in
 * kr_tracker_info, without filling the whole view (cheap: for a line per event or packet). */
const char *kr_tracker_device_id(const kr_tracker *t);
int kr_tracker_generation(const kr_tracker *t);
/* The last step given and the code of the last verdict given (what kr_tracker_info says), as cheaply. */
kr_step_kind kr_tracker_last_step(const kr_tracker *t);
kr_verdict_code kr_tracker_verdict_code(const kr_tracker *t);
const kr_verdict *kr_tracker_verdict(const kr_tracker *t);

/* The last Describe answer of this connection, if any: functions and variables with types. */
size_t kr_tracker_function_count(const kr_tracker *t);
const char *kr_tracker_function(const kr_tracker *t, size_t i);
size_t kr_tracker_variable_count(const kr_tracker *t);
const char *kr_tracker_variable(const kr_tracker *t, size_t i, kr_var_type *type);

/* Bytes of memory this tracker holds now (bounded: buffers never exceed one PDU, the frames kept for a
 * later copy of their bytes, until their receiver acknowledges them, one block of at most 1,072 bytes a
 * direction, the names and arguments of the requests remembered at most 2 KiB a direction). */
size_t kr_tracker_memory(const kr_tracker *t);

/* Many connections: keyring/conn.h (the connection layer) keeps the table of trackers. */

#ifdef __cplusplus
}
#endif
#endif
