/* sparkwire libkeyring: the tracker's handshake steps: the nonce, the id block (opened with the server
 * private key of this cloud) and the session block (opened with a device key, its signature checked with
 * the cloud's public key). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tracker_int.h"
#include "rsagate.h"
#include "keyring/handshake.h"
#include "../src/internal.h"

/* The server key entry of a kind that judges this connection's cloud (bound to its address, else the
 * unbound one; without kr_tracker_set_cloud only the unbound one). */
const kr_entry *krt_server_entry(const kr_tracker *t, kr_entry_kind kind)
{
    return kr_keyfile_server_entry(t->kf, kind, t->cloud_family, t->cloud_family ? t->cloud_addr : NULL,
                                   t->cloud_port);
}

/* The cloud's public key: a server-public line for this cloud, else the public half of its server-private. */
const kr_entry *krt_cloud_public_entry(const kr_tracker *t)
{
    const kr_entry *e = krt_server_entry(t, KR_ENTRY_SERVER_PUBLIC);
    return e ? e : krt_server_entry(t, KR_ENTRY_SERVER_PRIVATE);
}

/* The device id of the keyfile line whose key or session material fits this connection. */
void krt_adopt_id(kr_tracker *t, const kr_entry *e)
{
    if (t->device_id_known || !e || !e->has_id)
        return;
    t->device_id_known = true;
    t->device_id_from_key = true;
    memcpy(t->device_id, e->device_id, KR_DEVICE_ID_LEN);
    kr_device_id_hex(t->device_id, t->device_id_hex);
}

void krt_saw_g3(kr_tracker *t)
{
    if (t->generation == 0 || t->generation == 2)
        t->generation = 3;
}

void krt_do_nonce(kr_tracker *t, double ts)
{
    kr_dirstate *ds = &t->d[KR_S2D];
    kr_step s;
    t->blocks_disputed |= krt_take_dispute(t, KR_S2D, KR_NONCE_LEN);
    krt_step_init(t, &s, KR_STEP_NONCE, KR_S2D, ds->buf, KR_NONCE_LEN, ds->pdu_offset, ds->pdu_first_time, ts);
    t->nonce_seen = true;
    t->nonce_time = ts;
    t->nonce_damaged = ds->damaged;
    memcpy(t->nonce, ds->buf, KR_NONCE_LEN);
    if (ds->damaged) {
        snprintf(s.note, sizeof s.note, "40-byte nonce, %s", ds->disputed ? "disputed: another copy of its "
                 "bytes differs" : "partly lost in a gap");
        s.reason = ds->disputed ? KR_WHY_DISPUTED : KR_WHY_BYTES_LOST;
    }
    else
        snprintf(s.note, sizeof s.note, "40-byte nonce from the cloud (sent in clear)");

    ds->have = 0;
    ds->damaged = ds->disputed = false;
    ds->st = PST_SESSION;
    krt_emit_step(t, &s);
}

