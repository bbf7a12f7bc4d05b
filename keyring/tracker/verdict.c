/* sparkwire libkeyring: the tracker's verdict, from the facts the steps gathered. One function per phase
 * of the handshake the connection reached; a failure a key shows is pending until the wire can no longer
 * contradict it, and proven only by a key that belongs to the connection. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tracker_int.h"
#include "rsagate.h"

#define KR_AT_ONCE       5.0    /* a close within this many seconds of the last step is "at once" */

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
    /* the evidence is made at every step: formats of texts only ("%s") are joined without printf */
    const char *f = fmt;
    while ((f = strchr(f, '%')) != NULL && f[1] == 's')
        f += 2;
    if (f) {
        vsnprintf(v->evidence, sizeof v->evidence, fmt, ap);
    } else {
        size_t o = 0, cap = sizeof v->evidence - 1;
        for (f = fmt; *f && o < cap;) {
            const char *a = f, *pc = strchrnul(f, '%');
            size_t n = (size_t)(pc - f);
            if (n == 0) {   /* "%s" */
                a = va_arg(ap, const char *);
                n = strlen(a);
                f += 2;
            } else {
                f = pc;
            }
            n = n < cap - o ? n : cap - o;
            memcpy(v->evidence + o, a, n);
            o += n;
        }
        v->evidence[o] = '\0';
    }
    va_end(ap);
}

/* Which side closed first, or -1. */
static int first_closer(const kr_tracker *t)
{
    const kr_dirstate *d = &t->d[KR_D2S], *s = &t->d[KR_S2D];
    if (d->closed && s->closed)
        return d->close_time < s->close_time ? KR_D2S : s->close_time < d->close_time ? KR_S2D
               : d->close_order < s->close_order ? KR_D2S : KR_S2D;
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
    if (note[0] && l + 2 < sizeof v->evidence) {
        size_t cap = sizeof v->evidence - 1 - l;   /* "; note", cut to the evidence's size */
        size_t n = strnlen(note, cap);
        char *e = v->evidence + l;
        memcpy(e, "; ", 2);
        if (n > cap - 2)
            n = cap - 2;
        memcpy(e + 2, note, n);
        e[2 + n] = '\0';
    }
}

/* A handshake failure that the server private key shows at the id block (KR_V_NONE when it shows none).
 * *proven: the key provably belongs to this connection (bound to this cloud's address, or it opened the
 * block). The verdict is given at that step, pending until the close; the wire facts complete it. */
static kr_verdict_code id_proof(const kr_tracker *t, char *text, size_t len, bool *proven)
{
    if (t->id_block_opened == KR_NO) {
        const kr_entry *spe = krt_server_entry(t, KR_ENTRY_SERVER_PRIVATE);
        *proven = spe && spe->bound;
        if (*proven)
            snprintf(text, len, "the id block does not open with the server private key bound to this cloud "
                     "(cloud=%s): the device encrypted its id to another public key", spe->cloud);
        else
            snprintf(text, len, "the id block does not open with the keyfile's server private key: if that is "
                     "this cloud's key, the device encrypted its id to another public key (a key bound to the "
                     "cloud's address with cloud=ADDR proves it)");
        return KR_V_SERVER_KEY_MISMATCH;
    }
    if (t->nonce_ok == KR_NO) {
        *proven = true;
        snprintf(text, len, "the id block opens with the server private key but does not echo the nonce the "
                 "cloud sent (device %s)", t->device_id_hex);
        return KR_V_NONCE_MISMATCH;
    }
    return KR_V_NONE;
}

/* Whether the server key in the device's flash (device-server-key) differs from the cloud's key (a
 * server-public line for this cloud, or the published Particle cloud key when none is given): KR_YES,
 * KR_NO, or KR_UNKNOWN (no such line, or lines that disagree when the device id is not known). */
