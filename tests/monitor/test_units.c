/* cloudmon unit tests: header parsing (decode.c), the UDP wrapping of the decrypted export (export.c),
 * IP fragments (frag.c), the model (mon.c) over libkeyring's connection layer. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "decode.h"
#include "export.h"
#include "frag.h"
#include "json.h"
#include "mon.h"
#include "output.h"

/* ---- decode ---- */

static size_t ipv4_tcp(uint8_t *b, const char *payload, uint8_t flags)
{
    size_t pl = strlen(payload);
    memset(b, 0, 40);
    b[0] = 0x45;
    b[2] = (uint8_t)((40 + pl) >> 8);
    b[3] = (uint8_t)(40 + pl);
    b[8] = 64;
    b[9] = 6;
    memcpy(b + 12, "\x0a\x00\x00\x02", 4);
    memcpy(b + 16, "\x0a\x00\x00\x01", 4);
    uint8_t *t = b + 20;
    t[0] = 0x9c; t[1] = 0x41;           /* 40001 */
    t[2] = 0x16; t[3] = 0x33;           /* 5683 */
    t[4] = 0; t[5] = 0; t[6] = 0x03; t[7] = 0xe8;
    t[12] = 5 << 4;
    t[13] = flags;
    memcpy(b + 40, payload, pl);
    return 40 + pl;
}

static void check_pkt(const cm_pkt *p)
{
    char a[64], b[64];
    assert_string_equal(cm_addr_str(&p->src, a, sizeof a), "10.0.0.2:40001");
    assert_string_equal(cm_addr_str(&p->dst, b, sizeof b), "10.0.0.1:5683");
    assert_int_equal(p->seq, 1000);
    assert_int_equal(p->payload_len, 5);
    assert_memory_equal(p->payload, "hello", 5);
}

static void test_decode_links(void **st)
{
    (void)st;
    uint8_t ip[128], f[160];
    size_t n = ipv4_tcp(ip, "hello", CM_TCP_ACK | CM_TCP_PSH);
    cm_pkt p;
    /* raw */
    assert_int_equal(cm_decode(DLT_RAW, ip, n, &p), CM_DEC_TCP);
    check_pkt(&p);
    /* Ethernet with two VLAN tags and trailing padding */
    memset(f, 0, 12);
    memcpy(f + 12, "\x88\xa8\x00\x01\x81\x00\x00\x02\x08\x00", 10);
    memcpy(f + 22, ip, n);
    memset(f + 22 + n, 0xee, 6);
    assert_int_equal(cm_decode(DLT_EN10MB, f, 22 + n + 6, &p), CM_DEC_TCP);
    check_pkt(&p);
    /* Linux cooked v1 */
    memset(f, 0, 16);
    f[14] = 0x08;
    memcpy(f + 16, ip, n);
    assert_int_equal(cm_decode(DLT_LINUX_SLL, f, 16 + n, &p), CM_DEC_TCP);
    check_pkt(&p);
    /* BSD loopback, host order family 2 */
    uint32_t fam = 2;
    memcpy(f, &fam, 4);
    memcpy(f + 4, ip, n);
    assert_int_equal(cm_decode(DLT_NULL, f, 4 + n, &p), CM_DEC_TCP);
    check_pkt(&p);
    /* cut short inside the TCP header */
    assert_int_equal(cm_decode(DLT_RAW, ip, 30, &p), CM_DEC_SHORT);
    /* a fragment */
    ip[6] = 0x20;
    assert_int_equal(cm_decode(DLT_RAW, ip, n, &p), CM_DEC_FRAGMENT);
    ip[6] = 0;
    /* UDP */
    ip[9] = 17;
    assert_int_equal(cm_decode(DLT_RAW, ip, n, &p), CM_DEC_OTHER);
    assert_false(cm_linktype_supported(105));  /* 802.11 */
    assert_true(cm_linktype_supported(DLT_EN10MB));
}

static void test_decode_ipv6_ext(void **st)
{
    (void)st;
    uint8_t b[128] = { 0 };
    b[0] = 0x60;
    b[4] = 0;
    b[5] = 8 + 20 + 3;
    b[6] = 0;                           /* hop-by-hop first */
    b[7] = 64;
    b[23] = 2;
    b[39] = 1;
    b[40] = 6;                          /* then TCP */
    b[41] = 0;                          /* 8 bytes */
    uint8_t *t = b + 48;
    t[1] = 80;
    t[3] = 0x33;
    t[2] = 0x16;
    t[12] = 5 << 4;
    memcpy(t + 20, "abc", 3);
    cm_pkt p;
    assert_int_equal(cm_decode(DLT_RAW, b, 48 + 23, &p), CM_DEC_TCP);
    char a[64];
    assert_string_equal(cm_addr_str(&p.dst, a, sizeof a), "[::1]:5683");
    assert_int_equal(p.payload_len, 3);
    /* captured 1 byte of the 3: the rest counts as missing */
    assert_int_equal(cm_decode(DLT_RAW, b, 48 + 21, &p), CM_DEC_TCP);
    assert_int_equal(p.payload_len, 1);
    assert_int_equal(p.payload_wire_len, 3);
}