void krt_do_idblock(kr_tracker *t, double ts)
{
    kr_dirstate *ds = &t->d[KR_D2S];
    const uint8_t *block = ds->buf;
    t->blocks_disputed |= krt_take_dispute(t, KR_D2S, KR_IDBLOCK_LEN);
    t->idblock_seen = true;
    t->idblock_time = ts;
    t->idblock_damaged = ds->damaged;
    t->idblock_split = ts - ds->pdu_first_time;
    char note[384];
    kr_hs_result res = KR_HS_OK;
    kr_step_reason why = KR_WHY_NONE;
    const kr_entry *spe = krt_server_entry(t, KR_ENTRY_SERVER_PRIVATE);
    const kr_key *sp = spe ? spe->key : NULL;
    if (ds->damaged) {
        snprintf(note, sizeof note, "256-byte id block, %s: not opened", ds->disputed ? "disputed: another copy "
                 "of its bytes differs" : "partly lost in a gap");
        why = ds->disputed ? KR_WHY_DISPUTED : KR_WHY_BYTES_LOST;
    } else if (!sp) {
        snprintf(note, sizeof note, "256-byte id block, RSA-encrypted to the cloud key: not opened "
                 "(no server-private key for this cloud in the keyfile)");
        why = KR_WHY_NO_SERVER_KEY;
    } else if (krt_rsa_skipped(t)) {
        snprintf(note, sizeof note, "256-byte id block, RSA-encrypted to the cloud key: " KRT_RSA_SKIPPED ": %s",
                 krt_rsa_skipped(t));
        why = KR_WHY_RSA_BUDGET;
    } else {
        kr_idblock ib;
        memset(&ib, 0, sizeof ib);
        /* a peer that is not a Spark cloud still had its first 40 bytes taken as the nonce */
        const uint8_t *nonce = (t->nonce_seen && !t->nonce_damaged) ? t->nonce
                               : (t->not_spark && t->s2d_head_len == KR_NONCE_LEN) ? t->s2d_head : NULL;
        res = kr_hs_open_idblock(sp, block, nonce, &ib);
        krt_rsa_charge(t, 1);
        const uint8_t *other = res == KR_HS_NONCE ? krt_nonce_candidate(t, ib.nonce) : NULL;
        if (other) {
            memcpy(t->nonce, other, KR_NONCE_LEN);   /* the copy of the nonce the device received */
            res = KR_HS_OK;
        }
        t->id_result = res;
        if (res == KR_HS_OK || res == KR_HS_NONCE) {
            t->id_block_opened = KR_YES;
            t->id_plain_len = (uint16_t)ib.plain_len;   /* at most 256 */
            t->device_id_known = true;
            memcpy(t->device_id, ib.device_id, KR_DEVICE_ID_LEN);
            kr_device_id_hex(t->device_id, t->device_id_hex);
            t->nonce_ok = res == KR_HS_NONCE ? KR_NO : (nonce ? KR_YES : KR_UNKNOWN);
            t->generation = ib.plain_len == KR_IDPLAIN_G1_LEN ? 1 : (ib.plain_len >= KR_IDPLAIN_G2_LEN ? 2 : 0);
            t->id_read = t->nonce_ok == KR_YES;
            char offered[200] = "";
            if (ib.has_public_key) {
                t->have_offered = EVP_Digest(ib.public_key, KR_DEVICE_SPKI_LEN, t->offered_sha256, NULL,
                                             kr_fetched_sha256(), NULL) == 1;
                const kr_key *rec = kr_keyfile_device_public(t->kf, t->device_id);
                if (rec && t->have_offered)
                    t->record_differs = memcmp(rec->spki_sha256, t->offered_sha256, 32) != 0 ? KR_YES : KR_NO;
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
        } else {
            t->id_block_opened = KR_NO;
            why = KR_WHY_KEY_DOES_NOT_OPEN;
            snprintf(note, sizeof note, "does not open with the server private key (%s): %s; the device "
                     "encrypted its id to another public key", base_name(sp->source), kr_hs_result_str(res));
        }
    }
    kr_step s;
    krt_step_init(t, &s, KR_STEP_IDBLOCK, KR_D2S, block, KR_IDBLOCK_LEN, ds->pdu_offset, ds->pdu_first_time, ts);
    s.hs_result = res;
    s.reason = why;
    snprintf(s.note, sizeof s.note, "%s", note);
    ds->have = 0;
    ds->damaged = ds->disputed = false;
    ds->st = PST_FRAMES;
    krt_emit_step(t, &s);
}

/* Opens E with the device key for the id read from the id block, else with each wildcard key and then every
 * device key (the one that opens it names the device). */
static bool open_with_device_keys(kr_tracker *t, const uint8_t *e, uint8_t m[KR_SESSION_LEN], kr_hs_result *resp)
{
    bool opened = false;
    kr_hs_result res = KR_HS_OK;
    const kr_key *idkey = t->device_id_known ? kr_keyfile_device_key(t->kf, t->device_id) : NULL;
    if (idkey) {
        t->device_keys_tried = 1;
        t->device_key_by_id = t->id_read;
        res = kr_hs_open_session(idkey, e, m);
        krt_set_text(&t->device_key_name, KR_KEYNAME_CAP, "the device key for %s", t->device_id_hex);
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
                krt_set_text(&t->device_key_name, KR_KEYNAME_CAP, "the wildcard device key %s",
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
                krt_set_text(&t->device_key_name, KR_KEYNAME_CAP, "the device key for %s",
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
            krt_set_text(&t->device_key_name, KR_KEYNAME_CAP, "%s",
                     t->device_keys_tried == 1 ? "the keyfile's device key" : "any device key in the keyfile");
    }
    *resp = res;
    return opened;
}

/* Checks the signature with the cloud's public key (and, with M, its HMAC); a note for the step in signote.
 * Returns the result to show on the step. */
static kr_hs_result check_signature(kr_tracker *t, const uint8_t *e, const uint8_t *sig, const uint8_t *m,
                                    bool opened, kr_hs_result res, char *signote, size_t signote_len)
{
    const kr_entry *spe = krt_cloud_public_entry(t);
    const kr_key *spub = spe ? spe->key : NULL;
    const kr_entry *ipe = krt_server_entry(t, KR_ENTRY_SERVER_PRIVATE);
    t->sig_key_belongs = spe && (spe->bound || (t->id_read && ipe && kr_key_same_public(ipe->key, spub)));
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
            snprintf(signote, signote_len, "; signature verifies with the server public key and matches "
                     "the HMAC");
        else if (t->signature_valid == KR_YES && t->signature_ok == KR_NO)
            snprintf(signote, signote_len, "; signature has the cloud's structure but signs another HMAC");
        else if (t->signature_valid == KR_YES)
            snprintf(signote, signote_len, "; signature made by the server key in the keyfile");
        else
            snprintf(signote, signote_len, "; signature was NOT made by the server key in the keyfile");
    }
    return res;
}

void krt_do_sessionblock(kr_tracker *t, double ts)
{
    kr_dirstate *ds = &t->d[KR_S2D];
    const uint8_t *e = ds->buf;
    const uint8_t *sig = ds->buf + KR_SESSION_E_LEN;
    t->blocks_disputed |= krt_take_dispute(t, KR_S2D, KR_SESSIONBLOCK_LEN);
    t->sessionblock_seen = true;
    t->sessionblock_time = ts;
    t->sessionblock_damaged = ds->damaged;
    char note[384] = "";
    char signote[160] = "";
    kr_hs_result res = KR_HS_OK;
    uint8_t m[KR_SESSION_LEN];
    bool opened = false;
    const char *budget = ds->damaged ? NULL : krt_rsa_skipped(t);

    if (budget) {
        snprintf(note, sizeof note, "384-byte session block: " KRT_RSA_SKIPPED ": %s", budget);
    } else if (!ds->damaged) {
        opened = open_with_device_keys(t, e, m, &res);
        krt_rsa_charge(t, (unsigned)t->device_keys_tried);
        if (opened)
            krt_rsa_opened(t, ts);
        if (t->device_keys_tried == 0) {
            t->session_opened = KR_UNKNOWN;
            if (t->device_id_known)
                snprintf(note, sizeof note, "not opened: no device key for %s in the keyfile", t->device_id_hex);
            else
                snprintf(note, sizeof note, "not opened: no device key in the keyfile");
        } else if (opened) {
            t->session_opened = KR_YES;
            t->session_result = KR_HS_OK;
            snprintf(note, sizeof note, "opened with %s: the session key is known", krt_str(t->device_key_name));
        } else {
            t->session_opened = KR_NO;
            t->session_result = res;
            snprintf(note, sizeof note, "does not open with %s (%s): the cloud encrypted the session key to "
                     "another public key", krt_str(t->device_key_name), kr_hs_result_str(res));
        }

        res = check_signature(t, e, sig, m, opened, res, signote, sizeof signote);
    } else {
        snprintf(note, sizeof note, "384-byte session block, %s: not opened", ds->disputed ? "disputed: "
                 "another copy of its bytes differs" : "partly lost in a gap");
    }

    if (!ds->damaged)
        t->session_hint_known = kr_session_hint(e, t->session_hint);
    if (opened)
        krt_install_session(t, m, false);
    else
        krt_consider_session_lines(t);
    if (!t->session_known) {
        if (t->n_session_cands > 0)
            krt_set_text(&t->no_decrypt_reason, KR_WHY_CAP, "%s", "trying the keyfile's session lines");
        else if (budget)
            krt_set_text(&t->no_decrypt_reason, KR_WHY_CAP, "no session key: the handshake was "
                         KRT_RSA_SKIPPED ": %s", budget);
        else if (t->device_keys_tried == 0)
            krt_set_text(&t->no_decrypt_reason, KR_WHY_CAP, "no session key: %s",
                     t->device_id_known ? "no device key for this device in the keyfile"
                                        : "no device key in the keyfile");
        else
            krt_set_text(&t->no_decrypt_reason, KR_WHY_CAP,
                     "no session key: the session block does not open with %s", krt_str(t->device_key_name));
    } else if (!opened) {
        size_t l = strlen(note);
        snprintf(note + l, sizeof note - l, "; session material from the keyfile's session line");
    }

    kr_step s;
    krt_step_init(t, &s, KR_STEP_SESSIONBLOCK, KR_S2D, ds->buf, KR_SESSIONBLOCK_LEN, ds->pdu_offset,
              ds->pdu_first_time, ts);
    s.hs_result = res;
    s.reason = ds->disputed ? KR_WHY_DISPUTED : ds->damaged ? KR_WHY_BYTES_LOST : budget ? KR_WHY_RSA_BUDGET
               : t->device_keys_tried == 0 ? KR_WHY_NO_DEVICE_KEY
               : t->session_opened == KR_NO ? KR_WHY_KEY_DOES_NOT_OPEN : KR_WHY_NONE;
    snprintf(s.note, sizeof s.note, "%s%s", note, signote);
    ds->have = 0;
    ds->damaged = ds->disputed = false;
    ds->st = PST_FRAMES;
    krt_emit_step(t, &s);
}
