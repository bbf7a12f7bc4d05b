/* sparkcloud: the firmware update (docs/protocol.md 4.11). Normal: one chunk at a time, each answered by
 * ChunkReceived. Fast (--ota-fast): a 12-byte UpdateBegin offers it; when the device accepts, every chunk
 * goes out with its index without waiting, then UpdateDone; a device that refuses it (4.00) asks for the
 * missing chunks (ChunkMissed), gets them again, and G2 ends with its own UpdateDone. Like the original
 * cloud, this one never sends a second UpdateDone. */
#include <string.h>

#include "cloud.h"
#include "crc32.h"

static size_t chunk_count(void)
{
    return (sc_opt.ota_len + SC_CHUNK - 1) / SC_CHUNK;
}

/* Chunk i, zero padded to the full size, and its CRC-32 (wrong once when --ota-bad-crc names it). */
static uint32_t chunk_data(size_t i, uint8_t data[SC_CHUNK], bool *bad)
{
    static bool corrupted;
    size_t n = sc_opt.ota_len - i * SC_CHUNK < SC_CHUNK ? sc_opt.ota_len - i * SC_CHUNK : SC_CHUNK;
    memset(data, 0, SC_CHUNK);
    memcpy(data, sc_opt.ota_data + i * SC_CHUNK, n);
    uint32_t crc = sw_crc32(data, SC_CHUNK);
    *bad = sc_opt.ota_bad_chunk >= 0 && (size_t)sc_opt.ota_bad_chunk == i && !corrupted;
    if (*bad) {
        crc ^= 0xA5A5A5A5u;
        corrupted = true;
    }
    return crc;
}

/* UpdateBegin; true once the device is ready. *fast tells whether it accepted fast OTA. */
static bool begin(conn *c, bool *fast)
{
    uint8_t p[12] = {1, SC_CHUNK >> 8, SC_CHUNK & 0xff, (uint8_t)(sc_opt.ota_len >> 24),
                     (uint8_t)(sc_opt.ota_len >> 16), (uint8_t)(sc_opt.ota_len >> 8), (uint8_t)sc_opt.ota_len,
                     0, 0, 0, 0, 0};
    CLOG(c, "update begins: %zu bytes in %zu chunks of %d%s", sc_opt.ota_len, chunk_count(), SC_CHUNK,
         sc_opt.ota_fast ? ", fast OTA offered" : "");
    int r = sc_request(c, SW_COAP_CON, SW_COAP_POST, "u", NULL, NULL, 0, sc_opt.ota_fast ? p : NULL,
                       sc_opt.ota_fast ? sizeof p : 0, sc_opt.ota_timeout_ms);
    if (r <= 0) {
        if (r == 0)
            sc_end(c, "ota-failed", "update failed: no UpdateReady from the device; closing");
        return false;
    }
    sw_coap_msg m;
    *fast = sc_opt.ota_fast && sw_coap_parse(c->plain, c->plain_len, &m) == 0 && m.payload_len >= 1 &&
            (m.payload[0] & 1);
    CLOG(c, "device ready for the update%s", *fast ? " (fast OTA accepted)" : "");
    return true;
}

