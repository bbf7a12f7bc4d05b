/* sparkwire libkeyring: tracker internals shared by the tracker's source files. */
#ifndef KEYRING_TRACKER_INT_H
#define KEYRING_TRACKER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "keyring/tracker.h"
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
#define KR_REQ_RING       16     /* requests remembered per direction for response matching */

typedef struct kr_dirstate {
    enum kr_pst st;
    uint8_t *buf;          /* current PDU (or resync window); grown lazily */
    size_t cap, have;
    size_t scan_from;      /* resync: positions before this are known not to start a frame chain */
    uint64_t offset;       /* stream offset of the next byte */
    uint64_t pdu_offset;   /* stream offset of buf[0] */
    double pdu_first_time;
    bool damaged;          /* the PDU in buf has bytes lost in a gap (zero filled) */
    bool sniffed;          /* first bytes of the stream checked */
    bool started_at_zero;  /* the stream is seen from its first byte */
    bool gapped;           /* bytes of this direction were lost in a gap */
    kr_cipher *cipher;
    uint8_t last_c1[16];   /* first ciphertext block of the last frame: the next frame's IV */
    bool have_c1;
    uint8_t *pt;           /* plaintext scratch */
    size_t pt_cap;
    uint32_t frames;       /* frames seen */
    uint32_t frames_ok;    /* frames decrypted (fully or partly) */
    uint32_t frames_bad;   /* frames that should decrypt but did not */
    bool first_frame_done; /* "hello" step given (or not applicable) */
    bool closed, rst;
    double close_time;
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
    bool idblock_damaged, sessionblock_damaged;
    double idblock_split;      /* seconds between the id block's first and last byte */
    kr_tri id_block_opened;
    kr_hs_result id_result;
    size_t id_plain_len;
    kr_tri nonce_ok;
    kr_tri offered_key_known;
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
    /* session lines to try on the first frame when several fit */
    size_t n_session_cands;
    const uint8_t *session_cands[16];
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
    kr_ota ota;

    /* findings found while reading a message, given after its callback */
    struct { kr_finding_code code; char text[512]; } pend[4];
    int n_pend;
    bool ota_reported;

    uint32_t findings;
    kr_verdict verdict;        /* last emitted */
    bool verdict_emitted;
    kr_conn_info info;
};

/* message.c */
void kr_msg_interpret(kr_tracker *t, kr_message *m, kr_dir dir, double ts, uint64_t frame_offset,
                      const uint8_t *pt, size_t len, bool first_block_lost);
void kr_msg_after(kr_tracker *t, const kr_message *m);
void kr_tracker_emit_finding(kr_tracker *t, kr_finding_code code, kr_dir dir, double ts, uint64_t off,
                             const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void kr_ota_finish(kr_tracker *t, double ts);
uint32_t kr_crc32(const uint8_t *data, size_t len);
void kr_tracker_clear_describe(kr_tracker *t);

#endif
