/* cloudmon: the capture thread. One thread drains a live pcap handle (the kernel's TPACKET_V3 ring) into
 * a queue of copied packets, bounded in bytes; the main thread takes them from the queue and is the only
 * one that decodes, follows connections and writes. The kernel's ring is never kept waiting by the
 * decoder: when the queue is full a packet is dropped and counted, never lost without a count. One
 * producer (the thread), one consumer (the caller of cm_capthread_next). */
#ifndef CLOUDMON_CAPTHREAD_H
#define CLOUDMON_CAPTHREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pcap/pcap.h>

typedef struct cm_capthread cm_capthread;

/* The queue is kept in chunks of this many bytes, mapped when needed and given back when read: memory
 * follows the backlog, not the bound. A chunk holds a packet of the longest snapshot length. */
#define CM_CAPTHREAD_CHUNK (512u << 10)

/* Starts reading p (live, non-blocking) on a thread of its own, queueing at most max_bytes of packets
 * (rounded down to whole chunks, at least two). From here until cm_capthread_stop only the thread uses
 * p. Returns NULL with err set. */
cm_capthread *cm_capthread_start(pcap_t *p, size_t max_bytes, char *err, size_t errcap);
/* The next queued packet, valid until the next call: 1; 0 when none is queued now (wait on
 * cm_capthread_fd); PCAP_ERROR once the thread failed and everything it queued was taken
 * (cm_capthread_error says why). */
int cm_capthread_next(cm_capthread *t, struct pcap_pkthdr **h, const u_char **data);
/* Readable while packets may wait: cleared only when cm_capthread_next finds the queue empty. */
int cm_capthread_fd(const cm_capthread *t);
const char *cm_capthread_error(const cm_capthread *t);
/* Packets the queue dropped: those it had no room for, and those cm_capthread_discard left. */
uint64_t cm_capthread_queue_drops(const cm_capthread *t);
/* After cm_capthread_stop: the packets still queued are dropped and counted (returns how many). */
uint64_t cm_capthread_discard(cm_capthread *t);
/* Of the queue's drops, those cm_capthread_discard left. */
uint64_t cm_capthread_left(const cm_capthread *t);
/* The kernel's drop count as the thread last read it (every 100 ms). */
uint64_t cm_capthread_kernel_drops(const cm_capthread *t);
/* Ends the thread; the handle is the caller's again. Queued packets can still be taken. Idempotent. */
void cm_capthread_stop(cm_capthread *t);
/* cm_capthread_stop was called: the handle is the caller's. */
bool cm_capthread_stopped(const cm_capthread *t);
/* Stops the thread if it runs and frees the queue. */
void cm_capthread_free(cm_capthread *t);

#endif
