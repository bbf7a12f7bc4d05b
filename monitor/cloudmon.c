/* cloudmon: watch Spark Core devices talk to the cloud. Capture (an interface or a file), libkeyring's
 * connection layer and tracker, and a screen or lines/JSON Lines for what it found. */
#include "app.h"
#include "capthread.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t cm_stop;

static void on_signal(int sig)
{
    (void)sig;
    cm_stop = 1;
}

double cm_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
    fprintf(f,
"Usage: cloudmon (-i IFACE | -r FILE) [options]\n"
"Watches Spark Core / Particle devices reach the cloud (TCP 5683): which devices try, how far\n"
"each handshake gets, why it fails, and with keys what the devices and the cloud say.\n"
"\n"
"Source:\n"
"  -i, --interface IFACE   capture live on IFACE ('any' for all interfaces)\n"
"  -r, --read FILE         read a pcap or pcapng file ('-' for standard input)\n"
"  -f, --filter EXPR       BPF filter (default: TCP to or from the cloud port, found also\n"
"                          behind VLAN tags, IPv6 extension headers and in IP fragments)\n"
"      --cloud-port PORT   the cloud's TCP port (default 5683)\n"
"  -s, --snapshot-length N bytes kept of each packet when capturing (0: the default, %d)\n"
"  -p, --no-promiscuous-mode  do not put the interface into promiscuous mode\n"
"      --immediate-mode    hand each packet over at once (default: in blocks within 50 ms)\n"
"      --queue-mb N        megabytes of packets a capture thread may hold while they wait\n"
"                          to be decoded (default %d; 0: no thread, decode from the kernel)\n"
"      --rsa-budget N      at most N private-key RSA operations a second to open handshakes\n"
"                          (0: no limit; default %d live, no limit reading a file)\n"
"  -D, --list-interfaces   list the interfaces to capture on, and exit\n"
"  -Z, --user USER         drop root privileges to USER right after opening the capture\n"
"  -c, --count N           stop after N packets\n"
"      --duration SEC      stop after SEC seconds (capture time for files)\n"
"Keys:\n"
"  -k, --keyfile FILE      keys to open handshakes and decrypt sessions (see cloudmon(1))\n"
"Output:\n"
"  -w, --write FILE        save the captured packets to a pcap file (pcapng, with each verdict\n"
"                          as a comment on the packet that decided it, when FILE ends in .pcapng)\n"
"      --export-decrypted FILE  write the decrypted CoAP messages as UDP to a pcap file\n"
"      --batch             one line per step, message, finding and verdict (the default\n"
"                          when standard output is not a terminal)\n"
"      --json              the same as JSON Lines\n"
"  -q, --quiet             no lines: the summary and the device table only (as tshark -q)\n"
"      --show-keys         print session keys, IVs and salts (secret: off by default)\n"
"      --export-sessions FILE  write the keyfile session line of every decrypted connection (0600)\n"
"      --report FILE.md|FILE.html  a report for support: each failed connection per device\n"
"      --metrics ADDR:PORT serve Prometheus metrics over HTTP (e.g. 127.0.0.1:9900)\n"
"      --linger SEC        with -r and --metrics: serve the final figures SEC seconds\n"
"                          (default: until interrupted)\n"
"Limits:\n"
"      --idle SEC          end connections silent for SEC seconds (default 600)\n"
"      --max-conns N       follow at most N connections at once (default 1024)\n"
"      --history N         keep at most N ended connections (default 200)\n"
"  -h, --help              this text\n"
"      --version           the version\n"
"\n"
"Exit status: 0 when the capture was read to its end (or a limit or q ended it), whatever the\n"
"verdicts; 2 for a usage, key, capture or I/O error (one line on standard error says which).\n",
            CM_SNAPLEN_DEFAULT, CM_QUEUE_MB_DEFAULT, CM_RSA_BUDGET_LIVE);
}

static void die(const char *msg)
{
    fprintf(stderr, "cloudmon: %s\n", msg);
    exit(2);
}

