/* sparkwire libkeyring: key slots of a Spark Core flash dump or a Photon/P1 DCT dump (docs/protocol.md 5.6, 5.7). */
#include "keyring/flash.h"
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define DUMP_MAX (64 * 1024 * 1024)
#define READ_AREA 1024   /* what a DFU read of a key slot returns */

const char *kr_flash_layout_str(kr_flash_layout l)
{
    switch (l) {
    case KR_FLASH_CORE: return "Spark Core external flash";
    case KR_FLASH_DCT: return "Photon/P1 DCT";
    default: return "unknown layout";
    }
}

const char *kr_slot_state_str(kr_slot_state s)
{
    switch (s) {
    case KR_SLOT_ABSENT: return "absent";
    case KR_SLOT_BLANK: return "blank";
    case KR_SLOT_INVALID: return "invalid";
    case KR_SLOT_KEY: return "key";
    }
    return "?";
}

bool kr_all_ff(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0xff)
            return false;
    return true;
}

/* want_private: 1 private key expected, 0 public key expected. */
static void read_slot(const uint8_t *buf, size_t len, const char *dumpname, const char *name, size_t off,
                      size_t area, size_t used, int want_private, kr_flash_slot *s)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    s->offset = off;
    if (len < off + 4 || len < off + (used < 64 ? used : 64)) {
        s->state = KR_SLOT_ABSENT;
        kr_sfmt(s->why, sizeof s->why, "%s at 0x%zx: not in the dump (it ends at 0x%zx): read at least 0x%zx "
             "bytes from address 0", name, off, len, off + used);
        return;
    }
    size_t n = len - off < area ? len - off : area;
    s->size = n;
    const uint8_t *p = buf + off;
    if (kr_all_ff(p, n < used ? n : used)) {
        s->state = KR_SLOT_BLANK;
        kr_sfmt(s->why, sizeof s->why, "%s at 0x%zx: blank (erased flash, all 0xFF): no key stored%s", name,
                 off, want_private ? "; the device cannot connect until a key is written there" : "");
        return;
    }
    char label[128];
    kr_sfmt(label, sizeof label, "%s@0x%zx", dumpname, off);
    kr_err kerr;
    kr_tlv t;
    if (n < area && kr_tlv_read(p, n, &t) == -2) {
        s->state = KR_SLOT_ABSENT;
        kr_sfmt(s->why, sizeof s->why, "%s at 0x%zx: the dump ends inside it (at 0x%zx, the key needs 0x%zx): read "
                "at least 0x%zx bytes from address 0", name, off, len, off + t.hdr + t.len, off + t.hdr + t.len);
        return;
    }
    kr_key *k = kr_key_load_mem(p, n, label, &kerr);
    if (!k) {
        s->state = KR_SLOT_INVALID;
        kr_sfmt(s->why, sizeof s->why, "%s at 0x%zx: not a valid key: %s", name, off, kerr.msg);
        return;
    }
    if (want_private && !k->is_private) {
        s->state = KR_SLOT_INVALID;
        kr_sfmt(s->why, sizeof s->why, "%s at 0x%zx: holds a public key, not the device's private key",
                 name, off);
        kr_key_free(k);
        return;
    }
    if (want_private && !kr_key_private_consistent(k)) {
        s->state = KR_SLOT_INVALID;
        kr_sfmt(s->why, sizeof s->why, "%s at 0x%zx: parses as RSA-%d but its numbers are inconsistent "
                 "(n != p*q): a corrupt key", name, off, k->bits);
        kr_key_free(k);
        return;
    }
    s->state = KR_SLOT_KEY;
    s->key = k;
}

