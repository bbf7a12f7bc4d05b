/* sparkkeys: the pieces the commands share (option parsing, printing, writing files). */
#ifndef SPARKKEYS_TOOL_H
#define SPARKKEYS_TOOL_H

#include <stdbool.h>
#include <stdio.h>

#include <glib.h>

#include "keyring/keyring.h"

/* check KEYFILE CAPTURE adds EXIT_UNSETTLED: no key contradicted, but the keys leave open a cause that blames one. */
enum { EXIT_FINE = 0, EXIT_PROBLEM = 1, EXIT_USAGE = 2, EXIT_UNSETTLED = 3 };

#define PROG "sparkkeys"

/* The commands: each takes its own argv (argv[0] is the command name) and returns the exit status. */
int cmd_show(int argc, char **argv);
int cmd_match(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_new(int argc, char **argv);
/* check KEYFILE CAPTURE (check_capture.c): the key line each connection of the capture contradicts. */
int check_capture(const kr_keyfile *kf, const char *keyfile, const char *capture);

/* ---- parsing (util.c) ---- */
/* What --help says about a command. */
typedef struct tool_command {
    const char *name;      /* "show" */
    const char *params;    /* "FILE... - what a key file holds and who can use it" */
    const char *summary;   /* the paragraph under the usage line */
} tool_command;

/* Parses the options of a command (entries may be NULL). false, and one line on stderr, on a usage error. */
bool tool_parse_options(const tool_command *c, GOptionEntry *entries, int *argc, char ***argv);
/* True when path names a readable regular file; otherwise err says why in one line (what names the
 * file: "the key file", "the keyfile", "the dump"). */
bool file_readable(const char *path, const char *what, kr_err *err);
kr_role parse_role(const char *s, bool *ok);
/* 24 hex digits; lowered in place when valid. */
bool valid_id(char *id);

/* ---- printing (print.c) ---- */
/* Prints notes with an indent; returns the worst level (-1 when none). */
int print_notes(const kr_note *notes, int n, const char *indent, bool storage_is_warning);
void print_key_facts(const kr_key *k, const char *indent);
void print_slot(const kr_flash_slot *s);
/* Keeps the worse of two levels in *worst. */
void worsen(int *worst, int level);

/* ---- writing (write.c) ---- */
/* Writes a whole file; secret files are created 0600. */
bool write_file(const char *path, const void *data, size_t len, bool secret, kr_err *err);
bool write_public_pem(const kr_key *k, const char *path, kr_err *err);
bool make_dir(const char *dir, kr_err *err);

#endif
