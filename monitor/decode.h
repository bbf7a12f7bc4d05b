/* cloudmon: link, IP and TCP header parsing. Pure functions over captured bytes, no state. */
#ifndef CLOUDMON_DECODE_H
#define CLOUDMON_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "keyring/conn.h"

/* TCP flag bits as in the header. */
#define CM_TCP_FIN 0x01
#define CM_TCP_SYN 0x02
#define CM_TCP_RST 0x04
#define CM_TCP_PSH 0x08
#define CM_TCP_ACK 0x10

/* An address and port as libkeyring's connection layer takes it (family 4 or 6, IPv4 in the first 4 bytes). */
typedef kr_endpoint cm_addr;

/* Whether the TCP checksum was verified. Unknown when the segment is not all there (cut by the snapshot
 * length, or a bogus IP length) or the field holds what checksum offload leaves (0, or the bare
 * pseudo-header sum of a packet captured on its way out before the card filled it in). */
typedef enum cm_csum { CM_CSUM_UNKNOWN = 0, CM_CSUM_OK, CM_CSUM_BAD } cm_csum;

/* An IP fragment (cm_decode returned CM_DEC_FRAGMENT): what reassembly needs. The addresses are in
 * cm_pkt's src and dst (ports 0). */
typedef struct cm_ipfrag {
    uint32_t id;             /* IPv4 identification, or the IPv6 fragment header's */
    uint8_t proto;           /* protocol of the datagram (IPv6: next header after the fragment header) */
    bool more;               /* more fragments follow */
    bool cut;                /* the snapshot length cut this fragment's data */
    size_t offset;           /* byte offset of data in the datagram's payload */
    const uint8_t *hdr;      /* IPv4: the header of this fragment (hdr_len bytes); IPv6: NULL */
    size_t hdr_len;
    const uint8_t *data;     /* the fragment's data as captured */
    size_t len;              /* its length on the wire (data holds fewer when cut) */
} cm_ipfrag;

typedef struct cm_pkt {     /* every field before frag is zeroed by name in decode.c's pkt_clear: add new ones there */
    cm_addr src, dst;
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t window;         /* as in the header (unscaled) */
    int8_t wscale;           /* a SYN's window scale option (kr_tcp_wscale), -1 none */
    const uint8_t *payload;  /* captured payload bytes (may be fewer than payload_wire_len) */
    size_t payload_len;
    size_t payload_wire_len; /* payload bytes that were on the wire: payload_len plus what the snapshot
                                length cut (never more than the frame's own length allows) */
    size_t claimed_len;      /* payload length the IP header claims */
    bool cut;                /* the snapshot length cut the segment: payload_wire_len > payload_len */
    bool bogus_len;          /* the IP header claims more than the frame held on the wire: a lie, not a
                                loss (claimed_len > payload_wire_len) */
    const uint8_t *csum_seg; /* the whole TCP segment, for cm_pkt_csum (NULL when not all there) */
    size_t csum_len;
    bool reassembled;        /* rebuilt from IP fragments */
    unsigned vlan_tags;      /* 802.1Q / 802.1ad tags in front of the IP header */
    cm_ipfrag frag;          /* set for CM_DEC_FRAGMENT */
} cm_pkt;

typedef enum cm_dec_result {
    CM_DEC_TCP = 0,          /* a TCP segment: out is filled */
    CM_DEC_OTHER,            /* a packet of another kind (ARP, UDP, ICMP...): ignored */
    CM_DEC_FRAGMENT,         /* an IP fragment of a TCP datagram: out->frag is filled (frag.h reassembles) */
    CM_DEC_SHORT             /* headers cut short by the capture length or malformed */
} cm_dec_result;

/* True for the link types cloudmon decodes: Ethernet (802.1Q/802.1ad tags), Linux cooked v1 and v2,
 * BSD loopback (NULL and LOOP), raw IP (DLT_RAW, IPv4, IPv6). */
bool cm_linktype_supported(int dlt);

/* Decodes a frame of caplen captured bytes that was wire_len bytes long on the wire (its pcap header's
 * len): bytes the snapshot length cut are missing, an IP length beyond the frame is bogus. */
cm_dec_result cm_decode_frame(int dlt, const uint8_t *data, size_t caplen, size_t wire_len, cm_pkt *out);
/* The same when the frame's wire length is not known: an IP length beyond caplen counts as cut. */
cm_dec_result cm_decode(int dlt, const uint8_t *data, size_t caplen, cm_pkt *out);
/* An IPv4 or IPv6 packet that is whole (a reassembled datagram). */
cm_dec_result cm_decode_ip(const uint8_t *ip, size_t len, cm_pkt *out);

/* The TCP checksum of a decoded segment, worked out when asked (cloudmon leaves it unknown, as Wireshark
 * does by default, so reading a capture does not pay for it). */
cm_csum cm_pkt_csum(const cm_pkt *p);

/* The Internet checksum's running sum (RFC 1071) over len bytes, added to sum; cm_inet_fold ends it. */
uint32_t cm_inet_sum(const uint8_t *p, size_t len, uint32_t sum);
uint16_t cm_inet_fold(uint32_t sum);

/* "1.2.3.4:5683" or "[::1]:5683" into out (at least 64 bytes). */
char *cm_addr_str(const cm_addr *a, char *out, size_t cap);
/* The address without the port. */
char *cm_ip_str(const cm_addr *a, char *out, size_t cap);
bool cm_addr_equal(const cm_addr *a, const cm_addr *b);

#endif
