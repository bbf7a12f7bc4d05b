/* cloudmon: --report FILE, a self-contained report for support, in Markdown (.md) or HTML (.html) by
 * the name: per device, each failed connection (final verdict other than ok) as a ladder with times,
 * the verdict and its evidence, the keyfile entries that apply, and the command that fixes it. Key
 * material never goes into it: keys are named by their keyfile line and path. */
#ifndef CLOUDMON_REPORT_H
#define CLOUDMON_REPORT_H

#include "output.h"

#define CM_REPORT_MAX 2000   /* failed connections described; the others are counted */

typedef struct cm_report {
    const char *path;
    bool html;
    const kr_keyfile *kf;
    GPtrArray *entries;      /* failed connections, in the order they ended */
    uint64_t conns, failed, left_out;
} cm_report;

/* Checks the name (.md or .html). Returns 0, or -1 with a message in err. */
int cm_report_init(cm_report *r, const char *path, const kr_keyfile *kf, char *err, size_t errcap);
cm_observer cm_report_observer(cm_report *r);
/* Writes the file. Returns 0, or -1 with a message in err. */
int cm_report_write(cm_report *r, const char *source, char *err, size_t errcap);
void cm_report_free(cm_report *r);

#endif
