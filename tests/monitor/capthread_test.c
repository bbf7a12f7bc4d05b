/* The capture thread's queue, fed from a pcap file (a handle the thread reads like a live one):
 * 1. nobody takes packets and the queue is bounded to 1 MB: the packets that did not fit are counted,
 *    and every packet is either taken afterwards, whole and in order, or counted as dropped (a short
 *    packet may still fit where a longer one before it did not);
 * 2. a reader takes packets while the thread queues them (many chunks, each given back and used again):
 *    every packet arrives once, in order, with its bytes, and none is dropped;
 * 3. a stop with packets still queued: cm_capthread_discard drops and counts them.
 * Exit 0 when every check holds. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "capthread.h"

static int failed;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        printf("%s ", (cond) ? "ok  " : "FAIL");                              \
        printf(__VA_ARGS__);                                                  \
        printf("\n");                                                         \
        failed += !(cond);                                                    \
    } while (0)

#define N 20000

static unsigned len_of(unsigned i)
{
    return 60 + (i * 37u) % 1400;
}

static void fill(unsigned i, unsigned char *b)
{
    for (unsigned j = 0; j < len_of(i); j++)
        b[j] = (unsigned char)(i * 7u + j);
    memcpy(b, &i, sizeof i);
}

static void write_capture(const char *path)
{
    pcap_t *dead = pcap_open_dead(DLT_EN10MB, 65535);
    pcap_dumper_t *d = pcap_dump_open(dead, path);
    unsigned char b[1500];
    for (unsigned i = 0; i < N; i++) {
        struct pcap_pkthdr h = { { 1000 + i, 0 }, len_of(i), len_of(i) };
        fill(i, b);
        pcap_dump((u_char *)d, &h, b);
    }
    pcap_dump_close(d);
    pcap_close(dead);
}

/* The packet as written: its number, length and bytes. */
static int packet_ok(unsigned want, const struct pcap_pkthdr *h, const u_char *data)
{
    unsigned char b[1500];
    fill(want, b);
    return h->caplen == len_of(want) && h->len == len_of(want) && (unsigned)h->ts.tv_sec == 1000 + want &&
           memcmp(data, b, h->caplen) == 0;
}

static pcap_t *open_capture(const char *path)
{
    char eb[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(path, eb);
    if (!p) {
        printf("FAIL %s: %s\n", path, eb);
        exit(1);
    }
    return p;
}

static void nap(void)
{
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
}

/* The thread reading the file into a queue of mb megabytes. */
static cm_capthread *start(const char *path, unsigned mb, pcap_t **p)
{
    char err[256];
    *p = open_capture(path);
    cm_capthread *t = cm_capthread_start(*p, (size_t)mb << 20, err, sizeof err);
    CHECK(t != NULL, "the thread starts with a queue of %u MB (%s)", mb, t ? "" : err);
    if (!t)
        pcap_close(*p);
    return t;
}

static void full_queue(const char *path)
{
    pcap_t *p;
    cm_capthread *t = start(path, 1, &p);
    if (!t)
        return;
    /* the file is read in milliseconds; wait until the drop count has not moved for 0.3 s */
    uint64_t last = (uint64_t)-1;
    for (int still = 0, i = 0; still < 15 && i < 500; i++, nap()) {
        uint64_t d = cm_capthread_queue_drops(t);
        still = d == last ? still + 1 : 0;
        last = d;
    }
    cm_capthread_stop(t);
    uint64_t drops = cm_capthread_queue_drops(t);
    struct pcap_pkthdr *h;
    const u_char *data;
    unsigned got = 0, bad = 0, next = 0;
    size_t bytes = 0;
    while (cm_capthread_next(t, &h, &data) == 1) {
        unsigned i;
        memcpy(&i, data, sizeof i);
        bytes += (sizeof *h + h->caplen + 7) & ~(size_t)7;
        bad += i < next || i >= N || !packet_ok(i, h, data);
        next = i + 1;
        got++;
    }
    CHECK(drops > 0 && got > 0, "a full queue drops and counts: %u taken, %llu dropped", got,
          (unsigned long long)drops);
    CHECK(got + drops == N, "every packet is taken or counted as dropped (%u + %llu of %d)", got,
          (unsigned long long)drops, N);
    CHECK(bad == 0, "the packets taken are whole and in the order they came (%u wrong)", bad);
    CHECK(bytes <= 1u << 20, "the queue held no more than its bound (%zu bytes)", bytes);
    cm_capthread_free(t);
    pcap_close(p);
}

/* Takes packets beside the thread until want of them came (or 500 waits of 20 ms passed); those not whole
 * or not in order are counted in *bad. */
static unsigned take(cm_capthread *t, unsigned want, unsigned *bad)
{
    struct pcap_pkthdr *h;
    const u_char *data;
    unsigned got = 0;
    for (int waits = 0; got < want && waits < 500;) {
        if (cm_capthread_next(t, &h, &data) == 1) {
            *bad += !packet_ok(got++, h, data);
            continue;
        }
        struct pollfd pf = { cm_capthread_fd(t), POLLIN, 0 };
        poll(&pf, 1, 20);
        waits++;
    }
    return got;
}

static void reader_keeps_up(const char *path)
{
    pcap_t *p;
    cm_capthread *t = start(path, 64, &p);
    if (!t)
        return;
    unsigned bad = 0, got = take(t, N, &bad);
    CHECK(got == N && bad == 0, "a reader beside the thread takes all %d packets, whole and in order (%u, %u wrong)",
          N, got, bad);
    CHECK(cm_capthread_queue_drops(t) == 0, "none dropped (%llu)",
          (unsigned long long)cm_capthread_queue_drops(t));
    cm_capthread_free(t);
    pcap_close(p);
}

/* A stop with packets still queued: those taken before it are kept, the rest are dropped by
 * cm_capthread_discard and counted with the queue's drops, and nothing is left to take. */
static void discard_after_stop(const char *path)
{
    pcap_t *p;
    cm_capthread *t = start(path, 64, &p);
    if (!t)
        return;
    unsigned bad = 0, got = take(t, 100, &bad);
    for (int i = 0; i < 25; i++)    /* the file is read in milliseconds: 0.5 s for the thread to queue it all */
        nap();
    CHECK(cm_capthread_discard(t) == 0, "no discard while the thread runs");
    cm_capthread_stop(t);
    uint64_t left = cm_capthread_discard(t);
    struct pcap_pkthdr *h;
    const u_char *data;
    CHECK(got == 100 && bad == 0 && left == N - got, "after the stop, the %u packets not taken are discarded (%llu)",
          N - got, (unsigned long long)left);
    CHECK(cm_capthread_queue_drops(t) == left && cm_capthread_left(t) == left,
          "they are counted as dropped by the queue (%llu)", (unsigned long long)cm_capthread_queue_drops(t));
    CHECK(cm_capthread_next(t, &h, &data) == 0 && cm_capthread_discard(t) == 0, "nothing is left to take");
    cm_capthread_free(t);
    pcap_close(p);
}

int main(void)
{
    char path[] = "/tmp/capthread-test-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);
    write_capture(path);
    full_queue(path);
    reader_keeps_up(path);
    discard_after_stop(path);
    unlink(path);
    printf("%s\n", failed ? "some checks failed" : "all checks passed");
    return failed ? 1 : 0;
}