/* Fills in the TCP checksum of an IPv4 packet of n bytes (20-byte IP header). */
static void tcp4_csum(uint8_t *b, size_t n)
{
    b[36] = b[37] = 0;
    uint32_t s = cm_inet_sum(b + 12, 8, 0) + 6 + (uint32_t)(n - 20);
    uint16_t c = cm_inet_fold(cm_inet_sum(b + 20, n - 20, s));
    b[36] = (uint8_t)(c >> 8);
    b[37] = (uint8_t)c;
}

/* Integers as JSON members: every digit count, both signs and the ends of the range, as printf writes them */
static void test_json_int(void **st)
{
    (void)st;
    int64_t vals[200];
    size_t n = 0;
    vals[n++] = INT64_MIN;
    vals[n++] = INT64_MAX;
    for (int64_t p = 1; n + 6 < sizeof vals / sizeof vals[0] && p <= INT64_MAX / 10; p *= 10) {
        int64_t near[3] = { p - 1, p, p + 1 };
        for (int i = 0; i < 3; i++) {
            vals[n++] = near[i];
            vals[n++] = -near[i];
        }
    }
    vals[n++] = 0;
    cm_json j;
    cm_json_init(&j);
    for (size_t i = 0; i < n; i++) {
        cm_json_reset(&j);
        cm_json_obj(&j, NULL);
        cm_json_int(&j, "n", vals[i]);
        cm_json_int(&j, NULL, 42);
        cm_json_end(&j, '}');
        char want[64];
        snprintf(want, sizeof want, "{\"n\":%lld,42}", (long long)vals[i]);
        assert_int_equal(j.len, strlen(want));
        assert_memory_equal(j.buf, want, j.len);
    }
    cm_json_free(&j);
}

/* Times of day as gmtime and printf write them (from the second below the time: before 1970 the day counts
 * back from its end): the day's ends, rounding to the next microsecond, far years, before 1970, and a
 * buffer too short; a time that is not one is written as question marks */
static void test_time_str(void **st)
{
    (void)st;
    const double ts[] = { 0, 0.0000004, 0.0000006, 59.9999995, 3599.5, 86399.9999996, 86400, 1e9 + 0.123456,
                          1700000000.654321, 4102444800.5, 253402300799.999999, -1.25, -86400.5, -0.0000004,
                          -1e9 - 0.5 };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        double whole = floor(ts[i]);
        time_t s = (time_t)whole;
        struct tm tm;
        assert_non_null(gmtime_r(&s, &tm));
        long us = (long)((ts[i] - whole) * 1e6 + 0.5);
        if (us >= 1000000)
            us = 999999;
        char want[64], got[64], shortbuf[8];
        snprintf(want, sizeof want, "%02d:%02d:%02d.%06ld", tm.tm_hour, tm.tm_min, tm.tm_sec, us);
        assert_string_equal(cm_time_str(ts[i], got, sizeof got), want);
        want[sizeof shortbuf - 1] = 0;
        assert_string_equal(cm_time_str(ts[i], shortbuf, sizeof shortbuf), want);
    }
    assert_string_equal(cm_time_str(-1.25, (char[64]){0}, 64), "23:59:58.750000");
    const double odd[] = { NAN, INFINITY, -INFINITY, 1e19, -1e19, 1e300 };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        char got[64];
        assert_string_equal(cm_time_str(odd[i], got, sizeof got), "??:??:??.??????");
    }
}

/* A SYN's window scale option and the window, read by libkeyring's rule (the plugin reads them the same way). */
static void test_decode_window_scale(void **st)
{
    (void)st;
    uint8_t ip[128];
    size_t n = ipv4_tcp(ip, "\x01\x03\x03\x07", CM_TCP_SYN);   /* NOP, window scale 7: the options */
    ip[32] = 6 << 4;                    /* a 24-byte TCP header */
    ip[34] = 0x12;
    ip[35] = 0x34;
    cm_pkt p;
    assert_int_equal(cm_decode_frame(DLT_RAW, ip, n, n, &p), CM_DEC_TCP);
    assert_int_equal(p.payload_len, 0);
    assert_int_equal(p.window, 0x1234);
    assert_int_equal(p.wscale, 7);
    ip[33] = CM_TCP_ACK;                /* only a SYN's option counts */
    assert_int_equal(cm_decode_frame(DLT_RAW, ip, n, n, &p), CM_DEC_TCP);
    assert_int_equal(p.wscale, -1);
    ip[33] = CM_TCP_SYN;
    ip[40] = 0;                         /* end of options first: none */
    assert_int_equal(cm_decode_frame(DLT_RAW, ip, n, n, &p), CM_DEC_TCP);
    assert_int_equal(p.wscale, -1);
}