void kr_server_address_parse(const uint8_t *p, size_t avail, size_t offset, kr_server_address *a)
{
    memset(a, 0, sizeof *a);
    a->offset = offset;
    if (avail < 2) {
        a->state = KR_SLOT_ABSENT;
        kr_sfmt(a->why, sizeof a->why, "server address record at 0x%zx: not in the dump", offset);
        return;
    }
    if (avail > KR_SERVER_ADDR_LEN)
        avail = KR_SERVER_ADDR_LEN;
    a->type = p[0];
    a->len = p[1];
    a->port = avail >= 68 ? (uint16_t)(p[66] << 8 | p[67]) : 0;
    a->port_used = (a->port == 0 || a->port == 0xffff) ? 5683 : a->port;
    if (kr_all_ff(p, avail)) {
        a->state = KR_SLOT_BLANK;
        kr_sfmt(a->why, sizeof a->why, "server address record at 0x%zx: blank: devices connect to "
             "device.spark.io", offset);
        return;
    }
    if (a->type == 0 && a->len == 4 && avail >= 6) {
        kr_sfmt(a->host, sizeof a->host, "%u.%u.%u.%u", p[2], p[3], p[4], p[5]);
        a->state = KR_SLOT_KEY;
        return;
    }
    if (a->type == 1 && a->len >= 1 && a->len <= 64 && avail >= 2u + a->len) {
        size_t o = 0;
        for (size_t i = 0; i < a->len && o + 5 < sizeof a->host; i++) {
            uint8_t c = p[2 + i];
            if (c >= 0x21 && c < 0x7f) {
                a->host[o++] = (char)c;
            } else {
                kr_sfmt(a->host + o, sizeof a->host - o, "\\x%02x", c);
                o += 4;
            }
        }
        a->host[o] = '\0';
        a->state = KR_SLOT_KEY;
        return;
    }
    a->state = KR_SLOT_INVALID;
    kr_sfmt(a->why, sizeof a->why, "server address record at 0x%zx: invalid (type %u, length %u): devices "
         "fall back to device.spark.io", offset, a->type, a->len);
}

static void read_address(const uint8_t *buf, size_t len, size_t off, kr_server_address *a)
{
    if (len < off + KR_SERVER_ADDR_LEN) {
        memset(a, 0, sizeof *a);
        a->offset = off;
        a->state = KR_SLOT_ABSENT;
        kr_sfmt(a->why, sizeof a->why, "server address record at 0x%zx: not in the dump", off);
        return;
    }
    kr_server_address_parse(buf + off, KR_SERVER_ADDR_LEN, off, a);
}

static void parse_layout(const uint8_t *buf, size_t len, const char *name, kr_flash_layout l, kr_flash *f)
{
    memset(f, 0, sizeof *f);
    f->layout = l;
    f->dump_len = len;
    if (l == KR_FLASH_CORE) {
        read_slot(buf, len, name, "device private key", KR_CORE_DEVICE_KEY_OFFSET, READ_AREA,
                  KR_DEVICE_KEY_SLOT, 1, &f->device_private);
        read_slot(buf, len, name, "server public key", KR_CORE_SERVER_KEY_OFFSET, KR_SERVER_KEY_SLOT,
                  KR_SERVER_SPKI_LEN, 0, &f->server_public);
        f->device_public.name = "device public key";
        f->device_public.state = KR_SLOT_ABSENT;
        kr_sfmt(f->device_public.why, sizeof f->device_public.why,
                 "device public key: not stored by a Core (derived from the private key)");
        read_address(buf, len, KR_CORE_SERVER_ADDR_OFFSET, &f->address);
    } else {
        read_slot(buf, len, name, "device private key", KR_DCT_DEVICE_KEY_OFFSET, 1216, KR_DEVICE_KEY_SLOT, 1,
                  &f->device_private);
        read_slot(buf, len, name, "device public key", KR_DCT_DEVICE_PUB_OFFSET, 384, KR_DEVICE_SPKI_LEN, 0,
                  &f->device_public);
        read_slot(buf, len, name, "server public key", KR_DCT_SERVER_KEY_OFFSET, KR_SERVER_KEY_SLOT,
                  KR_SERVER_SPKI_LEN, 0, &f->server_public);
        read_address(buf, len, KR_DCT_SERVER_ADDR_OFFSET, &f->address);
    }
}

