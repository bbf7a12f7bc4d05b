/* sparkwire Wireshark plugin: statistics per device (tshark -z spark,devices; Statistics > Spark Devices).
 * One row per device id: its connections, their final verdicts, decrypted messages and Spark bytes. A
 * connection is counted under "(unknown)" until its device id shows, then moved to the device's row. */
#include "spark-int.h"

#include <epan/tap.h>
#include <epan/stat_tap_ui.h>

enum { COL_DEVICE, COL_CONNS, COL_VERDICTS, COL_MESSAGES, COL_BYTES, N_COLS };
#define SPARK_MAX_VERDICT 32          /* room for verdict codes to come */
#define SPARK_UNKNOWN_DEVICE "(unknown)"

static stat_tap_table_item spark_stat_fields[N_COLS] = {
    { TABLE_ITEM_STRING, TAP_ALIGN_LEFT, "Device ID", "%-24s" },
    { TABLE_ITEM_UINT, TAP_ALIGN_RIGHT, "Connections", "%d" },
    { TABLE_ITEM_STRING, TAP_ALIGN_LEFT, "Final verdicts", "%s" },
    { TABLE_ITEM_UINT, TAP_ALIGN_RIGHT, "Messages", "%d" },
    { TABLE_ITEM_UINT, TAP_ALIGN_RIGHT, "Bytes", "%d" },
};

typedef struct spark_dev_row {
    guint index;                  /* row of the table */
    guint conns, messages, bytes;
    guint verdicts[SPARK_MAX_VERDICT];
} spark_dev_row;

typedef struct spark_conn_acc {
    spark_dev_row *row;
    guint messages, bytes;
    int verdict;                  /* the connection's final verdict, -1 none yet */
} spark_conn_acc;

static int spark_stats_tap = -1;
static GHashTable *spark_rows;    /* device id -> spark_dev_row (owned) */
static GHashTable *spark_accs;    /* spark_conv * -> spark_conn_acc (owned) */

static void stats_forget(void)
{
    if (spark_accs)
        g_hash_table_remove_all(spark_accs);
}

static void row_show(stat_tap_table *table, const spark_dev_row *r)
{
    stat_tap_table_item_type *f;
    GString *v = g_string_new(NULL);
    guint i;

    for (i = 0; i < SPARK_MAX_VERDICT; i++) {
        const char *code = kr_verdict_str((kr_verdict_code)i);
        if (r->verdicts[i] && code && code[0])
            g_string_append_printf(v, "%s%s %u", v->len ? ", " : "", code, r->verdicts[i]);
    }
    f = stat_tap_get_field_data(table, r->index, COL_VERDICTS);
    g_free((char *)f->value.string_value);
    f->value.string_value = g_string_free(v, FALSE);
    stat_tap_set_field_data(table, r->index, COL_VERDICTS, f);
    f = stat_tap_get_field_data(table, r->index, COL_CONNS);
    f->value.uint_value = r->conns;
    stat_tap_set_field_data(table, r->index, COL_CONNS, f);
    f = stat_tap_get_field_data(table, r->index, COL_MESSAGES);
    f->value.uint_value = r->messages;
    stat_tap_set_field_data(table, r->index, COL_MESSAGES, f);
    f = stat_tap_get_field_data(table, r->index, COL_BYTES);
    f->value.uint_value = r->bytes;
    stat_tap_set_field_data(table, r->index, COL_BYTES, f);
}

static spark_dev_row *row_get(stat_tap_table *table, const char *id)
{
    spark_dev_row *r = (spark_dev_row *)g_hash_table_lookup(spark_rows, id);
    stat_tap_table_item_type items[N_COLS];
    int i;

    if (r)
        return r;
    r = g_new0(spark_dev_row, 1);
    r->index = table->num_elements;
    memset(items, 0, sizeof items);
    for (i = 0; i < N_COLS; i++)
        items[i].type = spark_stat_fields[i].type;
    items[COL_DEVICE].value.string_value = g_strdup(id);
    items[COL_VERDICTS].value.string_value = g_strdup("");
    stat_tap_init_table_row(table, r->index, N_COLS, items);
    g_hash_table_insert(spark_rows, g_strdup(id), r);
    return r;
}