static void test_decode_lengths_and_checksum(void **st)
{
    (void)st;
    uint8_t ip[1600];
    size_t n = ipv4_tcp(ip, "hello", CM_TCP_ACK);
    tcp4_csum(ip, n);
    cm_pkt p;
    assert_int_equal(cm_decode_frame(DLT_RAW, ip, n, n, &p), CM_DEC_TCP);
    assert_int_equal(cm_pkt_csum(&p), CM_CSUM_OK);
    assert_false(p.cut);
    assert_false(p.bogus_len);
    ip[44] ^= 1;                        /* one payload bit: the checksum no longer holds */
    assert_int_equal(cm_decode_frame(DLT_RAW, ip, n, n, &p), CM_DEC_TCP);
    assert_int_equal(cm_pkt_csum(&p), CM_CSUM_BAD);
    ip[44] ^= 1;
    ip[36] = ip[37] = 0;                /* left for the card to fill in: not known */
    assert_int_equal(cm_decode_frame(DLT_RAW, ip, n, n, &p), CM_DEC_TCP);
    assert_int_equal(cm_pkt_csum(&p), CM_CSUM_UNKNOWN);
    /* what Linux leaves for checksum offload (captured on the way out, e.g. on lo): the bare pseudo-header sum */
    unsigned partial = 0xffffu - cm_inet_fold(cm_inet_sum(ip + 12, 8, 0) + 6 + (uint32_t)(n - 20));
    ip[36] = (uint8_t)(partial >> 8);
    ip[37] = (uint8_t)partial;
    assert_int_equal(cm_decode_frame(DLT_RAW, ip, n, n, &p), CM_DEC_TCP);
    assert_int_equal(cm_pkt_csum(&p), CM_CSUM_UNKNOWN);
    tcp4_csum(ip, n);
    /* a 45-byte frame whose IP length says 1500: the frame was not cut, so the length is bogus */
    ip[2] = 1500 >> 8;
    ip[3] = 1500 & 0xff;
    assert_int_equal(cm_decode_frame(DLT_RAW, ip, n, n, &p), CM_DEC_TCP);
    assert_true(p.bogus_len);
    assert_false(p.cut);
    assert_int_equal(p.payload_len, 5);
    assert_int_equal(p.payload_wire_len, 5);
    assert_int_equal(p.claimed_len, 1460);
    assert_int_equal(cm_pkt_csum(&p), CM_CSUM_UNKNOWN);
    /* the same bytes from a frame that was 1500 bytes on the wire: the snapshot length cut 1455 */
    assert_int_equal(cm_decode_frame(DLT_RAW, ip, n, 1500, &p), CM_DEC_TCP);
    assert_true(p.cut);
    assert_false(p.bogus_len);
    assert_int_equal(p.payload_wire_len, 1460);
    /* cut to 1000 on the wire but claiming 1500: 955 lost, the rest bogus */
    assert_int_equal(cm_decode_frame(DLT_RAW, ip, n, 1000, &p), CM_DEC_TCP);
    assert_true(p.cut && p.bogus_len);
    assert_int_equal(p.payload_wire_len, 960);
}

static void test_decode_vlan_stack(void **st)
{
    (void)st;
    uint8_t ip[128], f[200];
    size_t n = ipv4_tcp(ip, "hello", CM_TCP_ACK);
    memset(f, 0, 12);
    /* 802.1ad, the old 0x9100 QinQ tag and 802.1Q */
    memcpy(f + 12, "\x88\xa8\x00\x01\x91\x00\x00\x02\x81\x00\x00\x03\x08\x00", 14);
    memcpy(f + 26, ip, n);
    cm_pkt p;
    assert_int_equal(cm_decode_frame(DLT_EN10MB, f, 26 + n, 26 + n, &p), CM_DEC_TCP);
    check_pkt(&p);
    assert_int_equal(p.vlan_tags, 3);
    assert_int_equal(cm_decode_frame(DLT_EN10MB, f, 24, 24, &p), CM_DEC_SHORT);
}

