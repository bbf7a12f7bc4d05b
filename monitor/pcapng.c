/* cloudmon: pcapng blocks (section header, interface description, enhanced/simple/obsolete packet), read
 * with every length checked against the block, and written with one interface per link type. */
#include "pcapng.h"
#include "rdswap.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define BT_SHB CM_PCAPNG_MAGIC
#define BT_IDB 1u
#define BT_OPB 2u            /* obsolete packet block */
#define BT_SPB 3u
#define BT_EPB 6u
#define BYTE_ORDER_MAGIC 0x1A2B3C4Du
#define OPT_END 0
#define OPT_COMMENT 1
#define OPT_IF_TSRESOL 9
#define OPT_IF_TSOFFSET 14

/* The file's link type numbers are pcap's LINKTYPE_ values; they equal the DLT_ values except for raw IP. */
#define LINKTYPE_RAW 101

static int linktype_to_dlt(unsigned lt)
{
    return lt == LINKTYPE_RAW ? DLT_RAW : (int)lt;
}

static unsigned dlt_to_linktype(int dlt)
{
    return dlt == DLT_RAW ? LINKTYPE_RAW : (unsigned)dlt;
}

static uint32_t get32(const cm_pcapng_rd *rd, const uint8_t *p)
{
    return cm_rd32(p, rd->swap);
}

static uint16_t get16(const cm_pcapng_rd *rd, const uint8_t *p)
{
    return cm_rd16(p, rd->swap);
}

static int fail(cm_pcapng_rd *rd, const char *what)
{
    snprintf(rd->err, sizeof rd->err, "%s", what);
    return PCAP_ERROR;
}

/* Reads one whole block into rd->buf. Returns its type via *type and its length, 0 at a clean end of the
 * file, or -1 (rd->err set). */
static long read_block(cm_pcapng_rd *rd, uint32_t *type)
{
    uint8_t head[12];
    size_t n = fread(head, 1, 8, rd->f);
    if (n == 0 && feof(rd->f))
        return 0;
    if (n != 8)
        return fail(rd, "pcapng: the file ends inside a block header (truncated)"), -1;
    memcpy(type, head, 4);
    if (*type == BT_SHB) {           /* the byte order is set by each section header */
        if (fread(head + 8, 1, 4, rd->f) != 4)
            return fail(rd, "pcapng: the file ends inside a section header (truncated)"), -1;
        uint32_t bom;
        memcpy(&bom, head + 8, 4);
        if (bom != BYTE_ORDER_MAGIC && bom != __builtin_bswap32(BYTE_ORDER_MAGIC))
            return fail(rd, "pcapng: a section header has no valid byte-order magic (damaged)"), -1;
        rd->swap = bom != BYTE_ORDER_MAGIC;
    } else {
        *type = get32(rd, head);
    }
    uint32_t len = get32(rd, head + 4);
    if (len < 12 || len % 4 || len > CM_PCAPNG_MAX_BLOCK || (*type == BT_SHB && len < 28))
        return fail(rd, "pcapng: a block has an impossible length (damaged)"), -1;
    if (rd->cap < len) {
        uint8_t *b = realloc(rd->buf, len);
        if (!b)
            return fail(rd, "pcapng: out of memory for a block"), -1;
        rd->buf = b;
        rd->cap = len;
    }
    size_t have = *type == BT_SHB ? 12 : 8;
    memcpy(rd->buf, head, have);
    if (fread(rd->buf + have, 1, len - have, rd->f) != len - have)
        return fail(rd, "pcapng: the file ends inside a block (truncated)"), -1;
    if (get32(rd, rd->buf + len - 4) != len)
        return fail(rd, "pcapng: a block's two lengths differ (damaged)"), -1;
    return (long)len;
}

/* if_tsresol and if_tsoffset from the options in [p, end). */
static int read_if_options(cm_pcapng_rd *rd, cm_pcapng_if *ifc, const uint8_t *p, const uint8_t *end)
{
    while (end - p >= 4) {
        uint16_t code = get16(rd, p), olen = get16(rd, p + 2);
        p += 4;
        if (code == OPT_END)
            break;
        if ((size_t)(end - p) < olen)
            return fail(rd, "pcapng: an interface option runs past its block (damaged)");
        if (code == OPT_IF_TSRESOL && olen >= 1) {
            unsigned e = p[0] & 0x7f;
            if ((p[0] & 0x80) ? e > 63 : e > 19)
                return fail(rd, "pcapng: an interface has an impossible timestamp resolution (damaged)");
            uint64_t u = 1;
            for (unsigned i = 0; i < e; i++)
                u *= (p[0] & 0x80) ? 2 : 10;
            ifc->units = u;
        } else if (code == OPT_IF_TSOFFSET && olen >= 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            ifc->offset = (int64_t)(rd->swap ? __builtin_bswap64(v) : v);
        }
        p += (olen + 3u) & ~3u;
    }
    return 0;
}

