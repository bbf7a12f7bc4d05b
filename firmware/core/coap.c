/* sparkwire firmware: CoAP parse and build, every read bounds-checked. */
#include "coap.h"

#include <string.h>

/* Reads an extended option delta or length nibble; returns -1 on truncation or nibble 15. */
static int read_ext(unsigned nibble, const uint8_t *buf, size_t len, size_t *pos, uint32_t *out)
{
    if (nibble < 13) {
        *out = nibble;
    } else if (nibble == 13) {
        if (*pos + 1 > len)
            return -1;
        *out = 13u + buf[*pos];
        *pos += 1;
    } else if (nibble == 14) {
        if (*pos + 2 > len)
            return -1;
        *out = 269u + ((uint32_t)buf[*pos] << 8) + buf[*pos + 1];
        *pos += 2;
    } else {
        return -1;
    }
    return 0;
}

int sw_coap_parse(const uint8_t *buf, size_t len, sw_coap_msg *m)
{
    memset(m, 0, sizeof *m);
    if (buf == NULL || len < 4)
        return -1;
    if ((buf[0] >> 6) != 1)
        return -1;
    m->type = (buf[0] >> 4) & 3;
    m->tkl = buf[0] & 0x0F;
    m->code = buf[1];
    m->id = (uint16_t)((buf[2] << 8) | buf[3]);
    if (m->tkl > 8 || 4u + m->tkl > len)
        return -1;
    memcpy(m->token, buf + 4, m->tkl);
    size_t pos = 4u + m->tkl;
    uint32_t number = 0;
    while (pos < len) {
        uint8_t h = buf[pos++];
        if (h == 0xFF) {
            if (pos >= len)
                return -1;          /* marker with no payload */
            m->payload = buf + pos;
            m->payload_len = len - pos;
            return 0;
        }
        uint32_t delta, olen;
        if (read_ext(h >> 4, buf, len, &pos, &delta) < 0 || read_ext(h & 0x0F, buf, len, &pos, &olen) < 0)
            return -1;
        number += delta;
        if (number > 0xFFFF || olen > len - pos || m->nopts >= SW_COAP_MAX_OPTS)
            return -1;
        m->opts[m->nopts].number = (uint16_t)number;
        m->opts[m->nopts].len = (uint16_t)olen;
        m->opts[m->nopts].value = buf + pos;
        m->nopts++;
        pos += olen;
    }
    return 0;
}

const sw_coap_opt *sw_coap_find(const sw_coap_msg *m, uint16_t number, size_t n)
{
    for (size_t i = 0; i < m->nopts; i++) {
        if (m->opts[i].number == number) {
            if (n == 0)
                return &m->opts[i];
            n--;
        }
    }
    return NULL;
}

char sw_coap_path_letter(const sw_coap_msg *m)
{
    const sw_coap_opt *o = sw_coap_find(m, SW_OPT_URI_PATH, 0);
    if (o == NULL || o->len == 0)
        return 0;
    return (char)o->value[0];
}

static void put(sw_coap_builder *b, const void *data, size_t n)
{
    if (b->failed)
        return;
    if (n > b->cap - b->len) {
        b->failed = true;
        return;
    }
    if (n)
        memcpy(b->buf + b->len, data, n);
    b->len += n;
}

static void put_byte(sw_coap_builder *b, uint8_t v)
{
    put(b, &v, 1);
}

void sw_coap_begin(sw_coap_builder *b, uint8_t *buf, size_t cap, uint8_t type, uint8_t code, uint16_t id,
                   const uint8_t *token, uint8_t tkl)
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->last_opt = 0;
    b->failed = tkl > 8 || type > 3;
    uint8_t h[4] = {(uint8_t)(0x40 | (type << 4) | (tkl & 0x0F)), code, (uint8_t)(id >> 8), (uint8_t)id};
    put(b, h, 4);
    put(b, token, tkl);
}

static uint8_t nibble(size_t v)
{
    return v < 13 ? (uint8_t)v : v < 269 ? 13 : 14;
}

static void put_ext(sw_coap_builder *b, size_t v)
{
    if (v >= 269) {
        put_byte(b, (uint8_t)((v - 269) >> 8));
        put_byte(b, (uint8_t)(v - 269));
    } else if (v >= 13) {
        put_byte(b, (uint8_t)(v - 13));
    }
}

void sw_coap_add_option(sw_coap_builder *b, uint16_t number, const void *value, size_t len)
{
    if (number < b->last_opt || len > 65535u + 269u) {
        b->failed = true;
        return;
    }
    size_t delta = (size_t)number - b->last_opt;
    b->last_opt = number;
    put_byte(b, (uint8_t)(nibble(delta) << 4 | nibble(len)));
    put_ext(b, delta);
    put_ext(b, len);
    put(b, value, len);
}

void sw_coap_add_payload(sw_coap_builder *b, const void *data, size_t len)
{
    if (len == 0)
        return;
    put_byte(b, 0xFF);
    put(b, data, len);
}

int sw_coap_end(const sw_coap_builder *b)
{
    return b->failed ? -1 : (int)b->len;
}
