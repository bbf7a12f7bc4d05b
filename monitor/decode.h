/* cloudmon: link, IP and TCP header parsing. Pure functions over captured bytes, no state. */
#ifndef CLOUDMON_DECODE_H
#define CLOUDMON_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* TCP flag bits as in the header. */
#define CM_TCP_FIN 0x01
#define CM_TCP_SYN 0x02
#define CM_TCP_RST 0x04
#define CM_TCP_PSH 0x08
#define CM_TCP_ACK 0x10

typedef struct cm_addr {
    uint8_t family;          /* 4 or 6 */
    uint8_t ip[16];          /* IPv4 in the first 4 bytes */
    uint16_t port;
} cm_addr;

typedef struct cm_pkt {
    cm_addr src, dst;
    uint32_t seq, ack;
    uint8_t flags;
    const uint8_t *payload;  /* captured payload bytes (may be fewer than payload_wire_len) */
    size_t payload_len;
    size_t payload_wire_len; /* payload length as the IP header says (snaplen may cut it) */
} cm_pkt;

typedef enum cm_dec_result {
    CM_DEC_TCP = 0,          /* a TCP segment: out is filled */
    CM_DEC_OTHER,            /* a packet of another kind (ARP, UDP, ICMP...): ignored */
    CM_DEC_FRAGMENT,         /* an IP fragment: not reassembled, ignored */
    CM_DEC_SHORT             /* headers cut short by the capture length or malformed */
} cm_dec_result;

/* True for the link types cloudmon decodes: Ethernet (802.1Q/802.1ad tags), Linux cooked v1 and v2,
 * BSD loopback (NULL and LOOP), raw IP (DLT_RAW, IPv4, IPv6). */
bool cm_linktype_supported(int dlt);

cm_dec_result cm_decode(int dlt, const uint8_t *data, size_t caplen, cm_pkt *out);

/* "1.2.3.4:5683" or "[::1]:5683" into out (at least 64 bytes). */
char *cm_addr_str(const cm_addr *a, char *out, size_t cap);
/* The address without the port. */
char *cm_ip_str(const cm_addr *a, char *out, size_t cap);
bool cm_addr_equal(const cm_addr *a, const cm_addr *b);

#endif
