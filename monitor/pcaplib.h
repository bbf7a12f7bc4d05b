/* cloudmon: libpcap, loaded when a capture needs it (a live interface, a filter, a -w or export file, a
 * pcap file the in-place reader does not take), not at every start: with the D-Bus, systemd and gcrypt
 * libraries it pulls in, loading it costs about a millisecond, which a plain pcap file read with -r does
 * not need. Every call goes through cm_pcap, filled by cm_pcap_load. */
#ifndef CLOUDMON_PCAPLIB_H
#define CLOUDMON_PCAPLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <pcap/pcap.h>

/* The functions cloudmon calls: X(return type, name without "pcap_", parameters). */
#define CM_PCAP_FUNCS(X)                                                                               \
    X(int, activate, (pcap_t *))                                                                       \
    X(void, close, (pcap_t *))                                                                         \
    X(int, compile, (pcap_t *, struct bpf_program *, const char *, int, bpf_u_int32))                  \
    X(pcap_t *, create, (const char *, char *))                                                        \
    X(int, datalink, (pcap_t *))                                                                       \
    X(const char *, datalink_val_to_description, (int))                                                \
    X(const char *, datalink_val_to_name, (int))                                                       \
    X(int, dispatch, (pcap_t *, int, pcap_handler, u_char *))                                          \
    X(void, dump, (u_char *, const struct pcap_pkthdr *, const u_char *))                              \
    X(void, dump_close, (pcap_dumper_t *))                                                             \
    X(int, dump_flush, (pcap_dumper_t *))                                                              \
    X(pcap_dumper_t *, dump_fopen, (pcap_t *, FILE *))                                                 \
    X(int, findalldevs, (pcap_if_t **, char *))                                                        \
    X(pcap_t *, fopen_offline_with_tstamp_precision, (FILE *, u_int, char *))                          \
    X(void, freealldevs, (pcap_if_t *))                                                                \
    X(void, freecode, (struct bpf_program *))                                                          \
    X(int, get_selectable_fd, (pcap_t *))                                                              \
    X(char *, geterr, (pcap_t *))                                                                      \
    X(int, lookupnet, (const char *, bpf_u_int32 *, bpf_u_int32 *, char *))                            \
    X(int, next_ex, (pcap_t *, struct pcap_pkthdr **, const u_char **))                                \
    X(int, offline_filter, (const struct bpf_program *, const struct pcap_pkthdr *, const u_char *))   \
    X(pcap_t *, open_dead, (int, int))                                                                 \
    X(pcap_t *, open_dead_with_tstamp_precision, (int, int, u_int))                                    \
    X(int, set_buffer_size, (pcap_t *, int))                                                           \
    X(int, set_immediate_mode, (pcap_t *, int))                                                        \
    X(int, set_promisc, (pcap_t *, int))                                                               \
    X(int, set_snaplen, (pcap_t *, int))                                                               \
    X(int, set_timeout, (pcap_t *, int))                                                               \
    X(int, setfilter, (pcap_t *, struct bpf_program *))                                                \
    X(int, setnonblock, (pcap_t *, int, char *))                                                       \
    X(int, snapshot, (pcap_t *))                                                                       \
    X(int, stats, (pcap_t *, struct pcap_stat *))                                                      \
    X(const char *, statustostr, (int))

typedef struct cm_pcap_lib {
#define CM_PCAP_MEMBER(ret, name, params) ret (*name) params;
    CM_PCAP_FUNCS(CM_PCAP_MEMBER)
#undef CM_PCAP_MEMBER
} cm_pcap_lib;

extern cm_pcap_lib cm_pcap;

/* Loads libpcap once (later calls return at once). False, with one line in err naming the library and
 * how to install it, when it cannot be loaded. */
bool cm_pcap_load(char *err, size_t errcap);

#endif
