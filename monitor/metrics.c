/* cloudmon: Prometheus metrics. */
#include "metrics.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <microhttpd.h>
#include <netdb.h>
#include <string.h>

/* upper bounds of the handshake duration buckets, seconds (+Inf follows) */
static const double bounds[CM_HIST_BUCKETS] = { 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };

#define LOCKED(m, stmt) do { pthread_mutex_lock(&(m)->lock); stmt; pthread_mutex_unlock(&(m)->lock); } while (0)

static void on_step(void *ud, const cm_conn *c, const kr_step *s)
{
    cm_metrics *m = ud;
    pthread_mutex_lock(&m->lock);
    /* the RSA work is done on the step that carries the block (later steps repeat what it found) */
    if (s->kind == KR_STEP_IDBLOCK) {
        if (s->id_block_opened != KR_UNKNOWN)
            m->rsa_id_block++;
        else
            m->rsa_skipped++;
    }
    if (s->kind == KR_STEP_SESSIONBLOCK && s->session_opened != KR_UNKNOWN)
        m->rsa_session_block++;
    if (s->kind == KR_STEP_SESSIONBLOCK && s->signature_valid != KR_UNKNOWN)
        m->rsa_signature++;
    if (s->frame_state == KR_FRAME_DECRYPT_ERROR)
        m->decrypt_errors++;
    if (s->kind == KR_STEP_HELLO) {
        gpointer key = GUINT_TO_POINTER(c->id);
        unsigned seen = GPOINTER_TO_UINT(g_hash_table_lookup(m->hellos, key));
        unsigned now = seen | (1u << (s->dir & 1));
        g_hash_table_insert(m->hellos, key, GUINT_TO_POINTER(now));
        if (now == 3 && seen != 3) {
            double d = s->time - c->first;
            int b = 0;
            while (b < CM_HIST_BUCKETS && d > bounds[b])
                b++;
            if (b < CM_HIST_BUCKETS)
                m->hist[b]++;
            m->hist_count++;
            m->hist_sum += d < 0 ? 0 : d;
        }
    }
    pthread_mutex_unlock(&m->lock);
}

static void on_message(void *ud, const cm_conn *c, const kr_message *msg)
{
    (void)c;
    cm_metrics *m = ud;
    if ((unsigned)msg->kind < CM_NMSG)
        LOCKED(m, m->messages[msg->kind]++);
}

static void on_finding(void *ud, const cm_conn *c, const kr_finding *f)
{
    (void)c;
    cm_metrics *m = ud;
    if ((unsigned)f->code < CM_NFIND)
        LOCKED(m, m->findings[f->code]++);
}

static void on_end(void *ud, const cm_conn *c)
{
    cm_metrics *m = ud;
    const kr_conn_info *i = cm_conn_info(c);
    pthread_mutex_lock(&m->lock);
    if ((unsigned)i->verdict.code < CM_NVERDICTS)
        m->verdicts[i->verdict.code]++;
    kr_step_kind reached = i->handshake_done ? KR_STEP_HELLO : i->last_step;
    if ((unsigned)reached < CM_NSTEPS)
        m->reached[reached]++;
    g_hash_table_remove(m->hellos, GUINT_TO_POINTER(c->id));
    pthread_mutex_unlock(&m->lock);
}

cm_observer cm_metrics_observer(cm_metrics *m)
{
    cm_observer o = { on_step, on_message, on_finding, NULL, on_end, m };
    return o;
}

void cm_metrics_update(cm_metrics *m, uint64_t packets, uint64_t conns, uint64_t open, uint64_t untracked,
                       uint64_t drops, uint64_t queue_drops)
{
    LOCKED(m, (m->packets = packets, m->conns = conns, m->open = open, m->untracked = untracked,
               m->drops = drops, m->queue_drops = queue_drops));
}