/* IPv6 + extension headers (types, each 8 bytes) + TCP with payload; returns the length. */
static size_t ipv6_tcp(uint8_t *b, const uint8_t *types, int n_ext, const char *payload)
{
    size_t pl = strlen(payload), off = 40;
    memset(b, 0, 40);
    b[0] = 0x60;
    b[6] = n_ext ? types[0] : 6;
    b[7] = 64;
    b[23] = 2;
    b[39] = 1;
    for (int i = 0; i < n_ext; i++, off += 8) {
        memset(b + off, 0, 8);
        b[off] = i + 1 < n_ext ? types[i + 1] : 6;
    }
    memset(b + off, 0, 20);
    b[off + 1] = 80;
    b[off + 2] = 0x16;
    b[off + 3] = 0x33;
    b[off + 12] = 5 << 4;
    memcpy(b + off + 20, payload, pl);
    size_t total = off + 20 + pl;
    b[4] = (uint8_t)((total - 40) >> 8);
    b[5] = (uint8_t)(total - 40);
    return total;
}

static void test_decode_ipv6_chain(void **st)
{
    (void)st;
    uint8_t b[256];
    cm_pkt p;
    /* hop-by-hop, routing, an atomic fragment header (offset 0, no more), destination options */
    const uint8_t chain[] = { 0, 43, 44, 60 };
    size_t n = ipv6_tcp(b, chain, 4, "abc");
    assert_int_equal(cm_decode_frame(DLT_RAW, b, n, n, &p), CM_DEC_TCP);
    assert_int_equal(p.payload_len, 3);
    assert_memory_equal(p.payload, "abc", 3);
    /* the fragment header says more fragments follow: a fragment for reassembly */
    b[40 + 16 + 3] = 1;
    b[40 + 16 + 4] = 0xca;
    assert_int_equal(cm_decode_frame(DLT_RAW, b, n, n, &p), CM_DEC_FRAGMENT);
    assert_int_equal(p.frag.proto, 60);
    assert_true(p.frag.more);
    assert_int_equal(p.frag.offset, 0);
    assert_int_equal(p.frag.len, n - 64);
    assert_int_equal(p.frag.id, 0xca000000u);
    /* no next header (59) and UDP are not TCP */
    const uint8_t nonext[] = { 0 };
    n = ipv6_tcp(b, nonext, 1, "abc");
    b[40] = 59;
    assert_int_equal(cm_decode_frame(DLT_RAW, b, n, n, &p), CM_DEC_OTHER);
    b[40] = 17;
    assert_int_equal(cm_decode_frame(DLT_RAW, b, n, n, &p), CM_DEC_OTHER);
}

/* ---- fragment reassembly ---- */

/* An IPv4 fragment of the datagram whose TCP segment (header + payload) is seg: bytes [off, off + len). */
static size_t frag4(uint8_t *b, uint16_t id, const uint8_t *seg, size_t off, size_t len, bool more)
{
    memset(b, 0, 20);
    b[0] = 0x45;
    b[2] = (uint8_t)((20 + len) >> 8);
    b[3] = (uint8_t)(20 + len);
    b[4] = (uint8_t)(id >> 8);
    b[5] = (uint8_t)id;
    uint16_t fo = (uint16_t)(off / 8) | (more ? 0x2000 : 0);
    b[6] = (uint8_t)(fo >> 8);
    b[7] = (uint8_t)fo;
    b[8] = 64;
    b[9] = 6;
    memcpy(b + 12, "\x0a\x00\x00\x02\x0a\x00\x00\x01", 8);
    memcpy(b + 20, seg + off, len);
    return 20 + len;
}

/* A whole datagram to cut up: TCP header + 200 payload bytes, checksum right. */
static size_t datagram(uint8_t *whole)
{
    char text[201];
    for (int i = 0; i < 200; i++)
        text[i] = (char)('a' + i % 26);
    text[200] = 0;
    size_t n = ipv4_tcp(whole, text, CM_TCP_ACK | CM_TCP_PSH);
    tcp4_csum(whole, n);
    return n - 20;                      /* the segment starts at whole + 20 */
}

static cm_dec_result feed4(cm_frag *f, double ts, uint16_t id, const uint8_t *seg, size_t off, size_t len,
                           bool more, cm_pkt *p)
{
    static uint8_t b[400];
    size_t n = frag4(b, id, seg, off, len, more);
    cm_dec_result r = cm_decode_frame(DLT_RAW, b, n, n, p);
    assert_int_equal(r, CM_DEC_FRAGMENT);
    return cm_frag_add(f, ts, p);
}

