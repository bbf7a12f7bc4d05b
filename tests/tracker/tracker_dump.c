/* tracker-dump: reads a capture file, follows each TCP connection through libkeyring's tracker and prints
 * its steps, messages, findings and verdicts as stable text lines (the tracker's golden format, see
 * dump.c). The segments go through libkeyring's connection layer (keyring/conn.h), as in cloudmon and
 * the plugin. IPv4/IPv6 over Ethernet, loopback, raw IP or Linux cooked captures.
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
#include "keyring/conn.h"


typedef struct conn {
    tk_dump dump;
} conn;

typedef struct ctx {
    const kr_keyfile *kf;
    kr_conn_table *tab;
    GString *out;
    bool have_t0;
    double t0;
    unsigned chunking;   /* 0 whole, 1 byte, >1 seed */
    GRand *rnd;
    unsigned long skipped;
    bool bare;           /* -b: the tracker makes no message texts nor frame notes */
} ctx;

static void addr_text(const kr_endpoint *e, char *out, size_t cap)
{
    char buf[64];
    inet_ntop(e->family == 4 ? AF_INET : AF_INET6, e->ip, buf, sizeof buf);
    if (e->family == 4)
        snprintf(out, cap, "%s:%u", buf, e->port);
    else
        snprintf(out, cap, "[%s]:%u", buf, e->port);
}

/* ---- the connection layer's output as golden lines ---- */

static void on_open(void *ud, kr_conn *kc)
{
    ctx *c = ud;
    conn *k = g_new0(conn, 1);
    tk_dump_init(&k->dump, c->out, (int)kr_conn_id(kc), c->t0);
    kr_conn_set_user(kc, k);
    if (c->bare)
        kr_tracker_set_texts(kr_conn_tracker(kc), false);
    char a[80], b[80];
    addr_text(kr_conn_device(kc), a, sizeof a);
    addr_text(kr_conn_cloud(kc), b, sizeof b);
    tk_dump_line(&k->dump, "conn %s -> %s", a, b);
}

static void on_step(void *ud, kr_conn *kc, const kr_step *s)
{
    (void)ud;
    conn *k = kr_conn_user(kc);
    tk_dump_callbacks.step(&k->dump, s);
}

static void on_message(void *ud, kr_conn *kc, const kr_message *m)
{
    (void)ud;
    conn *k = kr_conn_user(kc);
    tk_dump_callbacks.message(&k->dump, m);
}

static void on_finding(void *ud, kr_conn *kc, const kr_finding *f)
{
    (void)ud;
    conn *k = kr_conn_user(kc);
    tk_dump_callbacks.finding(&k->dump, f);
}

static void on_verdict(void *ud, kr_conn *kc, const kr_verdict *v)
{
    (void)ud;
    conn *k = kr_conn_user(kc);
    tk_dump_callbacks.verdict(&k->dump, v);
}

static void on_tcp(void *ud, kr_conn *kc, const kr_tcp_event *e)
{
    ctx *c = ud;
    conn *k = kr_conn_user(kc);
    double t = e->time - c->t0;
    switch (e->kind) {
    case KR_TCP_EV_SYN: tk_dump_line(&k->dump, "open t=+%.6f", t); break;
    case KR_TCP_EV_GAP:
        tk_dump_line(&k->dump, "gap %s %llu t=+%.6f", kr_dir_short(e->dir), (unsigned long long)e->nbytes, t);
        break;
    case KR_TCP_EV_FIN: tk_dump_line(&k->dump, "close %s FIN t=+%.6f", kr_dir_short(e->dir), t); break;
    case KR_TCP_EV_RST: tk_dump_line(&k->dump, "close %s RST t=+%.6f", kr_dir_short(e->dir), t); break;
    case KR_TCP_EV_SYNACK: case KR_TCP_EV_JOINED: case KR_TCP_EV_RETRANSMITTED: break;
    default: tk_dump_line(&k->dump, "tcp %s %s t=+%.6f: %s", kr_tcp_kind_str(e->kind), kr_dir_short(e->dir), t, e->text);
    }
}

static void on_end(void *ud, kr_conn *kc, const char *reason)
{
    (void)ud;
    (void)reason;
    conn *k = kr_conn_user(kc);
    tk_dump_info(&k->dump, kr_conn_tracker(kc));
    g_free(k);
}

static const kr_conn_callbacks dump_conn_cb = {
    .open = on_open, .step = on_step, .message = on_message, .finding = on_finding,
    .verdict = on_verdict, .tcp = on_tcp, .end = on_end,
};

static void endpoint(kr_endpoint *e, const uint8_t *ip, int alen, uint16_t port)
{
    memset(e, 0, sizeof *e);
    e->family = alen == 4 ? 4 : 6;
    memcpy(e->ip, ip, (size_t)alen);
    e->port = port;
}

/* One segment to the connection layer; with -c byte or a seed, its payload as several segments (the
 * tracker's output must not depend on how the bytes were cut). */
