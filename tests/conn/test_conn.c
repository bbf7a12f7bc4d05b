/* Unit tests of libkeyring's connection layer (keyring/conn.h): the byte stream of one direction
 * (reasm.c), and each rule of the layer: ISN+1, out-of-order, overlap, RST in and out of the window, an
 * RST the connection survives, refused, eviction under a SYN flood, the IP length against the captured
 * length, gaps, idle expiry and the nonce rule; frames read already that a conflicting copy makes read
 * again (or disputes), until their receiver acknowledges them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "conn_int.h"

/* ---- a recorder for reassembly output ---- */

typedef struct rec {
    uint8_t out[4096];
    size_t n;
    int gaps;
    uint64_t gap_bytes;
    int fins;
    char log[512];           /* "d5 g3 d4 f" : deliveries, gaps, fin in order */
} rec;

static void r_deliver(void *ud, const uint8_t *d, size_t len, double ts, bool from_packet)
{
    (void)ts;
    (void)from_packet;
    rec *r = ud;
    assert_true(r->n + len <= sizeof r->out);
    memcpy(r->out + r->n, d, len);
    r->n += len;
    snprintf(r->log + strlen(r->log), sizeof r->log - strlen(r->log), "d%zu ", len);
}

static void r_gap(void *ud, uint64_t n, double ts)
{
    (void)ts;
    rec *r = ud;
    r->gaps++;
    r->gap_bytes += n;
    snprintf(r->log + strlen(r->log), sizeof r->log - strlen(r->log), "g%llu ", (unsigned long long)n);
}

static void r_fin(void *ud, double ts)
{
    (void)ts;
    rec *r = ud;
    r->fins++;
    snprintf(r->log + strlen(r->log), sizeof r->log - strlen(r->log), "f ");
}

static const kr_reasm_ops ops = { r_deliver, r_gap, r_fin, NULL };
static const uint8_t text[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/* feeds text[from, to) as one segment of a stream whose first byte has sequence number base */
static void seg(kr_reasm *s, rec *r, uint32_t base, size_t from, size_t to, bool fin)
{
    kr_reasm_segment(s, base + (uint32_t)from, text + from, to - from, to - from, fin, false, 1.0, &ops, r);
}

static void test_in_order(void **st)
{
    (void)st;
    kr_reasm s;
    kr_reasm_rare sr;
    rec r = { 0 };
    kr_reasm_init(&s, &sr, 1024);
    kr_reasm_syn(&s, 999);
    seg(&s, &r, 1000, 0, 10, false);
    seg(&s, &r, 1000, 10, 30, true);
    assert_int_equal(r.n, 30);
    assert_memory_equal(r.out, text, 30);
    assert_string_equal(r.log, "d10 d20 f ");
    kr_reasm_free(&s);
}

static void test_retransmission_and_overlap(void **st)
{
    (void)st;
    kr_reasm s;
    kr_reasm_rare sr;
    rec r = { 0 };
    kr_reasm_init(&s, &sr, 1024);
    kr_reasm_syn(&s, 99);
    seg(&s, &r, 100, 0, 10, false);
    seg(&s, &r, 100, 0, 10, false);     /* exact copy */
    seg(&s, &r, 100, 5, 15, false);     /* overlaps the end */
    seg(&s, &r, 100, 2, 4, false);      /* inside what was delivered */
    seg(&s, &r, 100, 15, 20, false);
    assert_int_equal(r.n, 20);
    assert_memory_equal(r.out, text, 20);
    assert_int_equal(r.gaps, 0);
    assert_int_equal(s.retransmitted, 10 + 5 + 2);
    kr_reasm_free(&s);
}

static void test_out_of_order(void **st)
{
    (void)st;
    kr_reasm s;
    kr_reasm_rare sr;
    rec r = { 0 };
    kr_reasm_init(&s, &sr, 1024);
    kr_reasm_syn(&s, 0xfffffff0u);      /* the sequence numbers wrap inside the stream */
    uint32_t base = 0xfffffff1u;
    seg(&s, &r, base, 20, 30, false);
    seg(&s, &r, base, 10, 20, false);
    seg(&s, &r, base, 15, 25, false);   /* overlaps two waiting ones */
    assert_int_equal(r.n, 0);
    seg(&s, &r, base, 0, 10, false);
    assert_int_equal(r.n, 30);
    assert_memory_equal(r.out, text, 30);
    assert_null(s.ooo);
    assert_int_equal(kr_reasm_memory(&s), 0);
    kr_reasm_free(&s);
}

static void test_one_byte_segments_reversed(void **st)
{
    (void)st;
    kr_reasm s;
    kr_reasm_rare sr;
    rec r = { 0 };
    kr_reasm_init(&s, &sr, 4096);
    kr_reasm_syn(&s, 0);
    for (size_t i = 40; i > 0; i--)
        seg(&s, &r, 1, i - 1, i, false);
    assert_int_equal(r.n, 40);
    assert_memory_equal(r.out, text, 40);
    kr_reasm_free(&s);
}

static void test_gap_at_buffer_limit(void **st)
{
    (void)st;
    kr_reasm s;
    kr_reasm_rare sr;
    rec r = { 0 };
    kr_reasm_init(&s, &sr, 16);              /* at most 16 bytes wait */
    kr_reasm_syn(&s, 0);
    seg(&s, &r, 1, 0, 5, false);
    seg(&s, &r, 1, 10, 20, false);      /* 5..10 missing: waits (10 bytes) */
    assert_int_equal(r.gaps, 0);
    seg(&s, &r, 1, 20, 30, false);      /* 20 bytes would wait: the hole is given up */
    assert_int_equal(r.gaps, 1);
    assert_int_equal(r.gap_bytes, 5);
    assert_int_equal(r.n, 25);
    assert_memory_equal(r.out + 5, text + 10, 20);
    assert_string_equal(r.log, "d5 g5 d10 d10 ");
    assert_true(kr_reasm_memory(&s) == 0);
    kr_reasm_free(&s);
}

/* A limit on waiting bytes beyond what a direction can hold (4 GiB, or more) is taken as 1 GiB, never cut
 * to a smaller number: the segments ahead of a hole still wait */
static void test_huge_waiting_limit(void **st)
{
    (void)st;
    const size_t limits[] = { (size_t)1 << 32, ((size_t)1 << 32) + 8, SIZE_MAX };
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        kr_reasm s;
        kr_reasm_rare sr;
        rec r = { 0 };
        kr_reasm_init(&s, &sr, limits[k]);
        assert_int_equal(sr.max_ooo_bytes, KR_REASM_MAX_WAITING);
        kr_reasm_syn(&s, 0);
        seg(&s, &r, 1, 10, 20, false);  /* ahead of a hole: waits */
        assert_int_equal(r.gaps, 0);
        assert_int_equal(r.n, 0);
        seg(&s, &r, 1, 0, 10, false);   /* the hole filled: all of it, in order */
        assert_int_equal(r.n, 20);
        assert_memory_equal(r.out, text, 20);
        kr_reasm_free(&s);
    }
}

static void test_gap_at_end_and_fin(void **st)
{
    (void)st;
    kr_reasm s;
    kr_reasm_rare sr;
    rec r = { 0 };
    kr_reasm_init(&s, &sr, 1024);
    kr_reasm_syn(&s, 0);
    seg(&s, &r, 1, 0, 5, false);
    seg(&s, &r, 1, 8, 12, true);        /* FIN after a hole */
    assert_int_equal(r.fins, 0);
    kr_reasm_flush(&s, 2.0, &ops, &r);
    assert_string_equal(r.log, "d5 g3 d4 f ");
    kr_reasm_free(&s);
}

static void test_fin_hole_only(void **st)
{
    (void)st;
    kr_reasm s;
    kr_reasm_rare sr;
    rec r = { 0 };
    kr_reasm_init(&s, &sr, 1024);
    kr_reasm_syn(&s, 0);
    seg(&s, &r, 1, 0, 5, false);
    /* a bare FIN at 9: bytes 5..9 never seen */
    kr_reasm_segment(&s, 10, NULL, 0, 0, true, false, 1.0, &ops, &r);
    kr_reasm_flush(&s, 2.0, &ops, &r);
    assert_string_equal(r.log, "d5 g4 f ");
    kr_reasm_free(&s);
}

static void test_ack_gives_up_hole(void **st)
{
    (void)st;
    kr_reasm s;
    kr_reasm_rare sr;
    rec r = { 0 };
    kr_reasm_init(&s, &sr, 1024);
    kr_reasm_syn(&s, 0);
    seg(&s, &r, 1, 0, 5, false);
    seg(&s, &r, 1, 9, 12, false);
    kr_reasm_ack(&s, 1 + 6, 1.0, &ops, &r);  /* the peer has bytes up to 6 only: keep waiting */
    assert_int_equal(r.gaps, 0);
    kr_reasm_ack(&s, 1 + 12, 1.0, &ops, &r); /* the peer got everything: the capture lost 5..9 */
    assert_string_equal(r.log, "d5 g4 d3 ");
    kr_reasm_free(&s);
}

static void test_joined_late(void **st)
{
    (void)st;
    kr_reasm s;
    kr_reasm_rare sr;
    rec r = { 0 };
    kr_reasm_init(&s, &sr, 1024);
    seg(&s, &r, 5000, 10, 20, false);   /* no SYN: the segments wait for the other side */
    seg(&s, &r, 5000, 20, 25, false);
    assert_int_equal(r.n, 0);
    kr_reasm_settle(&s, 1.0, &ops, &r);  /* the other side sent: the stream starts at the lowest */
    assert_int_equal(r.n, 15);
    assert_memory_equal(r.out, text + 10, 15);
    seg(&s, &r, 5000, 25, 30, false);   /* then bytes flow at once */
    assert_int_equal(r.n, 20);
    assert_int_equal(r.gaps, 0);
    kr_reasm_free(&s);
}

static void test_joined_late_out_of_order(void **st)
{
    (void)st;
    kr_reasm s;
    kr_reasm_rare sr;
    rec r = { 0 };
    kr_reasm_init(&s, &sr, 1024);
    seg(&s, &r, 7000, 8, 16, false);    /* the later segment is seen first */
    seg(&s, &r, 7000, 0, 8, false);
    kr_reasm_flush(&s, 2.0, &ops, &r);  /* the end settles it too */
    assert_string_equal(r.log, "d8 d8 ");
    assert_memory_equal(r.out, text, 16);
    kr_reasm_free(&s);
}

