/* sparkwire firmware: the device side of the Spark Core protocol (docs/protocol.md 2-4).
 *
 * Portable C11, no OS calls, no heap: everything lives in one sw_device the application owns. The
 * application configures it, registers functions, variables and subscriptions, then calls
 * sw_device_start() once the TCP connection is up and sw_device_poll() often (every few milliseconds)
 * until it returns something other than SW_RUNNING. */
#ifndef SW_DEVICE_H
#define SW_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "hal.h"

#define SW_DEVICE_ID_LEN 12
#define SW_NONCE_LEN 40
#define SW_ID_BLOCK_LEN 256
#define SW_SESSION_BLOCK_LEN 384
#define SW_MAX_FRAME 640           /* Core receive buffer: longer frames drop the connection */
#define SW_MAX_FRAME_PHOTON 800    /* Photon and P1 (platform 6, 8) receive buffer, docs/protocol.md 2.5 */
#define SW_MAX_NAME 12             /* function and variable names */
#define SW_MAX_EVENT_NAME 63
#define SW_MAX_EVENT_DATA 255
#define SW_MAX_ARG 63
#define SW_MAX_FUNCTIONS 4
#define SW_MAX_VARIABLES 10
#define SW_MAX_SUBSCRIPTIONS 4
#define SW_MAX_PRIVATE_KEY 1216
#define SW_MAX_PUBLIC_KEY 400
#define SW_DEVICE_SPKI_LEN 162

/* Results of sw_device_poll(); negative values end the connection. The handshake codes follow the G2
 * numbering of docs/protocol.md 2.5 where one exists. */
typedef enum sw_status {
    SW_RUNNING = 0,
    SW_FINISHED = 1,              /* the application asked to stop (sw_device_stop) */
    SW_UPDATE_APPLIED = 2,        /* OTA done: the device would now reset */
    SW_ERR_IO = -1,               /* send failed or the peer closed */
    SW_ERR_TIMEOUT = -2,          /* a handshake read did not complete within io_timeout_ms */
    SW_ERR_SERVER_KEY = -3,       /* the server public key cannot encrypt the id block */
    SW_ERR_DECRYPTION = -6,       /* E does not decrypt with the device private key */
    SW_ERR_AUTHENTICATION = -8,   /* SIG does not verify with the server public key */
    SW_ERR_MESSAGE_TIMEOUT = -9,  /* G2: no server Hello within hello_timeout_ms */
    SW_ERR_FRAME_TOO_LARGE = -10, /* a frame longer than the platform's buffer (SW_MAX_FRAME, _PHOTON) */
    SW_ERR_BAD_FRAME = -11,       /* a length not a multiple of 16, or a frame that does not decrypt */
    SW_ERR_PING_TIMEOUT = -12,    /* nothing received within ping_timeout_ms after a ping */
    SW_ERR_CONFIG = -13,          /* missing key or id */
    SW_ERR_REFUSED = -14,         /* G2: the cloud answered a device message with ACK 4.00 (docs/protocol.md 4.2) */
} sw_status;

/* Handshake steps, for stop_after (stay silent once this step is done) and for reporting. */
typedef enum sw_step {
    SW_STEP_NONE = 0,
    SW_STEP_NONCE,          /* nonce received */
    SW_STEP_ID_BLOCK,       /* id block sent */
    SW_STEP_SESSION_BLOCK,  /* session block received and checked */
    SW_STEP_HELLO,          /* device Hello sent */
    SW_STEP_CONNECTED,      /* session running */
} sw_step;

typedef enum sw_var_type {
    SW_VAR_BOOL = 1,
    SW_VAR_INT = 2,
    SW_VAR_STRING = 4,
    SW_VAR_DOUBLE = 9,
} sw_var_type;

