/* sparkwire libkeyring: the tracker's byte pump. Each direction has its own small parser: fixed-size
 * handshake PDUs (40 / 256 / 384 bytes), then 2-byte-length frames; a resync state that looks for a chain of
 * plausible frame lengths (after a gap, a damaged length prefix, or when the capture starts mid-session);
 * and a data state for peers that do not speak the protocol. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tracker_int.h"
#include "rsagate.h"
#include "keyring/conn.h"

/* The size a buffer of cap bytes grows to for need bytes (cap when they fit). */
static size_t grown_cap(size_t cap, size_t need)
{
    if (need <= cap)
        return cap;
    size_t c = cap ? cap : 64;
    while (c < need)
        c *= 2;
    if (c > 2 + KR_FRAME_MAX)
        c = need > 2 + KR_FRAME_MAX ? need : 2 + KR_FRAME_MAX;
    return c;
}

static bool ensure(kr_dirstate *ds, size_t need)
{
    if (need <= ds->cap)
        return true;
    size_t c = grown_cap(ds->cap, need);
    uint8_t *n = realloc(ds->buf, c);
    if (!n)
        return false;
    ds->buf = n;
    ds->cap = c;
    return true;
}

/* After a large PDU, give the memory back: most frames are tiny. */
#define SHRINK_ABOVE 8192
#define SHRINK_TO 256
void krt_shrink(kr_dirstate *ds)
{
    if (ds->cap > SHRINK_ABOVE && ds->have <= SHRINK_TO) {
        uint8_t *n = realloc(ds->buf, SHRINK_TO);
        if (n) {
            ds->buf = n;
            ds->cap = SHRINK_TO;
        }
    }
    if (ds->pt_cap > SHRINK_ABOVE) {
        free(ds->pt);
        ds->pt = NULL;
        ds->pt_cap = 0;
    }
}

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

/* Why 40 bytes cannot be a nonce (NULL when they can): the one rule, in keyring/conn/nonce.c. */
static const char *nonce_unfit(const uint8_t *b, size_t n, char *why, size_t whylen)
{
    return kr_nonce_unfit(b, n, why, whylen);
}

static void go_data(kr_tracker *t, kr_dir dir, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    ds->st = PST_DATA;
    while (ds->have >= KR_DATA_BLOCK)
        krt_emit_data(t, dir, KR_DATA_BLOCK, ts, "not of this protocol");
}