static void test_joined_late_settles_in_time(void **st)
{
    (void)st;
    kr_reasm s;
    kr_reasm_rare sr;
    rec r = { 0 };
    kr_reasm_init(&s, &sr, 1024);
    for (size_t i = 0; i < 8; i++)
        seg(&s, &r, 100, i * 2, i * 2 + 2, false);
    assert_int_equal(r.n, 0);
    kr_reasm_age(&s, 1.5, 5.0, &ops, &r);   /* half a second later: still waiting */
    assert_int_equal(r.n, 0);
    kr_reasm_age(&s, 2.5, 5.0, &ops, &r);   /* the other side stays silent: start anyway */
    assert_int_equal(r.n, 16);
    assert_memory_equal(r.out, text, 16);
    kr_reasm_free(&s);
}

static void test_snaplen_cut(void **st)
{
    (void)st;
    kr_reasm s;
    kr_reasm_rare sr;
    rec r = { 0 };
    kr_reasm_init(&s, &sr, 1024);
    kr_reasm_syn(&s, 0);
    kr_reasm_segment(&s, 1, text, 4, 10, false, false, 1.0, &ops, &r);   /* 10 on the wire, 4 captured */
    seg(&s, &r, 1, 10, 14, false);
    assert_string_equal(r.log, "d4 g6 d4 ");
    kr_reasm_free(&s);
}

/* ---- the layer: a recorder of what it reports ---- */

typedef struct log {
    char text[8192];
    int opens, ends, verdicts;
    kr_verdict_code last_code;
    bool last_final;
    char end_reason[64];
    int steps[8];            /* per kr_step_kind */
    int reasons[16];         /* per kr_step_reason */
    uint8_t frame_head[16];  /* first bytes of the last frame step */
    uint64_t first_nonce_offset;
    int decrypted;           /* frame steps decrypted whole */
    int again;               /* frame steps read again from another copy */
    bool last_proven;
    int findings;            /* findings given */
    uint32_t info_findings;  /* the tracker's count of findings standing, at the last step or finding */
    char last_note[384];     /* the last step's note */
    int last_supersedes;     /* the last step's supersedes */
} log_t;

static void lg(log_t *l, const char *fmt, ...)
{
    size_t n = strlen(l->text);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->text + n, sizeof l->text - n, fmt, ap);
    va_end(ap);
}

static void c_open(void *ud, kr_conn *c) { (void)c; ((log_t *)ud)->opens++; }

static void c_step(void *ud, kr_conn *c, const kr_step *s)
{
    (void)c;
    log_t *l = ud;
    if (s->kind == KR_STEP_NONCE && l->steps[KR_STEP_NONCE] == 0)
        l->first_nonce_offset = s->offset;
    l->steps[s->kind]++;
    if ((unsigned)s->reason < 16)
        l->reasons[s->reason]++;
    if ((s->kind == KR_STEP_FRAME || s->kind == KR_STEP_HELLO) && s->bytes && s->length >= 16)
        memcpy(l->frame_head, s->bytes, 16);
    l->decrypted += s->frame_state == KR_FRAME_DECRYPTED;
    l->again += strncmp(s->note, "read again", 10) == 0;
    snprintf(l->last_note, sizeof l->last_note, "%s", s->note);
    l->last_supersedes = s->supersedes;
    l->info_findings = kr_tracker_info(kr_conn_tracker(c))->findings;
    lg(l, "step:%s ", kr_step_str(s->kind));
}

static void c_finding(void *ud, kr_conn *c, const kr_finding *f)
{
    (void)f;
    ((log_t *)ud)->findings++;
    ((log_t *)ud)->info_findings = kr_tracker_info(kr_conn_tracker(c))->findings;
}

static void c_verdict(void *ud, kr_conn *c, const kr_verdict *v)
{
    (void)c;
    log_t *l = ud;
    l->verdicts++;
    l->last_code = v->code;
    l->last_final = v->final;
    l->last_proven = v->proven;
}

static void c_tcp(void *ud, kr_conn *c, const kr_tcp_event *e)
{
    (void)c;
    if (e->kind == KR_TCP_EV_GAP)
        lg(ud, "gap%llu ", (unsigned long long)e->nbytes);
    else
        lg(ud, "%s ", kr_tcp_kind_str(e->kind));
}

static void c_end(void *ud, kr_conn *c, const char *reason)
{
    (void)c;
    log_t *l = ud;
    l->ends++;
    snprintf(l->end_reason, sizeof l->end_reason, "%s", reason);
}

static const kr_conn_callbacks cbs = { .open = c_open, .step = c_step, .verdict = c_verdict, .tcp = c_tcp, .finding = c_finding,
                                       .end = c_end };

#define DEV_PORT 40001
#define ISN_D 1000u
#define ISN_S 5000u

static uint8_t nonce[40], idblock[256], sblock[384];

static void fill(void)
{
    for (size_t i = 0; i < sizeof nonce; i++)
        nonce[i] = (uint8_t)(i * 167 + 13);
    for (size_t i = 0; i < sizeof idblock; i++)
        idblock[i] = (uint8_t)(i * 91 + 7);
    for (size_t i = 0; i < sizeof sblock; i++)
        sblock[i] = (uint8_t)(i * 53 + 3);
}

static kr_packet pk(bool from_dev, uint16_t port, uint32_t seq, uint32_t ack, uint8_t flags, const uint8_t *d,
                    size_t n, double t)
{
    kr_packet p;
    memset(&p, 0, sizeof p);
    kr_endpoint dev = { 4, { 10, 0, 0, 2 }, port }, cloud = { 4, { 10, 0, 0, 1 }, 5683 };
    p.src = from_dev ? dev : cloud;
    p.dst = from_dev ? cloud : dev;
    p.seq = seq;
    p.ack = ack;
    p.flags = flags;
    p.window = 65535;
    p.payload = d;
    p.captured_len = p.wire_len = n;
    p.time = t;
    return p;
}

static kr_conn_table *table_kf(log_t *l, size_t max_conns, const kr_keyfile *kf)
{
    memset(l, 0, sizeof *l);
    fill();
    kr_conn_options o;
    kr_conn_options_default(&o);
    o.max_conns = max_conns;
    o.idle = 30;
    return kr_conn_table_new(kf, &o, &cbs, l);
}

static kr_conn_table *table(log_t *l, size_t max_conns)
{
    static kr_keyfile *kf;
    if (!kf)
        kf = kr_keyfile_new_empty();     /* lives for the whole test run */
    memset(l, 0, sizeof *l);
    fill();
    kr_conn_options o;
    kr_conn_options_default(&o);
    o.max_conns = max_conns;
    o.idle = 30;
    return kr_conn_table_new(kf, &o, &cbs, l);
}

static void feed(kr_conn_table *t, kr_packet p)
{
    kr_conn_packet(t, &p);
}

/* SYN, SYN-ACK, ACK, the nonce, the id block, the session block (no keys: the handshake's shape); the
 * SYNs' window scale options (-1: none) when known. */
static void handshake_opts(kr_conn_table *t, uint16_t port, double t0, bool known, int dev_ws, int cloud_ws)
{
    kr_packet p = pk(true, port, ISN_D, 0, KR_TCP_SYN, NULL, 0, t0);
    p.options_known = known;
    p.wscale = (int8_t)dev_ws;
    feed(t, p);
    p = pk(false, port, ISN_S, ISN_D + 1, KR_TCP_SYN | KR_TCP_ACK, NULL, 0, t0 + 0.001);
    p.options_known = known;
    p.wscale = (int8_t)cloud_ws;
    feed(t, p);
    feed(t, pk(true, port, ISN_D + 1, ISN_S + 1, KR_TCP_ACK, NULL, 0, t0 + 0.002));
    feed(t, pk(false, port, ISN_S + 1, ISN_D + 1, KR_TCP_ACK, nonce, 40, t0 + 0.01));
    feed(t, pk(true, port, ISN_D + 1, ISN_S + 41, KR_TCP_ACK, idblock, 256, t0 + 0.02));
    feed(t, pk(false, port, ISN_S + 41, ISN_D + 257, KR_TCP_ACK, sblock, 384, t0 + 0.03));
}

static void handshake(kr_conn_table *t, uint16_t port, double t0)
{
    handshake_opts(t, port, t0, false, -1, -1);
}

/* kr_conn_in_packet: true in the callbacks of the connection whose packet is handled, false in those of one
 * that packet made the table end (eviction), and after the packet */
typedef struct inpkt_log {
    char text[256];
} inpkt_log;

static void ip_open(void *ud, kr_conn *c)
{
    inpkt_log *l = ud;
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof l->text - n, "open%u:%d ", kr_conn_id(c), kr_conn_in_packet(c));
}

static void ip_end(void *ud, kr_conn *c, const char *reason)
{
    (void)reason;
    inpkt_log *l = ud;
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof l->text - n, "end%u:%d ", kr_conn_id(c), kr_conn_in_packet(c));
}

static void test_in_packet(void **st)
{
    (void)st;
    static const kr_conn_callbacks ipcb = { .open = ip_open, .end = ip_end };
    inpkt_log l = { { 0 } };
    kr_keyfile *kf = kr_keyfile_new_empty();
    kr_conn_options o;
    kr_conn_options_default(&o);
    o.max_conns = 1;
    kr_conn_table *t = kr_conn_table_new(kf, &o, &ipcb, &l);
    kr_packet a = pk(true, DEV_PORT, ISN_D, 0, KR_TCP_SYN, NULL, 0, 1.0);
    kr_conn *ca = kr_conn_packet(t, &a);
    assert_non_null(ca);
    assert_false(kr_conn_in_packet(ca));              /* the packet is handled */
    kr_packet b = pk(true, DEV_PORT + 1, ISN_D, 0, KR_TCP_SYN, NULL, 0, 2.0);
    kr_conn *cb = kr_conn_packet(t, &b);              /* the full table ends the first: not its packet */
    assert_non_null(cb);
    assert_false(kr_conn_in_packet(cb));
    kr_packet fd = pk(true, DEV_PORT + 1, ISN_D + 1, 0, KR_TCP_FIN | KR_TCP_ACK, NULL, 0, 3.0);
    kr_packet fs = pk(false, DEV_PORT + 1, ISN_S + 1, ISN_D + 2, KR_TCP_FIN | KR_TCP_ACK, NULL, 0, 3.1);
    kr_conn_packet(t, &fd);
    kr_conn_packet(t, &fs);                           /* both sides closed: it ends in its own packet */
    assert_string_equal(l.text, "open1:1 end1:0 open2:1 end2:1 ");
    kr_conn_table_free(t);
    kr_keyfile_free(kf);
}

