/* sparkwire firmware: the firmware update on the device side (docs/protocol.md 4.11): normal updates chunk by
 * chunk, and fast OTA, where chunks carry their index, the device asks for the missing ones after the
 * cloud's UpdateDone, and the end differs by generation: G2 sends its own UpdateDone once it has every
 * chunk, G3 waits for a second UpdateDone from the cloud. */
#include <string.h>

#include "coap.h"
#include "crc32.h"
#include "device_int.h"

#define SW_OTA_MAX_CHUNKS (8 * sizeof ((sw_device *)0)->ota_have)
#define SW_MISSED_MAX 50   /* indexes per ChunkMissed (G2) */

static uint32_t be(const uint8_t *p, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static size_t chunk_count(const sw_device *d)
{
    if (d->ota_chunk_size == 0)
        return 0;
    size_t n = (d->ota_file_size + d->ota_chunk_size - 1) / d->ota_chunk_size;
    return n < SW_OTA_MAX_CHUNKS ? n : SW_OTA_MAX_CHUNKS;
}

static bool have_chunk(const sw_device *d, size_t i)
{
    return d->ota_have[i / 8] >> (i % 8) & 1;
}

/* Fills idx with up to max missing chunk indexes (big-endian pairs); returns how many. */
static size_t missing(const sw_device *d, uint8_t *idx, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < chunk_count(d) && n < max; i++)
        if (!have_chunk(d, i)) {
            idx[2 * n] = (uint8_t)(i >> 8);
            idx[2 * n + 1] = (uint8_t)i;
            n++;
        }
    return n;
}

sw_status sw_ota_begin(sw_device *d, const sw_coap_msg *m)
{
    sw_status st = sw_dev_empty_ack(d, m->id);
    if (st != SW_RUNNING)
        return st;
    d->ota_active = true;
    d->ota_chunks = 0;
    d->ota_bytes = 0;
    d->ota_offset = 0;
    d->ota_last_chunk = sw_dev_now(d);
    d->ota_fast = false;
    d->ota_resending = false;
    memset(d->ota_have, 0, sizeof d->ota_have);
    if (m->payload && m->payload_len >= 12) {
        d->ota_chunk_size = (uint16_t)be(m->payload + 1, 2);
        d->ota_file_size = be(m->payload + 3, 4);
        d->ota_fast = (m->payload[0] & 1) && d->cfg.generation >= 2 && d->cfg.fast_ota && d->ota_chunk_size &&
                      chunk_count(d) > 0 && d->ota_file_size <= (uint32_t)SW_OTA_MAX_CHUNKS * d->ota_chunk_size;
    }
    sw_dev_note(d, SW_NOTE_UPDATE_BEGIN, d->ota_fast ? "fast" : "normal", (long)d->ota_file_size);
    uint8_t ready = d->ota_fast ? 1 : 0;
    return sw_dev_respond(d, SW_COAP_NON, SW_COAP_CHANGED, sw_dev_next_id(d), m, &ready,
                          d->cfg.generation == 1 ? 0 : 1);
}

static sw_status applied(sw_device *d)
{
    d->ota_active = false;
    sw_dev_note(d, SW_NOTE_UPDATE_DONE, NULL, (long)d->ota_bytes);
    return SW_UPDATE_APPLIED;
}

/* A fast-OTA chunk: stored at its index. G2 confirms it (not while re-receiving missed chunks at the end),
 * G3 confirms nothing. */
static sw_status fast_chunk(sw_device *d, const sw_coap_msg *m, const sw_coap_opt *index, bool ok)
{
    size_t i = be(index->value, index->len < 2 ? index->len : 2);
    ok = ok && i < chunk_count(d);
    sw_status st = SW_RUNNING;
    if (ok && !have_chunk(d, i)) {
        uint32_t off = (uint32_t)i * d->ota_chunk_size;
        size_t n = m->payload_len;
        if (off + n > d->ota_file_size)
            n = d->ota_file_size - off;   /* the last chunk is padded to the full size */
        if (d->cfg.ota_write)
            d->cfg.ota_write(d->cfg.user, off, m->payload, n);
        d->ota_have[i / 8] |= (uint8_t)(1u << (i % 8));
        d->ota_bytes += (uint32_t)n;
        d->ota_chunks++;
    }
    sw_dev_note(d, SW_NOTE_CHUNK, ok ? "ok" : "bad-crc", (long)i);
    if (d->cfg.generation == 2) {
        st = sw_dev_empty_ack(d, m->id);
        if (st == SW_RUNNING && !(d->ota_resending && ok))
            st = sw_dev_respond(d, SW_COAP_NON, ok ? SW_COAP_CHANGED : SW_COAP_BAD_REQUEST, sw_dev_next_id(d), m,
                                NULL, 0);
    }
    uint8_t idx[2];
    if (st != SW_RUNNING || !d->ota_resending)
        return st;
    if (missing(d, idx, 1) != 0)
        return st;
    if (d->cfg.generation >= 3) {
        sw_dev_note(d, SW_NOTE_IGNORED, "every missed chunk is in; waiting for the cloud's second update done", 0);
        return SW_RUNNING;
    }
    sw_coap_builder b;   /* G2: the device ends the update itself */
    sw_coap_begin(&b, d->msg, sizeof d->msg, SW_COAP_NON, SW_COAP_PUT, sw_dev_next_id(d), NULL, 0);
    sw_coap_add_option(&b, SW_OPT_URI_PATH, "u", 1);
    st = sw_dev_send(d, d->msg, sw_coap_end(&b));
    return st == SW_RUNNING ? applied(d) : st;
}

