/* sparkwire tests: the tracker's callbacks as stable text lines (the golden format). */
#ifndef TK_DUMP_H
#define TK_DUMP_H

#include <glib.h>
#include "keyring/keyring.h"

typedef struct tk_dump {
    GString *out;       /* lines are appended here */
    int conn;           /* connection number printed at the start of each line (0: none) */
    double t0;          /* times are printed relative to this */
    bool proven_given;  /* a proven verdict was given on this connection: it must never change */
    kr_verdict proven;
} tk_dump;

extern const kr_callbacks tk_dump_callbacks;

void tk_dump_init(tk_dump *d, GString *out, int conn, double t0);
void tk_dump_line(tk_dump *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "info ..." line summing up kr_tracker_info() */
void tk_dump_info(tk_dump *d, const kr_tracker *t);

#endif
