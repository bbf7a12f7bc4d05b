/* sparkwire libkeyring: the connection layer. The only TCP logic of the project: every frontend (cloudmon,
 * the Wireshark plugin, the golden-file harness, the generator's checks) hands it what each packet says
 * and gets back the tracker's steps, messages, findings and verdicts plus the TCP events of the ladder.
 *
 * It owns:
 * - connection identity (addresses and ports of both ends, one entry for both directions) and which side
 *   is the device: the sender of the SYN (without ACK) is the device; without a SYN, the side on the cloud
 *   port is the cloud; on other ports a connection is followed only when its SYN was seen and the first
 *   bytes of the accepting side look like a nonce (kr_conn_nonce_like, the one heuristic);
 * - the two byte streams: the next expected byte is ISN+1 when the SYN was seen; retransmitted and
 *   overlapping bytes are handed on once, and every later copy of them goes to kr_tracker_copy, where
 *   copies that differ are candidates until their meaning decides, and every acknowledgement goes to
 *   kr_tracker_acked (a copy seen after it is not what the receiver read); segments ahead of the next
 *   byte wait (bounded) until the hole
 *   fills, the peer acknowledges past it, it waits too long, or the stream ends, and then the hole becomes
 *   a gap; bytes a snap length cut are a gap; an IP length that claims more bytes than a frame the capture
 *   did not cut is not believed; a segment whose checksum is known to be bad is taken all the same
 *   (offload makes sent packets look bad), but a differing copy that checks wins over it;
 * - SYN, SYN-ACK, FIN, refused (a SYN answered by an RST that acknowledges it, before any SYN-ACK) and
 *   RST: an RST counts only when its sequence number lies in the receiver's window from the next byte
 *   the receiver expects (its last acknowledgement; the window scaled as both SYNs' window scale options
 *   say, or taken as at least 64 KiB when a SYN or its options were not read); one outside is reported
 *   as ignored. An accepted RST ends the connection only when
 *   nothing new follows: if either side goes on sending new bytes (an RFC 5961 receiver keeps a connection
 *   whose RST is not exactly the next byte), the RST is reported as ignored and the connection goes on;
 * - the table: bounded; when full, a new connection first replaces an ended one, then one that was never
 *   decided to be this protocol, then a half-open or silent one; a connection that carried protocol data is
 *   never evicted for a new one (the new one is then not followed, counted in stats.untracked).
 *
 * All output is by callbacks, called synchronously from inside kr_conn_packet (or kr_conn_expire /
 * kr_conn_finish), so a frontend ties each output to the packet it is handling. Pointers passed to
 * callbacks are valid only during the callback.
 */
#ifndef KEYRING_CONN_H
#define KEYRING_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "keyfile.h"
#include "tracker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TCP flag bits as in the header. */
#define KR_TCP_FIN 0x01
#define KR_TCP_SYN 0x02
#define KR_TCP_RST 0x04
#define KR_TCP_PSH 0x08
#define KR_TCP_ACK 0x10

typedef enum kr_checksum {
    KR_CSUM_UNKNOWN = 0,     /* not verified (offloaded, or the frontend does not check) */
    KR_CSUM_GOOD,
    KR_CSUM_BAD              /* taken all the same; a differing copy that checks wins over it */
} kr_checksum;

typedef struct kr_endpoint {
    uint8_t family;          /* 4 or 6 */
    uint8_t ip[16];          /* IPv4 in the first 4 bytes */
    uint16_t port;
} kr_endpoint;

/* What one TCP segment says. */
typedef struct kr_packet {
    kr_endpoint src, dst;
    uint32_t seq, ack;
    uint8_t flags;           /* KR_TCP_* */
    uint32_t window;         /* the advertised window as in the header (unscaled) */
    const uint8_t *payload;  /* the captured payload bytes */
    size_t captured_len;
    size_t wire_len;         /* payload length the IP header claims (>= captured_len) */
    bool cut;                /* the capture cut this frame (snap length): bytes beyond captured_len were on
                                the wire. When false, a wire_len beyond captured_len is a bogus IP length. */
    kr_checksum checksum;    /* kr_tcp_checksum, where the whole segment is at hand */
    bool options_known;      /* the frontend read this SYN's TCP options (wscale is meaningful) */
    int8_t wscale;           /* SYN, SYN-ACK: the window scale option's shift (kr_tcp_wscale), -1 none */
    double time;
} kr_packet;

