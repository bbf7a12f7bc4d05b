/* cloudmon: the model of what was seen. Connections keyed by their addresses, each with its two
 * reassembled byte streams feeding a libkeyring tracker, the events the tracker reported (steps,
 * messages, findings, verdicts) and the totals. Bounded: at most max_conns live connections (the one
 * idle the longest is ended first), idle ones expire, and ended ones stay in a history of at most
 * max_history before the oldest is dropped. */
#ifndef CLOUDMON_MON_H
#define CLOUDMON_MON_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <keyring/tracker.h>

#include "decode.h"
#include "reasm.h"

typedef enum cm_ev_type {
    CM_EV_STEP = 0,
    CM_EV_MESSAGE,
    CM_EV_FINDING,
    CM_EV_VERDICT,
    CM_EV_TCP,               /* SYN, SYN-ACK, FIN, RST (title), for the ladder */
    CM_EV_END
} cm_ev_type;

typedef struct cm_event {
    cm_ev_type type;
    kr_dir dir;
    double time;
    uint32_t length;         /* steps: PDU length */
    int kind;                /* kr_step_kind, kr_msg_kind, kr_finding_code or kr_verdict_code */
    char *title;             /* owned: step title, message kind word, finding code, verdict code */
    char *text;              /* owned: note, summary, finding evidence, verdict evidence */
} cm_event;

typedef struct cm_conn {
    unsigned id;             /* 1, 2, ... in order of first packet */
    cm_addr client, server;  /* device and cloud */
    bool saw_syn;
    bool ended;
    char end_reason[64];
    bool closed[2];          /* FIN handled per kr_dir */
    cm_reasm rs[2];
    kr_tracker *tr;
    kr_conn_info info;       /* copy of the tracker's, refreshed after each packet */
    uint64_t packets;
    uint64_t wire_bytes;     /* TCP payload bytes on the wire, both directions */
    double first, last;
    GArray *events;          /* cm_event, at most CM_MAX_EVENTS */
    uint64_t events_dropped; /* events removed from the middle to stay within the limit */
    unsigned verdict_changes;
    bool final_reported;
    bool lingering;          /* ended by FIN or RST and still in the closed table */
    uint64_t late_packets;   /* packets after the end (retransmissions, last ACKs), counted and dropped */     /* a verdict with final set went to the observers */
    struct cm_mon *mon;
    uint8_t key[38];
} cm_conn;

#define CM_MAX_EVENTS 1024  /* events kept per connection ... */
#define CM_KEEP_HEAD 128    /* ... the first ones always, then the newest */
#define CM_LINGER 60.0

/* Notified as things happen (outputs: lines, JSON, the decrypted export). Any member may be NULL. */
typedef struct cm_observer {
    void (*step)(void *ud, const cm_conn *c, const kr_step *s);
    void (*message)(void *ud, const cm_conn *c, const kr_message *m);
    void (*finding)(void *ud, const cm_conn *c, const kr_finding *f);
    void (*verdict)(void *ud, const cm_conn *c, const kr_verdict *v);
    void (*end)(void *ud, const cm_conn *c);
    void *ud;
} cm_observer;

#define CM_MAX_OBSERVERS 4

typedef struct cm_stats {
    uint64_t packets;        /* packets handed to cm_mon_packet */
    uint64_t tcp;            /* of them TCP */
    uint64_t other, fragments, short_pkts;
    uint64_t conns;          /* connections seen */
    uint64_t evicted;        /* ended early because the table was full */
    uint64_t expired;        /* ended because idle */
    uint64_t messages, findings;
} cm_stats;

typedef struct cm_mon {
    const kr_keyfile *kf;
    GHashTable *live;        /* key -> cm_conn* */
    GHashTable *closed;      /* key -> cm_conn* ended by FIN or RST less than CM_LINGER s ago: their
                                late packets are not taken for a new connection */
    GPtrArray *conns;        /* every kept connection (live and ended), oldest first */
    size_t max_conns, max_history, max_ooo;
    double idle;             /* seconds without a packet before a connection is ended */
    uint16_t server_port;    /* tells the cloud side when no SYN was seen */
    cm_stats st;
    unsigned next_id;
    unsigned version;        /* bumped on every change: the screen redraws when it moves */
    cm_observer obs[CM_MAX_OBSERVERS];
    int n_obs;
    double now;              /* newest packet time */
} cm_mon;

void cm_mon_init(cm_mon *m, const kr_keyfile *kf);
void cm_mon_free(cm_mon *m);
void cm_mon_observe(cm_mon *m, const cm_observer *o);
/* One decoded packet (any result of cm_decode). */
void cm_mon_packet(cm_mon *m, double ts, cm_dec_result r, const cm_pkt *p);
/* Ends connections idle since before now - m->idle. */
void cm_mon_expire(cm_mon *m, double now);
/* Ends every live connection (capture over). */
void cm_mon_finish(cm_mon *m, double now, const char *reason);

size_t cm_mon_live_count(const cm_mon *m);
const char *cm_ev_type_str(cm_ev_type t);

#endif
