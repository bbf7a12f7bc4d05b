/* cloudmon: link, IP and TCP header parsing. */
#include "decode.h"

#include <arpa/inet.h>
#include <pcap/pcap.h>
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

static cm_dec_result decode_tcp(const uint8_t *p, size_t avail, size_t wire, cm_pkt *out)
{
    if (avail < 20 || wire < 20)
        return CM_DEC_SHORT;
    size_t hl = (size_t)(p[12] >> 4) * 4;
    if (hl < 20 || hl > wire)
        return CM_DEC_SHORT;
    if (avail < hl)
        return CM_DEC_SHORT;
    out->src.port = rd16(p);
    out->dst.port = rd16(p + 2);
    out->seq = rd32(p + 4);
    out->ack = rd32(p + 8);
    out->flags = p[13];
    out->payload = p + hl;
    out->payload_wire_len = wire - hl;
    out->payload_len = avail - hl < out->payload_wire_len ? avail - hl : out->payload_wire_len;
    return CM_DEC_TCP;
}

static cm_dec_result decode_ipv4(const uint8_t *p, size_t len, cm_pkt *out)
{
    if (len < 20 || (p[0] >> 4) != 4)
        return CM_DEC_SHORT;
    size_t ihl = (size_t)(p[0] & 0x0f) * 4;
    size_t total = rd16(p + 2);
    if (ihl < 20 || len < ihl || total < ihl)
        return CM_DEC_SHORT;
    uint16_t frag = rd16(p + 6);
    if ((frag & 0x3fff) != 0)    /* more-fragments flag or an offset */
        return CM_DEC_FRAGMENT;
    if (p[9] != 6)
        return CM_DEC_OTHER;
    out->src.family = out->dst.family = 4;
    memset(out->src.ip, 0, 16);
    memset(out->dst.ip, 0, 16);
    memcpy(out->src.ip, p + 12, 4);
    memcpy(out->dst.ip, p + 16, 4);
    size_t avail = (len < total ? len : total) - ihl;
    return decode_tcp(p + ihl, avail, total - ihl, out);
}

static cm_dec_result decode_ipv6(const uint8_t *p, size_t len, cm_pkt *out)
{
    if (len < 40 || (p[0] >> 4) != 6)
        return CM_DEC_SHORT;
    size_t wire = 40 + (size_t)rd16(p + 4);   /* jumbograms (length 0) are not followed */
    uint8_t next = p[6];
    out->src.family = out->dst.family = 6;
    memcpy(out->src.ip, p + 8, 16);
    memcpy(out->dst.ip, p + 24, 16);
    size_t off = 40;
    for (int i = 0; i < 8; i++) {
        if (next == 6)
            break;
        if (next == 44)
            return CM_DEC_FRAGMENT;
        if (next != 0 && next != 43 && next != 60)
            return CM_DEC_OTHER;
        if (len < off + 8 || wire < off + 8)
            return CM_DEC_SHORT;
        next = p[off];
        off += ((size_t)p[off + 1] + 1) * 8;
    }
    if (next != 6)
        return CM_DEC_OTHER;
    if (off > len || off > wire)
        return CM_DEC_SHORT;
    size_t avail = (len < wire ? len : wire) - off;
    return decode_tcp(p + off, avail, wire - off, out);
}

static cm_dec_result decode_ip(const uint8_t *p, size_t len, cm_pkt *out)
{
    if (len < 1)
        return CM_DEC_SHORT;
    switch (p[0] >> 4) {
    case 4: return decode_ipv4(p, len, out);
    case 6: return decode_ipv6(p, len, out);
    default: return CM_DEC_OTHER;
    }
}

static cm_dec_result decode_ethertype(uint16_t type, const uint8_t *p, size_t len, cm_pkt *out)
{
    while (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ || type == ETHERTYPE_QINQ_OLD) {
        if (len < 4)
            return CM_DEC_SHORT;
        type = rd16(p + 2);
        p += 4;
        len -= 4;
    }
    if (type == ETHERTYPE_IPV4)
        return decode_ipv4(p, len, out);
    if (type == ETHERTYPE_IPV6)
        return decode_ipv6(p, len, out);
    return CM_DEC_OTHER;
}

cm_dec_result cm_decode(int dlt, const uint8_t *data, size_t caplen, cm_pkt *out)
{
    memset(out, 0, sizeof *out);
    switch (dlt) {
    case DLT_EN10MB:
        if (caplen < 14)
            return CM_DEC_SHORT;
        return decode_ethertype(rd16(data + 12), data + 14, caplen - 14, out);
    case DLT_LINUX_SLL:
        if (caplen < 16)
            return CM_DEC_SHORT;
        return decode_ethertype(rd16(data + 14), data + 16, caplen - 16, out);
    case DLT_LINUX_SLL2:
        if (caplen < 20)
            return CM_DEC_SHORT;
        return decode_ethertype(rd16(data), data + 20, caplen - 20, out);
    case DLT_NULL:
    case DLT_LOOP: {
        if (caplen < 4)
            return CM_DEC_SHORT;
        /* The family is in host order for NULL and network order for LOOP; the values that mean
         * IPv4 (2) and IPv6 (10, 24, 28, 30) are told apart whatever the byte order. */
        uint32_t be = rd32(data), le = (uint32_t)data[3] << 24 | (uint32_t)data[2] << 16 |
                                        (uint32_t)data[1] << 8 | data[0];
        uint32_t fam = be < 256 ? be : le;
        if (fam == 2)
            return decode_ipv4(data + 4, caplen - 4, out);
        if (fam == 10 || fam == 24 || fam == 28 || fam == 30)
            return decode_ipv6(data + 4, caplen - 4, out);
        return CM_DEC_OTHER;
    }
    case DLT_RAW:
        return decode_ip(data, caplen, out);
    case DLT_IPV4:
        return decode_ipv4(data, caplen, out);
    case DLT_IPV6:
        return decode_ipv6(data, caplen, out);
    default:
        return CM_DEC_OTHER;
    }
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