static void test_frag_reverse_and_duplicate(void **st)
{
    (void)st;
    uint8_t whole[300];
    size_t len = datagram(whole);
    const uint8_t *seg = whole + 20;
    cm_frag f;
    cm_frag_init(&f, 0, 0, 0);
    cm_pkt p;
    assert_int_equal(feed4(&f, 1, 7, seg, 160, len - 160, false, &p), CM_DEC_FRAGMENT);
    assert_int_equal(feed4(&f, 1, 7, seg, 80, 80, true, &p), CM_DEC_FRAGMENT);
    assert_int_equal(feed4(&f, 1, 7, seg, 80, 80, true, &p), CM_DEC_FRAGMENT);    /* a copy */
    assert_int_equal(feed4(&f, 1, 7, seg, 40, 80, true, &p), CM_DEC_FRAGMENT);    /* overlaps, same bytes */
    assert_int_equal(feed4(&f, 1, 7, seg, 0, 80, true, &p), CM_DEC_TCP);
    assert_true(p.reassembled);
    assert_int_equal(p.payload_len, 200);
    assert_memory_equal(p.payload, whole + 40, 200);
    assert_int_equal(cm_pkt_csum(&p), CM_CSUM_OK);
    assert_int_equal(f.st.reassembled, 1);
    assert_int_equal(cm_frag_dropped(&f), 0);
    assert_int_equal(f.order.length, 0);
    assert_int_equal(f.bytes, 0);
    cm_frag_free(&f);
}

static void test_frag_conflicting_overlap(void **st)
{
    (void)st;
    uint8_t whole[300], evil[300];
    size_t len = datagram(whole);
    memcpy(evil, whole, sizeof evil);
    evil[20 + 100] ^= 0xff;             /* other bytes for the same place */
    cm_frag f;
    cm_frag_init(&f, 0, 0, 0);
    cm_pkt p;
    assert_int_equal(feed4(&f, 1, 9, whole + 20, 0, 120, true, &p), CM_DEC_FRAGMENT);
    assert_int_equal(feed4(&f, 1, 9, evil + 20, 80, 80, true, &p), CM_DEC_FRAGMENT);
    /* the datagram is dropped, and stays dropped: the rest does not make it whole */
    assert_int_equal(feed4(&f, 1, 9, whole + 20, 120, len - 120, false, &p), CM_DEC_FRAGMENT);
    assert_int_equal(feed4(&f, 1, 9, whole + 20, 0, 120, true, &p), CM_DEC_FRAGMENT);
    assert_int_equal(f.st.overlap, 1);
    assert_int_equal(f.st.reassembled, 0);
    /* two last fragments that disagree on the length */
    assert_int_equal(feed4(&f, 1, 10, whole + 20, 160, len - 160, false, &p), CM_DEC_FRAGMENT);
    assert_int_equal(feed4(&f, 1, 10, whole + 20, 160, 8, false, &p), CM_DEC_FRAGMENT);
    assert_int_equal(f.st.overlap, 2);
    /* after the timeout the same id starts afresh */
    assert_int_equal(feed4(&f, 100, 9, whole + 20, 0, 120, true, &p), CM_DEC_FRAGMENT);
    assert_int_equal(feed4(&f, 100, 9, whole + 20, 120, len - 120, false, &p), CM_DEC_TCP);
    cm_frag_free(&f);
}

static void test_frag_limits(void **st)
{
    (void)st;
    uint8_t whole[300];
    size_t len = datagram(whole);
    const uint8_t *seg = whole + 20;
    cm_pkt p;
    /* datagrams: at most 4 in progress, the oldest goes */
    cm_frag f;
    cm_frag_init(&f, 0, 4, 0);
    for (uint16_t id = 1; id <= 6; id++)
        feed4(&f, 1, id, seg, 0, 80, true, &p);
    assert_int_equal(f.order.length, 4);
    assert_int_equal(f.st.limit, 2);
    assert_int_equal(feed4(&f, 1, 1, seg, 80, len - 80, false, &p), CM_DEC_FRAGMENT);   /* id 1 was dropped */
    assert_int_equal(feed4(&f, 1, 6, seg, 80, len - 80, false, &p), CM_DEC_TCP);
    cm_frag_free(&f);
    /* bytes: a limit smaller than two datagrams */
    cm_frag_init(&f, 600, 0, 0);
    feed4(&f, 1, 1, seg, 0, 160, true, &p);
    feed4(&f, 1, 2, seg, 0, 160, true, &p);
    assert_true(f.bytes <= 600);
    assert_int_equal(f.st.limit, 1);
    assert_int_equal(feed4(&f, 1, 2, seg, 160, len - 160, false, &p), CM_DEC_TCP);
    cm_frag_free(&f);
    /* time: a fragment older than the timeout is gone */
    cm_frag_init(&f, 0, 0, 5);
    feed4(&f, 1, 3, seg, 0, 160, true, &p);
    assert_int_equal(feed4(&f, 7, 3, seg, 160, len - 160, false, &p), CM_DEC_FRAGMENT);
    assert_int_equal(f.st.timeout, 1);
    cm_frag_expire(&f, INFINITY);
    assert_int_equal(f.st.timeout, 2);
    assert_int_equal(f.order.length, 0);
    /* beyond the largest IP packet, or a middle fragment not a multiple of 8 bytes */
    uint8_t b[64];
    size_t n = frag4(b, 4, seg, 0, 20, true);
    b[6] = 0x3f;
    b[7] = 0xff;                        /* offset 65,528 */
    assert_int_equal(cm_decode_frame(DLT_RAW, b, n, n, &p), CM_DEC_FRAGMENT);
    assert_int_equal(cm_frag_add(&f, 8, &p), CM_DEC_FRAGMENT);
    n = frag4(b, 5, seg, 0, 13, true);
    assert_int_equal(cm_decode_frame(DLT_RAW, b, n, n, &p), CM_DEC_FRAGMENT);
    assert_int_equal(cm_frag_add(&f, 8, &p), CM_DEC_FRAGMENT);
    assert_int_equal(f.st.bad, 2);
    /* a fragment cut by the snapshot length cannot be put back */
    n = frag4(b, 6, seg, 0, 40, true);
    assert_int_equal(cm_decode_frame(DLT_RAW, b, 50, n, &p), CM_DEC_FRAGMENT);
    assert_true(p.frag.cut);
    assert_int_equal(cm_frag_add(&f, 8, &p), CM_DEC_FRAGMENT);
    assert_int_equal(f.st.cut, 1);
    cm_frag_free(&f);
}