static void list_interfaces(void)
{
    char err[CM_ERRLEN];
    if (cm_capture_list(stdout, err) < 0)
        die(err);
    exit(fflush(stdout) == 0 ? 0 : 2);
}

static int parse_num(const char *opt, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "cloudmon: %s '%s': not a number between %g and %g (see cloudmon --help)\n", opt, s, min, max);
        exit(2);
    }
    *out = v;
    return 0;
}

enum { OPT_DURATION = 256, OPT_BATCH, OPT_JSON, OPT_EXPORT, OPT_IDLE, OPT_MAXCONN, OPT_HISTORY, OPT_PORT,
       OPT_VERSION, OPT_IMMEDIATE, OPT_SHOWKEYS, OPT_SESSIONS, OPT_REPORT, OPT_METRICS, OPT_LINGER, OPT_RSA,
       OPT_QUEUE };

static void parse_args(cm_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "interface", required_argument, NULL, 'i' },
        { "read", required_argument, NULL, 'r' },
        { "filter", required_argument, NULL, 'f' },
        { "cloud-port", required_argument, NULL, OPT_PORT },
        { "snapshot-length", required_argument, NULL, 's' },
        { "no-promiscuous-mode", no_argument, NULL, 'p' },
        { "list-interfaces", no_argument, NULL, 'D' },
        { "immediate-mode", no_argument, NULL, OPT_IMMEDIATE },
        { "rsa-budget", required_argument, NULL, OPT_RSA },
        { "queue-mb", required_argument, NULL, OPT_QUEUE },
        { "user", required_argument, NULL, 'Z' },
        { "count", required_argument, NULL, 'c' },
        { "duration", required_argument, NULL, OPT_DURATION },
        { "keyfile", required_argument, NULL, 'k' },
        { "write", required_argument, NULL, 'w' },
        { "export-decrypted", required_argument, NULL, OPT_EXPORT },
        { "batch", no_argument, NULL, OPT_BATCH },
        { "json", no_argument, NULL, OPT_JSON },
        { "idle", required_argument, NULL, OPT_IDLE },
        { "max-conns", required_argument, NULL, OPT_MAXCONN },
        { "history", required_argument, NULL, OPT_HISTORY },
        { "quiet", no_argument, NULL, 'q' }, { "show-keys", no_argument, NULL, OPT_SHOWKEYS },
        { "export-sessions", required_argument, NULL, OPT_SESSIONS }, { "report", required_argument, NULL, OPT_REPORT },
        { "metrics", required_argument, NULL, OPT_METRICS }, { "linger", required_argument, NULL, OPT_LINGER },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, OPT_VERSION },
        { NULL, 0, NULL, 0 },
    };
    memset(o, 0, sizeof *o);
    o->port = 5683;
    o->idle = 600;
    o->max_conns = 1024;
    o->max_history = 200;
    o->linger = -1;
    o->rsa_budget = -1;
    o->queue_mb = -1;
    double v;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":i:r:f:s:pDZ:c:k:w:qh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'i': o->iface = optarg; break;
        case 'r': o->file = optarg; break;
        case 'f': o->filter = optarg; break;
        case OPT_PORT: parse_num("--cloud-port", optarg, 1, 65535, &v); o->port = (unsigned)v; break;
        case 's': parse_num("-s", optarg, 0, CM_SNAPLEN_MAX, &v); o->snaplen = (int)v; break;
        case 'p': o->no_promisc = true; break;
        case OPT_IMMEDIATE: o->immediate = true; break;
        case OPT_RSA: parse_num("--rsa-budget", optarg, 0, 1e9, &o->rsa_budget); break;
        case OPT_QUEUE:
            parse_num("--queue-mb", optarg, 0, 65536, &o->queue_mb);
            if (o->queue_mb > 0 && o->queue_mb < 1)
                die("--queue-mb: the capture queue needs at least 1 MB (or 0 for no capture thread)");
            break;
        case 'D': list_interfaces(); break;
        case 'Z': o->user = optarg; break;
        case 'c': parse_num("-c", optarg, 1, 1e15, &v); o->count = (uint64_t)v; break;
        case OPT_DURATION: parse_num("--duration", optarg, 0.001, 1e9, &o->duration); break;
        case 'k': o->keyfile = optarg; break;
        case 'w': o->write = optarg; break;
        case OPT_EXPORT: o->export_path = optarg; break;
        case OPT_BATCH: o->batch = true; break;
        case OPT_JSON: o->json = true; break;
        case OPT_IDLE: parse_num("--idle", optarg, 1, 1e9, &o->idle); break;
        case OPT_MAXCONN: parse_num("--max-conns", optarg, 1, 1e6, &v); o->max_conns = (size_t)v; break;
        case OPT_HISTORY: parse_num("--history", optarg, 0, 1e6, &v); o->max_history = (size_t)v; break;
        case 'q': o->quiet = true; break;
        case OPT_SHOWKEYS: o->show_keys = true; break;
        case OPT_SESSIONS: o->sessions_path = optarg; break;
        case OPT_REPORT: o->report_path = optarg; break;
        case OPT_METRICS: o->metrics_addr = optarg; break;
        case OPT_LINGER: parse_num("--linger", optarg, 0, 1e9, &o->linger); break;
        case 'h': usage(stdout); exit(0);
        case OPT_VERSION: printf("cloudmon (sparkwire) %s\n", SPARKWIRE_VERSION); exit(0);
        case ':':
            fprintf(stderr, "cloudmon: option %s needs a value (see cloudmon --help)\n", argv[optind - 1]);
            exit(2);
        default:
            if (optopt)
                fprintf(stderr, "cloudmon: unknown option -%c (see cloudmon --help)\n", optopt);
            else
                fprintf(stderr, "cloudmon: unknown option %s (see cloudmon --help)\n", argv[optind - 1]);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cloudmon: unexpected argument '%s' (a filter goes after -f; see cloudmon --help)\n", argv[optind]);
        exit(2);
    }
    if (!o->iface == !o->file)
        die(o->iface ? "give either -i IFACE or -r FILE, not both (see cloudmon --help)"
                     : "nothing to watch: give -i IFACE to capture live or -r FILE to read a capture (see cloudmon --help)");
    if (o->linger >= 0 && !o->metrics_addr)
        die("--linger keeps the metrics served: give --metrics ADDR:PORT too (see cloudmon --help)");
    o->tui = !o->batch && !o->json && !o->quiet && isatty(STDOUT_FILENO);
}

