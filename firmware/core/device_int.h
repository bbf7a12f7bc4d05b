/* sparkwire firmware: what device.c, messages.c and ota.c share inside the core. */
#ifndef SW_DEVICE_INT_H
#define SW_DEVICE_INT_H

#include "coap.h"
#include "device.h"

enum {
    ST_IDLE,
    ST_NONCE,         /* reading the 40-byte nonce */
    ST_SESSION_BLOCK, /* reading the 384-byte session block */
    ST_WAIT_HELLO,    /* G2/G3: Hello sent, waiting for the server's */
    ST_CONNECTED,
    ST_SILENT,        /* fault: stopped after a step, reads and discards */
    ST_FAILING,       /* G2/G3: handshake failed, closing after fail_close_ms */
    ST_HELD,          /* G1: handshake failed, socket kept open */
    ST_DONE,
};

uint32_t sw_dev_now(sw_device *d);
void sw_dev_note(sw_device *d, sw_note n, const char *name, long value);
size_t sw_dev_strlen(const char *s, size_t max);
uint16_t sw_dev_next_id(sw_device *d);
/* Seals len bytes of msg and sends the frame (len < 0: a builder failed). */
sw_status sw_dev_send(sw_device *d, const uint8_t *msg, int len);
sw_status sw_dev_empty_ack(sw_device *d, uint16_t id);
/* ACK or NON response with a code, the request's token and an optional payload. */
sw_status sw_dev_respond(sw_device *d, uint8_t type, uint8_t code, uint16_t id, const sw_coap_msg *req,
                         const void *payload, size_t len);

/* ota.c: the update requests, and the ChunkMissed timer of a normal update */
sw_status sw_ota_begin(sw_device *d, const sw_coap_msg *m);
sw_status sw_ota_chunk(sw_device *d, const sw_coap_msg *m);
sw_status sw_ota_done(sw_device *d, const sw_coap_msg *m);
sw_status sw_ota_timer(sw_device *d, uint32_t t);

/* requests.c: the cloud's requests (a parsed CoAP message each) */
sw_status sw_req_describe(sw_device *d, const sw_coap_msg *m);
sw_status sw_req_function(sw_device *d, const sw_coap_msg *m);
sw_status sw_req_variable(sw_device *d, const sw_coap_msg *m);
sw_status sw_req_event(sw_device *d, const sw_coap_msg *m);

#endif