static void declare_not_spark(kr_tracker *t, kr_dir dir, double ts, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void declare_not_spark(kr_tracker *t, kr_dir dir, double ts, const char *fmt, ...)
{
    if (!t->not_spark) {
        t->not_spark = true;
        va_list ap;
        va_start(ap, fmt);
        krt_vset_text(&t->not_spark_why, KR_WHY_CAP, fmt, ap);
        va_end(ap);
    }
    go_data(t, dir, ts);
    krt_evaluate(t, ts);
}

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

/* Re-feeds the buffer from position p in the frame state, after the p bytes before it went out as data. */
static void refeed_from(kr_tracker *t, kr_dir dir, size_t p, double ts, const char *why)
{
    kr_dirstate *ds = &t->d[dir];
    krt_emit_data(t, dir, p, ts, why);
    size_t n = ds->have;
    uint8_t *tmp = malloc(n ? n : 1);
    if (!tmp)
        return;
    memcpy(tmp, ds->buf, n);
    ds->have = 0;
    ds->st = PST_FRAMES;
    ds->offset -= n;
    krt_feed(t, dir, tmp, n, ts);
    free(tmp);
}

static void resync_scan(kr_tracker *t, kr_dir dir, double ts, bool ended)
{
    kr_dirstate *ds = &t->d[dir];
    size_t p;
    for (p = ds->scan_from < ds->have ? ds->scan_from : 0; p < ds->have; p++) {
        int r = chain_at(ds->buf, ds->have, p, ended);
        if (r == 1) {
            ds->scan_from = 0;
            refeed_from(t, dir, p, ts, t->mid_session && ds->frames == 0 ? "before the first frame boundary"
                                                                     : "skipped to the next frame boundary");
            return;
        }
        if (r == -1)
            break;
    }
    ds->scan_from = p;
    if (ended) {
        krt_emit_data(t, dir, ds->have, ts, "with no frame boundary found");
        ds->scan_from = 0;
    } else if (ds->have >= KR_RESYNC_CAP && p > 0) {
        krt_emit_data(t, dir, p, ts, "with no frame boundary found");
        ds->scan_from = 0;
    }
}

/* A frame length above what a resync accepts (KR_RESYNC_MAXLEN) may be a damaged prefix (one flipped bit
 * makes 0x0010 0x8010) that would swallow the rest of the session. While its bytes arrive, a chain of
 * plausible frame lengths starting inside it (KR_RESYNC_CHAIN of them, or up to the end of the stream)
 * marks where the next real frame starts: the bytes before it are the damaged frame. Its first block,
 * right after the prefix, is the next frame's IV, so with the session key the next frame decrypts whole. */
static bool check_long_frame(kr_tracker *t, kr_dir dir, double ts, bool ended)
{
    kr_dirstate *ds = &t->d[dir];
    if (ds->st != PST_FRAMES || ds->have < 3 || ds->damaged ||
        ((unsigned)ds->buf[0] << 8 | ds->buf[1]) <= KR_RESYNC_MAXLEN)
        return false;
    size_t p;
    for (p = ds->scan_from > 2 ? ds->scan_from : 2; p < ds->have; p++) {
        int r = chain_at(ds->buf, ds->have, p, ended);
        if (r == -1)
            break;
        if (r == 0)
            continue;
        ds->scan_from = 0;
        if (p >= 18 && krt_keyed(ds) && kr_cipher_in_sync(ds->cipher)) {
            /* kept: a copy of its length prefix that frames it may still come (reread.c) */
            kr_cipher_state before;
            kr_cipher_save(ds->cipher, &before);
            krt_kept_add(t, dir, &before, ds->pdu_offset, ds->buf, p, ds->pdu_first_time, !ds->first_frame_done &&
                         t->sessionblock_seen && !t->mid_session, false, false);
        }
        if (p >= 18)
            kr_cipher_pass(krt_cipher(ds), ds->buf + 2, p - 2);
        else
            kr_cipher_lose_sync(krt_cipher(ds));
        ds->frames++;
        ds->first_frame_done = true;
        ds->have_last_id = false;   /* a message went by unread: no counter gap can be told */
        refeed_from(t, dir, p, ts, "of a frame whose length prefix is damaged: resynchronised at the next "
                    "frame boundary");
        return true;
    }
    ds->scan_from = p;
    return false;
}

/* Whether the frame at p of dir's buffer (its prefix and all its bytes held, ending by `have`) decrypts
 * at the cipher's place in the IV chain: 1 yes, 0 no, -1 it cannot be told (not all there, no key). */
static int frame_decrypts_at(kr_tracker *t, kr_dir dir, size_t p, size_t have)
{
    kr_dirstate *ds = &t->d[dir];
    if (p + 2 > have)
        return -1;
    unsigned l = (unsigned)ds->buf[p] << 8 | ds->buf[p + 1];
    if (!valid_len(l, KR_FRAME_MAX))
        return 0;
    if (p + 2 + l > have || !krt_keyed(ds) || !kr_cipher_in_sync(ds->cipher))
        return -1;
    uint8_t *pt = malloc(l);
    if (!pt)
        return -1;
    size_t pl = 0, skip = 0;
    kr_dec_result r = kr_cipher_trial(ds->cipher, t->sess.key, t->sess.iv, ds->buf + p + 2, l, pt, &pl, &skip);
    free(pt);
    return r == KR_DEC_OK ? 1 : 0;
}

/* A frame of n bytes (still in the buffer) did not decrypt with the session key. When its length prefix
 * was damaged into a longer one (0x0010 read as 0x0110), it swallowed the start of the frames after it.
 * The real boundary is where a frame decrypts with the IV the rule gives after the damaged one (its first
 * ciphertext block, the same whatever its true length): candidates are tried at each block boundary, and
 * the first whose frame decrypts wins. The bytes from there are read again as frames. */
static void resync_by_decryption(kr_tracker *t, kr_dir dir, size_t n, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    if (ds->st != PST_FRAMES || ds->have != 0 || n < 2 + 32 || ds->cap < n)
        return;
    for (size_t p = 2 + 16; p + 2 + 16 <= n; p += 16) {
        if (frame_decrypts_at(t, dir, p, n) != 1)
            continue;
        size_t tail = n - p;
        uint8_t *tmp = malloc(tail);
        if (!tmp)
            return;
        memcpy(tmp, ds->buf + p, tail);
        krt_kept_forget(t, dir);    /* the frame kept last was not one */
        ds->have_last_id = false;   /* a message went by unread: no counter gap can be told */
        kr_tracker_emit_finding(t, KR_FIND_DECRYPT_ERROR, dir, ts, ds->pdu_offset,
                                "the frame at offset %llu has a damaged length prefix (it says %zu bytes): the "
                                "next frame, found by decryption, starts %zu bytes after it; read again from there",
                                (unsigned long long)ds->pdu_offset, n - 2, p);
        ds->offset -= tail;
        krt_feed(t, dir, tmp, tail, ts);
        free(tmp);
        return;
    }
}

/* The stream ends inside a frame whose plausible length prefix was damaged into a longer one: the frame
 * is where its body decrypts under the IV rule and lengths that fit the rest of the stream follow. It is
 * read at that length; the rest is read again as frames. */
static bool end_boundary_by_decryption(kr_tracker *t, kr_dir dir, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    if (ds->st != PST_FRAMES || ds->damaged || ds->have < 2 + 32 || !krt_keyed(ds) ||
        !kr_cipher_in_sync(ds->cipher))
        return false;
    uint8_t *pt = malloc(ds->have);
    if (!pt)
        return false;
    size_t p;
    for (p = 2 + 16; p + 2 <= ds->have; p += 16) {
        size_t pl = 0, skip = 0;
        if (chain_at(ds->buf, ds->have, p, true) == 1 &&
            kr_cipher_trial(ds->cipher, t->sess.key, t->sess.iv, ds->buf + 2, p - 2, pt, &pl, &skip) == KR_DEC_OK)
            break;
    }
    free(pt);
    if (p + 2 > ds->have)
        return false;
    size_t tail = ds->have - p;
    uint8_t *tmp = malloc(tail);
    if (!tmp)
        return false;
    memcpy(tmp, ds->buf + p, tail);
    kr_tracker_emit_finding(t, KR_FIND_DECRYPT_ERROR, dir, ts, ds->pdu_offset,
                            "the frame at offset %llu has a damaged length prefix (it says %u bytes, the stream "
                            "ends first): it decrypts as %zu bytes; the rest is read again from there",
                            (unsigned long long)ds->pdu_offset, (unsigned)ds->buf[0] << 8 | ds->buf[1], p - 2);
    ds->have = p;
    krt_do_frame(t, dir, ts);
    krt_evaluate(t, ts);
    ds->offset -= tail;
    krt_feed(t, dir, tmp, tail, ts);
    free(tmp);
    return true;
}

void krt_enter_resync(kr_tracker *t, kr_dir dir)
{
    kr_dirstate *ds = &t->d[dir];
    ds->st = PST_RESYNC;
    ds->scan_from = 0;
    krt_kept_forget(t, dir);
    kr_cipher_lose_sync(krt_cipher(ds));
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
        krt_enter_resync(t, (kr_dir)i);
        if (n) {
            uint8_t *tmp = malloc(n);
            if (!tmp)
                continue;
            memcpy(tmp, ds->buf, n);
            ds->offset -= n;
            krt_feed(t, (kr_dir)i, tmp, n, ts);
            free(tmp);
        }
    }
    krt_consider_session_lines(t);
    if (!t->session_known && t->n_session_cands == 0) {
        krt_set_text(&t->no_decrypt_reason, KR_WHY_CAP,
                 "no session key: the capture starts after the handshake and the keyfile has no session line");
    }
    krt_evaluate(t, ts);
}

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

