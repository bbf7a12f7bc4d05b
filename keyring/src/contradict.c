/* sparkwire libkeyring: which line of the keyfile a verdict contradicts, and the command that fixes it
 * (keyring/contradict.h). The rule is the table below; the fixes come from key_fix.c. */
#include "keyring/contradict.h"
#include "keyring/flash.h"
#include "internal.h"

#include <string.h>
#include <strings.h>

typedef enum fixer { FIX_SERVER_COPY, FIX_DEVICE_RECORD, FIX_SIGNATURE, FIX_REGISTER } fixer;

/* Per verdict code: the line naming the key at fault, the line it is compared with, the fix. */
static const struct blame_row {
    kr_verdict_code code;
    kr_entry_kind line, against;
    fixer fix;
    const char *what;
} blame[] = {
    { KR_V_SERVER_KEY_MISMATCH, KR_ENTRY_DEVICE_SERVER_KEY, KR_ENTRY_SERVER_PUBLIC, FIX_SERVER_COPY,
      "the server key in the device's flash is not the cloud's key: the cloud cannot open the device's id block" },
    { KR_V_DEVICE_KEY_MISMATCH, KR_ENTRY_DEVICE, KR_ENTRY_DEVICE_PUBLIC, FIX_DEVICE_RECORD,
      "the device's own key is not the one the cloud holds on record for it: the device cannot open the "
      "session block" },
    { KR_V_BAD_SIGNATURE, KR_ENTRY_SERVER_PUBLIC, KR_ENTRY_DEVICE_SERVER_KEY, FIX_SIGNATURE,
      "the cloud did not sign the session block with this server public key: the device, checking with the "
      "server key in its flash, refuses it" },
    { KR_V_UNKNOWN_DEVICE, KR_ENTRY_DEVICE_PUBLIC, KR_ENTRY_DEVICE, FIX_REGISTER,
      "the cloud holds no record of the device's key: it closes on the device's id block" },
};

char *kr_entry_describe(const kr_entry *e, char *out, size_t cap)
{
    char fp[65] = "";
    if (e->key)
        kr_key_fingerprint(e->key, fp);
    kr_sfmt(out, cap, "line %d: %s%s%s %s%s%s%s%s%s", e->line, kr_entry_kind_str(e->kind),
            e->has_id || e->wildcard ? " " : "", e->wildcard ? "*" : e->has_id ? e->device_id_hex : "",
            e->path, e->bound ? " cloud=" : "", e->bound ? e->cloud : "", fp[0] ? " (fingerprint " : "", fp,
            fp[0] ? ")" : "");
    return out;
}

/* The cloud's key for this cloud: its server-public line, else its server-private line (the public half). */
static const kr_entry *cloud_entry(const kr_keyfile *kf, const kr_endpoint *cloud)
{
    int fam = cloud ? cloud->family : 0;
    const uint8_t *addr = cloud ? cloud->ip : NULL;
    uint16_t port = cloud ? cloud->port : 0;
    const kr_entry *e = kr_keyfile_server_entry(kf, KR_ENTRY_SERVER_PUBLIC, fam, addr, port);
    return e ? e : kr_keyfile_server_entry(kf, KR_ENTRY_SERVER_PRIVATE, fam, addr, port);
}

/* The line of a kind for this device: the one with its id; without one (or the id unknown), the only line
 * of the kind that can apply (a wildcard device line, or any line when the id is unknown). */
static const kr_entry *device_line(const kr_keyfile *kf, kr_entry_kind kind, const kr_conn_info *info)
{
    const kr_entry *only = NULL;
    int n = 0;
    for (size_t i = 0; i < kr_keyfile_count(kf); i++) {
        const kr_entry *e = kr_keyfile_entry(kf, i);
        if (e->kind != kind)
            continue;
        if (info->device_id_known && e->has_id && strcasecmp(e->device_id_hex, info->device_id_hex) == 0)
            return e;
        if (e->wildcard || !info->device_id_known) {
            only = e;
            n++;
        }
    }
    return n == 1 ? only : NULL;
}

