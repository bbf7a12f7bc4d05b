/* cloudmon: libpcap sources and sinks. */
#include "capture.h"
#include "decode.h"
#include "outfile.h"
#include "pcaplib.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Live capture. Without immediate mode libpcap on Linux uses a TPACKET_V3 ring of blocks that packets fill
 * back to back, each handed over when full or LIVE_TIMEOUT ms after its first packet: the kernel holds
 * tens of thousands of packets while cloudmon is busy, and the screen lags by at most that timeout.
 * Immediate mode (--immediate-mode) hands over every packet at once through a TPACKET_V2 ring whose slots
 * are each one snapshot length long: 64 MB then hold about a thousand packets. The default snapshot
 * length keeps 65,535 bytes of IP packet (the longest a frame of this protocol needs, 2 + 65,535 bytes of
 * TCP data, fits in one IP packet only up to that) plus link headers. Packets cut anyway (offloaded
 * super-segments) become gaps, and a warning says so. */
#define LIVE_TIMEOUT 50
#define LIVE_BUFFER (64 << 20)

/* libpcap for its names of link types only: NULL when it cannot be loaded */
static const char *dlt_name(int dlt)
{
    char e[256];
    return cm_pcap_load(e, sizeof e) ? cm_pcap.datalink_val_to_name(dlt) : NULL;
}

const char *cm_dlt_name(int dlt)
{
    const char *n = dlt_name(dlt);
    return n ? n : "unknown";
}

/* The default live filter: the cloud port, and what BPF cannot look into at a fixed offset, for the
 * pump to narrow in user space: IPv4 fragments (later ones carry no TCP header), IPv6 packets whose first
 * next header is an extension header, and on Ethernet any VLAN-tagged frame (one tag or several). */
static void default_filter(int dlt, unsigned port, char *out, size_t cap)
{
    snprintf(out, cap,
             "tcp port %u or (ip and ip[6:2] & 0x3fff != 0) or (ip6 and (ip6[6] == 0 or ip6[6] == 43 or "
             "ip6[6] == 44 or ip6[6] == 51 or ip6[6] == 60))%s", port, dlt == DLT_EN10MB ? " or vlan" : "");
}

static int set_filter(cm_capture *c, const char *filter, bpf_u_int32 netmask, char *err)
{
    struct bpf_program prog;
    if (!filter || !*filter)
        return 0;
    if (cm_pcap.compile(c->p, &prog, filter, 1, netmask) < 0) {
        snprintf(err, CM_ERRLEN, "filter '%s' is not valid: %s (write it in pcap-filter(7) syntax, e.g. -f 'tcp port 5683')",
                 filter, cm_pcap.geterr(c->p));
        return -1;
    }
    int rc = cm_pcap.setfilter(c->p, &prog);
    cm_pcap.freecode(&prog);
    if (rc < 0) {
        snprintf(err, CM_ERRLEN, "filter '%s' could not be installed on %s: %s", filter, c->name,
                 cm_pcap.geterr(c->p));
        return -1;
    }
    return 0;
}

static int check_link(cm_capture *c, char *err)
{
    if (!cm_linktype_supported(c->dlt)) {
        /* name the type by its number as well: libpcap has no name for some (USER0..USER15 among them) */
        char what[160];
        const char *n = dlt_name(c->dlt);
        const char *d = n ? cm_pcap.datalink_val_to_description(c->dlt) : NULL;
        if (c->dlt >= 147 && c->dlt <= 162)
            snprintf(what, sizeof what, "DLT %d (USER%d, a private type whose contents cloudmon cannot know)",
                     c->dlt, c->dlt - 147);
        else if (n && d && strcmp(n, d) != 0)
            snprintf(what, sizeof what, "DLT %d (%s, %s)", c->dlt, n, d);
        else if (n)
            snprintf(what, sizeof what, "DLT %d (%s)", c->dlt, n);
        else
            snprintf(what, sizeof what, "DLT %d (a type libpcap does not name)", c->dlt);
        snprintf(err, CM_ERRLEN,
                 "%s: link type %s is not supported; cloudmon reads Ethernet (DLT %d), Linux cooked (DLT %d, %d), "
                 "loopback (DLT %d, %d) and raw IP (DLT %d, %d, %d): capture on another interface or with -i any%s",
                 c->name, what, DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_NULL, DLT_LOOP, DLT_RAW, DLT_IPV4,
                 DLT_IPV6, c->dlt >= 147 && c->dlt <= 162
                 ? ", or if the packets are Ethernet frames give the file that type (editcap -T ether IN OUT)" : "");
        return -1;
    }
    return 0;
}

