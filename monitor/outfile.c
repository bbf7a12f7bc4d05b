/* cloudmon: safe output files. */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

bool cm_outfile_is_pcapng(const char *path)
{
    size_t n = strlen(path);
    return n >= 7 && strcasecmp(path + n - 7, ".pcapng") == 0;
}

/* A regular file that root must not overwrite: it belongs to someone else. */
static bool foreign(const struct stat *st)
{
    return geteuid() == 0 && st->st_uid != 0;
}

FILE *cm_outfile_open(const char *path, const char *what, bool secret, char *err, size_t errcap)
{
    int fd = strcmp(path, "-") == 0 ? dup(STDOUT_FILENO)
                                    : open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, secret ? 0600 : 0666);
    if (fd < 0) {
        if (errno == ELOOP)
            snprintf(err, errcap, "%s %s: is a symbolic link, and cloudmon does not write through links "
                     "(give the real path of the file)", what, path);
        else
            snprintf(err, errcap, "%s %s: cannot write: %s (choose a writable path)", what, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errcap, "%s %s: cannot write: %s (choose a writable path)", what, path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (S_ISREG(st.st_mode) && foreign(&st)) {
        struct passwd *pw = getpwuid(st.st_uid);
        char owner[64];
        if (pw)
            snprintf(owner, sizeof owner, "%s", pw->pw_name);
        else
            snprintf(owner, sizeof owner, "uid %u", (unsigned)st.st_uid);
        snprintf(err, errcap, "%s %s: the file belongs to %s, and running as root cloudmon does not overwrite "
                 "another user's file (remove it first, or choose another path)", what, path, owner);
        close(fd);
        return NULL;
    }
    if (S_ISREG(st.st_mode) && ((secret && fchmod(fd, 0600) != 0) || ftruncate(fd, 0) != 0)) {
        snprintf(err, errcap, "%s %s: cannot write: %s (choose a writable path)", what, path, strerror(errno));
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        snprintf(err, errcap, "%s %s: cannot write: %s", what, path, strerror(errno));
        close(fd);
    }
    return f;
}
