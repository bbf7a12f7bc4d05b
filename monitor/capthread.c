/* cloudmon: the capture thread and its queue.
 *
 * The queue is a list of chunks. The thread appends records (a pcap header, then the packet's bytes, to
 * an 8-byte boundary) to the last chunk and publishes each one by moving the chunk's write position
 * (release); when a record does not fit it links a new chunk after the last (release) and never writes to
 * the old one again. The reader takes records from the first chunk up to its write position (acquire) and,
 * once a next chunk is linked and the first is read to its end, gives the first back: kept as the one spare
 * chunk, or unmapped. Every chunk mapped, the spare included, counts against the bound. */
#include "capthread.h"
#include "pcaplib.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef struct chunk {
    _Atomic(struct chunk *) next;    /* set once by the thread, when it moved on to the next chunk */
    atomic_size_t wpos;              /* bytes of data[] published */
    alignas(8) unsigned char data[];
} chunk;

#define DATA_CAP (CM_CAPTHREAD_CHUNK - offsetof(chunk, data))
#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

enum { RUNNING, FAILED, ENDED };
#define BATCH 4096

struct cm_capthread {
    pcap_t *p;
    pthread_t tid;
    bool joined;
    int wake_fd;                     /* eventfd: packets were queued */
    int stop_fd;                     /* eventfd: the thread is to end */
    atomic_int state;
    atomic_bool stop;                /* set with stop_fd */
    char err[PCAP_ERRBUF_SIZE + 64]; /* why the thread failed (written before state FAILED) */
    unsigned max_chunks;
    atomic_uint chunks;              /* mapped, the spare included */
    _Atomic(chunk *) spare;
    atomic_uint_fast64_t queue_drops, kernel_drops;
    uint64_t left;                   /* the reader's: records discarded after the stop (cm_capthread_discard) */
    /* the thread's own */
    chunk *wr;
    size_t wr_pos;
    bool queued;                     /* records published since the last wake-up */
    struct timespec last_stats;
    /* the reader's own */
    chunk *rd;
    size_t rd_pos, held;             /* the record handed out last is held until the next call */
};

static chunk *chunk_map(void)
{
    void *m = mmap(NULL, CM_CAPTHREAD_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    chunk *c = m;
    atomic_init(&c->next, NULL);
    atomic_init(&c->wpos, 0);
    return c;
}

static void chunk_unmap(cm_capthread *t, chunk *c)
{
    munmap(c, CM_CAPTHREAD_CHUNK);
    atomic_fetch_sub_explicit(&t->chunks, 1, memory_order_relaxed);
}

/* The thread: a fresh chunk (the spare when there is one), or NULL when the bound is reached. */
static chunk *chunk_take(cm_capthread *t)
{
    chunk *c = atomic_exchange_explicit(&t->spare, NULL, memory_order_acquire);
    if (c) {
        atomic_store_explicit(&c->next, NULL, memory_order_relaxed);
        atomic_store_explicit(&c->wpos, 0, memory_order_relaxed);
        return c;
    }
    if (atomic_load_explicit(&t->chunks, memory_order_relaxed) >= t->max_chunks)
        return NULL;
    c = chunk_map();
    if (c)
        atomic_fetch_add_explicit(&t->chunks, 1, memory_order_relaxed);
    return c;
}

/* The reader: a chunk read to its end. */
static void chunk_give(cm_capthread *t, chunk *c)
{
    chunk *old = atomic_exchange_explicit(&t->spare, c, memory_order_release);
    if (old)
        chunk_unmap(t, old);
}

/* pcap_dispatch's callback, on the thread: copy the packet into the queue, or count it dropped. */
static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
    cm_capthread *t = (cm_capthread *)user;
    size_t need = ALIGN8(sizeof *h + h->caplen);
    if (need > DATA_CAP) {           /* longer than any snapshot length cloudmon sets */
        atomic_fetch_add_explicit(&t->queue_drops, 1, memory_order_relaxed);
        return;
    }
    if (t->wr_pos + need > DATA_CAP) {
        chunk *n = chunk_take(t);
        if (!n) {
            atomic_fetch_add_explicit(&t->queue_drops, 1, memory_order_relaxed);
            return;
        }
        atomic_store_explicit(&t->wr->next, n, memory_order_release);
        t->wr = n;
        t->wr_pos = 0;
    }
    unsigned char *at = t->wr->data + t->wr_pos;
    memcpy(at, h, sizeof *h);
    memcpy(at + sizeof *h, bytes, h->caplen);
    t->wr_pos += need;
    atomic_store_explicit(&t->wr->wpos, t->wr_pos, memory_order_release);
    t->queued = true;
}