static kr_tri device_copy_differs(const kr_tracker *t, char *text, size_t len)
{
    const kr_entry *ce = krt_cloud_public_entry(t);
    const kr_key *cloud = ce ? ce->key : NULL;
    size_t n = kr_keyfile_device_server_key_count(t->kf);
    const kr_entry *first = NULL;
    int differ = 0, same = 0;
    for (size_t i = 0; i < n; i++) {
        const kr_entry *e = kr_keyfile_device_server_key_entry(t->kf, i);
        if (t->device_id_known && memcmp(e->device_id, t->device_id, KR_DEVICE_ID_LEN) != 0)
            continue;
        bool d = cloud ? !kr_key_same_public(e->key, cloud) : !kr_key_is_particle_cloud(e->key);
        differ += d;
        same += !d;
        if (!first)
            first = e;
    }
    if (!first || (differ && same))
        return KR_UNKNOWN;
    char a[65], b[65];
    kr_key_fingerprint(first->key, a);
    snprintf(text, len, "the server key in the device's flash (device-server-key, line %d, fingerprint %s) %s "
             "the cloud's key (%s, fingerprint %s)", first->line, a, differ ? "is not" : "is",
             !cloud ? (kr_keyfile_server_public(t->kf) ? "the published Particle cloud key, as no server key line "
                       "of the keyfile applies to this cloud" : "the published Particle cloud key, as the keyfile "
                       "gives no server-public line")
             : ce->kind == KR_ENTRY_SERVER_PUBLIC ? "server-public" : "the public half of server-private",
             cloud ? kr_key_fingerprint(cloud, b) : KR_PARTICLE_CLOUD_FINGERPRINT);
    return differ ? KR_YES : KR_NO;
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

/* A handshake failure that a device key or the server public key shows at the session block (KR_V_NONE
 * when they show none). *proven: the key provably belongs to this connection (the public key the device
 * offered in its id block, read with the server private key; a server key bound to this cloud or the
 * public half of the key that opened the id block). */
static kr_verdict_code session_proof(const kr_tracker *t, const char *kname, char *text, size_t len,
                                     bool *proven)
{
    if (t->record_differs == KR_YES) {
        *proven = true;
        snprintf(text, len, "the cloud's record of device %s's public key (the keyfile's device-public line) is "
                 "not the public key the device offers in its id block: the cloud encrypts the session key to "
                 "a key the device does not hold", t->device_id_hex);
        return KR_V_DEVICE_KEY_MISMATCH;
    }
    if (t->session_opened == KR_NO && t->offered_key_known != KR_NO) {
        *proven = t->offered_key_known == KR_YES;
        snprintf(text, len, "the session block does not open with %s%s: the cloud encrypted the session key to "
                 "another public key", kname, *proven ? ", the key the device offers in its id block" : "");
        return KR_V_DEVICE_KEY_MISMATCH;
    }
    *proven = t->sig_key_belongs;
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
        *proven = t->id_read;
        snprintf(text, len, "the session block opens with %s, but the public key the device offers in its id "
                 "block is another one: the cloud encrypted to a key the device does not hold", kname);
        return KR_V_DEVICE_KEY_MISMATCH;
    }
    return KR_V_NONE;
}

/* What every phase of the verdict works from. */
typedef struct vctx {
    kr_tracker *t;
    kr_verdict *v;
    bool final;
    char *withdrawn;            /* a key's claim the wire has contradicted since, "" when none */
    size_t wlen;
    int fc;                     /* the side that closed first, or -1 */
    double ct;                  /* when it closed */
    bool closed;
    const kr_dirstate *dd, *sd;
    const char *kname;          /* which device key was tried */
    kr_verdict_code idcode;     /* what the server private key showed at the id block */
    bool idproven;
    bool running;               /* out: the session runs and no key claims a failure (running_inputs) */
    char idtext[384];
} vctx;

/* No handshake to judge: another protocol, a refused connection, a capture that began mid-session. */
static bool v_no_handshake(vctx *c)
{
    kr_tracker *t = c->t;
    kr_verdict *v = c->v;
    const kr_dirstate *dd = c->dd, *sd = c->sd;
    bool final = c->final;
    if (t->not_spark) {
        vset(v, KR_V_NOT_SPARK, false, "%s", krt_str(t->not_spark_why));
        return true;
    }
    if (t->refused) {
        vset(v, KR_V_REFUSED, false, "the connection was refused: the device's SYN was answered by an RST, "
             "not a SYN-ACK, so nothing listens on that address and port or a firewall rejects the connection "
             "(check the cloud address the device uses, and the firewalls on the way)");
        return true;
    }
    if (t->silent_peer && !t->nonce_seen) {
        vset(v, KR_V_NOT_SPARK, false, "the peer accepted the connection but sent no nonce; %.1f s later the "
             "device sent frames on it (first Core firmware does so after its 20 s wait for the nonce)",
             t->silent_after);
        return true;
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
        return true;
    }
    return false;
}

