/* sparkwire libkeyring: keys read back from a device's storage (docs/protocol.md 5.6, 5.7).
 *
 * A Spark Core keeps its keys in the 2 MB external SPI flash: the server public key (294-byte SPKI DER)
 * at 0x1000, the server address record at 0x1180, the device private key (PKCS#1 DER, up to 612 bytes)
 * at 0x2000, each followed by erased flash (0xFF). A Photon/P1 keeps them in the 16 KB DCT: device private
 * key at 34, device public key at 1250, server public key at 2082, address record at 2466.
 * A dump may be the whole flash or any shorter read that starts at address 0.
 */
#ifndef KEYRING_FLASH_H
#define KEYRING_FLASH_H

#include <stdbool.h>
#include "common.h"
#include "key.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kr_flash_layout {
    KR_FLASH_AUTO = 0,        /* decide from the size and content */
    KR_FLASH_CORE,            /* Spark Core external flash (0x1000 / 0x1180 / 0x2000) */
    KR_FLASH_DCT              /* Photon / P1 DCT (34 / 1250 / 2082 / 2466) */
} kr_flash_layout;

const char *kr_flash_layout_str(kr_flash_layout l);   /* "Spark Core external flash", "Photon/P1 DCT" */

/* Core offsets */
#define KR_CORE_SERVER_KEY_OFFSET   0x1000
#define KR_CORE_SERVER_ADDR_OFFSET  0x1180
#define KR_CORE_DEVICE_KEY_OFFSET   0x2000
#define KR_CORE_FLASH_SIZE          (2 * 1024 * 1024)
/* Photon / P1 DCT offsets */
#define KR_DCT_DEVICE_KEY_OFFSET    34
#define KR_DCT_DEVICE_PUB_OFFSET    1250
#define KR_DCT_SERVER_KEY_OFFSET    2082
#define KR_DCT_SERVER_ADDR_OFFSET   2466
#define KR_DCT_SIZE                 (16 * 1024)

#define KR_DEVICE_KEY_SLOT          612   /* bytes a device reads for its private key */
#define KR_SERVER_KEY_SLOT          384   /* key area before the address record */
#define KR_SERVER_ADDR_LEN          128

typedef enum kr_slot_state {
    KR_SLOT_ABSENT = 0,   /* the dump ends before this slot */
    KR_SLOT_BLANK,        /* all 0xFF: erased, no key stored */
    KR_SLOT_INVALID,      /* holds bytes that are not a valid key of the expected kind (see why) */
    KR_SLOT_KEY           /* a valid key (may still have notes from kr_key_check) */
} kr_slot_state;

const char *kr_slot_state_str(kr_slot_state s);  /* "absent", "blank", "invalid", "key" */

typedef struct kr_flash_slot {
    const char *name;     /* "device private key", "server public key", "device public key" */
    size_t offset;        /* in the dump */
    size_t size;          /* bytes of the slot examined */
    kr_slot_state state;
    kr_key *key;          /* owned; set when state is KR_SLOT_KEY */
    char why[512];        /* for ABSENT / BLANK / INVALID: one line naming the slot and the problem */
} kr_flash_slot;

typedef struct kr_server_address {
    kr_slot_state state;  /* ABSENT, BLANK, INVALID (type not 0/1 or bad length: devices fall back to
                             device.spark.io), or KEY meaning "valid record" */
    size_t offset;
    uint8_t type;         /* 0 IPv4, 1 domain name */
    uint8_t len;
    char host[80];        /* dotted IPv4 or the domain name (non-printable bytes as \xNN) */
    uint16_t port;        /* as stored (big-endian at +66) */
    uint16_t port_used;   /* the port a G2 device connects to: 5683 when stored as 0 or 0xFFFF */
    char why[256];
} kr_server_address;

#define KR_FLASH_MAX_FOUND 8

