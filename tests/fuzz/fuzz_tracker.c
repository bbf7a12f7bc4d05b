/* libFuzzer target: the per-connection tracker fed two byte streams and events decoded from the input.
 *   byte 0: keyfile (0 none, 1 healthy, 2 healthy-g1, 3 mid-session with a session line)
 *   then records: op (1 byte), length (2 bytes, big-endian), and for data ops that many bytes
 *     op % 8: 0 data device->cloud, 1 data cloud->device, 2 gap device->cloud (length = bytes lost),
 *             3 gap cloud->device, 4 close by the device, 5 close by the cloud, 6 RST, 7 open
 * Every callback reads the fields it is given. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include "fuzz_common.h"

static size_t sink;

static void on_step(void *ud, const kr_step *s)
{
    (void)ud;
    sink += strlen(s->note) + s->length + (s->plaintext ? s->plaintext[0] + s->plaintext_len : 0);
    if (s->bytes && s->length)
        sink += s->bytes[s->length - 1];
}
static void on_msg(void *ud, const kr_message *m)
{
    (void)ud;
    sink += strlen(m->summary) + strlen(m->uri) + m->payload_len + (m->payload_len ? m->payload[m->payload_len - 1] : 0);
}
static void on_finding(void *ud, const kr_finding *f) { (void)ud; sink += strlen(f->text); }
static void on_verdict(void *ud, const kr_verdict *v) { (void)ud; sink += strlen(v->evidence) + (size_t)v->n_candidates; }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_load_keyfiles();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    kr_callbacks cb = { on_step, on_msg, on_finding, on_verdict };
    kr_tracker *t = kr_tracker_new(fuzz_keyfile(data[0]), &cb, NULL);
    if (!t)
        return 0;
    double ts = 1000.0;
    size_t i = 1;
    while (i + 3 <= size) {
        uint8_t op = data[i] % 8;
        size_t len = (size_t)data[i + 1] << 8 | data[i + 2];
        i += 3;
        ts += 0.25;
        switch (op) {
        case 0:
        case 1:
            if (len > size - i)
                len = size - i;
            kr_tracker_data(t, op == 0 ? KR_D2S : KR_S2D, data + i, len, ts);
            i += len;
            break;
        case 2: case 3: kr_tracker_gap(t, op == 2 ? KR_D2S : KR_S2D, len, ts); break;
        case 4: kr_tracker_close(t, KR_D2S, false, ts); break;
        case 5: kr_tracker_close(t, KR_S2D, false, ts); break;
        case 6: kr_tracker_close(t, (len & 1) ? KR_S2D : KR_D2S, true, ts); break;
        default: kr_tracker_open(t, ts); break;
        }
    }
    const kr_conn_info *ci = kr_tracker_info(t);
    sink += ci->messages;
    kr_tracker_finish(t, ts + 1);
    for (size_t k = 0; k < kr_tracker_function_count(t); k++)
        sink += strlen(kr_tracker_function(t, k));
    for (size_t k = 0; k < kr_tracker_variable_count(t); k++) {
        kr_var_type vt;
        sink += strlen(kr_tracker_variable(t, k, &vt));
    }
    sink += kr_tracker_memory(t);
    kr_tracker_free(t);
    return 0;
}
