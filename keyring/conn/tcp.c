/* sparkwire libkeyring: what a segment does to its connection: SYN, SYN-ACK, data, FIN, RST and refused,
 * and the bytes handed on to the tracker. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "conn_int.h"

#define KR_RST_HOLD 10.0     /* seconds an accepted RST waits for data that would show it did not end it */

const char *kr_tcp_kind_str(kr_tcp_kind k)
{
    static const char *const names[] = { "SYN", "SYN-ACK", "joined", "FIN", "RST", "RST ignored", "refused",
                                         "gap", "bogus length", "retransmitted" };
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static const char *side(kr_dir d)
{
    return d == KR_D2S ? "device" : "cloud";
}

void kr_conn_event(kr_conn *c, kr_tcp_kind kind, kr_dir dir, double ts, uint64_t n, const char *fmt, ...)
{
    if (c->state != KR_CS_FOLLOWED || !c->tab->cb.tcp)
        return;                              /* no one to tell */
    kr_tcp_event e;
    memset(&e, 0, sizeof e);
    e.kind = kind;
    e.dir = dir;
    e.time = ts;
    e.nbytes = n;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.text, sizeof e.text, fmt, ap);
    va_end(ap);
    c->tab->cb.tcp(c->tab->ud, c, &e);
}

/* ---- bytes to the tracker (or to the heuristic while undecided) ---- */

static inline __attribute__((always_inline)) void to_tracker(kr_conn *c, kr_dir dir, const uint8_t *data,
                                                             size_t len, double ts, bool from_packet)
{
    if (c->tab->cb.data)
        c->tab->cb.data(c->tab->ud, c, dir, c->stream_pos[dir], data, len, from_packet);
    c->stream_pos[dir] += len;
    kr_tracker_data(c->tr, dir, data, len, ts);
}

/* Undecided (other port): the cloud's first 40 bytes decide. */
static KR_RARE void to_heuristic(kr_conn *c, kr_dir dir, const uint8_t *data, size_t len, double ts, bool from_packet)
{
    if (dir == KR_D2S || !c->tab->o.heuristic) {
        c->state = KR_CS_IGNORED;            /* the device spoke first, or no heuristic: not followed */
        return;
    }
    if (c->pre_len == 0 && len >= KR_NONCE_LEN) {
        if (!(c->tab->o.strict ? kr_conn_nonce_like(data, KR_NONCE_LEN) : true)) {
            c->state = KR_CS_IGNORED;
            return;
        }
        kr_conn_follow(c, ts);
        to_tracker(c, dir, data, len, ts, from_packet);
        return;
    }
    size_t room = (size_t)KR_CONN_PRE_MAX - c->pre_len, n = room < len ? room : len;
    if (!c->pre)
        c->pre = g_malloc(KR_CONN_PRE_MAX);
    memcpy(c->pre + c->pre_len, data, n);
    c->pre_len = (uint8_t)(c->pre_len + n);
    if (c->pre_len < KR_NONCE_LEN)
        return;
    if (c->tab->o.strict && !kr_conn_nonce_like(c->pre, KR_NONCE_LEN)) {
        c->state = KR_CS_IGNORED;
        return;
    }
    kr_conn_follow(c, ts);
    to_tracker(c, dir, c->pre, c->pre_len, ts, false);
    g_free(c->pre);                          /* decided: the held bytes are the tracker's now */
    c->pre = NULL;
    if (len > n)
        to_tracker(c, dir, data + n, len - n, ts, from_packet);
}

static void deliver(kr_conn *c, kr_dir dir, const uint8_t *data, size_t len, double ts, bool from_packet)
{
    if (c->state == KR_CS_FOLLOWED)
        to_tracker(c, dir, data, len, ts, from_packet);
    else if (c->state == KR_CS_UNDECIDED)
        to_heuristic(c, dir, data, len, ts, from_packet);
}

static KR_RARE void gap(kr_conn *c, kr_dir dir, uint64_t n, double ts)
{
    if (c->state == KR_CS_UNDECIDED)
        c->state = KR_CS_IGNORED;            /* the heuristic needs the first bytes */
    if (c->state != KR_CS_FOLLOWED)
        return;
    kr_conn_event(c, KR_TCP_EV_GAP, dir, ts, n, "%llu bytes from the %s are missing from the capture",
                  (unsigned long long)n, side(dir));
    c->stream_pos[dir] += n;
    kr_tracker_gap(c->tr, dir, n, ts);
}

