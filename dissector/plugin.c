/* sparkwire Wireshark plugin: the entry points Wireshark looks up when it loads spark.so.
 * Everything version dependent about plugin loading stays in this file. */
#include <epan/packet.h>
#include <epan/proto.h>
#include <ws_version.h>
#include <ws_symbol_export.h>

#include "spark.h"
#include "spark-config.h"

#ifndef SPARKWIRE_VERSION
#define SPARKWIRE_VERSION "0.0.0"
#endif

#if SPARK_HAVE_PLUGIN_DESCRIBE
#include <wsutil/plugins.h>
#endif

WS_DLL_PUBLIC_DEF const char plugin_version[] = SPARKWIRE_VERSION;
WS_DLL_PUBLIC_DEF const int plugin_want_major = WIRESHARK_VERSION_MAJOR;
WS_DLL_PUBLIC_DEF const int plugin_want_minor = WIRESHARK_VERSION_MINOR;

WS_DLL_PUBLIC void plugin_register(void);
#if SPARK_HAVE_PLUGIN_DESCRIBE
WS_DLL_PUBLIC uint32_t plugin_describe(void);

uint32_t plugin_describe(void)
{
    return WS_PLUGIN_DESC_DISSECTOR;
}
#endif

void plugin_register(void)
{
    static proto_plugin spark_plugin;

    spark_plugin.register_protoinfo = proto_register_spark;
    spark_plugin.register_handoff = proto_reg_handoff_spark;
    proto_register_plugin(&spark_plugin);
}
