/* sparkwire libkeyring: the RSA budget. Opening a handshake costs private-key RSA work (the id block with
 * the server's RSA-2048 key, the session block with a device's RSA-1024 key: about 1 ms together), so a
 * flood of fake handshakes could take all of a frontend's time and starve genuine ones. A budget bounds
 * that work and decides, at the first RSA operation of a handshake, whether it is done now, waits, or is
 * skipped. The one rule:
 * - operations a second (rate, a token bucket holding one second's worth), counted in private-key
 *   operations actually done (kr_budget_charge); a handshake may start when at least one is left;
 * - one source address may start at most per_addr handshakes a second, and at most 4 at once; beyond
 *   that it is skipped, and
 *   for the next 10 s its handshakes come last (FLOODING);
 * - a handshake that cannot start now waits in a bounded queue (queue_max) for at most max_wait seconds,
 *   served best class first, then oldest: an address that already completed a handshake (KNOWN), then one
 *   whose nonce exchange fits a device's (FITS: the id block came after the nonce, whole, at the start of
 *   the device's stream), then the rest (PLAIN), and last an address that floods. A full queue gives the place of its worst, newest entry to
 *   a better one; a handshake that finds no place, waits too long, or ends while waiting is skipped.
 * Time is the capture's (packet timestamps), so reading a file with a budget gives the same result every
 * time. A handshake that was skipped is reported as not opened, with the reason (kr_budget_why_str), never
 * as a failure. The tracker consults it (kr_tracker_set_budget); a frontend creates it and calls
 * kr_budget_run often (after each batch of packets) to serve the queue. Without a budget, no limit. */
#ifndef KEYRING_BUDGET_H
#define KEYRING_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tracker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kr_budget kr_budget;

typedef struct kr_budget_options {
    double rate;             /* private-key RSA operations a second (> 0) */
    double per_addr;         /* handshakes one source address may start a second */
    size_t queue_max;        /* handshakes that may wait at once */
    double max_wait;         /* seconds a handshake may wait */
} kr_budget_options;

/* rate as given; per_addr rate / 10 (at least 2); queue_max 256; max_wait 2 s. */
void kr_budget_options_default(kr_budget_options *o, double rate);
kr_budget *kr_budget_new(const kr_budget_options *o);
/* Waiting handshakes must have been cancelled (their trackers freed) before. */
void kr_budget_free(kr_budget *b);

typedef enum kr_budget_class {
    KR_BUDGET_KNOWN = 0,     /* "known": the address already completed a handshake */
    KR_BUDGET_FITS,          /* "fits": the handshake's timing and sizes fit a device's */
    KR_BUDGET_PLAIN,         /* "other" */
    KR_BUDGET_FLOODING       /* "flooding": the address went over its limit in the last 10 s */
} kr_budget_class;
#define KR_BUDGET_CLASSES 4

typedef enum kr_budget_answer { KR_BUDGET_GO = 0, KR_BUDGET_WAIT, KR_BUDGET_SKIP } kr_budget_answer;

/* Why a handshake's RSA work was skipped (words: kr_budget_why_str, table kr_budget_why_names). */
typedef enum kr_budget_why {
    KR_BUDGET_WHY_NONE = 0,
    KR_BUDGET_WHY_ADDRESS,   /* its address started more handshakes than per_addr a second */
    KR_BUDGET_WHY_FULL,      /* the queue was full of handshakes as good or better */
    KR_BUDGET_WHY_GAVE_WAY,  /* it waited, and gave its place in the full queue to a better one */
    KR_BUDGET_WHY_WAITED,    /* it waited max_wait seconds */
    KR_BUDGET_WHY_ENDED      /* the connection ended while it waited */
} kr_budget_why;

const char *kr_budget_why_str(kr_budget_why w);
const char *kr_budget_class_str(kr_budget_class c);

/* Called when a waiting handshake is served (granted) or skipped (why). */
typedef void (*kr_budget_resume_fn)(void *who, bool granted, kr_budget_why why);

/* Asks to start a handshake's RSA work from addr (16 bytes, IPv4 in the first 4) at capture time now.
 * GO: do it now; SKIP: skip it (*why says why); WAIT: it waits under the key who, and fn tells later. */
kr_budget_answer kr_budget_ask(kr_budget *b, const uint8_t addr[16], bool fits, double now, void *who,
                               kr_budget_resume_fn fn, kr_budget_why *why);
/* A waiting handshake that must be decided now: GO when an operation is left and nothing better waits. */
bool kr_budget_try_now(kr_budget *b, void *who, double now);
/* ops private-key operations were done. */
void kr_budget_charge(kr_budget *b, unsigned ops);
/* A handshake from addr completed (its session block opened with the device's key). */
void kr_budget_known(kr_budget *b, const uint8_t addr[16], double now);
/* Removes who from the queue (without calling it). */
void kr_budget_cancel(kr_budget *b, void *who);
/* Skips those that waited too long, then serves the waiting ones while operations are left. */
void kr_budget_run(kr_budget *b, double now);
size_t kr_budget_waiting(const kr_budget *b);

typedef struct kr_budget_stats {
    uint64_t asked;          /* handshakes that asked */
    uint64_t granted;        /* started at once */
    uint64_t served;         /* started after waiting */
    uint64_t deferred;       /* had to wait */
    uint64_t skipped[KR_BUDGET_WHY_ENDED + 1];  /* by kr_budget_why */
    uint64_t ops;            /* private-key operations charged */
    size_t most_waiting;     /* the longest the queue was */
} kr_budget_stats;

const kr_budget_stats *kr_budget_get_stats(const kr_budget *b);
const kr_budget_options *kr_budget_get_options(const kr_budget *b);
uint64_t kr_budget_skipped_total(const kr_budget *b);

/* The tracker consults b before its first private-key RSA operation of the handshake; device is the
 * device's address (16 bytes). b must outlive the tracker. */
void kr_tracker_set_budget(kr_tracker *t, kr_budget *b, const uint8_t device[16]);

#ifdef __cplusplus
}
#endif
#endif