/* The whole frame in dir's buffer is read, and kept for a copy of its bytes that may still come (reread.c)
 * when it was read with the session key (known before it, or from a session line it fitted). Returns
 * whether it did not decrypt. */
static bool read_whole_frame(kr_tracker *t, kr_dir dir, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    uint32_t bad = ds->frames_bad, ok = ds->frames_ok;
    size_t n = ds->have;
    bool whole = !ds->damaged;
    bool hello = !ds->first_frame_done && t->sessionblock_seen && !t->mid_session;
    uint64_t off = ds->pdu_offset;
    double first = ds->pdu_first_time;
    kr_cipher_state before;
    kr_cipher_save(ds->cipher, &before);
    krt_do_frame(t, dir, ts);
    if (whole && krt_keyed(ds)) {
        if (!before.passed) {
            memcpy(before.iv, t->sess.iv, 16);   /* no frame went by before it: its IV was the first one */
            before.in_sync = true;
        }
        krt_kept_add(t, dir, &before, off, ds->buf, n, first, hello, ds->frames_ok > ok, ds->frames_bad > bad);
    }
    krt_evaluate(t, ts);
    return ds->frames_bad > bad;
}

/* A frame's length prefix (2 bytes held) or the whole frame. */
static void act_frame(kr_tracker *t, kr_dir dir, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    if (ds->have == 2) {
        unsigned l = (unsigned)ds->buf[0] << 8 | ds->buf[1];
        if (!valid_len(l, KR_FRAME_MAX)) {
            kr_cipher_state at;
            kr_cipher_save(ds->cipher, &at);
            krt_enter_resync(t, dir);
            krt_kept_boundary(t, dir, &at);   /* another copy of the prefix may still frame a frame here */
            /* the 2 bytes stay in the window; the scan decides */
            resync_scan(t, dir, ts, false);
        }
        return;
    }
    krt_copies_frame(t, dir);
    size_t n = ds->have;
    if (read_whole_frame(t, dir, ts))
        resync_by_decryption(t, dir, n, ts);
}