static void tcp_segment(ctx *c, const uint8_t *src, const uint8_t *dst, int alen, const uint8_t *tcp, size_t tlen,
                        double ts, bool cut, size_t wire_tlen)
{
    if (tlen < 20)
        return;
    size_t doff = (size_t)(tcp[12] >> 4) * 4;
    if (doff < 20 || doff > tlen)
        return;
    if (!c->have_t0) {
        c->have_t0 = true;
        c->t0 = ts;
    }
    kr_packet p;
    memset(&p, 0, sizeof p);
    endpoint(&p.src, src, alen, (uint16_t)(tcp[0] << 8 | tcp[1]));
    endpoint(&p.dst, dst, alen, (uint16_t)(tcp[2] << 8 | tcp[3]));
    p.seq = (uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 | (uint32_t)tcp[6] << 8 | tcp[7];
    p.ack = (uint32_t)tcp[8] << 24 | (uint32_t)tcp[9] << 16 | (uint32_t)tcp[10] << 8 | tcp[11];
    p.flags = tcp[13];
    p.window = (uint32_t)(tcp[14] << 8 | tcp[15]);
    p.time = ts;
    p.cut = cut;
    const uint8_t *data = tcp + doff;
    size_t dlen = tlen - doff, wire = wire_tlen > doff ? wire_tlen - doff : 0;
    if (c->chunking == 0 || dlen == 0 || wire != dlen) {
        p.payload = data;
        p.captured_len = dlen;
        p.wire_len = wire;
        kr_conn_packet(c->tab, &p);
        return;
    }
    uint8_t flags = p.flags;
    uint32_t seq0 = p.seq + ((flags & 0x02) ? 1u : 0u);
    for (size_t off = 0; off < dlen;) {
        size_t n = c->chunking == 1 ? 1 : (size_t)g_rand_int_range(c->rnd, 1, 97);
        if (n > dlen - off)
            n = dlen - off;
        bool last = off + n == dlen;
        p.flags = (uint8_t)(last ? flags : (flags & ~(0x01 | 0x04)));
        if (off > 0)
            p.flags &= (uint8_t)~0x02;
        p.seq = off > 0 ? seq0 + (uint32_t)off : p.seq;
        uint8_t *piece = g_memdup2(data + off, n);
        p.payload = piece;
        p.captured_len = p.wire_len = n;
        kr_conn_packet(c->tab, &p);
        g_free(piece);
        off += n;
    }
}

static void ip_packet(ctx *c, const uint8_t *p, size_t len, double ts, bool cut)
{
    if (len < 1)
        return;
    int v = p[0] >> 4;
    if (v == 4) {
        if (len < 20)
            return;
        size_t ihl = (size_t)(p[0] & 0x0f) * 4;
        size_t tot = (size_t)(p[2] << 8 | p[3]);
        if (ihl < 20 || tot < ihl || ihl > len || p[9] != 6)
            return;
        if ((p[6] & 0x3f) || p[7])
            return; /* fragments are not followed */
        size_t have = tot < len ? tot : len;
        tcp_segment(c, p + 12, p + 16, 4, p + ihl, have - ihl, ts, cut, tot - ihl);
    } else if (v == 6) {
        if (len < 40)
            return;
        size_t plen = (size_t)(p[4] << 8 | p[5]);
        if (p[6] != 6)
            return;
        size_t have = 40 + plen < len ? plen : len - 40;
        tcp_segment(c, p + 8, p + 24, 16, p + 40, have, ts, cut, plen);
    }
}

static void packet(ctx *c, int linktype, const struct pcap_pkthdr *h, const uint8_t *p)
{
    double ts = (double)h->ts.tv_sec + (double)h->ts.tv_usec / 1e6;
    size_t len = h->caplen;
    bool cut = h->caplen < h->len;
    switch (linktype) {
    case DLT_NULL:
    case DLT_LOOP:
        if (len > 4)
            ip_packet(c, p + 4, len - 4, ts, cut);
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
            ip_packet(c, p + off, len - off, ts, cut);
        break;
    }
    case DLT_LINUX_SLL:
        if (len > 16)
            ip_packet(c, p + 16, len - 16, ts, cut);
        break;
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2:
        if (len > 20)
            ip_packet(c, p + 20, len - 20, ts, cut);
        break;
#endif
    case DLT_RAW:
#ifdef DLT_IPV4
    case DLT_IPV4:
    case DLT_IPV6:
#endif
        ip_packet(c, p, len, ts, cut);
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
                    "[-c whole|byte|SEED] [-b] CAPTURE\n");
}

int main(int argc, char **argv)
{
    const char *keyfile = NULL, *subset = "all", *chunk = "whole";
    bool bare = false;
    int opt;
    while ((opt = getopt(argc, argv, "k:s:c:bh")) != -1) {
        switch (opt) {
        case 'b': bare = true; break;
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
    c.bare = bare;
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
    kr_conn_options o;
    kr_conn_options_default(&o);
    c.tab = kr_conn_table_new(kf, &o, &dump_conn_cb, &c);
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
    kr_conn_finish(c.tab, last, "capture ended");
    kr_conn_table_free(c.tab);
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
