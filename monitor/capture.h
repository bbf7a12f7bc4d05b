/* cloudmon: the packet source (libpcap: an interface or a capture file), the -w copy, the in-memory
 * copy the screen saves with 'w', and the privilege drop. Every failure is one line for the user. */
#ifndef CLOUDMON_CAPTURE_H
#define CLOUDMON_CAPTURE_H

#include <stdbool.h>
#include <pcap/pcap.h>
#include <glib.h>

typedef struct cm_capture {
    pcap_t *p;
    int dlt;
    bool live;
    char name[256];          /* interface or file name as given */
    pcap_dumper_t *w;        /* -w FILE */
    GQueue ring;             /* packets kept for a save from the screen */
    size_t ring_bytes, ring_max;
    uint64_t ring_dropped;   /* packets pushed out of the ring (oldest first) */
} cm_capture;

#define CM_ERRLEN 1024

/* Live capture on iface with a BPF filter (immediate mode); filter NULL means the cloud port (TCP port,
 * also inside VLAN tags on Ethernet), "" means every packet. Returns 0 or -1 with err set. */
int cm_capture_open_live(cm_capture *c, const char *iface, const char *filter, unsigned port, char *err);
/* A pcap or pcapng file ("-" reads standard input), filtered the same way. */
int cm_capture_open_file(cm_capture *c, const char *path, const char *filter, unsigned port, char *err);
/* Switches to user's uid/gid and groups when running as root; a no-op otherwise. */
int cm_capture_drop_privileges(const char *user, char *err);
/* Starts writing every captured packet to path (-w). */
int cm_capture_open_dump(cm_capture *c, const char *path, char *err);
/* Keeps up to max_bytes of packets in memory for cm_capture_save (0 keeps none). */
void cm_capture_keep(cm_capture *c, size_t max_bytes);
/* Copies one packet to the -w file and the ring. */
void cm_capture_record(cm_capture *c, const struct pcap_pkthdr *h, const u_char *data);
/* Writes the packets in the ring to path. Returns the count or -1 with err set. */
long cm_capture_save(cm_capture *c, const char *path, char *err);
/* Packets the kernel or the interface dropped (live captures; 0 for files). */
uint64_t cm_capture_drops(cm_capture *c);
/* Link type name for messages. */
const char *cm_dlt_name(int dlt);
void cm_capture_close(cm_capture *c);

#endif