/* What the core reports to the application (sw_device_config.notify). name and value depend on it. */
typedef enum sw_note {
    SW_NOTE_STEP,            /* value = sw_step reached */
    SW_NOTE_HANDSHAKE_FAILED,/* value = sw_status */
    SW_NOTE_SERVER_HELLO,
    SW_NOTE_DESCRIBE,
    SW_NOTE_FUNCTION,        /* name = function, value = result */
    SW_NOTE_VARIABLE,        /* name = variable */
    SW_NOTE_UNKNOWN_NAME,    /* name = unknown function or variable asked for */
    SW_NOTE_TIME,            /* value = unix time */
    SW_NOTE_EVENT_SENT,      /* name = event name */
    SW_NOTE_EVENT_RECEIVED,  /* name = event name */
    SW_NOTE_SIGNAL,          /* value = 1 start, 0 stop */
    SW_NOTE_PING_SENT,
    SW_NOTE_PING_ANSWERED,
    SW_NOTE_SERVER_PING,
    SW_NOTE_UPDATE_BEGIN,
    SW_NOTE_CHUNK,           /* value = chunk index, name = "ok" or "bad-crc" */
    SW_NOTE_UPDATE_DONE,     /* value = bytes received */
    SW_NOTE_IGNORED,         /* name = what, a message the device ignores */
    SW_NOTE_FRAME_ERROR,     /* name = what */
    SW_NOTE_REFUSED,         /* value = message id the cloud answered with ACK 4.00 */
} sw_note;

typedef int (*sw_function_fn)(void *user, const char *arg);
typedef void (*sw_event_fn)(void *user, const char *name, const uint8_t *data, size_t len);

typedef struct sw_device_config {
    uint8_t device_id[SW_DEVICE_ID_LEN];
    const uint8_t *private_key;      /* PKCS#1 DER, RSA 1024 */
    size_t private_key_len;
    const uint8_t *server_key;       /* SubjectPublicKeyInfo DER, RSA 2048 */
    size_t server_key_len;
    int generation;                  /* 1: 52-byte id block, 13-byte Hello, no wait for the server Hello,
                                        keeps the socket after a failed handshake; 2: 214 bytes, 15 bytes,
                                        waits for the server Hello, closes 250 ms after a failure, drops
                                        the connection on an ACK 4.00; 3 (firmware 0.8 and later): as 2,
                                        but the message-id start read little-endian, first token 0x01,
                                        Signal ACK with its own next id, 4 s Hello wait, ACK 4.00 ignored,
                                        fast OTA without chunk confirmations (docs/protocol.md 2.4, 4.2, 4.11) */
    uint16_t product_id, product_version, platform_id;
    uint8_t hello_flags;
    uint32_t io_timeout_ms;          /* 20000 */
    uint32_t hello_timeout_ms;       /* 2000 (G2) */
    uint32_t fail_close_ms;          /* 250 (G2) */
    uint32_t ping_idle_ms;           /* 15000 */
    uint32_t ping_timeout_ms;        /* 10000 */
    uint32_t chunk_timeout_ms;       /* 3000: ChunkMissed during an update */
    sw_step stop_after;              /* fault: go silent after this step (SW_STEP_NONE: never) */
    bool hold_on_fail;               /* keep the socket after a failed handshake (G1 default) */
    uint32_t corrupt_frame;          /* fault: spoil the n-th session frame sent (1 = Hello) so it does not decrypt */
    uint32_t ota_stall_after;        /* fault: go silent after this many chunks (0: never) */
    bool send_time_request;          /* ask for the time once connected */
    bool fast_ota;                   /* accept fast OTA when the cloud offers it (G2, G3) */
    uint8_t describe_twice;          /* G2 firmware 0.4.0-0.6.0 answer a Describe twice (docs/protocol.md 4.5):
                                        4 (0.4-0.5) both parts then the application part, 6 (0.6.0) the
                                        system part then the application part; 0: one answer */
    void (*notify)(void *user, sw_note note, const char *name, long value);
    /* OTA storage: called with each good chunk (offset in the image) and at UpdateDone. */
    void (*ota_write)(void *user, uint32_t offset, const uint8_t *data, size_t len);
    void *user;
} sw_device_config;

typedef struct sw_function {
    char name[SW_MAX_NAME + 1];
    sw_function_fn fn;
    void *user;
} sw_function;

typedef struct sw_variable {
    char name[SW_MAX_NAME + 1];
    sw_var_type type;
    const void *value;      /* bool*, int32_t*, double*, or a NUL-terminated string */
} sw_variable;

typedef struct sw_subscription {
    char prefix[SW_MAX_EVENT_NAME + 1];
    sw_event_fn fn;
    void *user;
    bool my_devices;
} sw_subscription;

