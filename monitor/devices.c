/* cloudmon: the per-device records. */
#include "devices.h"
#include "digits.h"

#include <stdlib.h>
#include <string.h>

void cm_devices_init(cm_devices *d)
{
    d->by_name = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, g_free);
    d->max = CM_MAX_DEVICES;
}

void cm_devices_free(cm_devices *d)
{
    if (d->by_name)
        g_hash_table_destroy(d->by_name);
    d->by_name = NULL;
}

char *cm_device_name(const cm_conn *c, char *out, size_t cap)
{
    const kr_conn_info *i = cm_conn_info(c);
    if (i->device_id_known) {
        g_strlcpy(out, i->device_id_hex, cap);
    } else {
        char ip[64];
        snprintf(out, cap, "? %s", cm_ip_str(&c->client, ip, sizeof ip));
    }
    return out;
}

const char *cm_platform_str(int platform, char *out, size_t cap)
{
    if (platform < 0)
        return "-";
    snprintf(out, cap, "%d", platform);
    return out;
}

static cm_device *get(cm_devices *d, const char *name, bool known)
{
    cm_device *v = g_hash_table_lookup(d->by_name, name);
    if (!v && g_hash_table_size(d->by_name) >= d->max) {
        name = CM_DEVICES_OVERFLOW;
        known = false;
        v = g_hash_table_lookup(d->by_name, name);
    }
    if (!v) {
        v = g_new0(cm_device, 1);
        g_strlcpy(v->name, name, sizeof v->name);
        v->id_known = known;
        v->platform = -1;
        g_hash_table_insert(d->by_name, v->name, v);
    }
    return v;
}

/* A connection's figures added to a record (ended ones for good, live ones in a copy). */
static void add_conn(cm_device *v, const cm_conn *c, const kr_conn_info *i)
{
    v->conns++;
    v->messages += i->messages;
    v->bytes += c->wire_bytes;
    if (i->generation)
        v->generation = i->generation;
    if (c->last >= v->last_seen) {
        v->last_seen = c->last;
        if (i->verdict.code != KR_V_NONE) {
            v->last_verdict = i->verdict.code;
            v->last_proven = i->verdict.proven;
        }
    }
}

static void on_end(void *ud, const cm_conn *c)
{
    cm_devices *d = ud;
    char name[48];
    const kr_conn_info *i = cm_conn_info(c);
    cm_device *v = get(d, cm_device_name(c, name, sizeof name), i->device_id_known);
    add_conn(v, c, i);
    if ((unsigned)i->verdict.code < CM_NVERDICTS && v->verdicts[i->verdict.code] < UINT32_MAX)
        v->verdicts[i->verdict.code]++;       /* a count that could wrap stays at its highest instead */
}

static void on_message(void *ud, const cm_conn *c, const kr_message *m)
{
    cm_devices *d = ud;
    if (m->kind != KR_MSG_HELLO || m->dir != KR_D2S || m->first_block_lost)
        return;
    char name[48];
    cm_device *v = get(d, cm_device_name(c, name, sizeof name), cm_conn_info(c)->device_id_known);
    v->platform = m->platform_id;
    v->product_id = m->product_id;
    v->product_version = m->product_version;
}

cm_observer cm_devices_observer(cm_devices *d)
{
    return (cm_observer){ .message = on_message, .end = on_end, .ud = d };
}

uint64_t cm_device_failed(const cm_device *v)
{
    uint64_t n = 0;
    for (int k = 0; k < CM_NVERDICTS; k++)
        if (k != KR_V_OK && k != KR_V_NONE)
            n += v->verdicts[k];
    return n;
}

const char *cm_dev_sort_name(cm_dev_sort s)
{
    static const char *const n[] = { "device", "failed connections", "connections", "last seen", "bytes" };
    return (unsigned)s < CM_DSORT_COUNT ? n[s] : "?";
}

static cm_dev_sort dev_sort_key;

static int cmp_dev(gconstpointer pa, gconstpointer pb)
{
    const cm_device *a = pa, *b = pb;
    int r = 0;
    switch (dev_sort_key) {
    case CM_DSORT_FAILED: r = (cm_device_failed(a) < cm_device_failed(b)) - (cm_device_failed(a) > cm_device_failed(b)); break;
    case CM_DSORT_CONNS: r = (a->conns < b->conns) - (a->conns > b->conns); break;
    case CM_DSORT_LAST: r = (a->last_seen < b->last_seen) - (a->last_seen > b->last_seen); break;
    case CM_DSORT_BYTES: r = (a->bytes < b->bytes) - (a->bytes > b->bytes); break;
    default: break;
    }
    if (!r)
        r = (a->id_known < b->id_known) - (a->id_known > b->id_known);   /* known ids first */
    return r ? r : strcmp(a->name, b->name);
}