/* The snapshot length cut a packet's TCP headers or data: the missing bytes go to the tracker as a gap
 * (reasm.c); the user is told once why, and how to capture whole packets. */
static void note_snap_cut(cm_app *a, const struct pcap_pkthdr *h)
{
    if (a->snap_cut++)
        return;
    a->snap_len = h->caplen;
    snprintf(a->snap_warn, sizeof a->snap_warn,
             "%s: the capture's snapshot length (%u bytes) cut packets short (a %u-byte packet has only %u bytes "
             "captured); the missing bytes are gaps, and handshake blocks in them cannot be read (capture with "
             "-s 0 or a larger snaplen)",
             a->cap.name, (unsigned)h->caplen, (unsigned)h->len, (unsigned)h->caplen);
    if (!a->o.tui) {
        fprintf(stderr, "cloudmon: warning: %s\n", a->snap_warn);
        fflush(stderr);
    }
}

/* A packet whose IP length claims more than its uncut frame held: the claim is a lie, not lost bytes. */
static void note_bogus(cm_app *a, const cm_pkt *p)
{
    if (a->bogus++ || a->o.tui)
        return;
    fprintf(stderr, "cloudmon: warning: %s: a packet's IP length claims %zu bytes of TCP data but the frame, which "
            "the capture did not cut, held %zu; the claim is taken as bogus, not as bytes lost (further ones are "
            "counted)\n", a->cap.name, p->claimed_len, p->payload_wire_len);
}

/* Decodes one frame and puts IP fragments back together. With the default filter cloudmon keeps TCP to
 * or from the cloud port only: the kernel filter lets through what it cannot look into. Returns false
 * for a packet to leave out. */
