/* cloudmon: --metrics ADDR:PORT, the figures in Prometheus's text exposition format over HTTP
 * (libmicrohttpd, its own thread): connections by final verdict, handshakes by the step they reached,
 * the handshake duration, messages by kind, findings by code, decrypt errors, packets not followed for a
 * full connection table, capture drops, and the
 * RSA work done and skipped. Counters are fed by the model's observers under a lock; a scrape renders
 * them under the same lock. */
#ifndef CLOUDMON_METRICS_H
#define CLOUDMON_METRICS_H

#include <pthread.h>
#include "output.h"

#define CM_HIST_BUCKETS 10
#define CM_NSTEPS 8
#define CM_NMSG 32
#define CM_NFIND 8

typedef struct cm_metrics {
    pthread_mutex_t lock;
    uint64_t packets, conns, open, untracked;
    uint64_t verdicts[CM_NVERDICTS];
    uint64_t reached[CM_NSTEPS];       /* by kr_step_kind; "hello" when the handshake completed */
    uint64_t hist[CM_HIST_BUCKETS];    /* handshake duration: counts per bucket (not cumulative) */
    uint64_t hist_count;
    double hist_sum;
    uint64_t messages[CM_NMSG];
    uint64_t findings[CM_NFIND];
    uint64_t decrypt_errors, drops, queue_drops;
    uint64_t rsa_id_block, rsa_session_block, rsa_signature, rsa_skipped;
    GHashTable *hellos;                /* conn id -> directions whose Hello was seen */
    struct MHD_Daemon *daemon;
    uint64_t scrapes;
} cm_metrics;

/* Starts serving on addr ("127.0.0.1:9900", "[::1]:9900"). Returns 0, or -1 with a message in err. */
int cm_metrics_start(cm_metrics *m, const char *addr, char *err, size_t errcap);
void cm_metrics_stop(cm_metrics *m);
cm_observer cm_metrics_observer(cm_metrics *m);
/* Figures the main loop knows: packets read, live connections, packets not followed for a full connection
 * table, packets the capture dropped (all, and those the capture thread's queue had no room for). */
void cm_metrics_update(cm_metrics *m, uint64_t packets, uint64_t conns, uint64_t open, uint64_t untracked,
                       uint64_t drops, uint64_t queue_drops);
/* The exposition text (caller frees). */
char *cm_metrics_render(cm_metrics *m);

#endif
