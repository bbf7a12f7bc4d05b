/* cloudmon: the packet source (libpcap: an interface or a classic pcap file; pcapng files through
 * pcapng.c, so that interfaces of different link types can share a file), the -w copy (pcap, or pcapng
 * with comments), the in-memory copy the screen saves with 'w', and the privilege drop. Every failure is
 * one line for the user. */
#ifndef CLOUDMON_CAPTURE_H
#define CLOUDMON_CAPTURE_H

#include <stdbool.h>
#include <pcap/pcap.h>
#include <glib.h>
#include "pcapng.h"
#include "capthread.h"
#include "pcapfile.h"

/* A capture file being written: classic pcap (one link type) or pcapng (any, with comments). */
typedef struct cm_sink {
    FILE *f;
    bool pcapng;
    cm_pcapng_wr ng;
    pcap_t *dead;
    pcap_dumper_t *pd;
    int dlt;                 /* classic: the file's link type (-1 until the first packet) */
    uint64_t other_link;     /* classic: packets of another link type, not written */
} cm_sink;

typedef struct cm_capture {
    pcap_t *p;               /* live, or a classic pcap file */
    cm_pcapng_rd *ng;        /* a pcapng file */
    int dlt;                 /* link type of the capture, then of the packet read last */
    bool live;
    cm_capthread *thr;       /* live: the thread that reads the kernel's ring into a queue (NULL: none) */
    char name[256];          /* interface or file name as given */
    FILE *file;              /* a file: the stream read underneath (its size and position show progress) */
    cm_pcapfile fast;        /* a plain pcap file: its records read in place until libpcap takes over */
    bool fast_on, fast_filter;
    bool own_file;           /* file is read in place without libpcap (which would close it): closed here */
    bool plain_end;          /* the in-place reader read every record to the end of the file */
    struct bpf_program fast_prog;  /* the user's filter, for the records read in place */
    char read_err[160];      /* why reading stopped, when neither reader can say */
    char *filter;            /* the BPF filter applied to pcapng packets in user space (NULL: none) */
    struct { int dlt; bool ok; struct bpf_program prog; } progs[8];  /* compiled per link type */
    int n_progs;
    char warn[512];          /* a warning for the user, "" when none is waiting */
    struct pcap_pkthdr ng_hdr;
    bool writing;
    cm_sink w;               /* -w FILE */
    GString *note;           /* comment for the packet being recorded (pcapng -w) */
    GQueue ring;             /* packets kept for a save from the screen */
    size_t ring_bytes, ring_max;
    uint64_t ring_dropped;   /* packets pushed out of the ring (oldest first) */
} cm_capture;

#define CM_ERRLEN 1024
#define CM_SNAPLEN_DEFAULT (65535 + 64)
#define CM_SNAPLEN_MAX 262144

typedef struct cm_live_opts {
    int snaplen;             /* 0: the default */
    bool promisc;
    bool immediate;          /* every packet at once instead of blocks handed over within 50 ms */
} cm_live_opts;

/* Live capture on iface. filter NULL means the default: the cloud port plus what a kernel filter cannot
 * see into (VLAN tags, IPv6 extension headers, IP fragments), to be narrowed in user space; "" means
 * every packet. Returns 0 or -1 with err set. */
int cm_capture_open_live(cm_capture *c, const char *iface, const char *filter, unsigned port,
                         const cm_live_opts *lo, char *err);
/* A pcap or pcapng file ("-" reads standard input). filter NULL: every packet (cloudmon narrows to the
 * cloud port itself). */
int cm_capture_open_file(cm_capture *c, const char *path, const char *filter, char *err);
/* Live: from here on a thread of its own reads the kernel's ring into a queue of at most max_bytes, and
 * cm_capture_next takes packets from the queue. Returns 0 or -1 with err set. */
int cm_capture_start_thread(cm_capture *c, size_t max_bytes, char *err);
/* A descriptor that becomes readable when packets wait (-1 for a file, which never waits). */
int cm_capture_poll_fd(cm_capture *c);
/* Live: stops reading (the capture thread ends); the drop counts stay. */
void cm_capture_stop(cm_capture *c);
/* The next packet, as pcap_next_ex (1, 0 on a live timeout, PCAP_ERROR_BREAK at the end, PCAP_ERROR);
 * c->dlt is the packet's link type. */
int cm_capture_next_more(cm_capture *c, struct pcap_pkthdr **h, const u_char **data);
static inline int cm_capture_next(cm_capture *c, struct pcap_pkthdr **h, const u_char **data)
{
    if (c->fast_on && !c->fast_filter && cm_pcapfile_take(&c->fast, h, data))
        return 1;                    /* the common case: a plain record already read in a block */
    return cm_capture_next_more(c, h, data);
}
/* A file: the offset of the next byte to read (-1 when not known). */
off_t cm_capture_offset(const cm_capture *c);
/* Why the last read failed. */
const char *cm_capture_error(cm_capture *c);
/* Prints the interfaces libpcap can capture on (-D). Returns 0, or -1 with err set. */
int cm_capture_list(FILE *out, char *err);
/* Switches to user's uid/gid and groups when running as root; a no-op otherwise. */
int cm_capture_drop_privileges(const char *user, char *err);
/* Starts writing every captured packet to path (-w): pcapng when the name ends in .pcapng. */
int cm_capture_open_dump(cm_capture *c, const char *path, char *err);
/* Adds text to the comment of the packet about to be recorded (pcapng -w only). */
void cm_capture_note(cm_capture *c, const char *text);
/* Keeps up to max_bytes of packets in memory for cm_capture_save (0 keeps none). */
void cm_capture_keep(cm_capture *c, size_t max_bytes);
/* Copies one packet (of link type c->dlt) to the -w file and the ring (when either is on). */
void cm_capture_record_more(cm_capture *c, const struct pcap_pkthdr *h, const u_char *data);
static inline void cm_capture_record(cm_capture *c, const struct pcap_pkthdr *h, const u_char *data)
{
    if (c->writing || c->ring_max)
        cm_capture_record_more(c, h, data);
}
/* Writes the packets in the ring to path. Returns the count or -1 with err set. */
long cm_capture_save(cm_capture *c, const char *path, char *err);
/* Packets lost before cloudmon read them (live captures; 0 for files): dropped by the kernel or the
 * interface, or by the capture thread's queue when it was full. */
uint64_t cm_capture_drops(cm_capture *c);
/* Of those, the ones the capture thread's queue had no room for. */
uint64_t cm_capture_queue_drops(cm_capture *c);
/* Link type name for messages. */
const char *cm_dlt_name(int dlt);
/* Closes the -w file; returns -1 with err set when it could not be written whole. */
int cm_capture_close_dump(cm_capture *c, char *err);
void cm_capture_close(cm_capture *c);

#endif
