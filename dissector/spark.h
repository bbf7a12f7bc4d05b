/* sparkwire Wireshark plugin: what the registration glue (plugin.c) needs from the dissector. */
#ifndef SPARK_DISSECTOR_H
#define SPARK_DISSECTOR_H

void proto_register_spark(void);
void proto_reg_handoff_spark(void);

#endif
