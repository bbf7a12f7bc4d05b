/* sparkwire libkeyring: a bounded table of trackers, keyed by an opaque connection key.
 * Entries are kept in a queue ordered by last activity, so the one idle the longest is at its head. */
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include "tracker_int.h"

typedef struct kr_tentry {
    GBytes *key;
    kr_tracker *t;
    void *conn_ud;
    double last_ts;
    GList *link;      /* in tab->lru */
} kr_tentry;

struct kr_table {
    GHashTable *map;  /* GBytes* -> kr_tentry* */
    GQueue lru;       /* oldest activity first */
    size_t max;
    void (*on_evict)(void *ud, kr_tracker *t, void *conn_ud);
    void *ud;
};

kr_table *kr_table_new(size_t max_conns, void (*on_evict)(void *ud, kr_tracker *t, void *conn_ud), void *ud)
{
    kr_table *tab = g_new0(kr_table, 1);
    tab->map = g_hash_table_new(g_bytes_hash, g_bytes_equal);
    g_queue_init(&tab->lru);
    tab->max = max_conns ? max_conns : 1;
    tab->on_evict = on_evict;
    tab->ud = ud;
    return tab;
}

/* Unlinks and frees an entry; finishes the tracker first when asked. */
static void drop(kr_table *tab, kr_tentry *e, bool finish)
{
    g_hash_table_remove(tab->map, e->key);
    g_queue_delete_link(&tab->lru, e->link);
    if (finish)
        kr_tracker_finish(e->t, e->last_ts);
    if (tab->on_evict)
        tab->on_evict(tab->ud, e->t, e->conn_ud);
    kr_tracker_free(e->t);
    g_bytes_unref(e->key);
    g_free(e);
}

void kr_table_free(kr_table *tab)
{
    if (!tab)
        return;
    while (tab->lru.head)
        drop(tab, tab->lru.head->data, true);
    g_hash_table_destroy(tab->map);
    g_free(tab);
}

static kr_tentry *find(kr_table *tab, const void *key, size_t keylen)
{
    GBytes *k = g_bytes_new_static(key, keylen);
    kr_tentry *e = g_hash_table_lookup(tab->map, k);
    g_bytes_unref(k);
    return e;
}

kr_tracker *kr_table_get(kr_table *tab, const void *key, size_t keylen, void **conn_ud)
{
    if (!tab || !key)
        return NULL;
    kr_tentry *e = find(tab, key, keylen);
    if (!e)
        return NULL;
    if (conn_ud)
        *conn_ud = e->conn_ud;
    return e->t;
}

static void touch_entry(kr_table *tab, kr_tentry *e, double ts)
{
    if (ts > e->last_ts)
        e->last_ts = ts;
    g_queue_unlink(&tab->lru, e->link);
    g_queue_push_tail_link(&tab->lru, e->link);
}

void kr_table_put(kr_table *tab, const void *key, size_t keylen, kr_tracker *t, void *conn_ud, double ts)
{
    if (!tab || !key || !t)
        return;
    kr_tentry *old = find(tab, key, keylen);
    if (old)
        drop(tab, old, true);
    while (g_hash_table_size(tab->map) >= tab->max && tab->lru.head)
        drop(tab, tab->lru.head->data, true);
    kr_tentry *e = g_new0(kr_tentry, 1);
    e->key = g_bytes_new(key, keylen);
    e->t = t;
    e->conn_ud = conn_ud;
    e->last_ts = ts;
    e->link = g_list_alloc();
    e->link->data = e;
    g_queue_push_tail_link(&tab->lru, e->link);
    g_hash_table_insert(tab->map, e->key, e);
}

void kr_table_touch(kr_table *tab, const void *key, size_t keylen, double ts)
{
    if (!tab || !key)
        return;
    kr_tentry *e = find(tab, key, keylen);
    if (e)
        touch_entry(tab, e, ts);
}

size_t kr_table_expire(kr_table *tab, double older_than)
{
    if (!tab)
        return 0;
    size_t n = 0;
    GList *l = tab->lru.head;
    while (l) {
        GList *next = l->next;
        kr_tentry *e = l->data;
        if (e->last_ts < older_than) {
            drop(tab, e, true);
            n++;
        }
        l = next;
    }
    return n;
}

void kr_table_remove(kr_table *tab, const void *key, size_t keylen)
{
    if (!tab || !key)
        return;
    kr_tentry *e = find(tab, key, keylen);
    if (e)
        drop(tab, e, true);
}

size_t kr_table_count(const kr_table *tab)
{
    return tab ? g_hash_table_size(tab->map) : 0;
}
