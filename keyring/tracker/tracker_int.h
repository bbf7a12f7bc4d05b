/* sparkwire libkeyring: tracker internals shared by the tracker's source files. */
#ifndef KEYRING_TRACKER_INT_H
#define KEYRING_TRACKER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include "keyring/tracker.h"
#include <stdarg.h>
#include <string.h>
#include "keyring/cipher.h"
#include "../src/cipher_int.h"

/* Per-direction parser states. */
enum kr_pst {
    PST_NONCE = 0,   /* S->D: 40 bytes */
    PST_IDBLOCK,     /* D->S: 256 bytes */
    PST_SESSION,     /* S->D: 384 bytes */
    PST_FRAMES,      /* 2-byte length + body */
    PST_RESYNC,      /* looking for a frame-length chain */
    PST_DATA         /* not this protocol: bytes reported in blocks */
};

#define KR_SNIFF_LEN      8      /* first bytes checked for other protocols */
#define KR_DATA_BLOCK     1024   /* bytes per "data" step */
#define KR_RESYNC_CAP     4096   /* bytes looked at when searching a frame chain */
#define KR_RESYNC_MAXLEN  1024   /* longest frame accepted while resynchronising */
#define KR_RESYNC_CHAIN   3      /* consecutive valid lengths that prove a frame boundary */
#define KR_REQ_RING       16     /* requests remembered per direction for response matching */
#define KR_EARLY_MAX      4096   /* cloud bytes held while the device's id block may be lost */
#define KR_SESSION_CANDS  16     /* session lines tried on the first frame */
#define KR_WHY_CAP        256    /* longest reason text (not_spark_why, no_decrypt_reason) + 1 */
#define KR_KEYNAME_CAP    160    /* longest device_key_name + 1 */

/* A direction's parser state: three cache lines, all of them read for a frame of the direction; a frame of
 * the other direction reads the first one only (frames, closed, rst for the verdict; offset and kept when
 * it acknowledges frames kept). The cipher lies in the third line, made at need (cipher points to it then). */
typedef struct kr_dirstate {
    /* line 1 (the state lies on a line boundary) */
    _Alignas(64) uint8_t *buf;   /* current PDU (or resync window); grown lazily */
    uint64_t offset;       /* stream offset of the next byte */
    uint64_t pdu_offset;   /* stream offset of buf[0] */
    double pdu_first_time;
    kr_cipher *cipher;     /* &cipher_store once made (krt_cipher); keyed once the session key is known */
    struct krt_kept *kept;    /* frames read that a copy may still contradict (reread.c); NULL none yet */
    uint32_t frames;       /* frames seen */
    enum kr_pst st;
    bool closed, rst;
    bool damaged;          /* the PDU in buf has bytes lost in a gap (zero filled), or disputed */
    bool disputed;         /* ... disputed: another copy of its bytes differs (kr_tracker_dispute) */
    bool first_frame_done; /* "hello" step given (or not applicable) */
    bool have_last_id;
    uint8_t kept_size;     /* the size class of kept's block (kept.c) */
    bool gapped;           /* bytes of this direction were lost in a gap */
    /* line 2 */
    struct kr_disputes *disp; /* disputed byte ranges; NULL until the first one */
    uint8_t *pt;           /* plaintext scratch */
    uint64_t bytes;
    double last_data_time;
    uint32_t cap, have;    /* of buf (a PDU, a resync window or held bytes: a few KiB at most) */
    uint32_t scan_from;    /* resync: positions before this are known not to start a frame chain */
    uint32_t pt_cap;       /* of pt */
    uint32_t frames_ok;    /* frames decrypted (fully or partly) */
    uint32_t frames_bad;   /* frames that should decrypt but did not */
    uint16_t last_id;      /* counter check (device direction only) */
    bool sniffed;          /* first bytes of the stream checked */
    bool started_at_zero;  /* the stream is seen from its first byte */
    uint8_t close_order;   /* 1 for the side whose close came first, 2 for the other */
    /* line 3 */
    kr_cipher cipher_store;
    double close_time;
} kr_dirstate;

/* Byte ranges another copy disagrees with (kr_tracker_dispute), made at the first one. */
typedef struct kr_disputes {
    uint64_t off[16], end[16];
    int n;
    uint64_t all_from;     /* every byte from here on is disputed (ranges overflowed); UINT64_MAX none */
} kr_disputes;