static bool decode_packet(cm_app *a, const struct pcap_pkthdr *h, const u_char *data, double ts,
                          cm_dec_result *r, cm_pkt *p)
{
    *r = cm_decode_frame(a->cap.dlt, data, h->caplen, h->len, p);
    if (*r == CM_DEC_FRAGMENT)
        *r = cm_frag_add(&a->frag, ts, p);
    if ((*r == CM_DEC_TCP && p->cut) || (*r == CM_DEC_FRAGMENT && p->frag.cut) ||
        (*r == CM_DEC_SHORT && h->caplen < h->len))
        note_snap_cut(a, h);
    if (*r == CM_DEC_TCP && p->bogus_len)
        note_bogus(a, p);
    if (*r != CM_DEC_TCP)
        return !(a->o.filter == NULL && *r == CM_DEC_OTHER);
    if ((p->flags & (CM_TCP_SYN | CM_TCP_ACK)) == CM_TCP_SYN && a->syn_ports)
        a->syn_ports[p->dst.port]++;
    if (p->src.port == a->o.port || p->dst.port == a->o.port) {
        a->port_packets++;
        return true;
    }
    return a->o.filter != NULL;
}

/* -c's count of packets is reached. */
static bool count_reached(const cm_app *a)
{
    return a->o.count && a->mon.st.packets >= a->o.count;
}

/* One packet read from the source: decoded and handed to the model. Sets a->eof at -c's count and at the end
 * of a file's --duration. */
static void take_packet(cm_app *a, const struct pcap_pkthdr *h, const u_char *data)
{
    a->read++;
    double ts = (double)h->ts.tv_sec + (double)h->ts.tv_usec / 1e6;
    if (a->first_ts == 0)
        a->first_ts = ts;
    if (a->o.duration > 0 && !a->cap.live && ts - a->first_ts > a->o.duration) {
        a->eof = true;
        return;
    }
    if (!a->cap.live && ts - a->last_expire >= 1.0) {
        /* a file keeps its own clock: connections silent for too long end before this packet */
        cm_mon_expire(&a->mon, ts);
        a->last_expire = ts;
    }
    cm_pkt p;
    cm_dec_result r;
    if (!decode_packet(a, h, data, ts, &r, &p))
        return;
    a->in_packet = true;
    cm_mon_packet(&a->mon, ts, r, &p);
    a->in_packet = false;
    cm_capture_record(&a->cap, h, data);
    if (count_reached(a))
        a->eof = true;
}

int cm_app_pump(cm_app *a, int max)
{
    int n = 0;
    while (n < max && !a->eof) {
        if (cm_stop) {
            a->eof = true;
            break;
        }
        struct pcap_pkthdr *h;
        const u_char *data;
        int rc = cm_capture_next(&a->cap, &h, &data);
        if (a->cap.warn[0] && !a->o.tui) {   /* the screen's are said when it closes */
            fprintf(stderr, "cloudmon: warning: %s\n", a->cap.warn);
            a->cap.warn[0] = 0;
        }
        if (rc == 0)
            break;                    /* live read timeout */
        if (rc == PCAP_ERROR_BREAK) {
            a->eof = true;
            break;
        }
        if (rc < 0) {
            const char *why = cm_capture_error(&a->cap);
            if (a->cap.live)
                snprintf(a->err, sizeof a->err, "interface %s: capture failed: %s", a->cap.name, why);
            else
                snprintf(a->err, sizeof a->err,
                         "%s: the capture is damaged or truncated after %llu packets: %s (the results cover the "
                         "packets before it)",
                         a->cap.name, (unsigned long long)a->read, why);
            a->failed = true;
            a->eof = true;
            break;
        }
        n++;
        take_packet(a, h, data);
    }
    if (a->cap.live && n)
        a->last_read_wall = cm_wall();
    if (a->cap.live && a->o.duration > 0 && cm_wall() - a->start_wall >= a->o.duration)
        a->eof = true;
    return n;
}

