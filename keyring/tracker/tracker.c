/* sparkwire libkeyring: the per-connection tracker.
 *
 * Each direction has its own small parser: fixed-size handshake PDUs (40 / 256 / 384 bytes), then
 * 2-byte-length frames; a resync state that looks for a chain of plausible frame lengths (after a gap,
 * or when the capture starts mid-session); and a data state for peers that do not speak the protocol.
 * Every decision depends only on the bytes and their order, never on how they were chunked, so a
 * frontend feeding whole segments and one feeding single bytes see the same steps. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tracker_int.h"

/* Text fields have fixed sizes; cutting an over-long name or note is intended. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#include "keyring/handshake.h"

#define KR_AT_ONCE       5.0    /* a close within this many seconds of the last step is "at once" */

static void feed(kr_tracker *t, kr_dir dir, const uint8_t *p, size_t len, double ts);
static void evaluate(kr_tracker *t, double ts);

/* ---- small helpers ------------------------------------------------------------------------------ */

static void note_time(kr_tracker *t, double ts)
{
    if (!t->any_time) {
        t->any_time = true;
        t->first_time = ts;
        t->info.first_time = ts;
    }
    if (ts > t->last_time || t->last_time == 0)
        t->last_time = ts;
    t->info.last_time = t->last_time;
}

static bool ensure(kr_dirstate *ds, size_t need)
{
    if (need <= ds->cap)
        return true;
    size_t c = ds->cap ? ds->cap : 64;
    while (c < need)
        c *= 2;
    if (c > 2 + KR_FRAME_MAX)
        c = need > 2 + KR_FRAME_MAX ? need : 2 + KR_FRAME_MAX;
    uint8_t *n = realloc(ds->buf, c);
    if (!n)
        return false;
    ds->buf = n;
    ds->cap = c;
    return true;
}

/* After a large PDU, give the memory back: most frames are tiny. */
static void shrink(kr_dirstate *ds)
{
    if (ds->cap > 8192 && ds->have <= 256) {
        uint8_t *n = realloc(ds->buf, 256);
        if (n) {
            ds->buf = n;
            ds->cap = 256;
        }
    }
    if (ds->pt_cap > 8192) {
        free(ds->pt);
        ds->pt = NULL;
        ds->pt_cap = 0;
    }
}

static const char *who(kr_dir d)
{
    return d == KR_D2S ? "device" : "cloud";
}

static bool valid_len(unsigned l, unsigned max)
{
    return l >= 16 && l <= max && l % 16 == 0;
}

/* The file name of a key without its folder (notes must not depend on where the files live). */
static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* ---- output ----------------------------------------------------------------------------------- */

static void fill_step_keys(const kr_tracker *t, kr_step *s)
{
    s->device_id_known = t->device_id_known;
    if (t->device_id_known) {
        memcpy(s->device_id, t->device_id, KR_DEVICE_ID_LEN);
        memcpy(s->device_id_hex, t->device_id_hex, sizeof s->device_id_hex);
    }
    s->id_block_opened = t->id_block_opened;
    s->id_plain_len = t->id_plain_len;
    s->nonce_ok = t->nonce_ok;
    s->offered_key_known = t->offered_key_known;
    s->session_opened = t->session_opened;
    s->session_known = t->session_known;
    if (t->session_known)
        memcpy(s->session, t->session, KR_SESSION_LEN);
    s->signature_valid = t->signature_valid;
    s->signature_ok = t->signature_ok;
}

static void step_init(kr_tracker *t, kr_step *s, kr_step_kind kind, kr_dir dir, const uint8_t *bytes,
                      size_t len, uint64_t off, double first, double ts)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->dir = dir;
    s->offset = off;
    s->length = (uint32_t)len;
    s->bytes = bytes;
    s->time = ts;
    s->first_time = first;
    s->hs_result = KR_HS_OK;
    fill_step_keys(t, s);
}

static void emit_step(kr_tracker *t, kr_step *s)
{
    s->index = t->step_index++;
    t->info.last_step = s->kind;
    t->d[s->dir].last_step_time = s->time;
    if (t->cb.step)
        t->cb.step(t->ud, s);
}

void kr_tracker_emit_finding(kr_tracker *t, kr_finding_code code, kr_dir dir, double ts, uint64_t off,
                             const char *fmt, ...)
{
    kr_finding f;
    memset(&f, 0, sizeof f);
    f.code = code;
    f.dir = dir;
    f.time = ts;
    f.offset = off;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f.text, sizeof f.text, fmt, ap);
    va_end(ap);
    t->findings++;
    t->info.findings = t->findings;
    if (t->cb.finding)
        t->cb.finding(t->ud, &f);
}

static void emit_data(kr_tracker *t, kr_dir dir, size_t n, double ts, const char *why)
{
    kr_dirstate *ds = &t->d[dir];
    if (n == 0)
        return;
    kr_step s;
    step_init(t, &s, KR_STEP_DATA, dir, ds->buf, n, ds->pdu_offset, ds->pdu_first_time, ts);
    snprintf(s.note, sizeof s.note, "%zu bytes %s", n, why);
    emit_step(t, &s);
    ds->skipped += n;
    if (n < ds->have)
        memmove(ds->buf, ds->buf + n, ds->have - n);
    ds->have -= n;
    ds->pdu_offset += n;
}

/* ---- recognising other protocols ---------------------------------------------------------------- */

static const char *sniff_other(const uint8_t *b, size_t n)
{
    static const struct { const char *p; const char *what; } pfx[] = {
        { "HTTP/", "an HTTP response" }, { "GET ", "an HTTP request" }, { "POST", "an HTTP request" },
        { "PUT ", "an HTTP request" }, { "HEAD", "an HTTP request" }, { "CONNECT", "an HTTP proxy request" },
        { "OPTIONS", "an HTTP request" }, { "<!DO", "an HTML page" }, { "<!do", "an HTML page" },
        { "<htm", "an HTML page" }, { "<HTM", "an HTML page" }, { "<?xm", "an XML document" },
        { "SSH-", "an SSH banner" }, { "220 ", "an FTP/SMTP banner" }, { "220-", "an FTP/SMTP banner" },
        { "* OK", "an IMAP banner" }, { "+OK", "a POP3 banner" }, { "RFB ", "a VNC banner" },
    };
    for (size_t i = 0; i < sizeof pfx / sizeof pfx[0]; i++) {
        size_t l = strlen(pfx[i].p);
        if (l <= n && memcmp(b, pfx[i].p, l) == 0)
            return pfx[i].what;
    }
    if (n >= 3 && (b[0] == 0x16 || b[0] == 0x15) && b[1] == 0x03 && b[2] <= 0x04)
        return "a TLS record";
    return NULL;
}

static bool printable(uint8_t c)
{
    return (c >= 0x20 && c < 0x7f) || c == '\r' || c == '\n' || c == '\t';
}

/* Why 40 bytes cannot be a nonce (NULL when they can). */
static const char *nonce_unfit(const uint8_t *b, size_t n, char *why, size_t whylen)
{
    size_t pr = 0, distinct = 0;
    bool seen[256] = { false };
    for (size_t i = 0; i < n; i++) {
        if (printable(b[i]))
            pr++;
        if (!seen[b[i]]) {
            seen[b[i]] = true;
            distinct++;
        }
    }
    if (pr == n) {
        snprintf(why, whylen, "the first %zu bytes from the cloud port are text", n);
        return why;
    }
    if (n >= KR_NONCE_LEN && distinct < 20) {
        snprintf(why, whylen, "the 40-byte nonce has only %zu different byte values (a real nonce is random)",
                 distinct);
        return why;
    }
    return NULL;
}

static void go_data(kr_tracker *t, kr_dir dir, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    ds->st = PST_DATA;
    while (ds->have >= KR_DATA_BLOCK)
        emit_data(t, dir, KR_DATA_BLOCK, ts, "not of this protocol");
}

static void declare_not_spark(kr_tracker *t, kr_dir dir, double ts, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void declare_not_spark(kr_tracker *t, kr_dir dir, double ts, const char *fmt, ...)
{
    if (!t->not_spark) {
        t->not_spark = true;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->not_spark_why, sizeof t->not_spark_why, fmt, ap);
        va_end(ap);
    }
    go_data(t, dir, ts);
    evaluate(t, ts);
}

/* ---- sessions and ciphers ----------------------------------------------------------------------- */

/* A cipher for the next frame of this direction: its IV is C1 of the last frame seen (whether or not
 * that frame was decrypted), or M[16..31] before the first frame; when neither is known (the capture
 * joined late, or a gap took the last frame) the next frame loses its first block. */
static kr_cipher *cipher_at(const kr_tracker *t, kr_dir dir, const uint8_t key[16], const uint8_t iv[16])
{
    const kr_dirstate *ds = &t->d[dir];
    kr_cipher *c = kr_cipher_new(key, ds->have_c1 ? ds->last_c1 : iv);
    if (c && !ds->have_c1 && (t->mid_session || ds->frames > 0))
        kr_cipher_lose_sync(c);
    return c;
}

