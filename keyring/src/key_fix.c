/* sparkwire libkeyring: the commands that fix a key problem on a device or in the cloud.
 *
 * Two tools reach a device's keys: dfu-util with the device in DFU mode (USB ids, alternate setting and
 * addresses of docs/protocol.md 5.6 for the Core, 5.7 for the Photon), and the particle command line
 * (`particle keys doctor|send|server`), which wraps the same DFU transfers and the cloud's key upload.
 * Every fix sparkwire prints is built here, so the words and numbers live in one place.
 */
#include "keyring/flash.h"
#include "internal.h"

#include <string.h>

/* What a DFU read of each area takes, and where it starts, per device. */
typedef struct dfu_area {
    const char *usb;          /* VID:PID in DFU mode */
    unsigned long addr[3];    /* device key, server key, whole area (indexed by kr_area) */
    unsigned long read_len[3];
    bool hex;                 /* addresses written in hex (Core) or decimal (Photon DCT offsets) */
} dfu_area;

static const dfu_area dfu_core = {
    "1d50:607f",
    {KR_CORE_DEVICE_KEY_OFFSET, KR_CORE_SERVER_KEY_OFFSET, 0},
    {1024, 2048, KR_CORE_FLASH_SIZE},
    true,
};
static const dfu_area dfu_photon = {
    "2b04:d006",
    {KR_DCT_DEVICE_KEY_OFFSET, KR_DCT_SERVER_KEY_OFFSET, 0},
    {KR_DEVICE_KEY_SLOT, 512, KR_DCT_SIZE},
    false,
};

static void one_dfu(const dfu_area *d, kr_area a, bool write, const char *file, char *out, size_t cap)
{
    char addr[24];
    if (d->hex)
        kr_sfmt(addr, sizeof addr, "0x%08lx", d->addr[a]);
    else
        kr_sfmt(addr, sizeof addr, "%lu", d->addr[a]);
    if (write)
        kr_sfmt(out, cap, "dfu-util -d %s -a 1 -i 0 -s %s:leave -D %s", d->usb, addr, file);
    else
        kr_sfmt(out, cap, "dfu-util -d %s -a 1 -s %s:%lu -U %s", d->usb, addr, d->read_len[a], file);
}

char *kr_dfu_command(kr_flash_layout l, kr_area a, bool write, const char *file, char *out, size_t cap)
{
    if (l == KR_FLASH_CORE) {
        one_dfu(&dfu_core, a, write, file, out, cap);
    } else if (l == KR_FLASH_DCT) {
        one_dfu(&dfu_photon, a, write, file, out, cap);
    } else {
        char c[256], p[256];
        one_dfu(&dfu_core, a, write, file, c, sizeof c);
        one_dfu(&dfu_photon, a, write, file, p, sizeof p);
        kr_sfmt(out, cap, "Core: %s; Photon: %s", c, p);
    }
    return out;
}

char *kr_fix_write_device_key(kr_flash_layout l, const char *file, char *out, size_t cap)
{
    char dfu[512];
    kr_sfmt(out, cap, "write %s to the device in DFU mode with `particle keys load %s` or %s", file, file,
            kr_dfu_command(l, KR_AREA_DEVICE_KEY, true, file, dfu, sizeof dfu));
    return out;
}

char *kr_fix_new_device_key(const char *id, char *out, size_t cap)
{
    const char *who = id && *id ? id : "DEVICE_ID";
    kr_sfmt(out, cap, "give the device a new key: `particle keys doctor %s` (device in DFU mode: it makes the key, "
            "writes it and sends its public half to the cloud), or `sparkkeys new --device %s --out keys`, write "
            "keys/%s.der to the device and `particle keys send %s keys/%s.pub.pem`", who, who, who, who, who);
    return out;
}

char *kr_fix_send_public(const char *id, const char *pub_pem, char *out, size_t cap)
{
    const char *who = id && *id ? id : "DEVICE_ID";
    kr_sfmt(out, cap, "give the cloud the device's public key: `particle keys send %s %s` (a local cloud: copy it "
            "to its key folder as %s.pub.pem)", who, pub_pem, who);
    return out;
}