static void test_isn_plus_one_and_out_of_order(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    feed(t, pk(true, DEV_PORT, ISN_D, 0, KR_TCP_SYN, NULL, 0, 1.0));
    feed(t, pk(false, DEV_PORT, ISN_S, ISN_D + 1, KR_TCP_SYN | KR_TCP_ACK, NULL, 0, 1.001));
    /* the nonce's second half comes first: it waits for the first, which starts at ISN+1 */
    feed(t, pk(false, DEV_PORT, ISN_S + 21, ISN_D + 1, KR_TCP_ACK, nonce + 20, 20, 1.01));
    assert_int_equal(l.steps[KR_STEP_NONCE], 0);
    feed(t, pk(false, DEV_PORT, ISN_S + 1, ISN_D + 1, KR_TCP_ACK, nonce, 20, 1.011));
    assert_int_equal(l.steps[KR_STEP_NONCE], 1);
    assert_int_equal(l.first_nonce_offset, 0);
    assert_non_null(strstr(l.text, "SYN SYN-ACK step:nonce"));
    kr_conn_table_free(t);
}

static void test_lost_first_segment_is_a_gap_from_isn(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    feed(t, pk(true, DEV_PORT, ISN_D, 0, KR_TCP_SYN, NULL, 0, 1.0));
    feed(t, pk(false, DEV_PORT, ISN_S, ISN_D + 1, KR_TCP_SYN | KR_TCP_ACK, NULL, 0, 1.001));
    /* the nonce was lost; the session block comes; the device acknowledges it all: 40 bytes are missing */
    feed(t, pk(false, DEV_PORT, ISN_S + 41, ISN_D + 1, KR_TCP_ACK, sblock, 384, 1.02));
    feed(t, pk(true, DEV_PORT, ISN_D + 1, ISN_S + 425, KR_TCP_ACK, NULL, 0, 1.03));
    assert_non_null(strstr(l.text, "gap40 "));          /* counted from ISN+1: exactly the nonce is missing */
    assert_int_equal(kr_conn_table_stats(t)->packets, 4);
    kr_conn_table_free(t);
}

static void test_overlap_with_other_bytes(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    handshake(t, DEV_PORT, 1.0);
    uint8_t other[40];
    memset(other, 0xee, sizeof other);
    /* a copy of the nonce's bytes with other content: reported as seen before, never handed on twice */
    feed(t, pk(false, DEV_PORT, ISN_S + 1, ISN_D + 257, KR_TCP_ACK, other, 40, 1.04));
    assert_int_equal(l.steps[KR_STEP_NONCE], 1);
    assert_int_equal(l.steps[KR_STEP_SESSIONBLOCK], 1);
    assert_non_null(strstr(l.text, "retransmitted"));
    kr_conn_table_free(t);
}

/* A frame of 32 bytes after the handshake: its length prefix and body. */
static void frame32(uint8_t f[34])
{
    f[0] = 0;
    f[1] = 32;
    for (int i = 2; i < 34; i++)
        f[i] = (uint8_t)(i * 7 + 1);
}

/* Another copy of bytes of a frame being read, with other bytes: the tracker gets it, and the frame is
 * disputed (no key here can tell the copies apart); the same bytes again are a plain retransmission. */
static void test_conflicting_copy_reaches_the_tracker(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    handshake(t, DEV_PORT, 1.0);
    uint8_t f[34], other[10];
    frame32(f);
    memcpy(other, f, sizeof other);
    other[7] ^= 1;
    uint32_t s0 = ISN_D + 257;
    feed(t, pk(true, DEV_PORT, s0, ISN_S + 425, KR_TCP_ACK, f, 10, 1.04));
    feed(t, pk(true, DEV_PORT, s0, ISN_S + 425, KR_TCP_ACK, f, 10, 1.041));        /* the same bytes */
    feed(t, pk(true, DEV_PORT, s0 + 10, ISN_S + 425, KR_TCP_ACK, f + 10, 24, 1.042));
    assert_int_equal(l.reasons[KR_WHY_DISPUTED], 0);
    feed(t, pk(true, DEV_PORT, s0 + 34, ISN_S + 425, KR_TCP_ACK, f, 10, 1.05));
    feed(t, pk(true, DEV_PORT, s0 + 34, ISN_S + 425, KR_TCP_ACK, other, 10, 1.051)); /* other bytes */
    feed(t, pk(true, DEV_PORT, s0 + 44, ISN_S + 425, KR_TCP_ACK, f + 10, 24, 1.052));
    assert_int_equal(l.reasons[KR_WHY_DISPUTED], 1);
    kr_conn_table_free(t);
}

/* Two copies of the same out-of-order segment with other bytes both wait: neither is dropped for the other
 * before the meaning decides. */
static void test_conflicting_copies_wait_out_of_order(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    handshake(t, DEV_PORT, 1.0);
    uint8_t f[34], other[8];
    frame32(f);
    memcpy(other, f + 10, sizeof other);
    other[3] ^= 0x80;
    uint32_t s0 = ISN_D + 257;
    feed(t, pk(true, DEV_PORT, s0 + 10, ISN_S + 425, KR_TCP_ACK, f + 10, 8, 1.04));
    feed(t, pk(true, DEV_PORT, s0 + 10, ISN_S + 425, KR_TCP_ACK, other, 8, 1.041));
    feed(t, pk(true, DEV_PORT, s0, ISN_S + 425, KR_TCP_ACK, f, 10, 1.042));
    feed(t, pk(true, DEV_PORT, s0 + 18, ISN_S + 425, KR_TCP_ACK, f + 18, 16, 1.043));
    assert_int_equal(l.steps[KR_STEP_HELLO] + l.steps[KR_STEP_FRAME], 1);
    assert_int_equal(l.reasons[KR_WHY_DISPUTED], 1);
    kr_conn_table_free(t);
}

/* ---- frames read already, and a copy that comes after (keyring/tracker/reread.c) ---- */

/* The session material of the keyfile's one session line: key, IV, salt. */
static const uint8_t M[KR_SESSION_LEN] = {
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xf0, 0x01,
    0x02, 0x13, 0x24, 0x35, 0x46, 0x57, 0x68, 0x79, 0x8a, 0x9b, 0xac, 0xbd, 0xce, 0xdf, 0xe0, 0xf1,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78 };

static const kr_keyfile *session_keyfile(void)
{
    static kr_keyfile *kf;
    if (!kf) {
        char text[160], hex[2 * KR_SESSION_LEN + 1];
        for (int i = 0; i < KR_SESSION_LEN; i++)
            snprintf(hex + 2 * i, 3, "%02x", M[i]);
        snprintf(text, sizeof text, "session 53ff6c065067544816300187 %s\n", hex);
        kr_err err;
        memset(&err, 0, sizeof err);
        kf = kr_keyfile_parse(text, strlen(text), ".", "test-keyfile", &err);
        assert_non_null(kf);
    }
    return kf;
}

/* A CoAP NON POST /h (a Hello) or /e/x with a payload of n bytes (at most 64), message id id, encrypted as
 * one frame by c (which moves on to the next IV); returns the frame's length. */
static size_t enc_frame(kr_cipher *c, char path, uint16_t id, size_t n, uint8_t fill_byte, uint8_t out[96])
{
    uint8_t m[80] = { 0x50, 0x02, (uint8_t)(id >> 8), (uint8_t)id, 0xb1, (uint8_t)path, 0x01, 'x', 0xff };
    size_t head = path == 'h' ? 6 : 8;
    m[head] = 0xff;
    memset(m + head + 1, fill_byte, n);
    int len = kr_cipher_encrypt(c, m, head + 1 + n, out, 96);
    assert_true(len > 0);
    return (size_t)len;
}

typedef struct sess_frames {
    uint8_t d[5][96];        /* the device's frames, in order */
    size_t dl[5];
    uint8_t other[96];       /* another first frame at the same IV, that decrypts too */
    uint8_t c[96];           /* the cloud's first frame */
    size_t cl;
} sess_frames;

static void make_frames(sess_frames *f)
{
    kr_cipher *dc = kr_cipher_new(M, M + 16), *cc = kr_cipher_new(M, M + 16), *oc = kr_cipher_new(M, M + 16);
    f->dl[0] = enc_frame(dc, 'h', 1, 6, 'a', f->d[0]);   /* the Hello, 18 bytes: one block */
    f->dl[1] = enc_frame(dc, 'e', 2, 20, 'b', f->d[1]);  /* 34 bytes: two blocks */
    f->dl[2] = enc_frame(dc, 'e', 3, 4, 'c', f->d[2]);   /* one block */
    f->dl[3] = enc_frame(dc, 'e', 4, 4, 'c', f->d[3]);
    f->dl[4] = enc_frame(dc, 'e', 5, 4, 'c', f->d[4]);
    assert_int_equal(enc_frame(oc, 'h', 9, 6, 'z', f->other), f->dl[0]);
    f->cl = enc_frame(cc, 'h', 7, 6, 'd', f->c);
    kr_cipher_free(dc);
    kr_cipher_free(cc);
    kr_cipher_free(oc);
}

/* A garbage copy of a frame: its length prefix, other bytes after it. */
static void garbage(const uint8_t *f, size_t n, uint8_t *g, uint8_t seed)
{
    memcpy(g, f, 2);
    for (size_t i = 2; i < n; i++)
        g[i] = (uint8_t)(i * 29 + seed);
}

#define D0 (ISN_D + 257)     /* the device's first byte after the id block */
#define D1 (D0 + 18)         /* its second frame (the first, 18 bytes, installs the session line's key) */
#define D2 (D1 + 34)
#define C0 (ISN_S + 425)     /* the cloud's first byte after the session block */

/* The frames, a table with the session line, and the device's first frame (its Hello) read with it. */
static kr_conn_table *session_start(log_t *l, sess_frames *f)
{
    make_frames(f);
    kr_conn_table *t = table_kf(l, 16, session_keyfile());
    handshake(t, DEV_PORT, 1.0);
    feed(t, pk(true, DEV_PORT, D0, C0, KR_TCP_ACK, f->d[0], f->dl[0], 1.04));
    assert_int_equal(l->decrypted, 1);
    return t;
}

/* Where the device's frame i starts (the first two are 18 and 34 bytes, the others 18). */
static uint32_t dev_seq(int i)
{
    return i == 0 ? D0 : i == 1 ? D1 : D2 + 18u * (uint32_t)(i - 2);
}

