/* cloudmon: classic pcap records read straight from a regular file in large blocks, handed out in place
 * (libpcap reads each record with two freads and copies it). Only what is plainly well-formed goes this
 * way: at the first record that is not (cut short, longer than the snapshot length, or the end of the
 * file), the reader stops and says where, and libpcap reads on from there, so its answers (and its errors
 * for damaged files) stay what they are. */
#ifndef CLOUDMON_PCAPFILE_H
#define CLOUDMON_PCAPFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <pcap/pcap.h>
#include "rdswap.h"

typedef struct cm_pcapfile {
    int fd;
    bool swapped;            /* the file's byte order is not the host's */
    bool nsec;               /* nanosecond time stamps, handed out in microseconds */
    uint32_t snapshot;       /* libpcap's snapshot length for the file */
    uint8_t *buf;            /* bytes of the file from offset base */
    size_t cap, have, pos;   /* buffer size, bytes held, next record's place in it */
    off_t base;
    struct pcap_pkthdr hdr;
} cm_pcapfile;

/* Whether the file behind fd (a regular file whose header starts at offset start) is one this reader
 * takes: pcap 2.4 with micro- or nanosecond time stamps, in either byte order, of link type dlt (after
 * its 24-byte header, which libpcap has read and checked). snapshot is pcap_snapshot()'s. Returns false
 * (nothing held) when libpcap should read it all. */
bool cm_pcapfile_open(cm_pcapfile *r, int fd, off_t start, int dlt, int snapshot);
#define CM_PCAPFILE_REC_HDR 16

/* The next record when the buffer holds it whole and it is plain: true with *h and *data set. */
static inline bool cm_pcapfile_take(cm_pcapfile *r, struct pcap_pkthdr **h, const u_char **data)
{
    size_t left = r->have - r->pos;
    if (left < CM_PCAPFILE_REC_HDR)
        return false;
    const uint8_t *p = r->buf + r->pos;
    uint32_t caplen = cm_rd32(p + 8, r->swapped);
    if (caplen > r->snapshot || left - CM_PCAPFILE_REC_HDR < caplen)
        return false;
    int32_t sec = (int32_t)cm_rd32(p, r->swapped), usec = (int32_t)cm_rd32(p + 4, r->swapped);
    r->hdr.ts.tv_sec = sec;
    r->hdr.ts.tv_usec = r->nsec ? usec / 1000 : usec;
    r->hdr.caplen = caplen;
    r->hdr.len = cm_rd32(p + 12, r->swapped);
    *h = &r->hdr;
    *data = p + CM_PCAPFILE_REC_HDR;
    r->pos += CM_PCAPFILE_REC_HDR + caplen;
    return true;
}

/* The next record when it is not at hand in the buffer: reads on. */
int cm_pcapfile_more(cm_pcapfile *r, struct pcap_pkthdr **h, const u_char **data, off_t *resume);

/* 1: a record (data valid until the next call); 0: stop here, and *resume is the file offset from
 * which libpcap reads on (the end of the file, or a record this reader does not take). */
static inline int cm_pcapfile_next(cm_pcapfile *r, struct pcap_pkthdr **h, const u_char **data, off_t *resume)
{
    return cm_pcapfile_take(r, h, data) ? 1 : cm_pcapfile_more(r, h, data, resume);
}

/* The file offset of the next record (for progress). */
off_t cm_pcapfile_offset(const cm_pcapfile *r);
void cm_pcapfile_close(cm_pcapfile *r);

#endif
