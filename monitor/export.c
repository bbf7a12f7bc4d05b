/* cloudmon: decrypted CoAP as UDP in a pcap. */
#include "export.h"
#include "outfile.h"
#include "pcaplib.h"

#include <errno.h>
#include <string.h>

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

size_t cm_export_build(const cm_addr *src, const cm_addr *dst, const uint8_t *payload, size_t len,
                       uint8_t *out, size_t cap)
{
    size_t ip = src->family == 6 ? 40 : 20;
    size_t udp_len = 8 + len;
    if (ip + udp_len > cap || udp_len > 65535 - ip)
        return 0;
    uint8_t *u = out + ip;
    wr16(u, src->port);
    wr16(u + 2, dst->port);
    wr16(u + 4, (uint16_t)udp_len);
    wr16(u + 6, 0);
    memcpy(u + 8, payload, len);
    if (src->family == 6) {
        memset(out, 0, 40);
        out[0] = 0x60;
        wr16(out + 4, (uint16_t)udp_len);
        out[6] = 17;
        out[7] = 64;
        memcpy(out + 8, src->ip, 16);
        memcpy(out + 24, dst->ip, 16);
        uint32_t s = cm_inet_sum(out + 8, 32, 0);
        s += 17 + (uint32_t)udp_len;
        s = cm_inet_sum(u, udp_len, s);
        uint16_t c = cm_inet_fold(s);
        wr16(u + 6, c ? c : 0xffff);
    } else {
        memset(out, 0, 20);
        out[0] = 0x45;
        wr16(out + 2, (uint16_t)(20 + udp_len));
        out[6] = 0x40;                /* don't fragment */
        out[8] = 64;
        out[9] = 17;
        memcpy(out + 12, src->ip, 4);
        memcpy(out + 16, dst->ip, 4);
        wr16(out + 10, cm_inet_fold(cm_inet_sum(out, 20, 0)));
        uint32_t s = cm_inet_sum(out + 12, 8, 0);
        s += 17 + (uint32_t)udp_len;
        s = cm_inet_sum(u, udp_len, s);
        uint16_t c = cm_inet_fold(s);
        wr16(u + 6, c ? c : 0xffff);
    }
    return ip + udp_len;
}

int cm_export_open(cm_export *x, const char *path, char *err, size_t errcap)
{
    memset(x, 0, sizeof *x);
    char le[256];
    if (!cm_pcap_load(le, sizeof le)) {
        snprintf(err, errcap, "--export-decrypted %s: %s", path, le);
        return -1;
    }
    x->dead = cm_pcap.open_dead(DLT_RAW, 65535);
    if (!x->dead) {
        snprintf(err, errcap, "%s: cannot prepare the export (out of memory)", path);
        return -1;
    }
    /* decrypted content: 0600, never through a link */
    FILE *f = cm_outfile_open(path, "--export-decrypted", true, err, errcap);
    x->dump = f ? cm_pcap.dump_fopen(x->dead, f) : NULL;
    if (!x->dump) {
        if (f) {
            snprintf(err, errcap, "--export-decrypted %s: cannot write the decrypted export: %s (choose a writable path)",
                     path, cm_pcap.geterr(x->dead));
            fclose(f);
        }
        cm_pcap.close(x->dead);
        x->dead = NULL;
        return -1;
    }
    return 0;
}

void cm_export_close(cm_export *x)
{
    if (x->dump)
        cm_pcap.dump_close(x->dump);
    if (x->dead)
        cm_pcap.close(x->dead);
    x->dump = NULL;
    x->dead = NULL;
}

static void ex_step(void *ud, const cm_conn *c, const kr_step *s)
{
    cm_export *x = ud;
    if (!x->dump || s->frame_state != KR_FRAME_DECRYPTED || !s->plaintext || s->plaintext_skip)
        return;
    cm_addr dev = c->client, cloud = c->server;
    cloud.port = 5683;
    if (dev.port == 5683)
        dev.port = 5684;              /* keep the two ends apart */
    static uint8_t buf[65536];
    size_t n = s->dir == KR_D2S ? cm_export_build(&dev, &cloud, s->plaintext, s->plaintext_len, buf, sizeof buf)
                                : cm_export_build(&cloud, &dev, s->plaintext, s->plaintext_len, buf, sizeof buf);
    if (!n)
        return;
    struct pcap_pkthdr h;
    h.ts.tv_sec = (time_t)s->time;
    h.ts.tv_usec = (suseconds_t)((s->time - (double)h.ts.tv_sec) * 1e6);
    h.caplen = h.len = (bpf_u_int32)n;
    cm_pcap.dump((u_char *)x->dump, &h, buf);
    x->written++;
}

cm_observer cm_export_observer(cm_export *x)
{
    cm_observer ob = { 0 };
    ob.step = ex_step;
    ob.ud = x;
    return ob;
}
