#include "keyfile.h"

#include <stdlib.h>
#include <string.h>

#include <keyring/keyfile.h>

struct sw_keyfile {
    kr_keyfile *kf;
};

sw_keyfile *sw_keyfile_open(const char *path)
{
    kr_err err = {{0}};
    kr_keyfile *kf = kr_keyfile_load(path, &err);
    if (kf == NULL) {
        sw_err("keyfile %s", err.msg[0] ? err.msg : path);
        return NULL;
    }
    sw_keyfile *k = malloc(sizeof *k);
    if (k == NULL) {
        kr_keyfile_free(kf);
        sw_err("keyfile %s: out of memory", path);
        return NULL;
    }
    k->kf = kf;
    return k;
}

void sw_keyfile_close(sw_keyfile *kf)
{
    if (kf) {
        kr_keyfile_free(kf->kf);
        free(kf);
    }
}

int sw_keyfile_server_private(const sw_keyfile *kf, sw_keybuf *out)
{
    return sw_keybuf_from_key(kr_keyfile_server_private(kf->kf), true, out);
}

int sw_keyfile_server_public(const sw_keyfile *kf, sw_keybuf *out)
{
    return sw_keybuf_from_key(kr_keyfile_server_public(kf->kf), false, out);
}

int sw_keyfile_device_private(const sw_keyfile *kf, const uint8_t id[12], sw_keybuf *out)
{
    const kr_key *k = kr_keyfile_device_key(kf->kf, id);
    if (k == NULL || !k->is_private)
        return -1;
    return sw_keybuf_from_key(k, true, out);
}

size_t sw_keyfile_device_count(const sw_keyfile *kf)
{
    return kr_keyfile_device_key_count(kf->kf);
}

int sw_keyfile_device_public(const sw_keyfile *kf, size_t i, char id_hex[25], sw_keybuf *out)
{
    const kr_entry *e = kr_keyfile_device_entry(kf->kf, i);
    if (e == NULL || e->wildcard || !e->has_id)
        return -1;
    memcpy(id_hex, e->device_id_hex, 25);
    id_hex[24] = 0;
    return sw_keybuf_from_key(e->key, false, out);
}
