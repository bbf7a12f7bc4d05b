/* sparkwire firmware: the messages the device builds (docs/protocol.md 4.4, 4.5, 4.8). */
#include <string.h>

#include "coap.h"
#include "device_int.h"

int sw_build_hello(const sw_device_config *cfg, uint16_t id, uint8_t *out, size_t cap)
{
    uint8_t payload[8] = {(uint8_t)(cfg->product_id >> 8), (uint8_t)cfg->product_id,
                          (uint8_t)(cfg->product_version >> 8), (uint8_t)cfg->product_version,
                          0, cfg->hello_flags,
                          (uint8_t)(cfg->platform_id >> 8), (uint8_t)cfg->platform_id};
    sw_coap_builder b;
    sw_coap_begin(&b, out, cap, SW_COAP_NON, SW_COAP_POST, id, NULL, 0);
    sw_coap_add_option(&b, SW_OPT_URI_PATH, "h", 1);
    sw_coap_add_payload(&b, payload, cfg->generation == 1 ? 6 : 8);
    return sw_coap_end(&b);
}

int sw_build_event(uint16_t id, const char *name, const uint8_t *data, size_t len, uint32_t ttl,
                   bool is_private, uint8_t *out, size_t cap)
{
    size_t nlen = name ? sw_dev_strlen(name, SW_MAX_EVENT_NAME) : 0;
    if (nlen == 0 || nlen > SW_MAX_EVENT_NAME || len > SW_MAX_EVENT_DATA || ttl > 0xFFFFFF)
        return -1;
    sw_coap_builder b;
    sw_coap_begin(&b, out, cap, SW_COAP_NON, SW_COAP_POST, id, NULL, 0);
    sw_coap_add_option(&b, SW_OPT_URI_PATH, is_private ? "E" : "e", 1);
    sw_coap_add_option(&b, SW_OPT_URI_PATH, name, nlen);
    if (ttl != 60) {
        uint8_t age[3] = {(uint8_t)(ttl >> 16), (uint8_t)(ttl >> 8), (uint8_t)ttl};
        sw_coap_add_option(&b, SW_OPT_MAX_AGE, age, 3);
    }
    sw_coap_add_payload(&b, data, len);
    return sw_coap_end(&b);
}

typedef struct jbuf {
    char *p;
    size_t cap, len;
    bool failed;
} jbuf;

static void jput(jbuf *j, const char *s, size_t n)
{
    if (j->failed || n > j->cap - j->len) {
        j->failed = true;
        return;
    }
    memcpy(j->p + j->len, s, n);
    j->len += n;
}

static void jstr(jbuf *j, const char *s)
{
    jput(j, s, sw_dev_strlen(s, SW_MAX_FRAME));
}

static void jnum(jbuf *j, unsigned long v)
{
    char t[12];
    size_t n = 0;
    do {
        t[sizeof t - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof t);
    jput(j, t + sizeof t - n, n);
}

/* The application part: functions and typed variables. */
static void describe_application(const sw_device *d, jbuf *j)
{
    jstr(j, "\"f\":[");
    for (size_t i = 0; i < d->nfunctions; i++) {
        jstr(j, i ? ",\"" : "\"");
        jstr(j, d->functions[i].name);
        jstr(j, "\"");
    }
    jstr(j, "],\"v\":{");
    for (size_t i = 0; i < d->nvariables; i++) {
        char t[4] = {':', (char)('0' + d->variables[i].type), 0, 0};
        jstr(j, i ? ",\"" : "\"");
        jstr(j, d->variables[i].name);
        jstr(j, "\"");
        jstr(j, t);
    }
    jstr(j, "}");
}

/* The system part: platform id and the firmware modules (bootloader, system, user), each with size,
 * location, validity, function, index, version and dependencies (docs/protocol.md 4.5). */
static void describe_system(const sw_device *d, jbuf *j)
{
    unsigned long sys = d->cfg.generation >= 3 ? 300 : 110;
    jstr(j, "\"p\":");
    jnum(j, d->cfg.platform_id);
    jstr(j, ",\"m\":[{\"s\":16384,\"l\":\"m\",\"vc\":30,\"vv\":30,\"f\":\"b\",\"n\":\"0\",\"v\":11,\"d\":[]},"
            "{\"s\":262144,\"l\":\"m\",\"vc\":30,\"vv\":30,\"f\":\"s\",\"n\":\"1\",\"v\":");
    jnum(j, sys);
    jstr(j, ",\"d\":[{\"f\":\"b\",\"n\":\"0\",\"v\":11}]},"
            "{\"s\":131072,\"l\":\"m\",\"vc\":30,\"vv\":30,\"f\":\"u\",\"n\":\"1\",\"v\":4,\"d\":[{\"f\":\"s\","
            "\"n\":\"1\",\"v\":");
    jnum(j, sys);
    jstr(j, "}]}]");
}

int sw_build_describe(const sw_device *d, uint16_t id, const uint8_t *token, uint8_t tkl, uint8_t flags,
                      uint8_t *out, size_t cap)
{
    char json[SW_MAX_FRAME];
    jbuf j = {json, sizeof json, 0, false};
    if (d->cfg.generation == 1)
        flags = SW_DESCRIBE_APPLICATION;   /* the first Core firmware knows no system part */
    jstr(&j, "{");
    if (flags & SW_DESCRIBE_APPLICATION)
        describe_application(d, &j);
    if (flags & SW_DESCRIBE_SYSTEM) {
        if (flags & SW_DESCRIBE_APPLICATION)
            jstr(&j, ",");
        describe_system(d, &j);
    }
    jstr(&j, "}");
    if (j.failed)
        return -1;
    sw_coap_builder b;
    sw_coap_begin(&b, out, cap, SW_COAP_ACK, SW_COAP_CONTENT, id, token, tkl);
    sw_coap_add_payload(&b, json, j.len);
    return sw_coap_end(&b);
}