/* A live capture's clock: the time of the newest packet decoded while packets keep coming (the decoder may
 * be seconds behind the capture, its packets waiting in the kernel's ring or the capture queue); once
 * nothing was read for 100 ms it has caught up, and the clock goes on with the wall clock (less a block's
 * wait). */
static void update_metrics(cm_app *a)
{
    cm_metrics_update(&a->met, a->mon.st.packets, a->mon.st.conns, cm_mon_live_count(&a->mon), a->mon.st.untracked,
                      cm_capture_drops(&a->cap), cm_capture_queue_drops(&a->cap));
}

static double live_clock(const cm_app *a, double wall)
{
    double now = a->mon.now;
    if (wall - a->last_read_wall > 0.1 && wall - 0.1 > now)
        now = wall - 0.1;
    return now;
}

void cm_app_tick(cm_app *a)
{
    double wall = cm_wall();
    if (a->mon.budget)      /* handshakes waiting for RSA work: served or skipped by capture time */
        kr_budget_run(a->mon.budget, a->cap.live ? live_clock(a, wall) : a->mon.now);
    if (a->metrics_on && wall - a->last_figures >= 0.5) {
        a->last_figures = wall;
        update_metrics(a);
    }
    cm_progress_tick(&a->prog, &a->cap, a->mon.st.packets, wall);
    if (a->cap.live) {
        /* connections idle by the capture's clock: a packet still waiting to be decoded keeps its own alive */
        double now = live_clock(a, wall);
        if (now - a->last_expire >= 1.0) {
            cm_mon_expire(&a->mon, now);
            a->last_expire = now;
        }
    }
}

/* A live capture stops (a signal, the screen's quit, --duration, a failed write): the capture thread ends,
 * and the packets it had queued are still decoded for at most CM_STOP_DRAIN seconds; those left then (or
 * all of them when the output failed) are counted as dropped by the queue. Past -c's count they stay
 * unread, as the packets after it that were never queued. */
static void drain_queue(cm_app *a)
{
    cm_capture_stop(&a->cap);
    if (!a->cap.thr || count_reached(a))
        return;
    double until = cm_wall() + CM_STOP_DRAIN;
    struct pcap_pkthdr *h;
    const u_char *data;
    for (unsigned i = 0; !a->out.broken && !count_reached(a); i++) {
        if (i % 256 == 0 && cm_wall() >= until)
            break;
        if (cm_capture_next(&a->cap, &h, &data) != 1)
            break;
        take_packet(a, h, data);
    }
    if (!count_reached(a))
        cm_capthread_discard(a->cap.thr);
}

void cm_app_finish(cm_app *a)
{
    if (a->cap.live)
        drain_queue(a);               /* the drop counts are final from here */
    double end = a->cap.live ? cm_wall() : a->mon.now;
    if (a->mon.budget)
        kr_budget_run(a->mon.budget, end);
    cm_mon_finish(&a->mon, end, a->cap.live ? "capture stopped" : "capture ended");
    cm_frag_expire(&a->frag, INFINITY);
}

/* For the summary: the capture queue's drops, -1 when no capture thread ran. */
static int64_t queue_drops(cm_app *a)
{
    return a->cap.thr ? (int64_t)cm_capture_queue_drops(&a->cap) : -1;
}

/* What the user should know once the run is over: datagrams that could not be put together, the cloud
 * port that saw nothing. */