static void install_cipher(kr_tracker *t, kr_dir dir)
{
    kr_dirstate *ds = &t->d[dir];
    if (ds->cipher)
        kr_cipher_free(ds->cipher);
    ds->cipher = cipher_at(t, dir, t->sess.key, t->sess.iv);
}

static void install_session(kr_tracker *t, const uint8_t m[KR_SESSION_LEN], bool from_line)
{
    t->session_known = true;
    t->session_from_line = from_line;
    memcpy(t->session, m, KR_SESSION_LEN);
    kr_session_from_material(m, &t->sess);
    install_cipher(t, KR_D2S);
    install_cipher(t, KR_S2D);
    t->n_session_cands = 0;
    t->info.decrypting = true;
    if (from_line && t->mid_session)
        t->info.handshake_done = true;   /* the session came from a session line */
    t->info.no_decrypt_reason[0] = '\0';
    t->no_decrypt_reason[0] = '\0';
}

/* The device id of the keyfile line whose key or session material fits this connection. */
static void adopt_id(kr_tracker *t, const kr_entry *e)
{
    if (t->device_id_known || !e || !e->has_id)
        return;
    t->device_id_known = true;
    t->device_id_from_key = true;
    memcpy(t->device_id, e->device_id, KR_DEVICE_ID_LEN);
    kr_device_id_hex(t->device_id, t->device_id_hex);
    t->info.device_id_known = true;
    memcpy(t->info.device_id_hex, t->device_id_hex, sizeof t->info.device_id_hex);
}

/* Session lines that may apply when no handshake opened: the one for the device id, or all of them
 * when no id is known (each is tried on the first frame). */
static void consider_session_lines(kr_tracker *t)
{
    if (t->session_known)
        return;
    if (t->device_id_known) {
        const uint8_t *m = kr_keyfile_session(t->kf, t->device_id);
        if (m) {
            install_session(t, m, true);
            return;
        }
    }
    t->n_session_cands = 0;
    if (t->device_id_known)
        return;
    size_t n = kr_keyfile_session_count(t->kf);
    for (size_t i = 0; i < n && t->n_session_cands < 16; i++) {
        const kr_entry *e = kr_keyfile_session_entry(t->kf, i);
        if (e)
            t->session_cands[t->n_session_cands++] = e->session;
    }
}

static bool coap_plausible(const uint8_t *pt, size_t len)
{
    return len >= 4 && (pt[0] >> 6) == 1 && (pt[0] & 0x0f) <= 8 && len >= 4u + (pt[0] & 0x0f);
}

/* Tries each candidate session line on this frame (no device id tells which applies); installs the
 * first that decrypts it. A one-block frame whose first block is lost cannot tell: the next frame can. */
static void try_session_candidates(kr_tracker *t, kr_dir dir, const uint8_t *body, size_t len)
{
    if (t->n_session_cands == 0 || len < 16)
        return;
    uint8_t *pt = malloc(len);
    if (!pt)
        return;
    bool all_failed = true;
    for (size_t i = 0; i < t->n_session_cands; i++) {
        kr_session s;
        kr_session_from_material(t->session_cands[i], &s);
        kr_cipher *c = cipher_at(t, dir, s.key, s.iv);
        if (!c)
            continue;
        size_t pl = 0, skip = 0;
        kr_dec_result r = kr_cipher_decrypt(c, body, len, pt, &pl, &skip);
        kr_cipher_free(c);
        bool fits = (r == KR_DEC_OK && coap_plausible(pt, pl)) || (r == KR_DEC_PARTIAL && len >= 32);
        if (r == KR_DEC_PARTIAL && len < 32)
            all_failed = false;
        if (fits) {
            const uint8_t *m = t->session_cands[i];
            install_session(t, m, true);
            for (size_t k = 0; k < kr_keyfile_session_count(t->kf); k++) {
                const kr_entry *e = kr_keyfile_session_entry(t->kf, k);
                if (e && e->session == m)
                    adopt_id(t, e);
            }
            all_failed = false;
            break;
        }
    }
    if (all_failed) {
        snprintf(t->no_decrypt_reason, sizeof t->no_decrypt_reason, "no session key: none of the keyfile's "
                 "session lines decrypts this connection's frames");
        snprintf(t->info.no_decrypt_reason, sizeof t->info.no_decrypt_reason, "%s", t->no_decrypt_reason);
    }
    free(pt);
}

/* ---- handshake steps ---------------------------------------------------------------------------- */

static void do_nonce(kr_tracker *t, double ts)
{
    kr_dirstate *ds = &t->d[KR_S2D];
    kr_step s;
    step_init(t, &s, KR_STEP_NONCE, KR_S2D, ds->buf, KR_NONCE_LEN, ds->pdu_offset, ds->pdu_first_time, ts);
    t->nonce_seen = true;
    t->nonce_time = ts;
    t->nonce_damaged = ds->damaged;
    memcpy(t->nonce, ds->buf, KR_NONCE_LEN);
    if (ds->damaged)
        snprintf(s.note, sizeof s.note, "40-byte nonce, partly lost in a gap");
    else
        snprintf(s.note, sizeof s.note, "40-byte nonce from the cloud (sent in clear)");
    ds->have = 0;
    ds->damaged = false;
    ds->st = PST_SESSION;
    emit_step(t, &s);
}

static void do_idblock(kr_tracker *t, double ts)
{
    kr_dirstate *ds = &t->d[KR_D2S];
    const uint8_t *block = ds->buf;
    t->idblock_seen = true;
    t->idblock_time = ts;
    t->idblock_damaged = ds->damaged;
    t->idblock_split = ts - ds->pdu_first_time;
    char note[384];
    kr_hs_result res = KR_HS_OK;
    const kr_key *sp = kr_keyfile_server_private(t->kf);
    if (ds->damaged) {
        snprintf(note, sizeof note, "256-byte id block, partly lost in a gap: not opened");
    } else if (!sp) {
        snprintf(note, sizeof note, "256-byte id block, RSA-encrypted to the cloud key: not opened "
                 "(no server-private key in the keyfile)");
    } else {
        kr_idblock ib;
        memset(&ib, 0, sizeof ib);
        /* a peer that is not a Spark cloud still had its first 40 bytes taken as the nonce */
        const uint8_t *nonce = (t->nonce_seen && !t->nonce_damaged) ? t->nonce
                               : (t->not_spark && t->s2d_head_len == KR_NONCE_LEN) ? t->s2d_head : NULL;
        res = kr_hs_open_idblock(sp, block, nonce, &ib);
        t->id_result = res;
        if (res == KR_HS_OK || res == KR_HS_NONCE) {
            t->id_block_opened = KR_YES;
            t->id_plain_len = ib.plain_len;
            t->device_id_known = true;
            memcpy(t->device_id, ib.device_id, KR_DEVICE_ID_LEN);
            kr_device_id_hex(t->device_id, t->device_id_hex);
            t->nonce_ok = res == KR_HS_NONCE ? KR_NO : (nonce ? KR_YES : KR_UNKNOWN);
            t->generation = ib.plain_len == KR_IDPLAIN_G1_LEN ? 1 : (ib.plain_len >= KR_IDPLAIN_G2_LEN ? 2 : 0);
            char offered[200] = "";
            if (ib.has_public_key) {
                const kr_entry *e = kr_keyfile_find_device_by_public(t->kf, ib.public_key, KR_DEVICE_SPKI_LEN);
                if (e) {
                    t->offered_key_known = KR_YES;
                    snprintf(offered, sizeof offered, "; it offers the public key of keyfile line %d", e->line);
                } else if (kr_keyfile_device_key_count(t->kf) > 0) {
                    t->offered_key_known = KR_NO;
                    snprintf(offered, sizeof offered, "; the public key it offers matches no device key in the "
                             "keyfile");
                } else {
                    snprintf(offered, sizeof offered, "; it offers its public key");
                }
            }
            snprintf(note, sizeof note, "opened with the server private key: device %s, %s, %zu-byte plaintext "
                     "(%s)%s", t->device_id_hex,
                     res == KR_HS_NONCE ? "nonce echo DIFFERS from the nonce sent"
                     : (t->nonce_ok == KR_YES ? (t->nonce_seen ? "nonce echo ok"
                                                 : "it echoes the peer's first 40 bytes as its nonce")
                        : "nonce not captured"),
                     ib.plain_len,
                     t->generation == 1 ? "first Core firmware" : t->generation == 2 ? "firmware 0.4 or later"
                     : "unexpected length", offered);
            t->info.generation = t->generation;
        } else {
            t->id_block_opened = KR_NO;
            snprintf(note, sizeof note, "does not open with the server private key (%s): %s; the device "
                     "encrypted its id to another public key", base_name(sp->source), kr_hs_result_str(res));
        }
    }
    kr_step s;
    step_init(t, &s, KR_STEP_IDBLOCK, KR_D2S, block, KR_IDBLOCK_LEN, ds->pdu_offset, ds->pdu_first_time, ts);
    s.hs_result = res;
    snprintf(s.note, sizeof s.note, "%s", note);
    if (t->device_id_known) {
        t->info.device_id_known = true;
        memcpy(t->info.device_id_hex, t->device_id_hex, sizeof t->info.device_id_hex);
    }
    ds->have = 0;
    ds->damaged = false;
    ds->st = PST_FRAMES;
    emit_step(t, &s);
}

