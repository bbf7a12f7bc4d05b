/* cloudmon: the non-interactive outputs. One line per step, message, finding and verdict, as text or
 * as JSON Lines (an object per line with a "type" of step, message, finding, verdict or summary), and
 * the closing summary. */
#ifndef CLOUDMON_OUTPUT_H
#define CLOUDMON_OUTPUT_H

#include <stdio.h>
#include "mon.h"
#include "json.h"

/* Verdict codes counted (kr_verdict_code runs from KR_V_NONE to the last code). */
#define CM_NVERDICTS 32

typedef struct cm_tally {
    uint64_t verdicts[CM_NVERDICTS];  /* final verdicts of ended connections */
    uint64_t ended;
} cm_tally;

typedef struct cm_output {
    FILE *out;
    bool json;
    bool quiet;              /* -q: no lines, only the summary */
    bool live;               /* flush every line */
    bool show_keys;          /* --show-keys: session key, IV and salt once per connection */
    bool broken;             /* writing failed (e.g. the reader of a pipe went away): stop */
    cm_tally tally;
    cm_json j;
    GHashTable *keyed;       /* connections whose session material was shown */
} cm_output;

/* An observer that writes lines (json false) or JSON Lines to out. */
cm_observer cm_output_observer(cm_output *o);
void cm_output_free(cm_output *o);
/* An observer that only counts final verdicts (for the summary when the screen is used). */
cm_observer cm_tally_observer(cm_tally *t);

/* The summary: one JSON object, or one line of text. dropped: packets the capture lost (live);
 * queue_dropped: of those, the ones the capture thread's queue had no room for (-1: no such queue). */
void cm_output_summary(FILE *out, bool json, const cm_mon *m, const cm_tally *t, const char *source,
                       uint64_t dropped, int64_t queue_dropped);

/* Small helpers shared with the screen. */
char *cm_time_str(double t, char *out, size_t cap);    /* "15:04:05.123456" UTC */

#endif
