/* sparkkeys check KEYFILE CAPTURE: every connection of a capture through libkeyring's connection layer and
 * trackers, read as cloudmon reads it (monitor/: pcap, pcapng, link layers, IP fragments), then per
 * connection the verdict, the line of the keyfile it contradicts (libkeyring's rule, keyring/contradict.h)
 * and the command that fixes it. Exit status: 0 no key contradicted, 1 a key contradicted, 2 usage or I/O
 * error (a capture that cannot be read whole), 3 no key contradicted, but the keys at hand leave open a cause
 * that blames one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"
#include "capture.h"
#include "decode.h"
#include "frag.h"
#include "mon.h"

/* One connection once it ended: who, and the tracker's last word. */
typedef struct conn_result {
    unsigned id;
    cm_addr device;
    kr_endpoint cloud;       /* for server keys bound to a cloud address */
    kr_conn_info info;
} conn_result;

static void on_end(void *ud, const cm_conn *c)
{
    conn_result r = { .id = c->id, .device = c->client, .info = *cm_conn_info(c) };
    r.cloud.family = c->server.family;
    memcpy(r.cloud.ip, c->server.ip, sizeof r.cloud.ip);
    r.cloud.port = c->server.port;
    g_array_append_val((GArray *)ud, r);
}

/* Reads the whole capture into m, as cloudmon does with its default filter (TCP to or from the cloud port,
 * IP fragments put together, idle connections ended on the capture's clock). Returns 0; -2 with err when
 * the capture cannot be opened, -1 with err when it is damaged after some packets (the results then cover
 * those before). */
static int read_capture(const char *path, cm_mon *m, char *err, size_t errcap)
{
    cm_capture cap;
    char e[CM_ERRLEN];
    if (cm_capture_open_file(&cap, path, NULL, e) < 0) {
        g_strlcpy(err, e, errcap);
        cm_capture_close(&cap);   /* what the open got before it failed */
        return -2;
    }
    cm_frag frag;
    cm_frag_init(&frag, 0, 0, 0);
    double last_expire = 0;
    uint64_t n = 0;
    int rc;
    struct pcap_pkthdr *h;
    const u_char *data;
    while ((rc = cm_capture_next(&cap, &h, &data)) == 1) {
        n++;
        if (cap.warn[0]) {
            fprintf(stderr, "%s: warning: %s\n", PROG, cap.warn);
            cap.warn[0] = '\0';
        }
        double ts = (double)h->ts.tv_sec + (double)h->ts.tv_usec / 1e6;
        if (ts - last_expire >= 1.0) {
            cm_mon_expire(m, ts);
            last_expire = ts;
        }
        cm_pkt p;
        cm_dec_result r = cm_decode_frame(cap.dlt, data, h->caplen, h->len, &p);
        if (r == CM_DEC_FRAGMENT)
            r = cm_frag_add(&frag, ts, &p);
        if (r == CM_DEC_OTHER || (r == CM_DEC_TCP && p.src.port != m->server_port && p.dst.port != m->server_port))
            continue;
        cm_mon_packet(m, ts, r, &p);
    }
    if (rc != PCAP_ERROR_BREAK)
        snprintf(err, errcap, "%s: the capture is damaged or truncated after %llu packets: %s (the results above "
                 "cover the packets before it)", cap.name, (unsigned long long)n, cm_capture_error(&cap));
    cm_mon_finish(m, m->now, "capture ended");
    cm_frag_expire(&frag, INFINITY);
    cm_frag_free(&frag);
    cm_capture_close(&cap);
    return rc == PCAP_ERROR_BREAK ? 0 : -1;
}

/* libkeyring's advice on a failure that blames no key (a wrong nonce echo, another service, a stall ...),
 * one line of it a line; nothing for ok and the verdicts without advice of their own. */
static void print_advice(kr_verdict_code code, const conn_result *r, const char *indent)
{
    if (code == KR_V_OK || strcmp(kr_verdict_fix(code), kr_verdict_fix(KR_V_NONE)) == 0)
        return;
    char *text = kr_verdict_fix_for(code, r->info.device_id_known ? r->info.device_id_hex : "the device");
    if (!text)
        return;
    char **lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i]; i++)
        printf("%s%s%s\n", indent, i ? "  " : "advice: ", lines[i]);
    g_strfreev(lines);
    free(text);
}