static void do_sessionblock(kr_tracker *t, double ts)
{
    kr_dirstate *ds = &t->d[KR_S2D];
    const uint8_t *e = ds->buf;
    const uint8_t *sig = ds->buf + KR_SESSION_E_LEN;
    t->sessionblock_seen = true;
    t->sessionblock_time = ts;
    t->sessionblock_damaged = ds->damaged;
    memcpy(t->e_block, e, KR_SESSION_E_LEN);
    char note[384] = "";
    char signote[160] = "";
    kr_hs_result res = KR_HS_OK;
    uint8_t m[KR_SESSION_LEN];
    bool opened = false;

    if (!ds->damaged) {
        /* which device keys to try */
        const kr_key *idkey = t->device_id_known ? kr_keyfile_device_key(t->kf, t->device_id) : NULL;
        if (idkey) {
            t->device_keys_tried = 1;
            res = kr_hs_open_session(idkey, e, m);
            snprintf(t->device_key_name, sizeof t->device_key_name, "the device key for %s", t->device_id_hex);
            opened = res == KR_HS_OK;
        } else {
            size_t nw = kr_keyfile_wildcard_count(t->kf);
            for (size_t i = 0; i < nw && !opened; i++) {
                const kr_key *k = kr_keyfile_wildcard(t->kf, i);
                if (!k)
                    continue;
                t->device_keys_tried++;
                res = kr_hs_open_session(k, e, m);
                if (res == KR_HS_OK) {
                    opened = true;
                    snprintf(t->device_key_name, sizeof t->device_key_name, "the wildcard device key %s",
                             base_name(k->source));
                }
            }
            size_t nd = kr_keyfile_device_key_count(t->kf);
            for (size_t i = 0; i < nd && !opened; i++) {
                const kr_entry *en = kr_keyfile_device_entry(t->kf, i);
                if (!en || en->wildcard || !en->key)
                    continue;
                t->device_keys_tried++;
                res = kr_hs_open_session(en->key, e, m);
                if (res == KR_HS_OK) {
                    opened = true;
                    snprintf(t->device_key_name, sizeof t->device_key_name, "the device key for %s",
                             en->device_id_hex);
                    if (!t->device_id_known && en->has_id) {
                        t->device_id_known = true;
                        t->device_id_from_key = true;
                        memcpy(t->device_id, en->device_id, KR_DEVICE_ID_LEN);
                        kr_device_id_hex(t->device_id, t->device_id_hex);
                    }
                }
            }
            if (!opened && t->device_keys_tried > 0)
                snprintf(t->device_key_name, sizeof t->device_key_name, "%s",
                         t->device_keys_tried == 1 ? "the keyfile's device key" : "any device key in the keyfile");
        }
        if (t->device_keys_tried == 0) {
            t->session_opened = KR_UNKNOWN;
            if (t->device_id_known)
                snprintf(note, sizeof note, "not opened: no device key for %s in the keyfile", t->device_id_hex);
            else
                snprintf(note, sizeof note, "not opened: no device key in the keyfile");
        } else if (opened) {
            t->session_opened = KR_YES;
            t->session_result = KR_HS_OK;
            char kh[33];
            snprintf(note, sizeof note, "opened with %s: AES key %s", t->device_key_name, kr_hex(m, 16, kh));
        } else {
            t->session_opened = KR_NO;
            t->session_result = res;
            snprintf(note, sizeof note, "does not open with %s (%s): the cloud encrypted the session key to "
                     "another public key", t->device_key_name, kr_hs_result_str(res));
        }

        const kr_key *spub = kr_keyfile_server_public(t->kf);
        if (spub) {
            uint8_t rec[KR_HMAC_LEN];
            if (opened) {
                uint8_t hmac[KR_HMAC_LEN];
                kr_hs_hmac(m, e, hmac);
                kr_hs_result r = kr_hs_verify_signature(spub, sig, hmac, rec);
                t->signature_valid = (r == KR_HS_OK || r == KR_HS_SIG_MISMATCH) ? KR_YES : KR_NO;
                t->signature_ok = r == KR_HS_OK ? KR_YES : KR_NO;
                if (r != KR_HS_OK)
                    res = r;
            } else {
                kr_hs_result r = kr_hs_verify_signature(spub, sig, NULL, rec);
                t->signature_valid = r == KR_HS_OK ? KR_YES : KR_NO;
                if (r != KR_HS_OK)
                    t->signature_ok = KR_NO;
                if (r != KR_HS_OK && res == KR_HS_OK)
                    res = r;
            }
            if (t->signature_ok == KR_YES)
                snprintf(signote, sizeof signote, "; signature verifies with the server public key and matches "
                         "the HMAC");
            else if (t->signature_valid == KR_YES && t->signature_ok == KR_NO)
                snprintf(signote, sizeof signote, "; signature has the cloud's structure but signs another HMAC");
            else if (t->signature_valid == KR_YES)
                snprintf(signote, sizeof signote, "; signature made by the server key in the keyfile");
            else
                snprintf(signote, sizeof signote, "; signature was NOT made by the server key in the keyfile");
        }
    } else {
        snprintf(note, sizeof note, "384-byte session block, partly lost in a gap: not opened");
    }

    if (opened)
        install_session(t, m, false);
    else
        consider_session_lines(t);
    if (!t->session_known) {
        if (t->n_session_cands > 0)
            snprintf(t->no_decrypt_reason, sizeof t->no_decrypt_reason, "%s", "trying the keyfile's session lines");
        else if (t->device_keys_tried == 0)
            snprintf(t->no_decrypt_reason, sizeof t->no_decrypt_reason, "no session key: %s",
                     t->device_id_known ? "no device key for this device in the keyfile"
                                        : "no device key in the keyfile");
        else
            snprintf(t->no_decrypt_reason, sizeof t->no_decrypt_reason,
                     "no session key: the session block does not open with %s", t->device_key_name);
        snprintf(t->info.no_decrypt_reason, sizeof t->info.no_decrypt_reason, "%s", t->no_decrypt_reason);
    } else if (!opened) {
        size_t l = strlen(note);
        snprintf(note + l, sizeof note - l, "; session material from the keyfile's session line");
    }
    if (t->device_id_known) {
        t->info.device_id_known = true;
        memcpy(t->info.device_id_hex, t->device_id_hex, sizeof t->info.device_id_hex);
    }

    kr_step s;
    step_init(t, &s, KR_STEP_SESSIONBLOCK, KR_S2D, ds->buf, KR_SESSIONBLOCK_LEN, ds->pdu_offset,
              ds->pdu_first_time, ts);
    s.hs_result = res;
    snprintf(s.note, sizeof s.note, "%s%s", note, signote);
    ds->have = 0;
    ds->damaged = false;
    ds->st = PST_FRAMES;
    emit_step(t, &s);
}

/* ---- frames ------------------------------------------------------------------------------------- */

