/* cloudmon: classic pcap records read in place from large blocks of a regular file. */
#include "pcapfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bytes read at a time: the buffer holds a block and one record of the snapshot length, but only the
 * pages a block and the rest of a record reach are ever written, so few fresh pages are touched and they
 * stay in the cache. */
#define BLOCK (1u << 16)
#define FILE_HDR 24
#define REC_HDR CM_PCAPFILE_REC_HDR

#ifndef DLT_LINUX_SLL2
#define DLT_LINUX_SLL2 276
#endif

/* pread that goes on after a signal; -1 on an error (libpcap then meets it and names it). */
static ssize_t read_at(int fd, uint8_t *b, size_t n, off_t at)
{
    ssize_t got;
    do
        got = pread(fd, b, n, at);
    while (got < 0 && errno == EINTR);
    return got;
}

bool cm_pcapfile_open(cm_pcapfile *r, int fd, off_t start, int dlt, int snapshot)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
    uint8_t h[FILE_HDR];
    if (fd < 0 || snapshot <= 0 || read_at(fd, h, sizeof h, start) != (ssize_t)sizeof h)
        return false;
    uint32_t magic;
    memcpy(&magic, h, 4);
    bool swapped = magic == 0xd4c3b2a1u || magic == 0x4d3cb2a1u;
    if (!swapped && magic != 0xa1b2c3d4u && magic != 0xa1b23c4du)
        return false;            /* the modified record format (0xa1b2cd34) among others: libpcap's */
    if (cm_rd16(h + 4, swapped) != 2 || cm_rd16(h + 6, swapped) != 4)
        return false;            /* older versions may have caplen and len the other way round */
    if (swapped && (dlt == DLT_LINUX_SLL || dlt == DLT_LINUX_SLL2))
        return false;            /* libpcap turns the byte order of some of their headers */
    r->swapped = swapped;
    r->nsec = cm_rd32(h, swapped) == 0xa1b23c4du;
    r->snapshot = (uint32_t)snapshot;
    r->cap = BLOCK + REC_HDR + r->snapshot;
    r->buf = malloc(r->cap);
    if (!r->buf)
        return false;
    r->fd = fd;
    r->base = start + FILE_HDR;
    return true;
}

/* Keeps the bytes not handed out yet and reads more after them; false when none came. */
static bool refill(cm_pcapfile *r)
{
    size_t left = r->have - r->pos;
    memmove(r->buf, r->buf + r->pos, left);
    r->base += (off_t)r->pos;
    r->pos = 0;
    r->have = left;
    size_t want = r->cap - left < BLOCK ? r->cap - left : BLOCK;   /* above 0: the record was not whole */
    ssize_t got = read_at(r->fd, r->buf + left, want, r->base + (off_t)left);
    if (got <= 0)
        return false;
    r->have += (size_t)got;
    return true;
}

int cm_pcapfile_more(cm_pcapfile *r, struct pcap_pkthdr **h, const u_char **data, off_t *resume)
{
    do {
        if (cm_pcapfile_take(r, h, data))
            return 1;
        if (r->have - r->pos >= CM_PCAPFILE_REC_HDR &&
            cm_rd32(r->buf + r->pos + 8, r->swapped) > r->snapshot)
            break;               /* libpcap cuts it to the snapshot length, or says the file is damaged */
    } while (refill(r));         /* until the end of the file, a record cut short, or a read error */
    *resume = r->base + (off_t)r->pos;
    return 0;
}

off_t cm_pcapfile_offset(const cm_pcapfile *r)
{
    return r->base + (off_t)r->pos;
}

void cm_pcapfile_close(cm_pcapfile *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}