/* Frames both ways after the session block: the handshake went on, whatever a key claimed. */
static void v_session_went_on(vctx *c, kr_verdict_code pcode, const char *ptext)
{
    kr_tracker *t = c->t;
    kr_verdict *v = c->v;
    char *withdrawn = c->withdrawn;
    size_t wlen = c->wlen;
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
    add_note(v, c->idcode != KR_V_NONE ? withdrawn : "");
    c->running = pcode == KR_V_NONE && c->idcode == KR_V_NONE;
}

/* How the device reacted to the session block and who closed: the wire facts. */
static void v_session_wire(vctx *c, char *wire, size_t wsize, bool *rejected, bool *stalled)
{
    kr_tracker *t = c->t;
    const kr_dirstate *dd = c->dd, *sd = c->sd;
    int fc = c->fc;
    double ct = c->ct;
    bool closed = c->closed;
    uint32_t dframes = dd->frames;
    double since = closed ? ct - t->sessionblock_time : 0;
    bool dev_hello_sure = t->device_hello_ok;
        if (dframes > 0) {
        if (dev_hello_sure) {
            if (closed) {
                *stalled = true;
                snprintf(wire, wsize, "the device Hello decrypts but the cloud sent no Hello; the %s %s "
                         "%.1f s after the device Hello", who((kr_dir)(fc >= 0 ? fc : KR_D2S)),
                         fc >= 0 ? close_word(&t->d[fc]) : "capture ended",
                         (closed ? ct : t->last_time) - t->step_time[KR_D2S]);
            }
        } else if (t->device_hello_bad) {
            *rejected = true;
            snprintf(wire, wsize, "the device's first frame after the session block does not decrypt "
                     "with the session key: the device did not take this session");
        } else if (closed) {
            if (fc == KR_D2S && dframes == 1) {
                *stalled = true;
                snprintf(wire, wsize, "the device sent one frame (its Hello) and closed %.1f s later "
                         "without a frame from the cloud (the device waits 2 s for the cloud Hello)",
                         ct - t->step_time[KR_D2S]);
            } else {
                *rejected = true;
                snprintf(wire, wsize, "after the session block the device sent %u frame%s the cloud "
                         "never answered; the %s %s %.1f s after the session block (first Core firmware "
                         "keeps sending after a failed handshake)", dframes, dframes == 1 ? "" : "s",
                         who((kr_dir)fc), close_word(&t->d[fc]), since);
            }
        }
    } else if (closed) {
        *rejected = true;
        if (fc == KR_D2S)
            snprintf(wire, wsize, "the device %s %.3f s after the session block without sending a "
                     "frame%s", close_word(dd), since,
                     since >= 0.2 && since <= 2.0 ? " (firmware 0.4 and later close 250 ms after a failed "
                     "handshake)" : "");
        else
            snprintf(wire, wsize, "the cloud %s %.1f s after the session block; the device sent "
                     "nothing after its id block", close_word(sd), since);
    }
}

