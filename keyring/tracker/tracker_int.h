/* sparkwire libkeyring: tracker internals shared by the tracker's source files. */
#ifndef KEYRING_TRACKER_INT_H
#define KEYRING_TRACKER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "keyring/tracker.h"
#include <string.h>
#include "keyring/cipher.h"

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
#define KR_REQ_RING       16
#define KR_EARLY_MAX      4096   /* cloud bytes held while the device's id block may be lost */     /* requests remembered per direction for response matching */

typedef struct kr_dirstate {
    enum kr_pst st;
    uint8_t *buf;          /* current PDU (or resync window); grown lazily */
    size_t cap, have;
    size_t scan_from;      /* resync: positions before this are known not to start a frame chain */
    uint64_t offset;       /* stream offset of the next byte */
    uint64_t pdu_offset;   /* stream offset of buf[0] */
    double pdu_first_time;
    bool damaged;          /* the PDU in buf has bytes lost in a gap (zero filled), or disputed */
    bool disputed;         /* ... disputed: another copy of its bytes differs (kr_tracker_dispute) */
    uint64_t disp_off[16], disp_end[16]; /* disputed byte ranges */
    int n_disp;
    uint64_t disp_all_from; /* every byte from here on is disputed (ranges overflowed); UINT64_MAX none */
    bool sniffed;          /* first bytes of the stream checked */
    bool started_at_zero;  /* the stream is seen from its first byte */
    bool gapped;           /* bytes of this direction were lost in a gap */
    kr_cipher *cipher;     /* always there; keyed once the session key is known; holds the IV chain */
    uint8_t *pt;           /* plaintext scratch */
    size_t pt_cap;
    uint32_t frames;       /* frames seen */
    uint32_t frames_ok;    /* frames decrypted (fully or partly) */
    uint32_t frames_bad;   /* frames that should decrypt but did not */
    bool first_frame_done; /* "hello" step given (or not applicable) */
    bool closed, rst;
    double close_time;
    uint32_t close_order;  /* 1 for the side whose close came first, 2 for the other */
    bool any_data;
    double first_data_time, last_data_time;
    double last_step_time;
    uint64_t bytes;
    uint64_t skipped;      /* bytes reported as data */
    /* counter check (device direction only) */
    bool have_last_id;
    uint16_t last_id;
} kr_dirstate;

typedef struct kr_request {
    bool used;
    kr_msg_kind kind;
    uint32_t index;        /* message index */
    uint16_t msg_id;
    uint8_t type;
    uint8_t token_len;
    uint8_t token[8];
    double time;
    bool acked;            /* an ACK matched it */
    bool answered;         /* a separate response matched it */
    char name[64];         /* event names are at most 63 bytes, function and variable names 12 */
    char arg[64];          /* the device reads at most 63 bytes of argument */
    int chunk_index;
} kr_request;

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

struct kr_tracker {
    const kr_keyfile *kf;
    kr_callbacks cb;
    void *ud;

    bool opened;
    double open_time;
    bool any_time;
    double first_time, last_time;
    bool mid_session;      /* no handshake start in the capture */
    bool not_spark;
    bool silent_peer;      /* the cloud never spoke; the device sent frames after waiting */
    double silent_after;
    bool refused;          /* the SYN was answered by an RST, never by a SYN-ACK (kr_tracker_refused) */
    char not_spark_why[256];
    bool finished;
    /* the cloud's address (kr_tracker_set_cloud) for server keys bound to it; family 0 when unknown */
    int cloud_family;
    uint8_t cloud_addr[16];
    uint16_t cloud_port;
    uint32_t closes;
    uint32_t step_index;
    uint32_t msg_index;

    kr_dirstate d[2];