int cm_capture_open_live(cm_capture *c, const char *iface, const char *filter, unsigned port,
                         const cm_live_opts *lo, char *err)
{
    char eb[PCAP_ERRBUF_SIZE] = "";
    memset(c, 0, sizeof *c);
    g_queue_init(&c->ring);
    c->live = true;
    g_strlcpy(c->name, iface, sizeof c->name);
    char le[256];
    if (!cm_pcap_load(le, sizeof le)) {
        snprintf(err, CM_ERRLEN, "interface %s: %s", iface, le);
        return -1;
    }
    c->p = cm_pcap.create(iface, eb);
    if (!c->p) {
        snprintf(err, CM_ERRLEN, "interface %s: cannot open: %s", iface, eb);
        return -1;
    }
    cm_pcap.set_snaplen(c->p, lo->snaplen > 0 ? lo->snaplen : CM_SNAPLEN_DEFAULT);
    cm_pcap.set_promisc(c->p, lo->promisc);
    cm_pcap.set_timeout(c->p, LIVE_TIMEOUT);
    cm_pcap.set_immediate_mode(c->p, lo->immediate);
    cm_pcap.set_buffer_size(c->p, LIVE_BUFFER);
    int rc = cm_pcap.activate(c->p);
    if (rc < 0) {
        const char *why = cm_pcap.geterr(c->p);
        switch (rc) {
        case PCAP_ERROR_NO_SUCH_DEVICE:
            snprintf(err, CM_ERRLEN, "interface %s: no such interface (list them with 'ip link' or 'tcpdump -D')",
                     iface);
            break;
        case PCAP_ERROR_PERM_DENIED:
            snprintf(err, CM_ERRLEN,
                     "interface %s: no permission to capture (run as root, or give the program the right once: "
                     "setcap cap_net_raw,cap_net_admin=eip %s)",
                     iface, "$(command -v cloudmon)");
            break;
        case PCAP_ERROR_IFACE_NOT_UP:
            snprintf(err, CM_ERRLEN, "interface %s is down (bring it up: ip link set %s up)", iface, iface);
            break;
        default:
            snprintf(err, CM_ERRLEN, "interface %s: cannot capture: %s", iface,
                     why && *why ? why : cm_pcap.statustostr(rc));
            break;
        }
        cm_pcap.close(c->p);
        c->p = NULL;
        return -1;
    }
    c->dlt = cm_pcap.datalink(c->p);
    if (check_link(c, err) < 0)
        return -1;
    /* reads never block: the main loops wait in poll() and keep an eye on the clock and signals */
    if (cm_pcap.setnonblock(c->p, 1, eb) < 0) {
        snprintf(err, CM_ERRLEN, "interface %s: cannot read without blocking: %s", iface, eb);
        return -1;
    }
    bpf_u_int32 net = 0, mask = PCAP_NETMASK_UNKNOWN;
    if (cm_pcap.lookupnet(iface, &net, &mask, eb) < 0)
        mask = PCAP_NETMASK_UNKNOWN;
    char def[256];
    if (!filter)
        default_filter(c->dlt, port, def, sizeof def);
    return set_filter(c, filter ? filter : def, mask, err);
}

