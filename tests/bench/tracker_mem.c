/* tracker-mem: memory per open connection in libkeyring. Opens N connections (default 100000) through the
 * connection layer as cloudmon and the plugin do (kr_conn_table: SYN, SYN-ACK, ACK, the cloud's 40-byte
 * nonce, then the device's 256-byte id block) and prints, after the nonce and after the id block, the
 * resident memory per connection next to what kr_conn_table_memory reports, against the goal (at most
 * 2048 bytes an open connection before the session block); exits 1 when a stage misses it.
 * usage: tracker-mem [N] [KEYFILE] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <keyring/keyring.h>
#include <keyring/conn.h>

#define GOAL 2048

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint8_t next_byte(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)(rng >> 24);
}

/* Connection i's packet: from the device (10.x.y.z:port) or from the cloud (192.0.2.1:5683). */
static void send(kr_conn_table *tab, long i, bool from_dev, uint32_t seq, uint32_t ack, uint8_t flags,
                 const uint8_t *data, size_t len)
{
    kr_endpoint dev = { .family = 4, .port = (uint16_t)(1024 + i % 60000) };
    kr_endpoint cloud = { .family = 4, .port = 5683, .ip = { 192, 0, 2, 1 } };
    long host = i / 60000;
    dev.ip[0] = 10;
    dev.ip[1] = (uint8_t)(host >> 16);
    dev.ip[2] = (uint8_t)(host >> 8);
    dev.ip[3] = (uint8_t)host;
    kr_packet p = { .src = from_dev ? dev : cloud, .dst = from_dev ? cloud : dev, .seq = seq, .ack = ack,
                    .flags = flags, .window = 512, .payload = data, .captured_len = len, .wire_len = len,
                    .checksum = KR_CSUM_UNKNOWN, .time = (double)i * 1e-4 };
    kr_conn_packet(tab, &p);
}

/* Prints the figures of one stage; returns whether the goal is met. */
static bool stage(const char *what, long n, long before, const kr_conn_table *tab)
{
    long now = rss_kb();
    double per = (double)(now - before) * 1024.0 / (double)n;
    printf("%s: connections %ld rss_before_kb %ld rss_after_kb %ld bytes_per_connection %.0f "
           "reported_per_connection %.0f goal %d: %s\n", what, n, before, now, per,
           (double)kr_conn_table_memory(tab) / (double)n, GOAL, per <= GOAL ? "met" : "NOT met");
    return per <= GOAL;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    if (n < 1 || n > 10000000) {
        fprintf(stderr, "tracker-mem: N '%s': give a count from 1 to 10000000\n", argv[1]);
        return 2;
    }
    kr_err err = { "" };
    kr_keyfile *kf = argc > 2 ? kr_keyfile_load(argv[2], &err) : kr_keyfile_new_empty();
    if (!kf) {
        fprintf(stderr, "tracker-mem: %s\n", err.msg);
        return 2;
    }
    kr_conn_options o;
    kr_conn_options_default(&o);
    o.max_conns = 0;
    o.idle = 1e9;
    kr_conn_table *tab = kr_conn_table_new(kf, &o, NULL, NULL);
    long before = rss_kb();
    uint8_t nonce[KR_NONCE_LEN], idblock[KR_IDBLOCK_LEN];
    for (long i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof nonce; k++)
            nonce[k] = next_byte();
        send(tab, i, true, 1000, 0, KR_TCP_SYN, NULL, 0);
        send(tab, i, false, 5000, 1001, KR_TCP_SYN | KR_TCP_ACK, NULL, 0);
        send(tab, i, true, 1001, 5001, KR_TCP_ACK, NULL, 0);
        send(tab, i, false, 5001, 1001, KR_TCP_ACK | KR_TCP_PSH, nonce, sizeof nonce);
    }
    if (kr_conn_live_count(tab) != (size_t)n) {
        fprintf(stderr, "tracker-mem: %zu of %ld connections open\n", kr_conn_live_count(tab), n);
        return 1;
    }
    bool met = stage("after the nonce", n, before, tab);
    for (long i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof idblock; k++)
            idblock[k] = next_byte();
        send(tab, i, true, 1001, 5041, KR_TCP_ACK | KR_TCP_PSH, idblock, sizeof idblock);
    }
    met = stage("after the id block", n, before, tab) && met;
    kr_conn_table_free(tab);
    kr_keyfile_free(kf);
    return met ? 0 : 1;
}
