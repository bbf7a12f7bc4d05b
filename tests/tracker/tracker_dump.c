/* tracker-dump: reads a capture file, follows each TCP connection through libkeyring's tracker and prints
 * its steps, messages, findings and verdicts as stable text lines (the tracker's golden format, see
 * dump.c). Test tool: in-order TCP only (a segment beyond the next expected byte is reported to the
 * tracker as a gap), IPv4/IPv6 over Ethernet, loopback, raw IP or Linux cooked captures.
 *
 *   tracker-dump [-k KEYFILE] [-s all|none|server-private|server-public|device|session]
 *                [-c whole|byte|SEED] CAPTURE
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include "dump.h"

#define CLOUD_PORT 5683

typedef struct conn {
    int n;
    tk_dump dump;
    kr_tracker *t;
    uint8_t cli_addr[16], srv_addr[16];
    int alen;
    uint16_t cli_port, srv_port;
    bool have_seq[2];
    uint32_t next_seq[2];
    bool fin[2];
} conn;

typedef struct ctx {
    const kr_keyfile *kf;
    kr_table *tab;
    GString *out;
    int n_conns;
    bool have_t0;
    double t0;
    unsigned chunking;   /* 0 whole, 1 byte, >1 seed */
    GRand *rnd;
    unsigned long skipped;
} ctx;

static void on_evict(void *ud, kr_tracker *t, void *conn_ud)
{
    ctx *c = ud;
    conn *k = conn_ud;
    (void)c;
    tk_dump_info(&k->dump, t);
    g_free(k);
}

static void addr_text(const uint8_t *a, int alen, uint16_t port, char *out, size_t cap)
{
    char buf[64];
    inet_ntop(alen == 4 ? AF_INET : AF_INET6, a, buf, sizeof buf);
    if (alen == 4)
        snprintf(out, cap, "%s:%u", buf, port);
    else
        snprintf(out, cap, "[%s]:%u", buf, port);
}

static void feed_chunked(ctx *c, conn *k, kr_dir dir, const uint8_t *p, size_t len, double ts)
{
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (c->chunking == 1)
            n = 1;
        else if (c->rnd)
            n = (size_t)g_rand_int_range(c->rnd, 1, 97);
        if (n > len - off)
            n = len - off;
        uint8_t *piece = g_memdup2(p + off, n);
        kr_tracker_data(k->t, dir, piece, n, ts);
        g_free(piece);
        off += n;
    }
}

static int32_t seq_diff(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b);
}