typedef struct kr_request {   /* 40 bytes: the larger members first */
    double time;
    uint8_t token[8];
    uint32_t index;        /* message index */
    int chunk_index;
    uint16_t msg_id;
    uint16_t text_at;      /* its name and argument in its direction's krt_reqtext (msg_match.c) */
    uint8_t name_len;      /* bytes of name (at most 63, as copied from the message); 0 when empty */
    uint8_t arg_len;       /* likewise (the device reads at most 63 bytes of argument) */
    uint8_t kind;          /* kr_msg_kind */
    uint8_t type;
    uint8_t token_len;
    uint8_t dir;           /* the direction whose ring holds it */
    bool used;
    bool acked;            /* an ACK matched it */
    bool answered;         /* a separate response matched it */
} kr_request;

/* A direction's request names and arguments, end to end in the order the requests came (msg_match.c). */
struct krt_reqtext {
    uint16_t cap, tail;    /* bytes of b, and those written */
    char b[];
};

/* The last verdict given, its evidence only as long as it is. */
typedef struct kr_vstore {   /* its last_step and last_dir are the tracker's verdict_step and verdict_dir */
    kr_verdict_code code;
    bool proven, final;
    int n_candidates;
    kr_verdict_code candidates[KR_MAX_CANDIDATES];
    double time;
    char evidence[];
} kr_vstore;

/* Zeroes n bytes (a constant) in pieces of at most 64 bytes, which compilers store as vectors: a memset of a
 * few hundred bytes is made `rep stos`, slow to start, and a step is begun for every frame. */
static inline void krt_zero(void *p, size_t n)
{
    char *c = p;
    for (; n > 64; c += 64, n -= 64)
        memset(c, 0, 64);
    memset(c, 0, n);
}

/* Whether dir's cipher has the session key (kr_cipher_keyed, read where the cipher lies). */
static inline bool krt_keyed(const kr_dirstate *ds)
{
    return ds->cipher && ds->cipher->keyed;
}

/* The text of a field kept as an allocated string: "" while it is not set. */
static inline const char *krt_str(const char *s)
{
    return s ? s : "";
}

static inline void krt_clear_text(char **s)
{
    free(*s);
    *s = NULL;
}

typedef struct kr_var {
    char name[64];
    kr_var_type type;
} kr_var;

typedef struct kr_ota {
    bool active;           /* an UpdateBegin was seen */
    bool done;             /* UpdateDone seen */
    bool done_acked;       /* ... and acknowledged with 2.04 */
    bool done_refused;
    double begin_time;
    double last_time;      /* last OTA message */
    uint64_t last_offset;  /* its frame's stream offset (in its direction) */
    kr_dir last_dir;       /* who sent the last OTA message */
    kr_msg_kind last_kind;
    int chunks;            /* chunks sent (including re-sends) */
    int chunks_ok;         /* ChunkReceived 2.04 */
    int chunks_bad;        /* ChunkReceived 4.00 */
    int next_index;        /* inferred index of the next new chunk */
    int last_chunk_index;
    double last_chunk_time;
    bool last_chunk_acked; /* ChunkReceived for the last chunk seen */
    bool last_resend;      /* the last chunk was a re-send */
    int last_ok_index;     /* last chunk confirmed with 2.04, -1 none */
    int last_answered_index; /* last chunk the device answered (2.04 or 4.00), -1 none */
    int missed[8];         /* indexes asked again by ChunkMissed */
    int n_missed;
    uint8_t seen[256];     /* bitmap of chunk indexes seen (first 2048 chunks) */
    uint32_t file_size, chunk_size;
    bool fast;             /* the device accepted fast OTA */
    int missed_after_done; /* chunks the device asked for again after refusing update done */
    char missed_text[48];  /* their indexes */
} kr_ota;

/* The first six cache lines hold what every frame reads or writes (the tracker is allocated on a line
 * boundary), then the two directions, then what the handshake and the rarer messages use. Within each part
 * members are grouped by size, so that a tracker carries little padding: a million open connections each
 * hold one. */
