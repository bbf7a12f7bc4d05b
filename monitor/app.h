/* cloudmon: the running program: options, the packet source, the model, and the pump that moves
 * packets from one to the other. Shared by the line outputs and the screen. */
#ifndef CLOUDMON_APP_H
#define CLOUDMON_APP_H

#include <signal.h>
#include "capture.h"
#include "mon.h"
#include "output.h"
#include "export.h"
#include "devices.h"
#include "metrics.h"
#include "progress.h"
#include "report.h"
#include "sessions.h"
#include "frag.h"

/* Private-key RSA operations a second for a live capture (--rsa-budget): about a third of one core here,
 * 200 handshakes a second (tests/bench/RESULTS.md). */
#define CM_RSA_BUDGET_LIVE 400
/* Megabytes of packets the capture thread may hold for the decoder (--queue-mb; 0: no capture thread). */
#define CM_QUEUE_MB_DEFAULT 256
#define CM_STOP_DRAIN 1.0            /* seconds a stopped live capture decodes what its queue holds */

typedef struct cm_opts {
    const char *iface, *file, *write, *filter, *keyfile, *user, *export_path;
    uint64_t count;          /* stop after this many packets (0: no limit) */
    double duration;         /* stop after this many seconds (0: no limit) */
    bool batch, json, tui;
    bool quiet, show_keys;   /* -q: the summary only; --show-keys: session material in the outputs */
    const char *sessions_path, *report_path, *metrics_addr;
    double linger;           /* --linger: seconds to keep serving metrics after a file (<0: until stopped) */
    unsigned port;           /* the cloud's TCP port */
    int snaplen;             /* -s (0: the default) */
    bool no_promisc;         /* -p */
    bool immediate;          /* --immediate-mode */
    double queue_mb;         /* --queue-mb (<0: the default) */
    double rsa_budget;       /* --rsa-budget: private-key RSA operations a second (0: unlimited; <0: default) */
    double idle;
    size_t max_conns, max_history;
} cm_opts;

typedef struct cm_app {
    cm_opts o;
    cm_capture cap;
    cm_mon mon;
    kr_keyfile *kf;
    cm_output out;
    cm_tally tally;          /* when the screen runs */
    cm_export exp;
    bool exporting;
    cm_devices devs;
    cm_metrics met;
    bool metrics_on, reporting;
    cm_report rep;
    cm_sessions ses;
    cm_progress prog;
    double last_figures;     /* wall clock of the last metrics update */
    char source[sizeof(((cm_capture *)0)->name) + 16];        /* "interface eth0" / "file x.pcap" */
    double start_wall;       /* wall clock at start */
    double first_ts;         /* first packet time (0 before it) */
    double last_expire;
    double last_read_wall;   /* wall clock when packets were last read (live) */
    bool eof;                /* the source has no more packets (or a limit was reached) */
    bool failed;             /* reading failed: err holds why */
    uint64_t snap_cut;       /* packets the capture's snapshot length cut inside their TCP headers or data */
    unsigned snap_len;       /* bytes kept of the first packet cut */
    char snap_warn[512];     /* the warning about it ("" until the first such packet) */
    cm_frag frag;            /* IP fragments waiting for the rest of their datagram */
    uint64_t read;           /* packets read from the source, kept or not */
    uint64_t port_packets;   /* TCP packets to or from the cloud port */
    uint32_t *syn_ports;     /* SYNs per destination port, for the hint when none went to the cloud port */
    uint64_t bogus;          /* packets whose IP length claims more than the frame held */
    bool in_packet;          /* a packet is being handed to the model (its verdicts go in its -w comment) */
    char err[CM_ERRLEN];
} cm_app;

extern volatile sig_atomic_t cm_stop;

/* Reads up to max packets (live: returns early on a read timeout). Returns how many were read (those the
 * default filter leaves out included);
 * sets a->eof at the end of the source, a limit, or a stop request; a->failed on a read error. */
int cm_app_pump(cm_app *a, int max);
/* Expires idle connections, refreshes the metrics and the progress line; called often. */
void cm_app_tick(cm_app *a);
/* The capture is over: ends every connection. */
void cm_app_finish(cm_app *a);
double cm_wall(void);

/* The screen (tui.c). Returns the exit code. */
int cm_tui_run(cm_app *a);

#endif
