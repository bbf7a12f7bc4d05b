/* sparkwire libkeyring: the connection map, from a connection's two ends to its kr_conn.
 * Open addressing over an array of slots (linear probing, a removal shifts the entries after it back,
 * so there are no tombstones): a slot holds the connection and the 32-bit hash of its ends, so a probe
 * reads only the slot array and looks into a connection only when the hashes match. The hash is the same
 * for both directions (the ends are put in one order first) and seeded per map with a random value, so
 * addresses and ports chosen on the wire cannot be picked in advance to land in one long probe. The lookup
 * and the IPv4 hash, which every packet runs, are inline in conn_int.h. */
#include <string.h>
#include "conn_int.h"

#define MAP_MIN 64           /* slots at least (a power of two) */

static inline uint64_t word(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

uint32_t kr_map_hash6(const kr_conn_map *m, const kr_endpoint *x, const kr_endpoint *y)
{
    uint64_t xa = word(x->ip), xb = word(x->ip + 8), ya = word(y->ip), yb = word(y->ip + 8);
    uint64_t xp = (uint64_t)x->family << 16 | x->port, yp = (uint64_t)y->family << 16 | y->port;
    /* one order of the two ends for both directions: any fixed order does */
    if (xa != ya ? xa > ya : xb != yb ? xb > yb : xp > yp) {
        uint64_t t;
        t = xa, xa = ya, ya = t;
        t = xb, xb = yb, yb = t;
        t = xp, xp = yp, yp = t;
    }
    uint64_t h = kr_map_mix(m->seed, xp << 32 | yp);
    h = kr_map_mix(h, xa);
    h = kr_map_mix(h, xb);
    h = kr_map_mix(h, ya);
    h = kr_map_mix(h, yb);
    return kr_map_finish(h);
}

static void place(kr_conn_map *m, kr_conn *c, uint32_t h)
{
    size_t i = h & m->mask;
    while (m->slot[i].c)
        i = (i + 1) & m->mask;
    m->slot[i].c = c;
    m->slot[i].hash = h;
}

static void resize(kr_conn_map *m, size_t cap)
{
    kr_map_slot *old = m->slot;
    size_t old_cap = old ? m->mask + 1 : 0;
    m->slot = g_new0(kr_map_slot, cap);
    m->mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].c)
            place(m, old[i].c, old[i].hash);
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

void kr_map_insert(kr_conn_map *m, kr_conn *c, uint32_t h)
{
    if ((m->n + 1) * 4 > (m->mask + 1) * 3)
        resize(m, (m->mask + 1) * 2);     /* at most three quarters full */
    c->hash = h;
    place(m, c, h);
    m->n++;
}

/* The number of slots from the home of the entry at i to i. */
static size_t distance(const kr_conn_map *m, size_t i)
{
    return (i - (m->slot[i].hash & m->mask)) & m->mask;
}

void kr_map_remove(kr_conn_map *m, const kr_conn *c)
{
    size_t i = c->hash & m->mask;
    while (m->slot[i].c && m->slot[i].c != c)
        i = (i + 1) & m->mask;
    if (m->slot[i].c != c)
        return;
    m->slot[i].c = NULL;
    m->n--;
    /* the entries after it in its run move back when their home is at or before the hole */
    for (size_t j = (i + 1) & m->mask; m->slot[j].c; j = (j + 1) & m->mask) {
        if (distance(m, j) >= ((j - i) & m->mask)) {
            m->slot[i] = m->slot[j];
            m->slot[j].c = NULL;
            i = j;
        }
    }
    if (m->mask + 1 > MAP_MIN && m->n * 8 < m->mask + 1)
        resize(m, (m->mask + 1) / 2);     /* mostly empty: half the slots */
}

kr_conn *kr_map_next(const kr_conn_map *m, size_t *pos)
{
    for (; *pos <= m->mask; (*pos)++)
        if (m->slot[*pos].c)
            return m->slot[(*pos)++].c;
    return NULL;
}

size_t kr_map_longest_probe(const kr_conn_map *m)
{
    size_t longest = 0;
    for (size_t i = 0; i <= m->mask; i++)
        if (m->slot[i].c && distance(m, i) + 1 > longest)
            longest = distance(m, i) + 1;
    return longest;
}

size_t kr_map_memory(const kr_conn_map *m)
{
    return (m->mask + 1) * sizeof *m->slot;
}
