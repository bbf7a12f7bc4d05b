/* cloudmon: the screen model. What the screen shows is decided here (view, selection, scroll, filter,
 * sort, pause, status line); panels.c draws it, tui.c turns keys into changes of it. */
#ifndef CLOUDMON_SCREEN_H
#define CLOUDMON_SCREEN_H

#include "app.h"

typedef enum cm_view { CM_VIEW_LIST = 0, CM_VIEW_DETAIL, CM_VIEW_HELP, CM_VIEW_DEVICES } cm_view;
#define CM_NVIEWS 4

typedef enum cm_sort {
    CM_SORT_FIRST = 0,       /* first packet, oldest first */
    CM_SORT_LAST,            /* last activity, newest first */
    CM_SORT_DEVICE,
    CM_SORT_VERDICT,
    CM_SORT_BYTES,
    CM_SORT_COUNT
} cm_sort;

typedef struct cm_screen {
    cm_view view, back;      /* back: where help returns to */
    unsigned sel_id;         /* selected connection (by id, stable across re-sorting) */
    int sel;                 /* its row in rows */
    int list_top;            /* first row shown */
    int detail_top;          /* first detail line shown */
    int detail_lines;        /* lines the detail view had at the last draw */
    int help_top;
    char filter[128];
    bool editing;            /* the filter line has the keyboard */
    cm_sort sort;
    bool paused;
    bool color;
    bool finished;           /* the source ended and the connections were settled */
    char status[256];
    double status_until;
    GPtrArray *rows;         /* cm_conn* shown in the list: filtered and sorted */
    GArray *devrows;         /* cm_device shown in the Devices view, sorted */
    cm_dev_sort dsort;
    char dev_sel[48];        /* selected device (by name, stable across re-sorting) */
    int dsel, dev_top;
    bool quit;
} cm_screen;

/* One entry of the key table: drives both dispatch and the help screen. */
typedef struct cm_key {
    int keys[4];             /* key codes (0 ends the list) */
    const char *label;       /* how the help names the keys */
    const char *help;
    unsigned views;          /* bit (1 << cm_view) for each view it works in */
    void (*run)(cm_screen *s, cm_app *a);
} cm_key;

extern const cm_key cm_keys[];
extern const size_t cm_nkeys;

const char *cm_sort_name(cm_sort s);
void cm_screen_rows(cm_screen *s, cm_app *a);   /* rebuilds rows and places the selection */
void cm_screen_devrows(cm_screen *s, cm_app *a);
void cm_screen_status(cm_screen *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* panels.c */
void cm_panels_init_colors(cm_screen *s);
void cm_panels_draw(cm_screen *s, cm_app *a);
#define CM_MIN_COLS 60
#define CM_MIN_LINES 12

#endif