/* TCP events for the ladder. */
typedef enum kr_tcp_kind {
    KR_TCP_EV_SYN = 0,       /* "SYN": the device connects */
    KR_TCP_EV_SYNACK,        /* "SYN-ACK": the cloud accepts */
    KR_TCP_EV_JOINED,        /* "joined": the capture joined after the start (no SYN) */
    KR_TCP_EV_FIN,           /* "FIN": one side closed (after all its bytes) */
    KR_TCP_EV_RST,           /* "RST": an RST that ends the connection (unless data follows) */
    KR_TCP_EV_RST_IGNORED,   /* "RST ignored": out of window, not exact, or survived */
    KR_TCP_EV_REFUSED,       /* "refused": the SYN was answered by an RST */
    KR_TCP_EV_GAP,           /* "gap": bytes missing from the capture in one direction */
    KR_TCP_EV_BOGUS_LENGTH,  /* "bogus length": the IP length claims bytes the frame does not hold */
    KR_TCP_EV_RETRANSMITTED  /* "retransmitted": bytes of the segment seen before, not handed on again */
} kr_tcp_kind;

const char *kr_tcp_kind_str(kr_tcp_kind k);

typedef struct kr_tcp_event {
    kr_tcp_kind kind;
    kr_dir dir;              /* the sender */
    double time;
    uint64_t nbytes;         /* gap, bogus length, retransmitted: bytes concerned */
    char text[160];          /* one line: "the device connects", "RST 5000 bytes outside the window: ignored" */
} kr_tcp_event;

typedef struct kr_conn kr_conn;
typedef struct kr_conn_table kr_conn_table;

typedef struct kr_conn_callbacks {
    /* a connection is followed from now on (before any other callback of it) */
    void (*open)(void *ud, kr_conn *c);
    void (*step)(void *ud, kr_conn *c, const kr_step *s);
    void (*message)(void *ud, kr_conn *c, const kr_message *m);
    void (*finding)(void *ud, kr_conn *c, const kr_finding *f);
    void (*verdict)(void *ud, kr_conn *c, const kr_verdict *v);
    void (*tcp)(void *ud, kr_conn *c, const kr_tcp_event *e);
    /* in-order bytes about to be given to the tracker: offset in the direction's stream (gaps included);
     * from_packet is true when they are bytes of the packet being handled (bytes then points into its
     * payload) */
    void (*data)(void *ud, kr_conn *c, kr_dir dir, uint64_t offset, const uint8_t *bytes, size_t len,
                 bool from_packet);
    /* the connection ended (the tracker is finished, its verdict final); the kr_conn is freed after */
    void (*end)(void *ud, kr_conn *c, const char *reason);
} kr_conn_callbacks;

typedef struct kr_conn_options {
    uint16_t cloud_port;     /* 5683; 0: only the heuristic and kr_conn_claim decide */
    bool heuristic;          /* follow other ports whose first cloud bytes look like a nonce */
    bool strict;             /* the nonce must look random (kr_conn_nonce_like); false: any 40 bytes */
    size_t max_conns;        /* 0: unbounded */
    size_t max_waiting;      /* bytes waiting out of order per direction (default 256 KiB, at most 1 GiB) */
    double hole_wait;        /* seconds a hole waits for a retransmission (default 5) */
    double idle;             /* kr_conn_expire: seconds without a packet (default 600) */
} kr_conn_options;

void kr_conn_options_default(kr_conn_options *o);

typedef struct kr_conn_stats {
    uint64_t packets;        /* handed to kr_conn_packet */
    uint64_t conns;          /* connections followed */
    uint64_t evicted, expired;
    uint64_t untracked;      /* packets that would have started a connection, not followed because the
                                table held only sessions with protocol data */
    uint64_t late;           /* packets of connections that had ended */
    uint64_t rst_ignored;
    uint64_t bogus_length;
    uint64_t bad_checksum;
} kr_conn_stats;

/* kf must outlive the table; cb may have NULL members. */
kr_conn_table *kr_conn_table_new(const kr_keyfile *kf, const kr_conn_options *o, const kr_conn_callbacks *cb,
                                 void *ud);
/* Ends every live connection (kr_conn_finish with "table freed") and frees everything. */
void kr_conn_table_free(kr_conn_table *tab);

/* One TCP segment, in capture order. Returns the connection it went to (NULL when it belongs to none that
 * is followed). */
kr_conn *kr_conn_packet(kr_conn_table *tab, const kr_packet *p);
/* A hint, changing nothing: a segment between these ends comes soon (a frontend that learns a segment's
 * ends some work before it hands the segment on), so the lines of its connection are asked for now and
 * arrive while the frontend does that work. */
void kr_conn_prefetch(const kr_conn_table *tab, const kr_endpoint *src, const kr_endpoint *dst);
/* The frontend knows this packet's connection is the protocol's (a port preference, Decode As): follow it,
 * with the cloud on the side of `cloud`. Returns the connection (NULL when the table cannot take it). */
