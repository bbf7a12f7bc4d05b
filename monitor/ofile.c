/* cloudmon: safe output files. */
#include "ofile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *cm_ofile_open(const char *path, const char *what, mode_t mode, char *err, size_t errcap)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode);
    if (fd < 0) {
        snprintf(err, errcap, "%s %s: %s%s", what, path, strerror(errno),
                 errno == ELOOP ? " (a symbolic link: give the real path)" : "");
        return NULL;
    }
    struct stat st;
    const char *bad = NULL;
    if (fstat(fd, &st) != 0)
        bad = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        bad = "not a regular file";
    else if (geteuid() == 0 && st.st_uid != 0)
        bad = "owned by another user (refused when running as root)";
    else if (fcntl(fd, F_SETFL, 0) != 0 || ftruncate(fd, 0) != 0 || fchmod(fd, mode) != 0)
        bad = strerror(errno);
    FILE *f = bad ? NULL : fdopen(fd, "w");
    if (!f) {
        snprintf(err, errcap, "%s %s: %s", what, path, bad ? bad : strerror(errno));
        close(fd);
    }
    return f;
}