static void do_frame(kr_tracker *t, kr_dir dir, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    size_t len = ds->have - 2;
    const uint8_t *body = ds->buf + 2;
    kr_step s;
    bool hello = !ds->first_frame_done && t->sessionblock_seen && !t->mid_session;
    step_init(t, &s, hello ? KR_STEP_HELLO : KR_STEP_FRAME, dir, ds->buf, ds->have, ds->pdu_offset,
              ds->pdu_first_time, ts);
    if (hello)
        ds->first_frame_done = true;
    s.frame_len = (uint16_t)len;

    kr_message m;
    bool have_msg = false;
    bool bad = false;
    char badwhy[160] = "";
    if (ds->damaged) {
        s.frame_state = KR_FRAME_NOT_DECRYPTED;
        snprintf(s.note, sizeof s.note, "bytes of this frame were lost in a gap: not decrypted");
        if (ds->cipher)
            kr_cipher_lose_sync(ds->cipher);
    } else {
        if (!ds->cipher && t->n_session_cands > 0)
            try_session_candidates(t, dir, body, len);
        if (!ds->cipher) {
            s.frame_state = KR_FRAME_NOT_DECRYPTED;
            snprintf(s.note, sizeof s.note, "not decrypted: %s",
                     t->no_decrypt_reason[0] ? t->no_decrypt_reason : "no session key");
        } else {
            if (ds->pt_cap < len) {
                free(ds->pt);
                ds->pt = malloc(len);
                ds->pt_cap = ds->pt ? len : 0;
            }
            size_t pl = 0, skip = 0;
            kr_dec_result r = ds->pt ? kr_cipher_decrypt(ds->cipher, body, len, ds->pt, &pl, &skip)
                                     : KR_DEC_BAD_LENGTH;
            if (r == KR_DEC_OK && coap_plausible(ds->pt, pl)) {
                s.frame_state = KR_FRAME_DECRYPTED;
                kr_msg_interpret(t, &m, dir, ts, ds->pdu_offset, ds->pt, pl, false);
                have_msg = true;
            } else if (r == KR_DEC_PARTIAL) {
                s.frame_state = KR_FRAME_PARTIAL;
                s.plaintext_skip = skip;
                kr_msg_interpret(t, &m, dir, ts, ds->pdu_offset, ds->pt, pl, true);
                have_msg = true;
            } else {
                bad = true;
                s.frame_state = KR_FRAME_DECRYPT_ERROR;
                snprintf(badwhy, sizeof badwhy, "%s",
                         r == KR_DEC_BAD_PADDING ? "the padding is wrong"
                         : r == KR_DEC_OK ? "the plaintext is not a CoAP message" : "the length is wrong");
                snprintf(s.note, sizeof s.note, "does not decrypt with the session key: %s", badwhy);
            }
            if (have_msg) {
                s.plaintext = ds->pt;
                s.plaintext_len = pl;
                s.msg = &m;
                snprintf(s.note, sizeof s.note, "%s", m.summary);
                ds->frames_ok++;
            }
        }
    }
    /* the frame is counted, and its C1 kept, once it has been decrypted (or not) */
    ds->frames++;
    t->info.frames[dir] = ds->frames;
    if (ds->damaged) {
        ds->have_c1 = false;
    } else {
        memcpy(ds->last_c1, body, 16);
        ds->have_c1 = true;
    }
    if (bad)
        ds->frames_bad++;
    if (hello && dir == KR_D2S) {
        if (have_msg && m.kind == KR_MSG_HELLO)
            t->device_hello_ok = true;
        else if (bad)
            t->device_hello_bad = true;
    }
    if (hello && dir == KR_S2D && have_msg && m.kind == KR_MSG_HELLO)
        t->cloud_hello_ok = true;
    if (have_msg && dir == KR_D2S && m.kind == KR_MSG_HELLO && t->info.generation == 0 && m.payload_len >= 6) {
        /* the Hello tells the firmware generation when the id block could not */
        t->generation = t->info.generation = m.platform_id >= 0 ? 2 : 1;
    }
    if (have_msg) {
        m.index = t->msg_index;
    }
    emit_step(t, &s);
    if (have_msg) {
        t->msg_index++;
        t->info.messages = t->msg_index;
        if (t->cb.message)
            t->cb.message(t->ud, &m);
        kr_msg_after(t, &m);
    }
    if (bad)
        kr_tracker_emit_finding(t, KR_FIND_DECRYPT_ERROR, dir, ts, s.offset,
                                "%s frame at offset %llu (%u bytes) does not decrypt with the session key: %s",
                                hello ? kr_step_title(KR_STEP_HELLO, dir) : (dir == KR_D2S ? "device" : "cloud"),
                                (unsigned long long)s.offset, (unsigned)s.length, badwhy);
    ds->have = 0;
    ds->damaged = false;
    shrink(ds);
}

/* ---- resynchronisation -------------------------------------------------------------------------- */

/* 1: a frame chain starts at p; 0: it does not; -1: not enough bytes to tell yet. */
static int chain_at(const uint8_t *b, size_t have, size_t p, bool ended)
{
    size_t q = p;
    int n = 0;
    for (;;) {
        if (q == have && ended && n >= 1)
            return 1;
        if (q + 2 > have)
            return ended ? (n >= 2 ? 1 : 0) : -1;
        unsigned l = (unsigned)b[q] << 8 | b[q + 1];
        if (!valid_len(l, KR_RESYNC_MAXLEN))
            return 0;
        n++;
        if (n >= KR_RESYNC_CHAIN)
            return 1;
        q += 2 + l;
    }
}

static void resync_scan(kr_tracker *t, kr_dir dir, double ts, bool ended)
{
    kr_dirstate *ds = &t->d[dir];
    size_t p;
    for (p = ds->scan_from < ds->have ? ds->scan_from : 0; p < ds->have; p++) {
        int r = chain_at(ds->buf, ds->have, p, ended);
        if (r == 1) {
            ds->scan_from = 0;
            emit_data(t, dir, p, ts, t->mid_session && ds->frames == 0 ? "before the first frame boundary"
                                                                       : "skipped to the next frame boundary");
            size_t n = ds->have;
            uint8_t *tmp = malloc(n ? n : 1);
            if (!tmp)
                return;
            memcpy(tmp, ds->buf, n);
            ds->have = 0;
            ds->st = PST_FRAMES;
            ds->offset -= n;
            feed(t, dir, tmp, n, ts);
            free(tmp);
            return;
        }
        if (r == -1)
            break;
    }
    ds->scan_from = p;
    if (ended) {
        emit_data(t, dir, ds->have, ts, "with no frame boundary found");
        ds->scan_from = 0;
    } else if (ds->have >= KR_RESYNC_CAP && p > 0) {
        emit_data(t, dir, p, ts, "with no frame boundary found");
        ds->scan_from = 0;
    }
}

static void enter_resync(kr_tracker *t, kr_dir dir)
{
    kr_dirstate *ds = &t->d[dir];
    ds->st = PST_RESYNC;
    ds->scan_from = 0;
    ds->have_c1 = false;
    if (ds->cipher)
        kr_cipher_lose_sync(ds->cipher);
    ds->have_last_id = false;
}

static void enter_mid_session(kr_tracker *t, double ts)
{
    t->mid_session = true;
    for (int i = 0; i < 2; i++) {
        kr_dirstate *ds = &t->d[i];
        size_t n = ds->have;
        ds->have = 0;
        ds->sniffed = true;
        enter_resync(t, (kr_dir)i);
        if (n) {
            uint8_t *tmp = malloc(n);
            if (!tmp)
                continue;
            memcpy(tmp, ds->buf, n);
            ds->offset -= n;
            feed(t, (kr_dir)i, tmp, n, ts);
            free(tmp);
        }
    }
    consider_session_lines(t);
    if (!t->session_known && t->n_session_cands == 0) {
        snprintf(t->no_decrypt_reason, sizeof t->no_decrypt_reason,
                 "no session key: the capture starts after the handshake and the keyfile has no session line");
        snprintf(t->info.no_decrypt_reason, sizeof t->info.no_decrypt_reason, "%s", t->no_decrypt_reason);
    }
    evaluate(t, ts);
}

/* ---- the byte pump ------------------------------------------------------------------------------ */

static size_t want(const kr_tracker *t, kr_dir dir)
{
    const kr_dirstate *ds = &t->d[dir];
    (void)t;
    switch (ds->st) {
    case PST_NONCE: return ds->sniffed ? KR_NONCE_LEN : KR_SNIFF_LEN;
    case PST_IDBLOCK: return ds->sniffed ? KR_IDBLOCK_LEN : KR_SNIFF_LEN;
    case PST_SESSION: return KR_SESSIONBLOCK_LEN;
    case PST_FRAMES:
        if (ds->have < 2)
            return 2;
        return 2 + ((size_t)ds->buf[0] << 8 | ds->buf[1]);
    case PST_RESYNC: return ds->sniffed ? KR_RESYNC_CAP : KR_SNIFF_LEN;
    case PST_DATA: return KR_DATA_BLOCK;
    }
    return 1;
}

/* Called when the buffer holds want() bytes (resync: after every append). */
static void act(kr_tracker *t, kr_dir dir, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    char why[160];
    switch (ds->st) {
    case PST_NONCE:
        if (!ds->sniffed) {
            ds->sniffed = true;
            const char *o = sniff_other(ds->buf, ds->have);
            if (o)
                declare_not_spark(t, dir, ts, "the cloud port answered with %s, not a 40-byte nonce", o);
            return;
        }
        /* a nonce with bytes lost in a gap is not judged: the zeros standing in for them are not the wire */
        if (!ds->damaged && nonce_unfit(ds->buf, ds->have, why, sizeof why)) {
            declare_not_spark(t, dir, ts, "%s", why);
            return;
        }
        /* a length chain inside the 40 bytes: these are frames, the capture joined late */
        if (!t->opened || (!ds->damaged && valid_len((unsigned)ds->buf[0] << 8 | ds->buf[1], KR_RESYNC_MAXLEN) &&
                           chain_at(ds->buf, ds->have, 0, false) == 1)) {
            enter_mid_session(t, ts);
            return;
        }
        do_nonce(t, ts);
        return;
    case PST_IDBLOCK:
        if (!ds->sniffed) {
            ds->sniffed = true;
            const char *o = sniff_other(ds->buf, ds->have);
            if (o) {
                declare_not_spark(t, dir, ts, "the client sent %s", o);
                return;
            }
            /* a device never speaks first: frames before any nonce mean the capture joined late, or (15 s
             * and more after the connection opened) first Core firmware that gave up waiting for a nonce
             * and sends its frames anyway (docs/protocol.md 2.5, 7.5) */
            if (t->d[KR_S2D].offset == 0 && valid_len((unsigned)ds->buf[0] << 8 | ds->buf[1], KR_RESYNC_MAXLEN)) {
                if (t->opened && ts - t->open_time >= 15.0) {
                    t->silent_peer = true;
                    t->silent_after = ts - t->open_time;
                    ds->st = PST_FRAMES;
                    evaluate(t, ts);
                } else {
                    enter_mid_session(t, ts);
                }
            }
            return;
        }
        do_idblock(t, ts);
        evaluate(t, ts);
        return;
    case PST_SESSION:
        do_sessionblock(t, ts);
        evaluate(t, ts);
        return;
    case PST_FRAMES:
        if (ds->have == 2) {
            unsigned l = (unsigned)ds->buf[0] << 8 | ds->buf[1];
            if (!valid_len(l, KR_FRAME_MAX)) {
                enter_resync(t, dir);
                /* the 2 bytes stay in the window; the scan decides */
                resync_scan(t, dir, ts, false);
            }
            return;
        }
        do_frame(t, dir, ts);
        evaluate(t, ts);
        return;
    case PST_RESYNC:
        if (!ds->sniffed && ds->have >= KR_SNIFF_LEN) {
            ds->sniffed = true;
            const char *o = sniff_other(ds->buf, ds->have);
            if (o) {
                declare_not_spark(t, dir, ts, "the %s sent %s", dir == KR_D2S ? "client" : "server", o);
                return;
            }
        }
        resync_scan(t, dir, ts, false);
        return;
    case PST_DATA:
        while (ds->have >= KR_DATA_BLOCK)
            emit_data(t, dir, KR_DATA_BLOCK, ts, "not of this protocol");
        return;
    }
}

