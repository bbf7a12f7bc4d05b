/* cloudmon: what each device did. One record per device (named by its id, or by its address while the
 * id is not known), fed by the model's observers: connections, final verdicts, the last verdict, last
 * activity, messages, bytes, firmware generation and platform. The screen's Devices view, the table at
 * the end of a batch run and the JSON `device` records all read it. */
#ifndef CLOUDMON_DEVICES_H
#define CLOUDMON_DEVICES_H

#include "output.h"

typedef struct cm_device {
    char name[48];           /* device id in hex, or "? ADDRESS" when the id is not known */
    bool id_known;
    uint64_t conns, live;    /* connections seen; of them still open */
    uint32_t verdicts[CM_NVERDICTS];   /* final verdicts of ended connections (a record per address: kept
                                          small for a million of them) */
    kr_verdict_code last_verdict;
    bool last_proven;
    double last_seen;
    uint64_t messages, bytes;
    int generation;          /* 0 unknown, 1, 2 */
    int platform;            /* Hello platform id, -1 unknown */
    unsigned product_id, product_version;
} cm_device;

/* Records kept at most: past that, devices not seen before are counted in one overflow record (the wire
 * decides how many addresses and ids there are). */
#define CM_MAX_DEVICES 100000
#define CM_DEVICES_OVERFLOW "(other devices)"

typedef struct cm_devices {
    GHashTable *by_name;     /* name -> cm_device* (owned) */
    size_t max;              /* CM_MAX_DEVICES unless a test sets less */
} cm_devices;

typedef enum cm_dev_sort {
    CM_DSORT_DEVICE = 0, CM_DSORT_FAILED, CM_DSORT_CONNS, CM_DSORT_LAST, CM_DSORT_BYTES, CM_DSORT_COUNT
} cm_dev_sort;

void cm_devices_init(cm_devices *d);
void cm_devices_free(cm_devices *d);
cm_observer cm_devices_observer(cm_devices *d);

/* Ended connections' records merged with the live connections of m, sorted: an array of cm_device
 * (copies) the caller frees with g_array_free. */
GArray *cm_devices_rows(const cm_devices *d, const cm_mon *m, cm_dev_sort sort);
const char *cm_dev_sort_name(cm_dev_sort s);
/* How a connection's device is named in the table. */
char *cm_device_name(const cm_conn *c, char *out, size_t cap);
/* Failed connections: final verdicts other than ok. */
uint64_t cm_device_failed(const cm_device *v);
const char *cm_platform_str(int platform, char *out, size_t cap);

/* The table at the end of a batch run, and one `device` JSON line per device. */
void cm_devices_print(const cm_devices *d, const cm_mon *m, FILE *out);
void cm_devices_json(const cm_devices *d, const cm_mon *m, FILE *out);

#endif
