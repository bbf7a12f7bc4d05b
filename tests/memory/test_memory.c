/* Memory per open connection in libkeyring's connection layer and tracker. The healthy sample's connection
 * is replayed N times (each with its own device address) through one kr_conn_table, and the heap the
 * process really holds is counted (glibc's mallinfo2, or the sanitizer's allocator in an ASan build):
 *  - after the nonce and the device's id block (the id block opened with the server key): at most 2048 bytes
 *    per connection;
 *  - during the session (Hellos and messages decrypted, no FIN yet): at most 4096 bytes per connection.
 * kr_conn_table_memory must agree with what was counted, within the allocator's own overhead (at least
 * 80% of it, never more).
 * The worst case: every connection in a session whose receivers acknowledge nothing more, so each direction
 * keeps the most frames a later conflicting copy may still contradict (8 frames, 512 bytes of them): at
 * most 6912 bytes per connection, as docs/connections.md states (the kept frames and their records count
 * for at most one block of 1072 bytes a direction of it), and acknowledging the frames gives that back.
 * A thread that kept frames leaves nothing behind when it ends (its block cache and AES context go). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <malloc.h>
#include <pthread.h>
#include <pcap/pcap.h>
#include "keyring/keyring.h"
#include "keyring/conn.h"

#if defined(__SANITIZE_ADDRESS__)
#define MEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_ASAN 1
#endif
#endif
#ifdef MEM_ASAN
/* the sanitizer's allocator counts what it hands out (sanitizer/allocator_interface.h is not always installed) */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#define N_CONNS 300
#define MAX_PKTS 64

