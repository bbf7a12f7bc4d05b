/* cloudmon: progress of a file read. */
#include "progress.h"

#include <sys/stat.h>

/* The file being read (under the stream libpcap or the pcapng reader reads from). */
static FILE *source_file(const cm_capture *cap)
{
    return cap->live ? NULL : cap->file;
}

void cm_progress_init(cm_progress *p, const cm_capture *cap, bool to_stderr, double now)
{
    struct stat st;
    p->size = 0;
    p->start = now;
    p->last_print = 0;
    p->printed = false;
    p->to_stderr = to_stderr && !cap->live;
    FILE *f = source_file(cap);
    if (f && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode))
        p->size = st.st_size;
}

static off_t position(const cm_capture *cap)
{
    off_t pos = source_file(cap) ? cm_capture_offset(cap) : -1;
    return pos < 0 ? 0 : pos;
}

/* 1234567 -> "1.2M" */
static char *human(double v, char *out, size_t cap)
{
    if (v >= 1e6)
        snprintf(out, cap, "%.1fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(out, cap, "%.0fk", v / 1e3);
    else
        snprintf(out, cap, "%.0f", v);
    return out;
}

char *cm_progress_text(const cm_progress *p, const cm_capture *cap, uint64_t packets, double now, char *out,
                       size_t cap_out)
{
    out[0] = 0;
    if (cap->live)
        return out;
    double el = now - p->start;
    double rate = el > 0.05 ? (double)packets / el : 0;
    char r[32];
    human(rate, r, sizeof r);
    if (p->size <= 0) {
        snprintf(out, cap_out, "%s packets/s", r);
        return out;
    }
    off_t pos = position(cap);
    double frac = (double)pos / (double)p->size;
    if (frac > 1)
        frac = 1;
    if (frac > 0.001 && el > 0.05) {
        double left = el * (1 - frac) / frac;
        snprintf(out, cap_out, "%.0f%% %s packets/s %.0fs left", frac * 100, r, left);
    } else {
        snprintf(out, cap_out, "%.0f%% %s packets/s", frac * 100, r);
    }
    return out;
}

void cm_progress_tick(cm_progress *p, const cm_capture *cap, uint64_t packets, double now)
{
    if (!p->to_stderr || now - p->last_print < 0.25)
        return;
    if (p->last_print == 0 && now - p->start < 0.5) {
        return;                       /* a short read says nothing */
    }
    char t[128];
    p->last_print = now;
    p->printed = true;
    fprintf(stderr, "\rcloudmon: %s: %s \033[K", cap->name, cm_progress_text(p, cap, packets, now, t, sizeof t));
    fflush(stderr);
}

void cm_progress_done(cm_progress *p)
{
    if (p->printed) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->printed = false;
}