static void wake(int fd)
{
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n;                         /* EAGAIN: the counter is already set, the reader will wake */
}

static double since(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* The kernel's drop count, read by the thread (pcap_stats uses the handle) at most every 100 ms. */
static void read_stats(cm_capthread *t, bool now)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (!now && since(&t->last_stats, &ts) < 0.1)
        return;
    t->last_stats = ts;
    struct pcap_stat ps;
    if (cm_pcap.stats(t->p, &ps) == 0)
        atomic_store_explicit(&t->kernel_drops, (uint64_t)ps.ps_drop + ps.ps_ifdrop, memory_order_relaxed);
}

/* A bounded batch from the kernel's ring into the queue; the reader is woken when it got packets. */
static int take_batch(cm_capthread *t)
{
    int n = cm_pcap.dispatch(t->p, BATCH, on_packet, (u_char *)t);
    if (t->queued) {
        t->queued = false;
        wake(t->wake_fd);
    }
    return n;
}

/* At the stop, what the kernel's ring still holds is queued too: its last block is handed over within the
 * capture's block timeout, so the ring is read until it stays empty for longer than that (at most
 * STOP_RING seconds, on an interface that never goes quiet). */
#define STOP_RING 0.5
static void drain_ring(cm_capthread *t)
{
    struct pollfd pf = { cm_pcap.get_selectable_fd(t->p), POLLIN, 0 };
    struct timespec start, ts;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int n = take_batch(t);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (n < 0 || since(&start, &ts) >= STOP_RING || (n == 0 && poll(&pf, 1, 150) <= 0))
            return;
    }
}

static void *run(void *arg)
{
    cm_capthread *t = arg;
    struct pollfd pf[2] = { { cm_pcap.get_selectable_fd(t->p), POLLIN, 0 }, { t->stop_fd, POLLIN, 0 } };
    while (!atomic_load_explicit(&t->stop, memory_order_relaxed)) {
        /* a bounded batch: the reader is woken and a stop is seen at least every BATCH packets */
        int n = take_batch(t);
        if (n < 0 && n != PCAP_ERROR_BREAK) {
            snprintf(t->err, sizeof t->err, "%s", cm_pcap.geterr(t->p));
            atomic_store_explicit(&t->state, FAILED, memory_order_release);
            wake(t->wake_fd);
            break;
        }
        read_stats(t, false);
        if (n == 0 && poll(pf, 2, 100) < 0 && errno != EINTR) {
            snprintf(t->err, sizeof t->err, "waiting for packets: %s", strerror(errno));
            atomic_store_explicit(&t->state, FAILED, memory_order_release);
            wake(t->wake_fd);
            break;
        }
    }
    if (atomic_load_explicit(&t->state, memory_order_relaxed) == RUNNING)
        drain_ring(t);
    read_stats(t, true);
    return NULL;
}

cm_capthread *cm_capthread_start(pcap_t *p, size_t max_bytes, char *err, size_t errcap)
{
    if (!cm_pcap_load(err, errcap))      /* loaded already when p was opened through capture.c */
        return NULL;
    cm_capthread *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errcap, "the capture queue: out of memory (--queue-mb 0 captures without it)");
        return NULL;
    }
    t->p = p;
    t->joined = true;
    size_t n = max_bytes / CM_CAPTHREAD_CHUNK;
    t->max_chunks = n < 2 ? 2 : n > 1u << 30 ? 1u << 30 : (unsigned)n;
    t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    t->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    t->wr = t->rd = chunk_map();
    atomic_init(&t->chunks, 1);
    if (t->wake_fd < 0 || t->stop_fd < 0 || !t->wr) {
        snprintf(err, errcap, "the capture queue: %s (--queue-mb 0 captures without it)", strerror(errno));
        cm_capthread_free(t);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t->last_stats);
    /* signals go to the main thread, whose waits they cut short */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t->tid, NULL, run, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errcap, "the capture thread could not start: %s (--queue-mb 0 captures without it)",
                 strerror(rc));
        cm_capthread_free(t);
        return NULL;
    }
    t->joined = false;
    pthread_setname_np(t->tid, "cloudmon-cap");
    return t;
}

