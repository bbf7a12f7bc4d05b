/* libFuzzer target: cloudmon's packet path (cm_decode_frame, cm_frag_add for fragments, cm_mon_packet:
 * the functions the capture loop calls for every packet), on a model with sample keys.
 *   byte 0: link type (% 7: Ethernet, Linux cooked v1, Linux cooked v2, BSD loopback NULL, LOOP, raw IP,
 *           IPv4), byte 1: keyfile (see fuzz_common.h)
 *   then records: length (2 bytes, big-endian), time step in ms (1 byte), packet bytes */
#include <stdint.h>
#include <stddef.h>
#include <pcap/pcap.h>
#include "fuzz_common.h"
#include "frag.h"
#include "mon.h"

static const int dlts[] = { DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_NULL, DLT_LOOP, DLT_RAW, 228 /* IPV4 */ };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_load_keyfiles();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int dlt = dlts[data[0] % 7];
    cm_mon m;
    cm_mon_init(&m, fuzz_keyfile(data[1]));
    m.max_conns = 8;        /* small tables: eviction and history paths run too */
    m.max_history = 4;
    m.idle = 30;
    static cm_frag f;       /* small limits: the eviction paths run too */
    cm_frag_init(&f, 8192, 4, 5);
    double ts = 1700000000.0;
    size_t i = 2;
    while (i + 3 <= size) {
        size_t len = (size_t)data[i] << 8 | data[i + 1];
        ts += data[i + 2] / 100.0;
        i += 3;
        if (len > size - i)
            len = size - i;
        cm_pkt p;
        /* the time byte's low bit says whether the frame was cut by the snapshot length (by 64 bytes) */
        cm_dec_result r = cm_decode_frame(dlt, data + i, len, len + (data[i - 1] & 1 ? 64 : 0), &p);
        if (r == CM_DEC_FRAGMENT)
            r = cm_frag_add(&f, ts, &p);
        cm_mon_packet(&m, ts, r, &p);
        if (data[i - 1] == 0xff)
            cm_mon_expire(&m, ts);
        i += len;
    }
    cm_mon_finish(&m, ts + 1, "capture ended");
    cm_frag_free(&f);
    cm_mon_free(&m);
    return 0;
}
