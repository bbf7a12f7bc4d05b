/* sparkwire libkeyring: the tracker's session: the session key (from the session block or a session
 * line), one cipher per direction, and the frames decrypted with it. The IV rule lives in the cipher. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tracker_int.h"

/* Frames up to this long are decrypted into the reader's own buffer, without a heap buffer per frame. */
#define KRT_SMALL_FRAME 1024

void krt_install_cipher(kr_tracker *t, kr_dir dir)
{
    kr_dirstate *ds = &t->d[dir];
    kr_cipher_set_key(krt_cipher(ds), t->sess.key, t->sess.iv);
}

void krt_install_session(kr_tracker *t, const uint8_t m[KR_SESSION_LEN], bool from_line)
{
    t->session_known = true;
    t->session_from_line = from_line;
    kr_session_from_material(m, &t->sess);
    krt_install_cipher(t, KR_D2S);
    krt_install_cipher(t, KR_S2D);
    t->n_session_cands = 0;
    if (from_line && t->mid_session)
        t->handshake_done = true;   /* the session came from a session line */
    krt_clear_text(&t->no_decrypt_reason);
}

/* Session lines that may apply when no handshake opened: the one for the device id, else the one whose
 * block= hint names this connection's session block, else all of them (tried on the frames until one alone
 * fits). A hinted line is only selected: it still has to decrypt the frames, and when it does not, every
 * line is tried as if there were no hint. */
void krt_consider_session_lines(kr_tracker *t)
{
    if (t->session_known)
        return;
    if (t->device_id_known) {
        const uint8_t *m = kr_keyfile_session(t->kf, t->device_id);
        if (m) {
            krt_install_session(t, m, true);
            return;
        }
    }
    t->n_session_cands = t->device_id_known ? 0 : kr_keyfile_session_count(t->kf);
    t->session_cands_all = t->n_session_cands > 0;
    long hinted = t->session_cands_all && t->session_hint_known ? kr_keyfile_session_by_hint(t->kf, t->session_hint)
                                                               : -1;
    if (hinted >= 0) {
        t->n_session_cands = 1;
        t->session_cands_all = false;
        t->session_cands[0] = (uint32_t)hinted;
    }
    t->session_cand_hinted = hinted >= 0;
}

static bool coap_plausible(const uint8_t *pt, size_t len)
{
    return len >= 4 && (pt[0] >> 6) == 1 && (pt[0] & 0x0f) <= 8 && len >= 4u + (pt[0] & 0x0f);
}

/* How session line i fits this frame: 0 not, 1 the frame decrypts to a CoAP message (with its first block
 * lost: to valid padding over two blocks or more), 2 the device's first frame decrypts to its Hello.
 * A quick test of one or two blocks rules out nearly every line before the whole frame is decrypted. */
static int line_fit(kr_tracker *t, kr_dir dir, size_t i, const uint8_t *body, size_t len, uint8_t *pt,
                    bool hello)
{
    const kr_entry *e = kr_keyfile_session_entry(t->kf, i);
    const kr_probe_key *k = kr_keyfile_session_probe(t->kf, i);
    uint8_t first[16];
    bool have_first = false;
    if (!e || !k || !kr_cipher_probe(krt_cipher(&t->d[dir]), k, e->session + 16, body, len, first, &have_first) ||
        (have_first && ((first[0] >> 6) != 1 || (first[0] & 0x0f) > 8)))
        return 0;
    size_t pl = 0, skip = 0;
    kr_dec_result r = kr_cipher_trial_probe(krt_cipher(&t->d[dir]), k, e->session + 16, body, len, pt, &pl, &skip);
    if (r == KR_DEC_PARTIAL)
        return len >= 32 ? 1 : 0;
    kr_msg_kind kind = KR_MSG_UNKNOWN;
    if (r != KR_DEC_OK || !coap_plausible(pt, pl))
        return 0;
    return hello && dir == KR_D2S && kr_msg_peek(pt, pl, &kind) && kind == KR_MSG_HELLO ? 2 : 1;
}

static void install_line(kr_tracker *t, size_t i)
{
    const kr_entry *e = kr_keyfile_session_entry(t->kf, i);
    krt_install_session(t, e->session, true);
    const kr_probe_key *k = kr_keyfile_session_probe(t->kf, i);
    kr_cipher_share(krt_cipher(&t->d[KR_D2S]), k);
    kr_cipher_share(krt_cipher(&t->d[KR_S2D]), k);
    krt_adopt_id(t, e);
}