/* Moves (sign -1 / +1) a connection's counts out of or into a row. */
static void acc_apply(spark_conn_acc *a, spark_dev_row *r, int sign)
{
    r->conns += (guint)sign;
    r->messages += (guint)sign * a->messages;
    r->bytes += (guint)sign * a->bytes;
    if (a->verdict >= 0)
        r->verdicts[a->verdict] += (guint)sign;
}

static tap_packet_status spark_stats_packet(void *tapdata, packet_info *pinfo _U_, epan_dissect_t *edt _U_,
                                            const void *data, tap_flags_t flags _U_)
{
    stat_data_t *sd = (stat_data_t *)tapdata;
    const spark_tap_info *ti = (const spark_tap_info *)data;
    stat_tap_table *table = g_array_index(sd->stat_tap_data->tables, stat_tap_table *, 0);
    spark_conn_acc *a = (spark_conn_acc *)g_hash_table_lookup(spark_accs, ti->conv);
    spark_dev_row *want = row_get(table, ti->device_id ? ti->device_id : SPARK_UNKNOWN_DEVICE);

    if (!a) {
        a = g_new0(spark_conn_acc, 1);
        a->verdict = -1;
        g_hash_table_insert(spark_accs, (gpointer)ti->conv, a);
    }
    if (a->row && a->row != want && ti->device_id) {       /* the id showed: move the connection */
        acc_apply(a, a->row, -1);
        row_show(table, a->row);
        a->row = NULL;
    }
    if (!a->row) {
        a->row = want;
        acc_apply(a, a->row, +1);
    }
    a->messages += ti->messages;
    a->bytes += ti->bytes;
    a->row->messages += ti->messages;
    a->row->bytes += ti->bytes;
    if (ti->final_verdict >= 0 && ti->final_verdict < SPARK_MAX_VERDICT) {
        if (a->verdict >= 0)
            a->row->verdicts[a->verdict]--;
        a->verdict = ti->final_verdict;
        a->row->verdicts[a->verdict]++;
    }
    row_show(table, a->row);
    return TAP_PACKET_REDRAW;
}

static void spark_stats_reset(stat_tap_table *table)
{
    GHashTableIter it;
    gpointer k, v;

    stats_forget();
    g_hash_table_iter_init(&it, spark_rows);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        spark_dev_row *r = (spark_dev_row *)v;
        guint index = r->index;
        memset(r, 0, sizeof *r);
        r->index = index;
        row_show(table, r);
    }
}

static void spark_stats_free_item(stat_tap_table *table _U_, guint row _U_, guint column,
                                  stat_tap_table_item_type *field)
{
    if (column == COL_DEVICE || column == COL_VERDICTS) {
        g_free((char *)field->value.string_value);
        field->value.string_value = NULL;
    }
}

static void spark_stats_init(stat_tap_table_ui *ui)
{
    stat_tap_table *table = stat_tap_find_table(ui, "Spark devices");

    if (table) {
        spark_stats_reset(table);
        return;
    }
    g_hash_table_remove_all(spark_rows);
    stats_forget();
    table = stat_tap_init_table("Spark devices", N_COLS, 0, NULL);
    stat_tap_add_table(ui, table);
}

static stat_tap_table_ui spark_stats_ui = {
    REGISTER_STAT_GROUP_GENERIC, "Spark Devices", "spark_stats", "spark,devices", spark_stats_init,
    spark_stats_packet, spark_stats_reset, spark_stats_free_item, NULL, N_COLS, spark_stat_fields, 0, NULL,
    NULL, 0
};

void spark_stats_queue(packet_info *pinfo, const spark_tap_info *ti)
{
    if (have_tap_listener(spark_stats_tap))
        tap_queue_packet(spark_stats_tap, pinfo, wmem_memdup(pinfo->pool, ti, sizeof *ti));
}

void spark_register_stats(void)
{
    spark_rows = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    spark_accs = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    spark_stats_tap = register_tap("spark_stats");
    register_stat_tap_table_ui(&spark_stats_ui);
}

void spark_stats_end(void)
{
    g_clear_pointer(&spark_rows, g_hash_table_destroy);
    g_clear_pointer(&spark_accs, g_hash_table_destroy);
}