/* Heap bytes in use by the process right now. */
static size_t heap_in_use(void)
{
#ifdef MEM_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

typedef struct pkt {
    bool from_dev;
    uint32_t seq, ack;
    uint8_t flags;
    uint32_t window;
    uint8_t payload[1500];
    size_t len;
    double time;
} pkt;

static pkt P[MAX_PKTS];
static size_t n_pkts;
static kr_keyfile *KF;

/* Ethernet, IPv4, TCP: the sample's frames */
static void take(const struct pcap_pkthdr *h, const uint8_t *f)
{
    assert_true(h->caplen >= 14 + 20 + 20 && f[12] == 0x08 && f[13] == 0x00);
    const uint8_t *ip = f + 14;
    size_t ihl = (size_t)(ip[0] & 15) * 4, tot = (size_t)ip[2] << 8 | ip[3];
    assert_int_equal(ip[9], 6);
    const uint8_t *tcp = ip + ihl;
    size_t thl = (size_t)(tcp[12] >> 4) * 4;
    assert_true(n_pkts < MAX_PKTS && 14 + tot <= h->caplen);
    pkt *p = &P[n_pkts++];
    p->from_dev = (((unsigned)tcp[2] << 8) | tcp[3]) == 5683;   /* to the cloud port */
    p->seq = (uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 | (uint32_t)tcp[6] << 8 | tcp[7];
    p->ack = (uint32_t)tcp[8] << 24 | (uint32_t)tcp[9] << 16 | (uint32_t)tcp[10] << 8 | tcp[11];
    p->flags = tcp[13];
    p->window = (uint32_t)tcp[14] << 8 | tcp[15];
    p->len = tot - ihl - thl;
    assert_true(p->len <= sizeof p->payload);
    memcpy(p->payload, tcp + thl, p->len);
    p->time = (double)h->ts.tv_sec + h->ts.tv_usec / 1e6;
}

static int setup(void **state)
{
    (void)state;
    const char *root = getenv("SPARKWIRE_SOURCE_ROOT");
    char path[4096], err[PCAP_ERRBUF_SIZE];
    snprintf(path, sizeof path, "%s/samples/healthy/keyfile", root ? root : ".");
    kr_err e = { "" };
    KF = kr_keyfile_load(path, &e);
    if (!KF) {
        fprintf(stderr, "test-memory: %s\n", e.msg);
        return -1;
    }
    snprintf(path, sizeof path, "%s/samples/healthy/capture.pcap", root ? root : ".");
    pcap_t *pc = pcap_open_offline(path, err);
    if (!pc) {
        fprintf(stderr, "test-memory: %s\n", err);
        return -1;
    }
    struct pcap_pkthdr *h;
    const uint8_t *f;
    while (pcap_next_ex(pc, &h, &f) == 1)
        take(h, f);
    pcap_close(pc);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kr_keyfile_free(KF);
    return 0;
}

/* The sample's packet i as connection k's (device 10.x.y.z, its own port). */
static void feed(kr_conn_table *tab, int k, size_t i)
{
    const pkt *p = &P[i];
    kr_endpoint dev = { .family = 4, .port = (uint16_t)(20000 + k % 30000) };
    kr_endpoint cloud = { .family = 4, .port = 5683 };
    dev.ip[0] = 10;
    dev.ip[1] = (uint8_t)(k >> 16);
    dev.ip[2] = (uint8_t)(k >> 8);
    dev.ip[3] = (uint8_t)k;
    memcpy(cloud.ip, (const uint8_t[]){ 127, 0, 0, 11 }, 4);
    kr_packet kp = { .seq = p->seq, .ack = p->ack, .flags = p->flags, .window = p->window,
                     .payload = p->payload, .captured_len = p->len, .wire_len = p->len,
                     .checksum = KR_CSUM_UNKNOWN, .time = p->time };
    kp.src = p->from_dev ? dev : cloud;
    kp.dst = p->from_dev ? cloud : dev;
    kr_conn_packet(tab, &kp);
}

typedef struct tally {
    int opens, oks, idblocks, messages;
    bool have_session;
    uint8_t session[KR_SESSION_LEN];    /* the session material the session block opened to */
    kr_conn *conns[N_CONNS];
} tally;

static void t_open(void *ud, kr_conn *c)
{
    tally *t = ud;
    assert_true(t->opens < N_CONNS);
    t->conns[t->opens++] = c;
}

static void t_step(void *ud, kr_conn *c, const kr_step *s)
{
    (void)c;
    tally *t = ud;
    if (s->kind == KR_STEP_IDBLOCK && s->id_block_opened == KR_YES)
        t->idblocks++;
    if (s->kind == KR_STEP_SESSIONBLOCK && s->session_known) {
        memcpy(t->session, s->session, KR_SESSION_LEN);
        t->have_session = true;
    }
}

static void t_message(void *ud, kr_conn *c, const kr_message *m)
{
    (void)c;
    (void)m;
    ((tally *)ud)->messages++;
}

static void t_verdict(void *ud, kr_conn *c, const kr_verdict *v)
{
    (void)c;
    if (v->code == KR_V_OK)
        ((tally *)ud)->oks++;
}

static const kr_conn_callbacks tally_cb = { .open = t_open, .step = t_step, .message = t_message,
                                            .verdict = t_verdict };

/* index of the first packet of the sample carrying n bytes from the device, and of its first FIN */
static size_t first_payload_of(bool from_dev, size_t len)
{
    for (size_t i = 0; i < n_pkts; i++)
        if (P[i].from_dev == from_dev && P[i].len == len)
            return i;
    fail_msg("the sample has no %zu-byte packet", len);
    return 0;
}

static size_t first_fin(void)
{
    for (size_t i = 0; i < n_pkts; i++)
        if (P[i].flags & (KR_TCP_FIN | KR_TCP_RST))
            return i;
    return n_pkts;
}

static void report(const char *what, size_t counted, size_t reported, size_t limit)
{
    printf("%-48s %6zu bytes per connection counted (kr_conn_table_memory: %zu), limit %zu\n", what,
           counted / N_CONNS, reported / N_CONNS, limit);
}

/* The table's options, after one whole connection through a table of its own: what OpenSSL and the keyfile
 * set up once (at the first RSA and AES operation) is not a connection's. */
static kr_conn_options warm_up(tally *warm)
{
    kr_conn_options o;
    kr_conn_options_default(&o);
    o.max_conns = 0;
    kr_conn_table *tab = kr_conn_table_new(KF, &o, &tally_cb, warm);
    for (size_t i = 0; i < n_pkts; i++)
        feed(tab, 0, i);
    kr_conn_finish(tab, P[n_pkts - 1].time, "capture ended");
    kr_conn_table_free(tab);
    return o;
}

static void test_bytes_per_connection(void **state)
{
    (void)state;
    size_t idblock = first_payload_of(true, KR_IDBLOCK_LEN), fin = first_fin();
    assert_true(idblock + 1 < fin);
    tally t = { 0 }, warm = { 0 };
    kr_conn_options o = warm_up(&warm);
    assert_true(warm.oks >= 1);
    size_t base = heap_in_use();
    kr_conn_table *tab;
    tab = kr_conn_table_new(KF, &o, &tally_cb, &t);
    /* every connection up to the cloud's acknowledgement of the id block */
    for (int k = 0; k < N_CONNS; k++)
        for (size_t i = 0; i <= idblock + 1; i++)
            feed(tab, k, i);
    size_t before_session = heap_in_use() - base, rep1 = kr_conn_table_memory(tab);
    assert_int_equal(t.opens, N_CONNS);
    assert_int_equal(t.idblocks, N_CONNS);   /* the server key opened every id block */
    assert_int_equal(t.oks, 0);
    report("after the nonce and the id block:", before_session, rep1, 2048);
    /* then the session block, the Hellos and the messages, up to the first FIN */
    for (int k = 0; k < N_CONNS; k++)
        for (size_t i = idblock + 2; i < fin; i++)
            feed(tab, k, i);
    size_t in_session = heap_in_use() - base, rep2 = kr_conn_table_memory(tab);
    assert_int_equal(t.oks, N_CONNS);        /* every session decrypts: ok at the second Hello */
    assert_true(t.messages >= 4 * N_CONNS);
    for (int k = 0; k < N_CONNS; k++)
        assert_true(kr_tracker_info(kr_conn_tracker(t.conns[k]))->decrypting);
    report("during the session (before the first FIN):", in_session, rep2, 4096);
    assert_true(before_session / N_CONNS <= 2048);
    assert_true(in_session / N_CONNS <= 4096);
    /* kr_conn_table_memory counts what is allocated: never more than the heap holds (bar 64 bytes of
     * slack a connection), and at least 80% of it (the rest is the allocator's headers) */
    assert_true(rep1 <= before_session + 64 * N_CONNS);
    assert_true(rep2 <= in_session + 64 * N_CONNS);
    assert_true(rep1 * 10 >= before_session * 8);
    assert_true(rep2 * 10 >= in_session * 8);
    kr_conn_finish(tab, P[n_pkts - 1].time, "capture ended");
    kr_conn_table_free(tab);
    /* all of it is given back: what stays is what the C library and OpenSSL set up once (about 20 kB in
     * a couple of dozen blocks), less than one small allocation per connection (leaks are LSan's part) */
    size_t after = heap_in_use();
    printf("after kr_conn_table_free: %ld bytes more than before the table\n", (long)after - (long)base);
    assert_true(after <= base + 128 * N_CONNS);
}

#define WORST_LIMIT 6912    /* bytes per connection with the most frames kept both ways (measured: 5,627) */
#define KEPT_BLOCK_MOST 1072 /* a direction's kept frames: one block, at most 8 bytes and one record of 40
                               with a frame of 1024 (8 records with 512 bytes of frames take less) */
#define EXTRA_FRAMES 12     /* per direction: more than the 8 frames and 512 bytes a direction keeps */

/* Where direction from_dev stands before packet `end`: its next sequence number, the acknowledgement it
 * last sent, and its last ciphertext block (the next frame's IV; the sample's packets end on frames). */
typedef struct dir_end {
    uint32_t seq, ack;
    uint8_t iv[16];
    kr_cipher *c;
} dir_end;

static dir_end where(bool from_dev, size_t end, const uint8_t key[16])
{
    dir_end d = { 0 };
    for (size_t i = 0; i < end; i++)
        if (P[i].from_dev == from_dev && P[i].len >= 16) {
            d.seq = P[i].seq + (uint32_t)P[i].len;
            d.ack = P[i].ack;
            memcpy(d.iv, P[i].payload + P[i].len - 16, 16);
        }
    d.c = kr_cipher_new(key, d.iv);
    assert_non_null(d.c);
    return d;
}

/* The extra frames of one direction: CoAP NON POST /e/x messages of 50 and 66 bytes on the wire (two of
 * 50, then 66: the 8 kept come closest to 512 bytes), each in its own packet. */
static size_t extra_frames(dir_end *d, uint8_t f[EXTRA_FRAMES][80], size_t len[EXTRA_FRAMES])
{
    for (int i = 0; i < EXTRA_FRAMES; i++) {
        uint8_t m[64] = { 0x50, 0x02, 0x40, (uint8_t)i, 0xb1, 'e', 0x01, 'x', 0xff };
        size_t n = i < 2 ? 40 : 56;       /* 48 or 64 bytes once padded */
        memset(m + 9, 'p', n - 9);
        int l = kr_cipher_encrypt(d->c, m, n, f[i], 80);
        assert_true(l == (i < 2 ? 50 : 66));
        len[i] = (size_t)l;
    }
    return EXTRA_FRAMES;
}

static void feed_raw(kr_conn_table *tab, int k, bool from_dev, uint32_t seq, uint32_t ack, const uint8_t *b,
                     size_t n, double ts)
{
    pkt *p = &P[MAX_PKTS - 1];
    assert_true(n_pkts < MAX_PKTS);
    *p = (pkt){ .from_dev = from_dev, .seq = seq, .ack = ack, .flags = KR_TCP_ACK, .window = 65535, .len = n,
                .time = ts };
    memcpy(p->payload, b, n);
    feed(tab, k, MAX_PKTS - 1);
}

/* The extra frames both ways, and where each direction stands after the sample's session. */
typedef struct most_kept {
    size_t fin;
    double ts;
    dir_end dev, cloud;
    uint8_t df[EXTRA_FRAMES][80], cf[EXTRA_FRAMES][80];
    size_t dl[EXTRA_FRAMES], cl[EXTRA_FRAMES];
} most_kept;

static void most_kept_make(most_kept *m, const uint8_t session[KR_SESSION_LEN])
{
    m->fin = first_fin();
    m->ts = P[m->fin - 1].time;
    m->dev = where(true, m->fin, session);
    m->cloud = where(false, m->fin, session);
    extra_frames(&m->dev, m->df, m->dl);
    extra_frames(&m->cloud, m->cf, m->cl);
}

static void most_kept_free(most_kept *m)
{
    kr_cipher_free(m->dev.c);
    kr_cipher_free(m->cloud.c);
}

/* Every connection through the sample's session, up to its first FIN. */
static void feed_sessions(kr_conn_table *tab, const most_kept *m)
{
    for (int k = 0; k < N_CONNS; k++)
        for (size_t i = 0; i < m->fin; i++)
            feed(tab, k, i);
}

/* Then the extra frames each way, each in its own packet, that no one acknowledges. */
static void feed_extra(kr_conn_table *tab, const most_kept *m)
{
    for (int k = 0; k < N_CONNS; k++) {
        uint32_t ds = m->dev.seq, cs = m->cloud.seq;
        for (int i = 0; i < EXTRA_FRAMES; i++) {
            feed_raw(tab, k, true, ds, m->dev.ack, m->df[i], m->dl[i], m->ts + 0.001 * i);
            feed_raw(tab, k, false, cs, m->cloud.ack, m->cf[i], m->cl[i], m->ts + 0.001 * i + 0.0005);
            ds += (uint32_t)m->dl[i];
            cs += (uint32_t)m->cl[i];
        }
    }
}

/* Every connection in a session, then EXTRA_FRAMES frames each way that no one acknowledges: each direction
 * keeps its most frames, and the bytes per connection stay within the worst case stated above. */
static void test_most_frames_kept(void **state)
{
    (void)state;
    tally t = { 0 }, warm = { 0 };
    kr_conn_options o = warm_up(&warm);
    assert_true(warm.have_session);
    most_kept *m = calloc(1, sizeof *m);
    assert_non_null(m);
    most_kept_make(m, warm.session);
    size_t base = heap_in_use();
    kr_conn_table *tab = kr_conn_table_new(KF, &o, &tally_cb, &t);
    feed_sessions(tab, m);
    int msgs = t.messages;
    feed_extra(tab, m);
    /* every extra frame was read with the session key (so each was kept) */
    assert_int_equal(t.messages - msgs, 2 * EXTRA_FRAMES * N_CONNS);
    size_t worst = heap_in_use() - base, rep = kr_conn_table_memory(tab);
    report("the most frames kept both ways (no acknowledgement):", worst, rep, WORST_LIMIT);
    assert_true(worst / N_CONNS <= WORST_LIMIT);
    /* each side acknowledges all the other sent: the kept frames are given back, and what that frees is
     * what they held: at least the 7 frames of 66 bytes that fit in 512 each way, at most a block each way */
    uint32_t dev_end = m->dev.seq, cloud_end = m->cloud.seq;
    for (int i = 0; i < EXTRA_FRAMES; i++) {
        dev_end += (uint32_t)m->dl[i];
        cloud_end += (uint32_t)m->cl[i];
    }
    uint8_t none[1] = { 0 };
    for (int k = 0; k < N_CONNS; k++) {
        feed_raw(tab, k, false, cloud_end, dev_end, none, 0, m->ts + 0.5);
        feed_raw(tab, k, true, dev_end, cloud_end, none, 0, m->ts + 0.5);
    }
    size_t rep_acked = kr_conn_table_memory(tab), kept = (rep - rep_acked) / N_CONNS;
    printf("kept frames: %zu bytes per connection (kr_conn_table_memory), given back when acknowledged\n", kept);
    assert_true(kept >= 2 * 7 * 66);
    assert_true(kept <= 2 * KEPT_BLOCK_MOST);
    kr_conn_finish(tab, m->ts + 1, "capture ended");
    kr_conn_table_free(tab);
    most_kept_free(m);
    free(m);
}

typedef struct thread_job {
    const most_kept *m;
    kr_conn_options o;
    tally t;
} thread_job;

static void *keep_in_thread(void *arg)
{
    thread_job *j = arg;
    kr_conn_table *tab = kr_conn_table_new(KF, &j->o, &tally_cb, &j->t);
    feed_sessions(tab, j->m);
    feed_extra(tab, j->m);
    kr_conn_finish(tab, j->m->ts + 1, "capture ended");
    kr_conn_table_free(tab);
    return NULL;
}

/* A thread keeps the most frames in every connection, then frees its table: the blocks that held them go
 * back to the thread's cache of blocks (a few kilobytes, for its next frames) or are freed; when the thread
 * ends, its cache is emptied and its AES context freed: nothing of it stays. */
static void test_thread_end_gives_blocks_back(void **state)
{
    (void)state;
#ifndef MEM_ASAN
    mallopt(M_ARENA_MAX, 1);   /* the thread allocates from the heap heap_in_use counts */
#endif
    tally warm = { 0 };
    thread_job *j = calloc(1, sizeof *j);
    most_kept *m = calloc(1, sizeof *m);
    assert_non_null(j);
    assert_non_null(m);
    j->o = warm_up(&warm);
    assert_true(warm.have_session);
    most_kept_make(m, warm.session);
    j->m = m;
    size_t base = 0, after = 0;
    /* the first thread is a warm-up: OpenSSL sets up what RSA keys need when a second thread uses them, once */
    for (int round = 0; round < 2; round++) {
        memset(&j->t, 0, sizeof j->t);
        base = heap_in_use();
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, keep_in_thread, j), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        after = heap_in_use();
        assert_true(j->t.messages >= 2 * EXTRA_FRAMES * N_CONNS);
        printf("after thread %d ended: %ld bytes more than before it\n", round + 1, (long)after - (long)base);
    }
    assert_true(after <= base + 256);
    most_kept_free(m);
    free(m);
    free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_per_connection),
        cmocka_unit_test(test_most_frames_kept),
        cmocka_unit_test(test_thread_end_gives_blocks_back),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