static void final_notes(cm_app *a)
{
    const cm_frag_stats *f = &a->frag.st;
    if (a->cap.warn[0])
        fprintf(stderr, "cloudmon: warning: %s\n", a->cap.warn);
    if (cm_frag_dropped(&a->frag))
        fprintf(stderr, "cloudmon: warning: %llu fragmented datagrams were not reassembled: %llu with overlapping "
                "fragments that disagree, %llu over the reassembly limits, %llu incomplete, %llu cut by the "
                "snapshot length\n", (unsigned long long)cm_frag_dropped(&a->frag), (unsigned long long)f->overlap,
                (unsigned long long)f->limit, (unsigned long long)f->timeout, (unsigned long long)f->cut);
    uint64_t left = a->cap.thr ? cm_capthread_left(a->cap.thr) : 0, full = cm_capture_queue_drops(&a->cap) - left;
    if (full)
        fprintf(stderr, "cloudmon: warning: %llu packets were dropped because the capture queue (%g MB) was full: "
                "decoding fell behind the capture (give a larger --queue-mb, or narrow the capture with -f)\n",
                (unsigned long long)full, a->o.queue_mb);
    if (left)
        fprintf(stderr, "cloudmon: warning: %llu packets still in the capture queue when the capture stopped were "
                "not decoded (they had %g s): they are counted as dropped by the queue\n", (unsigned long long)left,
                CM_STOP_DRAIN);
    if (a->bogus > (a->o.tui ? 0u : 1u))
        fprintf(stderr, "cloudmon: warning: %llu packets claimed more TCP data than their frames held\n",
                (unsigned long long)a->bogus);
    if (a->port_packets || a->failed)
        return;
    unsigned best = 0;
    for (unsigned port = 1; a->syn_ports && port < 65536; port++)
        if (a->syn_ports[port] > a->syn_ports[best])
            best = port;
    char seen[96] = "";
    if (best && a->syn_ports[best])
        snprintf(seen, sizeof seen, " (SYNs went to port %u: %u)", best, a->syn_ports[best]);
    fprintf(stderr, "cloudmon: no TCP packet to or from port %u in %s; is the cloud on another port? try "
            "--cloud-port PORT%s\n", a->o.port, a->source, seen);
}

/* A verdict decided while a packet was handed over becomes that packet's comment in a pcapng -w file. */
static void note_verdict(void *ud, const cm_conn *c, const kr_verdict *v)
{
    cm_app *a = ud;
    if (!a->in_packet)
        return;
    char cl[64], sv[64], text[1024];
    snprintf(text, sizeof text, "cloudmon #%u %s > %s: verdict %s (%s): %s", c->id, cm_addr_str(&c->client, cl, sizeof cl),
             cm_addr_str(&c->server, sv, sizeof sv), kr_verdict_str(v->code), v->proven ? "proven" : "inferred",
             v->evidence);
    cm_capture_note(&a->cap, text);
}

/* The per-device records, the report, the session export and the metrics: observers of the model. */
static int setup_operator(cm_app *a)
{
    cm_devices_init(&a->devs);
    cm_observer dob = cm_devices_observer(&a->devs);
    cm_mon_observe(&a->mon, &dob);
    if (a->o.report_path) {
        if (cm_report_init(&a->rep, a->o.report_path, a->kf, a->err, sizeof a->err) < 0)
            return -1;
        a->reporting = true;
        cm_observer rob = cm_report_observer(&a->rep);
        cm_mon_observe(&a->mon, &rob);
    }
    if (cm_sessions_open(&a->ses, a->o.sessions_path, a->o.show_keys && a->o.tui,
                         a->o.max_conns + a->o.max_history, a->err, sizeof a->err) < 0)
        return -1;
    cm_observer sob = cm_sessions_observer(&a->ses), mob = cm_metrics_observer(&a->met);
    if (a->o.sessions_path || (a->o.show_keys && a->o.tui))
        cm_mon_observe(&a->mon, &sob);
    if (a->metrics_on)
        cm_mon_observe(&a->mon, &mob);
    /* progress on standard error as pv shows it: only for a person watching it */
    cm_progress_init(&a->prog, &a->cap, !a->o.tui && !a->o.quiet && isatty(STDERR_FILENO) && !isatty(STDOUT_FILENO),
                     cm_wall());
    return 0;
}