struct kr_tracker {
    /* ---- read or written for every frame */
    kr_callbacks cb;
    void *ud;
    double last_time;
    struct kr_vstore *verdict; /* last emitted; NULL before the first (krt_verdict_get / _put) */
    uint64_t verdict_inputs;   /* verdict.c: a running session's verdict inputs when it was last made,
                                  0 when it must be made again (krt_evaluate) */
    /* findings found while reading a message, given after its callback */
    struct kr_pending { kr_finding_code code; char text[512]; } *pend; /* 4 slots while findings wait */
    struct krt_copies *copies; /* other copies of bytes already read (copies.c); NULL until one differs */
    kr_request *req[2];        /* per direction a ring of req_cap[d] requests, grown to KR_REQ_RING */
    struct krt_reqtext *req_text[2]; /* their names and arguments; NULL until one has any */
    double step_time[2];       /* per direction, the time of its last step */
    /* session lines to try on the frames when no device id tells which applies: all of them
     * (session_cands_all), or the indexes of those that fitted every frame so far */
    size_t n_session_cands;
    double silent_after;       /* (rarely used) */
    uint32_t step_index;
    uint32_t msg_index;
    int supersedes;            /* the next step's kr_step.supersedes (reread.c) */
    kr_step_kind last_step;    /* the last step given */
    kr_step_kind verdict_step; /* the last verdict's last_step and last_dir (kept here: they move with */
    uint8_t verdict_dir;       /* every frame, the rest of the verdict rarely) */
    uint8_t req_cap[2];
    unsigned req_next[2];
    int n_pend;
    kr_session sess;           /* its material is the session key M */
    uint8_t session_hint[KR_SESSION_HINT_LEN];  /* kr_session_hint of the session block's E */
    uint8_t device_id[KR_DEVICE_ID_LEN];
    char device_id_hex[KR_DEVICE_ID_HEX_LEN + 1];
    /* kr_tri and kr_hs_result values, a byte each (verdict.c reads the 16 bytes from id_block_opened) */
    int8_t id_block_opened;     /* kr_tri */
    int8_t id_result;           /* kr_hs_result */
    int8_t nonce_ok;            /* kr_tri */
    int8_t offered_key_known;   /* kr_tri */
    int8_t record_differs;      /* kr_tri: the cloud's record (device-public) is not the offered key */
    int8_t generation;          /* 0 unknown, 1, 2 */
    int8_t session_opened;      /* kr_tri */
    int8_t session_result;      /* kr_hs_result */
    int8_t signature_valid;     /* kr_tri */
    int8_t signature_ok;        /* kr_tri */
    /* flags (verdict.c reads the 32 bytes from opened) */
    bool opened;
    bool any_time;
    bool mid_session;          /* no handshake start in the capture */
    bool not_spark;
    bool silent_peer;          /* the cloud never spoke; the device sent frames after waiting */
    bool refused;              /* the SYN was answered by an RST, never by a SYN-ACK (kr_tracker_refused) */
    bool finished;
    bool nonce_seen, idblock_seen, sessionblock_seen;
    bool nonce_damaged;
    bool nonce_cut;            /* the capture ended inside the nonce */
    bool blocks_disputed;      /* a handshake block was not read because its bytes are disputed */
    bool early_hold, early_done;
    bool idblock_damaged, sessionblock_damaged;
    bool have_offered;         /* a G2 id block opened: the SHA-256 of the public key it offers */
    bool id_read;              /* the server private key opened the id block and the echo is the nonce */
    bool device_key_by_id;     /* the device key tried is the keyfile's key for the id that was read */
    bool sig_key_belongs;      /* the server public key is bound to this cloud, or is the public half of
                                  the key that opened this id block */
    bool device_id_known;
    bool device_id_from_key;   /* learned from a device entry, not from the id block */
    bool session_known;
    bool session_from_line;
    bool session_cands_all;
    bool session_hint_known;   /* the session block's E was read whole and hashed */
    bool session_cand_hinted;  /* the one candidate is the line the hint named: if it fails, all are tried */
    bool device_hello_ok;      /* the device's first frame decrypted as a Hello */
    bool device_hello_bad;     /* the device's first frame did not decrypt with M */
    bool cloud_hello_ok;
    bool ota_reported;
    bool verdict_emitted;
    bool handshake_done;       /* ok was given, or a session line decrypts a capture without handshake */
    bool no_texts;             /* the caller reads no message texts nor frame notes (kr_tracker_set_texts) */
    bool rsa_parked;           /* a handshake block waits for the RSA budget (rsagate.c) */
    /* (rarely used, in what would be padding) */
    uint16_t cloud_port;
    uint16_t id_plain_len;     /* 52 / 214 when the id block opened */
    uint8_t mem_off;           /* bytes from the start of the tracker's block to the tracker (kr_tracker_new) */
    int cloud_family;          /* the cloud's address (kr_tracker_set_cloud) for server keys bound to it;
                                  family 0 when unknown */
    uint32_t closes;
    int device_keys_tried;
    uint32_t findings;         /* findings given that stand */