static int cmp_dev_ptr(gconstpointer pa, gconstpointer pb)
{
    return cmp_dev(*(const cm_device *const *)pa, *(const cm_device *const *)pb);
}

/* The rows as pointers, sorted: an ended connections' record as it is, a copy (in *own, which the caller
 * frees) for a device with live connections. A row costs a pointer, not a copy of its record: a million
 * devices are listed without a second million records. */
static GPtrArray *row_ptrs(const cm_devices *d, const cm_mon *m, cm_dev_sort sort, GPtrArray **own)
{
    GHashTable *idx = g_hash_table_new(g_str_hash, g_str_equal);   /* name -> position + 1 */
    GPtrArray *rows = g_ptr_array_sized_new(g_hash_table_size(d->by_name));
    *own = g_ptr_array_new_with_free_func(g_free);
    GHashTableIter it;
    gpointer k, val;
    g_hash_table_iter_init(&it, d->by_name);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        g_ptr_array_add(rows, val);
        g_hash_table_insert(idx, ((cm_device *)val)->name, GUINT_TO_POINTER(rows->len));
    }
    for (guint j = 0; m && j < m->conns->len; j++) {
        const cm_conn *c = g_ptr_array_index(m->conns, j);
        if (c->ended)
            continue;
        char name[48];
        cm_device_name(c, name, sizeof name);
        guint at = GPOINTER_TO_UINT(g_hash_table_lookup(idx, name));
        cm_device *v = at ? g_ptr_array_index(rows, at - 1) : NULL;
        if (!v || v == g_hash_table_lookup(d->by_name, name)) {
            /* a record of its own: a new one, or a copy of the ended connections' */
            cm_device *copy = v ? g_memdup2(v, sizeof *v) : g_new0(cm_device, 1);
            if (!v) {
                copy->platform = -1;
                copy->id_known = cm_conn_info(c)->device_id_known;
                g_strlcpy(copy->name, name, sizeof copy->name);
                g_ptr_array_add(rows, copy);
                at = rows->len;
            }
            g_ptr_array_add(*own, copy);
            rows->pdata[at - 1] = v = copy;
            g_hash_table_insert(idx, v->name, GUINT_TO_POINTER(at));
        }
        add_conn(v, c, cm_conn_info(c));
        v->live++;
    }
    g_hash_table_destroy(idx);
    dev_sort_key = sort;
    g_ptr_array_sort(rows, cmp_dev_ptr);
    return rows;
}

GArray *cm_devices_rows(const cm_devices *d, const cm_mon *m, cm_dev_sort sort)
{
    GPtrArray *own, *p = row_ptrs(d, m, sort, &own);
    GArray *rows = g_array_sized_new(FALSE, FALSE, sizeof(cm_device), p->len);
    for (guint i = 0; i < p->len; i++)
        g_array_append_vals(rows, g_ptr_array_index(p, i), 1);
    g_ptr_array_free(p, TRUE);
    g_ptr_array_free(own, TRUE);
    return rows;
}

static const char *gen_str(int g)
{
    return g == 1 ? "1" : g == 2 ? "2" : g == 3 ? "3" : "-";
}

/* A line of the devices table, built in place (a line per device) as printf's %-Ns and %Nllu would
 * write its columns. Every part is bounded (names of 48 bytes, libkeyring's words, numbers). */
typedef struct row {
    char b[320];
    size_t n;
} row;

/* s padded to width columns, on the right (width > 0) or the left (width < 0); then the separator (0: none) */
static void cell(row *r, const char *s, int width, char sep)
{
    size_t len = strnlen(s, 64), w = (size_t)(width < 0 ? -width : width);
    size_t pad = len < w ? w - len : 0;
    if (width < 0) {
        memset(r->b + r->n, ' ', pad);
        r->n += pad;
    }
    memcpy(r->b + r->n, s, len);
    r->n += len;
    if (width > 0) {
        memset(r->b + r->n, ' ', pad);
        r->n += pad;
    }
    if (sep)
        r->b[r->n++] = sep;
}

