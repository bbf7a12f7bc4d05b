/* sparkcloud: what the lab cloud's files share. options.c reads the command line into sc_opt;
 * sparkcloud.c accepts connections (one process each); handshake.c runs the server side of the
 * handshake, faults.c the fault modes (captive portal, stall, held keys); session.c the session script
 * and the answers to the device; ota.c the firmware update, normal and fast. */
#ifndef SC_CLOUD_H
#define SC_CLOUD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "coap.h"
#include "frame.h"
#include "util.h"

#define SC_MAX_STEPS 16
#define SC_MAX_DEVKEYS 16
#define SC_CHUNK 256
#define SC_NONCE_LEN 40

enum sc_step_kind { S_DESCRIBE, S_CALL, S_READ, S_SIGNAL, S_OTA, S_EVENT };

typedef struct sc_step {
    enum sc_step_kind kind;
    char name[64];
    char arg[800];           /* a function argument may be longer than a device takes (frames up to 800) */
} sc_step;

typedef struct sc_options {
    char host[256], port[16];
    sw_keybuf server_key, sign_key, wrong_key;
    bool have_sign_key, have_wrong_key, no_hello;
    const char *server_key_path, *keys_dir;
    struct { char id[25]; sw_keybuf key; } devkeys[SC_MAX_DEVKEYS];
    size_t ndevkeys;
    enum { M_NORMAL, M_CAPTIVE, M_STALL } mode;
    unsigned long connections;   /* 0: serve until stopped */
    uint64_t time_limit_ms, id_timeout_ms, hello_timeout_ms, handshake_timeout_ms, reply_timeout_ms,
        ota_timeout_ms, session_ms, script_delay_ms;
    bool session_ms_set;
    sc_step steps[SC_MAX_STEPS];
    size_t nsteps;
    long ota_bad_chunk;
    bool ota_fast;               /* offer fast OTA (12-byte UpdateBegin, indexed chunks) */
    long ota_skip_chunk;         /* fast OTA: leave this chunk out of the first pass */
    bool ota_second_done;        /* fast OTA: after the missed chunks, send UpdateDone again (firmware 0.8 waits) */
    unsigned long refuse_events; /* answer the first N user events of a connection with ACK 4.00 */
    const char *session_log;
    uint8_t *ota_data;
    size_t ota_len;
} sc_options;

extern sc_options sc_opt;

typedef struct conn {
    int fd;
    int num;
    uint64_t accepted;
    sw_cipher cipher;
    uint8_t id[12];
    char id_hex[25];
    uint16_t next_id;       /* server message id counter */
    uint8_t token;          /* server token counter */
    uint16_t dev_id;        /* last device message id */
    char describe[1000];
    bool closed;
    const char *outcome;
    unsigned long refused;  /* user events answered with 4.00 */
    /* what the running step waits for */
    uint8_t want_token;
    uint16_t want_id;
    int got;                /* set by dispatch when the awaited answer arrived (SC_GOT_*) */
    int32_t fn_result;
    uint8_t missed[100];    /* fast OTA: the indexes of the last ChunkMissed (big-endian pairs) */
    size_t nmissed;
    bool device_done;       /* the device sent its own UpdateDone */
    uint8_t frame[2 + 65536];
    uint8_t plain[65536];
    size_t plain_len;
    uint8_t msg[2048];
} conn;

enum { SC_GOT_NONE, SC_GOT_OK, SC_GOT_REFUSED, SC_GOT_EMPTY_ACK, SC_GOT_MISSED, SC_GOT_DEVICE_DONE };

#define CLOG(c, ...) do { char _b[4096]; snprintf(_b, sizeof _b, __VA_ARGS__); sw_log("#%d %.4000s", (c)->num, _b); } while (0)

/* options.c */
int sc_parse_options(int argc, char **argv);   /* -1 go on, else the exit status */

/* handshake.c */
void sc_handle(conn *c);

/* faults.c */
bool sc_fault_before_nonce(conn *c);   /* true when a fault mode (captive portal) took the connection */
bool sc_fault_after_nonce(conn *c);    /* true when a fault mode (stall) took the connection */
const uint8_t *sc_device_key(const char *id_hex, size_t *len, char *path, size_t pcap);

/* session.c */
int sc_read_exact(conn *c, uint8_t *buf, size_t n, uint64_t deadline);
void sc_end(conn *c, const char *outcome, const char *why);
int sc_send(conn *c, const uint8_t *m, int len);
uint16_t sc_new_id(conn *c);
uint8_t sc_new_token(conn *c);
int sc_empty_ack(conn *c, uint16_t id, uint8_t code);
int sc_read_frame(conn *c, uint64_t deadline, size_t *len);
int sc_pump(conn *c, uint64_t deadline);
int sc_request(conn *c, uint8_t type, uint8_t code, const char *p1, const char *p2, const void *q1, size_t q1len,
               const void *payload, size_t plen, uint64_t timeout);
void sc_run_session(conn *c);

/* ota.c */
void sc_run_ota(conn *c);

#endif