static void feed(kr_tracker *t, kr_dir dir, const uint8_t *p, size_t len, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    if (dir == KR_S2D && ds->offset < KR_NONCE_LEN && ds->started_at_zero) {
        /* the first 40 bytes from the cloud port: what the device takes as its nonce, whatever they are */
        size_t n = KR_NONCE_LEN - (size_t)ds->offset;
        if (n > len)
            n = len;
        memcpy(t->s2d_head + ds->offset, p, n);
        if ((size_t)ds->offset + n > t->s2d_head_len)
            t->s2d_head_len = (size_t)ds->offset + n;
    }
    while (len > 0) {
        /* the cloud sending past its nonce before the device's id block: not this protocol */
        if (dir == KR_S2D && ds->st == PST_SESSION && ds->have == 0 && !t->idblock_seen && !t->mid_session &&
            !t->d[KR_D2S].gapped) {
            declare_not_spark(t, dir, ts, "the cloud sent more than 40 bytes before the device's 256-byte id "
                              "block");
        }
        size_t target = want(t, dir);
        if (ds->have == 0) {
            ds->pdu_offset = ds->offset;
            ds->pdu_first_time = ts;
        }
        if (ds->have >= target && ds->st != PST_RESYNC) {
            act(t, dir, ts);
            continue;
        }
        size_t n = target > ds->have ? target - ds->have : 0;
        if (n > len)
            n = len;
        if (n == 0) {
            /* resync window full and undecided cannot happen (chains are shorter than the window);
             * drop one byte as data to guarantee progress */
            emit_data(t, dir, 1, ts, "with no frame boundary found");
            if (ds->scan_from)
                ds->scan_from--;
            continue;
        }
        if (!ensure(ds, ds->have + n)) {
            /* out of memory: stop interpreting this direction */
            ds->st = PST_DATA;
            ds->have = 0;
            ds->offset += len;
            return;
        }
        memcpy(ds->buf + ds->have, p, n);
        ds->have += n;
        ds->offset += n;
        p += n;
        len -= n;
        if (ds->st == PST_RESYNC || ds->have == target)
            act(t, dir, ts);
    }
}

/* ---- verdict ------------------------------------------------------------------------------------ */

static void add_cand(kr_verdict *v, kr_verdict_code c)
{
    if (v->n_candidates < KR_MAX_CANDIDATES)
        v->candidates[v->n_candidates++] = c;
}

static void vset(kr_verdict *v, kr_verdict_code c, bool proven, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void vset(kr_verdict *v, kr_verdict_code c, bool proven, const char *fmt, ...)
{
    v->code = c;
    v->proven = proven;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->evidence, sizeof v->evidence, fmt, ap);
    va_end(ap);
}

/* Which side closed first, or -1. */
static int first_closer(const kr_tracker *t)
{
    const kr_dirstate *d = &t->d[KR_D2S], *s = &t->d[KR_S2D];
    if (d->closed && s->closed)
        return d->close_time <= s->close_time ? KR_D2S : KR_S2D;
    if (d->closed)
        return KR_D2S;
    if (s->closed)
        return KR_S2D;
    return -1;
}

static const char *close_word(const kr_dirstate *ds)
{
    return ds->rst ? "reset" : "closed";
}

/* Appends "; note" to the evidence. */
static void add_note(kr_verdict *v, const char *note)
{
    size_t l = strlen(v->evidence);
    if (note[0] && l + 2 < sizeof v->evidence)
        snprintf(v->evidence + l, sizeof v->evidence - l, "; %s", note);
}

/* A handshake failure that the server private key proves at the id block (KR_V_NONE when it proves none).
 * The verdict is given at that step; the wire facts of the close complete its evidence later. */
static kr_verdict_code id_proof(const kr_tracker *t, char *text, size_t len)
{
    if (t->id_block_opened == KR_NO) {
        snprintf(text, len, "the id block does not open with the server private key: the device encrypted its "
                 "id to another public key");
        return KR_V_SERVER_KEY_MISMATCH;
    }
    if (t->nonce_ok == KR_NO) {
        snprintf(text, len, "the id block opens with the server private key but does not echo the nonce the "
                 "cloud sent (device %s)", t->device_id_hex);
        return KR_V_NONCE_MISMATCH;
    }
    return KR_V_NONE;
}

/* The cloud went on after the id block as if it had opened it: the id block's proof was made with a key
 * that is not this cloud's (or on a nonce the cloud did not send). */
static void id_withdrawn(const kr_tracker *t, kr_verdict_code code, char *text, size_t len)
{
    const kr_key *sp = kr_keyfile_server_private(t->kf);
    if (code == KR_V_SERVER_KEY_MISMATCH)
        snprintf(text, len, "the id block does not open with the keyfile's server private key (%s), yet the "
                 "cloud answered it: that key is not this cloud's, so the server-key-mismatch given at the id "
                 "block does not stand", sp ? base_name(sp->source) : "?");
    else
        snprintf(text, len, "the id block does not echo the nonce seen in the capture, yet the cloud answered "
                 "it, so the nonce-mismatch given at the id block does not stand");
}

/* A handshake failure that a device key or the server public key proves at the session block (KR_V_NONE
 * when they prove none). */
static kr_verdict_code session_proof(const kr_tracker *t, const char *kname, char *text, size_t len)
{
    if (t->session_opened == KR_NO && t->offered_key_known != KR_NO) {
        snprintf(text, len, "the session block does not open with %s: the cloud encrypted the session key to "
                 "another public key", kname);
        return KR_V_DEVICE_KEY_MISMATCH;
    }
    if (t->signature_valid == KR_NO) {
        snprintf(text, len, "the session block's signature does not recover with the server public key in the "
                 "keyfile: it was not signed by that cloud");
        return KR_V_BAD_SIGNATURE;
    }
    if (t->signature_ok == KR_NO) {
        snprintf(text, len, "the signature recovers with the server public key but signs another HMAC than "
                 "HMAC(M, E)");
        return KR_V_BAD_SIGNATURE;
    }
    if (t->session_opened == KR_YES && t->offered_key_known == KR_NO) {
        snprintf(text, len, "the session block opens with %s, but the public key the device offers in its id "
                 "block is another one: the cloud encrypted to a key the device does not hold", kname);
        return KR_V_DEVICE_KEY_MISMATCH;
    }
    return KR_V_NONE;
}

/* The verdict as the facts seen so far show it (code KR_V_NONE: nothing decided yet). `withdrawn` gets a
 * note when a key's proof given earlier is contradicted by what the wire showed since. */