static void test_frag_ipv6(void **st)
{
    (void)st;
    /* the whole segment: destination options (8 bytes) + TCP + payload, cut at 48 bytes */
    uint8_t whole[256], b[256];
    const uint8_t chain[] = { 60 };
    size_t n = ipv6_tcp(whole, chain, 1, "0123456789abcdefghijklmnopqrstuvwxyz");
    const uint8_t *rest = whole + 40;
    size_t rest_len = n - 40;
    cm_frag f;
    cm_frag_init(&f, 0, 0, 0);
    cm_pkt p;
    cm_dec_result r = CM_DEC_OTHER;
    size_t cuts[][2] = { { 48, rest_len - 48 }, { 0, 48 } };   /* the last first */
    for (int i = 0; i < 2; i++) {
        size_t off = cuts[i][0], len = cuts[i][1];
        memcpy(b, whole, 40);
        b[6] = 44;
        b[4] = (uint8_t)((8 + len) >> 8);
        b[5] = (uint8_t)(8 + len);
        memset(b + 40, 0, 8);
        b[40] = 60;
        uint16_t fo = (uint16_t)off | (i == 1 ? 1 : 0);
        b[42] = (uint8_t)(fo >> 8);
        b[43] = (uint8_t)fo;
        b[47] = 0x42;
        memcpy(b + 48, rest + off, len);
        assert_int_equal(cm_decode_frame(DLT_RAW, b, 48 + len, 48 + len, &p), CM_DEC_FRAGMENT);
        r = cm_frag_add(&f, 1, &p);
    }
    assert_int_equal(r, CM_DEC_TCP);
    assert_true(p.reassembled);
    assert_int_equal(p.payload_len, 36);
    assert_memory_equal(p.payload, "0123456789abcdefghijklmnopqrstuvwxyz", 36);
    char a[64];
    assert_string_equal(cm_addr_str(&p.dst, a, sizeof a), "[::1]:5683");
    cm_frag_free(&f);
}

/* ---- export ---- */

static uint16_t csum(const uint8_t *p, size_t n, uint32_t s)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        s += (uint32_t)p[n - 1] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

static void test_export_build(void **st)
{
    (void)st;
    cm_addr a = { 4, { 10, 0, 0, 2 }, 40001 }, b = { 4, { 10, 0, 0, 1 }, 5683 };
    const uint8_t coap[] = { 0x50, 0x02, 0x12, 0x34, 0xb1, 'h' };
    uint8_t out[256];
    size_t n = cm_export_build(&a, &b, coap, sizeof coap, out, sizeof out);
    assert_int_equal(n, 20 + 8 + sizeof coap);
    assert_int_equal(csum(out, 20, 0), 0xffff);          /* IPv4 header checksum verifies */
    uint32_t ph = csum(out + 12, 8, 0) + 17 + 8 + sizeof coap;
    assert_int_equal(csum(out + 20, 8 + sizeof coap, ph), 0xffff);
    assert_memory_equal(out + 28, coap, sizeof coap);
    cm_addr c = { 6, { 0 }, 40001 }, d = { 6, { 0 }, 5683 };
    c.ip[15] = 2;
    d.ip[15] = 1;
    n = cm_export_build(&c, &d, coap, sizeof coap, out, sizeof out);
    assert_int_equal(n, 40 + 8 + sizeof coap);
    ph = csum(out + 8, 32, 0) + 17 + 8 + sizeof coap;
    assert_int_equal(csum(out + 40, 8 + sizeof coap, ph), 0xffff);
    assert_int_equal(cm_export_build(&a, &b, coap, sizeof coap, out, 20), 0);
}

