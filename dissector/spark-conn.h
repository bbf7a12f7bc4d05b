/* sparkwire Wireshark plugin: Wireshark's TCP data into libkeyring's connection layer (keyring/conn.h),
 * the same layer cloudmon uses, so both follow each connection by the same rules. */
#ifndef SPARK_CONN_H
#define SPARK_CONN_H

#include <epan/packet.h>
#include <keyring/keyring.h>
#include <keyring/conn.h>

/* What the dissector does with the layer's output. conv is what open returned. */
typedef struct spark_conn_hooks {
    const kr_callbacks *tracker;                 /* steps, messages, findings, verdicts (ud = conv) */
    void *(*open)(kr_conn *kc);                  /* a connection is followed: the dissector's record of it */
    /* before the callbacks of conv: the frame they belong to (pinfo NULL: the connection's last frame,
     * when expiry or eviction reported it while another frame was handled) */
    void (*bind)(void *conv, packet_info *pinfo);
    /* a TCP event; pinfo as for bind (the hook binds when it keeps the event) */
    void (*tcp)(void *conv, packet_info *pinfo, const kr_tcp_event *e);
    /* in-order bytes going to the tracker; tvb_offset: where they are in the frame, -1 when they are bytes
     * of an earlier frame (reordered) */
    void (*data)(void *conv, kr_dir dir, guint64 offset, const guint8 *bytes, size_t len, gint tvb_offset);
    void (*done)(void *conv);                    /* the frame was handled */
    void (*end)(void *conv);                     /* the connection ended; its tracker goes away after */
    /* the table was full at this frame (spark.max_conns): `evicted` connections without protocol data
     * ended to make room, or (untracked) the frame's new connection could not be followed */
    void (*table_full)(packet_info *pinfo, guint evicted, gboolean untracked, guint cap);
} spark_conn_hooks;

/* A new file: a new table (options from the preferences; max_conns 0: unbounded). */
void spark_conn_start(const kr_keyfile *kf, const spark_conn_hooks *hooks, gboolean heuristic, gboolean strict,
                      guint max_conns);
void spark_conn_stop(void);
/* Puts the plugin's entry for TCP into the "ip.proto" table: it notes each segment before TCP reads it. */
void spark_conn_hook_tcp(void);
/* First pass, every frame, from the postdissector (tvb: the frame's): the frame's TCP segment, if one was
 * noted, goes to the layer. */
void spark_conn_frame(tvbuff_t *tvb, packet_info *pinfo);
/* The port table or Decode As gave this frame to the dissector: its connection is Spark. */
void spark_conn_claim(packet_info *pinfo, gboolean server_is_src);
/* The sequential read is over: every connection ends. */
void spark_conn_finish(void);

#endif
