/* cloudmon: a small JSON writer for JSON Lines. Objects are built in a growing buffer and written
 * as one line. Strings are escaped exactly: quote, backslash and control characters, and bytes that
 * are not valid UTF-8 are written as the text \xNN, so every line is valid UTF-8 JSON whatever the
 * wire carried. */
#ifndef CLOUDMON_JSON_H
#define CLOUDMON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CM_JSON_DEPTH 8

typedef struct cm_json {
    char *buf;
    size_t len, cap;
    int depth;
    bool first[CM_JSON_DEPTH];   /* no member written yet at this depth */
    bool oom;
} cm_json;

void cm_json_init(cm_json *j);
void cm_json_free(cm_json *j);
void cm_json_reset(cm_json *j);           /* empties the buffer for the next line */

/* key may be NULL inside an array; keys are the program's own words (plain ASCII), written as they are,
 * values are escaped. */
void cm_json_obj(cm_json *j, const char *key);     /* { */
void cm_json_arr(cm_json *j, const char *key);     /* [ */
void cm_json_end(cm_json *j, char close);          /* } or ] */
void cm_json_str(cm_json *j, const char *key, const char *v);
void cm_json_strn(cm_json *j, const char *key, const char *v, size_t n);
/* A word of the program's own (libkeyring's names, hex digits, CoAP codes): written as it is, without the
 * escaping scan; never for anything read from the wire or a file. */
void cm_json_word(cm_json *j, const char *key, const char *v);
void cm_json_int(cm_json *j, const char *key, int64_t v);
void cm_json_bool(cm_json *j, const char *key, bool v);
void cm_json_num(cm_json *j, const char *key, double v);   /* the shortest form that reads back exactly */
void cm_json_time(cm_json *j, const char *key, double t);  /* 6 decimals (pcap time) */

/* Appends the escaped form of v (without quotes) to j. */
void cm_json_escape(cm_json *j, const char *v, size_t n);
/* Writes the buffer and a newline to f. Returns false when the write failed. */
bool cm_json_line(cm_json *j, FILE *f);

#endif