static int add_interface(cm_pcapng_rd *rd, const uint8_t *b, uint32_t len)
{
    if (len < 20)
        return fail(rd, "pcapng: an interface description block is too short (damaged)");
    if (rd->n_ifs >= CM_PCAPNG_MAX_IFS)
        return fail(rd, "pcapng: more interfaces than cloudmon follows in one section");
    cm_pcapng_if *ifc = &rd->ifs[rd->n_ifs];
    ifc->dlt = linktype_to_dlt(get16(rd, b + 8));
    ifc->snaplen = get32(rd, b + 12);
    ifc->units = 1000000;
    ifc->offset = 0;
    if (read_if_options(rd, ifc, b + 16, b + len - 4) < 0)
        return PCAP_ERROR;
    rd->n_ifs++;
    rd->new_ifs++;
    return 0;
}

static void set_time(const cm_pcapng_rd *rd, const cm_pcapng_if *ifc, const uint8_t *p, struct pcap_pkthdr *h)
{
    uint64_t t = (uint64_t)get32(rd, p) << 32 | get32(rd, p + 4);
    uint64_t sec = t / ifc->units, frac = t % ifc->units;
    h->ts.tv_sec = (time_t)((int64_t)sec + ifc->offset);
    h->ts.tv_usec = (suseconds_t)((double)frac * 1e6 / (double)ifc->units);
}

/* A packet block: interface, time, lengths and data checked against the block length. */
static int take_packet(cm_pcapng_rd *rd, uint32_t type, uint32_t len, struct pcap_pkthdr *h,
                       const uint8_t **data, unsigned *ifidx)
{
    const uint8_t *b = rd->buf;
    size_t body = len - 12, hdr = type == BT_SPB ? 4 : 20;
    if (body < hdr)
        return fail(rd, "pcapng: a packet block is too short (damaged)");
    unsigned idx = type == BT_EPB ? get32(rd, b + 8) : type == BT_OPB ? get16(rd, b + 8) : 0;
    if (idx >= rd->n_ifs)
        return fail(rd, "pcapng: a packet names an interface that was never described (damaged)");
    const cm_pcapng_if *ifc = &rd->ifs[idx];
    if (type == BT_SPB) {
        uint32_t orig = get32(rd, b + 8);
        h->len = orig;
        h->caplen = (uint32_t)(orig < body - 4 ? orig : body - 4);
        if (ifc->snaplen && h->caplen > ifc->snaplen)
            h->caplen = ifc->snaplen;
        h->ts.tv_sec = 0;
        h->ts.tv_usec = 0;
        *data = b + 12;
    } else {
        h->caplen = get32(rd, b + 20);
        h->len = get32(rd, b + 24);
        if (h->caplen > body - hdr)
            return fail(rd, "pcapng: a packet's captured length runs past its block (damaged)");
        set_time(rd, ifc, b + 12, h);
        *data = b + 28;
    }
    if (h->len < h->caplen)
        h->len = h->caplen;
    *ifidx = idx;
    rd->packets++;
    return 1;
}

int cm_pcapng_next(cm_pcapng_rd *rd, struct pcap_pkthdr *h, const uint8_t **data, unsigned *ifidx)
{
    for (;;) {
        uint32_t type;
        long len = read_block(rd, &type);
        if (len < 0)
            return PCAP_ERROR;
        if (len == 0)
            return PCAP_ERROR_BREAK;
        if (type == BT_SHB) {
            if (get16(rd, rd->buf + 12) != 1)
                return fail(rd, "pcapng: a section has a major version other than 1");
            rd->n_ifs = 0;           /* interfaces are numbered per section */
        } else if (type == BT_IDB) {
            if (add_interface(rd, rd->buf, (uint32_t)len) < 0)
                return PCAP_ERROR;
        } else if (type == BT_EPB || type == BT_SPB || type == BT_OPB) {
            return take_packet(rd, type, (uint32_t)len, h, data, ifidx);
        }                            /* name resolution, statistics, secrets, custom: not needed */
    }
}