static void family(GString *g, const char *name, const char *type, const char *help)
{
    g_string_append_printf(g, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void labelled(GString *g, const char *name, const char *label, const char *value, uint64_t n)
{
    g_string_append_printf(g, "%s{%s=\"%s\"} %llu\n", name, label, value, (unsigned long long)n);
}

static void render_histogram(GString *g, const cm_metrics *m)
{
    const char *h = "cloudmon_handshake_duration_seconds";
    family(g, h, "histogram", "Time from a connection's first packet to the Hello in both directions.");
    uint64_t cum = 0;
    for (int b = 0; b < CM_HIST_BUCKETS; b++) {
        cum += m->hist[b];
        g_string_append_printf(g, "%s_bucket{le=\"%g\"} %llu\n", h, bounds[b], (unsigned long long)cum);
    }
    g_string_append_printf(g, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", h,
                           (unsigned long long)m->hist_count, h, m->hist_sum, h, (unsigned long long)m->hist_count);
}

char *cm_metrics_render(cm_metrics *m)
{
    GString *g = g_string_sized_new(4096);
    pthread_mutex_lock(&m->lock);
    family(g, "cloudmon_packets_total", "counter", "Packets read from the capture.");
    g_string_append_printf(g, "cloudmon_packets_total %llu\n", (unsigned long long)m->packets);
    family(g, "cloudmon_connections_seen_total", "counter", "Connections seen.");
    g_string_append_printf(g, "cloudmon_connections_seen_total %llu\n", (unsigned long long)m->conns);
    family(g, "cloudmon_connections_open", "gauge", "Connections followed now.");
    g_string_append_printf(g, "cloudmon_connections_open %llu\n", (unsigned long long)m->open);
    family(g, "cloudmon_connections_total", "counter", "Ended connections by final verdict.");
    for (int v = 0; v < CM_NVERDICTS && (v == 0 || kr_verdict_str((kr_verdict_code)v)[0]); v++)
        labelled(g, "cloudmon_connections_total", "verdict", v ? kr_verdict_str((kr_verdict_code)v) : "none",
                 m->verdicts[v]);
    family(g, "cloudmon_handshakes_total", "counter", "Ended connections by the last handshake step they reached.");
    for (int s = 0; s < CM_NSTEPS && (s == 0 || kr_step_str((kr_step_kind)s)[0]); s++)
        labelled(g, "cloudmon_handshakes_total", "step", s ? kr_step_str((kr_step_kind)s) : "none", m->reached[s]);
    render_histogram(g, m);
    family(g, "cloudmon_messages_total", "counter", "Decrypted messages by kind.");
    for (int k = 0; k < CM_NMSG; k++)
        if (m->messages[k])
            labelled(g, "cloudmon_messages_total", "kind", kr_msg_kind_str((kr_msg_kind)k), m->messages[k]);
    family(g, "cloudmon_findings_total", "counter", "Findings by code.");
    for (int k = 1; k < CM_NFIND && kr_finding_str((kr_finding_code)k)[0]; k++)
        labelled(g, "cloudmon_findings_total", "code", kr_finding_str((kr_finding_code)k), m->findings[k]);
    family(g, "cloudmon_decrypt_errors_total", "counter", "Frames that should decrypt but did not.");
    g_string_append_printf(g, "cloudmon_decrypt_errors_total %llu\n", (unsigned long long)m->decrypt_errors);
    family(g, "cloudmon_untracked_packets_total", "counter",
           "Packets that would have started a connection, not followed: the connection table was full of "
           "connections that carried protocol data.");
    g_string_append_printf(g, "cloudmon_untracked_packets_total %llu\n", (unsigned long long)m->untracked);
    family(g, "cloudmon_capture_dropped_packets_total", "counter",
           "Packets the capture dropped (kernel buffer or capture queue full).");
    g_string_append_printf(g, "cloudmon_capture_dropped_packets_total %llu\n", (unsigned long long)m->drops);
    family(g, "cloudmon_capture_queue_dropped_packets_total", "counter",
           "Of those, the packets the capture thread's queue had no room for.");
    g_string_append_printf(g, "cloudmon_capture_queue_dropped_packets_total %llu\n", (unsigned long long)m->queue_drops);
    family(g, "cloudmon_rsa_operations_total", "counter", "RSA work done: id blocks, session blocks, signatures checked.");
    labelled(g, "cloudmon_rsa_operations_total", "block", "id-block", m->rsa_id_block);
    labelled(g, "cloudmon_rsa_operations_total", "block", "session-block", m->rsa_session_block);
    labelled(g, "cloudmon_rsa_operations_total", "block", "signature", m->rsa_signature);
    family(g, "cloudmon_rsa_skipped_total", "counter", "Id blocks not opened (no server private key, or work skipped).");
    g_string_append_printf(g, "cloudmon_rsa_skipped_total %llu\n", (unsigned long long)m->rsa_skipped);
    m->scrapes++;
    pthread_mutex_unlock(&m->lock);
    return g_string_free(g, FALSE);
}

/* libmicrohttpd is loaded when --metrics asks for it, not at every start: with the TLS libraries it pulls
 * in, linking it cost each run of cloudmon a few milliseconds and about 160 page faults. */
#define MHD_LIB "libmicrohttpd.so.12"

static struct {
    __typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
    __typeof__(MHD_add_response_header) *add_response_header;
    __typeof__(MHD_queue_response) *queue_response;
    __typeof__(MHD_destroy_response) *destroy_response;
    __typeof__(MHD_start_daemon) *start_daemon;
    __typeof__(MHD_stop_daemon) *stop_daemon;
} mhd;

static bool load_mhd(const char *addr, char *err, size_t errcap)
{
    if (mhd.start_daemon)
        return true;
    void *h = dlopen(MHD_LIB, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errcap, "--metrics %s: cannot load %s (%s): install libmicrohttpd (Debian: libmicrohttpd12)",
                 addr, MHD_LIB, dlerror());
        return false;
    }
    *(void **)&mhd.create_response_from_buffer = dlsym(h, "MHD_create_response_from_buffer");
    *(void **)&mhd.add_response_header = dlsym(h, "MHD_add_response_header");
    *(void **)&mhd.queue_response = dlsym(h, "MHD_queue_response");
    *(void **)&mhd.destroy_response = dlsym(h, "MHD_destroy_response");
    *(void **)&mhd.stop_daemon = dlsym(h, "MHD_stop_daemon");
    void *start = dlsym(h, "MHD_start_daemon");
    if (!mhd.create_response_from_buffer || !mhd.add_response_header || !mhd.queue_response ||
        !mhd.destroy_response || !mhd.stop_daemon || !start) {
        snprintf(err, errcap, "--metrics %s: %s lacks a function cloudmon calls: install libmicrohttpd 0.9.71 or "
                 "newer", addr, MHD_LIB);
        dlclose(h);
        return false;
    }
    *(void **)&mhd.start_daemon = start;   /* last: the library is complete */
    return true;
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                             const char *version, const char *data, size_t *size, void **state)
{
    (void)version; (void)data; (void)size; (void)state;
    cm_metrics *m = cls;
    bool ok = strcmp(method, "GET") == 0 && (strcmp(url, "/metrics") == 0 || strcmp(url, "/") == 0);
    char *body = ok ? cm_metrics_render(m) : g_strdup("cloudmon: the metrics are at GET /metrics\n");
    struct MHD_Response *r = mhd.create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        g_free(body);
        return MHD_NO;
    }
    mhd.add_response_header(r, "Content-Type", ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain");
    enum MHD_Result rc = mhd.queue_response(conn, ok ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, r);
    mhd.destroy_response(r);
    return rc;
}

/* "127.0.0.1:9900" or "[::1]:9900" into a socket address. */
static int parse_addr(const char *s, struct sockaddr_storage *ss, char *err, size_t errcap)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    const char *h = s, *hend = colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        h = s + 1;
        hend = close;
        colon = close && close[1] == ':' ? close + 1 : NULL;
    }
    if (!colon || !hend || hend <= h || (size_t)(hend - h) >= sizeof host || !colon[1]) {
        snprintf(err, errcap, "--metrics '%s': give ADDRESS:PORT, e.g. 127.0.0.1:9900 or [::1]:9900", s);
        return -1;
    }
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = 0;
    struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535 || getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res) {
        snprintf(err, errcap, "--metrics '%s': not a numeric address and a port from 1 to 65535 "
                 "(e.g. 127.0.0.1:9900 or [::1]:9900)", s);
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

int cm_metrics_start(cm_metrics *m, const char *addr, char *err, size_t errcap)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (parse_addr(addr, &ss, err, errcap) < 0 || !load_mhd(addr, err, errcap))
        return -1;
    pthread_mutex_init(&m->lock, NULL);
    m->hellos = g_hash_table_new(g_direct_hash, g_direct_equal);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    m->daemon = mhd.start_daemon(flags, 0, NULL, NULL, serve, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                 MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!m->daemon) {
        snprintf(err, errcap, "--metrics %s: cannot listen there (address in use or not on this machine?)", addr);
        g_hash_table_destroy(m->hellos);
        m->hellos = NULL;
        pthread_mutex_destroy(&m->lock);
        return -1;
    }
    return 0;
}

void cm_metrics_stop(cm_metrics *m)
{
    if (!m->daemon)
        return;
    mhd.stop_daemon(m->daemon);
    m->daemon = NULL;
    g_hash_table_destroy(m->hellos);
    m->hellos = NULL;
    pthread_mutex_destroy(&m->lock);
}