static void num(row *r, uint64_t v, int width, char sep)
{
    char d[CM_DIGITS_MAX + 1];
    d[CM_DIGITS_MAX] = 0;
    cell(r, cm_digits_u64(d + CM_DIGITS_MAX, v), -width, sep);
}

void cm_devices_print(const cm_devices *d, const cm_mon *m, FILE *out)
{
    GPtrArray *own, *rows = row_ptrs(d, m, CM_DSORT_DEVICE, &own);
    if (!rows->len) {
        g_ptr_array_free(rows, TRUE);
        g_ptr_array_free(own, TRUE);
        return;
    }
    fprintf(out, "devices: %u\n%-26s %5s %5s %6s %-23s %-15s %6s %10s %3s %s\n", rows->len, "DEVICE", "CONNS", "OK",
            "FAILED", "LAST VERDICT", "LAST SEEN (UTC)", "MSGS", "BYTES", "GEN", "PLATFORM");
    for (guint i = 0; i < rows->len; i++) {
        const cm_device *v = g_ptr_array_index(rows, i);
        char t[32], p[32];
        row r = { .n = 0 };
        cell(&r, v->name, 26, ' ');
        num(&r, v->conns, 5, ' ');
        num(&r, v->verdicts[KR_V_OK], 5, ' ');
        num(&r, cm_device_failed(v), 6, ' ');
        size_t at = r.n;             /* the last verdict, "?" after it when only inferred, in 23 columns */
        cell(&r, v->last_verdict ? kr_verdict_str(v->last_verdict) : "-", 0, 0);
        cell(&r, v->last_verdict && !v->last_proven ? "?" : "", 0, 0);
        while (r.n < at + 23)
            r.b[r.n++] = ' ';
        r.b[r.n++] = ' ';
        cell(&r, cm_time_str(v->last_seen, t, sizeof t), 15, ' ');
        num(&r, v->messages, 6, ' ');
        num(&r, v->bytes, 10, ' ');
        cell(&r, gen_str(v->generation), -3, ' ');
        cell(&r, cm_platform_str(v->platform, p, sizeof p), 0, '\n');
        fwrite(r.b, 1, r.n, out);
    }
    g_ptr_array_free(rows, TRUE);
    g_ptr_array_free(own, TRUE);
}

void cm_devices_json(const cm_devices *d, const cm_mon *m, FILE *out)
{
    GPtrArray *own, *rows = row_ptrs(d, m, CM_DSORT_DEVICE, &own);
    cm_json j;
    cm_json_init(&j);
    for (guint i = 0; i < rows->len; i++) {
        const cm_device *v = g_ptr_array_index(rows, i);
        cm_json_reset(&j);
        cm_json_obj(&j, NULL);
        cm_json_str(&j, "type", "device");
        if (v->id_known)
            cm_json_str(&j, "device_id", v->name);
        else if (v->name[0] == '?')
            cm_json_str(&j, "client", v->name + 2);
        else
            cm_json_bool(&j, "other_devices", true);   /* the overflow record */
        cm_json_int(&j, "connections", (int64_t)v->conns);
        cm_json_obj(&j, "verdicts");
        for (int k = 0; k < CM_NVERDICTS; k++)
            if (v->verdicts[k])
                cm_json_int(&j, k == KR_V_NONE ? "none" : kr_verdict_str((kr_verdict_code)k), (int64_t)v->verdicts[k]);
        cm_json_end(&j, '}');
        if (v->last_verdict) {
            cm_json_str(&j, "last_verdict", kr_verdict_str(v->last_verdict));
            cm_json_bool(&j, "last_proven", v->last_proven);
        }
        cm_json_time(&j, "last_seen", v->last_seen);
        cm_json_int(&j, "messages", (int64_t)v->messages);
        cm_json_int(&j, "bytes", (int64_t)v->bytes);
        if (v->generation)
            cm_json_int(&j, "generation", v->generation);
        if (v->platform >= 0) {
            cm_json_int(&j, "platform_id", v->platform);
            cm_json_int(&j, "product_id", v->product_id);
            cm_json_int(&j, "product_version", v->product_version);
        }
        cm_json_end(&j, '}');
        cm_json_line(&j, out);
    }
    cm_json_free(&j);
    g_ptr_array_free(rows, TRUE);
    g_ptr_array_free(own, TRUE);
}