/* A frame that the bytes at p hold whole from its length prefix on, when dir waits for a frame: read where
 * it lies instead of copied into the buffer first. The buffer is lent those bytes (read only: no copy of
 * a frame's bytes is waiting to be laid over them) while the frame is read, then given back. What follows
 * is what reading it from the buffer does, the buffer's size included: a frame that does not decrypt is
 * copied in for the search of the boundary by decryption when the buffer would have held it then.
 * Returns the bytes taken (0: none, the frame goes through the buffer). */
static size_t frame_in_place(kr_tracker *t, kr_dir dir, const uint8_t *p, size_t len, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    if (ds->st != PST_FRAMES || ds->have != 0 || ds->damaged || t->copies || len < 2)
        return 0;
    unsigned l = (unsigned)p[0] << 8 | p[1];
    size_t n = 2 + (size_t)l;
    if (!valid_len(l, KR_FRAME_MAX) || n > len)
        return 0;
    uint8_t *own = ds->buf;
    size_t own_cap = ds->cap;
    ds->buf = (uint8_t *)(uintptr_t)p;
    ds->cap = 0;                       /* nothing grows or shrinks a lent buffer */
    ds->have = n;
    ds->offset += n;
    bool bad = read_whole_frame(t, dir, ts);
    ds->buf = own;
    ds->cap = own_cap;
    if (bad) {
        size_t cap = grown_cap(own_cap, n);
        if (cap > SHRINK_ABOVE)
            cap = SHRINK_TO;           /* krt_shrink after the frame */
        if (cap >= n && ensure(ds, n)) {
            memcpy(ds->buf, p, n);
            resync_by_decryption(t, dir, n, ts);
        }
    }
    return n;
}