static KR_RARE void fin(kr_conn *c, kr_dir dir, double ts)
{
    c->closed[dir] = true;
    if (c->state != KR_CS_FOLLOWED)
        return;
    kr_conn_event(c, KR_TCP_EV_FIN, dir, ts, 0, "the %s closed", side(dir));
    kr_tracker_close(c->tr, dir, false, ts);
}

/* Another copy of bytes handed on before: the tracker compares it and keeps it as a candidate when it
 * differs. */
static KR_RARE void copy(kr_conn *c, kr_dir dir, const uint8_t *data, size_t len, uint32_t back, int rank, double ts)
{
    if (c->state == KR_CS_FOLLOWED && back <= c->stream_pos[dir])
        kr_tracker_copy(c->tr, dir, c->stream_pos[dir] - back, data, len, rank, ts);
}

/* The receiver of dir acknowledged up to ack: the tracker gives back the frames it kept for a later copy. */
static void acked(kr_conn *c, kr_dir dir, uint32_t ack)
{
    const kr_reasm *r = &c->rs[dir];
    if (c->state != KR_CS_FOLLOWED || !r->started || (r->have_max && kr_seq_diff(ack, r->max_end) > 0))
        return;                 /* an acknowledgement of bytes never sent is not believed */
    int32_t back = kr_seq_diff(r->next_seq, ack);
    if (back < 0)
        back = 0;               /* past what was handed on: all of it */
    if ((uint64_t)back <= c->stream_pos[dir])
        kr_tracker_acked(c->tr, dir, c->stream_pos[dir] - (uint32_t)back);
}

static void d2s_deliver(void *ud, const uint8_t *d, size_t n, double ts, bool fp) { deliver(ud, KR_D2S, d, n, ts, fp); }
static void s2d_deliver(void *ud, const uint8_t *d, size_t n, double ts, bool fp) { deliver(ud, KR_S2D, d, n, ts, fp); }
static void d2s_gap(void *ud, uint64_t n, double ts) { gap(ud, KR_D2S, n, ts); }
static void s2d_gap(void *ud, uint64_t n, double ts) { gap(ud, KR_S2D, n, ts); }
static void d2s_fin(void *ud, double ts) { fin(ud, KR_D2S, ts); }
static void s2d_fin(void *ud, double ts) { fin(ud, KR_S2D, ts); }
static void d2s_copy(void *ud, const uint8_t *d, size_t n, uint32_t b, int rank, double ts)
{
    copy(ud, KR_D2S, d, n, b, rank, ts);
}

static void s2d_copy(void *ud, const uint8_t *d, size_t n, uint32_t b, int rank, double ts)
{
    copy(ud, KR_S2D, d, n, b, rank, ts);
}

const kr_reasm_ops kr_conn_rs_ops[2] = {
    { d2s_deliver, d2s_gap, d2s_fin, d2s_copy },
    { s2d_deliver, s2d_gap, s2d_fin, s2d_copy },
};

/* ---- SYN, RST ---- */

/* Window scaling is in force when both SYNs were read with their options and both carry the option
 * (RFC 7323); -1: not in force, -2: not known (a SYN missing, or read without its options). */
static int scale_state(const kr_conn *c)
{
    if (!c->saw_syn || !c->saw_synack || c->wscale[0] == -2 || c->wscale[1] == -2)
        return -2;
    return c->wscale[0] >= 0 && c->wscale[1] >= 0 ? 0 : -1;
}

static KR_RARE void on_syn(kr_conn *c, const kr_packet *p, kr_dir dir)
{
    bool ack = (p->flags & KR_TCP_ACK) != 0;
    if ((dir == KR_D2S) == ack)
        return;                              /* a SYN from the cloud or a SYN-ACK from the device: not ours */
    if (!c->rs[dir].saw_syn) {
        bool opens = !ack && !c->saw_syn && !c->rs[0].any_segment && !c->rs[1].any_segment;
        if (ack)
            c->saw_synack = true;
        else
            c->saw_syn = true;
        if (opens && c->state == KR_CS_FOLLOWED)
            kr_tracker_open(c->tr, p->time);
        c->wscale[dir] = p->options_known ? (p->wscale < 0 ? -1 : p->wscale > 14 ? 14 : p->wscale) : -2;
        c->scale = (int8_t)scale_state(c);
        kr_conn_event(c, ack ? KR_TCP_EV_SYNACK : KR_TCP_EV_SYN, dir, p->time, 0,
                      ack ? "the cloud accepts" : "the device connects");
    }
    kr_reasm_syn(&c->rs[dir], p->seq);
}

