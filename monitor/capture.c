/* cloudmon: libpcap sources and sinks. */
#include "capture.h"
#include "decode.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Live capture. Immediate mode keeps the screen live; libpcap on Linux then uses a TPACKET_V2 ring whose
 * slots are each one snapshot length long, so the snapshot length and the buffer together set how many
 * packets the kernel can hold while cloudmon is busy: 65,535 bytes of IP packet (the longest a frame of this
 * protocol needs, 2 + 65,535 bytes of TCP data, fits in one IP packet only up to that) plus link headers,
 * and 64 MB, give about a thousand slots (262,144 and 8 MB gave about 30). Packets cut anyway (offloaded
 * super-segments) become gaps, and a warning says so. */
#define SNAPLEN (65535 + 64)
#define LIVE_BUFFER (64 << 20)

const char *cm_dlt_name(int dlt)
{
    const char *n = pcap_datalink_val_to_name(dlt);
    return n ? n : "unknown";
}

static int set_filter(cm_capture *c, const char *filter, unsigned port, bpf_u_int32 netmask, char *err)
{
    struct bpf_program prog;
    char def[96];
    if (!filter) {
        /* the cloud port, also inside 802.1Q tags on Ethernet */
        if (c->dlt == DLT_EN10MB)
            snprintf(def, sizeof def, "tcp port %u or (vlan and tcp port %u)", port, port);
        else
            snprintf(def, sizeof def, "tcp port %u", port);
        filter = def;
    }
    if (!*filter)
        return 0;
    if (pcap_compile(c->p, &prog, filter, 1, netmask) < 0) {
        snprintf(err, CM_ERRLEN, "filter '%s' is not valid: %s (write it in pcap-filter(7) syntax, e.g. -f 'tcp port 5683')",
                 filter, pcap_geterr(c->p));
        return -1;
    }
    int rc = pcap_setfilter(c->p, &prog);
    pcap_freecode(&prog);
    if (rc < 0) {
        snprintf(err, CM_ERRLEN, "filter '%s' could not be installed on %s: %s", filter, c->name,
                 pcap_geterr(c->p));
        return -1;
    }
    return 0;
}

static int check_link(cm_capture *c, char *err)
{
    c->dlt = pcap_datalink(c->p);
    if (!cm_linktype_supported(c->dlt)) {
        /* name the type by its number as well: libpcap has no name for some (USER0..USER15 among them) */
        char what[160];
        const char *n = pcap_datalink_val_to_name(c->dlt);
        const char *d = pcap_datalink_val_to_description(c->dlt);
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

int cm_capture_open_live(cm_capture *c, const char *iface, const char *filter, unsigned port, char *err)
{
    char eb[PCAP_ERRBUF_SIZE] = "";
    memset(c, 0, sizeof *c);
    g_queue_init(&c->ring);
    c->live = true;
    g_strlcpy(c->name, iface, sizeof c->name);
    c->p = pcap_create(iface, eb);
    if (!c->p) {
        snprintf(err, CM_ERRLEN, "interface %s: cannot open: %s", iface, eb);
        return -1;
    }
    pcap_set_snaplen(c->p, SNAPLEN);
    pcap_set_promisc(c->p, 1);
    pcap_set_timeout(c->p, 100);
    pcap_set_immediate_mode(c->p, 1);
    pcap_set_buffer_size(c->p, LIVE_BUFFER);
    int rc = pcap_activate(c->p);
    if (rc < 0) {
        const char *why = pcap_geterr(c->p);
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
            snprintf(err, CM_ERRLEN, "interface %s: cannot capture: %s", iface, why && *why ? why : pcap_statustostr(rc));
            break;
        }
        pcap_close(c->p);
        c->p = NULL;
        return -1;
    }
    if (check_link(c, err) < 0)
        return -1;
    /* reads never block: the main loops wait in poll() and keep an eye on the clock and signals */
    if (pcap_setnonblock(c->p, 1, eb) < 0) {
        snprintf(err, CM_ERRLEN, "interface %s: cannot read without blocking: %s", iface, eb);
        return -1;
    }
    bpf_u_int32 net = 0, mask = PCAP_NETMASK_UNKNOWN;
    if (pcap_lookupnet(iface, &net, &mask, eb) < 0)
        mask = PCAP_NETMASK_UNKNOWN;
    return set_filter(c, filter, port, mask, err);
}

int cm_capture_open_file(cm_capture *c, const char *path, const char *filter, unsigned port, char *err)
{
    char eb[PCAP_ERRBUF_SIZE] = "";
    memset(c, 0, sizeof *c);
    g_queue_init(&c->ring);
    g_strlcpy(c->name, strcmp(path, "-") == 0 ? "standard input" : path, sizeof c->name);
    c->p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_MICRO, eb);
    if (!c->p) {
        const char *hint = "give a pcap or pcapng file, e.g. one written by tcpdump -w";
        if (strstr(eb, "No such file"))
            hint = "check the path";
        else if (strstr(eb, "ermission"))
            hint = "make it readable, or run as a user who can read it";
        else if (strstr(eb, "truncated") || strstr(eb, "unknown file format") || strstr(eb, "bad dump file"))
            hint = "the file is damaged or not a capture; a capture still being written must be complete";
        snprintf(err, CM_ERRLEN, "%s: cannot read the capture: %s (%s)", c->name, eb, hint);
        return -1;
    }
    if (check_link(c, err) < 0)
        return -1;
    return set_filter(c, filter, port, PCAP_NETMASK_UNKNOWN, err);
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

int cm_capture_open_dump(cm_capture *c, const char *path, char *err)
{
    c->w = pcap_dump_open(c->p, path);
    if (!c->w) {
        snprintf(err, CM_ERRLEN, "-w %s: cannot write the capture: %s (choose a writable path)", path,
                 pcap_geterr(c->p));
        return -1;
    }
    return 0;
}

void cm_capture_keep(cm_capture *c, size_t max_bytes)
{
    c->ring_max = max_bytes;
}

typedef struct kept {
    struct pcap_pkthdr h;
    u_char data[];
} kept;

void cm_capture_record(cm_capture *c, const struct pcap_pkthdr *h, const u_char *data)
{
    if (c->w) {
        pcap_dump((u_char *)c->w, h, data);
        if (c->live)
            pcap_dump_flush(c->w);
    }
    if (!c->ring_max)
        return;
    kept *k = malloc(sizeof *k + h->caplen);
    if (!k)
        return;
    k->h = *h;
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
    pcap_dumper_t *d = pcap_dump_open(c->p, path);
    if (!d) {
        snprintf(err, CM_ERRLEN, "%s: cannot write: %s", path, pcap_geterr(c->p));
        return -1;
    }
    long n = 0;
    for (GList *l = c->ring.head; l; l = l->next) {
        kept *k = l->data;
        pcap_dump((u_char *)d, &k->h, k->data);
        n++;
    }
    pcap_dump_close(d);
    return n;
}

uint64_t cm_capture_drops(cm_capture *c)
{
    struct pcap_stat ps;
    if (!c->live || !c->p || pcap_stats(c->p, &ps) < 0)
        return 0;
    return (uint64_t)ps.ps_drop + ps.ps_ifdrop;
}

void cm_capture_close(cm_capture *c)
{
    if (c->w)
        pcap_dump_close(c->w);
    c->w = NULL;
    kept *k;
    while ((k = g_queue_pop_head(&c->ring)))
        free(k);
    c->ring_bytes = 0;
    if (c->p)
        pcap_close(c->p);
    c->p = NULL;
}
