/* cloudmon: link, IP and TCP header parsing. */
#include "decode.h"
#include "keyring/conn.h"

#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifndef DLT_LINUX_SLL2
#define DLT_LINUX_SLL2 276
#endif
#ifndef DLT_IPV4
#define DLT_IPV4 228
#endif
#ifndef DLT_IPV6
#define DLT_IPV6 229
#endif

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88a8
#define ETHERTYPE_QINQ_OLD 0x9100

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

bool cm_linktype_supported(int dlt)
{
    switch (dlt) {
    case DLT_EN10MB: case DLT_LINUX_SLL: case DLT_LINUX_SLL2: case DLT_NULL: case DLT_LOOP:
    case DLT_RAW: case DLT_IPV4: case DLT_IPV6:
        return true;
    default:
        return false;
    }
}

uint32_t cm_inet_sum(const uint8_t *p, size_t len, uint32_t sum)
{
    return kr_inet_sum(p, len, sum);
}

uint16_t cm_inet_fold(uint32_t sum)
{
    return kr_inet_fold(sum);
}

/* What the frame says about one layer's bytes: avail captured (at most what the header claims), claimed
 * by the header, lost = bytes of the frame the snapshot length cut after the captured ones (SIZE_MAX when
 * the frame's length is not known). The layer had min(claimed, avail + lost) bytes on the wire. */
typedef struct span {
    size_t avail, claimed, lost;
} span;

static size_t span_wire(span s)
{
    return s.lost >= s.claimed - s.avail ? s.claimed : s.avail + s.lost;
}

/* The checksum of a whole segment, judged by libkeyring's rule (the plugin uses the same). */
static cm_csum tcp_csum(const uint8_t *seg, size_t len, const cm_pkt *out)
{
    switch (kr_tcp_checksum(&out->src, &out->dst, seg, len)) {
    case KR_CSUM_GOOD: return CM_CSUM_OK;
    case KR_CSUM_BAD: return CM_CSUM_BAD;
    default: return CM_CSUM_UNKNOWN;
    }
}

cm_csum cm_pkt_csum(const cm_pkt *p)
{
    return p->csum_seg ? tcp_csum(p->csum_seg, p->csum_len, p) : CM_CSUM_UNKNOWN;
}

static inline __attribute__((always_inline)) cm_dec_result decode_tcp(const uint8_t *p, span s, cm_pkt *out)
{
    size_t wire = span_wire(s);
    kr_tcp_hdr h;
    if (!kr_tcp_header(p, s.avail, wire, &h) || s.avail < h.len)
        return CM_DEC_SHORT;        /* a header whose options were cut is not read */
    size_t hl = h.len;
    out->src.port = h.sport;
    out->dst.port = h.dport;
    out->seq = h.seq;
    out->ack = h.ack;
    out->flags = h.flags;
    out->window = h.window;
    out->wscale = h.wscale;
    out->payload = p + hl;
    out->claimed_len = s.claimed - hl;
    out->payload_wire_len = wire - hl;
    out->payload_len = s.avail - hl;
    out->cut = out->payload_len < out->payload_wire_len;
    out->bogus_len = out->claimed_len > out->payload_wire_len;
    out->csum_seg = !out->cut && !out->bogus_len ? p : NULL;
    out->csum_len = s.claimed;
    return CM_DEC_TCP;
}

/* A fragment's data: what reassembly needs, with the same rule for cut and bogus lengths. */
static cm_dec_result take_fragment(const uint8_t *data, span s, cm_pkt *out)
{
    size_t wire = span_wire(s);
    out->frag.data = data;
    out->frag.len = wire;
    out->frag.cut = s.avail < wire;
    out->bogus_len = s.claimed > wire;
    return CM_DEC_FRAGMENT;
}