int cm_pcapng_open(cm_pcapng_rd *rd, FILE *f)
{
    memset(rd, 0, offsetof(cm_pcapng_rd, ifs));
    rd->n_ifs = rd->new_ifs = 0;
    rd->buf = NULL;
    rd->cap = 0;
    rd->packets = 0;
    rd->err[0] = 0;
    rd->f = f;
    uint32_t type;
    long len = read_block(rd, &type);
    if (len == 0 || (len > 0 && type != BT_SHB)) {
        snprintf(rd->err, sizeof rd->err, "pcapng: the file does not start with a section header (damaged)");
        return -1;
    }
    if (len < 0)
        return -1;
    if (get16(rd, rd->buf + 12) != 1) {
        snprintf(rd->err, sizeof rd->err, "pcapng: the section has a major version other than 1");
        return -1;
    }
    /* up to the first interface, so that its link type is known before the first packet */
    while ((len = read_block(rd, &type)) > 0) {
        if (type == BT_IDB)
            return add_interface(rd, rd->buf, (uint32_t)len) < 0 ? -1 : 0;
        if (type == BT_EPB || type == BT_SPB || type == BT_OPB || type == BT_SHB) {
            snprintf(rd->err, sizeof rd->err, "pcapng: a block comes before any interface is described (damaged)");
            return -1;
        }
    }
    return len < 0 ? -1 : 0;
}

void cm_pcapng_close(cm_pcapng_rd *rd)
{
    free(rd->buf);
    rd->buf = NULL;
    if (rd->f)
        fclose(rd->f);
    rd->f = NULL;
}

/* ---- writing ---- */

static bool put(cm_pcapng_wr *w, const void *p, size_t n)
{
    if (!w->failed && n && fwrite(p, 1, n, w->f) != n)
        w->failed = true;
    return !w->failed;
}

static bool put32(cm_pcapng_wr *w, uint32_t v)
{
    return put(w, &v, 4);
}

int cm_pcapng_wr_open(cm_pcapng_wr *w, FILE *f)
{
    memset(w, 0, sizeof *w);
    w->f = f;
    uint16_t ver[2] = { 1, 0 };
    uint64_t section_len = UINT64_MAX;   /* not known in advance */
    put32(w, BT_SHB);
    put32(w, 28);
    put32(w, BYTE_ORDER_MAGIC);
    put(w, ver, 4);
    put(w, &section_len, 8);
    return put32(w, 28) ? 0 : -1;
}

/* The interface for dlt, described on first use. Returns its index or -1. */
static int interface_for(cm_pcapng_wr *w, int dlt)
{
    for (unsigned i = 0; i < w->n; i++)
        if (w->dlts[i] == dlt)
            return (int)i;
    if (w->n == sizeof w->dlts / sizeof w->dlts[0])
        return -1;
    uint16_t lt[2] = { (uint16_t)dlt_to_linktype(dlt), 0 };
    put32(w, BT_IDB);
    put32(w, 20);
    put(w, lt, 4);
    put32(w, 0);                     /* no snapshot length limit */
    put32(w, 20);
    w->dlts[w->n] = dlt;
    return (int)w->n++;
}

int cm_pcapng_wr_packet(cm_pcapng_wr *w, int dlt, const struct pcap_pkthdr *h, const uint8_t *data,
                        const char *comment)
{
    int idx = interface_for(w, dlt);
    if (idx < 0)
        return -1;
    size_t clen = comment ? strlen(comment) : 0;
    if (clen > 60000)
        clen = 60000;
    size_t dpad = (h->caplen + 3u) & ~3u, cpad = (clen + 3) & ~(size_t)3;
    size_t opts = clen ? 4 + cpad + 4 : 0;
    uint32_t len = (uint32_t)(32 + dpad + opts);
    uint64_t t = (uint64_t)h->ts.tv_sec * 1000000u + (uint64_t)h->ts.tv_usec;
    static const uint8_t zero[4];
    put32(w, BT_EPB);
    put32(w, len);
    put32(w, (uint32_t)idx);
    put32(w, (uint32_t)(t >> 32));
    put32(w, (uint32_t)t);
    put32(w, h->caplen);
    put32(w, h->len);
    put(w, data, h->caplen);
    put(w, zero, dpad - h->caplen);
    if (clen) {
        uint16_t oh[2] = { OPT_COMMENT, (uint16_t)clen };
        put(w, oh, 4);
        for (size_t i = 0; i < clen; i++) {
            char c = comment[i] >= 0x20 && comment[i] < 0x7f ? comment[i] : '?';
            put(w, &c, 1);
        }
        put(w, zero, cpad - clen);
        put32(w, OPT_END);           /* opt_endofopt: code 0, length 0 */
    }
    return put32(w, len) ? 0 : -1;
}

int cm_pcapng_wr_close(cm_pcapng_wr *w)
{
    bool bad = w->failed || fflush(w->f) != 0;
    bad |= fclose(w->f) != 0;
    w->f = NULL;
    return bad ? -1 : 0;
}
