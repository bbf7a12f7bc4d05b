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

/* a + b with the carry out of bit 63 added back in (one's complement addition in 64 bits) */
static inline uint64_t add1c(uint64_t a, uint64_t b)
{
    a += b;
    return a + (a < b);
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_SWAPPED true
#else
#define HOST_SWAPPED false
#endif

static inline uint16_t swap16(uint32_t v)
{
    return HOST_SWAPPED ? (uint16_t)(v << 8 | (v & 0xffff) >> 8) : (uint16_t)v;
}

/* The 16-bit one's complement sum (RFC 1071) of len bytes added to acc, eight bytes at a time in the host's
 * byte order, in two running sums so that the additions overlap: the sum of byte-swapped words is the
 * byte-swapped sum, and 2^16 is 1 modulo 0xffff, so a 64-bit word adds as its four halves do. The last
 * bytes of a run of eight or more are read as the end of its last eight bytes, shifted so that the bytes
 * already summed drop out and the first of the rest keeps its place in its 16-bit half. */
static inline uint64_t sum_bytes(uint64_t acc, const uint8_t *p, size_t len)
{
    uint64_t acc2 = 0;
    size_t i = 0;
    for (; i + 16 <= len; i += 16) {
        acc = add1c(acc, load64(p + i));
        acc2 = add1c(acc2, load64(p + i + 8));
    }
    acc = add1c(acc, acc2);
    if (i + 8 <= len) {
        acc = add1c(acc, load64(p + i));
        i += 8;
    }
    size_t rest = len - i;   /* fewer than 8, at an even offset */
    if (rest == 0)
        return acc;
    if (len >= 8) {
        uint64_t w = load64(p + len - 8);
        unsigned drop = (unsigned)(8 - rest) * 8;
        return add1c(acc, HOST_SWAPPED ? w >> drop : w << drop);
    }
    if (rest >= 4) {
        uint32_t w;
        memcpy(&w, p + i, 4);
        acc = add1c(acc, w);
        i += 4;
    }
    if (i + 2 <= len) {
        uint16_t w;
        memcpy(&w, p + i, 2);
        acc = add1c(acc, w);
        i += 2;
    }
    if (i < len)
        acc = add1c(acc, HOST_SWAPPED ? p[i] : (uint32_t)p[i] << 8);   /* the odd byte: the high half of its word */
    return acc;
}

/* Returned folded to 16 bits in network order, for the caller to add more to it. */
uint32_t kr_inet_sum(const uint8_t *p, size_t len, uint32_t sum)
{
    return swap16(fold16(sum_bytes(swap16(fold16(sum)), p, len)));
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
    /* the pseudo-header: both addresses, the length and the protocol (TCP), summed in the host's order */
    uint64_t pseudo = (uint64_t)swap16((uint32_t)(len >> 16)) + swap16((uint32_t)(len & 0xffff)) + swap16(6);
    if (src->family == 4) {
        uint32_t s, d;
        memcpy(&s, src->ip, 4);
        memcpy(&d, dst->ip, 4);
        pseudo += (uint64_t)s + d;           /* three sums of at most 32 bits: no carry out */
    } else {
        pseudo = add1c(add1c(pseudo, load64(src->ip)), load64(src->ip + 8));
        pseudo = add1c(add1c(pseudo, load64(dst->ip)), load64(dst->ip + 8));
    }
    /* the sum folds to 0xffff exactly when it is a multiple of 0xffff other than 0 (2^16 is 1 modulo 0xffff,
     * and folding never gives 0 for a sum that is not 0) */
    uint64_t sum = sum_bytes(pseudo, seg, len);
    if (sum % 0xffff == 0 && sum != 0)
        return KR_CSUM_GOOD;
    /* what checksum offload leaves in a packet captured on its way out: 0, or the bare pseudo-header sum */
    unsigned field = (unsigned)seg[16] << 8 | seg[17];
    unsigned partial = 0xffffu - kr_inet_fold(swap16(fold16(pseudo)));
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

/* A SYN's options, read apart so that the fixed fields need no saved registers */
static __attribute__((noinline)) bool syn_options(const uint8_t *h, size_t hl, kr_tcp_hdr *out)
{
    out->wscale = (int8_t)kr_tcp_wscale(h, hl);
    return true;
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
    out->len = hl;
    out->wscale = -1;
    if ((out->flags & KR_TCP_SYN) && avail >= hl)
        return syn_options(h, hl, out);
    return true;
}
