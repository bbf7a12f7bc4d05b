/* cloudmon's per-device records without a capture: connections end through the observer, and the
 * records count them; past the bound, new devices go to one overflow record; the JSON records and the
 * table agree. Exit 0 when every check holds. */
#include <stdio.h>
#include <string.h>
#include "devices.h"

static int failed;

#define CHECK(cond, what)                                                     \
    do {                                                                      \
        printf("%s %s\n", (cond) ? "ok  " : "FAIL", what);                   \
        failed += !(cond);                                                    \
    } while (0)

static void end_conn(cm_observer *o, unsigned id, const char *dev, unsigned ip, kr_verdict_code v, uint32_t msgs)
{
    cm_conn c;
    kr_conn_info info;
    memset(&c, 0, sizeof c);
    memset(&info, 0, sizeof info);
    c.id = id;
    c.client.family = 4;
    c.client.ip[0] = 10;
    c.client.ip[2] = (uint8_t)(ip >> 8);
    c.client.ip[3] = (uint8_t)ip;
    info.device_id_known = dev != NULL;
    if (dev)
        g_strlcpy(info.device_id_hex, dev, sizeof info.device_id_hex);
    info.verdict.code = v;
    info.verdict.proven = true;
    info.messages = msgs;
    info.generation = 2;
    c.given = &info;                 /* no tracker: the view the records are made from */
    c.wire_bytes = 100;
    c.last = 1700000000.0 + id;
    o->end(o->ud, &c);
}

int main(void)
{
    cm_devices d;
    cm_devices_init(&d);
    d.max = 3;
    cm_observer o = cm_devices_observer(&d);
    end_conn(&o, 1, "53ff6c065067544816300187", 1, KR_V_OK, 5);
    end_conn(&o, 2, "53ff6c065067544816300187", 1, KR_V_DEVICE_KEY_MISMATCH, 0);
    end_conn(&o, 3, NULL, 7, KR_V_NOT_SPARK, 0);
    end_conn(&o, 4, "36ff70065067555051412287", 2, KR_V_OK, 3);
    for (unsigned i = 5; i < 1005; i++)            /* a flood of new addresses */
        end_conn(&o, i, NULL, 1000 + i, KR_V_NOT_SPARK, 0);
    GArray *rows = cm_devices_rows(&d, NULL, CM_DSORT_DEVICE);
    CHECK(rows->len == 4, "three records and the overflow one, whatever the flood");
    const cm_device *a = &g_array_index(rows, cm_device, 0);
    CHECK(strcmp(a->name, "36ff70065067555051412287") == 0 && a->conns == 1, "known ids first, in order");
    const cm_device *b = &g_array_index(rows, cm_device, 1);
    CHECK(b->conns == 2 && b->verdicts[KR_V_OK] == 1 && b->verdicts[KR_V_DEVICE_KEY_MISMATCH] == 1 &&
          cm_device_failed(b) == 1 && b->messages == 5 && b->bytes == 200 &&
          b->last_verdict == KR_V_DEVICE_KEY_MISMATCH, "a device's connections, verdicts, messages and bytes");
    int unknown = -1, overflow = -1;
    for (guint i = 0; i < rows->len; i++) {
        const cm_device *v = &g_array_index(rows, cm_device, i);
        if (strcmp(v->name, "? 10.0.0.7") == 0)
            unknown = (int)i;
        if (strcmp(v->name, CM_DEVICES_OVERFLOW) == 0)
            overflow = (int)i;
    }
    CHECK(unknown >= 0, "a device without an id is named by its address");
    CHECK(overflow >= 0 && g_array_index(rows, cm_device, overflow).conns == 1000 &&
          cm_device_failed(&g_array_index(rows, cm_device, overflow)) == 1000,
          "the 1000 connections past the bound are counted in the overflow record");
    GArray *by_failed = cm_devices_rows(&d, NULL, CM_DSORT_FAILED);
    CHECK(strcmp(g_array_index(by_failed, cm_device, 0).name, CM_DEVICES_OVERFLOW) == 0,
          "sorted by failed connections, most first");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cm_devices_json(&d, NULL, f);
    fclose(f);
    CHECK(strstr(buf, "\"other_devices\":true") && strstr(buf, "\"client\":\"10.0.0.7\"") &&
          strstr(buf, "\"verdicts\":{\"ok\":1,\"device-key-mismatch\":1}"), "the JSON records say the same");
    free(buf);
    /* the table's lines as printf writes its columns, row by row */
    f = open_memstream(&buf, &len);
    cm_devices_print(&d, NULL, f);
    fclose(f);
    GString *want = g_string_new(NULL);
    g_string_append_printf(want, "devices: %u\n%-26s %5s %5s %6s %-23s %-15s %6s %10s %3s %s\n", rows->len,
                           "DEVICE", "CONNS", "OK", "FAILED", "LAST VERDICT", "LAST SEEN (UTC)", "MSGS", "BYTES", "GEN",
                           "PLATFORM");
    static const char *const gens[] = { "-", "1", "2", "3" };
    for (guint i = 0; i < rows->len; i++) {
        const cm_device *v = &g_array_index(rows, cm_device, i);
        char t[32], lv[32];
        snprintf(lv, sizeof lv, "%s%s", v->last_verdict ? kr_verdict_str(v->last_verdict) : "-",
                 v->last_verdict && !v->last_proven ? "?" : "");
        g_string_append_printf(want, "%-26s %5llu %5llu %6llu %-23s %-15s %6llu %10llu %3s %s\n", v->name,
                               (unsigned long long)v->conns, (unsigned long long)v->verdicts[KR_V_OK],
                               (unsigned long long)cm_device_failed(v), lv, cm_time_str(v->last_seen, t, sizeof t),
                               (unsigned long long)v->messages, (unsigned long long)v->bytes,
                               gens[v->generation >= 1 && v->generation <= 3 ? v->generation : 0], "-");
    }
    CHECK(len == want->len && memcmp(buf, want->str, len) == 0, "the table's columns are printf's");
    if (len != want->len || memcmp(buf, want->str, len) != 0)
        printf("got:\n%s\nwant:\n%s", buf, want->str);
    g_string_free(want, TRUE);
    free(buf);
    g_array_free(rows, TRUE);
    g_array_free(by_failed, TRUE);
    cm_devices_free(&d);
    return failed ? 1 : 0;
}
