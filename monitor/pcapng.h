/* cloudmon: a small bounded pcapng reader and writer. libpcap 1.10 reads pcapng only when every interface
 * has the same link type and writes only classic pcap; this reader gives each packet its interface's link
 * type, and the writer keeps one interface per link type and a comment on any packet. */
#ifndef CLOUDMON_PCAPNG_H
#define CLOUDMON_PCAPNG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <pcap/pcap.h>

#define CM_PCAPNG_MAGIC 0x0A0D0D0Au
#define CM_PCAPNG_MAX_BLOCK (16u << 20)  /* longer blocks are taken for damage */
#define CM_PCAPNG_MAX_IFS 4096u          /* interfaces per section */

typedef struct cm_pcapng_if {
    int dlt;
    uint32_t snaplen;
    uint64_t units;          /* timestamp units per second (if_tsresol) */
    int64_t offset;          /* seconds added to every timestamp (if_tsoffset) */
} cm_pcapng_if;

typedef struct cm_pcapng_rd {
    FILE *f;
    bool swap;               /* the section is in the other byte order */
    cm_pcapng_if ifs[CM_PCAPNG_MAX_IFS];
    unsigned n_ifs;
    unsigned new_ifs;        /* interfaces described since the caller last looked (cm_pcapng_take_new_ifs) */
    uint8_t *buf;
    size_t cap;
    uint64_t packets;
    char err[256];
} cm_pcapng_rd;

/* Starts reading f (at its beginning); reads the section header and the blocks up to the first packet's
 * interface. Returns 0, or -1 with rd->err set. */
int cm_pcapng_open(cm_pcapng_rd *rd, FILE *f);
/* The next packet: 1 with *h, *data (valid until the next call) and *ifidx set; PCAP_ERROR_BREAK at the
 * end; PCAP_ERROR with rd->err set when the file is damaged. */
int cm_pcapng_next(cm_pcapng_rd *rd, struct pcap_pkthdr *h, const uint8_t **data, unsigned *ifidx);
void cm_pcapng_close(cm_pcapng_rd *rd);

typedef struct cm_pcapng_wr {
    FILE *f;
    int dlts[64];            /* interface i has link type dlts[i] */
    unsigned n;
    bool failed;
} cm_pcapng_wr;

/* Writes the section header to f (the writer owns f from then on). Returns 0 or -1. */
int cm_pcapng_wr_open(cm_pcapng_wr *w, FILE *f);
/* One packet of link type dlt, with an optional comment (written as printable ASCII). Returns 0 or -1. */
int cm_pcapng_wr_packet(cm_pcapng_wr *w, int dlt, const struct pcap_pkthdr *h, const uint8_t *data,
                        const char *comment);
/* Flushes and closes. Returns 0, or -1 when anything failed to be written. */
int cm_pcapng_wr_close(cm_pcapng_wr *w);

#endif