/* After the run: the report and the session lines are written, and with -r the metrics stay. */
static int finish_operator(cm_app *a)
{
    int code = 0;
    cm_progress_done(&a->prog);
    if (a->reporting && cm_report_write(&a->rep, a->source, a->err, sizeof a->err) < 0) {
        fprintf(stderr, "cloudmon: %s\n", a->err);
        code = 2;
    }
    if (cm_sessions_close(&a->ses) < 0) {
        fprintf(stderr, "cloudmon: --export-sessions %s: write failed\n", a->o.sessions_path);
        code = 2;
    }
    if (a->metrics_on) {
        update_metrics(a);
        if (!a->cap.live && !cm_stop && a->o.linger != 0) {
            if (a->o.linger < 0)
                fprintf(stderr, "cloudmon: serving the final figures on %s until interrupted\n", a->o.metrics_addr);
            double until = cm_wall() + a->o.linger;
            while (!cm_stop && (a->o.linger < 0 || cm_wall() < until))
                poll(NULL, 0, 100);
        }
    }
    return code;
}

/* Keys, capture, privilege drop, output files, the model. Returns -1 with a->err set. */
static int setup(cm_app *a)
{
    kr_err kerr = { "" };
    cm_mon_init(&a->mon, NULL);
    if (a->o.keyfile) {
        a->kf = kr_keyfile_load(a->o.keyfile, &kerr);
        if (!a->kf) {
            g_strlcpy(a->err, kerr.msg, sizeof a->err);
            return -1;
        }
    } else {
        a->kf = kr_keyfile_new_empty();
    }
    a->mon.kf = a->kf;
    a->mon.idle = a->o.idle;
    a->mon.max_conns = a->o.max_conns;
    a->mon.max_history = a->o.max_history;
    a->mon.keep_events = a->o.tui || a->o.report_path;   /* only the screen and the report show them */
    /* -q prints counts, kinds and verdicts: without a report or an export nothing reads a message's texts */
    a->mon.texts = !a->o.quiet || a->o.tui || a->o.report_path || a->o.export_path;
    a->mon.server_port = (uint16_t)a->o.port;

    cm_frag_init(&a->frag, 0, 0, 0);
    a->syn_ports = g_new0(uint32_t, 65536);
    cm_live_opts lo = { a->o.snaplen, !a->o.no_promisc, a->o.immediate };
    int rc = a->o.iface ? cm_capture_open_live(&a->cap, a->o.iface, a->o.filter, a->o.port, &lo, a->err)
                        : cm_capture_open_file(&a->cap, a->o.file, a->o.filter, a->err);
    if (rc < 0)
        return -1;
    double rate = a->o.rsa_budget >= 0 ? a->o.rsa_budget : a->cap.live ? CM_RSA_BUDGET_LIVE : 0;
    if (rate > 0) {
        kr_budget_options bo;
        kr_budget_options_default(&bo, rate);
        a->mon.budget = kr_budget_new(&bo);
        if (!a->mon.budget) {
            snprintf(a->err, sizeof a->err, "--rsa-budget %g: out of memory", rate);
            return -1;
        }
    }
    if (a->o.metrics_addr && cm_metrics_start(&a->met, a->o.metrics_addr, a->err, sizeof a->err) < 0)
        return -1;
    a->metrics_on = a->o.metrics_addr != NULL;
    /* as tcpdump does: the capture is open, nothing else needs root */
    if (a->o.user && cm_capture_drop_privileges(a->o.user, a->err) < 0)
        return -1;
    /* decoding falls behind in bursts: a thread keeps the kernel's ring drained meanwhile */
    if (a->o.queue_mb < 0)
        a->o.queue_mb = CM_QUEUE_MB_DEFAULT;
    if (a->cap.live && a->o.queue_mb > 0 &&
        cm_capture_start_thread(&a->cap, (size_t)(a->o.queue_mb * 1048576.0), a->err) < 0)
        return -1;
    if (a->o.write && cm_capture_open_dump(&a->cap, a->o.write, a->err) < 0)
        return -1;
    if (a->o.write) {
        cm_observer no = { .verdict = note_verdict, .ud = a };
        cm_mon_observe(&a->mon, &no);
    }
    snprintf(a->source, sizeof a->source, "%s %.250s", a->cap.live ? "interface" : "file", a->cap.name);
    if (setup_operator(a) < 0)
        return -1;
    if (a->o.export_path) {
        if (cm_export_open(&a->exp, a->o.export_path, a->err, sizeof a->err) < 0)
            return -1;
        a->exporting = true;
        cm_observer eo = cm_export_observer(&a->exp);
        cm_mon_observe(&a->mon, &eo);
    }
    return 0;
}