int cm_capthread_next(cm_capthread *t, struct pcap_pkthdr **h, const u_char **data)
{
    t->rd_pos += t->held;
    t->held = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (;;) {
            chunk *c = t->rd;
            size_t w = atomic_load_explicit(&c->wpos, memory_order_acquire);
            if (t->rd_pos < w) {
                unsigned char *at = c->data + t->rd_pos;
                *h = (struct pcap_pkthdr *)(void *)at;
                *data = at + sizeof **h;
                t->held = ALIGN8(sizeof **h + (*h)->caplen);
                if (pass)
                    wake(t->wake_fd);    /* set again: the caller may wait before it takes the rest */
                return 1;
            }
            chunk *nx = atomic_load_explicit(&c->next, memory_order_acquire);
            if (!nx)
                break;
            if (t->rd_pos < atomic_load_explicit(&c->wpos, memory_order_acquire))
                continue;            /* the last records of the chunk, published before the link */
            t->rd = nx;
            t->rd_pos = 0;
            chunk_give(t, c);
        }
        if (pass == 0) {
            /* empty: clear the wake-up, then look once more, so a packet queued in between is not missed */
            uint64_t v;
            ssize_t r = read(t->wake_fd, &v, sizeof v);
            (void)r;
        }
    }
    return atomic_load_explicit(&t->state, memory_order_acquire) == FAILED ? PCAP_ERROR : 0;
}

int cm_capthread_fd(const cm_capthread *t)
{
    return t->wake_fd;
}

const char *cm_capthread_error(const cm_capthread *t)
{
    return atomic_load_explicit((atomic_int *)&t->state, memory_order_acquire) == FAILED ? t->err : "";
}

uint64_t cm_capthread_queue_drops(const cm_capthread *t)
{
    return atomic_load_explicit((atomic_uint_fast64_t *)&t->queue_drops, memory_order_relaxed) + t->left;
}

uint64_t cm_capthread_left(const cm_capthread *t)
{
    return t->left;
}

uint64_t cm_capthread_discard(cm_capthread *t)
{
    if (!t->joined)
        return 0;
    struct pcap_pkthdr *h;
    const u_char *data;
    uint64_t n = 0;
    while (cm_capthread_next(t, &h, &data) == 1)
        n++;
    t->left += n;
    return n;
}

uint64_t cm_capthread_kernel_drops(const cm_capthread *t)
{
    return atomic_load_explicit((atomic_uint_fast64_t *)&t->kernel_drops, memory_order_relaxed);
}

void cm_capthread_stop(cm_capthread *t)
{
    if (!t || t->joined)
        return;
    atomic_store_explicit(&t->stop, true, memory_order_relaxed);
    wake(t->stop_fd);
    pthread_join(t->tid, NULL);
    t->joined = true;
    if (atomic_load_explicit(&t->state, memory_order_relaxed) == RUNNING)
        atomic_store_explicit(&t->state, ENDED, memory_order_relaxed);
}

bool cm_capthread_stopped(const cm_capthread *t)
{
    return t->joined;
}

void cm_capthread_free(cm_capthread *t)
{
    if (!t)
        return;
    cm_capthread_stop(t);
    for (chunk *c = t->rd; c;) {
        chunk *nx = atomic_load_explicit(&c->next, memory_order_relaxed);
        chunk_unmap(t, c);
        c = nx;
    }
    chunk *s = atomic_load_explicit(&t->spare, memory_order_relaxed);
    if (s)
        chunk_unmap(t, s);
    if (t->wake_fd >= 0)
        close(t->wake_fd);
    if (t->stop_fd >= 0)
        close(t->stop_fd);
    free(t);
}