/* The device's frame i, its real bytes, at its place in the stream. */
static void send_real(kr_conn_table *t, const sess_frames *f, int i, double ts)
{
    feed(t, pk(true, DEV_PORT, dev_seq(i), C0, KR_TCP_ACK, f->d[i], f->dl[i], ts));
}

/* What the steps so far show: frames read again, frames decrypted, and the last frame step's first bytes. */
static void expect_steps(const log_t *l, int again, int decrypted, const uint8_t *head)
{
    assert_int_equal(l->again, again);
    assert_int_equal(l->decrypted, decrypted);
    if (head)
        assert_memory_equal(l->frame_head, head, 16);
}

/* The device's second frame with its length prefix and garbage after it (seed): it does not decrypt. */
static void send_garbage(kr_conn_table *t, const sess_frames *f, uint8_t seed, double ts)
{
    uint8_t g[96];
    garbage(f->d[1], f->dl[1], g, seed);
    feed(t, pk(true, DEV_PORT, D1, C0, KR_TCP_ACK, g, f->dl[1], ts));
}

/* The cloud's Hello (acknowledging the device's bytes up to dev_end), then both sides close: the final
 * verdict is ok; returns whether it is proven. The table is freed. */
static bool cloud_hello_and_close(kr_conn_table *t, const log_t *l, const sess_frames *f, uint32_t dev_end,
                                  double t0)
{
    feed(t, pk(false, DEV_PORT, C0, dev_end, KR_TCP_ACK, f->c, f->cl, t0));
    feed(t, pk(true, DEV_PORT, dev_end, C0 + 18, KR_TCP_ACK | KR_TCP_FIN, NULL, 0, t0 + 0.01));
    feed(t, pk(false, DEV_PORT, C0 + 18, dev_end + 1, KR_TCP_ACK | KR_TCP_FIN, NULL, 0, t0 + 0.02));
    kr_conn_table_free(t);
    assert_int_equal(l->last_code, KR_V_OK);
    assert_true(l->last_final);
    return l->last_proven;
}

/* The device's frames 1 to 4 after its Hello, as one stream of n bytes (prefix: frame 1's length prefix as
 * sent, 0 for the real one), fed in segments of `chunk` bytes (0: one segment per frame); then the cloud's
 * Hello and both closes. The log is left in l. */
static void frames_in_chunks(log_t *l, size_t chunk, unsigned prefix)
{
    sess_frames f;
    kr_conn_table *t = session_start(l, &f);
    uint8_t s[4 * 96];
    size_t n = 0, ends[4];
    for (int i = 1; i <= 4; i++) {
        memcpy(s + n, f.d[i], f.dl[i]);
        n += f.dl[i];
        ends[i - 1] = n;
    }
    if (prefix) {
        s[0] = (uint8_t)(prefix >> 8);
        s[1] = (uint8_t)prefix;
    }
    for (size_t at = 0, k = 0; at < n; k++) {
        size_t end = chunk ? (at + chunk < n ? at + chunk : n) : ends[k];
        feed(t, pk(true, DEV_PORT, D1 + (uint32_t)at, C0, KR_TCP_ACK, s + at, end - at, 1.05 + 0.001 * (double)k));
        at = end;
    }
    feed(t, pk(false, DEV_PORT, C0, D1 + (uint32_t)n, KR_TCP_ACK, f.c, f.cl, 1.2));
    feed(t, pk(true, DEV_PORT, D1 + (uint32_t)n, C0 + 18, KR_TCP_ACK | KR_TCP_FIN, NULL, 0, 1.21));
    feed(t, pk(false, DEV_PORT, C0 + 18, D1 + (uint32_t)n + 1, KR_TCP_ACK | KR_TCP_FIN, NULL, 0, 1.22));
    kr_conn_table_free(t);
}

/* A frame a segment holds whole is read where it lies; one split over segments through the direction's
 * buffer: both give the same steps, messages, findings and verdict, one segment per frame, all frames in
 * one segment, or any split (1, 5, 17, 40 bytes). So does a frame whose length prefix was damaged into a
 * longer one (32 read as 64, over the next frame): it does not decrypt, and the next frame is found by
 * decryption either way. */
static void test_frames_whole_or_split_alike(void **st)
{
    (void)st;
    static const size_t chunks[] = { 1, 5, 17, 40, 1000 };
    static const unsigned prefixes[] = { 0, 64 };
    for (size_t p = 0; p < sizeof prefixes / sizeof prefixes[0]; p++) {
        log_t *whole = calloc(1, sizeof *whole), *split = calloc(1, sizeof *split);
        assert_non_null(whole);
        assert_non_null(split);
        frames_in_chunks(whole, 0, prefixes[p]);
        /* both Hellos and the frames that decrypt; the damaged one's decrypt error and the boundary found */
        assert_int_equal(whole->decrypted, prefixes[p] ? 5 : 6);
        assert_int_equal(whole->findings, prefixes[p] ? 2 : 0);
        for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
            frames_in_chunks(split, chunks[c], prefixes[p]);
            assert_string_equal(split->text, whole->text);
            assert_memory_equal(split->steps, whole->steps, sizeof whole->steps);
            assert_int_equal(split->decrypted, whole->decrypted);
            assert_int_equal(split->findings, whole->findings);
            assert_string_equal(split->last_note, whole->last_note);
            assert_int_equal(split->last_code, whole->last_code);
            assert_int_equal(split->last_proven, whole->last_proven);
        }
        free(whole);
        free(split);
    }
}

/* The device's second frame read from garbage, then its real bytes as a copy before the cloud acknowledges
 * them: the frame is read again from the copy (it decrypts, the garbage did not), and the chain goes on from
 * the real ciphertext (the next frame, one block, decrypts only under the real first block as its IV). */
static void test_copy_after_read_is_read_again(void **st)
{
    (void)st;
    sess_frames f;
    log_t l;
    kr_conn_table *t = session_start(&l, &f);
    send_garbage(t, &f, 1, 1.05);
    assert_int_equal(l.decrypted, 1);                   /* the garbage was read: it does not decrypt */
    assert_int_equal(l.findings, 1);                    /* its decrypt-error finding */
    assert_int_equal(l.info_findings, 1);
    send_real(t, &f, 1, 1.051);
    expect_steps(&l, 1, 2, f.d[1]);
    /* the step read again names the finding it supersedes, which no longer counts */
    assert_non_null(strstr(l.last_note, "the decrypt-error finding at offset"));
    assert_non_null(strstr(l.last_note, "no longer stands"));
    assert_int_equal(l.info_findings, 0);
    assert_int_equal(l.last_supersedes, KR_FIND_DECRYPT_ERROR);
    send_real(t, &f, 2, 1.052);
    assert_int_equal(l.decrypted, 3);
    assert_true(cloud_hello_and_close(t, &l, &f, D2 + 18, 1.06));
}

/* A frame longer than the 512 bytes a direction keeps of several (600 bytes of CoAP payload: one a Photon's
 * buffer holds) read from garbage, then its real copy: it was kept alone, and it is read again from the copy. */
static void test_long_frame_read_again(void **st)
{
    (void)st;
    sess_frames f;
    log_t l;
    kr_conn_table *t = session_start(&l, &f);
    kr_cipher *dc = kr_cipher_new(M, M + 16);
    uint8_t hello[96], m[620] = { 0x50, 0x02, 0, 2, 0xb1, 'e', 0x01, 'x', 0xff }, big[660], g[660];
    enc_frame(dc, 'h', 1, 6, 'a', hello);              /* the chain as far as the device's Hello */
    memset(m + 9, 'q', 600);
    int n = kr_cipher_encrypt(dc, m, 609, big, sizeof big);
    kr_cipher_free(dc);
    assert_true(n > 600);
    garbage(big, (size_t)n, g, 3);
    feed(t, pk(true, DEV_PORT, D1, C0, KR_TCP_ACK, g, (size_t)n, 1.05));
    assert_int_equal(l.decrypted, 1);                   /* the garbage was read: it does not decrypt */
    feed(t, pk(true, DEV_PORT, D1, C0, KR_TCP_ACK, big, (size_t)n, 1.051));
    expect_steps(&l, 1, 2, big);
    kr_conn_table_free(t);
}

/* The frame after the one read again was read already, under the garbage's first block as its IV: it is read
 * again too, with the real one. */
static void test_read_again_moves_the_chain(void **st)
{
    (void)st;
    sess_frames f;
    log_t l;
    kr_conn_table *t = session_start(&l, &f);
    send_garbage(t, &f, 2, 1.05);
    send_real(t, &f, 2, 1.051);
    assert_int_equal(l.decrypted, 1);                   /* one block under the garbage's IV: wrong padding */
    send_real(t, &f, 1, 1.052);
    expect_steps(&l, 2, 3, f.d[2]);
    kr_conn_table_free(t);
}

/* Five frames kept (the Hello, the second frame read from garbage, three more after it: more than the
 * smallest block of kept frames holds, so the records move to a larger one while they are kept), then the
 * second frame's real copy: it is read again from its record, and so is the frame after it (its IV changed);
 * the two after that keep theirs. When the cloud acknowledges them all, what they held is given back. */
static void test_read_again_after_the_records_moved(void **st)
{
    (void)st;
    sess_frames f;
    log_t l;
    kr_conn_table *t = session_start(&l, &f);
    size_t before = kr_conn_table_memory(t);
    send_garbage(t, &f, 4, 1.05);
    for (int i = 2; i <= 4; i++)
        send_real(t, &f, i, 1.05 + 0.001 * i);
    /* the third frame, one block under the garbage's IV, does not decrypt; the fourth and fifth do */
    expect_steps(&l, 0, 3, f.d[4]);
    send_real(t, &f, 1, 1.06);
    expect_steps(&l, 2, 5, f.d[2]);
    feed(t, pk(false, DEV_PORT, C0, dev_seq(4) + 18, KR_TCP_ACK, f.c, f.cl, 1.07));
    assert_true(kr_conn_table_memory(t) < before + 64);  /* nothing of the device's frames is kept */
    kr_conn_table_free(t);
}

/* Once the cloud acknowledged the frame, a copy seen later is not what it read: the frame stands, and the
 * frames kept for it are given back. */
static void test_copy_after_ack_is_not_taken(void **st)
{
    (void)st;
    sess_frames f;
    log_t l;
    kr_conn_table *t = session_start(&l, &f);
    send_garbage(t, &f, 3, 1.05);
    size_t held = kr_conn_table_memory(t);
    feed(t, pk(false, DEV_PORT, C0, D2, KR_TCP_ACK, NULL, 0, 1.051));
    assert_true(kr_conn_table_memory(t) + 18 + 34 <= held);   /* both kept frames' bytes are given back */
    send_real(t, &f, 1, 1.052);
    expect_steps(&l, 0, 1, NULL);
    kr_conn_table_free(t);
}