char *kr_fix_server_key(kr_flash_layout l, const char *file, char *out, size_t cap)
{
    char dfu[512];
    if (!file || !*file) {
        kr_sfmt(out, cap, "device in DFU mode: `particle keys server` writes the Particle cloud key and address; for "
                "your own cloud `particle keys server SERVER.der --host ADDRESS --port 5683`");
        return out;
    }
    kr_sfmt(out, cap, "device in DFU mode: `particle keys server %s --host ADDRESS --port 5683` (it adds the "
            "address record the device needs after the key); dfu-util writes the slot as it is, so only a file that "
            "carries that record at offset 384 goes straight in: %s", file,
            kr_dfu_command(l, KR_AREA_SERVER_KEY, true, file, dfu, sizeof dfu));
    return out;
}

char *kr_flash_slot_fix(const kr_flash *f, const kr_flash_slot *s, const char *id, char *out, size_t cap)
{
    char cmd[512];
    out[0] = '\0';
    if (s->state == KR_SLOT_KEY)
        return out;
    if (s->state == KR_SLOT_ABSENT) {
        if (s == &f->device_public && f->layout != KR_FLASH_DCT)
            return out;   /* a Core keeps no public key */
        kr_sfmt(out, cap, "read the whole %s from address 0: %s", f->layout == KR_FLASH_DCT ? "DCT" : "external flash",
                kr_dfu_command(f->layout, KR_AREA_WHOLE, false, f->layout == KR_FLASH_DCT ? "dct.bin" :
                               "core-flash.bin", cmd, sizeof cmd));
        return out;
    }
    if (s == &f->server_public)
        return kr_fix_server_key(f->layout, NULL, out, cap);
    kr_fix_new_device_key(id, out, cap);
    if (f->layout == KR_FLASH_DCT && s == &f->device_private && s->state == KR_SLOT_BLANK) {
        size_t n = strlen(out);
        kr_sfmt(out + n, cap - n, "; a Photon with a blank key slot makes its own key at boot, and the cloud "
                "then needs its public half");
    }
    return out;
}

bool kr_fix_server_copy(const kr_key *device_copy, const kr_key *cloud, const char *cloud_path, const char *id,
                        char *text, size_t text_cap, char *fix, size_t fix_cap)
{
    char a[65], b[65];
    const char *who = id && *id ? id : "the device";
    bool particle = cloud == NULL;
    bool same = particle ? kr_key_is_particle_cloud(device_copy) : kr_key_same_public(device_copy, cloud);
    kr_key_fingerprint(device_copy, a);
    if (particle)
        kr_sfmt(b, sizeof b, "%s", KR_PARTICLE_CLOUD_FINGERPRINT);
    else
        kr_key_fingerprint(cloud, b);
    fix[0] = '\0';
    if (same) {
        kr_sfmt(text, text_cap, "%s holds the %s server key (fingerprint %s): the cloud can open its id block", who,
                particle ? "Particle cloud's" : "cloud's", a);
        return true;
    }
    kr_sfmt(text, text_cap, "%s holds server key %s, the %s is %s: the cloud cannot open its id block "
            "(server-key-mismatch)", who, a, particle ? "published Particle cloud key" : "cloud's server-public", b);
    kr_fix_server_key(KR_FLASH_AUTO, particle ? NULL : cloud_path, fix, fix_cap);
    return false;
}

bool kr_fix_device_record(const kr_key *device_key, const char *device_path, const kr_key *record, const char *id,
                          char *text, size_t text_cap, char *fix, size_t fix_cap)
{
    char a[65], b[65];
    const char *who = id && *id ? id : "the device";
    kr_key_fingerprint(device_key, a);
    kr_key_fingerprint(record, b);
    fix[0] = '\0';
    if (kr_key_same_public(device_key, record)) {
        kr_sfmt(text, text_cap, "the cloud's record for %s is the device key's public half (fingerprint %s)", who, a);
        return true;
    }
    kr_sfmt(text, text_cap, "the cloud's record for %s (fingerprint %s) is not the device key's public half (%s): "
            "the device's handshakes fail (device-key-mismatch)", who, b, a);
    kr_fix_send_own_public(device_key, device_path, id, fix, fix_cap);
    return false;
}

char *kr_fix_send_own_public(const kr_key *device_key, const char *device_path, const char *id, char *out,
                             size_t cap)
{
    char pem[600], send[800];
    kr_sfmt(pem, sizeof pem, "%s.pub.pem", id && *id ? id : "device");
    kr_sfmt(out, cap, "openssl rsa -in %s%s -pubout -out %s, then %s", device_path,
            device_key->pem ? "" : " -inform DER", pem, kr_fix_send_public(id, pem, send, sizeof send));
    return out;
}