static void evaluate_into(kr_tracker *t, kr_verdict *v, bool final, char *withdrawn, size_t wlen)
{
    memset(v, 0, sizeof *v);
    withdrawn[0] = '\0';
    v->last_step = t->info.last_step;
    int fc = first_closer(t);
    const kr_dirstate *dd = &t->d[KR_D2S], *sd = &t->d[KR_S2D];
    double ct = fc >= 0 ? t->d[fc].close_time : 0;
    bool closed = fc >= 0;
    const char *kname = t->device_key_name[0] ? t->device_key_name : "the device key";

    if (t->not_spark) {
        vset(v, KR_V_NOT_SPARK, false, "%s", t->not_spark_why);
        return;
    }
    if (t->refused) {
        vset(v, KR_V_NOT_SPARK, false, "the connection was refused: the device's SYN was answered by an RST, "
             "not a SYN-ACK, so nothing listens on that address and port or a firewall rejects the connection "
             "(check the cloud address the device uses, and the firewalls on the way)");
        return;
    }
    if (t->silent_peer && !t->nonce_seen) {
        vset(v, KR_V_NOT_SPARK, false, "the peer accepted the connection but sent no nonce; %.1f s later the "
             "device sent frames on it (first Core firmware does so after its 20 s wait for the nonce)",
             t->silent_after);
        return;
    }
    if (t->mid_session) {
        if (dd->frames_ok + sd->frames_ok > 0)
            vset(v, KR_V_MID_SESSION, true, "no handshake in the capture; frames found by their length chain "
                 "decrypt with the keyfile's session material");
        else if (dd->frames + sd->frames > 0)
            vset(v, KR_V_MID_SESSION, false, "no handshake in the capture; %u device and %u cloud frames found "
                 "by their length chain", dd->frames, sd->frames);
        else if (final && (dd->bytes + sd->bytes) > 0)
            vset(v, KR_V_NOT_SPARK, false, "no handshake and no chain of frame lengths in %llu bytes",
                 (unsigned long long)(dd->bytes + sd->bytes));
        else if (final)
            vset(v, KR_V_INCOMPLETE, false, "no data from either side");
        return;
    }

    uint32_t dframes = dd->frames, sframes = sd->frames;
    char idtext[384] = "";
    kr_verdict_code idcode = t->idblock_seen ? id_proof(t, idtext, sizeof idtext) : KR_V_NONE;
    if (idcode != KR_V_NONE && (t->sessionblock_seen || sframes > 0))
        id_withdrawn(t, idcode, withdrawn, wlen);
    if (!t->sessionblock_seen && sframes > 0 && dframes > 0) {
        /* cloud frames without a session block: it was lost in a gap, and the session runs */
        vset(v, KR_V_OK, false, "the session block is missing from the capture (gap), but the device and the "
             "cloud exchange frames");
        add_note(v, withdrawn);
        return;
    }
    if (t->sessionblock_seen) {
        double since = closed ? ct - t->sessionblock_time : 0;
        char ptext[384] = "";
        kr_verdict_code pcode = session_proof(t, kname, ptext, sizeof ptext);
        if (dframes > 0 && sframes > 0) {
            if (t->device_hello_ok && t->cloud_hello_ok)
                vset(v, KR_V_OK, true, "handshake done: the device Hello and the cloud Hello decrypt with the "
                     "session key%s", t->session_from_line ? " from the keyfile's session line" : "");
            else
                vset(v, KR_V_OK, false, "handshake done: the device and the cloud each sent a frame after the "
                     "session block%s", t->session_known ? "" : " (not decrypted)");
            if (pcode != KR_V_NONE) {
                /* the cloud answered the device's frames: the device took the session block, so the key
                 * that proved a failure at the session block is not the one this connection used */
                char note[512];
                snprintf(note, sizeof note, "%s, yet the device and the cloud went on: the key that showed it "
                         "is not the one in use here, so the %s given at the session block does not stand",
                         ptext, kr_verdict_str(pcode));
                add_note(v, note);
                if (!withdrawn[0])
                    snprintf(withdrawn, wlen, "%s", note);
            }
            add_note(v, idcode != KR_V_NONE ? withdrawn : "");
            return;
        }
        /* the device accepted the session block and said Hello: the cloud did not answer */
        bool dev_hello_sure = t->device_hello_ok;
        bool rejected = false, stalled = false;
        char wire[384] = "";
        if (dframes > 0) {
            if (dev_hello_sure) {
                if (closed) {
                    stalled = true;
                    snprintf(wire, sizeof wire, "the device Hello decrypts but the cloud sent no Hello; the %s %s "
                             "%.1f s after the device Hello", who((kr_dir)(fc >= 0 ? fc : KR_D2S)),
                             fc >= 0 ? close_word(&t->d[fc]) : "capture ended",
                             (closed ? ct : t->last_time) - dd->last_step_time);
                }
            } else if (t->device_hello_bad) {
                rejected = true;
                snprintf(wire, sizeof wire, "the device's first frame after the session block does not decrypt "
                         "with the session key: the device did not take this session");
            } else if (closed) {
                if (fc == KR_D2S && dframes == 1) {
                    stalled = true;
                    snprintf(wire, sizeof wire, "the device sent one frame (its Hello) and closed %.1f s later "
                             "without a frame from the cloud (the device waits 2 s for the cloud Hello)",
                             ct - dd->last_step_time);
                } else {
                    rejected = true;
                    snprintf(wire, sizeof wire, "after the session block the device sent %u frame%s the cloud "
                             "never answered; the %s %s %.1f s after the session block (first Core firmware "
                             "keeps sending after a failed handshake)", dframes, dframes == 1 ? "" : "s",
                             who((kr_dir)fc), close_word(&t->d[fc]), since);
                }
            }
        } else if (closed) {
            rejected = true;
            if (fc == KR_D2S)
                snprintf(wire, sizeof wire, "the device %s %.3f s after the session block without sending a "
                         "frame%s", close_word(dd), since,
                         since >= 0.2 && since <= 2.0 ? " (firmware 0.4 and later close 250 ms after a failed "
                         "handshake)" : "");
            else
                snprintf(wire, sizeof wire, "the cloud %s %.1f s after the session block; the device sent "
                         "nothing after its id block", close_word(sd), since);
        }
        if (pcode != KR_V_NONE) {
            /* given at the session block; the device's reaction and the close complete the evidence */
            const char *w = wire[0] ? wire : final ? "the capture ends before the device answered the session "
                                                     "block" : "";
            vset(v, pcode, true, "%s%s%s", ptext, w[0] ? "; " : "", w);
            add_note(v, withdrawn);
            return;
        }
        bool key_says_fail = t->session_opened == KR_NO || t->signature_valid == KR_NO ||
                             t->signature_ok == KR_NO;
        if (stalled) {
            vset(v, KR_V_STALLED, t->device_hello_ok, "%s", wire);
            add_note(v, withdrawn);
            return;
        }
        if (!rejected && !final && !(closed && key_says_fail))
            return; /* still going */
        if (!rejected && !key_says_fail) {
            vset(v, KR_V_INCOMPLETE, false, "the capture ends after the session block (%u device frame%s, no "
                 "cloud frame)", dframes, dframes == 1 ? "" : "s");
            add_note(v, withdrawn);
            return;
        }
        const char *w = wire[0] ? wire : "the capture ends before the device answered the session block";
        if (t->session_opened == KR_NO && t->offered_key_known == KR_NO) {
            vset(v, KR_V_DEVICE_KEY_MISMATCH, false, "the session block does not open with %s, but that key is "
                 "not the one the device offers in its id block either, so the keyfile does not hold this "
                 "device's key; %s", kname, w);
        } else if (t->session_opened == KR_YES && t->signature_ok == KR_YES) {
            vset(v, KR_V_DEVICE_KEY_MISMATCH, false, "the session block opens with %s and its signature is "
                 "good, yet the device rejected it: the device holds another private key; %s", kname, w);
        } else if (t->session_opened == KR_YES && t->device_hello_bad) {
            vset(v, KR_V_SESSION_BLOCK_REJECTED, false, "the session block opens with %s but the device did not "
                 "use it; without the server public key a bad signature cannot be ruled out; %s", kname, w);
            add_cand(v, KR_V_DEVICE_KEY_MISMATCH);
            add_cand(v, KR_V_BAD_SIGNATURE);
        } else if (t->signature_valid == KR_YES) {
            vset(v, KR_V_SESSION_BLOCK_REJECTED, false, "%s; the signature has the structure of the server "
                 "public key in the keyfile, which rules out a bad signature: the likely cause is the device "
                 "key (no device key in the keyfile to prove it)", w);
            add_cand(v, KR_V_DEVICE_KEY_MISMATCH);
        } else if (t->session_opened == KR_YES) {
            vset(v, KR_V_SESSION_BLOCK_REJECTED, false, "%s; the session block opens with %s, but without the "
                 "server public key a bad signature cannot be told from a device holding another private key",
                 w, kname);
            add_cand(v, KR_V_DEVICE_KEY_MISMATCH);
            add_cand(v, KR_V_BAD_SIGNATURE);
        } else {
            vset(v, KR_V_SESSION_BLOCK_REJECTED, false, "%s; without the device private key (or the server "
                 "public key) a decryption error and a signature error look the same", w);
            add_cand(v, KR_V_DEVICE_KEY_MISMATCH);
            add_cand(v, KR_V_BAD_SIGNATURE);
        }
        add_note(v, withdrawn);
        return;
    }

    if (t->idblock_seen) {
        bool rejected = false, stalled = false;
        char wire[384] = "";
        if (closed) {
            double since = ct - t->idblock_time;
            if (fc == KR_S2D && since <= KR_AT_ONCE) {
                rejected = true;
                snprintf(wire, sizeof wire, "the cloud %s %.3f s after the id block without a session block",
                         close_word(sd), since);
            } else if (fc == KR_S2D) {
                stalled = true;
                double since_open = t->opened ? ct - t->open_time : since;
                snprintf(wire, sizeof wire, "the cloud %s %.1f s after the id block without a session block%s",
                         close_word(sd), since,
                         since_open >= 100 ? " (the cloud gives a handshake 120 s)" : "");
            } else {
                stalled = true;
                snprintf(wire, sizeof wire, "the cloud sent no session block; the device %s %.1f s after its id "
                         "block%s", close_word(dd), since,
                         since >= 15 && since <= 30 ? " (its 20 s read timeout)" : "");
            }
        }
        if (idcode != KR_V_NONE) {
            /* given at the id block; how the cloud reacted completes the evidence */
            const char *w = wire[0] ? wire : final ? "the capture ends after the id block" : "";
            vset(v, idcode, true, "%s%s%s", idtext, w[0] ? "; " : "", w);
            return;
        }
        if (!closed && !final)
            return; /* the cloud may still answer */
        const char *w = wire[0] ? wire : "the capture ends after the id block";
        if (!rejected && !stalled) {
            vset(v, KR_V_INCOMPLETE, false, "%s", w);
        } else if (t->id_block_opened == KR_YES) {
            if (rejected && t->idblock_split > 0.0005)
                /* spark-protocol decrypts what one socket read returns: a block in two reads fails */
                vset(v, KR_V_UNKNOWN_DEVICE, false, "the id block opens with the server private key and echoes "
                     "the nonce (device %s), yet the cloud closed; the block came in pieces %.3f s apart, and a "
                     "cloud that decrypts what one read returns (spark-protocol) fails on a split block, so that "
                     "may be the cause rather than a missing key; %s", t->device_id_hex, t->idblock_split, w);
            else if (rejected)
                vset(v, KR_V_UNKNOWN_DEVICE, true, "the id block opens with the server private key and echoes "
                     "the nonce: the cloud read device %s and closed, so it has no key for it%s; %s",
                     t->device_id_hex, t->id_plain_len == KR_IDPLAIN_G2_LEN
                     ? " (or it is a cloud older than July 2015 that rejects 214-byte id blocks)" : "", w);
            else {
                vset(v, KR_V_STALLED, false, "the id block opens and echoes the nonce (device %s); %s",
                     t->device_id_hex, w);
                add_cand(v, KR_V_UNKNOWN_DEVICE);
            }
        } else if (rejected) {
            vset(v, KR_V_ID_BLOCK_REJECTED, false, "%s; without the server private key the cause cannot be "
                 "told", w);
            add_cand(v, KR_V_SERVER_KEY_MISMATCH);
            add_cand(v, KR_V_UNKNOWN_DEVICE);
            add_cand(v, KR_V_NONCE_MISMATCH);
        } else {
            vset(v, KR_V_STALLED, false, "%s", w);
        }
        return;
    }

    if (t->nonce_seen) {
        if (closed) {
            double since = ct - t->nonce_time;
            vset(v, KR_V_STALLED, false, "the device sent no id block%s; the %s %s %.1f s after the nonce%s",
                 dd->have ? " (only part of it)" : "", who((kr_dir)fc), close_word(&t->d[fc]), since,
                 fc == KR_S2D && since >= 25 && since <= 40 ? " (the cloud waits 30 s for the id block)"
                 : (fc == KR_D2S && since >= 15 && since <= 30 ? " (the device's 20 s timeout)" : ""));
        } else if (final) {
            vset(v, KR_V_INCOMPLETE, false, "the capture ends after the nonce%s",
                 dd->have ? ", inside the id block" : "");
        }
        return;
    }

    if (closed) {
        if (sd->bytes == 0 && t->opened)
            vset(v, KR_V_NOT_SPARK, false, "the peer accepted the connection but sent no nonce; the %s %s %.1f s "
                 "after the connection opened", who((kr_dir)fc), close_word(&t->d[fc]), ct - t->open_time);
        else if (sd->bytes > 0)
            vset(v, KR_V_NOT_SPARK, false, "the cloud port sent %llu bytes, not a 40-byte nonce, and the %s "
                 "closed", (unsigned long long)sd->bytes, who((kr_dir)fc));
        else
            vset(v, KR_V_INCOMPLETE, false, "no handshake bytes before the close");
        return;
    }
    if (final)
        vset(v, KR_V_INCOMPLETE, false, "%s", (dd->bytes + sd->bytes) ? "the capture ends before the nonce"
                                                                      : "no data on this connection");
}