static void teardown(cm_app *a)
{
    cm_metrics_stop(&a->met);
    cm_output_free(&a->out);
    cm_devices_free(&a->devs);
    if (a->reporting)
        cm_report_free(&a->rep);
    cm_sessions_close(&a->ses);
    cm_frag_free(&a->frag);
    g_free(a->syn_ports);
    a->syn_ports = NULL;
    if (a->exporting)
        cm_export_close(&a->exp);
    kr_budget *budget = a->mon.budget;
    cm_mon_free(&a->mon);             /* frees the trackers that may wait in the budget's queue first */
    kr_budget_free(budget);
    cm_capture_close(&a->cap);
    if (a->kf)
        kr_keyfile_free(a->kf);
    kr_library_end();                 /* the last user of libkeyring is gone: what it kept goes too */
}

int main(int argc, char **argv)
{
    static cm_app app;
    cm_app *a = &app;
    parse_args(&a->o, argc, argv);
    if (setup(a) < 0) {
        fprintf(stderr, "cloudmon: %s\n", a->err);
        teardown(a);
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct sigaction hup;
    if (sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler != SIG_IGN)
        sigaction(SIGHUP, &sa, NULL);      /* under nohup a hang-up stays ignored */
    signal(SIGPIPE, SIG_IGN);
    a->start_wall = cm_wall();

    int code = 0;
    if (a->o.tui) {
        cm_observer to = cm_tally_observer(&a->tally);
        cm_mon_observe(&a->mon, &to);
        cm_capture_keep(&a->cap, 64u << 20);
        code = cm_tui_run(a);
        cm_app_finish(a);
        cm_output_summary(stdout, false, &a->mon, &a->tally, a->source, cm_capture_drops(&a->cap), queue_drops(a));
    } else {
        a->out.out = stdout;
        a->out.json = a->o.json;
        a->out.quiet = a->o.quiet;
        a->out.live = a->cap.live;
        a->out.show_keys = a->o.show_keys;
        cm_observer oo = cm_output_observer(&a->out);
        cm_mon_observe(&a->mon, &oo);
        if (a->cap.live) {
            fprintf(stderr, "cloudmon: listening on %s, link type %s\n", a->cap.name, cm_dlt_name(a->cap.dlt));
            fflush(stderr);
        }
        int pfd = cm_capture_poll_fd(&a->cap);
        while (!a->eof && !a->out.broken) {
            int n = cm_app_pump(a, 256);
            cm_app_tick(a);
            if (a->cap.live && n == 0 && !a->eof) {
                /* nothing waiting: sleep until packets come, or 100 ms to look at the clock and signals */
                struct pollfd pf = { pfd, POLLIN, 0 };
                poll(&pf, pfd >= 0 ? 1 : 0, 100);
            }
        }
        cm_app_finish(a);
        cm_progress_done(&a->prog);
        if (a->o.json)
            cm_devices_json(&a->devs, &a->mon, stdout);
        else
            cm_devices_print(&a->devs, &a->mon, stdout);
        cm_output_summary(stdout, a->o.json, &a->mon, &a->out.tally, a->source, cm_capture_drops(&a->cap),
                          queue_drops(a));
    }
    final_notes(a);
    if (finish_operator(a))
        code = 2;
    if (a->failed) {
        fprintf(stderr, "cloudmon: %s\n", a->err);
        code = 2;
    }
    char werr[CM_ERRLEN];
    if (cm_capture_close_dump(&a->cap, werr) < 0) {
        fprintf(stderr, "cloudmon: %s\n", werr);
        code = 2;
    }
    teardown(a);
    if (fflush(stdout) != 0 && errno != EPIPE) {
        fprintf(stderr, "cloudmon: standard output: %s\n", strerror(errno));
        code = 2;
    }
    return code;
}