static const kr_entry *line_of(const kr_keyfile *kf, kr_entry_kind kind, const kr_conn_info *info,
                               const kr_endpoint *cloud)
{
    return kind == KR_ENTRY_SERVER_PUBLIC ? cloud_entry(kf, cloud) : device_line(kf, kind, info);
}

/* The command that writes the cloud's key (its server-public file, the public half of its server-private
 * file made with openssl first, or the Particle key when cloud is NULL) into the device. */
static char *give_cloud_key(const kr_entry *cloud, char *out, size_t cap)
{
    char buf[KR_NOTE_FIX_LEN], pub[1100];
    if (!cloud || cloud->kind != KR_ENTRY_SERVER_PRIVATE)
        return kr_fix_server_key(KR_FLASH_AUTO, cloud ? cloud->path : NULL, out, cap);
    /* only the cloud's private key is at hand: the device gets its public half, never the private file */
    kr_sfmt(pub, sizeof pub, "%s.pub.der", cloud->path);
    kr_sfmt(out, cap, "openssl rsa -in %s -pubout -outform DER -out %s, then %s", cloud->path, pub,
            kr_fix_server_key(KR_FLASH_AUTO, pub, buf, sizeof buf));
    return out;
}

bool kr_contradiction_server_copy(const kr_entry *copy, const kr_entry *cloud, char *text, size_t text_cap,
                                  char *fix, size_t fix_cap)
{
    char buf[KR_NOTE_FIX_LEN];
    bool same = kr_fix_server_copy(copy->key, cloud ? cloud->key : NULL, cloud ? cloud->path : NULL,
                                   copy->has_id ? copy->device_id_hex : NULL, text, text_cap, buf, sizeof buf);
    if (same)
        fix[0] = '\0';
    else
        give_cloud_key(cloud, fix, fix_cap);
    return same;
}

/* server-key-mismatch: the device's copy of the server key against the cloud's key. */
static void fix_server_copy(kr_contradiction *c, const char *id, char *note, size_t ncap)
{
    char dfu[512], give[KR_NOTE_FIX_LEN];
    note[0] = '\0';
    if (!c->line) {
        give_cloud_key(c->against, c->fix, sizeof c->fix);
        return;
    }
    if (!kr_contradiction_server_copy(c->line, c->against, note, ncap, c->fix, sizeof c->fix))
        return;
    /* the line says the device holds the cloud's key, the capture says it does not */
    kr_sfmt(c->fix, sizeof c->fix, "the device does not hold the key of line %d: read its server key slot again "
            "(%s) and `sparkkeys import` it, then write the cloud's key: %s", c->line->line,
            kr_dfu_command(KR_FLASH_AUTO, KR_AREA_SERVER_KEY, false, "server-key.bin", dfu, sizeof dfu),
            give_cloud_key(c->against, give, sizeof give));
    kr_sfmt(note, ncap, "line %d says %s holds the cloud's key, but the capture shows it does not", c->line->line,
            id ? id : "the device");
}

/* device-key-mismatch: the device's key against the cloud's record of it. */
static void fix_device_record(kr_contradiction *c, const char *id, char *note, size_t ncap)
{
    note[0] = '\0';
    if (c->line && c->against &&
        kr_fix_device_record(c->line->key, c->line->path, c->against->key, id, note, ncap, c->fix, sizeof c->fix)) {
        /* the two lines agree, the wire does not: the cloud or the device holds another key than its line */
        char send[KR_NOTE_FIX_LEN], fresh[KR_NOTE_FIX_LEN];
        kr_sfmt(note, ncap, "lines %d and %d agree, but the capture shows that the cloud's record and the device's "
                "key differ: one of the two lines is not what the cloud or the device holds", c->line->line,
                c->against->line);
        kr_sfmt(c->fix, sizeof c->fix, "send the device key's public half again: %s; if the device holds another "
                "key: %s", kr_fix_send_own_public(c->line->key, c->line->path, id, send, sizeof send),
                kr_fix_new_device_key(id, fresh, sizeof fresh));
    } else if (c->line && !c->against) {
        kr_fix_send_own_public(c->line->key, c->line->path, id, c->fix, sizeof c->fix);
    } else if (!c->line) {
        kr_fix_new_device_key(id, c->fix, sizeof c->fix);
    }
}

