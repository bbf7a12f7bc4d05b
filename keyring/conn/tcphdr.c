/* sparkwire libkeyring: a TCP header read the same way by every frontend: its fixed fields, the checksum of
 * the whole segment under its pseudo-header, and the window scale option of a SYN. */
#include <stdbool.h>
#include <string.h>
#include "conn_int.h"

static uint32_t fold16(uint64_t acc)
{
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    return (uint32_t)((acc & 0xffff) + (acc >> 16));   /* at most 0xffff */
}

/* The 16-bit one's complement sum (RFC 1071), four bytes at a time into 64 bits in the host's byte order: the
 * sum of byte-swapped words is the byte-swapped sum, and 2^16 is 1 modulo 0xffff, so a 32-bit word adds as
 * its two halves do. Returned folded to 16 bits in network order, for the caller to add more to it. */
uint32_t kr_inet_sum(const uint8_t *p, size_t len, uint32_t sum)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const bool swap = true;
#else
    const bool swap = false;
#endif
    uint32_t s16 = fold16(sum);
    uint64_t acc = swap ? (uint16_t)(s16 << 8 | s16 >> 8) : s16;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t w;
        memcpy(&w, p + i, 4);
        acc += w;
    }
    if (i + 2 <= len) {
        uint16_t w;
        memcpy(&w, p + i, 2);
        acc += w;
        i += 2;
    }
    if (i < len)
        acc += swap ? p[i] : (uint32_t)p[i] << 8;   /* the odd byte is the high half of its word */
    uint32_t r = fold16(acc);
    return swap ? (uint16_t)(r << 8 | r >> 8) : r;
}

uint16_t kr_inet_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

kr_checksum kr_tcp_checksum(const kr_endpoint *src, const kr_endpoint *dst, const uint8_t *seg, size_t len)
{
    if (!src || !dst || !seg || len < 20 || len > 0xffffffu || src->family != dst->family ||
        (src->family != 4 && src->family != 6))
        return KR_CSUM_UNKNOWN;
    size_t alen = src->family == 4 ? 4 : 16;
    uint32_t pseudo = kr_inet_sum(src->ip, alen, 0);
    pseudo = kr_inet_sum(dst->ip, alen, pseudo);
    pseudo += (uint32_t)(len >> 16) + (uint32_t)(len & 0xffff) + 6;   /* length and protocol (TCP) */
    if (kr_inet_fold(kr_inet_sum(seg, len, pseudo)) == 0)
        return KR_CSUM_GOOD;
    /* what checksum offload leaves in a packet captured on its way out: 0, or the bare pseudo-header sum */
    unsigned field = (unsigned)seg[16] << 8 | seg[17];
    unsigned partial = 0xffffu - kr_inet_fold(pseudo);
    if (field == 0 || field == partial)
        return KR_CSUM_UNKNOWN;
    return KR_CSUM_BAD;
}

int kr_tcp_wscale(const uint8_t *hdr, size_t hdr_len)
{
    if (!hdr || hdr_len < 20)
        return -1;
    size_t i = 20;
    while (i < hdr_len) {
        uint8_t kind = hdr[i];
        if (kind == 0)
            break;                           /* end of the option list */
        if (kind == 1) {
            i++;                             /* no-operation */
            continue;
        }
        if (i + 1 >= hdr_len || hdr[i + 1] < 2 || i + hdr[i + 1] > hdr_len)
            break;                           /* a malformed option ends the list */
        if (kind == 3 && hdr[i + 1] == 3)
            return hdr[i + 2] > 14 ? 14 : hdr[i + 2];   /* RFC 7323: a shift above 14 is taken as 14 */
        i += hdr[i + 1];
    }
    return -1;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)rd16(p) << 16 | rd16(p + 2);
}

bool kr_tcp_header(const uint8_t *h, size_t avail, size_t wire, kr_tcp_hdr *out)
{
    if (!h || avail < 20)
        return false;
    size_t hl = (size_t)(h[12] >> 4) * 4;
    if (hl < 20 || hl > wire)
        return false;
    out->sport = rd16(h);
    out->dport = rd16(h + 2);
    out->seq = rd32(h + 4);
    out->ack = rd32(h + 8);
    out->flags = h[13];
    out->window = rd16(h + 14);
    out->wscale = (out->flags & KR_TCP_SYN) && avail >= hl ? (int8_t)kr_tcp_wscale(h, hl) : -1;
    out->len = hl;
    return true;
}