/* The frame being read in dir is the first len bytes of its buffer (another copy of its length prefix said
 * so, and the frame it frames decrypts): it is read at that length, and the bytes after it are read again. */
void krt_reframe(kr_tracker *t, kr_dir dir, size_t len, double ts)
{
    kr_dirstate *ds = &t->d[dir];
    size_t tail = ds->have - len;
    uint8_t *tmp = malloc(tail ? tail : 1);
    if (!tmp)
        return;
    memcpy(tmp, ds->buf + len, tail);
    ds->have = len;
    ds->scan_from = 0;
    act_frame(t, dir, ts);
    ds->offset -= tail;
    krt_feed(t, dir, tmp, tail, ts);
    free(tmp);
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
        krt_do_nonce(t, ts);
        krt_copies_settle(t, dir, ts);
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
                    krt_evaluate(t, ts);
                } else {
                    enter_mid_session(t, ts);
                }
            }
            return;
        }
        if (krt_rsa_gate(t, dir, ts))
            return;   /* waits for the RSA budget: the block stays in the buffer */
        krt_do_idblock(t, ts);
        krt_evaluate(t, ts);
        krt_copies_settle(t, dir, ts);
        return;
    case PST_SESSION:
        if (krt_rsa_gate(t, dir, ts))
            return;
        krt_do_sessionblock(t, ts);
        krt_evaluate(t, ts);
        krt_copies_settle(t, dir, ts);
        return;
    case PST_FRAMES:
        act_frame(t, dir, ts);
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
            krt_emit_data(t, dir, KR_DATA_BLOCK, ts, "not of this protocol");
        return;
    }
}

void krt_feed(kr_tracker *t, kr_dir dir, const uint8_t *p, size_t len, double ts)
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
        if (krt_rsa_holding(t) && krt_rsa_hold_feed(t, dir, p, len, ts))
            return;   /* a handshake block waits for the RSA budget: the rest is held */
        /* the cloud sending past its nonce before the device's id block: not this protocol */
        if (dir == KR_S2D && ds->st == PST_SESSION && ds->have == 0 && !t->idblock_seen && !t->mid_session &&
            !t->d[KR_D2S].gapped) {
            if (!t->early_done && t->d[KR_D2S].offset == 0 && t->early_len + len <= KR_EARLY_MAX) {
                /* hold them: a gap at the start of the device's stream may yet show its id block was lost */
                uint8_t *e = realloc(t->early, t->early_len + len);
                if (e) {
                    memcpy(e + t->early_len, p, len);
                    t->early = e;
                    t->early_len += len;
                    t->early_hold = true;
                    t->early_time = ts;
                    return;
                }
            }
            declare_not_spark(t, dir, ts, "the cloud sent more than 40 bytes before the device's 256-byte id "
                              "block");
        }
        if (ds->have == 0) {
            ds->pdu_offset = ds->offset;
            ds->pdu_first_time = ts;
            size_t took = frame_in_place(t, dir, p, len, ts);
            if (took) {
                p += took;
                len -= took;
                continue;
            }
        }
        size_t target = want(t, dir);
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
            krt_emit_data(t, dir, 1, ts, "with no frame boundary found");
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
        if (ds->st == PST_FRAMES && ds->have < target && check_long_frame(t, dir, ts, false))
            continue;   /* re-fed from the next frame boundary */
        if (ds->st == PST_RESYNC || ds->have == target)
            act(t, dir, ts);
    }
    /* whether a handshake block must stay matters only for a buffer between PDUs */
    krt_release(ds, ds->have == 0 && ds->buf ? krt_copies_need_buffer(t, dir) : true);
}

/* The held cloud bytes go through now: as the handshake when the device's id block was lost, else they
 * show the peer is not a Spark cloud. */
