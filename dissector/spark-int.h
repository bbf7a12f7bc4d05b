/* sparkwire Wireshark plugin: what its files share. The per-packet records (file scope) of what the
 * tracker reported, the per-pass state, the field, subtree and expert ids, and the functions each file
 * offers the others. */
#ifndef SPARK_INT_H
#define SPARK_INT_H

#include <epan/packet.h>
#include <epan/conversation.h>
#include <epan/expert.h>
#include <epan/prefs.h>
#include <wsutil/wmem/wmem.h>

#include <keyring/keyring.h>

#include "compat.h"

/* ---- field, subtree and expert ids (spark-fields.c registers them) ---------------------------- */

typedef struct spark_hf_ids {
    int step;
    int direction;
    int pdu_index;
    int stream_offset;
    int pdu_first_frame;
    int pdu_completed_in;
    int continuation;
    int retransmitted;
    int gap;
    int device_id;
    int nonce;
    int nonce_ok;
    int id_block;
    int id_block_opened;
    int id_plain_len;
    int offered_key_known;
    int session_block;
    int session_e;
    int signature;
    int session_opened;
    int signature_valid;
    int signature_ok;
    int hs_result;
    int generation;
    int note;
    int frame_length;
    int frame_ciphertext;
    int frame_state;
    int data;
    int msg_kind;
    int msg_summary;
    int msg_index;
    int uri;
    int query;
    int event_name;
    int event_data;
    int event_ttl;
    int event_public;
    int function_name;
    int function_arg;
    int function_result;
    int variable_name;
    int variable_value;
    int variable_type;
    int time;
    int product_id;
    int product_version;
    int hello_flags;
    int platform_id;
    int ota_chunk_index;
    int ota_crc;
    int ota_crc_ok;
    int ota_chunk_size;
    int response_to;
    int response_in;
    int response_time;
    int answers;
    int verdict;
    int verdict_meaning;
    int verdict_evidence;
    int verdict_proven;
    int verdict_final;
    int verdict_candidate;
    int verdict_last_step;
    int finding;
    int finding_text;
    int close;
    int keyfile_error;
    int session_key;
    int session_iv;
    int session_salt;
    int released;
} spark_hf_ids;

typedef struct spark_ett_ids {
    gint top;
    gint step;
    gint session_block;
    gint msg;
    gint verdict;
    gint finding;
} spark_ett_ids;

typedef struct spark_ei_ids {
    expert_field verdict_ok;
    expert_field verdict_proven;
    expert_field verdict_inferred;
    expert_field verdict_not_spark;
    expert_field verdict_capture;
    expert_field not_opened;
    expert_field no_key;
    expert_field not_decrypted;
    expert_field partial;
    expert_field decrypt_error;
    expert_field not_spark;
    expert_field nonce_bad;
    expert_field signature_bad;
    expert_field finding_gap;
    expert_field finding_ota;
    expert_field finding_counter;
    expert_field finding_decrypt;
    expert_field gap;
    expert_field retransmitted;
    expert_field keyfile;
    expert_field closed;
    expert_field released;
    expert_field untracked;
} spark_ei_ids;

extern int proto_spark;
extern spark_hf_ids spark_hf;
extern spark_ett_ids spark_ett;
extern spark_ei_ids spark_ei;
extern const value_string spark_dir_vals[];
#define spark_frame_state_vals ((const value_string *)kr_frame_state_names)   /* keyring/names.h */

void spark_register_fields(void);

/* ---- per-connection records (file scope) ------------------------------------------------------- */

/* ---- per-connection state (file scope) -------------------------------------------------------- */

typedef enum spark_ev_type {
    SPARK_EV_STEP = 1,
    SPARK_EV_FINDING,
    SPARK_EV_VERDICT,
    SPARK_EV_CLOSE
} spark_ev_type;

/* What the plugin keeps of a kr_message / kr_step: the fields it shows, strings only when set ("" else).
 * A capture holds many of them, so they stay small: enums and three-state answers are kept in a byte each
 * (kr_tri in a signed one), lengths within a frame in 32 bits. */
typedef struct spark_msg_info {
    const char *uri, *query, *summary, *name, *arg, *value;
    double response_time;
    uint32_t index;
    uint32_t ttl;
    uint32_t unix_time;
    uint32_t chunk_crc;
    uint32_t chunk_size;
    int chunk_index;
    int answers;
    int platform_id;
    uint16_t product_id, product_version;
    uint8_t hello_flags;
    guint8 dir;                   /* kr_dir */
    guint8 kind;                  /* kr_msg_kind */
    guint8 answers_kind;          /* kr_msg_kind */
    guint8 var_type;              /* kr_var_type */
    gint8 chunk_crc_ok;           /* kr_tri */
    bool event_public;
} spark_msg_info;