/* ---- the connection table (mon.c) with the real tracker and no keys ---- */

static cm_pkt mkpkt(int client, uint16_t cport, bool from_client, uint32_t seq, uint8_t flags,
                    const uint8_t *data, size_t len)
{
    cm_pkt p;
    memset(&p, 0, sizeof p);
    cm_addr dev = { 4, { 10, 0, 0, (uint8_t)client }, cport }, cloud = { 4, { 10, 0, 0, 1 }, 5683 };
    p.src = from_client ? dev : cloud;
    p.dst = from_client ? cloud : dev;
    p.seq = seq;
    p.flags = flags;
    p.payload = data;
    p.payload_len = p.payload_wire_len = len;
    return p;
}

/* SYN, SYN-ACK, the nonce; then nframes 18-byte frames from the device after a made-up handshake;
 * closes with FIN both ways when fin is set. */
static void feed_conn(cm_mon *m, int client, uint16_t port, double t, int nframes, bool fin)
{
    static uint8_t buf[384];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 167 + 13);           /* not text: a plausible nonce */
    uint32_t cs = 1000, ss = 50000;
    cm_pkt p = mkpkt(client, port, true, cs, CM_TCP_SYN, NULL, 0);
    cm_mon_packet(m, t, CM_DEC_TCP, &p);
    p = mkpkt(client, port, false, ss, CM_TCP_SYN | CM_TCP_ACK, NULL, 0);
    cm_mon_packet(m, t, CM_DEC_TCP, &p);
    cs++, ss++;
    p = mkpkt(client, port, false, ss, CM_TCP_ACK, buf, 40);
    cm_mon_packet(m, t + 0.01, CM_DEC_TCP, &p);
    ss += 40;
    p = mkpkt(client, port, true, cs, CM_TCP_ACK, buf, 256);
    cm_mon_packet(m, t + 0.02, CM_DEC_TCP, &p);
    cs += 256;
    p = mkpkt(client, port, false, ss, CM_TCP_ACK, buf, 384);
    cm_mon_packet(m, t + 0.03, CM_DEC_TCP, &p);
    ss += 384;
    uint8_t frame[18] = { 0x00, 0x10 };
    for (int i = 0; i < nframes; i++) {
        memset(frame + 2, i & 0xff, 16);
        p = mkpkt(client, port, true, cs, CM_TCP_ACK, frame, sizeof frame);
        cm_mon_packet(m, t + 0.04 + i * 0.001, CM_DEC_TCP, &p);
        cs += sizeof frame;
    }
    if (fin) {
        p = mkpkt(client, port, true, cs, CM_TCP_ACK | CM_TCP_FIN, NULL, 0);
        cm_mon_packet(m, t + 5, CM_DEC_TCP, &p);
        p = mkpkt(client, port, false, ss, CM_TCP_ACK | CM_TCP_FIN, NULL, 0);
        cm_mon_packet(m, t + 5, CM_DEC_TCP, &p);
        /* a late retransmission of the last frame belongs to the ended connection */
        p = mkpkt(client, port, true, cs - (nframes ? 18 : 0), CM_TCP_ACK, frame, nframes ? 18 : 0);
        if (nframes)
            cm_mon_packet(m, t + 6, CM_DEC_TCP, &p);
    }
}

static int count_ended(const cm_mon *m)
{
    int n = 0;
    for (guint i = 0; i < m->conns->len; i++)
        n += ((cm_conn *)g_ptr_array_index(m->conns, i))->ended;
    return n;
}

static void test_mon_history_and_linger(void **st)
{
    (void)st;
    kr_keyfile *kf = kr_keyfile_new_empty();
    cm_mon m;
    cm_mon_init(&m, kf);
    m.max_history = 2;
    for (int i = 0; i < 5; i++)
        feed_conn(&m, 2 + i, (uint16_t)(40000 + i), 100.0 + i * 10, 3, true);
    assert_int_equal(m.st.conns, 5);               /* late retransmissions opened nothing new */
    assert_int_equal(cm_mon_live_count(&m), 0);
    assert_int_equal(count_ended(&m), 2);          /* only the newest two ended ones are kept */
    cm_conn *last = g_ptr_array_index(m.conns, m.conns->len - 1);
    assert_int_equal(last->id, 5);
    assert_true(m.st.late >= 5);                    /* one late retransmission per connection */
    assert_string_equal(last->end_reason, "closed by both sides");
    assert_true(cm_conn_info(last)->verdict.final || cm_conn_info(last)->verdict.code != KR_V_NONE);
    cm_mon_free(&m);
    kr_keyfile_free(kf);
}