sw_status sw_ota_chunk(sw_device *d, const sw_coap_msg *m)
{
    const sw_coap_opt *crc = sw_coap_find(m, SW_OPT_URI_QUERY, 0);
    const sw_coap_opt *index = sw_coap_find(m, SW_OPT_URI_QUERY, 1);
    bool ok = d->ota_active && crc && crc->len == 4 && m->payload &&
              sw_crc32(m->payload, m->payload_len) == be(crc->value, 4);
    d->ota_last_chunk = sw_dev_now(d);
    d->ota_received_any = true;
    if (d->ota_fast && index && index->len >= 1)
        return fast_chunk(d, m, index, ok);
    sw_status st = sw_dev_empty_ack(d, m->id);
    if (st != SW_RUNNING)
        return st;
    long at = (long)d->ota_chunks;
    if (ok) {
        if (d->cfg.ota_write)
            d->cfg.ota_write(d->cfg.user, d->ota_offset, m->payload, m->payload_len);
        d->ota_offset += (uint32_t)m->payload_len;
        d->ota_bytes += (uint32_t)m->payload_len;
        d->ota_chunks++;
    }
    sw_dev_note(d, SW_NOTE_CHUNK, ok ? "ok" : "bad-crc", at);
    st = sw_dev_respond(d, SW_COAP_NON, ok ? SW_COAP_CHANGED : SW_COAP_BAD_REQUEST, sw_dev_next_id(d), m, NULL, 0);
    if (d->cfg.ota_stall_after && ++d->ota_seen >= d->cfg.ota_stall_after)
        d->ota_silent = true;
    return st;
}

/* The cloud's UpdateDone: complete, or (fast OTA) refused with 4.00 and the missing chunks asked for. */
sw_status sw_ota_done(sw_device *d, const sw_coap_msg *m)
{
    uint8_t idx[2 * SW_MISSED_MAX];
    size_t n = d->ota_fast ? missing(d, idx, SW_MISSED_MAX) : 0;
    if (n == 0) {
        sw_status st = sw_dev_respond(d, SW_COAP_ACK, SW_COAP_CHANGED, m->id, m, NULL, 0);
        return st == SW_RUNNING ? applied(d) : st;
    }
    sw_status st = sw_dev_respond(d, SW_COAP_ACK, SW_COAP_BAD_REQUEST, m->id, m, NULL, 0);
    if (st != SW_RUNNING)
        return st;
    d->ota_resending = true;
    sw_coap_builder b;
    sw_coap_begin(&b, d->msg, sizeof d->msg, SW_COAP_CON, SW_COAP_GET, sw_dev_next_id(d), NULL, 0);
    sw_coap_add_option(&b, SW_OPT_URI_PATH, "c", 1);
    sw_coap_add_payload(&b, idx, 2 * n);
    sw_dev_note(d, SW_NOTE_CHUNK, "missed, asked for again", (long)(idx[0] << 8 | idx[1]));
    return sw_dev_send(d, d->msg, sw_coap_end(&b));
}

/* Normal update: no chunk for chunk_timeout_ms, so ask for the next one (ChunkMissed). */
sw_status sw_ota_timer(sw_device *d, uint32_t t)
{
    if (!d->ota_active || d->ota_fast || t - d->ota_last_chunk < d->cfg.chunk_timeout_ms)
        return SW_RUNNING;
    uint8_t idx[2] = {(uint8_t)(d->ota_chunks >> 8), (uint8_t)d->ota_chunks};
    sw_coap_builder b;
    sw_coap_begin(&b, d->msg, sizeof d->msg, SW_COAP_CON, SW_COAP_GET, sw_dev_next_id(d), NULL, 0);
    sw_coap_add_option(&b, SW_OPT_URI_PATH, "c", 1);
    sw_coap_add_payload(&b, idx, 2);
    d->ota_last_chunk = t;
    return sw_dev_send(d, d->msg, sw_coap_end(&b));
}