typedef struct spark_step_info {
    uint64_t offset;
    const char *note;
    uint32_t length;
    uint32_t index;
    uint32_t id_plain_len;
    uint32_t plaintext_len;
    uint32_t plaintext_skip;
    guint8 kind;                  /* kr_step_kind */
    guint8 dir;                   /* kr_dir */
    guint8 hs_result;             /* kr_hs_result */
    guint8 frame_state;           /* kr_frame_state */
    guint8 reason;                /* kr_step_reason: why it was not opened / decrypted */
    gint8 id_block_opened;        /* kr_tri, as the four below */
    gint8 nonce_ok;
    gint8 offered_key_known;
    gint8 session_opened;
    gint8 signature_valid;
    gint8 signature_ok;
    bool device_id_known;         /* this step revealed the device id (then it is the record's conn_id) */
    bool session_known;
} spark_step_info;

typedef struct spark_msg_rec {
    spark_msg_info m;
    guint32 frame;
    guint32 response_in;          /* frame of the answer (request side), 0 when none seen */
    guint32 request_frame;        /* frame of the request this answers, 0 none */
} spark_msg_rec;

typedef struct spark_step_rec {
    spark_step_info s;
    guint8 *bytes;                /* the PDU, kept only when it is not whole in this frame (in_packet < 0) */
    guint8 *plaintext;
    guint8 *session;              /* session material (KR_SESSION_LEN) a session block revealed, or NULL */
    spark_msg_rec *msg;
    const char *conn_id;          /* (the connection's copy: see spark_conv.id) */
    gint in_packet;               /* offset of the PDU in this frame's TCP payload, -1 when it spans segments */
    guint32 first_frame;          /* frame holding the PDU's first byte */
    int generation;
    gboolean conn_id_known;       /* the connection's device id, known when this step completed */
} spark_step_rec;

typedef struct spark_verdict_rec {
    kr_verdict v;
    gboolean id_known;            /* the connection's device id when the verdict was given */
    const char *id;
    int generation;
} spark_verdict_rec;

typedef struct spark_close_rec {
    kr_dir by;
    gboolean rst;
    const char *text;             /* other TCP events (refused, an RST ignored): the layer's words */
} spark_close_rec;

typedef struct spark_ev {
    spark_ev_type type;
    union {
        spark_step_rec *step;
        kr_finding *finding;
        spark_verdict_rec *verdict;
        spark_close_rec *close;
    } u;
} spark_ev;

struct spark_conv;

/* What only some frames note (a keyfile error, the connection cap, missing or repeated bytes, bytes of a
 * PDU completed later): apart from the record, made for the frame that first needs it. */
typedef struct spark_frame_rare {
    guint64 gap;                  /* bytes missing before this frame's bytes */
    guint64 range_start;          /* stream offsets of the bytes it gave the tracker (while some of */
    guint64 range_end;            /* them belong to a PDU not yet complete) */
    const char *keyfile_error;    /* shown on the first frame of a connection */
    guint32 retransmitted;        /* bytes already seen, dropped */
    guint32 completed_in;         /* the bytes continue a PDU completed in that frame (0 unknown) */
    guint32 released;             /* connections without protocol data the table ended to make room here */
    guint32 cap;                  /* spark.max_conns when it did */
    gboolean untracked;           /* this frame's new connection was not followed: the table was full of
                                     connections carrying protocol data (spark.max_conns) */
} spark_frame_rare;

/* Everything one frame showed on the first pass: one for every frame that gave the tracker bytes, so the
 * fields of most frames only (the rest in rare). */
typedef struct spark_frame_rec {
    const struct spark_conv *conv;
    spark_ev *events;             /* in the order the tracker reported them (file scope); NULL: none */
    spark_ev first;               /* events[0] while the frame has only one (most have one at most) */
    spark_frame_rare *rare;       /* NULL: nothing of it */
    guint32 frame;
    guint32 n_events, cap_events;
    guint32 fed;                  /* new stream bytes this frame gave the tracker */
} spark_frame_rec;