/* The window a segment of dir advertises, in bytes (a SYN's window is never scaled). */
static uint32_t advertised(const kr_conn *c, const kr_packet *p, kr_dir dir)
{
    if (!(p->flags & KR_TCP_SYN) && c->scale == 0)
        return (uint32_t)p->window << c->wscale[dir];
    return p->window;
}

/* The next byte the receiver of dir expects, as best known. */
static bool rcv_nxt(const kr_conn *c, kr_dir dir, uint32_t *out)
{
    if (c->have_ack[dir]) {
        *out = c->ack_of[dir];
        return true;
    }
    return kr_reasm_snd_nxt(&c->rs[dir], out);
}

/* The device's SYN answered by an RST before any SYN-ACK or byte. */
static bool refused(kr_conn *c, const kr_packet *p, kr_dir dir)
{
    if (dir != KR_S2D || !c->saw_syn || c->saw_synack || c->rs[0].any_segment || c->rs[1].any_segment)
        return false;
    if ((p->flags & KR_TCP_ACK) && p->ack != c->rare[KR_D2S].isn + 1) {
        kr_conn_event(c, KR_TCP_EV_RST_IGNORED, dir, p->time, 0,
                      "RST that does not acknowledge the SYN: ignored");
        c->tab->st.rst_ignored++;
        return true;
    }
    kr_conn_event(c, KR_TCP_EV_REFUSED, dir, p->time, 0, "the connection was refused (an RST answered the SYN)");
    if (c->state == KR_CS_FOLLOWED)
        kr_tracker_refused(c->tr, p->time);
    kr_conn_end_now(c, p->time, "refused: an RST answered the SYN");
    return true;
}

static KR_RARE void on_rst(kr_conn *c, const kr_packet *p, kr_dir dir)
{
    if (refused(c, p, dir) || c->rst_pending)
        return;
    uint32_t nxt;
    if (rcv_nxt(c, dir, &nxt)) {
        int32_t off = kr_seq_diff(p->seq, nxt);
        /* with both SYNs' options read, the receiver's window as scaled; else at least 64 KiB, as the
         * scale is not known */
        uint32_t wnd = c->scale != -2 ? c->window[dir] : c->window[dir] > 65535 ? c->window[dir] : 65535;
        if (off < 0 || (off > 0 && (uint32_t)off >= wnd)) {
            kr_conn_event(c, KR_TCP_EV_RST_IGNORED, dir, p->time, 0,
                          "RST from the %s %lld bytes from the next expected byte, outside the window of %u: ignored",
                          side(dir), (long long)off, wnd);
            c->tab->st.rst_ignored++;
            return;
        }
    }
    c->rst_pending = true;
    c->rst_dir = dir;
    c->rst_time = p->time;
    kr_conn_event(c, KR_TCP_EV_RST, dir, p->time, 0, "the %s reset the connection", side(dir));
}

/* New bytes after an accepted RST: the connection went on, the RST did not end it. */
static KR_RARE void rst_survived(kr_conn *c, kr_dir dir, double ts)
{
    c->rst_pending = false;
    c->tab->st.rst_ignored++;
    kr_conn_event(c, KR_TCP_EV_RST_IGNORED, c->rst_dir, ts, 0,
                  "the %s sent new bytes after the %s's RST: the connection went on, the RST is ignored",
                  side(dir), side(c->rst_dir));
}

/* ---- one segment ---- */

static size_t wire_length(kr_conn *c, const kr_packet *p, kr_dir dir)
{
    size_t wire = p->wire_len > p->captured_len ? p->wire_len : p->captured_len;
    if (!p->cut && wire > p->captured_len) {
        c->tab->st.bogus_length++;
        kr_conn_event(c, KR_TCP_EV_BOGUS_LENGTH, dir, p->time, wire - p->captured_len,
                      "the IP length claims %zu payload bytes, the frame holds %zu and was not cut: "
                      "the length is not believed", wire, p->captured_len);
        wire = p->captured_len;
    }
    return wire;
}