static void normal_chunks(conn *c)
{
    unsigned misses = 0;
    for (size_t i = 0; i < chunk_count() && !c->closed;) {
        uint8_t data[SC_CHUNK];
        bool bad;
        uint32_t crc = chunk_data(i, data, &bad);
        uint8_t q[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
        CLOG(c, "chunk %zu sent (crc %08lx%s)", i, (unsigned long)crc, bad ? ", deliberately wrong" : "");
        int r = sc_request(c, SW_COAP_CON, SW_COAP_POST, "c", NULL, q, 4, data, SC_CHUNK, sc_opt.ota_timeout_ms);
        if (r < 0)
            return;
        if (r == 0) {
            char why[160];
            snprintf(why, sizeof why, "update failed: no ChunkReceived for chunk %zu within %llu ms; closing", i,
                     (unsigned long long)sc_opt.ota_timeout_ms);
            sc_end(c, "ota-failed", why);
            return;
        }
        if (c->got == SC_GOT_REFUSED || c->got == SC_GOT_MISSED) {
            CLOG(c, "chunk %zu: %s, sending it again", i, c->got == SC_GOT_REFUSED ? "device reports a CRC error"
                                                                                   : "missed");
            if (++misses > 10) {
                sc_end(c, "ota-failed", "update failed: more than 10 chunk errors; closing");
                return;
            }
            continue;
        }
        i++;
    }
}

/* One fast-OTA chunk: CON POST /c ? crc ? index, sent without waiting for an answer. */
static int fast_chunk(conn *c, size_t i, const char *why)
{
    uint8_t data[SC_CHUNK];
    bool bad;
    uint32_t crc = chunk_data(i, data, &bad);
    uint8_t q[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
    uint8_t idx[2] = {(uint8_t)(i >> 8), (uint8_t)i};
    uint8_t tok = sc_new_token(c);
    sw_coap_builder b;
    sw_coap_begin(&b, c->msg, sizeof c->msg, SW_COAP_CON, SW_COAP_POST, sc_new_id(c), &tok, 1);
    sw_coap_add_option(&b, SW_OPT_URI_PATH, "c", 1);
    sw_coap_add_option(&b, SW_OPT_URI_QUERY, q, 4);
    sw_coap_add_option(&b, SW_OPT_URI_QUERY, idx, 2);
    sw_coap_add_payload(&b, data, SC_CHUNK);
    CLOG(c, "chunk %zu sent (crc %08lx, fast%s%s)", i, (unsigned long)crc, bad ? ", deliberately wrong" : "", why);
    return sc_send(c, c->msg, sw_coap_end(&b));
}

/* Answers that arrive between fast chunks (G2 confirms them) are read as they come. */
static void drain(conn *c, uint64_t ms)
{
    uint64_t until = sw_now_ms() + ms;
    while (!c->closed && sw_now_ms() < until)
        sc_pump(c, until);
}

static void fast_chunks(conn *c)
{
    for (size_t i = 0; i < chunk_count() && !c->closed; i++) {
        if (sc_opt.ota_skip_chunk >= 0 && (size_t)sc_opt.ota_skip_chunk == i) {
            CLOG(c, "chunk %zu left out (--ota-skip-chunk)", i);
            continue;
        }
        if (fast_chunk(c, i, "") < 0)
            return;
        drain(c, 20);
    }
}

/* After a refused UpdateDone: wait for ChunkMissed, send what it lists, wait for the device's UpdateDone. */
static void resend_missed(conn *c)
{
    if (c->nmissed == 0 && sc_pump(c, sw_now_ms() + sc_opt.ota_timeout_ms) != 1)
        return;
    if (c->nmissed == 0)
        return;
    for (size_t k = 0; k < c->nmissed && !c->closed; k++)
        if (fast_chunk(c, (size_t)(c->missed[2 * k] << 8 | c->missed[2 * k + 1]), ", asked for again") < 0)
            return;
    c->nmissed = 0;
    uint64_t until = sw_now_ms() + sc_opt.ota_timeout_ms;
    while (!c->closed && !c->device_done && sw_now_ms() < until)
        sc_pump(c, until);
    if (!c->device_done && !c->closed && sc_opt.ota_second_done) {
        int r = sc_request(c, SW_COAP_CON, SW_COAP_PUT, "u", NULL, NULL, 0, NULL, 0, sc_opt.ota_timeout_ms);
        if (r == 1 && c->got == SC_GOT_OK) {
            CLOG(c, "second update done acknowledged: the device has every chunk and restarts now");
            c->outcome = "ota-complete";
        } else if (r == 0) {
            CLOG(c, "second update done not acknowledged");
        }
        return;
    }
    if (c->device_done) {
        CLOG(c, "update done: the device has every chunk and restarts now");
        c->outcome = "ota-complete";
    } else if (!c->closed) {
        CLOG(c, "update done (the missed chunks were sent; no UpdateDone from the device)");
    }
}

void sc_run_ota(conn *c)
{
    bool fast = false;
    c->nmissed = 0;
    c->device_done = false;
    if (!begin(c, &fast))
        return;
    if (fast)
        fast_chunks(c);
    else
        normal_chunks(c);
    if (c->closed)
        return;
    int r = sc_request(c, SW_COAP_CON, SW_COAP_PUT, "u", NULL, NULL, 0, NULL, 0, sc_opt.ota_timeout_ms);
    if (r == 1 && c->got == SC_GOT_OK) {
        CLOG(c, "update done: device acknowledged, it restarts now");
        c->outcome = "ota-complete";
    } else if (r == 1 && (c->got == SC_GOT_REFUSED || c->got == SC_GOT_MISSED) && fast) {
        CLOG(c, "update done refused (4.00): the device misses chunks");
        resend_missed(c);
    } else if (r == 0) {
        sc_end(c, "ota-failed", "update failed: UpdateDone not acknowledged; closing");
    }
}