    /* handshake facts */
    bool nonce_seen, idblock_seen, sessionblock_seen;
    double nonce_time, idblock_time, sessionblock_time;
    uint8_t nonce[KR_NONCE_LEN];
    uint8_t s2d_head[KR_NONCE_LEN];   /* first bytes from the cloud port, whatever they are */
    size_t s2d_head_len;
    uint8_t e_block[KR_SESSION_E_LEN];
    bool nonce_damaged;
    bool nonce_cut;            /* the capture ended inside the nonce */
    bool blocks_disputed;      /* a handshake block was not read because its bytes are disputed */
    /* cloud bytes past the nonce before any device byte: held until the device's side shows whether its
     * id block was lost (a gap at offset 0) or never sent (not this protocol) */
    uint8_t *early;
    size_t early_len;
    double early_time;         /* when the last held byte arrived */
    bool early_hold, early_done;
    bool idblock_damaged, sessionblock_damaged;
    double idblock_split;      /* seconds between the id block's first and last byte */
    kr_tri id_block_opened;
    kr_hs_result id_result;
    size_t id_plain_len;
    kr_tri nonce_ok;
    kr_tri offered_key_known;
    bool have_offered;         /* a G2 id block opened: the SHA-256 of the public key it offers */
    uint8_t offered_sha256[32];
    kr_tri record_differs;     /* the cloud's record (device-public) is not the offered key */
    bool id_read;              /* the server private key opened the id block and the echo is the nonce */
    bool device_key_by_id;     /* the device key tried is the keyfile's key for the id that was read */
    bool sig_key_belongs;      /* the server public key is bound to this cloud, or is the public half of
                                  the key that opened this id block */
    bool device_id_known;
    uint8_t device_id[KR_DEVICE_ID_LEN];
    char device_id_hex[KR_DEVICE_ID_HEX_LEN + 1];
    bool device_id_from_key;   /* learned from a device entry, not from the id block */
    int generation;
    kr_tri session_opened;
    kr_hs_result session_result;
    int device_keys_tried;
    char device_key_name[160];  /* which key opened E (or was tried) */
    kr_tri signature_valid;
    kr_tri signature_ok;
    bool session_known;
    bool session_from_line;
    uint8_t session[KR_SESSION_LEN];
    kr_session sess;
    /* session lines to try on the frames when no device id tells which applies: all of them
     * (session_cands_all), or the indexes of those that fitted every frame so far */
    size_t n_session_cands;
    bool session_cands_all;
    uint32_t session_cands[8];
    bool device_hello_ok;      /* the device's first frame decrypted as a Hello */
    bool device_hello_bad;     /* the device's first frame did not decrypt with M */
    bool cloud_hello_ok;
    char no_decrypt_reason[256];

    /* messages */
    kr_request req[2][KR_REQ_RING];
    unsigned req_next[2];
    kr_var *vars;
    size_t n_vars, cap_vars;
    char **funcs;
    size_t n_funcs, cap_funcs;
    /* the last Describe answer read, then the summary and value it gave (allocated when one comes) */
    uint8_t *desc_last;
    size_t desc_last_len;
    kr_ota ota;

    /* findings found while reading a message, given after its callback */
    struct { kr_finding_code code; char text[512]; } pend[4];
    int n_pend;
    bool ota_reported;

    uint32_t findings;
    kr_verdict verdict;        /* last emitted */
    bool verdict_emitted;
    kr_step_kind last_step;    /* the last step given */
    bool handshake_done;       /* ok was given, or a session line decrypts a capture without handshake */
    kr_conn_info *info;        /* filled by kr_tracker_info when asked */
    struct krt_copies *copies; /* other copies of bytes already read (copies.c); NULL until one differs */
    struct krt_rsa *rsa;       /* the RSA budget's state (rsagate.c), NULL without a budget */
};

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
void krt_feed(kr_tracker *t, kr_dir dir, const uint8_t *p, size_t len, double ts);
void krt_flush_early(kr_tracker *t, double ts);
void krt_end_direction(kr_tracker *t, kr_dir dir, double ts, bool capture_end);

/* hsteps.c: handshake steps */
const kr_entry *krt_server_entry(const kr_tracker *t, kr_entry_kind kind);
const kr_entry *krt_cloud_public_entry(const kr_tracker *t);
void krt_adopt_id(kr_tracker *t, const kr_entry *e);
void krt_do_nonce(kr_tracker *t, double ts);
void krt_do_idblock(kr_tracker *t, double ts);
void krt_do_sessionblock(kr_tracker *t, double ts);

/* session.c: session key and frames */
void krt_install_cipher(kr_tracker *t, kr_dir dir);
void krt_install_session(kr_tracker *t, const uint8_t m[KR_SESSION_LEN], bool from_line);
void krt_consider_session_lines(kr_tracker *t);
void krt_do_frame(kr_tracker *t, kr_dir dir, double ts);

/* copies.c: conflicting copies of bytes already read */
void krt_copies_settle(kr_tracker *t, kr_dir dir, double ts);
void krt_copies_frame(kr_tracker *t, kr_dir dir);
const uint8_t *krt_nonce_candidate(const kr_tracker *t, const uint8_t echo[KR_NONCE_LEN]);
void krt_copies_free(kr_tracker *t);

/* verdict.c */
void krt_evaluate(kr_tracker *t, double ts);

/* message.c */
void kr_msg_interpret(kr_tracker *t, kr_message *m, kr_dir dir, double ts, uint64_t frame_offset,
                      const uint8_t *pt, size_t len, bool first_block_lost);
void kr_msg_after(kr_tracker *t, const kr_message *m);
/* Whether pt is a whole CoAP message and which kind, without touching any tracker. */
bool kr_msg_peek(const uint8_t *pt, size_t len, kr_msg_kind *kind);
void kr_tracker_emit_finding(kr_tracker *t, kr_finding_code code, kr_dir dir, double ts, uint64_t off,
                             const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void kr_ota_finish(kr_tracker *t, double ts);
uint32_t kr_crc32(const uint8_t *data, size_t len);
void kr_tracker_clear_describe(kr_tracker *t);

#endif