kr_conn *kr_conn_claim(kr_conn_table *tab, const kr_packet *p, const kr_endpoint *cloud);
/* Ends connections silent since before now - idle. Returns how many. */
size_t kr_conn_expire(kr_conn_table *tab, double now);
/* Ends one connection now (a frontend's own limit): its tracker finishes, the end callback runs; its later
 * packets stay its own (not followed) until a new SYN reuses its ports. */
void kr_conn_end(kr_conn_table *tab, kr_conn *c, double now, const char *reason);
/* No more packets (capture over): every live connection ends with this reason, in the order of their first
 * packets (then their numbers), as connections that go idle together do. */
void kr_conn_finish(kr_conn_table *tab, double now, const char *reason);

const kr_conn_stats *kr_conn_table_stats(const kr_conn_table *tab);
/* The line a frontend shows on a packet whose new connection the full table could not follow (every
 * connection in it carried protocol data), and on one whose new connection ended n others to make room. */
void kr_conn_untracked_text(size_t max_conns, char *out, size_t outlen);
void kr_conn_evicted_text(uint64_t n, size_t max_conns, char *out, size_t outlen);
size_t kr_conn_live_count(const kr_conn_table *tab);
/* Bytes held by the table (connections, waiting segments and trackers). */
size_t kr_conn_table_memory(const kr_conn_table *tab);

/* ---- one connection ---------------------------------------------------------------------------- */

unsigned kr_conn_id(const kr_conn *c);               /* 1, 2, ... in the order they were followed */
const kr_endpoint *kr_conn_device(const kr_conn *c);
const kr_endpoint *kr_conn_cloud(const kr_conn *c);
bool kr_conn_saw_syn(const kr_conn *c);
/* True while the packet being handled is this connection's (false in callbacks that expiry or eviction
 * caused while another connection's packet was handled). */
bool kr_conn_in_packet(const kr_conn *c);
kr_tracker *kr_conn_tracker(const kr_conn *c);
void kr_conn_set_user(kr_conn *c, void *user);
void *kr_conn_user(const kr_conn *c);
/* Direction of a packet of this connection. */
kr_dir kr_conn_dir(const kr_conn *c, const kr_packet *p);
/* In the end callback: the frontend keeps the tracker (for its history); it must free it. */
kr_tracker *kr_conn_take_tracker(kr_conn *c);

/* ---- a TCP header, read the same way by every frontend ---------------------------------------- */

/* The fixed fields of a TCP header and its length in bytes (the data offset). */
typedef struct kr_tcp_hdr {
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t window;
    int8_t wscale;           /* a SYN's window scale option (kr_tcp_wscale), -1 none or not captured */
    size_t len;
} kr_tcp_hdr;
/* Reads the TCP header at h, of which avail bytes were captured, of a segment of wire bytes (header and
 * payload): false when it is no header TCP accepts (fewer than 20 bytes captured, a data offset below 20
 * bytes or past the segment). The window scale is read only when the whole header was captured. */
bool kr_tcp_header(const uint8_t *h, size_t avail, size_t wire, kr_tcp_hdr *out);

/* The checksum of a whole TCP segment (header and payload, len bytes as on the wire) under the
 * pseudo-header of src and dst: KR_CSUM_GOOD, KR_CSUM_BAD, or KR_CSUM_UNKNOWN when the field holds what
 * checksum offload leaves (0, or the bare pseudo-header sum of a packet captured on its way out). Call it
 * only when every byte of the segment was captured and the IP length is believed. */
kr_checksum kr_tcp_checksum(const kr_endpoint *src, const kr_endpoint *dst, const uint8_t *seg, size_t len);
/* The window scale option in a TCP header of hdr_len bytes (options after the first 20): its shift
 * (above 14 taken as 14, RFC 7323), or -1 when the header has none. */
int kr_tcp_wscale(const uint8_t *hdr, size_t hdr_len);
/* The Internet checksum (RFC 1071): the running sum over len bytes added to sum, and its folded
 * complement. */
uint32_t kr_inet_sum(const uint8_t *p, size_t len, uint32_t sum);
uint16_t kr_inet_fold(uint32_t sum);

/* The one nonce rule: why the first n bytes from the cloud cannot open a handshake (all text, or 40 bytes
 * with fewer than 20 different values, which a random nonce practically never has), in why; NULL when
 * they can. The tracker uses it for the cloud port, the heuristic for other ports. */
const char *kr_nonce_unfit(const uint8_t *b, size_t n, char *why, size_t whylen);
/* The heuristic for other ports: exactly 40 bytes that kr_nonce_unfit accepts. */
bool kr_conn_nonce_like(const uint8_t *p, size_t len);

#ifdef __cplusplus
}
#endif
#endif