/* Looks for keys outside the slots of the layout. */
static void scan_other_keys(const uint8_t *buf, size_t len, const char *dumpname, kr_flash *f)
{
    static const uint8_t spki2048[] = {0x30, 0x82, 0x01, 0x22, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48,
                                       0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};
    static const uint8_t spki1024[] = {0x30, 0x81, 0x9f, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                       0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};
    const kr_flash_slot *known[3] = {&f->device_private, &f->server_public, &f->device_public};
    f->n_found = 0;
    for (size_t off = 0; off + 16 <= len && f->n_found < KR_FLASH_MAX_FOUND; off++) {
        if (buf[off] != 0x30)
            continue;
        const uint8_t *p = buf + off;
        size_t avail = len - off;
        const char *what = NULL;
        size_t want = 0;
        int want_private = 0;
        if (avail >= sizeof spki2048 && memcmp(p, spki2048, sizeof spki2048) == 0) {
            what = "RSA-2048 public key (a server key?)";
            want = KR_SERVER_SPKI_LEN;
        } else if (avail >= sizeof spki1024 && memcmp(p, spki1024, sizeof spki1024) == 0) {
            what = "RSA-1024 public key (a device public key?)";
            want = KR_DEVICE_SPKI_LEN;
        } else if (p[1] == 0x82 && p[2] == 0x02 && (p[3] & 0xf0) == 0x50 && p[4] == 0x02 && p[5] == 0x01 &&
                   p[6] == 0x00 && p[7] == 0x02 && p[8] == 0x81 && p[9] == 0x81 && p[10] == 0x00) {
            what = "RSA-1024 private key (a device key?)";
            want = 4 + ((size_t)p[2] << 8 | p[3]);
            want_private = 1;
        }
        if (!what || avail < want)
            continue;
        bool in_slot = false;
        for (int i = 0; i < 3; i++) {
            size_t end = known[i]->offset + (known[i]->key ? known[i]->key->der_len : 1);
            if (known[i]->state != KR_SLOT_ABSENT && off >= known[i]->offset && off < end)
                in_slot = true;   /* the slot's own key, or a part of it (PKCS#1 inside PKCS#8) */
        }
        if (in_slot)
            continue;
        kr_flash_slot *x = &f->found[f->n_found];
        read_slot(buf, off + want, dumpname, what, off, want, want, want_private, x);
        if (x->state == KR_SLOT_KEY) {
            f->n_found++;
            off += want - 1;
        } else {
            kr_key_free(x->key);
            memset(x, 0, sizeof *x);
        }
    }
}

/* How many key slots the dump reaches into (a slot it ends inside counts: a short read is still a dump). */
static int present(const kr_flash *f)
{
    return (f->device_private.offset < f->dump_len) + (f->server_public.offset < f->dump_len);
}

/* The first bytes of a key of the expected kind at off: a 2048-bit SubjectPublicKeyInfo, a 1024-bit one,
 * or a PKCS#1 / PKCS#8 private key with a 2-byte length (30 82 02 xx 02 01 00). */
static bool key_starts(const uint8_t *buf, size_t len, size_t off, char kind)
{
    static const uint8_t spki2048[] = {0x30, 0x82, 0x01, 0x22, 0x30, 0x0d};
    static const uint8_t spki1024[] = {0x30, 0x81, 0x9f, 0x30, 0x0d};
    static const uint8_t priv[] = {0x30, 0x82, 0x02};
    const uint8_t *want = kind == 's' ? spki2048 : kind == 'p' ? spki1024 : priv;
    size_t n = kind == 's' ? sizeof spki2048 : kind == 'p' ? sizeof spki1024 : sizeof priv;
    if (len < off + n + 4 || memcmp(buf + off, want, n) != 0)
        return false;
    return kind != 'd' || (buf[off + 4] == 0x02 && buf[off + 5] == 0x01 && buf[off + 6] == 0x00);
}

/* Core or DCT, from the content first (where keys begin), then from the size: a DCT read is 16 KB, and
 * a shorter read from address 0 with no key at either layout's places is taken as a Core read (the Core's
 * first key is at 0x1000, so a short Core read holds no key in the DCT's places either). */
