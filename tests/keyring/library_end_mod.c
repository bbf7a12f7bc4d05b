/* The module tests/keyring/library_end_test.c loads and unloads, as Wireshark does its plugin: libkeyring
 * linked in, used the way the plugin uses it, then told to end (or not). */
#include <stdio.h>
#include <string.h>
#include <pcap/pcap.h>
#include "keyring/keyring.h"
#include "keyring/conn.h"

typedef struct tally {
    int decrypted, oks;
} tally;

static void t_step(void *ud, kr_conn *c, const kr_step *s)
{
    (void)c;
    if (s->kind == KR_STEP_FRAME && s->frame_state == KR_FRAME_DECRYPTED)
        ((tally *)ud)->decrypted++;
}

static void t_verdict(void *ud, kr_conn *c, const kr_verdict *v)
{
    (void)c;
    ((tally *)ud)->oks += v->code == KR_V_OK;
}

/* Ethernet, IPv4, TCP: one frame of the capture into the table (its TCP header read by libkeyring's reader) */
static void feed(kr_conn_table *tab, const struct pcap_pkthdr *h, const uint8_t *f)
{
    kr_tcp_hdr th;
    if (h->caplen < 14 + 20 || f[12] != 0x08 || f[13] != 0x00 || f[14 + 9] != 6)
        return;
    const uint8_t *ip = f + 14;
    size_t ihl = (size_t)(ip[0] & 15) * 4, tot = (size_t)ip[2] << 8 | ip[3];
    if (14 + tot > h->caplen || ihl > tot || !kr_tcp_header(ip + ihl, tot - ihl, tot - ihl, &th))
        return;
    kr_packet p = { .seq = th.seq, .ack = th.ack, .flags = th.flags, .window = th.window, .wscale = th.wscale,
                    .options_known = true, .payload = ip + ihl + th.len, .captured_len = tot - ihl - th.len,
                    .wire_len = tot - ihl - th.len, .checksum = KR_CSUM_UNKNOWN,
                    .time = (double)h->ts.tv_sec + h->ts.tv_usec / 1e6 };
    p.src.family = p.dst.family = 4;
    memcpy(p.src.ip, ip + 12, 4);
    memcpy(p.dst.ip, ip + 16, 4);
    p.src.port = th.sport;
    p.dst.port = th.dport;
    kr_conn_packet(tab, &p);
}

/* The sample in dir through a connection table with its keyfile (device keys opened, the session decrypted,
 * frames kept), one probe key and one session hint; then kr_library_end when end is set. Returns the
 * frames decrypted times 10 plus the connections proven ok, or -1 when the sample cannot be read. */
int library_end_run(const char *dir, int end)
{
    char path[4096], err[PCAP_ERRBUF_SIZE];
    kr_err e = { "" };
    snprintf(path, sizeof path, "%s/keyfile", dir);
    kr_keyfile *kf = kr_keyfile_load(path, &e);
    snprintf(path, sizeof path, "%s/capture.pcap", dir);
    pcap_t *pc = kf ? pcap_open_offline(path, err) : NULL;
    if (!pc) {
        fprintf(stderr, "library_end_run: %s\n", kf ? err : e.msg);
        kr_keyfile_free(kf);
        return -1;
    }
    tally t = { 0, 0 };
    kr_conn_options o;
    kr_conn_options_default(&o);
    kr_conn_callbacks cb = { .step = t_step, .verdict = t_verdict };
    kr_conn_table *tab = kr_conn_table_new(kf, &o, &cb, &t);
    struct pcap_pkthdr *h;
    const uint8_t *f;
    double last = 0;
    while (pcap_next_ex(pc, &h, &f) == 1) {
        feed(tab, h, f);
        last = (double)h->ts.tv_sec + h->ts.tv_usec / 1e6;
    }
    pcap_close(pc);
    kr_conn_finish(tab, last, "capture ended");
    kr_conn_table_free(tab);
    kr_keyfile_free(kf);

    static const uint8_t key[16] = { 1, 2, 3 }, block[KR_SESSION_E_LEN] = { 4, 5, 6 };
    uint8_t hint[KR_SESSION_HINT_LEN];
    kr_probe_key_free(kr_probe_key_new(key));
    if (!kr_session_hint(block, hint))
        return -1;
    if (end)
        kr_library_end();
    return t.decrypted * 10 + t.oks;
}