static void tcp_segment(ctx *c, const uint8_t *src, const uint8_t *dst, int alen, const uint8_t *tcp, size_t tlen,
                        double ts)
{
    if (tlen < 20)
        return;
    size_t doff = (size_t)(tcp[12] >> 4) * 4;
    if (doff < 20 || doff > tlen)
        return;
    uint16_t sport = (uint16_t)(tcp[0] << 8 | tcp[1]), dport = (uint16_t)(tcp[2] << 8 | tcp[3]);
    uint32_t seq = (uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 | (uint32_t)tcp[6] << 8 | tcp[7];
    uint8_t flags = tcp[13];
    bool syn = flags & 0x02, ack = flags & 0x10, fin = flags & 0x01, rst = flags & 0x04;
    const uint8_t *data = tcp + doff;
    size_t dlen = tlen - doff;

    if (!c->have_t0) {
        c->have_t0 = true;
        c->t0 = ts;
    }
    /* key: lower endpoint first, so both directions find the same connection */
    uint8_t key[2 * 16 + 4];
    memset(key, 0, sizeof key);
    int cmp = memcmp(src, dst, (size_t)alen);
    bool src_first = cmp < 0 || (cmp == 0 && sport <= dport);
    memcpy(key, src_first ? src : dst, (size_t)alen);
    memcpy(key + 16, src_first ? dst : src, (size_t)alen);
    uint16_t p1 = src_first ? sport : dport, p2 = src_first ? dport : sport;
    key[32] = (uint8_t)(p1 >> 8);
    key[33] = (uint8_t)p1;
    key[34] = (uint8_t)(p2 >> 8);
    key[35] = (uint8_t)p2;

    void *ud = NULL;
    kr_tracker *t = kr_table_get(c->tab, key, sizeof key, &ud);
    conn *k = ud;
    if (syn && !ack && t) {
        /* a new connection on the same addresses: the old one ends */
        kr_table_remove(c->tab, key, sizeof key);
        t = NULL;
    }
    if (!t) {
        if (rst && dlen == 0)
            return;
        k = g_new0(conn, 1);
        k->n = ++c->n_conns;
        k->alen = alen;
        bool src_is_client;
        if (syn && !ack)
            src_is_client = true;
        else if (syn && ack)
            src_is_client = false;
        else if (dport == CLOUD_PORT)
            src_is_client = true;
        else if (sport == CLOUD_PORT)
            src_is_client = false;
        else
            src_is_client = true;
        memcpy(k->cli_addr, src_is_client ? src : dst, (size_t)alen);
        memcpy(k->srv_addr, src_is_client ? dst : src, (size_t)alen);
        k->cli_port = src_is_client ? sport : dport;
        k->srv_port = src_is_client ? dport : sport;
        tk_dump_init(&k->dump, c->out, k->n, c->t0);
        k->t = kr_tracker_new(c->kf, &tk_dump_callbacks, &k->dump);
        char a[80], b[80];
        addr_text(k->cli_addr, alen, k->cli_port, a, sizeof a);
        addr_text(k->srv_addr, alen, k->srv_port, b, sizeof b);
        tk_dump_line(&k->dump, "conn %s -> %s", a, b);
        kr_table_put(c->tab, key, sizeof key, k->t, k, ts);
        t = k->t;
        if (syn && !ack) {
            tk_dump_line(&k->dump, "open t=+%.6f", ts - c->t0);
            kr_tracker_open(t, ts);
        }
    }
    kr_table_touch(c->tab, key, sizeof key, ts);
    kr_dir dir = (sport == k->cli_port && memcmp(src, k->cli_addr, (size_t)alen) == 0) ? KR_D2S : KR_S2D;
    if (syn) {
        k->have_seq[dir] = true;
        k->next_seq[dir] = seq + 1;
        return;
    }
    if (dlen > 0 && !k->fin[dir]) {
        if (!k->have_seq[dir]) {
            k->have_seq[dir] = true;
            k->next_seq[dir] = seq;
        }
        int32_t d = seq_diff(seq, k->next_seq[dir]);
        if (d > 0) {
            tk_dump_line(&k->dump, "gap %s %d t=+%.6f", kr_dir_short(dir), d, ts - c->t0);
            kr_tracker_gap(t, dir, (uint64_t)d, ts);
            d = 0;
        }
        if (d < 0 && (size_t)(-(int64_t)d) < dlen) {
            data += -d;
            dlen -= (size_t)-d;
            d = 0;
        }
        if (d == 0) {
            feed_chunked(c, k, dir, data, dlen, ts);
            k->next_seq[dir] = seq + (uint32_t)(tlen - doff);
        }
    }
    if (fin && !k->fin[dir]) {
        k->fin[dir] = true;
        tk_dump_line(&k->dump, "close %s FIN t=+%.6f", kr_dir_short(dir), ts - c->t0);
        kr_tracker_close(t, dir, false, ts);
    }
    if (rst) {
        tk_dump_line(&k->dump, "close %s RST t=+%.6f", kr_dir_short(dir), ts - c->t0);
        kr_tracker_close(t, dir, true, ts);
    }
}

static void ip_packet(ctx *c, const uint8_t *p, size_t len, double ts)
{
    if (len < 1)
        return;
    int v = p[0] >> 4;
    if (v == 4) {
        if (len < 20)
            return;
        size_t ihl = (size_t)(p[0] & 0x0f) * 4;
        size_t tot = (size_t)(p[2] << 8 | p[3]);
        if (ihl < 20 || tot < ihl || tot > len || p[9] != 6)
            return;
        if ((p[6] & 0x3f) || p[7])
            return; /* fragments are not followed */
        tcp_segment(c, p + 12, p + 16, 4, p + ihl, tot - ihl, ts);
    } else if (v == 6) {
        if (len < 40)
            return;
        size_t plen = (size_t)(p[4] << 8 | p[5]);
        if (p[6] != 6 || 40 + plen > len)
            return;
        tcp_segment(c, p + 8, p + 24, 16, p + 40, plen, ts);
    }
}

static void packet(ctx *c, int linktype, const struct pcap_pkthdr *h, const uint8_t *p)
{
    double ts = (double)h->ts.tv_sec + (double)h->ts.tv_usec / 1e6;
    size_t len = h->caplen;
    switch (linktype) {
    case DLT_NULL:
    case DLT_LOOP:
        if (len > 4)
            ip_packet(c, p + 4, len - 4, ts);
        break;
    case DLT_EN10MB: {
        if (len < 14)
            return;
        size_t off = 12;
        uint16_t et = (uint16_t)(p[off] << 8 | p[off + 1]);
        while ((et == 0x8100 || et == 0x88a8) && len >= off + 6) {
            off += 4;
            et = (uint16_t)(p[off] << 8 | p[off + 1]);
        }
        off += 2;
        if ((et == 0x0800 || et == 0x86dd) && len > off)
            ip_packet(c, p + off, len - off, ts);
        break;
    }
    case DLT_LINUX_SLL:
        if (len > 16)
            ip_packet(c, p + 16, len - 16, ts);
        break;
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2:
        if (len > 20)
            ip_packet(c, p + 20, len - 20, ts);
        break;
#endif
    case DLT_RAW:
#ifdef DLT_IPV4
    case DLT_IPV4:
    case DLT_IPV6:
#endif
        ip_packet(c, p, len, ts);
        break;
    default:
        c->skipped++;
        break;
    }
}

/* Keeps the keyfile lines of one kind of key. */
static char *filter_keyfile(const char *text, const char *subset)
{
    if (strcmp(subset, "all") == 0)
        return g_strdup(text);
    GString *o = g_string_new(NULL);
    if (strcmp(subset, "none") == 0)
        return g_string_free(o, FALSE);
    char **lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        char *s = g_strstrip(g_strdup(*l));
        bool keep = false;
        if (strcmp(subset, "server-private") == 0)
            keep = g_str_has_prefix(s, "server-private");
        else if (strcmp(subset, "server-public") == 0)
            keep = g_str_has_prefix(s, "server-public");
        else if (strcmp(subset, "device") == 0)
            keep = g_str_has_prefix(s, "device");
        else if (strcmp(subset, "session") == 0)
            keep = g_str_has_prefix(s, "session");
        if (keep) {
            g_string_append(o, s);
            g_string_append_c(o, '\n');
        }
        g_free(s);
    }
    g_strfreev(lines);
    return g_string_free(o, FALSE);
}