/* A stream that gives back the bytes read to tell the file's format, then the rest of the file: standard
 * input cannot seek back. */
typedef struct peeked {
    FILE *f;
    uint8_t head[4];
    size_t n, pos;
} peeked;

static ssize_t pk_read(void *cookie, char *buf, size_t size)
{
    peeked *k = cookie;
    size_t got = 0;
    while (k->pos < k->n && got < size)
        buf[got++] = (char)k->head[k->pos++];
    if (got < size)
        got += fread(buf + got, 1, size - got, k->f);
    return (ssize_t)got;
}

static int pk_close(void *cookie)
{
    peeked *k = cookie;
    int rc = k->f == stdin ? 0 : fclose(k->f);
    free(k);
    return rc;
}

/* A regular file is read from its start again once its magic is known (libpcap then reads it itself, and
 * pcapfile.c can read its records in place); anything else goes through a peeked stream. */
static FILE *open_peeked(const char *path, uint32_t *magic, FILE **under)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    struct stat st;
    if (f && f != stdin && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        errno = EISDIR;          /* fopen opens a directory; reading it would say "truncated" */
        return NULL;
    }
    if (f && f != stdin && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
        uint8_t head[4];
        size_t n = fread(head, 1, 4, f);
        if (fseeko(f, 0, SEEK_SET) == 0) {
            *magic = 0;
            if (n == 4)
                memcpy(magic, head, 4);
            *under = f;
            return f;
        }
        clearerr(f);
        fclose(f);
        f = fopen(path, "rb");
    }
    peeked *k = f ? calloc(1, sizeof *k) : NULL;
    if (!k) {
        if (f && f != stdin)
            fclose(f);
        return NULL;
    }
    k->f = f;
    *under = f;
    k->n = fread(k->head, 1, 4, f);
    *magic = 0;
    if (k->n == 4)
        memcpy(magic, k->head, 4);
    cookie_io_functions_t io = { .read = pk_read, .close = pk_close };
    FILE *s = fopencookie(k, "rb", io);
    if (!s)
        pk_close(k);
    return s;
}

static void start_fast(cm_capture *c, const char *filter);

static void open_error(cm_capture *c, const char *eb, char *err)
{
    const char *hint = "give a pcap or pcapng file, e.g. one written by tcpdump -w";
    if (strstr(eb, "No such file"))
        hint = "check the path";
    else if (strstr(eb, "ermission"))
        hint = "make it readable, or run as a user who can read it";
    else if (strstr(eb, "truncated") || strstr(eb, "unknown file format") || strstr(eb, "bad dump file") ||
             strstr(eb, "damaged"))
        hint = "the file is damaged or not a capture; a capture still being written must be complete";
    snprintf(err, CM_ERRLEN, "%s: cannot read the capture: %s (%s)", c->name, eb, hint);
}

static int open_pcapng(cm_capture *c, FILE *s, const char *filter, char *err)
{
    c->ng = malloc(sizeof *c->ng);
    if (!c->ng) {
        fclose(s);
        open_error(c, "out of memory", err);
        return -1;
    }
    if (cm_pcapng_open(c->ng, s) < 0) {
        open_error(c, c->ng->err, err);
        return -1;
    }
    c->dlt = c->ng->n_ifs ? c->ng->ifs[0].dlt : DLT_EN10MB;
    c->ng->new_ifs = 0;
    if (check_link(c, err) < 0)
        return -1;
    if (filter && *filter) {
        c->filter = g_strdup(filter);
        char le[256];
        if (!cm_pcap_load(le, sizeof le)) {
            snprintf(err, CM_ERRLEN, "filter '%s': %s", filter, le);
            return -1;
        }
        pcap_t *dead = cm_pcap.open_dead(c->dlt, CM_SNAPLEN_MAX);
        struct bpf_program prog;
        int rc = dead ? cm_pcap.compile(dead, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) : -1;
        if (rc < 0)
            snprintf(err, CM_ERRLEN, "filter '%s' is not valid: %s (write it in pcap-filter(7) syntax, e.g. -f 'tcp port 5683')",
                     filter, dead ? cm_pcap.geterr(dead) : "out of memory");
        else
            cm_pcap.freecode(&prog);
        if (dead)
            cm_pcap.close(dead);
        return rc < 0 ? -1 : 0;
    }
    return 0;
}