static void settle_peer(kr_conn *c, const kr_packet *p, kr_dir dir)
{
    kr_reasm *o = &c->rs[!dir];
    if (!o->started && o->ooo &&
        (!(p->flags & KR_TCP_ACK) || kr_seq_diff(p->ack, kr_reasm_first_waiting(o)) >= 0))
        kr_reasm_settle(o, p->time, &kr_conn_rs_ops[!dir], c);
    if ((p->flags & KR_TCP_ACK) && o->ooo)
        kr_reasm_ack(o, p->ack, p->time, &kr_conn_rs_ops[!dir], c);
}

void kr_conn_handle(kr_conn *c, const kr_packet *p, kr_dir dir)
{
    if (p->time > c->last)
        c->last = p->time;
    if (p->checksum == KR_CSUM_BAD)
        c->tab->st.bad_checksum++;           /* taken all the same (offload makes sent packets look bad);
                                                a copy that checks wins over it */
    size_t wire = wire_length(c, p, dir);
    c->window[!dir] = advertised(c, p, dir);
    if (p->flags & KR_TCP_ACK) {
        c->have_ack[!dir] = true;
        c->ack_of[!dir] = p->ack;
        acked(c, !dir, p->ack);
    }
    if (p->flags & KR_TCP_SYN)
        on_syn(c, p, dir);
    settle_peer(c, p, dir);
    if (c->state == KR_CS_ENDED)
        return;
    uint32_t seq = p->seq + ((p->flags & KR_TCP_SYN) ? 1u : 0u);
    size_t cap = p->captured_len < wire ? p->captured_len : wire;
    uint32_t fresh = 0;
    uint32_t seen = c->rs[dir].retransmitted;
    if (wire > 0 || (p->flags & KR_TCP_FIN))
        fresh = kr_reasm_segment(&c->rs[dir], seq, p->payload, cap, wire, (p->flags & KR_TCP_FIN) != 0,
                                 p->checksum == KR_CSUM_BAD, p->time, &kr_conn_rs_ops[dir], c);
    uint32_t again = c->rs[dir].retransmitted - seen;
    if (again)
        kr_conn_event(c, KR_TCP_EV_RETRANSMITTED, dir, p->time, again, "%lu bytes seen before: not handed on again",
                      (unsigned long)again);
    if (fresh > 0 && c->rst_pending && p->time >= c->rst_time)
        rst_survived(c, dir, p->time);
    for (int d = 0; d < 2 && c->state != KR_CS_ENDED; d++)
        if (c->rs[d].ooo)
            kr_reasm_age(&c->rs[d], p->time, c->tab->o.hole_wait, &kr_conn_rs_ops[d], c);
    if (c->state == KR_CS_ENDED)
        return;
    if ((p->flags & KR_TCP_RST) && !(p->flags & KR_TCP_SYN))
        on_rst(c, p, dir);
    if (c->state == KR_CS_ENDED)
        return;
    if (c->rst_pending && p->time - c->rst_time > KR_RST_HOLD)
        kr_conn_end_now(c, p->time, "");
    else if (c->closed[0] && c->closed[1])
        kr_conn_end_now(c, p->time, "closed by both sides");
}

/* ---- the end ---- */

void kr_conn_end_now(kr_conn *c, double ts, const char *reason)
{
    if (c->state == KR_CS_ENDED)
        return;
    if (c->rst_pending) {
        /* nothing showed the connection survived the RST: it ended there */
        c->rst_pending = false;
        kr_reasm_flush(&c->rs[c->rst_dir], c->rst_time, &kr_conn_rs_ops[c->rst_dir], c);
        if (c->state == KR_CS_FOLLOWED)
            kr_tracker_close(c->tr, c->rst_dir, true, c->rst_time);
        reason = c->rst_dir == KR_D2S ? "reset by the device" : "reset by the cloud";
    }
    for (int d = 0; d < 2; d++) {
        kr_reasm_flush(&c->rs[d], ts, &kr_conn_rs_ops[d], c);
        kr_reasm_free(&c->rs[d]);
    }
    char end_reason[64];
    snprintf(end_reason, sizeof end_reason, "%s", reason);
    if (c->state == KR_CS_FOLLOWED) {
        kr_tracker_finish(c->tr, ts > c->last ? ts : c->last);
        c->state = KR_CS_ENDED;
        if (c->tab->cb.end)
            c->tab->cb.end(c->tab->ud, c, end_reason);
    }
    c->state = KR_CS_ENDED;
    kr_conn_due_at_least(c->tab, c);         /* it lingers from now on, or is held */
    if (c->tr) {
        kr_tracker_free(c->tr);
        c->tr = NULL;
    }
    c->tab->live--;
}