/* Two copies that both decrypt, or neither: the frame is given again as disputed. A Hello that both copies
 * decrypt proves nothing: ok is then inferred from the frames both ways, not proven by the Hellos. */
static void test_copies_both_or_neither_disputed(void **st)
{
    (void)st;
    sess_frames f;
    log_t l;
    kr_conn_table *t = session_start(&l, &f);
    send_garbage(t, &f, 4, 1.05);
    send_garbage(t, &f, 5, 1.051);                      /* another garbage copy */
    assert_int_equal(l.reasons[KR_WHY_DISPUTED], 1);
    assert_int_equal(l.again, 1);                       /* given again, as disputed */
    assert_int_equal(l.decrypted, 1);
    kr_conn_table_free(t);

    t = session_start(&l, &f);
    feed(t, pk(true, DEV_PORT, D0, C0, KR_TCP_ACK, f.other, f.dl[0], 1.041));
    assert_int_equal(l.reasons[KR_WHY_DISPUTED], 1);
    assert_int_equal(l.again, 1);
    assert_false(cloud_hello_and_close(t, &l, &f, D1, 1.05));
}

/* Another third device frame at the same IV (that of the real third frame), that decrypts too and ends in the
 * same byte as the real one, so a copy of all its bytes but the last, laid over the real frame being read,
 * is that whole frame. */
static void other_third_frame(const sess_frames *f, uint8_t out[96])
{
    for (uint16_t id = 100; id < 5000; id++) {
        kr_cipher *c = kr_cipher_new(M, M + 16);
        uint8_t skip[96];
        enc_frame(c, 'h', 1, 6, 'a', skip);
        enc_frame(c, 'e', 2, 20, 'b', skip);
        size_t n = enc_frame(c, 'e', id, 4, 'q', out);
        kr_cipher_free(c);
        if (n == f->dl[2] && out[n - 1] == f->d[2][n - 1])
            return;
    }
    fail_msg("no other frame found");
}

/* The third device frame being read (all but its last byte), a copy of those bytes (first), then its last
 * byte: the frame is read after both copies came. */
static void send_pending_with_copy(kr_conn_table *t, const uint8_t *first, const uint8_t *copy,
                                   const uint8_t *last, double ts)
{
    feed(t, pk(true, DEV_PORT, D2, C0, KR_TCP_ACK, first, 17, ts));
    feed(t, pk(true, DEV_PORT, D2, C0, KR_TCP_ACK, copy, 17, ts + 0.0001));
    feed(t, pk(true, DEV_PORT, D2 + 17, C0, KR_TCP_ACK, last, 1, ts + 0.0002));
}

/* A frame still being read follows the rule of frames read already (krt_choose_copy): two copies that
 * both decrypt (padding right, the same length, CoAP) dispute it, so nothing rests on it; the copy that
 * decrypts where the other does not is read, whichever came first. */
static void test_pending_copies_one_rule(void **st)
{
    (void)st;
    sess_frames f;
    log_t l;
    uint8_t alt[96], g[96];
    make_frames(&f);
    other_third_frame(&f, alt);
    garbage(f.d[2], f.dl[2], g, 9);
    g[17] = f.d[2][17];
    for (int round = 0; round < 4; round++) {
        kr_conn_table *t = session_start(&l, &f);
        send_real(t, &f, 1, 1.05);
        assert_int_equal(l.decrypted, 2);
        const uint8_t *first = round == 0 ? f.d[2] : round == 1 ? g : round == 2 ? f.d[2] : alt;
        const uint8_t *copy = round == 0 ? alt : round == 1 ? f.d[2] : round == 2 ? g : f.d[2];
        send_pending_with_copy(t, first, copy, f.d[2] + 17, 1.06);
        bool both = round == 0 || round == 3;
        assert_int_equal(l.reasons[KR_WHY_DISPUTED], both ? 1 : 0);
        assert_int_equal(l.decrypted, both ? 2 : 3);
        if (!both)
            assert_memory_equal(l.frame_head, f.d[2], 16);
        kr_conn_table_free(t);
    }
}

/* A gap (the device's second frame lost, the cloud acknowledging past it), so the device's direction
 * searches the bytes after it for a frame boundary; a copy of the first frame there with other bytes
 * arrives while the search is on. No frame boundary is known yet, nor the IV chain (the gap broke it), so no
 * copy can be weighed: the bytes are disputed and the frame found there proves nothing. */
static void test_copy_during_resync_after_gap(void **st)
{
    (void)st;
    sess_frames f;
    log_t l;
    uint8_t g[96];
    for (int round = 0; round < 2; round++) {
        kr_conn_table *t = session_start(&l, &f);
        garbage(f.d[2], f.dl[2], g, 11);
        send_real(t, &f, 2, 1.05);                          /* ahead of the lost second frame: waits */
        feed(t, pk(false, DEV_PORT, C0, D2 + 18, KR_TCP_ACK, NULL, 0, 1.051));   /* the hole is given up */
        assert_non_null(strstr(l.text, "gap34"));
        if (round == 1)
            feed(t, pk(true, DEV_PORT, D2, C0, KR_TCP_ACK, g, f.dl[2], 1.052));  /* another copy of it */
        for (int i = 3; i < 5; i++)
            send_real(t, &f, i, 1.053 + 0.001 * i);
        feed(t, pk(true, DEV_PORT, dev_seq(5), C0, KR_TCP_ACK | KR_TCP_FIN, NULL, 0, 1.06));
        feed(t, pk(false, DEV_PORT, C0, dev_seq(5) + 1, KR_TCP_ACK | KR_TCP_FIN, NULL, 0, 1.061));
        kr_conn_table_free(t);
        assert_int_equal(l.steps[KR_STEP_FRAME], 3);          /* the frames after the gap, found */
        /* without the copy the third frame (one block, its IV lost in the gap) gives the fourth its IV; with
         * it, the third is disputed, and so is the IV it gives: only the fifth (and the Hello) decrypt */
        assert_int_equal(l.reasons[KR_WHY_DISPUTED], round);
        assert_int_equal(l.decrypted, round == 0 ? 3 : 2);
    }
}

/* A damaged length prefix (0x0020 read as 0x8020) and the segment again with the right one: the copy frames
 * a frame that decrypts, so the frame is read at its length and the stream goes on from there. */
static void test_damaged_prefix_then_right_copy(void **st)
{
    (void)st;
    sess_frames f;
    log_t l;
    kr_conn_table *t = session_start(&l, &f);
    uint8_t bad[96];
    memcpy(bad, f.d[1], f.dl[1]);
    bad[0] |= 0x80;
    feed(t, pk(true, DEV_PORT, D1, C0, KR_TCP_ACK, bad, f.dl[1], 1.05));
    assert_int_equal(l.steps[KR_STEP_FRAME], 0);        /* a frame of 0x8020 bytes: not complete */
    send_real(t, &f, 1, 1.051);
    assert_int_equal(l.steps[KR_STEP_FRAME], 1);
    assert_int_equal(l.decrypted, 2);
    send_real(t, &f, 2, 1.052);
    assert_int_equal(l.decrypted, 3);
    kr_conn_table_free(t);
}

/* The same damaged prefix, its frame resynchronised over (the frames after it give the boundary) before the
 * right copy comes: the frame kept is read again from it. */
static void test_damaged_prefix_resynced_then_right_copy(void **st)
{
    (void)st;
    sess_frames f;
    log_t l;
    kr_conn_table *t = session_start(&l, &f);
    uint8_t bad[96];
    memcpy(bad, f.d[1], f.dl[1]);
    bad[0] |= 0x80;
    feed(t, pk(true, DEV_PORT, D1, C0, KR_TCP_ACK, bad, f.dl[1], 1.05));
    for (int i = 2; i < 5; i++)
        send_real(t, &f, i, 1.05 + 0.001 * i);
    assert_int_equal(l.steps[KR_STEP_DATA], 1);         /* the damaged frame, skipped */
    assert_int_equal(l.decrypted, 4);
    send_real(t, &f, 1, 1.06);
    expect_steps(&l, 1, 5, f.d[1]);
    kr_conn_table_free(t);
}

/* Garbage first whose length prefix fits no frame (the bytes are searched for the next frame boundary), then
 * the real copy: its prefix frames a frame that decrypts where the cipher stood, so the frame is read from it
 * and the chain goes on. */
static void test_unframed_garbage_then_right_copy(void **st)
{
    (void)st;
    sess_frames f;
    log_t l;
    kr_conn_table *t = session_start(&l, &f);
    uint8_t g[96];
    garbage(f.d[1], f.dl[1], g, 6);
    g[0] = g[1] = 0xff;
    feed(t, pk(true, DEV_PORT, D1, C0, KR_TCP_ACK, g, f.dl[1], 1.05));
    assert_int_equal(l.steps[KR_STEP_FRAME] + l.steps[KR_STEP_DATA], 0);   /* no boundary found yet */
    send_real(t, &f, 1, 1.051);
    assert_int_equal(l.decrypted, 2);
    send_real(t, &f, 2, 1.052);
    assert_int_equal(l.decrypted, 3);
    assert_int_equal(l.steps[KR_STEP_DATA], 0);
    kr_conn_table_free(t);
}

/* An RST from the device after the cloud advertised `win` (as in its header): is it taken? */
static bool device_rst_taken(bool known, int dev_ws, int cloud_ws, uint16_t win, uint32_t off)
{
    log_t l;
    kr_conn_table *t = table(&l, 16);
    handshake_opts(t, DEV_PORT, 1.0, known, dev_ws, cloud_ws);
    kr_packet p = pk(false, DEV_PORT, ISN_S + 425, ISN_D + 257, KR_TCP_ACK, NULL, 0, 1.04);
    p.window = win;
    feed(t, p);
    feed(t, pk(true, DEV_PORT, ISN_D + 257 + off, 0, KR_TCP_RST, NULL, 0, 1.05));
    bool taken = strstr(l.text, "RST ") && !strstr(l.text, "RST ignored");
    kr_conn_table_free(t);
    return taken;
}

/* The RST window follows the window scale option of both SYNs (RFC 7323): scaled, a window reaches past
 * 64 KiB; without the option on both, the window is the header's; with the SYNs' options unknown, at
 * least 64 KiB is assumed. */