static bool verdict_differs(const kr_verdict *a, const kr_verdict *b)
{
    if (a->code != b->code || a->proven != b->proven || a->final != b->final ||
        a->n_candidates != b->n_candidates)
        return true;
    for (int i = 0; i < a->n_candidates; i++)
        if (a->candidates[i] != b->candidates[i])
            return true;
    return false;
}

/* Handshake blocks with bytes lost in a gap were never read whole: no key checked them, and the verdict
 * rests on the wire alone. The evidence says so, naming the blocks. */
static void note_lost_blocks(const kr_tracker *t, kr_verdict *v)
{
    const char *names[3];
    int n = 0;
    if (t->nonce_damaged)
        names[n++] = "the nonce";
    if (t->idblock_seen && t->idblock_damaged)
        names[n++] = "the id block";
    if (t->sessionblock_seen && t->sessionblock_damaged)
        names[n++] = "the session block";
    if (n == 0)
        return;
    char note[256];
    snprintf(note, sizeof note, "the handshake could not be read: bytes of %s%s%s%s%s are missing from the "
             "capture (gap), so no key could check %s", names[0], n > 1 ? (n > 2 ? ", " : " and ") : "",
             n > 1 ? names[1] : "", n > 2 ? " and " : "", n > 2 ? names[2] : "", n > 1 ? "them" : "it");
    if (!strstr(v->evidence, note))
        add_note(v, note);
}

static void evaluate(kr_tracker *t, double ts)
{
    bool final = t->finished || (t->d[0].closed && t->d[1].closed) || t->d[0].rst || t->d[1].rst;
    kr_verdict v;
    char withdrawn[512];
    evaluate_into(t, &v, final, withdrawn, sizeof withdrawn);
    if (v.code != KR_V_NONE && !t->not_spark && !t->mid_session)
        note_lost_blocks(t, &v);
    if (v.code == KR_V_NONE) {
        /* nothing decided yet, but the wire has contradicted the key's proof behind the verdict given: its
         * evidence says so until the next verdict is decided */
        if (t->verdict_emitted && withdrawn[0] && !strstr(t->verdict.evidence, withdrawn)) {
            add_note(&t->verdict, withdrawn);
            t->info.verdict = t->verdict;
        }
        return;
    }
    v.final = final;
    v.last_dir = t->d[KR_S2D].last_step_time > t->d[KR_D2S].last_step_time ? KR_S2D : KR_D2S;
    v.time = ts;
    bool changed = !t->verdict_emitted || verdict_differs(&v, &t->verdict);
    if (!changed) {
        /* keep the first time; refresh the words */
        memcpy(t->verdict.evidence, v.evidence, sizeof v.evidence);
        t->verdict.last_step = v.last_step;
        t->verdict.last_dir = v.last_dir;
        t->info.verdict = t->verdict;
        return;
    }
    t->verdict = v;
    t->verdict_emitted = true;
    t->info.verdict = v;
    if (v.code == KR_V_OK)
        t->info.handshake_done = true;
    if (t->cb.verdict)
        t->cb.verdict(t->ud, &t->verdict);
}

/* ---- public API --------------------------------------------------------------------------------- */

kr_tracker *kr_tracker_new(const kr_keyfile *kf, const kr_callbacks *cb, void *ud)
{
    kr_tracker *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->kf = kf;
    if (cb)
        t->cb = *cb;
    t->ud = ud;
    t->d[KR_S2D].st = PST_NONCE;
    t->d[KR_D2S].st = PST_IDBLOCK;
    t->id_block_opened = t->nonce_ok = t->offered_key_known = KR_UNKNOWN;
    t->session_opened = t->signature_valid = t->signature_ok = KR_UNKNOWN;
    t->ota.last_chunk_index = -1;
    t->ota.last_ok_index = -1;
    t->ota.last_answered_index = -1;
    t->info.last_step = KR_STEP_NONE;
    if (!kf || (kr_keyfile_device_key_count(kf) == 0 && kr_keyfile_session_count(kf) == 0))
        snprintf(t->info.no_decrypt_reason, sizeof t->info.no_decrypt_reason,
                 "no device key and no session line in the keyfile");
    return t;
}

void kr_tracker_free(kr_tracker *t)
{
    if (!t)
        return;
    for (int i = 0; i < 2; i++) {
        free(t->d[i].buf);
        free(t->d[i].pt);
        if (t->d[i].cipher)
            kr_cipher_free(t->d[i].cipher);
    }
    kr_tracker_clear_describe(t);
    free(t->vars);
    free(t->funcs);
    free(t);
}

void kr_tracker_open(kr_tracker *t, double ts)
{
    if (!t || t->finished)
        return;
    note_time(t, ts);
    if (t->d[0].bytes || t->d[1].bytes)
        return; /* data came first: too late to start a handshake */
    t->opened = true;
    t->open_time = ts;
    t->d[0].started_at_zero = t->d[1].started_at_zero = true;
}