/* The device rejected the session block and no key proved why: the causes the keys leave. */
static void v_session_cause(vctx *c, const char *wire)
{
    kr_tracker *t = c->t;
    kr_verdict *v = c->v;
    const char *kname = c->kname;
    const char *w = wire[0] ? wire : "the capture ends before the device answered the session block";
    if (t->session_opened == KR_NO && t->offered_key_known == KR_NO) {
        vset(v, KR_V_DEVICE_KEY_MISMATCH, false, "the session block does not open with %s, but that key is "
             "not the one the device offers in its id block either, so the keyfile does not hold this "
             "device's key; %s", kname, w);
    } else if (t->record_differs == KR_NO && t->signature_valid == KR_YES) {
        vset(v, KR_V_SESSION_BLOCK_REJECTED, false, "%s; the keys at hand rule out both causes: the cloud's "
             "record of the device key (device-public) is the key the device offers, and the signature "
             "verifies with the server public key, so one of these keys is not this connection's", w);
        add_cand(v, KR_V_DEVICE_KEY_MISMATCH);
        add_cand(v, KR_V_BAD_SIGNATURE);
    } else if (t->record_differs == KR_NO) {
        vset(v, KR_V_BAD_SIGNATURE, false, "%s; the cloud's record of the device key (device-public) is the key "
             "the device offers in its id block, which rules out device-key-mismatch: the one cause left is "
             "the signature", w);
    } else if (t->session_opened == KR_YES && t->signature_ok == KR_YES) {
        vset(v, KR_V_DEVICE_KEY_MISMATCH, false, "the session block opens with %s and its signature is "
             "good, yet the device rejected it: the device holds another private key; %s", kname, w);
    } else if (t->signature_valid == KR_YES) {
        vset(v, KR_V_DEVICE_KEY_MISMATCH, false, "%s; the signature verifies with the server public key, which "
             "rules out bad-signature: the one cause left is the device key (the cloud encrypted the session "
             "key to a public key the device does not hold)", w);
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
    add_note(v, c->withdrawn);
}

/* The session block was seen. */
static void v_session_phase(vctx *c)
{
    kr_tracker *t = c->t;
    kr_verdict *v = c->v;
    bool final = c->final, closed = c->closed;
    char ptext[384];
    ptext[0] = '\0';   /* a text: not the whole buffer zeroed at every step */
    bool pproven = false;
    kr_verdict_code pcode = session_proof(t, c->kname, ptext, sizeof ptext, &pproven);
    if (c->dd->frames > 0 && c->sd->frames > 0) {
        v_session_went_on(c, pcode, ptext);
        return;
    }
    bool rejected = false, stalled = false;
    char wire[384] = "";
    v_session_wire(c, wire, sizeof wire, &rejected, &stalled);
    uint32_t dframes = c->dd->frames;
    char *withdrawn = c->withdrawn;
    if (pcode != KR_V_NONE) {
        /* given at the session block; the device's reaction and the close complete the evidence */
        const char *w = wire[0] ? wire : final ? "the capture ends before the device answered the session "
                                                 "block" : "";
        vset(v, pcode, pproven, "%s%s%s%s", ptext,
             pcode == KR_V_DEVICE_KEY_MISMATCH && t->signature_valid == KR_YES
             ? "; the signature verifies with the server public key, which rules out bad-signature" : "",
             w[0] ? "; " : "", w);
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
    v_session_cause(c, wire);
}

/* The id block was seen, no session block. */
static void v_id_phase(vctx *c)
{
    kr_tracker *t = c->t;
    kr_verdict *v = c->v;
    const kr_dirstate *dd = c->dd, *sd = c->sd;
    int fc = c->fc;
    double ct = c->ct;
    bool closed = c->closed, final = c->final;
    kr_verdict_code idcode = c->idcode;
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
        vset(v, idcode, c->idproven, "%s%s%s", c->idtext, w[0] ? "; " : "", w);
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
        char dtext[400];
        kr_tri dc = device_copy_differs(t, dtext, sizeof dtext);
        if (dc == KR_YES) {
            vset(v, KR_V_SERVER_KEY_MISMATCH, false, "%s; %s: the device encrypted its id to a key the cloud "
                 "cannot open", w, dtext);
        } else if (dc == KR_NO) {
            vset(v, KR_V_ID_BLOCK_REJECTED, false, "%s; %s, which rules out server-key-mismatch; without the "
                 "server private key an unknown device and a wrong nonce echo look the same", w, dtext);
            add_cand(v, KR_V_UNKNOWN_DEVICE);
            add_cand(v, KR_V_NONCE_MISMATCH);
        } else {
            vset(v, KR_V_ID_BLOCK_REJECTED, false, "%s; %s the cause cannot be told", w,
                 krt_rsa_skipped(t) ? "with the id block not opened" : "without the server private key");
            add_cand(v, KR_V_SERVER_KEY_MISMATCH);
            add_cand(v, KR_V_UNKNOWN_DEVICE);
            add_cand(v, KR_V_NONCE_MISMATCH);
        }
    } else {
        vset(v, KR_V_STALLED, false, "%s", w);
    }
    return;
}

/* Only the nonce was seen. */
static void v_nonce_phase(vctx *c)
{
    kr_tracker *t = c->t;
    kr_verdict *v = c->v;
    const kr_dirstate *dd = c->dd;
    int fc = c->fc;
    double ct = c->ct;
    if (c->closed) {
        double since = ct - t->nonce_time;
        vset(v, KR_V_STALLED, false, "the device sent no id block%s; the %s %s %.1f s after the nonce%s",
             dd->have ? " (only part of it)" : "", who((kr_dir)fc), close_word(&t->d[fc]), since,
             fc == KR_S2D && since >= 25 && since <= 40 ? " (the cloud waits 30 s for the id block)"
             : (fc == KR_D2S && since >= 15 && since <= 30 ? " (the device's 20 s timeout)" : ""));
    } else if (c->final) {
        vset(v, KR_V_INCOMPLETE, false, "the capture ends after the nonce%s",
             dd->have ? ", inside the id block" : "");
    }
    return;
}

/* Not even the nonce. */
static void v_open_phase(vctx *c)
{
    kr_tracker *t = c->t;
    kr_verdict *v = c->v;
    const kr_dirstate *dd = c->dd, *sd = c->sd;
    int fc = c->fc;
    double ct = c->ct;
    if (c->closed) {
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
    if (c->final)
        vset(v, KR_V_INCOMPLETE, false, "%s", t->nonce_cut ? "the capture ends inside the nonce"
             : (dd->bytes + sd->bytes) ? "the capture ends before the nonce"
                                                                      : "no data on this connection");
}

/* The verdict as the facts seen so far show it (code KR_V_NONE: nothing decided yet). `withdrawn` gets a
 * note when a key's claim given earlier is contradicted by what the wire showed since. */
static bool evaluate_into(kr_tracker *t, kr_verdict *v, bool final, char *withdrawn, size_t wlen)
{
    /* all but the evidence's bytes after its end: this runs at every step */
    memset(v, 0, offsetof(kr_verdict, evidence) + 1);
    memset(&v->n_candidates, 0, sizeof *v - offsetof(kr_verdict, n_candidates));
    withdrawn[0] = '\0';
    v->last_step = t->last_step;
    vctx c;
    c.t = t;
    c.v = v;
    c.final = final;
    c.withdrawn = withdrawn;
    c.wlen = wlen;
    c.fc = first_closer(t);
    c.dd = &t->d[KR_D2S];
    c.sd = &t->d[KR_S2D];
    c.kname = t->device_key_name && t->device_key_name[0] ? t->device_key_name : "the device key";
    c.idcode = KR_V_NONE;
    c.idproven = false;
    c.running = false;
    c.idtext[0] = '\0';
    c.closed = c.fc >= 0;
    c.ct = c.closed ? t->d[c.fc].close_time : 0;
    if (v_no_handshake(&c))
        return false;
    c.idcode = t->idblock_seen ? id_proof(t, c.idtext, sizeof c.idtext, &c.idproven) : KR_V_NONE;
    if (c.idcode != KR_V_NONE && (t->sessionblock_seen || c.sd->frames > 0))
        id_withdrawn(t, c.idcode, withdrawn, wlen);
    if (!t->sessionblock_seen && c.sd->frames > 0 && c.dd->frames > 0) {
        /* cloud frames without a session block: it was lost in a gap, and the session runs */
        vset(v, KR_V_OK, false, "the session block is missing from the capture (gap), but the device and the "
             "cloud exchange frames");
        add_note(v, withdrawn);
    } else if (t->sessionblock_seen) {
        v_session_phase(&c);
    } else if (t->idblock_seen) {
        v_id_phase(&c);
    } else if (t->nonce_seen) {
        v_nonce_phase(&c);
    } else {
        v_open_phase(&c);
    }
    return c.running;
}

/* Everything the verdict of a running session reads (v_session_went_on with no key claiming a failure,
 * the note on blocks lost in a gap): while these are what they were, so are the verdict and its evidence,
 * and only the last step moves on. They are read as whole words, not one by one (this runs for every
 * frame): the flags are bool bytes (0 or 1) among the 32 bytes from `opened`, the facts the keys gave
 * kr_tri bytes (-1, 0, 1: told apart by their two low bits) among the 16 bytes from `id_block_opened`. */
#define FLAG_AT(f) (offsetof(kr_tracker, f) - offsetof(kr_tracker, opened))
#define TRI_AT(f) (offsetof(kr_tracker, f) - offsetof(kr_tracker, id_block_opened))
#define BYTE_IN(at, k, bits) ((at) / 8 == (k) ? (uint64_t)(bits) << (8 * ((at) % 8)) : 0)
#define FLAG_MASK(k) (BYTE_IN(FLAG_AT(not_spark), k, 1) | BYTE_IN(FLAG_AT(refused), k, 1) |                  \
    BYTE_IN(FLAG_AT(silent_peer), k, 1) | BYTE_IN(FLAG_AT(nonce_seen), k, 1) |                                  \
    BYTE_IN(FLAG_AT(mid_session), k, 1) | BYTE_IN(FLAG_AT(idblock_seen), k, 1) |                                \
    BYTE_IN(FLAG_AT(sessionblock_seen), k, 1) | BYTE_IN(FLAG_AT(device_hello_ok), k, 1) |                       \
    BYTE_IN(FLAG_AT(cloud_hello_ok), k, 1) | BYTE_IN(FLAG_AT(session_from_line), k, 1) |                        \
    BYTE_IN(FLAG_AT(session_known), k, 1) | BYTE_IN(FLAG_AT(sig_key_belongs), k, 1) |                           \
    BYTE_IN(FLAG_AT(id_read), k, 1) | BYTE_IN(FLAG_AT(nonce_damaged), k, 1) |                                   \
    BYTE_IN(FLAG_AT(idblock_damaged), k, 1) | BYTE_IN(FLAG_AT(sessionblock_damaged), k, 1) |                    \
    BYTE_IN(FLAG_AT(blocks_disputed), k, 1))
#define TRI_MASK(k) (BYTE_IN(TRI_AT(record_differs), k, 3) | BYTE_IN(TRI_AT(session_opened), k, 3) |            \
    BYTE_IN(TRI_AT(offered_key_known), k, 3) | BYTE_IN(TRI_AT(signature_valid), k, 3) |                         \
    BYTE_IN(TRI_AT(signature_ok), k, 3) | BYTE_IN(TRI_AT(id_block_opened), k, 3) | BYTE_IN(TRI_AT(nonce_ok), k, 3))