    /* ---- the two directions, on line boundaries */
    kr_dirstate d[2];

    /* ---- the handshake, the rarer messages, what is made on need */
    const kr_keyfile *kf;
    double open_time;
    double first_time;
    char *not_spark_why;       /* set once with not_spark (krt_set_text) */
    double nonce_time, idblock_time, sessionblock_time;
    /* cloud bytes past the nonce before any device byte: held until the device's side shows whether its
     * id block was lost (a gap at offset 0) or never sent (not this protocol) */
    uint8_t *early;
    double early_time;         /* when the last held byte arrived */
    double idblock_split;      /* seconds between the id block's first and last byte */
    char *device_key_name;     /* which key opened E (or was tried); NULL none */
    char *no_decrypt_reason;   /* why frames are not decrypted; NULL: no reason given */
    kr_var *vars;
    char **funcs;
    kr_ota *ota;               /* made at the first OTA message (krt_ota) */
    kr_conn_info *info;        /* filled by kr_tracker_info when asked (made at the first call) */
    struct krt_rsa *rsa;       /* the RSA budget's state (rsagate.c), NULL without a budget */
    uint32_t session_cands[8];
    uint32_t n_vars, cap_vars;
    uint32_t n_funcs, cap_funcs;
    uint32_t early_len;        /* bytes at early (at most KR_EARLY_MAX) */
    uint32_t s2d_head_len;
    uint8_t cloud_addr[16];
    uint8_t nonce[KR_NONCE_LEN];
    uint8_t s2d_head[KR_NONCE_LEN];   /* first bytes from the cloud port, whatever they are */
    uint8_t offered_sha256[32];
};

_Static_assert(sizeof(kr_dirstate) == 192, "a direction's state is three cache lines");
_Static_assert(offsetof(struct kr_tracker, d) == 384, "the parts every frame reads are six cache lines");
_Static_assert(sizeof(struct kr_tracker) == 1088, "a tracker is 17 cache lines");