/* The key line a code blames, what it is compared with and the fix. Returns true when it blames a key. */
static bool print_blame(const kr_keyfile *kf, kr_verdict_code code, const conn_result *r, const char *indent)
{
    kr_contradiction c;
    char line[1400];
    if (!kr_contradiction_of(kf, code, &r->info, &r->cloud, &c)) {
        printf("%s%s\n", indent, c.what);
        print_advice(code, r, indent);
        return false;
    }
    if (c.line)
        printf("%scontradicts %s\n", indent, kr_entry_describe(c.line, line, sizeof line));
    else
        printf("%scontradicts no line of the keyfile: it has no %s line for this device, the key at fault is "
               "outside it\n", indent, kr_entry_kind_str(c.kind));
    printf("%s  %s\n", indent, c.what);
    if (c.detail[0])
        printf("%s  %s\n", indent, c.detail);
    if (c.against)
        printf("%s  compared with %s\n", indent, kr_entry_describe(c.against, line, sizeof line));
    else if (c.against_kind == KR_ENTRY_SERVER_PUBLIC)
        printf("%s  compared with the published Particle cloud key (fingerprint %s): no server key line of the "
               "keyfile applies to this cloud\n", indent, KR_PARTICLE_CLOUD_FINGERPRINT);
    printf("%sfix: %s\n", indent, c.fix);
    return true;
}

/* One connection; returns its exit status (0, 1 or 3). */
static int print_conn(const kr_keyfile *kf, const conn_result *r)
{
    char d[64], s[64];
    cm_addr cloud = { r->cloud.family, {0}, r->cloud.port };
    memcpy(cloud.ip, r->cloud.ip, sizeof cloud.ip);
    const kr_verdict *v = &r->info.verdict;
    printf("connection %u: device %s (%s -> %s): %s (%s)\n", r->id,
           r->info.device_id_known ? r->info.device_id_hex : "id not known", cm_addr_str(&r->device, d, sizeof d),
           cm_addr_str(&cloud, s, sizeof s), v->code ? kr_verdict_str(v->code) : "undecided",
           v->proven ? "proven" : "inferred");
    if (v->evidence[0])
        printf("  evidence: %s\n", v->evidence);
    if (v->code != KR_V_ID_BLOCK_REJECTED && v->code != KR_V_SESSION_BLOCK_REJECTED &&
        print_blame(kf, v->code, r, "  "))
        return EXIT_PROBLEM;
    if (v->n_candidates == 0)
        return EXIT_FINE;
    if (v->code == KR_V_ID_BLOCK_REJECTED || v->code == KR_V_SESSION_BLOCK_REJECTED)
        printf("  not settled: the keys at hand leave %d cause%s\n", v->n_candidates, v->n_candidates == 1 ? "" : "s");
    else
        printf("  the keys at hand leave open %d other cause%s\n", v->n_candidates, v->n_candidates == 1 ? "" : "s");
    bool any = false;
    for (int i = 0; i < v->n_candidates; i++) {
        printf("  if %s:\n", kr_verdict_str(v->candidates[i]));
        any |= print_blame(kf, v->candidates[i], r, "    ");
    }
    return any ? EXIT_UNSETTLED : EXIT_FINE;
}

int check_capture(const kr_keyfile *kf, const char *keyfile, const char *capture)
{
    GArray *results = g_array_new(FALSE, FALSE, sizeof(conn_result));
    cm_mon m;
    cm_mon_init(&m, kf);
    cm_observer o = { .end = on_end, .ud = results };
    cm_mon_observe(&m, &o);
    char err[CM_ERRLEN] = "";
    int rc = read_capture(capture, &m, err, sizeof err);
    cm_mon_free(&m);
    if (rc == -2) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        g_array_free(results, TRUE);
        return EXIT_USAGE;
    }
    int worst = EXIT_FINE;
    unsigned blamed = 0;
    for (guint i = 0; i < results->len; i++) {
        int st = print_conn(kf, &g_array_index(results, conn_result, i));
        blamed += st == EXIT_PROBLEM;
        if (st == EXIT_PROBLEM || (st == EXIT_UNSETTLED && worst == EXIT_FINE))
            worst = st;
    }
    printf("%s with %s: %u connection%s, %s\n", capture, keyfile, results->len, results->len == 1 ? "" : "s",
           blamed ? "a key is at fault: a line of the keyfile, or a key it lacks (see above)"
           : worst == EXIT_UNSETTLED ? "no key is contradicted, but the keys at hand leave open a cause that blames one"
           : results->len ? "the capture contradicts no key of the keyfile"
           : "no connection to the cloud port: the capture contradicts no key of the keyfile");
    g_array_free(results, TRUE);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return EXIT_USAGE;
    }
    return worst;
}