void krt_flush_early(kr_tracker *t, double ts)
{
    if (!t->early_hold)
        return;
    t->early_hold = false;
    t->early_done = true;
    uint8_t *b = t->early;
    size_t n = t->early_len;
    t->early = NULL;
    t->early_len = 0;
    krt_feed(t, KR_S2D, b, n, t->early_time > ts ? ts : t->early_time);
    free(b);
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
    if (krt_rsa_holding(t) && krt_rsa_hold_gap(t, dir, nbytes, ts))
        return;
    krt_note_time(t, ts);
    kr_dirstate *ds = &t->d[dir];
    uint64_t at = ds->offset;
    ds->gapped = true;
    krt_kept_forget(t, dir);        /* frames after the gap do not follow the ones kept */
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
        kr_cipher_lose_sync(krt_cipher(ds));
        after = krt_keyed(ds) ? "; the frame they belong to is lost, the next one decrypts from its second block"
                           : "; the frame they belong to is lost";
    } else {
        if (ds->have)
            krt_emit_data(t, dir, ds->have, ts, "cut short by a gap");
        ds->have = 0;
        ds->damaged = false;
        ds->sniffed = true;
        ds->offset += nbytes;
        if (fixed) {
            /* a handshake block is lost: the rest of this direction can only be frames */
            if (dir == KR_S2D && ds->st == PST_NONCE)
                t->nonce_damaged = true;
        }
        krt_enter_resync(t, dir);
        ds->first_frame_done = true;
        after = krt_keyed(ds) ? "; resynchronising at the next frame boundary, whose first block is lost"
                           : "; resynchronising at the next frame boundary";
    }
    if (dir == KR_D2S)
        ds->have_last_id = false;
    kr_tracker_emit_finding(t, KR_FIND_GAP, dir, ts, at, "%s of the %s stream are missing from the capture at "
                            "offset %llu%s", nb, kr_dir_str(dir), (unsigned long long)at, after);
    /* a completed damaged block or frame */
    if (ds->st != PST_RESYNC && ds->st != PST_DATA && ds->have > 0 && ds->have == want(t, dir))
        act(t, dir, ts);
    if (dir == KR_D2S)
        krt_flush_early(t, ts);
}

/* The stream of dir ends: by a close of the connection, or (capture_end) because the capture does. */
void krt_end_direction(kr_tracker *t, kr_dir dir, double ts, bool capture_end)
{
    kr_dirstate *ds = &t->d[dir];
    if (ds->st == PST_RESYNC) {
        resync_scan(t, dir, ts, true);
        if (ds->st == PST_RESYNC && ds->have)
            krt_emit_data(t, dir, ds->have, ts, "with no frame boundary found");
    }
    if (ds->st == PST_DATA && ds->have)
        krt_emit_data(t, dir, ds->have, ts, "not of this protocol");
    /* a frame the stream ends inside: a damaged length prefix resynchronises, anything else is cut short */
    for (int guard = 0; ds->st == PST_FRAMES && ds->have && guard < 64; guard++)
        if (!check_long_frame(t, dir, ts, true) && !end_boundary_by_decryption(t, dir, ts))
            krt_emit_data(t, dir, ds->have, ts, "of a frame cut short: the stream ends before its last byte");
    if (ds->st == PST_NONCE && ds->have && !t->not_spark) {
        /* the cloud sent fewer than 40 bytes and stopped; when only the capture stopped and the bytes can
         * be the start of a nonce, the capture is incomplete */
        char why[160];
        bool unfit = nonce_unfit(ds->buf, ds->have, why, sizeof why) != NULL;
        if (capture_end && !ds->closed && !unfit) {
            t->nonce_cut = true;
            krt_emit_data(t, dir, ds->have, ts, "of the 40-byte nonce: the capture ends inside it");
            return;
        }
        if (!unfit)
            snprintf(why, sizeof why, "the cloud port sent %zu bytes, not a 40-byte nonce", (size_t)ds->have);
        declare_not_spark(t, dir, ts, "%s", why);
        if (ds->have)
            krt_emit_data(t, dir, ds->have, ts, "not of this protocol");
    }
}