_Static_assert(FLAG_AT(not_spark) < 32 && FLAG_AT(refused) < 32 && FLAG_AT(silent_peer) < 32 &&
               FLAG_AT(nonce_seen) < 32 && FLAG_AT(mid_session) < 32 && FLAG_AT(idblock_seen) < 32 &&
               FLAG_AT(sessionblock_seen) < 32 && FLAG_AT(device_hello_ok) < 32 && FLAG_AT(cloud_hello_ok) < 32 &&
               FLAG_AT(session_from_line) < 32 && FLAG_AT(session_known) < 32 && FLAG_AT(sig_key_belongs) < 32 &&
               FLAG_AT(id_read) < 32 && FLAG_AT(nonce_damaged) < 32 && FLAG_AT(idblock_damaged) < 32 &&
               FLAG_AT(sessionblock_damaged) < 32 && FLAG_AT(blocks_disputed) < 32 &&
               offsetof(kr_tracker, opened) + 32 <= sizeof(kr_tracker),
               "the verdict's input flags lie in the 32 bytes read from opened");
/* the kr_tri facts in the first 10 of the 16 bytes read, so that bits 6 and 7 of the last six bytes of the
 * inputs stay free for the facts that are not bytes */
_Static_assert(TRI_AT(record_differs) < 10 && TRI_AT(session_opened) < 10 && TRI_AT(offered_key_known) < 10 &&
               TRI_AT(signature_valid) < 10 && TRI_AT(signature_ok) < 10 && TRI_AT(nonce_ok) < 10 &&
               offsetof(kr_tracker, id_block_opened) + 16 <= sizeof(kr_tracker),
               "the verdict's kr_tri inputs lie in the 10 bytes from id_block_opened");