/* Tries the candidate session lines on this frame (no device id tells which applies). One line that fits
 * best is installed; when several fit as well, only they are tried on the next frame. A one-block frame
 * whose first block is lost cannot tell: the next frame can. */
static void try_session_candidates(kr_tracker *t, kr_dir dir, const uint8_t *body, size_t len, bool hello)
{
    if (t->n_session_cands == 0 || len < 16 || (!kr_cipher_in_sync(krt_cipher(&t->d[dir])) && len < 32))
        return;
    uint8_t *pt = malloc(len);
    if (!pt)
        return;
    uint32_t best[8];
    size_t n_best = 0;
    int level = 0;
    for (size_t j = 0; j < t->n_session_cands; j++) {
        size_t i = t->session_cands_all ? j : t->session_cands[j];
        int f = line_fit(t, dir, i, body, len, pt, hello);
        if (f == 0 || f < level)
            continue;
        if (f > level)
            n_best = 0;
        level = f;
        if (n_best < 8)
            best[n_best] = (uint32_t)i;
        n_best++;
    }
    free(pt);
    if (n_best == 1) {
        install_line(t, best[0]);
    } else if (n_best > 1 && n_best <= 8) {
        t->session_cands_all = false;
        t->n_session_cands = n_best;
        memcpy(t->session_cands, best, n_best * sizeof best[0]);
        krt_set_text(&t->no_decrypt_reason, KR_WHY_CAP, "no session key yet: %zu of the keyfile's "
                 "session lines decrypt this connection's frames alike; the next frame decides", n_best);
    } else if (n_best == 0 && t->session_cand_hinted) {
        /* the line the hint named does not decrypt this frame: every line is tried, as without a hint */
        t->session_cand_hinted = false;
        t->session_cands_all = true;
        t->n_session_cands = kr_keyfile_session_count(t->kf);
        try_session_candidates(t, dir, body, len, hello);
    } else if (n_best == 0) {
        krt_set_text(&t->no_decrypt_reason, KR_WHY_CAP, "no session key: none of the keyfile's "
                 "session lines decrypts this connection's frames");
    }
}

/* out = a then b, cut to cap (the per-frame notes, without printf's cost) */
static void note_join(char *out, size_t cap, const char *a, const char *b)
{
    size_t la = a[0] ? strnlen(a, cap - 1) : 0, lb = strnlen(b, cap - 1 - la);   /* a is "" but on a reread */
    memcpy(out, a, la);
    memcpy(out + la, b, lb);
    out[la + lb] = '\0';
}

/* Decrypts the frame in the buffer with this direction's cipher into s (and m when it carries a message).
 * Returns whether a message was read; *bad when the frame should decrypt but does not. */
static bool decrypt_frame(kr_tracker *t, kr_dir dir, kr_step *s, kr_message *m, double ts, bool *bad,
                          char *badwhy, size_t badlen, const char *again, uint8_t *small)
{
    kr_dirstate *ds = &t->d[dir];
    size_t len = ds->have - 2;
    const uint8_t *body = ds->buf + 2;
    bool have_msg = false;
    uint8_t *pt = small;
    if (len > KRT_SMALL_FRAME) {
        /* a long frame: a buffer made for it, given back after the PDU (krt_release) */
        if (ds->pt_cap < len) {
            free(ds->pt);
            ds->pt = malloc(len);
            ds->pt_cap = ds->pt ? len : 0;
        }
        pt = ds->pt;
    }
    size_t pl = 0, skip = 0;
    if (!pt)
        kr_cipher_pass(krt_cipher(ds), body, len);   /* out of memory: the IV chain still moves on */
    kr_dec_result r = pt ? kr_cipher_decrypt(krt_cipher(ds), body, len, pt, &pl, &skip) : KR_DEC_BAD_LENGTH;
    if (r == KR_DEC_OK && coap_plausible(pt, pl)) {
        s->frame_state = KR_FRAME_DECRYPTED;
        kr_msg_interpret(t, m, dir, ts, ds->pdu_offset, pt, pl, false);
        have_msg = true;
    } else if (r == KR_DEC_PARTIAL) {
        s->frame_state = KR_FRAME_PARTIAL;
        s->plaintext_skip = skip;
        kr_msg_interpret(t, m, dir, ts, ds->pdu_offset, pt, pl, true);
        have_msg = true;
    } else {
        *bad = true;
        s->frame_state = KR_FRAME_DECRYPT_ERROR;
        s->reason = r == KR_DEC_BAD_PADDING ? KR_WHY_BAD_PADDING : r == KR_DEC_OK ? KR_WHY_NOT_COAP
                   : KR_WHY_BAD_LENGTH;
        snprintf(badwhy, badlen, "%s",
                 r == KR_DEC_BAD_PADDING ? "the padding is wrong"
                 : r == KR_DEC_OK ? "the plaintext is not a CoAP message" : "the length is wrong");
        snprintf(s->note, sizeof s->note, "%sdoes not decrypt with the session key: %s", again, badwhy);
    }
    if (have_msg) {
        s->plaintext = pt;
        s->plaintext_len = pl;
        s->msg = m;
        if (!t->no_texts)
            note_join(s->note, sizeof s->note, again, m->summary);
        ds->frames_ok++;
    }
    return have_msg;
}