typedef struct kr_flash {
    kr_flash_layout layout;
    char layout_why[160];          /* how the layout was told: "keys begin at the Core's addresses..." */
    size_t dump_len;
    kr_flash_slot device_private;
    kr_flash_slot server_public;
    kr_flash_slot device_public;   /* DCT only; ABSENT for the Core */
    kr_server_address address;
    /* Other keys found elsewhere in the dump (e.g. backups users wrote to free flash): RSA-2048 and
     * RSA-1024 SubjectPublicKeyInfo, RSA-1024 PKCS#1 private keys that parse and whose numbers fit
     * (docs/protocol.md 5.6). state is KR_SLOT_KEY; name says what it is. */
    size_t n_found;
    kr_flash_slot found[KR_FLASH_MAX_FOUND];
} kr_flash;

/* Reads a server address record (docs/protocol.md 5.4) from avail bytes at p (at most 128 are looked at);
 * offset is only reported. state KR_SLOT_KEY means a valid record. */
void kr_server_address_parse(const uint8_t *p, size_t avail, size_t offset, kr_server_address *a);

/* Reads the key slots of a dump. Returns 0 (even when slots are blank or invalid: see each slot's state),
 * or -1 and err when the buffer is not a dump at all (too short to hold any slot). */
int kr_flash_parse(const uint8_t *buf, size_t len, kr_flash_layout layout, kr_flash *out, kr_err *err);
int kr_flash_load_file(const char *path, kr_flash_layout layout, kr_flash *out, kr_err *err);
void kr_flash_clear(kr_flash *f);   /* frees the keys; the struct itself is the caller's */

/* ---- fixes: the commands that read or write a device's keys (key_fix.c) ---------------------------- */

typedef enum kr_area {
    KR_AREA_DEVICE_KEY = 0,   /* the device private key slot */
    KR_AREA_SERVER_KEY = 1,   /* the server public key slot and the address record after it */
    KR_AREA_WHOLE = 2         /* the whole external flash (Core) or DCT (Photon) from address 0 */
} kr_area;

/* The dfu-util command, device in DFU mode, that reads area into file (write false) or writes file to
 * area and resets (write true): Core 1d50:607f alt 1 (external flash), Photon 2b04:d006 alt 1 (DCT).
 * KR_FLASH_AUTO gives both, "Core: ...; Photon: ...". Returns out. */
char *kr_dfu_command(kr_flash_layout l, kr_area a, bool write, const char *file, char *out, size_t cap);
/* "write FILE to the device ...": particle keys load or dfu-util. */
char *kr_fix_write_device_key(kr_flash_layout l, const char *file, char *out, size_t cap);
/* A new device key: particle keys doctor ID, or sparkkeys new + dfu-util + particle keys send. id may be NULL. */
char *kr_fix_new_device_key(const char *id, char *out, size_t cap);
/* The cloud gets pub_pem as device id's public key: particle keys send ID PEM (or a local cloud's folder). */
char *kr_fix_send_public(const char *id, const char *pub_pem, char *out, size_t cap);
/* The device's server key slot gets file (or, file NULL, the Particle cloud key): particle keys server / dfu-util. */
char *kr_fix_server_key(kr_flash_layout l, const char *file, char *out, size_t cap);

/* The server key in a device's flash (device_copy) against the cloud's: cloud (its public half; cloud_path
 * names its file) or, cloud NULL, the published Particle cloud key. True when they are the same key. text
 * gets one line either way with both fingerprints; fix the command when they differ, else "". */
bool kr_fix_server_copy(const kr_key *device_copy, const kr_key *cloud, const char *cloud_path, const char *id,
                        char *text, size_t text_cap, char *fix, size_t fix_cap);
/* The cloud's record of device id's public key against the device's private key (device_path names its
 * file). True when the record is its public half; text and fix as above. */
bool kr_fix_device_record(const kr_key *device_key, const char *device_path, const kr_key *record, const char *id,
                          char *text, size_t text_cap, char *fix, size_t fix_cap);

/* The cloud gets the public half of the device key in device_path: openssl makes ID.pub.pem, then
 * kr_fix_send_public. Returns out. */
char *kr_fix_send_own_public(const kr_key *device_key, const char *device_path, const char *id, char *out,
                             size_t cap);

/* The command that fixes a slot of f that is not a valid key (absent: read more; blank or invalid: write
 * a key), "" for a valid one. id (or NULL) names the device in particle commands. Returns out. */
char *kr_flash_slot_fix(const kr_flash *f, const kr_flash_slot *s, const char *id, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