/* The link types of a plain pcap file's header that cloudmon reads, as libpcap names them (DLT_ values;
 * LINKTYPE_RAW is DLT_RAW); -1 for any other value (FCS bits included): libpcap reads those. */
static int plain_dlt(uint32_t linktype)
{
    switch (linktype) {
    case 0: return DLT_NULL;
    case 1: return DLT_EN10MB;
    case 101: return DLT_RAW;
    case 108: return DLT_LOOP;
    case 113: return DLT_LINUX_SLL;
    case 228: case 229: case 276: return (int)linktype;
    default: return -1;
    }
}

/* A regular pcap file the in-place reader takes whole (pcap 2.4, a link type above, a snapshot length
 * libpcap keeps as it is) is read without libpcap, which is loaded only if a record needs it. */
static bool open_plain(cm_capture *c)
{
    uint8_t h[24];
    if (pread(fileno(c->file), h, sizeof h, 0) != (ssize_t)sizeof h)
        return false;
    uint32_t magic;
    memcpy(&magic, h, 4);
    bool swapped = magic == 0xd4c3b2a1u || magic == 0x4d3cb2a1u;
    uint32_t snap = cm_rd32(h + 16, swapped);
    int dlt = plain_dlt(cm_rd32(h + 20, swapped));
    if (dlt < 0 || snap == 0 || snap > CM_SNAPLEN_MAX ||
        !cm_pcapfile_open(&c->fast, fileno(c->file), 0, dlt, (int)snap))
        return false;
    c->dlt = dlt;
    c->fast_on = true;
    c->own_file = c->file != stdin;
    return true;
}

/* The in-place reader of a file libpcap has not opened stopped at a record it does not take: libpcap
 * opens the file now and reads on from there. */
static int open_late(cm_capture *c)
{
    char eb[PCAP_ERRBUF_SIZE] = "", le[256];
    if (!cm_pcap_load(le, sizeof le)) {
        snprintf(c->read_err, sizeof c->read_err, "%.150s", le);
        return -1;
    }
    if (fseeko(c->file, 0, SEEK_SET) != 0 ||
        !(c->p = cm_pcap.fopen_offline_with_tstamp_precision(c->file, PCAP_TSTAMP_PRECISION_MICRO, eb))) {
        snprintf(c->read_err, sizeof c->read_err, "%.150s", eb[0] ? eb : strerror(errno));
        return -1;
    }
    c->own_file = false;         /* pcap_close closes it */
    return 0;
}

int cm_capture_open_file(cm_capture *c, const char *path, const char *filter, char *err)
{
    char eb[PCAP_ERRBUF_SIZE] = "";
    memset(c, 0, sizeof *c);
    g_queue_init(&c->ring);
    g_strlcpy(c->name, strcmp(path, "-") == 0 ? "standard input" : path, sizeof c->name);
    uint32_t magic;
    FILE *s = open_peeked(path, &magic, &c->file);
    if (!s) {
        open_error(c, strerror(errno), err);
        return -1;
    }
    if (magic == CM_PCAPNG_MAGIC)
        return open_pcapng(c, s, filter, err);
    if (s == c->file && !(filter && *filter) && open_plain(c))
        return 0;
    char le[256];
    if (!cm_pcap_load(le, sizeof le)) {
        if (s != stdin)
            fclose(s);
        snprintf(err, CM_ERRLEN, "%s: %s", c->name, le);
        return -1;
    }
    c->p = cm_pcap.fopen_offline_with_tstamp_precision(s, PCAP_TSTAMP_PRECISION_MICRO, eb);
    if (!c->p) {
        fclose(s);
        open_error(c, eb, err);
        return -1;
    }
    c->dlt = cm_pcap.datalink(c->p);
    if (check_link(c, err) < 0 || set_filter(c, filter, PCAP_NETMASK_UNKNOWN, err) < 0)
        return -1;
    if (s == c->file)
        start_fast(c, filter);
    return 0;
}