/* Never 0. Each input has a bit of its own: flag word k's bytes at bit k of each byte, kr_tri word k's two
 * low bits at bits 4 + 2k and 5 + 2k, the others at bits 62, 63, 54, 55 (free: see above). */
static uint64_t running_inputs(const kr_tracker *t, bool final)
{
    static const uint64_t fm[4] = { FLAG_MASK(0), FLAG_MASK(1), FLAG_MASK(2), FLAG_MASK(3) };
    static const uint64_t tm[2] = { TRI_MASK(0), TRI_MASK(1) };
    uint64_t f[4], k[2];
    memcpy(f, &t->opened, sizeof f);
    memcpy(k, &t->id_block_opened, sizeof k);
    uint64_t flags = (f[0] & fm[0]) | (f[1] & fm[1]) << 1 | (f[2] & fm[2]) << 2 | (f[3] & fm[3]) << 3;
    uint64_t tris = (k[0] & tm[0]) | (k[1] & tm[1]) << 2;
    return flags | tris << 4 | 1ull << 63 | (uint64_t)final << 62 | (uint64_t)(t->d[KR_D2S].frames > 0) << 55 |
           (uint64_t)(t->d[KR_S2D].frames > 0) << 54;
}

static bool verdict_differs(const kr_verdict *a, const kr_vstore *b)
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
    char note[384];
    snprintf(note, sizeof note, "the handshake could not be read: bytes of %s%s%s%s%s are missing from the "
             "capture (gap)%s, so no key could check %s%s", names[0], n > 1 ? (n > 2 ? ", " : " and ") : "",
             n > 1 ? names[1] : "", n > 2 ? " and " : "", n > 2 ? names[2] : "",
             t->blocks_disputed ? " or disputed by another copy that differs" : "", n > 1 ? "them" : "it",
             t->session_opened == KR_YES ? "; the session block still opened with the device key, and the frames "
             "decrypt" : "");
    if (!strstr(v->evidence, note))
        add_note(v, note);
}