/* Touched for every frame of the connection, so kept small, the fields of every frame first. */
typedef struct spark_conv {
    guint32 last_frame;           /* the last frame of this connection the layer reported on (0: none) */
    gboolean bound;               /* callbacks go to last_frame (rec_cur makes its record on need) */
    spark_frame_rec *last_rec;    /* its record, NULL until something is kept for it */
    kr_tracker *tracker;          /* the connection layer's, NULL once the connection ended */
    /* the bytes being fed */
    gboolean chunk_active;
    kr_dir chunk_dir;
    guint64 chunk_start;
    const guint8 *chunk;
    guint32 chunk_len;
    gint chunk_tvb_offset;
    gboolean step_in_chunk;
    guint64 stream_pos[2];        /* bytes of each direction given to the tracker, gaps included */
    guint64 last_step_end[2];
    spark_frame_rec **pending[2]; /* frames waiting for the PDU their bytes start (file scope) */
    guint n_pending[2], cap_pending[2];
    spark_msg_rec **messages;     /* by message index (file scope); NULL where none was kept */
    guint32 n_messages, cap_messages;
    const char *id;               /* the device id last seen (file scope), shared by the records */
    char id_hex[KR_DEVICE_ID_HEX_LEN + 1]; /* the same, here: compared without reading the copy */
} spark_conv;

/* ---- per-pass state (packet scope) ------------------------------------------------------------- */

typedef struct spark_pass {
    proto_tree *top;              /* the tree Spark hangs in (the decrypted CoAP goes there too) */
    proto_tree *tree;             /* the Spark subtree of this frame in this pass */
    proto_item *root;
    guint rendered;               /* events of the frame record already shown in this pass */
    gboolean info_started;
    gboolean name_spark;          /* this showing started the Info column: the Protocol column says Spark */
    gboolean header_done;         /* gap, retransmission and segment notes shown */
    gboolean main_ran;            /* the TCP payload went through dissect_spark in this pass */
    gboolean id_shown;            /* spark.device_id is in the tree (once per packet) */
    gboolean coap_layer;          /* decrypted CoAP was handed on as a layer of its own */
} spark_pass;

/* spark-keys.c: the keys and the plugin's preferences */
extern kr_keyfile *spark_keys;
extern char *spark_keys_error;
extern spark_pref_bool pref_heuristic_strict;
extern spark_pref_bool pref_show_session_key;
extern guint pref_max_conns;
void spark_export_session(const char *device_id_hex, const uint8_t *session, const uint8_t *hint);
void spark_export_close(void);
void spark_keys_load(void);
void spark_keys_cleanup(void);
void spark_keys_unload(void);
void spark_register_prefs(void);

/* spark-record.c: the first pass keeps what the tracker reports against the frame that completed it */
extern const kr_callbacks spark_callbacks;
/* The frame's record (NULL: the frame belongs to no followed connection, or is a bare acknowledgement the
 * layer reported nothing on; rec_is_empty: it brought nothing) */
const spark_frame_rec *rec_get(packet_info *pinfo);
gboolean rec_is_empty(const spark_frame_rec *rec);
/* The frame belongs to a followed connection (its record stays the shared empty one until rec_of_num). */
void rec_mark(guint32 num);
/* The frame's own record, made (without a connection) when it has none. */
spark_frame_rec *rec_of_num(guint32 num);
/* rec's rare part, made (zeroed) on need */
SPARK_RARE spark_frame_rare *rec_rare(spark_frame_rec *rec);
/* The record the connection's callbacks go to now (made on need), NULL when it is bound to no frame. */
spark_frame_rec *rec_cur(spark_conv *conv);
void rec_add(spark_frame_rec *rec, spark_ev_type type, void *p);
/* rec's bytes of dir start a PDU not complete yet */
void rec_pend(spark_conv *conv, kr_dir dir, spark_frame_rec *rec);
guint rec_count(const spark_frame_rec *rec);
void rec_store_reset(void);

/* spark-render.c: every pass shows the records */
spark_pass *pass_get(packet_info *pinfo);
void render_rec(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, spark_pass *pass, const spark_frame_rec *rec);
void spark_render_handoff(void);

/* spark-stats.c: statistics per device; render_rec tells it what each packet showed */
typedef struct spark_tap_info {
    const struct spark_conv *conv;
    const char *device_id;        /* NULL while the connection's device id is not known */
    guint32 bytes;                /* Spark PDU bytes completed in this packet */
    guint32 messages;             /* decrypted messages */
    int final_verdict;            /* kr_verdict_code of a final verdict shown here, -1 none */
} spark_tap_info;
void spark_register_stats(void);
void spark_stats_end(void);          /* at shutdown: the tables go */
void spark_stats_queue(packet_info *pinfo, const spark_tap_info *ti);

/* spark-follow.c: Follow > Spark Stream */
void spark_register_follow(void);
void spark_follow_queue(packet_info *pinfo, tvbuff_t *plaintext);
/* first pass: the frame's TCP connection is followed from here on (its first frame); the frame was handled */
void spark_follow_mark(packet_info *pinfo);
void spark_follow_seen(packet_info *pinfo);

#endif