/* Records of a plain pcap file are read in place (pcapfile.c) until one is not plain; libpcap reads on
 * from there. The user's filter is applied as libpcap applies it. */
static void start_fast(cm_capture *c, const char *filter)
{
    if (!cm_pcapfile_open(&c->fast, fileno(c->file), 0, c->dlt, cm_pcap.snapshot(c->p)))
        return;
    if (filter && *filter) {
        if (cm_pcap.compile(c->p, &c->fast_prog, filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
            cm_pcapfile_close(&c->fast);
            return;
        }
        c->fast_filter = true;
    }
    c->fast_on = true;
}

static void stop_fast(cm_capture *c)
{
    if (!c->fast_on)
        return;
    c->fast_on = false;
    cm_pcapfile_close(&c->fast);
    if (c->fast_filter)
        cm_pcap.freecode(&c->fast_prog);
    c->fast_filter = false;
}

/* The next record from the fast reader; 0 when libpcap takes over (its stream put at the record where the
 * reader stopped), -1 when that stream cannot be put there. */
static int fast_next(cm_capture *c, struct pcap_pkthdr **h, const u_char **data)
{
    off_t resume;
    while (cm_pcapfile_next(&c->fast, h, data, &resume) == 1)
        if (!c->fast_filter || cm_pcap.offline_filter(&c->fast_prog, *h, *data))
            return 1;
    stop_fast(c);
    if (!c->p) {
        struct stat st;
        if (fstat(fileno(c->file), &st) == 0 && resume == st.st_size) {
            c->plain_end = true;   /* every record read: the end, as libpcap would find it */
            return PCAP_ERROR_BREAK;
        }
        if (open_late(c) < 0)
            return -1;
    }
    if (fseeko(c->file, resume, SEEK_SET) != 0) {
        snprintf(c->read_err, sizeof c->read_err, "cannot seek to offset %lld: %s", (long long)resume,
                 strerror(errno));
        return -1;
    }
    return 0;
}

off_t cm_capture_offset(const cm_capture *c)
{
    if (c->fast_on)
        return cm_pcapfile_offset(&c->fast);
    return c->file ? ftello(c->file) : -1;
}

/* The user's filter on a pcapng packet, compiled once per link type. */
static bool ng_filter_pass(cm_capture *c, const struct pcap_pkthdr *h, const u_char *data)
{
    int i;
    for (i = 0; i < c->n_progs && c->progs[i].dlt != c->dlt; i++)
        ;
    if (i == c->n_progs) {
        if (i == (int)(sizeof c->progs / sizeof c->progs[0]))
            return false;
        c->progs[i].dlt = c->dlt;
        pcap_t *dead = cm_pcap.open_dead(c->dlt, CM_SNAPLEN_MAX);
        c->progs[i].ok = dead && cm_pcap.compile(dead, &c->progs[i].prog, c->filter, 1, PCAP_NETMASK_UNKNOWN) == 0;
        if (!c->progs[i].ok)
            snprintf(c->warn, sizeof c->warn, "%s: the filter cannot be applied to link type %s; its packets "
                     "are skipped", c->name, cm_dlt_name(c->dlt));
        if (dead)
            cm_pcap.close(dead);
        c->n_progs++;
    }
    return c->progs[i].ok && cm_pcap.offline_filter(&c->progs[i].prog, h, data);
}

/* New interfaces of a link type cloudmon cannot read: said once each. */
static void ng_check_new_ifs(cm_capture *c)
{
    cm_pcapng_rd *rd = c->ng;
    for (unsigned i = rd->n_ifs - rd->new_ifs; i < rd->n_ifs; i++)
        if (!cm_linktype_supported(rd->ifs[i].dlt))
            snprintf(c->warn, sizeof c->warn, "%s: interface %u has link type %s (DLT %d), which cloudmon does "
                     "not read; its packets are counted as other", c->name, i, cm_dlt_name(rd->ifs[i].dlt),
                     rd->ifs[i].dlt);
    rd->new_ifs = 0;
}

int cm_capture_start_thread(cm_capture *c, size_t max_bytes, char *err)
{
    c->thr = cm_capthread_start(c->p, max_bytes, err, CM_ERRLEN);
    return c->thr ? 0 : -1;
}

int cm_capture_poll_fd(cm_capture *c)
{
    if (c->thr)
        return cm_capthread_fd(c->thr);
    return c->live ? cm_pcap.get_selectable_fd(c->p) : -1;
}

void cm_capture_stop(cm_capture *c)
{
    cm_capthread_stop(c->thr);
}

int cm_capture_next_more(cm_capture *c, struct pcap_pkthdr **h, const u_char **data)
{
    if (c->thr)
        return cm_capthread_next(c->thr, h, data);
    if (c->fast_on) {
        int rc = fast_next(c, h, data);
        if (rc != 0)
            return rc;
    }
    if (c->read_err[0])
        return -1;
    if (c->plain_end)
        return PCAP_ERROR_BREAK;
    if (!c->ng)
        return cm_pcap.next_ex(c->p, h, data);
    for (;;) {
        unsigned ifidx;
        int rc = cm_pcapng_next(c->ng, &c->ng_hdr, data, &ifidx);
        if (c->ng->new_ifs)
            ng_check_new_ifs(c);
        if (rc != 1)
            return rc;
        c->dlt = c->ng->ifs[ifidx].dlt;
        *h = &c->ng_hdr;
        if (!c->filter || ng_filter_pass(c, *h, *data))
            return 1;
    }
}

const char *cm_capture_error(cm_capture *c)
{
    if (c->thr)
        return cm_capthread_error(c->thr);
    if (c->read_err[0])
        return c->read_err;
    return c->ng ? c->ng->err : c->p ? cm_pcap.geterr(c->p) : "read error";
}

int cm_capture_list(FILE *out, char *err)
{
    char eb[PCAP_ERRBUF_SIZE] = "";
    pcap_if_t *all = NULL;
    if (!cm_pcap_load(err, CM_ERRLEN))
        return -1;
    if (cm_pcap.findalldevs(&all, eb) < 0) {
        snprintf(err, CM_ERRLEN, "cannot list the interfaces: %s", eb);
        return -1;
    }
    int i = 0;
    for (pcap_if_t *d = all; d; d = d->next) {
        fprintf(out, "%d.%s", ++i, d->name);
        if (d->description)
            fprintf(out, " (%s)", d->description);
        fprintf(out, " [%s%s%s]\n", d->flags & PCAP_IF_UP ? "up" : "down",
                d->flags & PCAP_IF_RUNNING ? ", running" : "", d->flags & PCAP_IF_LOOPBACK ? ", loopback" : "");
    }
    if (!i)
        fprintf(out, "no interface to capture on (capturing needs root or the capabilities cap_net_raw,cap_net_admin)\n");
    cm_pcap.freealldevs(all);
    return 0;
}

int cm_capture_drop_privileges(const char *user, char *err)
{
    if (getuid() != 0 && geteuid() != 0)
        return 0;
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        snprintf(err, CM_ERRLEN, "-Z %s: no such user (name an existing account, e.g. -Z nobody)", user);
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        snprintf(err, CM_ERRLEN, "-Z %s: cannot switch to this user: %s", user, strerror(errno));
        return -1;
    }
    if (pw->pw_uid != 0 && setuid(0) == 0) {
        snprintf(err, CM_ERRLEN, "-Z %s: root privileges could be regained after the switch; refusing to go on", user);
        return -1;
    }
    return 0;
}

