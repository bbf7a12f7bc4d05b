/* sparkwire firmware: the CoAP subset the protocol uses (RFC 7252 header, docs/protocol.md 4.1). */
#ifndef SW_COAP_H
#define SW_COAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SW_COAP_CON 0
#define SW_COAP_NON 1
#define SW_COAP_ACK 2
#define SW_COAP_RST 3

#define SW_COAP_EMPTY 0x00
#define SW_COAP_GET 0x01
#define SW_COAP_POST 0x02
#define SW_COAP_PUT 0x03
#define SW_COAP_CHANGED 0x44
#define SW_COAP_CONTENT 0x45
#define SW_COAP_BAD_REQUEST 0x80

#define SW_OPT_URI_PATH 11
#define SW_OPT_MAX_AGE 14
#define SW_OPT_URI_QUERY 15

#define SW_COAP_MAX_OPTS 16

typedef struct sw_coap_opt {
    uint16_t number;
    uint16_t len;
    const uint8_t *value;
} sw_coap_opt;

typedef struct sw_coap_msg {
    uint8_t type;
    uint8_t code;
    uint16_t id;
    uint8_t tkl;
    uint8_t token[8];
    size_t nopts;
    sw_coap_opt opts[SW_COAP_MAX_OPTS];
    const uint8_t *payload;   /* NULL when there is no payload marker */
    size_t payload_len;
} sw_coap_msg;

/* Parses one message. Returns 0, or -1 for anything malformed: version other than 1, TKL > 8, truncated
 * token or option, option nibble 15 outside the payload marker, payload marker with no payload, more than
 * SW_COAP_MAX_OPTS options, option number above 65535. The message points into buf. */
int sw_coap_parse(const uint8_t *buf, size_t len, sw_coap_msg *m);

/* The n-th option with this number (0-based), or NULL. */
const sw_coap_opt *sw_coap_find(const sw_coap_msg *m, uint16_t number, size_t n);
/* The first letter of the first Uri-Path, or 0 when there is none or it is empty. */
char sw_coap_path_letter(const sw_coap_msg *m);

/* A builder writing one message into a caller's buffer; any overflow sets failed and is reported by
 * sw_coap_end. Options must be added in ascending number order. */
typedef struct sw_coap_builder {
    uint8_t *buf;
    size_t cap;
    size_t len;
    uint16_t last_opt;
    bool failed;
} sw_coap_builder;

void sw_coap_begin(sw_coap_builder *b, uint8_t *buf, size_t cap, uint8_t type, uint8_t code, uint16_t id,
                   const uint8_t *token, uint8_t tkl);
void sw_coap_add_option(sw_coap_builder *b, uint16_t number, const void *value, size_t len);
void sw_coap_add_payload(sw_coap_builder *b, const void *data, size_t len);
/* Message length, or -1 after an overflow or a bad option order. */
int sw_coap_end(const sw_coap_builder *b);

#endif