static kr_flash_layout guess_layout(const uint8_t *buf, size_t len, char *why, size_t cap)
{
    int core = key_starts(buf, len, KR_CORE_SERVER_KEY_OFFSET, 's') + key_starts(buf, len, KR_CORE_DEVICE_KEY_OFFSET, 'd');
    int dct = key_starts(buf, len, KR_DCT_DEVICE_KEY_OFFSET, 'd') + key_starts(buf, len, KR_DCT_DEVICE_PUB_OFFSET, 'p') +
              key_starts(buf, len, KR_DCT_SERVER_KEY_OFFSET, 's');
    if (core > dct) {
        kr_sfmt(why, cap, "keys begin at the Core's addresses (0x1000, 0x2000)");
        return KR_FLASH_CORE;
    }
    if (dct > core) {
        kr_sfmt(why, cap, "keys begin at the DCT's offsets (34, 1250, 2082)");
        return KR_FLASH_DCT;
    }
    if (len == KR_DCT_SIZE) {
        kr_sfmt(why, cap, "no key begins at either layout's places; %d bytes, the size of a DCT read", KR_DCT_SIZE);
        return KR_FLASH_DCT;
    }
    kr_sfmt(why, cap, "no key begins at either layout's places; %zu bytes, not the %d of a DCT read: taken as a "
            "read of a Core's external flash from address 0", len, KR_DCT_SIZE);
    return KR_FLASH_CORE;
}

static int parse_named(const uint8_t *buf, size_t len, const char *name, kr_flash_layout layout, kr_flash *out,
                       kr_err *err)
{
    const size_t min_len = KR_DCT_SERVER_ADDR_OFFSET + KR_SERVER_ADDR_LEN;
    memset(out, 0, sizeof *out);
    if (len < min_len) {
        kr_err_set(err, "%s: %zu bytes: too short for a flash dump (a Photon DCT dump has %d bytes, a Core "
                   "dump must reach 0x%x); for a single key file use `sparkkeys show`", name, len, KR_DCT_SIZE,
                   KR_CORE_DEVICE_KEY_OFFSET + KR_DEVICE_KEY_SLOT);
        return -1;
    }
    char why[sizeof out->layout_why];
    if (layout == KR_FLASH_CORE || layout == KR_FLASH_DCT)
        kr_sfmt(why, sizeof why, "as asked");
    else
        layout = guess_layout(buf, len, why, sizeof why);
    parse_layout(buf, len, name, layout, out);
    kr_sfmt(out->layout_why, sizeof out->layout_why, "%s", why);
    if (present(out) > 0)
        scan_other_keys(buf, len, name, out);
    if (present(out) == 0) {
        kr_err_set(err, "%s: %zu bytes: too short for a %s dump (a Core dump must reach 0x%x, a DCT dump %d "
                   "bytes); for a single key file use `sparkkeys show`", name, len, kr_flash_layout_str(layout),
                   KR_CORE_DEVICE_KEY_OFFSET + KR_DEVICE_KEY_SLOT, KR_DCT_SERVER_ADDR_OFFSET + KR_SERVER_ADDR_LEN);
        kr_flash_clear(out);
        return -1;
    }
    return 0;
}

int kr_flash_parse(const uint8_t *buf, size_t len, kr_flash_layout layout, kr_flash *out, kr_err *err)
{
    return parse_named(buf, len, "dump", layout, out, err);
}

int kr_flash_load_file(const char *path, kr_flash_layout layout, kr_flash *out, kr_err *err)
{
    memset(out, 0, sizeof *out);
    size_t n = 0;
    uint8_t *buf = kr_read_file(path, DUMP_MAX, "the dump",
                                "larger than 64 MB: not a flash dump (the Core's flash is 2 MB)", &n, err);
    if (!buf)
        return -1;
    int r = parse_named(buf, n, path, layout, out, err);
    free(buf);
    return r;
}

void kr_flash_clear(kr_flash *f)
{
    if (!f)
        return;
    kr_key_free(f->device_private.key);
    kr_key_free(f->server_public.key);
    kr_key_free(f->device_public.key);
    f->device_private.key = f->server_public.key = f->device_public.key = NULL;
    for (size_t i = 0; i < f->n_found && i < KR_FLASH_MAX_FOUND; i++) {
        kr_key_free(f->found[i].key);
        f->found[i].key = NULL;
    }
    f->n_found = 0;
}