void kr_tracker_data(kr_tracker *t, kr_dir dir, const uint8_t *data, size_t len, double ts)
{
    if (!t || t->finished || len == 0 || !data || (dir != KR_D2S && dir != KR_S2D))
        return;
    note_time(t, ts);
    kr_dirstate *ds = &t->d[dir];
    if (!t->opened && !t->mid_session && !t->not_spark && t->d[0].bytes == 0 && t->d[1].bytes == 0) {
        /* no connection start seen: the handshake is not in the capture */
        t->mid_session = true;
        for (int i = 0; i < 2; i++)
            enter_resync(t, (kr_dir)i);
        consider_session_lines(t);
        if (!t->session_known && t->n_session_cands == 0)
            snprintf(t->no_decrypt_reason, sizeof t->no_decrypt_reason, "no session key: the capture starts "
                     "after the handshake and the keyfile has no session line");
        else if (!t->session_known)
            snprintf(t->no_decrypt_reason, sizeof t->no_decrypt_reason, "no session key yet: the keyfile's "
                     "session lines are tried on the frames (a one-block frame cut at the start cannot tell)");
        snprintf(t->info.no_decrypt_reason, sizeof t->info.no_decrypt_reason, "%s", t->no_decrypt_reason);
    }
    if (!ds->any_data) {
        ds->any_data = true;
        ds->first_data_time = ts;
    }
    ds->last_data_time = ts;
    ds->bytes += len;
    t->info.bytes[dir] = ds->bytes;
    feed(t, dir, data, len, ts);
    if (t->mid_session && !t->verdict_emitted)
        evaluate(t, ts);
}

static size_t pdu_target_fixed(const kr_dirstate *ds)
{
    switch (ds->st) {
    case PST_NONCE: return KR_NONCE_LEN;
    case PST_IDBLOCK: return KR_IDBLOCK_LEN;
    case PST_SESSION: return KR_SESSIONBLOCK_LEN;
    default: return 0;
    }
}

void kr_tracker_gap(kr_tracker *t, kr_dir dir, uint64_t nbytes, double ts)
{
    if (!t || t->finished || (dir != KR_D2S && dir != KR_S2D))
        return;
    note_time(t, ts);
    kr_dirstate *ds = &t->d[dir];
    uint64_t at = ds->offset;
    ds->gapped = true;
    char nb[48];
    if (nbytes)
        snprintf(nb, sizeof nb, "%llu bytes", (unsigned long long)nbytes);
    else
        snprintf(nb, sizeof nb, "bytes");
    const char *after;
    size_t fixed = pdu_target_fixed(ds);
    if (ds->st == PST_DATA) {
        after = "";
        ds->offset += nbytes;
    } else if (fixed && nbytes && ds->have + nbytes <= fixed && ensure(ds, fixed)) {
        /* inside a handshake block: its boundary is still known */
        ds->sniffed = true;
        memset(ds->buf + ds->have, 0, (size_t)nbytes);
        if (ds->have == 0) {
            ds->pdu_offset = ds->offset;
            ds->pdu_first_time = ts;
        }
        ds->have += (size_t)nbytes;
        ds->offset += nbytes;
        ds->damaged = true;
        after = "; the handshake block they belong to cannot be opened";
    } else if (ds->st == PST_FRAMES && nbytes && ds->have >= 2 && ds->have + nbytes <= want(t, dir) &&
               ensure(ds, want(t, dir))) {
        memset(ds->buf + ds->have, 0, (size_t)nbytes);
        ds->have += (size_t)nbytes;
        ds->offset += nbytes;
        ds->damaged = true;
        ds->have_c1 = false;
        if (ds->cipher)
            kr_cipher_lose_sync(ds->cipher);
        after = ds->cipher ? "; the frame they belong to is lost, the next one decrypts from its second block"
                           : "; the frame they belong to is lost";
    } else {
        if (ds->have)
            emit_data(t, dir, ds->have, ts, "cut short by a gap");
        ds->have = 0;
        ds->damaged = false;
        ds->sniffed = true;
        ds->offset += nbytes;
        if (fixed) {
            /* a handshake block is lost: the rest of this direction can only be frames */
            if (dir == KR_S2D && ds->st == PST_NONCE)
                t->nonce_damaged = true;
        }
        enter_resync(t, dir);
        ds->first_frame_done = true;
        after = ds->cipher ? "; resynchronising at the next frame boundary, whose first block is lost"
                           : "; resynchronising at the next frame boundary";
    }
    if (dir == KR_D2S)
        ds->have_last_id = false;
    kr_tracker_emit_finding(t, KR_FIND_GAP, dir, ts, at, "%s of the %s stream are missing from the capture at "
                            "offset %llu%s", nb, kr_dir_str(dir), (unsigned long long)at, after);
    /* a completed damaged block or frame */
    if (ds->st != PST_RESYNC && ds->st != PST_DATA && ds->have > 0 && ds->have == want(t, dir))
        act(t, dir, ts);
}

void kr_tracker_refused(kr_tracker *t, double ts)
{
    if (!t || t->finished)
        return;
    if (t->d[KR_D2S].bytes == 0 && t->d[KR_S2D].bytes == 0 && !t->mid_session)
        t->refused = true;
    kr_tracker_close(t, KR_S2D, true, ts);
}

static void end_direction(kr_tracker *t, kr_dir dir, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    if (ds->st == PST_RESYNC) {
        resync_scan(t, dir, ts, true);
        if (ds->st == PST_RESYNC && ds->have)
            emit_data(t, dir, ds->have, ts, "with no frame boundary found");
    }
    if (ds->st == PST_DATA && ds->have)
        emit_data(t, dir, ds->have, ts, "not of this protocol");
    if (ds->st == PST_NONCE && ds->have && !t->not_spark) {
        /* the cloud sent fewer than 40 bytes and stopped */
        char why[160];
        if (!nonce_unfit(ds->buf, ds->have, why, sizeof why))
            snprintf(why, sizeof why, "the cloud port sent %zu bytes, not a 40-byte nonce", ds->have);
        declare_not_spark(t, dir, ts, "%s", why);
        if (ds->have)
            emit_data(t, dir, ds->have, ts, "not of this protocol");
    }
}

void kr_tracker_close(kr_tracker *t, kr_dir by, bool rst, double ts)
{
    if (!t || t->finished || (by != KR_D2S && by != KR_S2D))
        return;
    note_time(t, ts);
    kr_dirstate *ds = &t->d[by];
    if (ds->closed && !(rst && !ds->rst))
        return;
    if (!ds->closed) {
        ds->closed = true;
        ds->close_time = ts;
    }
    if (rst)
        ds->rst = true;
    end_direction(t, by, ts);
    if (rst)
        end_direction(t, (kr_dir)!by, ts);
    if (rst || (t->d[0].closed && t->d[1].closed))
        kr_ota_finish(t, ts);   /* the connection is over: an unfinished update is reported now */
    evaluate(t, ts);
}

void kr_tracker_finish(kr_tracker *t, double ts)
{
    if (!t || t->finished)
        return;
    /* the end cannot lie before the last thing seen (callers without a clock pass 0) */
    if (t->any_time && ts < t->last_time)
        ts = t->last_time;
    note_time(t, ts);
    end_direction(t, KR_D2S, ts);
    end_direction(t, KR_S2D, ts);
    kr_ota_finish(t, ts);
    t->finished = true;
    evaluate(t, ts);
    if (!t->verdict_emitted) {
        /* nothing at all happened */
        kr_verdict v;
        memset(&v, 0, sizeof v);
        v.code = KR_V_INCOMPLETE;
        v.final = true;
        v.time = ts;
        snprintf(v.evidence, sizeof v.evidence, "no data on this connection");
        t->verdict = v;
        t->verdict_emitted = true;
        t->info.verdict = v;
        if (t->cb.verdict)
            t->cb.verdict(t->ud, &t->verdict);
    }
}

const kr_conn_info *kr_tracker_info(const kr_tracker *t)
{
    return t ? &t->info : NULL;
}

const kr_verdict *kr_tracker_verdict(const kr_tracker *t)
{
    return t ? &t->verdict : NULL;
}

size_t kr_tracker_function_count(const kr_tracker *t)
{
    return t ? t->n_funcs : 0;
}

const char *kr_tracker_function(const kr_tracker *t, size_t i)
{
    return t && i < t->n_funcs ? t->funcs[i] : NULL;
}

size_t kr_tracker_variable_count(const kr_tracker *t)
{
    return t ? t->n_vars : 0;
}

const char *kr_tracker_variable(const kr_tracker *t, size_t i, kr_var_type *type)
{
    if (!t || i >= t->n_vars)
        return NULL;
    if (type)
        *type = t->vars[i].type;
    return t->vars[i].name;
}

size_t kr_tracker_memory(const kr_tracker *t)
{
    if (!t)
        return 0;
    size_t n = sizeof *t;
    for (int i = 0; i < 2; i++)
        n += t->d[i].cap + t->d[i].pt_cap + (t->d[i].cipher ? 512 : 0);
    n += t->cap_vars * sizeof(kr_var) + t->cap_funcs * sizeof(char *);
    for (size_t i = 0; i < t->n_funcs; i++)
        n += strlen(t->funcs[i]) + 1;
    return n;
}