static void test_rst_window_scale(void **st)
{
    (void)st;
    assert_true(device_rst_taken(true, 7, 7, 1000, 100000));      /* 1000 << 7 = 128000 */
    assert_false(device_rst_taken(true, 7, 7, 1000, 130000));
    assert_false(device_rst_taken(false, 7, 7, 1000, 100000));    /* not known: 64 KiB */
    assert_false(device_rst_taken(true, 7, -1, 1000, 100000));    /* one side without it: no scaling */
    assert_false(device_rst_taken(true, -1, -1, 100, 5000));      /* the window is 100 bytes */
    assert_true(device_rst_taken(true, -1, -1, 100, 50));
    assert_true(device_rst_taken(false, -1, -1, 100, 5000));      /* not known: 64 KiB */
    assert_true(device_rst_taken(true, -1, -1, 0, 0));            /* a zero window: only the next byte */
    assert_false(device_rst_taken(true, -1, -1, 0, 1));
}

/* Checksums: a segment whose checksum is bad is taken all the same (checksum offload makes sent packets
 * look bad), but a copy that checks beats it, and a copy with a bad checksum loses to one that checks. */
static void test_checksum_copies(void **st)
{
    (void)st;
    uint8_t f[34], other[10];
    frame32(f);
    memcpy(other, f, sizeof other);
    other[6] ^= 0x55;
    uint32_t s0 = ISN_D + 257;
    for (int round = 0; round < 3; round++) {
        log_t l;
        kr_conn_table *t = table(&l, 16);
        handshake(t, DEV_PORT, 1.0);
        /* round 0: other bytes with a bad checksum first, then the bytes that check;
         * round 1: the bytes that check first, then other bytes with a bad checksum;
         * round 2: only the bad-checksum copy of the whole frame */
        kr_packet a = pk(true, DEV_PORT, s0, ISN_S + 425, KR_TCP_ACK, round == 1 ? f : other, 10, 1.04);
        kr_packet b = pk(true, DEV_PORT, s0, ISN_S + 425, KR_TCP_ACK, round == 1 ? other : f, 10, 1.041);
        a.checksum = round == 1 ? KR_CSUM_GOOD : KR_CSUM_BAD;
        b.checksum = round == 1 ? KR_CSUM_BAD : KR_CSUM_GOOD;
        feed(t, a);
        if (round < 2)
            feed(t, b);
        feed(t, pk(true, DEV_PORT, s0 + 10, ISN_S + 425, KR_TCP_ACK, f + 10, 24, 1.042));
        assert_int_equal(l.steps[KR_STEP_HELLO] + l.steps[KR_STEP_FRAME], 1);
        assert_int_equal(l.reasons[KR_WHY_DISPUTED], 0);
        assert_memory_equal(l.frame_head, round == 2 ? other : f, 10);
        assert_int_equal(kr_conn_table_stats(t)->bad_checksum, 1);
        kr_conn_table_free(t);
    }
}

/* One checksum rule for both frontends: the whole segment under its pseudo-header. */
/* Bytes from a linear congruential generator: the same every run. */
static void fill_bytes(uint8_t *b, size_t n, uint32_t x)
{
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (uint8_t)(x >> 16);
    }
}

/* RFC 1071's sum two bytes at a time, added to s, folded (not complemented) */
static uint16_t ref_sum(const uint8_t *p, size_t n, uint64_t s)
{
    for (size_t i = 0; i < n; i += 2)
        s += (uint32_t)(p[i] << 8 | (i + 1 < n ? p[i + 1] : 0));
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

/* The same over the pseudo-header and the segment */
static uint16_t ref_tcp_sum(const kr_endpoint *a, const kr_endpoint *b, const uint8_t *seg, size_t len, bool pseudo_only)
{
    size_t alen = a->family == 4 ? 4 : 16;
    uint64_t sum = ref_sum(b->ip, alen, ref_sum(a->ip, alen, 6 + (len >> 16) + (len & 0xffff)));
    return pseudo_only ? (uint16_t)sum : ref_sum(seg, len, sum);
}

/* The one's complement sum at every length and alignment, on random bytes, all-ones and all-zero buffers,
 * chained from a start sum as the pseudo-header is */
static void test_inet_sum(void **st)
{
    (void)st;
    uint8_t b[1600];
    fill_bytes(b, sizeof b, 12345);
    for (size_t len = 0; len < 160; len++)
        for (size_t off = 0; off < 8; off++)
            for (uint32_t start = 0; start < 0x30000; start += 0x7fff) {
                uint16_t one = (uint16_t)~ref_sum(b + off, len, start);
                assert_int_equal(kr_inet_fold(kr_inet_sum(b + off, len, start)), one);
                uint32_t two = kr_inet_sum(b + off + len, 3 + len, kr_inet_sum(b + off, len, start) + 6);
                uint16_t whole = (uint16_t)~ref_sum(b + off + len, 3 + len, (uint32_t)(uint16_t)~one + 6);
                assert_int_equal(kr_inet_fold(two), whole);
            }
    assert_int_equal(kr_inet_fold(kr_inet_sum(b, sizeof b, 0)), (uint16_t)~ref_sum(b, sizeof b, 0));
    memset(b, 0xff, sizeof b);
    for (size_t len = 0; len < 64; len++)
        assert_int_equal(kr_inet_fold(kr_inet_sum(b, len, 0)), (uint16_t)~ref_sum(b, len, 0));
    assert_int_equal(kr_inet_fold(kr_inet_sum(b, sizeof b, 0xffff)), (uint16_t)~ref_sum(b, sizeof b, 0xffff));
    memset(b, 0, sizeof b);
    assert_int_equal(kr_inet_fold(kr_inet_sum(b, 40, 0)), 0xffff);   /* nothing added: ~0 */
}

/* The checksum rule at every segment length and alignment, IPv4 and IPv6, against the reference above: the
 * field that makes the sum 0xffff checks, any other is bad, except 0 and the bare pseudo-header sum (left by
 * checksum offload), which are not known */
static void test_tcp_checksum_lengths(void **st)
{
    (void)st;
    uint8_t buf[300];
    fill_bytes(buf, sizeof buf, 777);
    for (int fam = 4; fam <= 6; fam += 2) {
        kr_endpoint a = { (uint8_t)fam, { 0 }, 1 }, b = { (uint8_t)fam, { 0 }, 2 };
        for (int i = 0; i < 16; i++) {
            a.ip[i] = buf[200 + i];
            b.ip[i] = buf[220 + i];
        }
        for (size_t len = 20; len < 180; len++)
            for (size_t off = 0; off < 8; off += 3) {
                uint8_t *seg = buf + off;
                seg[16] = seg[17] = 0;
                uint16_t field = (uint16_t)~ref_tcp_sum(&a, &b, seg, len, false);
                seg[16] = (uint8_t)(field >> 8);
                seg[17] = (uint8_t)field;
                uint16_t partial = ref_tcp_sum(&a, &b, seg, len, true);
                assert_int_equal(kr_tcp_checksum(&a, &b, seg, len), KR_CSUM_GOOD);
                seg[len - 1] ^= 0x10;
                assert_int_equal(kr_tcp_checksum(&a, &b, seg, len),
                                 field == 0 || field == partial ? KR_CSUM_UNKNOWN : KR_CSUM_BAD);
                seg[len - 1] ^= 0x10;
                seg[16] = (uint8_t)(partial >> 8);
                seg[17] = (uint8_t)partial;
                kr_checksum want = partial == field ? KR_CSUM_GOOD : KR_CSUM_UNKNOWN;
                assert_int_equal(kr_tcp_checksum(&a, &b, seg, len), want);
            }
    }
}

static void test_tcp_checksum_rule(void **st)
{
    (void)st;
    kr_endpoint a = { 4, { 10, 0, 0, 2 }, 40001 }, b = { 4, { 10, 0, 0, 1 }, 5683 };
    uint8_t seg[27] = { 0x9c, 0x41, 0x16, 0x33, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x18, 0x10, 0 };
    memcpy(seg + 20, "payload", 7);
    /* the field that makes the one's complement sum over pseudo-header and segment come out 0xffff */
    uint32_t sum = 0x0a00 + 0x0002 + 0x0a00 + 0x0001 + 6 + sizeof seg;
    for (size_t i = 0; i < sizeof seg; i += 2)
        sum += (uint32_t)(seg[i] << 8 | (i + 1 < sizeof seg ? seg[i + 1] : 0));
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    uint16_t field = (uint16_t)~sum;
    seg[16] = (uint8_t)(field >> 8);
    seg[17] = (uint8_t)field;
    assert_int_equal(kr_tcp_checksum(&a, &b, seg, sizeof seg), KR_CSUM_GOOD);
    assert_int_equal(kr_tcp_checksum(&b, &a, seg, sizeof seg), KR_CSUM_GOOD);   /* symmetric in the ends */
    seg[22] ^= 1;
    assert_int_equal(kr_tcp_checksum(&a, &b, seg, sizeof seg), KR_CSUM_BAD);
    seg[16] = seg[17] = 0;                                                       /* left for offload */
    assert_int_equal(kr_tcp_checksum(&a, &b, seg, sizeof seg), KR_CSUM_UNKNOWN);
    assert_int_equal(kr_tcp_checksum(&a, &b, seg, 19), KR_CSUM_UNKNOWN);
    /* the window scale option */
    uint8_t h[40] = { 0 };
    h[12] = 0xa0;
    const uint8_t opts[] = { 2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 0, 0 };
    memcpy(h + 20, opts, sizeof opts);
    assert_int_equal(kr_tcp_wscale(h, 32), 7);
    h[27] = 15;
    assert_int_equal(kr_tcp_wscale(h, 32), 14);                                  /* RFC 7323: at most 14 */
    assert_int_equal(kr_tcp_wscale(h, 20), -1);
    h[21] = 40;                                                                  /* MSS claims 40 bytes */
    assert_int_equal(kr_tcp_wscale(h, 32), -1);
    /* the fixed fields, read by the one header reader both frontends use */
    h[21] = 4;
    h[27] = 7;
    h[12] = 0x80;                                                                /* 32 bytes: 12 of options */
    const uint8_t fixed[] = { 0xc3, 0x50, 0x16, 0x53, 1, 2, 3, 4, 5, 6, 7, 8 };
    memcpy(h, fixed, sizeof fixed);
    h[13] = KR_TCP_SYN | KR_TCP_ACK;
    h[14] = 0x72;
    h[15] = 0x10;
    kr_tcp_hdr th;
    assert_true(kr_tcp_header(h, 40, 40, &th));
    assert_int_equal(th.sport, 50000);
    assert_int_equal(th.dport, 5715);
    assert_int_equal(th.seq, 0x01020304);
    assert_int_equal(th.ack, 0x05060708);
    assert_int_equal(th.flags, KR_TCP_SYN | KR_TCP_ACK);
    assert_int_equal(th.window, 0x7210);
    assert_int_equal(th.len, 32);
    assert_int_equal(th.wscale, 7);
    assert_true(kr_tcp_header(h, 24, 40, &th));                                  /* options cut: not read */
    assert_int_equal(th.wscale, -1);
    h[13] = KR_TCP_ACK;
    assert_true(kr_tcp_header(h, 40, 40, &th));                                  /* not a SYN: not read */
    assert_int_equal(th.wscale, -1);
    assert_false(kr_tcp_header(h, 19, 40, &th));                                 /* fewer than 20 bytes */
    assert_false(kr_tcp_header(h, 40, 31, &th));                                 /* header past the segment */
    h[12] = 0x40;                                                                /* a data offset of 16 bytes */
    assert_false(kr_tcp_header(h, 40, 40, &th));
}

static void test_rst_in_window_ends(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    handshake(t, DEV_PORT, 1.0);
    feed(t, pk(false, DEV_PORT, ISN_S + 425, ISN_D + 257, KR_TCP_RST | KR_TCP_ACK, NULL, 0, 1.05));
    assert_non_null(strstr(l.text, "RST "));
    assert_null(strstr(l.text, "RST ignored"));
    kr_conn_finish(t, 2.0, "capture ended");
    assert_int_equal(l.ends, 1);
    assert_string_equal(l.end_reason, "reset by the cloud");
    assert_true(l.last_final);
    kr_conn_table_free(t);
}

static void test_rst_out_of_window_ignored(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    handshake(t, DEV_PORT, 1.0);
    feed(t, pk(false, DEV_PORT, ISN_S + 425 + 70000, ISN_D + 257, KR_TCP_RST, NULL, 0, 1.05));
    assert_non_null(strstr(l.text, "RST ignored"));
    assert_int_equal(kr_conn_table_stats(t)->rst_ignored, 1);
    kr_conn_finish(t, 2.0, "capture ended");
    assert_string_equal(l.end_reason, "capture ended");
    kr_conn_table_free(t);
}

static void test_rst_survived(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    handshake(t, DEV_PORT, 1.0);
    feed(t, pk(true, DEV_PORT, ISN_D + 257, ISN_S + 425, KR_TCP_RST, NULL, 0, 1.05));
    assert_int_equal(l.ends, 0);
    uint8_t frame[18] = { 0x00, 0x10 };
    /* the device goes on sending: the RST did not end the connection */
    feed(t, pk(true, DEV_PORT, ISN_D + 257, ISN_S + 425, KR_TCP_ACK, frame, sizeof frame, 1.06));
    assert_non_null(strstr(l.text, "RST ignored"));
    assert_int_equal(l.ends, 0);
    kr_conn_finish(t, 2.0, "capture ended");
    assert_string_equal(l.end_reason, "capture ended");
    kr_conn_table_free(t);
}

static void test_refused(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    feed(t, pk(true, DEV_PORT, ISN_D, 0, KR_TCP_SYN, NULL, 0, 1.0));
    /* an RST that does not acknowledge the SYN is not an answer to it */
    feed(t, pk(false, DEV_PORT, 0, ISN_D + 7, KR_TCP_RST | KR_TCP_ACK, NULL, 0, 1.001));
    assert_non_null(strstr(l.text, "RST ignored"));
    assert_int_equal(l.ends, 0);
    feed(t, pk(false, DEV_PORT, 0, ISN_D + 1, KR_TCP_RST | KR_TCP_ACK, NULL, 0, 1.002));
    assert_non_null(strstr(l.text, "refused"));
    assert_int_equal(l.ends, 1);
    assert_string_equal(l.end_reason, "refused: an RST answered the SYN");
    assert_true(l.last_final);
    kr_conn_table_free(t);
}

static void test_syn_flood_spares_the_session(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 8);
    handshake(t, DEV_PORT, 1.0);
    for (int i = 0; i < 1100; i++)
        feed(t, pk(true, (uint16_t)(20000 + i), (uint32_t)i * 7919u, 0, KR_TCP_SYN, NULL, 0, 1.1 + i * 0.0007));
    assert_true(kr_conn_live_count(t) <= 8);
    assert_true(kr_conn_table_stats(t)->evicted >= 1000);
    /* the session with protocol data was never ended: its next bytes are still its own */
    assert_int_equal(l.ends, (int)kr_conn_table_stats(t)->evicted);
    uint8_t frame[18] = { 0x00, 0x10 };
    feed(t, pk(true, DEV_PORT, ISN_D + 257, ISN_S + 425, KR_TCP_ACK, frame, sizeof frame, 2.0));
    assert_int_equal(l.steps[KR_STEP_NONCE], 1);
    assert_null(strstr(l.text, "joined"));
    kr_conn_table_free(t);
}