/* Whether a frame body of len bytes decrypts at the cipher's place in the IV chain to a CoAP message (from
 * its second block when the first one's IV was lost), without moving the cipher on. */
bool krt_frame_passes(kr_tracker *t, kr_dir dir, const uint8_t *body, size_t len)
{
    kr_dirstate *ds = &t->d[dir];
    uint8_t *pt = malloc(len ? len : 1);
    if (!pt)
        return false;
    size_t pl = 0, skip = 0;
    kr_dec_result r = kr_cipher_trial(ds->cipher, t->sess.key, t->sess.iv, body, len, pt, &pl, &skip);
    bool ok = (r == KR_DEC_OK && coap_plausible(pt, pl)) || (r == KR_DEC_PARTIAL && len >= 32);
    free(pt);
    return ok;
}

void krt_do_frame(kr_tracker *t, kr_dir dir, double ts)
{
    krt_read_frame(t, dir, ts, "");
}

/* Reads the frame in dir's buffer; again prefixes its note (a frame read again from another copy). */
void krt_read_frame(kr_tracker *t, kr_dir dir, double ts, const char *again)
{
    kr_dirstate *ds = &t->d[dir];
    size_t len = ds->have - 2;
    const uint8_t *body = ds->buf + 2;
    kr_step s;
    bool hello = !ds->first_frame_done && t->sessionblock_seen && !t->mid_session;
    kr_msg_prefetch(t, dir);
    krt_step_init(t, &s, hello ? KR_STEP_HELLO : KR_STEP_FRAME, dir, ds->buf, ds->have, ds->pdu_offset,
              ds->pdu_first_time, ts);
    if (hello)
        ds->first_frame_done = true;
    s.frame_len = (uint16_t)len;

    kr_message m;
    uint8_t small[KRT_SMALL_FRAME];   /* the plaintext of a usual frame, valid through the callbacks */
    bool have_msg = false;
    bool bad = false;
    char badwhy[160];
    badwhy[0] = '\0';
    krt_take_dispute(t, dir, ds->have);
    if (ds->damaged) {
        s.frame_state = KR_FRAME_NOT_DECRYPTED;
        s.reason = ds->disputed ? KR_WHY_DISPUTED : KR_WHY_BYTES_LOST;
        snprintf(s.note, sizeof s.note, "%s: not decrypted", ds->disputed ? "another copy of this frame's bytes "
                 "differs" : "bytes of this frame were lost in a gap");
        kr_cipher_lose_sync(krt_cipher(ds));
    } else {
        if (!krt_keyed(ds) && t->n_session_cands > 0)
            try_session_candidates(t, dir, body, len, hello);
        if (!krt_keyed(ds)) {
            kr_cipher_pass(krt_cipher(ds), body, len);
            s.frame_state = KR_FRAME_NOT_DECRYPTED;
            s.reason = KR_WHY_NO_SESSION_KEY;
            if (!t->no_texts)
                note_join(s.note, sizeof s.note, "not decrypted: ",
                          t->no_decrypt_reason && t->no_decrypt_reason[0] ? t->no_decrypt_reason : "no session key");
        } else {
            have_msg = decrypt_frame(t, dir, &s, &m, ts, &bad, badwhy, sizeof badwhy, again, small);
        }
    }
    /* the frame is counted once it has been decrypted (or not); the cipher moved its IV on */
    ds->frames++;
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
    if (have_msg && dir == KR_D2S && m.kind == KR_MSG_HELLO && t->generation == 0 && m.payload_len >= 6) {
        /* the Hello tells the firmware generation when the id block could not */
        t->generation = m.platform_id >= 0 ? 2 : 1;
    }
    if (have_msg) {
        m.index = t->msg_index;
    }
    krt_emit_step(t, &s);
    if (have_msg) {
        t->msg_index++;
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
    ds->damaged = ds->disputed = false;
    ds->scan_from = 0;
    krt_shrink(ds);
}
