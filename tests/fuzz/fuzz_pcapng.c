/* libFuzzer target: cloudmon's pcapng reader (monitor/pcapng.c) on any bytes, each packet then decoded
 * with its interface's link type and fragments reassembled, as the capture loop does. */
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include "frag.h"
#include "pcapng.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "rb");
    if (!f)
        return 0;
    static cm_pcapng_rd rd;
    static cm_frag fr;
    cm_frag_init(&fr, 16384, 8, 5);
    if (cm_pcapng_open(&rd, f) == 0) {
        struct pcap_pkthdr h;
        const uint8_t *pkt;
        unsigned idx;
        while (cm_pcapng_next(&rd, &h, &pkt, &idx) == 1) {
            cm_pkt p;
            cm_dec_result r = cm_decode_frame(rd.ifs[idx].dlt, pkt, h.caplen, h.len, &p);
            if (r == CM_DEC_FRAGMENT)
                cm_frag_add(&fr, (double)h.ts.tv_sec + h.ts.tv_usec / 1e6, &p);
        }
    }
    cm_pcapng_close(&rd);
    cm_frag_free(&fr);
    return 0;
}
