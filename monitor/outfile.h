/* cloudmon: files it writes (-w, --export-decrypted, a save from the screen), opened safely: never
 * through a symbolic link, never over a file of another user when running as root, secrets 0600. */
#ifndef CLOUDMON_OUTFILE_H
#define CLOUDMON_OUTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Opens path for writing ("-" is standard output), emptying a regular file. what names the option in
 * messages ("-w"). secret: created 0600, and an existing file is set to 0600 before anything is written.
 * Returns the stream, or NULL with one line in err. */
FILE *cm_outfile_open(const char *path, const char *what, bool secret, char *err, size_t errcap);
/* True when the name ends in .pcapng (any case): the file is written as pcapng. */
bool cm_outfile_is_pcapng(const char *path);

#endif
