/* tracker-mem: memory per tracked connection. Creates N libkeyring trackers (default 100000), feeds each
 * the TCP open and a 40-byte nonce (a connection waiting for the device's id block), and prints the
 * resident memory before and after, per tracker, next to what kr_tracker_memory reports.
 * usage: tracker-mem [N] [KEYFILE] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <keyring/keyring.h>

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
    kr_tracker **t = calloc((size_t)n, sizeof *t);
    if (!t)
        return 1;
    long before = rss_kb();
    size_t reported = 0;
    uint8_t nonce[KR_NONCE_LEN];
    for (long i = 0; i < n; i++) {
        kr_callbacks cb = { 0 };
        t[i] = kr_tracker_new(kf, &cb, NULL);
        if (!t[i]) {
            fprintf(stderr, "tracker-mem: kr_tracker_new failed at %ld\n", i);
            return 1;
        }
        for (int k = 0; k < KR_NONCE_LEN; k++)
            nonce[k] = (uint8_t)(i * 31 + k * 7);
        kr_tracker_open(t[i], (double)i);
        kr_tracker_data(t[i], KR_S2D, nonce, sizeof nonce, (double)i + 0.001);
        reported += kr_tracker_memory(t[i]);
    }
    long after = rss_kb();
    printf("trackers %ld rss_before_kb %ld rss_after_kb %ld bytes_per_tracker %.0f reported_per_tracker %.0f\n", n,
           before, after, (double)(after - before) * 1024.0 / (double)n, (double)reported / (double)n);
    for (long i = 0; i < n; i++)
        kr_tracker_free(t[i]);
    free(t);
    kr_keyfile_free(kf);
    return 0;
}