/* Text fields have fixed sizes; cutting an over-long name or note is intended. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static inline const char *who(kr_dir d)
{
    return d == KR_D2S ? "device" : "cloud";
}

static inline bool valid_len(unsigned l, unsigned max)
{
    return l >= 16 && l <= max && l % 16 == 0;
}

/* The file name of a key without its folder (notes must not depend on where the files live). */
static inline const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* tracker.c: parts made on need */
/* *dst becomes the formatted text, cut to cap - 1 bytes as the fixed buffers it replaces were */
void krt_set_text(char **dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void krt_vset_text(char **dst, size_t cap, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
kr_ota *krt_ota(kr_tracker *t);
void krt_verdict_get(const kr_tracker *t, kr_verdict *out);   /* all zero before the first verdict */
bool krt_verdict_put(kr_tracker *t, const kr_verdict *v);
/* Gives back a direction's PDU and plaintext buffers between PDUs; keep_buf keeps the last PDU's bytes
 * (a handshake block a conflicting copy may still have to be read against). */
void krt_release(kr_dirstate *ds, bool keep_buf);
kr_cipher *krt_cipher(kr_dirstate *ds);

/* tracker.c: output */
void krt_note_time(kr_tracker *t, double ts);
bool krt_take_dispute(kr_tracker *t, kr_dir dir, size_t len);
void krt_step_init(kr_tracker *t, kr_step *s, kr_step_kind kind, kr_dir dir, const uint8_t *bytes,
                      size_t len, uint64_t off, double first, double ts);
void krt_emit_step(kr_tracker *t, kr_step *s);
void krt_emit_data(kr_tracker *t, kr_dir dir, size_t n, double ts, const char *why);

/* stream.c: the byte pump */
void krt_shrink(kr_dirstate *ds);
void krt_enter_resync(kr_tracker *t, kr_dir dir);
void krt_reframe(kr_tracker *t, kr_dir dir, size_t len, double ts);
void krt_feed(kr_tracker *t, kr_dir dir, const uint8_t *p, size_t len, double ts);
void krt_flush_early(kr_tracker *t, double ts);
void krt_end_direction(kr_tracker *t, kr_dir dir, double ts, bool capture_end);

/* hsteps.c: handshake steps */
const kr_entry *krt_server_entry(const kr_tracker *t, kr_entry_kind kind);
const kr_entry *krt_cloud_public_entry(const kr_tracker *t);
void krt_adopt_id(kr_tracker *t, const kr_entry *e);
/* The wire shows firmware 0.8 or later (a little-endian message-id start, a Signal ACK carrying the
 * device's own next id): a 214-byte id block's generation 2 becomes 3. */
void krt_saw_g3(kr_tracker *t);
void krt_do_nonce(kr_tracker *t, double ts);
void krt_do_idblock(kr_tracker *t, double ts);
void krt_do_sessionblock(kr_tracker *t, double ts);

/* session.c: session key and frames */
void krt_install_cipher(kr_tracker *t, kr_dir dir);
void krt_install_session(kr_tracker *t, const uint8_t m[KR_SESSION_LEN], bool from_line);
void krt_consider_session_lines(kr_tracker *t);
void krt_do_frame(kr_tracker *t, kr_dir dir, double ts);
void krt_read_frame(kr_tracker *t, kr_dir dir, double ts, const char *again);
bool krt_frame_passes(kr_tracker *t, kr_dir dir, const uint8_t *body, size_t len);

/* reread.c: frames read that a conflicting copy may still contradict */
void krt_kept_add(kr_tracker *t, kr_dir dir, const kr_cipher_state *before, uint64_t off, const uint8_t *b,
                  size_t len, double first, bool hello, bool ok, bool bad);
void krt_kept_forget(kr_tracker *t, kr_dir dir);
void krt_kept_free(kr_tracker *t);
void krt_kept_copy(kr_tracker *t, kr_dir dir, uint64_t off, const uint8_t *b, size_t len, int rank, double ts);
size_t krt_kept_memory(const kr_tracker *t);
void krt_kept_boundary(kr_tracker *t, kr_dir dir, const kr_cipher_state *at);
bool krt_take_framing(kr_tracker *t, kr_dir dir, const uint8_t *b, uint64_t off, size_t len, kr_cipher_state at,
                      double ts);
bool krt_kept_resync_copy(kr_tracker *t, kr_dir dir, const uint8_t *b, uint64_t off, size_t len, double ts);
/* The one rule between two copies of a frame (the one read or being read, and another that differs), at the
 * cipher's place `at`: a copy passes when it frames this length, its padding is right and it parses as CoAP. */
typedef enum krt_choice {
    KRT_COPY_FIRST,            /* the first passes, the other does not: the first stands */
    KRT_COPY_OTHER,            /* the other passes, the first does not: the frame is read from the other */
    KRT_COPY_BOTH,             /* both pass: disputed, nothing rests on the frame */
    KRT_COPY_NEITHER           /* neither passes (or no session key to tell): disputed */
} krt_choice;
krt_choice krt_choose_copy(kr_tracker *t, kr_dir dir, const kr_cipher_state *at, const uint8_t *first,
                           const uint8_t *other, size_t len);

/* copies.c: conflicting copies of bytes already read */
void krt_copies_settle(kr_tracker *t, kr_dir dir, double ts);
void krt_copies_frame(kr_tracker *t, kr_dir dir);
const uint8_t *krt_nonce_candidate(const kr_tracker *t, const uint8_t echo[KR_NONCE_LEN]);
void krt_copies_free(kr_tracker *t);
size_t krt_copies_memory(const kr_tracker *t);
bool krt_copies_need_buffer(const kr_tracker *t, kr_dir dir);

/* verdict.c */
void krt_evaluate(kr_tracker *t, double ts);

/* message.c */
void kr_msg_interpret(kr_tracker *t, kr_message *m, kr_dir dir, double ts, uint64_t frame_offset,
                      const uint8_t *pt, size_t len, bool first_block_lost);
void kr_msg_after(kr_tracker *t, const kr_message *m);
/* msg_match.c: asks the processor for the request slots a message of dir may write (its next one) or read
 * (the other side's last one, which an answer usually answers); a hint given before the frame is decrypted. */
void kr_msg_prefetch(const kr_tracker *t, kr_dir dir);
/* Whether pt is a whole CoAP message and which kind, without touching any tracker. */
bool kr_msg_peek(const uint8_t *pt, size_t len, kr_msg_kind *kind);
void kr_tracker_emit_finding(kr_tracker *t, kr_finding_code code, kr_dir dir, double ts, uint64_t off,
                             const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void kr_ota_finish(kr_tracker *t, double ts);
uint32_t kr_crc32(const uint8_t *data, size_t len);
void kr_tracker_clear_describe(kr_tracker *t);

#endif