static void evaluate_again(kr_tracker *t, double ts, bool final, uint64_t inputs);

void krt_evaluate(kr_tracker *t, double ts)
{
    bool final = t->finished || (t->d[0].closed && t->d[1].closed) || t->d[0].rst || t->d[1].rst;
    kr_vstore *cur = t->verdict;
    uint64_t inputs = running_inputs(t, final);
    if (t->verdict_inputs == inputs && cur) {
        /* the verdict a running session was given stands as it is: only the last step moves on */
        t->verdict_step = t->last_step;
        t->verdict_dir = t->step_time[KR_S2D] > t->step_time[KR_D2S] ? KR_S2D : KR_D2S;
        return;
    }
    evaluate_again(t, ts, final, inputs);
}

/* The verdict made anew (apart from krt_evaluate, which runs for every frame, for its buffers' sake). */
static __attribute__((noinline)) void evaluate_again(kr_tracker *t, double ts, bool final, uint64_t inputs)
{
    kr_vstore *cur = t->verdict;
    t->verdict_inputs = 0;
    kr_verdict v;
    char withdrawn[512];
    /* (a skipped handshake's note names why: not kept among the inputs, so made every time) */
    bool running = evaluate_into(t, &v, final, withdrawn, sizeof withdrawn) && !krt_rsa_skipped(t);
    if (v.code != KR_V_NONE && !t->not_spark && !t->mid_session)
        note_lost_blocks(t, &v);
    if (v.code != KR_V_NONE && krt_rsa_skipped(t)) {
        /* no key looked at the handshake: the verdict rests on the wire, and says why */
        char note[256];
        snprintf(note, sizeof note, "the handshake was " KRT_RSA_SKIPPED " (%s), so no key checked it",
                 krt_rsa_skipped(t));
        add_note(&v, note);
    }
    if (v.code == KR_V_NONE) {
        /* nothing decided yet, but the wire has contradicted the key's proof behind the verdict given: its
         * evidence says so until the next verdict is decided */
        if (t->verdict_emitted && withdrawn[0] && !strstr(t->verdict->evidence, withdrawn)) {
            kr_verdict cur;
            krt_verdict_get(t, &cur);
            add_note(&cur, withdrawn);
            krt_verdict_put(t, &cur);
        }
        return;
    }
    v.final = final;
    /* a failure given before the connection ended is pending: the wire may still contradict it */
    if (!final && v.proven && v.code != KR_V_OK && v.code != KR_V_MID_SESSION)
        v.proven = false;
    v.last_dir = t->step_time[KR_S2D] > t->step_time[KR_D2S] ? KR_S2D : KR_D2S;
    v.time = ts;
    bool changed = !t->verdict_emitted || verdict_differs(&v, cur);
    if (!changed) {
        /* keep the first time; refresh the words (in place when the evidence is the same) */
        if (strcmp(cur->evidence, v.evidence) == 0) {
            t->verdict_step = v.last_step;
            t->verdict_dir = (uint8_t)v.last_dir;
        } else {
            kr_verdict keep;
            krt_verdict_get(t, &keep);
            memcpy(keep.evidence, v.evidence, sizeof v.evidence);
            keep.last_step = v.last_step;
            keep.last_dir = v.last_dir;
            if (!krt_verdict_put(t, &keep))
                return;
        }
        t->verdict_inputs = running ? inputs : 0;
        return;
    }
    if (!krt_verdict_put(t, &v))
        return;
    t->verdict_inputs = running ? inputs : 0;
    t->verdict_emitted = true;
    if (v.code == KR_V_OK)
        t->handshake_done = true;
    if (t->cb.verdict)
        t->cb.verdict(t->ud, &v);
}
