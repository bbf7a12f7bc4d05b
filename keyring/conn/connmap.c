/* sparkwire libkeyring: the connection map, from a connection's 37-byte key (conn_int.h) to its kr_conn.
 * Open addressing over an array of pointers (linear probing, a removal shifts the entries after it back,
 * so there are no tombstones): an entry costs one pointer slot; a connection keeps only its key's 32-bit
 * hash (its two ends are compared with the key when the hashes match), and a lookup hashes the key once.
 * The hash is seeded per map with a random value, so addresses and ports chosen on the wire cannot be
 * picked in advance to land in one long probe. */
#include <string.h>
#include "conn_int.h"

#define MAP_MIN 64           /* slots at least (a power of two) */

static inline uint64_t read64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 31);
}

static size_t key_hash(const kr_conn_map *m, const uint8_t *k)
{
    uint64_t tail = 0;
    memcpy(&tail, k + 32, KR_CONN_KEY_LEN - 32);
    uint64_t h = m->seed;
    h = mix(h, read64(k));
    h = mix(h, read64(k + 8));
    h = mix(h, read64(k + 16));
    h = mix(h, read64(k + 24));
    h = mix(h, tail);
    h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ull;
    return (size_t)(h ^ (h >> 32));
}

static void place(kr_conn_map *m, kr_conn *c)
{
    size_t i = c->hash & m->mask;
    while (m->slot[i])
        i = (i + 1) & m->mask;
    m->slot[i] = c;
}

static void resize(kr_conn_map *m, size_t cap)
{
    kr_conn **old = m->slot;
    size_t old_cap = old ? m->mask + 1 : 0;
    m->slot = g_new0(kr_conn *, cap);
    m->mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i])
            place(m, old[i]);
    g_free(old);
}

void kr_map_init(kr_conn_map *m)
{
    memset(m, 0, sizeof *m);
    m->seed = (uint64_t)g_random_int() << 32 | g_random_int();
    resize(m, MAP_MIN);
}

void kr_map_free(kr_conn_map *m)
{
    g_free(m->slot);
    m->slot = NULL;
    m->n = 0;
}

static bool has_key(const kr_conn *c, uint32_t h, const uint8_t *key)
{
    return c->hash == h && kr_conn_has_key(c, key);
}

/* The slot of the connection with this key (hashed to h), or of the empty slot that ends its probe. */
static size_t probe(const kr_conn_map *m, const uint8_t *key, uint32_t h)
{
    size_t i = h & m->mask;
    while (m->slot[i] && !has_key(m->slot[i], h, key))
        i = (i + 1) & m->mask;
    return i;
}

kr_conn *kr_map_find(const kr_conn_map *m, const uint8_t *key)
{
    return m->slot[probe(m, key, (uint32_t)key_hash(m, key))];
}

void kr_map_insert(kr_conn_map *m, kr_conn *c, const uint8_t *key)
{
    if ((m->n + 1) * 4 > (m->mask + 1) * 3)
        resize(m, (m->mask + 1) * 2);     /* at most three quarters full */
    c->hash = (uint32_t)key_hash(m, key);
    size_t i = probe(m, key, c->hash);
    if (!m->slot[i])
        m->n++;
    m->slot[i] = c;
}

void kr_map_remove(kr_conn_map *m, const kr_conn *c)
{
    size_t i = c->hash & m->mask;
    while (m->slot[i] && m->slot[i] != c)
        i = (i + 1) & m->mask;
    if (m->slot[i] != c)
        return;
    m->slot[i] = NULL;
    m->n--;
    /* the entries after it in its run move back when their home is at or before the hole */
    for (size_t j = (i + 1) & m->mask; m->slot[j]; j = (j + 1) & m->mask) {
        size_t home = m->slot[j]->hash & m->mask;
        if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
            m->slot[i] = m->slot[j];
            m->slot[j] = NULL;
            i = j;
        }
    }
    if (m->mask + 1 > MAP_MIN && m->n * 8 < m->mask + 1)
        resize(m, (m->mask + 1) / 2);     /* mostly empty: half the slots */
}

kr_conn *kr_map_next(const kr_conn_map *m, size_t *pos)
{
    for (; *pos <= m->mask; (*pos)++)
        if (m->slot[*pos])
            return m->slot[(*pos)++];
    return NULL;
}

size_t kr_map_memory(const kr_conn_map *m)
{
    return (m->mask + 1) * sizeof *m->slot;
}
