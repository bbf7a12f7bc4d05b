/* cloudmon: --export-decrypted. Every fully decrypted CoAP message becomes a UDP datagram between the
 * connection's addresses (cloud side on port 5683) in a raw-IP pcap, so any CoAP dissector reads it. */
#ifndef CLOUDMON_EXPORT_H
#define CLOUDMON_EXPORT_H

#include <pcap/pcap.h>
#include "mon.h"

typedef struct cm_export {
    pcap_t *dead;
    pcap_dumper_t *dump;
    uint64_t written;
} cm_export;

/* Opens path for writing. Returns 0, or -1 with a message in err. */
int cm_export_open(cm_export *x, const char *path, char *err, size_t errcap);
void cm_export_close(cm_export *x);
cm_observer cm_export_observer(cm_export *x);

/* Builds IPv4/IPv6 + UDP around payload into out (cap bytes). Returns the packet length or 0. */
size_t cm_export_build(const cm_addr *src, const cm_addr *dst, const uint8_t *payload, size_t len,
                       uint8_t *out, size_t cap);

#endif