static void test_mon_table_limit_and_idle(void **st)
{
    (void)st;
    kr_keyfile *kf = kr_keyfile_new_empty();
    cm_mon m;
    cm_mon_init(&m, kf);
    m.max_conns = 3;
    m.idle = 30;
    for (int i = 0; i < 5; i++)
        feed_conn(&m, 2 + i, (uint16_t)(41000 + i), 200.0 + i, 1, false);
    assert_int_equal(cm_mon_live_count(&m), 3);    /* the table never holds more than its limit */
    /* the three live ones carry the protocol's handshake: none is evicted for a newcomer */
    assert_int_equal(m.st.evicted, 0);
    assert_true(m.st.untracked >= 2);              /* the two newcomers were not followed */
    assert_int_equal(m.st.conns, 3);
    cm_conn *first = g_ptr_array_index(m.conns, 0);
    assert_false(first->ended);
    cm_mon_expire(&m, 300.0);                      /* everything silent for more than 30 s */
    assert_int_equal(cm_mon_live_count(&m), 0);
    assert_int_equal(m.st.expired, 3);
    assert_string_equal(first->end_reason, "idle timeout");
    cm_mon_free(&m);
    kr_keyfile_free(kf);
}

static void test_mon_port_reuse(void **st)
{
    (void)st;
    kr_keyfile *kf = kr_keyfile_new_empty();
    cm_mon m;
    cm_mon_init(&m, kf);
    feed_conn(&m, 2, 43000, 400.0, 2, false);       /* never closed (the FINs were not captured) */
    feed_conn(&m, 2, 43000, 410.0, 2, false);       /* the same ports again, with a new SYN */
    assert_int_equal(m.st.conns, 2);
    cm_conn *a = g_ptr_array_index(m.conns, 0), *b = g_ptr_array_index(m.conns, 1);
    assert_true(a->ended);
    assert_string_equal(a->end_reason, "its ports were reused by a new connection");
    assert_false(b->ended);
    assert_true(b->saw_syn);
    cm_mon_free(&m);
    kr_keyfile_free(kf);
}

static void test_mon_event_limit(void **st)
{
    (void)st;
    kr_keyfile *kf = kr_keyfile_new_empty();
    cm_mon m;
    cm_mon_init(&m, kf);
    feed_conn(&m, 2, 42000, 300.0, 3000, false);
    cm_conn *c = g_ptr_array_index(m.conns, 0);
    assert_int_equal(c->events->len, CM_MAX_EVENTS);   /* bounded */
    assert_true(c->events_dropped > 0);
    /* the opening stays: the SYN, then the first steps of the handshake */
    const cm_event *e0 = &g_array_index(c->events, cm_event, 0);
    assert_int_equal(e0->type, CM_EV_TCP);
    assert_string_equal(e0->title, "SYN");
    bool first_step = false;
    for (int i = 1; i < 6; i++) {
        const cm_event *ei = &g_array_index(c->events, cm_event, i);
        first_step |= ei->type == CM_EV_STEP && ei->time < 300.015;   /* the 40 bytes at 300.01 */
    }
    assert_true(first_step);
    /* and the newest are the last frames */
    const cm_event *e = &g_array_index(c->events, cm_event, c->events->len - 1);
    assert_true(e->time > 300.0 + 0.04 + 2990 * 0.001);
    cm_mon_free(&m);
    kr_keyfile_free(kf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_links),
        cmocka_unit_test(test_decode_ipv6_ext),
        cmocka_unit_test(test_decode_lengths_and_checksum),
        cmocka_unit_test(test_decode_window_scale),
        cmocka_unit_test(test_json_int),
        cmocka_unit_test(test_time_str),
        cmocka_unit_test(test_decode_vlan_stack),
        cmocka_unit_test(test_decode_ipv6_chain),
        cmocka_unit_test(test_frag_reverse_and_duplicate),
        cmocka_unit_test(test_frag_conflicting_overlap),
        cmocka_unit_test(test_frag_limits),
        cmocka_unit_test(test_frag_ipv6),
        cmocka_unit_test(test_export_build),
        cmocka_unit_test(test_mon_history_and_linger),
        cmocka_unit_test(test_mon_table_limit_and_idle),
        cmocka_unit_test(test_mon_port_reuse),
        cmocka_unit_test(test_mon_event_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