typedef struct sw_device {
    sw_device_config cfg;
    sw_hal hal;
    sw_step step;
    int state;
    sw_status result;
    uint32_t deadline;
    uint8_t nonce[SW_NONCE_LEN];
    uint8_t material[SW_SESSION_LEN];
    sw_cipher cipher;
    uint16_t msg_id;
    uint8_t token;
    uint32_t frames_sent;
    uint32_t last_rx;
    uint32_t ping_sent_at;
    bool ping_pending;
    bool server_hello;
    bool time_requested;
    size_t rx_len;
    uint8_t rx[2 + SW_MAX_FRAME_PHOTON > SW_SESSION_BLOCK_LEN ? 2 + SW_MAX_FRAME_PHOTON : SW_SESSION_BLOCK_LEN];
    uint8_t plain[SW_MAX_FRAME_PHOTON];
    uint8_t msg[SW_MAX_FRAME_PHOTON];
    uint8_t tx[2 + SW_MAX_FRAME_PHOTON];
    uint8_t scratch[SW_MAX_PUBLIC_KEY];
    /* publish rate limit: times of the last 4 publishes */
    uint32_t publish_times[4];
    unsigned publish_count;
    /* OTA */
    bool ota_active;
    uint32_t ota_chunks;
    uint32_t ota_bytes;
    uint32_t ota_last_chunk;
    uint32_t ota_offset;
    bool ota_silent;
    bool ota_received_any;
    uint32_t ota_seen;
    bool ota_fast;          /* fast OTA accepted: chunks carry their index */
    bool ota_resending;     /* UpdateDone refused, missed chunks asked for */
    uint16_t ota_chunk_size;
    uint32_t ota_file_size;
    uint8_t ota_have[32];   /* fast OTA: chunks received (the first 256) */
    bool stop_requested;
    size_t nfunctions, nvariables, nsubscriptions;
    sw_function functions[SW_MAX_FUNCTIONS];
    sw_variable variables[SW_MAX_VARIABLES];
    sw_subscription subscriptions[SW_MAX_SUBSCRIPTIONS];
} sw_device;

/* Fills cfg with the defaults of a generation (timers of docs/protocol.md 2.5). */
void sw_device_defaults(sw_device_config *cfg, int generation);
void sw_device_init(sw_device *d, const sw_device_config *cfg, const sw_hal *hal);

/* Registration (before or after connecting). 0, or -1 when full or the name is too long/empty. */
int sw_device_function(sw_device *d, const char *name, sw_function_fn fn, void *user);
int sw_device_variable(sw_device *d, const char *name, sw_var_type type, const void *value);
int sw_device_subscribe(sw_device *d, const char *prefix, bool my_devices, sw_event_fn fn, void *user);

/* Starts the handshake on a freshly connected transport. */
void sw_device_start(sw_device *d);
sw_status sw_device_poll(sw_device *d);
/* Ends the connection at the application's request: the next poll returns SW_FINISHED. */
void sw_device_stop(sw_device *d);
bool sw_device_connected(const sw_device *d);

/* Publishes an event (NON POST /e or /E). ttl 60 is the default and sends no Max-Age. Returns 0, or -1
 * when not connected, the name or data is too long, or the rate limit (4 per second) refuses it. */
int sw_device_publish(sw_device *d, const char *name, const uint8_t *data, size_t len, uint32_t ttl,
                      bool is_private);
int sw_device_request_time(sw_device *d);

const char *sw_status_text(sw_status s);
const char *sw_step_name(sw_step s);

/* Exposed for tests: the message builders the session uses (plaintext CoAP into out; length or -1). */
int sw_build_hello(const sw_device_config *cfg, uint16_t id, uint8_t *out, size_t cap);
int sw_build_event(uint16_t id, const char *name, const uint8_t *data, size_t len, uint32_t ttl,
                   bool is_private, uint8_t *out, size_t cap);
/* Describe selection (docs/protocol.md 4.5): G2 and later read it from a one-byte option after "d". */
#define SW_DESCRIBE_SYSTEM 1
#define SW_DESCRIBE_APPLICATION 2
int sw_build_describe(const sw_device *d, uint16_t id, const uint8_t *token, uint8_t tkl, uint8_t flags,
                      uint8_t *out, size_t cap);
/* Session setup from material (as after a successful handshake); used by the handshake and by tests. */
void sw_device_install_session(sw_device *d, const uint8_t material[SW_SESSION_LEN]);
/* Processes one received frame body (after the 2-byte length). */
sw_status sw_device_handle_frame(sw_device *d, const uint8_t *ct, size_t len);

#endif