static void usage(void)
{
    fprintf(stderr, "usage: tracker-dump [-k KEYFILE] [-s all|none|server-private|server-public|device|session] "
                    "[-c whole|byte|SEED] CAPTURE\n");
}

int main(int argc, char **argv)
{
    const char *keyfile = NULL, *subset = "all", *chunk = "whole";
    int opt;
    while ((opt = getopt(argc, argv, "k:s:c:h")) != -1) {
        switch (opt) {
        case 'k': keyfile = optarg; break;
        case 's': subset = optarg; break;
        case 'c': chunk = optarg; break;
        default: usage(); return 2;
        }
    }
    if (optind + 1 != argc) {
        usage();
        return 2;
    }
    static const char *subsets[] = { "all", "none", "server-private", "server-public", "device", "session" };
    bool ok = false;
    for (size_t i = 0; i < G_N_ELEMENTS(subsets); i++)
        ok |= strcmp(subset, subsets[i]) == 0;
    if (!ok) {
        fprintf(stderr, "tracker-dump: unknown key subset '%s' (use all, none, server-private, server-public, "
                        "device or session)\n", subset);
        return 2;
    }
    ctx c;
    memset(&c, 0, sizeof c);
    if (strcmp(chunk, "whole") == 0)
        c.chunking = 0;
    else if (strcmp(chunk, "byte") == 0)
        c.chunking = 1;
    else {
        char *end = NULL;
        unsigned long s = strtoul(chunk, &end, 10);
        if (!end || *end || s < 2) {
            fprintf(stderr, "tracker-dump: chunking '%s' is not whole, byte or a seed number >= 2\n", chunk);
            return 2;
        }
        c.chunking = (unsigned)s;
        c.rnd = g_rand_new_with_seed((guint32)s);
    }

    kr_keyfile *kf = NULL;
    if (keyfile) {
        char *text = NULL;
        gsize tl = 0;
        GError *e = NULL;
        if (!g_file_get_contents(keyfile, &text, &tl, &e)) {
            fprintf(stderr, "tracker-dump: cannot read keyfile %s: %s\n", keyfile, e->message);
            g_error_free(e);
            if (c.rnd)
                g_rand_free(c.rnd);
            return 1;
        }
        char *kept = filter_keyfile(text, subset);
        char *dir = g_path_get_dirname(keyfile);
        kr_err err;
        memset(&err, 0, sizeof err);
        kf = kr_keyfile_parse(kept, strlen(kept), dir, keyfile, &err);
        g_free(dir);
        g_free(kept);
        g_free(text);
        if (!kf) {
            fprintf(stderr, "tracker-dump: %s\n", err.msg);
            if (c.rnd)
                g_rand_free(c.rnd);
            return 1;
        }
    } else {
        kf = kr_keyfile_new_empty();
    }

    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_open_offline(argv[optind], errbuf);
    if (!pc) {
        fprintf(stderr, "tracker-dump: cannot read capture %s: %s\n", argv[optind], errbuf);
        kr_keyfile_free(kf);
        if (c.rnd)
            g_rand_free(c.rnd);
        return 1;
    }
    int lt = pcap_datalink(pc);
    c.kf = kf;
    c.out = g_string_new(NULL);
    c.tab = kr_table_new(1024, on_evict, &c);
    struct pcap_pkthdr *h;
    const u_char *data;
    int r;
    double last = 0;
    while ((r = pcap_next_ex(pc, &h, &data)) == 1) {
        packet(&c, lt, h, data);
        last = (double)h->ts.tv_sec + (double)h->ts.tv_usec / 1e6;
        fputs(c.out->str, stdout);
        g_string_truncate(c.out, 0);
    }
    if (r == -1)
        fprintf(stderr, "tracker-dump: %s: %s (the rest of the capture is not read)\n", argv[optind],
                pcap_geterr(pc));
    (void)last;
    kr_table_free(c.tab);
    fputs(c.out->str, stdout);
    g_string_free(c.out, TRUE);
    pcap_close(pc);
    kr_keyfile_free(kf);
    if (c.rnd)
        g_rand_free(c.rnd);
    if (c.skipped)
        fprintf(stderr, "tracker-dump: %lu packets of link type %d were skipped\n", c.skipped, lt);
    return r == -1 ? 1 : 0;
}