static void test_ip_length_against_captured(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    handshake(t, DEV_PORT, 1.0);
    /* a 66-byte ACK whose IP length claims 1448 payload bytes; the frame was not cut */
    kr_packet p = pk(true, DEV_PORT, ISN_D + 257, ISN_S + 425, KR_TCP_ACK, NULL, 0, 1.05);
    p.wire_len = 1448;
    feed(t, p);
    assert_non_null(strstr(l.text, "bogus length"));
    assert_null(strstr(l.text, "gap"));
    assert_int_equal(kr_conn_table_stats(t)->bogus_length, 1);
    /* the same, cut by the snap length: the bytes were on the wire and are missing */
    p.cut = true;
    p.time = 1.06;
    feed(t, p);
    assert_non_null(strstr(l.text, "gap"));
    kr_conn_table_free(t);
}

static void test_gap_given_up_by_ack(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    handshake(t, DEV_PORT, 1.0);
    uint8_t frame[18] = { 0x00, 0x10 };
    feed(t, pk(true, DEV_PORT, ISN_D + 257 + 18, ISN_S + 425, KR_TCP_ACK, frame, sizeof frame, 1.05));
    assert_null(strstr(l.text, "gap"));                 /* may only be out of order */
    feed(t, pk(false, DEV_PORT, ISN_S + 425, ISN_D + 257 + 36, KR_TCP_ACK, NULL, 0, 1.06));
    assert_non_null(strstr(l.text, "gap"));             /* the cloud got the bytes the capture lost */
    kr_conn_table_free(t);
}

static void test_idle_expiry(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    handshake(t, DEV_PORT, 1.0);
    assert_int_equal(kr_conn_expire(t, 20.0), 0);       /* silent for 19 s of 30 */
    assert_int_equal(kr_conn_expire(t, 40.0), 1);
    assert_string_equal(l.end_reason, "idle timeout");
    assert_true(l.last_final);
    assert_int_equal(kr_conn_table_stats(t)->expired, 1);
    /* a later packet of the same ports is a new connection, joined after its start */
    uint8_t frame[18] = { 0x00, 0x10 };
    feed(t, pk(true, DEV_PORT, ISN_D + 257, ISN_S + 425, KR_TCP_ACK, frame, sizeof frame, 41.0));
    assert_int_equal(l.opens, 2);
    kr_conn_table_free(t);
}

/* Packets drive expiry: a scan at most once a capture second, skipped while no connection can be due yet.
 * Here only an ended connection lingers (due 60 s after its end) when another is made: the new one must
 * still go once it has been silent for the idle time (30 s), not when the ended one is due. */
static void test_idle_expiry_by_packets(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    handshake(t, DEV_PORT, 1.0);                         /* B: closed by both sides at 1.2 s */
    feed(t, pk(true, DEV_PORT, ISN_D + 257, ISN_S + 425, KR_TCP_ACK | KR_TCP_FIN, NULL, 0, 1.2));
    feed(t, pk(false, DEV_PORT, ISN_S + 425, ISN_D + 258, KR_TCP_ACK | KR_TCP_FIN, NULL, 0, 1.21));
    assert_string_equal(l.end_reason, "closed by both sides");
    /* B's last ACKs come late, one a capture second: they drive the scans */
    feed(t, pk(true, DEV_PORT, ISN_D + 258, ISN_S + 426, KR_TCP_ACK, NULL, 0, 3.5));
    handshake(t, DEV_PORT + 1, 5.0);                     /* C: silent after its handshake */
    for (int s = 6; s <= 34; s++)
        feed(t, pk(true, DEV_PORT, ISN_D + 258, ISN_S + 426, KR_TCP_ACK, NULL, 0, s + 0.5));
    assert_int_equal(kr_conn_table_stats(t)->expired, 0);   /* C silent for 29.5 s: not yet */
    for (int s = 35; s <= 37; s++)
        feed(t, pk(true, DEV_PORT, ISN_D + 258, ISN_S + 426, KR_TCP_ACK, NULL, 0, s + 0.5));
    assert_int_equal(kr_conn_table_stats(t)->expired, 1);   /* C went at the first scan after its idle time */
    assert_string_equal(l.end_reason, "idle timeout");
    assert_true(kr_conn_table_stats(t)->late >= 30);         /* B's ACKs were its own, late */
    assert_int_equal(l.opens, 2);
    kr_conn_table_free(t);
}

/* With the default idle time (600 s, longer than the 60 s an ended connection lingers), a connection that
 * ends between two scans is still let go once its 60 s are over, not when it would have gone idle. */
static void test_ended_freed_after_linger(void **st)
{
    (void)st;
    log_t l;
    memset(&l, 0, sizeof l);
    fill();
    kr_conn_options o;
    kr_conn_options_default(&o);
    o.max_conns = 16;
    kr_keyfile *kf = kr_keyfile_new_empty();
    kr_conn_table *t = kr_conn_table_new(kf, &o, &cbs, &l);
    handshake(t, DEV_PORT, 1.0);                         /* A: open, then closed at 3 s */
    handshake(t, DEV_PORT + 1, 1.5);                     /* B: sends an ACK every second */
    feed(t, pk(true, DEV_PORT + 1, ISN_D + 257, ISN_S + 425, KR_TCP_ACK, NULL, 0, 2.6));   /* a scan */
    size_t both = kr_conn_table_memory(t);
    feed(t, pk(true, DEV_PORT, ISN_D + 257, ISN_S + 425, KR_TCP_ACK | KR_TCP_FIN, NULL, 0, 3.0));
    feed(t, pk(false, DEV_PORT, ISN_S + 425, ISN_D + 258, KR_TCP_ACK | KR_TCP_FIN, NULL, 0, 3.01));
    assert_string_equal(l.end_reason, "closed by both sides");
    for (int s = 4; s <= 62; s++)
        feed(t, pk(true, DEV_PORT + 1, ISN_D + 257, ISN_S + 425, KR_TCP_ACK, NULL, 0, s + 0.5));
    size_t lingering = kr_conn_table_memory(t);          /* A ended 59.5 s ago: still there */
    for (int s = 63; s <= 65; s++)
        feed(t, pk(true, DEV_PORT + 1, ISN_D + 257, ISN_S + 425, KR_TCP_ACK, NULL, 0, s + 0.5));
    size_t after = kr_conn_table_memory(t);
    assert_true(lingering <= both);
    assert_true(after < lingering);                      /* A was let go at the first scan after 60 s */
    assert_int_equal(kr_conn_table_stats(t)->expired, 0);
    kr_conn_table_free(t);
    kr_keyfile_free(kf);
}

