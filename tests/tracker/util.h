/* sparkwire tests: helpers shared by the tracker tests. */
#ifndef TK_UTIL_H
#define TK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include "keyring/keyring.h"

/* Decodes hex (spaces allowed) into a new GByteArray; aborts the test program on bad input. */
GByteArray *tk_unhex(const char *hex);
/* A fresh temporary folder (removed by tk_rmdir). */
char *tk_tmpdir(void);
void tk_rmdir(const char *dir);
void tk_write(const char *dir, const char *name, const uint8_t *data, size_t len);
/* Parses keyfile text with paths relative to dir; aborts with the error on failure. */
kr_keyfile *tk_keyfile(const char *dir, const char *text);

/* One event of a hand-made connection. */
typedef enum { TK_OPEN, TK_DATA, TK_GAP, TK_CLOSE, TK_FINISH, TK_DISPUTE, TK_COPY } tk_ev_kind;
typedef struct tk_ev {
    tk_ev_kind kind;
    kr_dir dir;
    double ts;
    GByteArray *data;   /* TK_DATA, TK_COPY */
    uint64_t n;         /* TK_GAP: bytes missing; TK_DISPUTE: bytes disputed */
    uint64_t off;       /* TK_DISPUTE, TK_COPY: stream offset of the first byte concerned */
    bool rst;           /* TK_CLOSE */
    int rank;           /* TK_COPY: kr_tracker_copy's rank */
} tk_ev;

/* The cloud address every hand-made connection goes to (kr_tracker_set_cloud), for bound server keys. */
#define TK_CLOUD "192.0.2.10"

typedef struct tk_conn {
    GArray *ev;         /* of tk_ev */
    double now;
} tk_conn;

tk_conn *tk_conn_new(void);
void tk_conn_free(tk_conn *c);
void tk_conn_open(tk_conn *c, double dt);
void tk_conn_data(tk_conn *c, kr_dir dir, double dt, const uint8_t *data, size_t len);
void tk_conn_hex(tk_conn *c, kr_dir dir, double dt, const char *hex);
void tk_conn_gap(tk_conn *c, kr_dir dir, double dt, uint64_t n);
void tk_conn_close(tk_conn *c, kr_dir dir, double dt, bool rst);
/* Bytes [off, off + n) of dir are disputed (kr_tracker_dispute). */
void tk_conn_dispute(tk_conn *c, kr_dir dir, double dt, uint64_t off, uint64_t n);
/* Another copy of bytes [off, off + len) of dir, fed already (kr_tracker_copy with rank). */
void tk_conn_copy(tk_conn *c, kr_dir dir, double dt, uint64_t off, const uint8_t *data, size_t len, int rank);

/* Chunking: 0 = as given, 1 = byte by byte, >1 = random chunk sizes with this seed. */
/* Runs a connection through a tracker; returns the golden-format text (caller frees). */
char *tk_conn_run(const tk_conn *c, const kr_keyfile *kf, unsigned chunking, kr_verdict *final_verdict);
/* Same, with caller callbacks called besides the text dump. */
char *tk_conn_run_cb(const tk_conn *c, const kr_keyfile *kf, unsigned chunking, kr_verdict *final_verdict,
                     const kr_callbacks *extra, void *extra_ud);

#endif
