/* cloudmon: the model of what was seen, for the screen and the outputs. Packets go to libkeyring's
 * connection layer (keyring/conn.h: identity, reassembly, TCP events, the trackers, the bounded table);
 * this keeps, per connection it follows, the events it reported (TCP events, steps, messages, findings,
 * verdicts) and the totals. Ended connections stay in a history of at most max_history before the oldest
 * is dropped. */
#ifndef CLOUDMON_MON_H
#define CLOUDMON_MON_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <keyring/conn.h>
#include <keyring/tracker.h>
#include <keyring/budget.h>

#include "decode.h"

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
    const char *title;       /* libkeyring's word (static): step title, message kind, finding or verdict code */
    char *text;              /* owned: note, summary, finding evidence, verdict evidence */
} cm_event;

typedef struct cm_conn {     /* a million open connections each hold one; what every packet changes (the
                                counts, the newest time) in the first 32 bytes, so that cm_mon_packet touches
                                one line or two (the record is not aligned to a line: that costs about 80
                                bytes a connection) */
    uint64_t packets;
    uint64_t wire_bytes;     /* TCP payload bytes on the wire, both directions */
    double last;
    struct cm_mon *mon;
    kr_conn *kc;             /* the connection layer's, while live */
    kr_tracker *tr;          /* its tracker (kept after the end for the history) */
    const kr_conn_info *given; /* the view of a connection made without a tracker (tests), else NULL */
    const char *end_reason;  /* interned (g_intern_string): "" while open */
    GArray *events;          /* cm_event, at most CM_MAX_EVENTS; NULL unless the model keeps events */
    uint64_t events_dropped; /* events removed from the middle to stay within the limit */
    double first;
    unsigned id;             /* 1, 2, ... in order of first packet */
    cm_addr client, server;  /* device and cloud */
    bool saw_syn;
    bool ended;
} cm_conn;

#define CM_MAX_EVENTS 1024  /* events kept per connection ... */
#define CM_KEEP_HEAD 128    /* ... the first ones always, then the newest */

/* Notified as things happen (outputs: lines, JSON, the decrypted export). Any member may be NULL. */
typedef struct cm_observer {
    void (*step)(void *ud, const cm_conn *c, const kr_step *s);
    void (*message)(void *ud, const cm_conn *c, const kr_message *m);
    void (*finding)(void *ud, const cm_conn *c, const kr_finding *f);
    void (*verdict)(void *ud, const cm_conn *c, const kr_verdict *v);
    void (*end)(void *ud, const cm_conn *c);
    void *ud;
} cm_observer;

#define CM_MAX_OBSERVERS 8

/* The observers (indexes into cm_mon.obs, in the order they came) that take one kind of event: a packet
 * whose step nobody takes calls nobody. */
typedef struct cm_obs_set {
    uint8_t n;
    uint8_t i[CM_MAX_OBSERVERS];
} cm_obs_set;

typedef struct cm_stats {
    uint64_t packets;        /* packets handed to cm_mon_packet */
    uint64_t tcp;            /* of them TCP */
    uint64_t other, short_pkts;
    uint64_t fragments;      /* IP fragments handed to reassembly (the one completing a datagram is TCP) */
    uint64_t conns;          /* connections seen */
    uint64_t evicted;        /* ended early because the table was full */
    uint64_t expired;        /* ended because idle */
    uint64_t untracked;      /* new connections not followed: the table held only live sessions */
    uint64_t late;           /* packets of ended connections (retransmissions, last ACKs) */
    uint64_t rst_ignored;    /* RSTs out of the window or survived */
    uint64_t messages, findings;
} cm_stats;

typedef struct cm_mon {
    const kr_keyfile *kf;
    kr_conn_table *tab;      /* made at the first packet, from the settings below */
    const kr_conn_stats *tab_st; /* its counts (kr_conn_table_stats), copied into st after each packet */
    GPtrArray *conns;        /* every kept connection (live and ended), oldest first */
    size_t max_conns, max_history, max_ooo;
    double idle;             /* seconds without a packet before a connection is ended */
    uint16_t server_port;    /* tells the cloud side when no SYN was seen */
    cm_stats st;
    unsigned next_id;
    unsigned version;        /* bumped on every change: the screen redraws when it moves */
    size_t n_ended;          /* ended connections in conns */
    bool keep_events;        /* each connection keeps its events (the screen and the report show them) */
    bool texts;              /* something reads the messages' texts and the frames' notes (kr_tracker_set_texts) */
    cm_observer obs[CM_MAX_OBSERVERS];
    int n_obs;
    cm_obs_set of_step, of_message, of_finding, of_verdict, of_end;   /* the observers that take each */
    double now;              /* newest packet time */
    kr_budget *budget;       /* the RSA budget every tracker consults (NULL: none) */
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

/* The tracker's whole view of c, built now into a buffer of the thread, rewritten by the next call (no
 * tracker keeps one: a million open connections would carry a million). */
const kr_conn_info *cm_conn_info(const cm_conn *c);

#endif