static int sink_open(cm_sink *w, const char *path, const char *what, int dlt, char *err)
{
    memset(w, 0, sizeof *w);
    w->dlt = dlt;
    w->pcapng = cm_outfile_is_pcapng(path);
    w->f = cm_outfile_open(path, what, false, err, CM_ERRLEN);
    if (!w->f)
        return -1;
    if (w->pcapng && cm_pcapng_wr_open(&w->ng, w->f) < 0) {
        snprintf(err, CM_ERRLEN, "%s %s: cannot write: %s (choose a writable path)", what, path, strerror(errno));
        cm_pcapng_wr_close(&w->ng);
        w->f = NULL;
        return -1;
    }
    return 0;
}

/* A classic file's header, with the link type of its first packet. Returns false when it failed. */
static bool sink_start(cm_sink *w, int dlt)
{
    if (w->pd || !w->f)
        return w->pd != NULL;
    w->dlt = dlt;
    w->dead = cm_pcap.open_dead_with_tstamp_precision(dlt, CM_SNAPLEN_MAX, PCAP_TSTAMP_PRECISION_MICRO);
    w->pd = w->dead ? cm_pcap.dump_fopen(w->dead, w->f) : NULL;
    if (!w->pd)
        fclose(w->f);
    w->f = NULL;                     /* the dumper owns it */
    return w->pd != NULL;
}