static inline __attribute__((always_inline)) cm_dec_result decode_ipv4(const uint8_t *p, size_t len, size_t lost, cm_pkt *out)
{
    if (len < 20 || (p[0] >> 4) != 4)
        return CM_DEC_SHORT;
    size_t ihl = (size_t)(p[0] & 0x0f) * 4;
    size_t total = rd16(p + 2);
    if (ihl < 20 || len < ihl || total < ihl)
        return CM_DEC_SHORT;
    out->src.family = out->dst.family = 4;
    memcpy(out->src.ip, p + 12, 4);
    memcpy(out->dst.ip, p + 16, 4);
    span s = { (len < total ? len : total) - ihl, total - ihl, lost };
    uint16_t frag = rd16(p + 6);
    if ((frag & 0x3fff) != 0) {  /* more-fragments flag or an offset */
        if (p[9] != 6)
            return CM_DEC_OTHER;
        out->frag = (cm_ipfrag){ .id = rd16(p + 4), .proto = p[9], .more = (frag & 0x2000) != 0,
                                 .offset = (size_t)(frag & 0x1fff) * 8, .hdr = p, .hdr_len = ihl };
        return take_fragment(p + ihl, s, out);
    }
    if (p[9] != 6)
        return CM_DEC_OTHER;
    return decode_tcp(p + ihl, s, out);
}

#define IP6_HOP 0
#define IP6_ROUTING 43
#define IP6_FRAGMENT 44
#define IP6_AH 51
#define IP6_DSTOPTS 60
#define IP6_MAX_EXT 16      /* extension headers followed before giving up */

static bool ip6_is_ext(uint8_t type)
{
    return type == IP6_HOP || type == IP6_ROUTING || type == IP6_DSTOPTS || type == IP6_AH ||
           type == IP6_FRAGMENT;
}

/* Length of the extension header of that type at h (at least 8 bytes there). */
static size_t ip6_ext_len(uint8_t type, const uint8_t *h)
{
    switch (type) {
    case IP6_AH: return ((size_t)h[1] + 2) * 4;
    case IP6_FRAGMENT: return 8;
    default: return ((size_t)h[1] + 1) * 8;
    }
}

static cm_dec_result decode_ipv6(const uint8_t *p, size_t len, size_t lost, cm_pkt *out)
{
    if (len < 40 || (p[0] >> 4) != 6)
        return CM_DEC_SHORT;
    size_t wire = 40 + (size_t)rd16(p + 4);   /* jumbograms (length 0) are not followed */
    size_t have = len < wire ? len : wire;
    uint8_t next = p[6];
    out->src.family = out->dst.family = 6;
    memcpy(out->src.ip, p + 8, 16);
    memcpy(out->dst.ip, p + 24, 16);
    size_t off = 40;
    for (int i = 0; next != 6; i++) {
        if (i == IP6_MAX_EXT)
            return CM_DEC_OTHER;
        if (!ip6_is_ext(next))
            return CM_DEC_OTHER;  /* UDP, ICMPv6, no next header, ... */
        if (have < off + 8)
            return CM_DEC_SHORT;
        size_t el = ip6_ext_len(next, p + off);
        if (have < off + el)
            return CM_DEC_SHORT;
        if (next == IP6_FRAGMENT) {
            uint16_t fo = rd16(p + off + 2);
            if ((fo & 0xfff9) != 0) {             /* an offset or more fragments: not an atomic fragment */
                uint8_t proto = p[off];
                if (proto != 6 && !ip6_is_ext(proto))
                    return CM_DEC_OTHER;
                out->frag = (cm_ipfrag){ .id = rd32(p + off + 4), .proto = proto, .more = fo & 1,
                                         .offset = fo & 0xfff8 };
                span fs = { have - off - 8, wire - off - 8, lost };
                return take_fragment(p + off + 8, fs, out);
            }
        }
        next = p[off];
        off += el;
    }
    span s = { have - off, wire - off, lost };
    return decode_tcp(p + off, s, out);
}

static cm_dec_result decode_ip(const uint8_t *p, size_t len, size_t lost, cm_pkt *out)
{
    if (len < 1)
        return CM_DEC_SHORT;
    switch (p[0] >> 4) {
    case 4: return decode_ipv4(p, len, lost, out);
    case 6: return decode_ipv6(p, len, lost, out);
    default: return CM_DEC_OTHER;
    }
}

static inline __attribute__((always_inline)) cm_dec_result decode_ethertype(uint16_t type, const uint8_t *p, size_t len, size_t lost, cm_pkt *out)
{
    while (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ || type == ETHERTYPE_QINQ_OLD) {
        if (len < 4)
            return CM_DEC_SHORT;
        type = rd16(p + 2);
        p += 4;
        len -= 4;
        out->vlan_tags++;
    }
    if (type == ETHERTYPE_IPV4)
        return decode_ipv4(p, len, lost, out);
    if (type == ETHERTYPE_IPV6)
        return decode_ipv6(p, len, lost, out);
    return CM_DEC_OTHER;
}

