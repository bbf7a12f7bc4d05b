/* cloudmon: how far the reading of a file has got: the share of the file read, packets per second and
 * the time left, for the screen's header and (as pv does) a line on standard error that rewrites
 * itself when standard output is not a terminal but standard error is. */
#ifndef CLOUDMON_PROGRESS_H
#define CLOUDMON_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include "capture.h"

typedef struct cm_progress {
    off_t size;              /* file size, 0 when not known (standard input, a pipe) */
    double start;            /* wall clock when reading began */
    double last_print;
    bool to_stderr;          /* write the line on standard error */
    bool printed;            /* a line is on the terminal: clear it at the end */
} cm_progress;

/* Sizes the file behind cap (a live capture has no progress). */
void cm_progress_init(cm_progress *p, const cm_capture *cap, bool to_stderr, double now);
/* "37% 812k packets/s 4s left" (or "812k packets/s" when the size is not known); "" for live. */
char *cm_progress_text(const cm_progress *p, const cm_capture *cap, uint64_t packets, double now, char *out,
                       size_t cap_out);
/* Rewrites the stderr line at most 4 times a second. */
void cm_progress_tick(cm_progress *p, const cm_capture *cap, uint64_t packets, double now);
/* Clears the stderr line. */
void cm_progress_done(cm_progress *p);

#endif