static void sink_write(cm_sink *w, int dlt, const struct pcap_pkthdr *h, const u_char *data, const char *note)
{
    if (w->pcapng) {
        cm_pcapng_wr_packet(&w->ng, dlt, h, data, note);
        return;
    }
    if (!sink_start(w, dlt))
        return;
    if (dlt != w->dlt) {
        w->other_link++;
        return;
    }
    cm_pcap.dump((u_char *)w->pd, h, data);
}

/* Returns -1 with err set when the file is not complete. */
static int sink_close(cm_sink *w, const char *what, int dlt, char *err)
{
    int rc = 0;
    if (w->pcapng && w->ng.f) {
        rc = cm_pcapng_wr_close(&w->ng);
        w->f = NULL;
    } else if (!sink_start(w, dlt)) {  /* no packet: still a valid empty capture */
        rc = -1;
    }
    if (w->pd) {
        rc |= cm_pcap.dump_flush(w->pd);
        cm_pcap.dump_close(w->pd);
    }
    if (w->dead)
        cm_pcap.close(w->dead);
    if (rc < 0)
        snprintf(err, CM_ERRLEN, "%s: the capture file could not be written whole (disk full?)", what);
    else if (w->other_link)
        snprintf(err, CM_ERRLEN, "%s: %llu packets of other link types than %s were not written (a pcap file "
                 "holds one link type; name the file .pcapng to keep them all)", what,
                 (unsigned long long)w->other_link, cm_dlt_name(w->dlt));
    memset(w, 0, sizeof *w);
    return rc < 0 || err[0] ? -1 : 0;
}

int cm_capture_open_dump(cm_capture *c, const char *path, char *err)
{
    char le[256];
    if (!cm_pcap_load(le, sizeof le)) {
        snprintf(err, CM_ERRLEN, "-w %s: %s", path, le);
        return -1;
    }
    if (sink_open(&c->w, path, "-w", -1, err) < 0)
        return -1;
    c->writing = true;
    c->note = g_string_new(NULL);
    if (!c->w.pcapng && !c->ng)      /* one link type: the header goes out now */
        sink_start(&c->w, c->dlt);
    return 0;
}

void cm_capture_note(cm_capture *c, const char *text)
{
    if (!c->writing || !c->w.pcapng)
        return;
    if (c->note->len)
        g_string_append(c->note, "; ");
    g_string_append(c->note, text);
}

