/* sparkwire Wireshark plugin: Follow the decrypted Spark stream (tshark -z follow,spark,ascii|hex|yaml,N;
 * in the GUI under Analyze > Follow where it lists registered followers). Each direction's plaintext,
 * one record per decrypted frame, on the TCP stream index N. */
#include "spark-int.h"

#include <epan/conversation.h>
#include <epan/follow.h>
#include <epan/tap.h>
#include <epan/to_str.h>
#include <epan/dissectors/packet-tcp.h>

static int spark_follow_tap = -1;
static guint32 first_pass_reached;   /* the last frame the first pass handed to the plugin (file scope) */

/* The TCP conversation of the frame's own addresses and ports, as TCP files it; never made here. */
static conversation_t *tcp_conversation(packet_info *pinfo)
{
    if (pinfo->ptype != PT_TCP)
        return NULL;
    return find_conversation(pinfo->num, &pinfo->src, &pinfo->dst, CONVERSATION_TCP, pinfo->srcport,
                             pinfo->destport, 0);
}

/* First pass: marks the TCP conversation of a connection the plugin follows, on the frame where it starts
 * following it (once a connection, so the first pass pays nothing per frame). */
void spark_follow_mark(packet_info *pinfo)
{
    conversation_t *c = tcp_conversation(pinfo);
    if (c && !conversation_get_proto_data(c, proto_spark))
        conversation_add_proto_data(c, proto_spark, GUINT_TO_POINTER(1));
}

/* First pass: the plugin has handled this TCP frame. */
void spark_follow_seen(packet_info *pinfo)
{
    first_pass_reached = MAX(first_pass_reached, pinfo->num);
}

static void spark_follow_init(void)
{
    first_pass_reached = 0;
}

/* The filter for the Spark connection of the packet the user is on (Analyze > Follow > Spark Stream and
 * sharkd ask with the selected packet, dissected again after the first pass): its TCP stream when the
 * first pass followed that TCP connection (every frame of it: the handshake before a heuristic found the
 * protocol, bare acknowledgements), else NULL: other TCP connections, a connection the full table did not
 * follow, UDP, a frame the first pass has not reached. The stream is TCP's own, never made anew here. */
static gchar *spark_follow_conv_filter(epan_dissect_t *edt _U_, packet_info *pinfo, guint *stream,
                                       guint *sub_stream _U_)
{
    const struct tcp_analysis *tcpd = NULL;
    int proto_tcp = proto_get_id_by_filter_name("tcp");
    conversation_t *c;

    if (pinfo->num > first_pass_reached || proto_tcp < 0)
        return NULL;
    c = tcp_conversation(pinfo);
    if (c && conversation_get_proto_data(c, proto_spark))
        tcpd = (const struct tcp_analysis *)conversation_get_proto_data(c, proto_tcp);
    if (!tcpd)
        return NULL;
    *stream = tcpd->stream;
    return g_strdup_printf("tcp.stream eq %u", tcpd->stream);
}

static gchar *spark_follow_index_filter(guint stream, guint sub_stream _U_)
{
    return g_strdup_printf("tcp.stream eq %u", stream);
}

static gchar *spark_follow_address_filter(address *src, address *dst, int src_port, int dst_port)
{
    const char *ip = src->type == AT_IPv6 ? "ipv6" : "ip";
    char *s = address_to_str(NULL, src), *d = address_to_str(NULL, dst);
    gchar *f = g_strdup_printf("((%s.src eq %s and tcp.srcport eq %d) and (%s.dst eq %s and tcp.dstport eq %d))"
                               " or ((%s.src eq %s and tcp.srcport eq %d) and (%s.dst eq %s and tcp.dstport eq %d))",
                               ip, s, src_port, ip, d, dst_port, ip, d, dst_port, ip, s, src_port);
    wmem_free(NULL, s);
    wmem_free(NULL, d);
    return f;
}

static gchar *spark_follow_port_to_display(wmem_allocator_t *allocator, guint port)
{
    return wmem_strdup_printf(allocator, "%u", port);
}

/* A decrypted frame's plaintext for the follower (only when one listens). */
void spark_follow_queue(packet_info *pinfo, tvbuff_t *plaintext)
{
    if (have_tap_listener(spark_follow_tap))
        tap_queue_packet(spark_follow_tap, pinfo, plaintext);
}

void spark_register_follow(void)
{
    spark_follow_tap = register_tap("spark_follow");
    register_init_routine(spark_follow_init);
#if SPARK_FOLLOW_HAS_STREAM_COUNT
    register_follow_stream(proto_spark, "spark_follow", spark_follow_conv_filter, spark_follow_index_filter,
                           spark_follow_address_filter, spark_follow_port_to_display, follow_tvb_tap_listener,
                           get_tcp_stream_count, NULL);
#else
    register_follow_stream(proto_spark, "spark_follow", spark_follow_conv_filter, spark_follow_index_filter,
                           spark_follow_address_filter, spark_follow_port_to_display, follow_tvb_tap_listener);
#endif
}