static void test_nonce_rule_and_heuristic(void **st)
{
    (void)st;
    log_t l;
    char why[128];
    kr_conn_table *t = table(&l, 16);
    uint8_t text[40], flat[40];
    memset(text, 'a', sizeof text);
    for (int i = 0; i < 40; i++)
        flat[i] = (uint8_t)(0x80 + i % 19);             /* 19 values: a pattern */
    assert_false(kr_conn_nonce_like(text, 40));
    assert_non_null(kr_nonce_unfit(text, 40, why, sizeof why));
    assert_false(kr_conn_nonce_like(flat, 40));
    assert_true(kr_conn_nonce_like(nonce, 40));
    assert_false(kr_conn_nonce_like(nonce, 39));
    kr_conn_table_free(t);
}

static void test_heuristic_other_port(void **st)
{
    (void)st;
    log_t l;
    kr_conn_table *t = table(&l, 16);
    kr_endpoint dev = { 4, { 10, 0, 0, 2 }, 40002 }, srv = { 4, { 10, 0, 0, 1 }, 7000 };
    kr_packet p;
    for (int round = 0; round < 2; round++) {
        memset(&l, 0, sizeof l);
        const uint8_t *first = round == 0 ? nonce : (const uint8_t *)"HTTP/1.1 400 Bad Request\r\nServer: xy\r\n\r\n";
        dev.port = (uint16_t)(40002 + round);
        memset(&p, 0, sizeof p);
        p.src = dev, p.dst = srv, p.seq = ISN_D, p.flags = KR_TCP_SYN, p.time = 1.0;
        kr_conn_packet(t, &p);
        p.src = srv, p.dst = dev, p.seq = ISN_S, p.ack = ISN_D + 1, p.flags = KR_TCP_SYN | KR_TCP_ACK;
        kr_conn_packet(t, &p);
        p.seq = ISN_S + 1, p.flags = KR_TCP_ACK, p.payload = first, p.captured_len = p.wire_len = 40;
        kr_conn_packet(t, &p);
        if (round == 0) {
            assert_int_equal(l.opens, 1);
            assert_int_equal(l.steps[KR_STEP_NONCE], 1);
            assert_non_null(strstr(l.text, "SYN SYN-ACK step:nonce"));
        } else {
            assert_int_equal(l.opens, 0);               /* a text banner is not a nonce */
        }
    }
    kr_conn_table_free(t);
}

/* ---- the connection map under hostile ends ---- */

/* A connection with these ends (a device on 10.x.y.z or fd00::..., its port, and the cloud), for the map. */
static kr_conn *map_conn(uint32_t n, bool v6)
{
    kr_conn *c = g_new0(kr_conn, 1);
    c->dev.family = c->cloud.family = v6 ? 6 : 4;
    if (v6) {
        c->dev.ip[0] = 0xfd;
        memcpy(c->dev.ip + 8, &n, 4);
        c->cloud.ip[0] = 0xfd;
        c->cloud.ip[15] = 1;
    } else {
        c->dev.ip[0] = 10;
        c->dev.ip[1] = (uint8_t)(n >> 16);
        c->dev.ip[2] = (uint8_t)(n >> 8);
        c->dev.ip[3] = (uint8_t)n;
        c->cloud.ip[0] = 192;
        c->cloud.ip[3] = 1;
    }
    c->dev.port = (uint16_t)(40000 + (n >> 24));
    c->cloud.port = 5683;
    return c;
}

/* Ends picked on the wire so that they all land in one run of a map whose seed is known (as an attacker
 * who knew it would pick them) fill one long probe there, and are spread out in a map of another seed:
 * the seed, not the ends, decides the runs. Both directions find their connection, and removals keep
 * every other one found. */
static void map_hostile(bool v6)
{
    enum { N = 200, HOME_BITS = 10 };
    kr_conn_map known, other;
    kr_map_init(&known);
    kr_map_init(&other);
    known.seed = 0x0123456789abcdefull;
    other.seed = 0xfedcba9876543210ull;
    kr_conn *c[N], *twin[N];               /* a connection is in one map: its twin goes in the other */
    kr_dir dir;
    uint32_t target = 0, n = 0;
    for (int k = 0; k < N; n++) {
        kr_conn *x = map_conn(n, v6);
        uint32_t h = kr_map_hash(&known, &x->dev, &x->cloud);
        if (k == 0)
            target = h & ((1u << HOME_BITS) - 1);
        if ((h & ((1u << HOME_BITS) - 1)) == target)
            c[k++] = x;
        else
            g_free(x);
    }
    for (int k = 0; k < N; k++) {
        twin[k] = g_memdup2(c[k], sizeof *c[k]);
        kr_map_insert(&known, c[k], kr_map_hash(&known, &c[k]->dev, &c[k]->cloud));
        kr_map_insert(&other, twin[k], kr_map_hash(&other, &c[k]->dev, &c[k]->cloud));
    }
    assert_int_equal(known.mask + 1, 512);
    assert_true(kr_map_longest_probe(&known) >= N);   /* one run: what a known seed would allow */
    assert_true(kr_map_longest_probe(&other) <= 24);  /* another seed: spread out */
    for (int k = 0; k < N; k++) {
        const kr_endpoint *d = &c[k]->dev, *s = &c[k]->cloud;
        assert_int_equal(kr_map_hash(&other, d, s), kr_map_hash(&other, s, d));
        assert_ptr_equal(kr_map_find(&known, s, d, kr_map_hash(&known, s, d), &dir), c[k]);
        assert_int_equal(dir, KR_S2D);                /* the cloud's end first: sent by the cloud */
        assert_ptr_equal(kr_map_find(&other, d, s, kr_map_hash(&other, d, s), &dir), twin[k]);
        assert_int_equal(dir, KR_D2S);
        assert_ptr_equal(kr_map_find(&other, s, d, kr_map_hash(&other, s, d), &dir), twin[k]);
        assert_int_equal(dir, KR_S2D);
    }
    for (int k = 0; k < N; k += 2) {
        kr_map_remove(&known, c[k]);
        kr_map_remove(&other, twin[k]);
    }
    for (int k = 0; k < N; k++) {
        const kr_endpoint *d = &c[k]->dev, *s = &c[k]->cloud;
        assert_ptr_equal(kr_map_find(&known, s, d, kr_map_hash(&known, s, d), &dir), k % 2 ? c[k] : NULL);
        assert_ptr_equal(kr_map_find(&other, d, s, kr_map_hash(&other, d, s), &dir), k % 2 ? twin[k] : NULL);
    }
    assert_int_equal(known.n, N / 2);
    assert_int_equal(other.n, N / 2);
    kr_map_free(&known);
    kr_map_free(&other);
    for (int k = 0; k < N; k++) {
        g_free(c[k]);
        g_free(twin[k]);
    }
}

static void test_map_hostile_ends(void **st)
{
    (void)st;
    map_hostile(false);
    map_hostile(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_retransmission_and_overlap),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_one_byte_segments_reversed),
        cmocka_unit_test(test_gap_at_buffer_limit),
        cmocka_unit_test(test_huge_waiting_limit),
        cmocka_unit_test(test_gap_at_end_and_fin),
        cmocka_unit_test(test_fin_hole_only),
        cmocka_unit_test(test_ack_gives_up_hole),
        cmocka_unit_test(test_joined_late),
        cmocka_unit_test(test_joined_late_out_of_order),
        cmocka_unit_test(test_joined_late_settles_in_time),
        cmocka_unit_test(test_snaplen_cut),
        cmocka_unit_test(test_in_packet),
        cmocka_unit_test(test_isn_plus_one_and_out_of_order),
        cmocka_unit_test(test_lost_first_segment_is_a_gap_from_isn),
        cmocka_unit_test(test_overlap_with_other_bytes),
        cmocka_unit_test(test_conflicting_copy_reaches_the_tracker),
        cmocka_unit_test(test_conflicting_copies_wait_out_of_order),
        cmocka_unit_test(test_rst_window_scale),
        cmocka_unit_test(test_checksum_copies),
        cmocka_unit_test(test_frames_whole_or_split_alike),
        cmocka_unit_test(test_copy_after_read_is_read_again),
        cmocka_unit_test(test_long_frame_read_again),
        cmocka_unit_test(test_read_again_moves_the_chain),
        cmocka_unit_test(test_read_again_after_the_records_moved),
        cmocka_unit_test(test_copy_after_ack_is_not_taken),
        cmocka_unit_test(test_copies_both_or_neither_disputed),
        cmocka_unit_test(test_pending_copies_one_rule),
        cmocka_unit_test(test_copy_during_resync_after_gap),
        cmocka_unit_test(test_damaged_prefix_then_right_copy),
        cmocka_unit_test(test_damaged_prefix_resynced_then_right_copy),
        cmocka_unit_test(test_unframed_garbage_then_right_copy),
        cmocka_unit_test(test_tcp_checksum_rule),
        cmocka_unit_test(test_tcp_checksum_lengths),
        cmocka_unit_test(test_inet_sum),
        cmocka_unit_test(test_rst_in_window_ends),
        cmocka_unit_test(test_rst_out_of_window_ignored),
        cmocka_unit_test(test_rst_survived),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_syn_flood_spares_the_session),
        cmocka_unit_test(test_ip_length_against_captured),
        cmocka_unit_test(test_gap_given_up_by_ack),
        cmocka_unit_test(test_idle_expiry),
        cmocka_unit_test(test_idle_expiry_by_packets),
        cmocka_unit_test(test_ended_freed_after_linger),
        cmocka_unit_test(test_nonce_rule_and_heuristic),
        cmocka_unit_test(test_heuristic_other_port),
        cmocka_unit_test(test_map_hostile_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