void cm_capture_keep(cm_capture *c, size_t max_bytes)
{
    c->ring_max = max_bytes;
}

typedef struct kept {
    struct pcap_pkthdr h;
    int dlt;
    u_char data[];
} kept;

void cm_capture_record_more(cm_capture *c, const struct pcap_pkthdr *h, const u_char *data)
{
    if (c->writing) {
        sink_write(&c->w, c->dlt, h, data, c->note->len ? c->note->str : NULL);
        g_string_truncate(c->note, 0);
        if (c->live && c->w.pd)
            cm_pcap.dump_flush(c->w.pd);
        else if (c->live && c->w.pcapng)
            fflush(c->w.ng.f);
    }
    if (!c->ring_max)
        return;
    kept *k = malloc(sizeof *k + h->caplen);
    if (!k)
        return;
    k->h = *h;
    k->dlt = c->dlt;
    memcpy(k->data, data, h->caplen);
    g_queue_push_tail(&c->ring, k);
    c->ring_bytes += sizeof *k + h->caplen;
    while (c->ring_bytes > c->ring_max && c->ring.length > 1) {
        kept *o = g_queue_pop_head(&c->ring);
        c->ring_bytes -= sizeof *o + o->h.caplen;
        c->ring_dropped++;
        free(o);
    }
}

long cm_capture_save(cm_capture *c, const char *path, char *err)
{
    cm_sink w;
    char le[256];
    if (!cm_pcap_load(le, sizeof le)) {
        snprintf(err, CM_ERRLEN, "save %s: %s", path, le);
        return -1;
    }
    if (sink_open(&w, path, "save", -1, err) < 0)
        return -1;
    long n = 0;
    for (GList *l = c->ring.head; l; l = l->next) {
        kept *k = l->data;
        sink_write(&w, k->dlt, &k->h, k->data, NULL);
        n++;
    }
    err[0] = 0;
    return sink_close(&w, path, c->dlt, err) < 0 ? -1 : n;
}

int cm_capture_close_dump(cm_capture *c, char *err)
{
    err[0] = 0;
    if (!c->writing)
        return 0;
    c->writing = false;
    g_string_free(c->note, TRUE);
    c->note = NULL;
    return sink_close(&c->w, "-w", c->dlt, err);
}

/* While the capture thread runs only it uses the handle: its last reading of the kernel's count. */
uint64_t cm_capture_drops(cm_capture *c)
{
    struct pcap_stat ps;
    uint64_t queue = cm_capture_queue_drops(c);
    if (c->thr && !cm_capthread_stopped(c->thr))
        return cm_capthread_kernel_drops(c->thr) + queue;
    if (!c->live || !c->p || cm_pcap.stats(c->p, &ps) < 0)
        return queue;
    return (uint64_t)ps.ps_drop + ps.ps_ifdrop + queue;
}

uint64_t cm_capture_queue_drops(cm_capture *c)
{
    return c->thr ? cm_capthread_queue_drops(c->thr) : 0;
}

void cm_capture_close(cm_capture *c)
{
    char err[CM_ERRLEN];
    cm_capture_close_dump(c, err);
    kept *k;
    while ((k = g_queue_pop_head(&c->ring)))
        free(k);
    c->ring_bytes = 0;
    cm_capthread_free(c->thr);
    c->thr = NULL;
    stop_fast(c);
    if (c->p)
        cm_pcap.close(c->p);
    c->p = NULL;
    if (c->own_file)
        fclose(c->file);
    c->own_file = false;
    if (c->ng) {
        cm_pcapng_close(c->ng);
        free(c->ng);
        c->ng = NULL;
    }
    for (int i = 0; i < c->n_progs; i++)
        if (c->progs[i].ok)
            cm_pcap.freecode(&c->progs[i].prog);
    c->n_progs = 0;
    g_free(c->filter);
    c->filter = NULL;
}