/* bad-signature: the cloud's signing key against the key the device checks with. */
static void fix_signature(kr_contradiction *c, char *note)
{
    char buf[KR_NOTE_FIX_LEN];
    const char *pub = c->line ? c->line->path : "SERVER_PUBLIC.der";
    note[0] = '\0';
    kr_sfmt(c->fix, sizeof c->fix, "check that the cloud signs with the private half of %s: `sparkkeys match "
            "SERVER_PRIVATE %s` on the cloud's key file; if the cloud's key is another one, give the device the "
            "cloud's public key: %s", pub, pub,
            kr_fix_server_key(KR_FLASH_AUTO, c->line && c->line->kind == KR_ENTRY_SERVER_PUBLIC ? c->line->path
                              : NULL, buf, sizeof buf));
}

/* unknown-device: the cloud has no record of the device's key. */
static void fix_register(kr_contradiction *c, const char *id, char *note)
{
    char buf[KR_NOTE_FIX_LEN], dfu[512], der[64], pem[64];
    note[0] = '\0';
    if (c->against) {
        kr_fix_send_own_public(c->against->key, c->against->path, id, c->fix, sizeof c->fix);
        return;
    }
    kr_sfmt(der, sizeof der, "%s.der", id ? id : "DEVICE_ID");
    kr_sfmt(pem, sizeof pem, "%s.pub.pem", id ? id : "DEVICE_ID");
    kr_sfmt(c->fix, sizeof c->fix, "read the device's key (%s), `sparkkeys import` it, then %s",
            kr_dfu_command(KR_FLASH_AUTO, KR_AREA_DEVICE_KEY, false, der, dfu, sizeof dfu),
            kr_fix_send_public(id, pem, buf, sizeof buf));
}

bool kr_contradiction_of(const kr_keyfile *kf, kr_verdict_code code, const kr_conn_info *info,
                         const kr_endpoint *cloud, kr_contradiction *out)
{
    memset(out, 0, sizeof *out);
    out->code = code;
    const struct blame_row *r = NULL;
    for (size_t i = 0; i < sizeof blame / sizeof blame[0]; i++)
        if (blame[i].code == code)
            r = &blame[i];
    if (!r) {
        kr_sfmt(out->what, sizeof out->what, "%s: the capture contradicts no key", code == KR_V_NONE ?
                "no verdict" : kr_verdict_str(code));
        return false;
    }
    const char *id = info && info->device_id_known ? info->device_id_hex : NULL;
    out->kind = r->line;
    out->against_kind = r->against;
    out->line = line_of(kf, r->line, info, cloud);
    out->against = line_of(kf, r->against, info, cloud);
    /* without the id on the wire, the device line that applies names the device */
    if (!id && out->line && out->line->has_id)
        id = out->line->device_id_hex;
    if (!id && out->against && out->against->has_id)
        id = out->against->device_id_hex;
    char note[KR_NOTE_TEXT_LEN];
    switch (r->fix) {
    case FIX_SERVER_COPY: fix_server_copy(out, id, note, sizeof note); break;
    case FIX_DEVICE_RECORD: fix_device_record(out, id, note, sizeof note); break;
    case FIX_SIGNATURE: fix_signature(out, note); break;
    case FIX_REGISTER: fix_register(out, id, note); break;
    }
    kr_sfmt(out->what, sizeof out->what, "%s", r->what);
    kr_sfmt(out->detail, sizeof out->detail, "%s", note);
    return true;
}
