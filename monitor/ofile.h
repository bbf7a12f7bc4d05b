/* cloudmon: output files created safely: never through a symbolic link, never over a file that is not a
 * regular file, and (when running as root) never over another user's file. */
#ifndef CLOUDMON_OFILE_H
#define CLOUDMON_OFILE_H

#include <stdio.h>
#include <sys/types.h>

/* Opens path for writing (created with mode, emptied if it exists). NULL with a message in err. */
FILE *cm_ofile_open(const char *path, const char *what, mode_t mode, char *err, size_t errcap);

#endif