/* BSD loopback: the family is in host order for NULL and network order for LOOP; the values that mean
 * IPv4 (2) and IPv6 (10, 24, 28, 30) are told apart whatever the byte order. */
static cm_dec_result decode_loopback(const uint8_t *data, size_t caplen, size_t lost, cm_pkt *out)
{
    if (caplen < 4)
        return CM_DEC_SHORT;
    uint32_t be = rd32(data), le = (uint32_t)data[3] << 24 | (uint32_t)data[2] << 16 |
                                    (uint32_t)data[1] << 8 | data[0];
    uint32_t fam = be < 256 ? be : le;
    if (fam == 2)
        return decode_ipv4(data + 4, caplen - 4, lost, out);
    if (fam == 10 || fam == 24 || fam == 28 || fam == 30)
        return decode_ipv6(data + 4, caplen - 4, lost, out);
    return CM_DEC_OTHER;
}

/* Everything but frag starts zeroed: frag is read only for CM_DEC_FRAGMENT, whose paths fill it whole.
 * Field by field: a memset of the whole head becomes a string instruction slow to start, once a packet. */
static inline void pkt_clear(cm_pkt *out)
{
    out->src = (cm_addr){ 0 };
    out->dst = (cm_addr){ 0 };
    out->seq = out->ack = 0;
    out->flags = 0;
    out->window = 0;
    out->wscale = 0;
    out->payload = NULL;
    out->payload_len = out->payload_wire_len = out->claimed_len = 0;
    out->cut = out->bogus_len = false;
    out->csum_seg = NULL;
    out->csum_len = 0;
    out->reassembled = false;
    out->vlan_tags = 0;
}

cm_dec_result cm_decode_frame(int dlt, const uint8_t *data, size_t caplen, size_t wire_len, cm_pkt *out)
{
    pkt_clear(out);
    size_t lost = wire_len == SIZE_MAX ? SIZE_MAX : wire_len > caplen ? wire_len - caplen : 0;
    switch (dlt) {
    case DLT_EN10MB:
        if (caplen < 14)
            return CM_DEC_SHORT;
        return decode_ethertype(rd16(data + 12), data + 14, caplen - 14, lost, out);
    case DLT_LINUX_SLL:
        if (caplen < 16)
            return CM_DEC_SHORT;
        return decode_ethertype(rd16(data + 14), data + 16, caplen - 16, lost, out);
    case DLT_LINUX_SLL2:
        if (caplen < 20)
            return CM_DEC_SHORT;
        return decode_ethertype(rd16(data), data + 20, caplen - 20, lost, out);
    case DLT_NULL:
    case DLT_LOOP:
        return decode_loopback(data, caplen, lost, out);
    case DLT_RAW:
        return decode_ip(data, caplen, lost, out);
    case DLT_IPV4:
        return decode_ipv4(data, caplen, lost, out);
    case DLT_IPV6:
        return decode_ipv6(data, caplen, lost, out);
    default:
        return CM_DEC_OTHER;
    }
}

cm_dec_result cm_decode(int dlt, const uint8_t *data, size_t caplen, cm_pkt *out)
{
    return cm_decode_frame(dlt, data, caplen, SIZE_MAX, out);
}

cm_dec_result cm_decode_ip(const uint8_t *ip, size_t len, cm_pkt *out)
{
    pkt_clear(out);
    return decode_ip(ip, len, 0, out);
}

char *cm_ip_str(const cm_addr *a, char *out, size_t cap)
{
    if (!inet_ntop(a->family == 6 ? AF_INET6 : AF_INET, a->ip, out, (socklen_t)cap))
        snprintf(out, cap, "?");
    return out;
}

char *cm_addr_str(const cm_addr *a, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    cm_ip_str(a, ip, sizeof ip);
    if (a->family == 6)
        snprintf(out, cap, "[%s]:%u", ip, a->port);
    else
        snprintf(out, cap, "%s:%u", ip, a->port);
    return out;
}

bool cm_addr_equal(const cm_addr *a, const cm_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->ip, b->ip, a->family == 6 ? 16 : 4) == 0;
}
