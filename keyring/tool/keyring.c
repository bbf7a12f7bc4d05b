/* keyring: look at, compare, import and make the keys of the Spark Core / Particle device-cloud protocol.
 *
 *   keyring show FILE...            what a key file holds and whether a device or the cloud can use it
 *   keyring match KEY1 KEY2         do two keys belong together (same public key)?
 *   keyring check KEYFILE           load a keyfile, check every key and every pair that can be checked
 *   keyring import DUMP --out DIR   keys from a Core flash dump or a Photon DCT dump
 *   keyring new --device ID --out DIR  a new device key pair as the device and the cloud want it
 *
 * Exit status: 0 fine, 1 a problem was found, 2 usage or I/O error.
 */
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "keyring/keyring.h"

#ifndef SPARKWIRE_VERSION
#define SPARKWIRE_VERSION "unknown"
#endif

enum { EXIT_FINE = 0, EXIT_PROBLEM = 1, EXIT_USAGE = 2 };

static const char *prog = "keyring";

/* ---- small helpers ------------------------------------------------------------------------------ */

static bool file_readable(const char *path, kr_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        kr_err_set(err, "%s: %s", path, strerror(errno));
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        kr_err_set(err, "%s: is a folder, not a file", path);
        return false;
    }
    if (access(path, R_OK) != 0) {
        kr_err_set(err, "%s: cannot read: %s", path, strerror(errno));
        return false;
    }
    return true;
}

static const char *level_word(kr_note_level l)
{
    switch (l) {
    case KR_NOTE_PROBLEM: return "problem";
    case KR_NOTE_WARNING: return "warning";
    default: return "note";
    }
}

/* Prints notes with an indent; returns the worst level (-1 when none). */
static int print_notes(const kr_note *notes, int n, const char *indent, bool storage_is_warning)
{
    int worst = -1;
    for (int i = 0; i < n; i++) {
        kr_note_level l = notes[i].level;
        if (storage_is_warning && notes[i].storage && l == KR_NOTE_PROBLEM)
            l = KR_NOTE_WARNING;
        if ((int)l > worst)
            worst = (int)l;
        printf("%s%s: %s%s\n", indent, level_word(l), notes[i].storage && storage_is_warning ?
               "for writing to a device: " : "", notes[i].text);
        if (notes[i].fix[0])
            printf("%s  fix: %s\n", indent, notes[i].fix);
    }
    return worst;
}

static kr_role parse_role(const char *s, bool *ok)
{
    *ok = true;
    if (!s || !strcmp(s, "auto"))
        return KR_ROLE_ANY;
    if (!strcmp(s, "device") || !strcmp(s, "device-private"))
        return KR_ROLE_DEVICE_PRIVATE;
    if (!strcmp(s, "device-public"))
        return KR_ROLE_DEVICE_PUBLIC;
    if (!strcmp(s, "server") || !strcmp(s, "server-private"))
        return KR_ROLE_SERVER_PRIVATE;
    if (!strcmp(s, "server-public"))
        return KR_ROLE_SERVER_PUBLIC;
    *ok = false;
    return KR_ROLE_ANY;
}

static void print_key_facts(const kr_key *k, const char *indent)
{
    char fp[65];
    printf("%stype: RSA-%d %s key, exponent %lu\n", indent, k->bits, k->is_private ? "private" : "public",
           k->exponent);
    printf("%sencoding: %s, %zu bytes%s\n", indent, kr_key_encoding_str(k), k->der_len, k->pem ? " of DER" : "");
    printf("%sfingerprint: %s (SHA-256 of the public key as SubjectPublicKeyInfo DER)\n", indent,
           kr_key_fingerprint(k, fp));
    if (k->trailing_len)
        printf("%strailing: %zu bytes after the key%s%s\n", indent, k->trailing_len,
               k->trailing_all_ff ? ", all 0xFF (erased flash)" :
               k->trailing_address ? ", 0xFF and a server address record: " : ", not erased flash",
               k->trailing_address ? k->trailing_address_text : "");
}

/* ---- show --------------------------------------------------------------------------------------- */

static int cmd_show(int argc, char **argv)
{
    char *role_s = NULL;
    GOptionEntry entries[] = {
        {"role", 'r', 0, G_OPTION_ARG_STRING, &role_s,
         "Check the key for this use: device, device-public, server, server-public (default: guessed from "
         "size and kind)", "ROLE"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionContext *ctx = g_option_context_new("FILE... - what a key file holds and who can use it");
    g_option_context_set_summary(ctx,
        "Shows type, encoding, size, fingerprint and trailing bytes of each key file (DER or PEM, PKCS#1,\n"
        "PKCS#8 or SubjectPublicKeyInfo, any extension) and checks it for the role it plays: a device\n"
        "private key must be RSA-1024 PKCS#1 DER laid out as the device reads it, a server public key\n"
        "the 294-byte SubjectPublicKeyInfo DER.");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *gerr = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &gerr)) {
        fprintf(stderr, "%s show: %s (see `keyring show --help`)\n", prog, gerr->message);
        g_error_free(gerr);
        g_option_context_free(ctx);
        return EXIT_USAGE;
    }
    g_option_context_free(ctx);
    bool ok;
    kr_role forced = parse_role(role_s, &ok);
    if (!ok) {
        fprintf(stderr, "%s show: unknown role \"%s\" (use device, device-public, server or server-public)\n",
                prog, role_s);
        g_free(role_s);
        return EXIT_USAGE;
    }
    g_free(role_s);
    if (argc < 2) {
        fprintf(stderr, "%s show: name a key file (usage: keyring show FILE...)\n", prog);
        return EXIT_USAGE;
    }
    int rc = EXIT_FINE;
    for (int i = 1; i < argc; i++) {
        kr_err err;
        if (!file_readable(argv[i], &err)) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            rc = EXIT_USAGE;
            continue;
        }
        kr_key *k = kr_key_load_file(argv[i], &err);
        if (!k) {
            printf("%s\n  problem: %s\n", argv[i], err.msg);
            if (rc == EXIT_FINE)
                rc = EXIT_PROBLEM;
            continue;
        }
        kr_role role = forced != KR_ROLE_ANY ? forced : kr_key_guess_role(k);
        printf("%s\n", argv[i]);
        print_key_facts(k, "  ");
        printf("  role: %s%s\n", kr_role_str(role), forced != KR_ROLE_ANY ? "" : " (guessed from size and kind)");
        kr_note notes[16];
        int n = kr_key_check(k, role, notes, 16);
        if (forced == KR_ROLE_ANY && role != KR_ROLE_ANY) {
            kr_note more[8];
            int m = kr_key_check(k, KR_ROLE_ANY, more, 8);
            for (int j = 0; j < m && n < 16; j++)
                if (strstr(more[j].text, "neither a device key"))
                    notes[n++] = more[j];
        }
        int worst = print_notes(notes, n, "  ", false);
        printf("  verdict: %s\n", worst == KR_NOTE_PROBLEM ? "PROBLEM (see above)" :
               worst == KR_NOTE_WARNING ? "usable, with warnings" : "fine");
        if (worst == KR_NOTE_PROBLEM && rc == EXIT_FINE)
            rc = EXIT_PROBLEM;
        kr_key_free(k);
    }
    return rc;
}

/* ---- match -------------------------------------------------------------------------------------- */

static int cmd_match(int argc, char **argv)
{
    GOptionContext *ctx = g_option_context_new("PRIVATE PUBLIC - do these two keys belong together?");
    g_option_context_set_summary(ctx,
        "Says whether PUBLIC is the public half of PRIVATE (any two key files may be given: their public\n"
        "halves are compared). Exit status 0 when they match, 1 when they do not.");
    GError *gerr = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &gerr)) {
        fprintf(stderr, "%s match: %s (see `keyring match --help`)\n", prog, gerr->message);
        g_error_free(gerr);
        g_option_context_free(ctx);
        return EXIT_USAGE;
    }
    g_option_context_free(ctx);
    if (argc != 3) {
        fprintf(stderr, "%s match: give two key files (usage: keyring match PRIVATE PUBLIC)\n", prog);
        return EXIT_USAGE;
    }
    kr_key *k[2] = {NULL, NULL};
    kr_err err;
    int rc = EXIT_FINE;
    for (int i = 0; i < 2; i++) {
        if (!file_readable(argv[1 + i], &err)) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            rc = EXIT_USAGE;
            continue;
        }
        k[i] = kr_key_load_file(argv[1 + i], &err);
        if (!k[i]) {
            printf("problem: %s\n", err.msg);
            if (rc == EXIT_FINE)
                rc = EXIT_PROBLEM;
        }
    }
    if (!k[0] || !k[1]) {
        kr_key_free(k[0]);
        kr_key_free(k[1]);
        return rc;
    }
    char fa[65], fb[65];
    kr_key_fingerprint(k[0], fa);
    kr_key_fingerprint(k[1], fb);
    const char *wa = k[0]->is_private ? "private" : "public";
    const char *wb = k[1]->is_private ? "private" : "public";
    if (kr_key_same_public(k[0], k[1])) {
        printf("yes: %s (RSA-%d %s) and %s (RSA-%d %s) belong together\n", argv[1], k[0]->bits, wa, argv[2],
               k[1]->bits, wb);
        printf("  public key fingerprint: %s\n", fa);
        if (!k[0]->is_private && !k[1]->is_private)
            printf("  note: both are public keys: they are the same key\n");
        rc = EXIT_FINE;
    } else {
        printf("no: %s (RSA-%d %s) and %s (RSA-%d %s) do NOT belong together\n", argv[1], k[0]->bits, wa,
               argv[2], k[1]->bits, wb);
        printf("  %s: public key fingerprint %s\n", argv[1], fa);
        printf("  %s: public key fingerprint %s\n", argv[2], fb);
        if (k[0]->bits != k[1]->bits)
            printf("  note: the sizes differ: one looks like a device key (1024) and the other like a server "
                   "key (2048)\n");
        else if (k[0]->bits == 1024)
            printf("  note: a device whose flash holds one and whose cloud record holds the other fails every "
                   "handshake with a decryption error (one orange blink): write the private key's public half "
                   "to the cloud, or the matching private key to the device\n");
        else if (k[0]->bits == 2048)
            printf("  note: a device holding the other server key encrypts its id block to a key this cloud "
                   "cannot open (server-key-mismatch)\n");
        rc = EXIT_PROBLEM;
    }
    kr_key_free(k[0]);
    kr_key_free(k[1]);
    return rc;
}

/* ---- check -------------------------------------------------------------------------------------- */

/* A cloud-side copy of a device's public key next to its private key: <dir>/<id>.pub.pem or
 * <key file without extension>.pub.pem. */
static char *find_public_beside(const kr_entry *e)
{
    char *dir = g_path_get_dirname(e->path);
    char *cand[2] = {NULL, NULL};
    if (e->has_id) {
        char *name = g_strdup_printf("%s.pub.pem", e->device_id_hex);
        cand[0] = g_build_filename(dir, name, NULL);
        g_free(name);
    }
    char *base = g_strdup(e->path);
    char *dot = strrchr(base, '.');
    char *slash = strrchr(base, '/');
    if (dot && (!slash || dot > slash))
        *dot = '\0';
    cand[1] = g_strdup_printf("%s.pub.pem", base);
    g_free(base);
    g_free(dir);
    char *found = NULL;
    for (int i = 0; i < 2; i++) {
        if (!found && cand[i] && strcmp(cand[i], e->path) != 0 && g_file_test(cand[i], G_FILE_TEST_IS_REGULAR))
            found = cand[i];
        else
            g_free(cand[i]);
    }
    return found;
}

static int cmd_check(int argc, char **argv)
{
    GOptionContext *ctx = g_option_context_new("KEYFILE - load a keyfile and check every key and pair");
    g_option_context_set_summary(ctx,
        "Loads the keyfile (the one format sparkwire's plugin, cloudmon and keyring read), prints one line\n"
        "per entry with what was found, checks each key for its role, and checks the pairs that can be\n"
        "checked: server-private against server-public, and each device key against a public copy\n"
        "beside it (<id>.pub.pem, as the cloud stores it). Exit status 1 when a problem was found.");
    GError *gerr = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &gerr)) {
        fprintf(stderr, "%s check: %s (see `keyring check --help`)\n", prog, gerr->message);
        g_error_free(gerr);
        g_option_context_free(ctx);
        return EXIT_USAGE;
    }
    g_option_context_free(ctx);
    if (argc != 2) {
        fprintf(stderr, "%s check: give one keyfile (usage: keyring check KEYFILE)\n", prog);
        return EXIT_USAGE;
    }
    kr_err err;
    if (!file_readable(argv[1], &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return EXIT_USAGE;
    }
    kr_keyfile *kf = kr_keyfile_load(argv[1], &err);
    if (!kf) {
        printf("problem: %s\n", err.msg);
        return EXIT_PROBLEM;
    }
    int worst = -1;
    size_t n = kr_keyfile_count(kf);
    const kr_entry *sp = NULL, *spub = NULL;
    for (size_t i = 0; i < n; i++) {
        const kr_entry *e = kr_keyfile_entry(kf, i);
        char fp[65];
        kr_role role = KR_ROLE_ANY;
        switch (e->kind) {
        case KR_ENTRY_SERVER_PRIVATE:
            role = KR_ROLE_SERVER_PRIVATE;
            sp = e;
            printf("line %d: server-private %s: RSA-%d private, %s, fingerprint %s\n", e->line, e->path,
                   e->key->bits, kr_key_encoding_str(e->key), kr_key_fingerprint(e->key, fp));
            break;
        case KR_ENTRY_SERVER_PUBLIC:
            role = KR_ROLE_SERVER_PUBLIC;
            spub = e;
            printf("line %d: server-public %s: RSA-%d %s, %s, fingerprint %s\n", e->line, e->path,
                   e->key->bits, e->key->is_private ? "private (its public half is used)" : "public",
                   kr_key_encoding_str(e->key), kr_key_fingerprint(e->key, fp));
            break;
        case KR_ENTRY_DEVICE:
            role = KR_ROLE_DEVICE_PRIVATE;
            printf("line %d: device %s %s: RSA-%d private, %s, fingerprint %s\n", e->line,
                   e->wildcard ? "*" : e->device_id_hex, e->path, e->key->bits, kr_key_encoding_str(e->key),
                   kr_key_fingerprint(e->key, fp));
            break;
        case KR_ENTRY_DEVICE_SERVER_KEY:
        case KR_ENTRY_DEVICE_PUBLIC:
            role = e->kind == KR_ENTRY_DEVICE_PUBLIC ? KR_ROLE_DEVICE_PUBLIC : KR_ROLE_SERVER_PUBLIC;
            printf("line %d: %s %s %s: RSA-%d, fingerprint %s\n", e->line,
                   e->kind == KR_ENTRY_DEVICE_PUBLIC ? "device-public" : "device-server-key", e->device_id_hex,
                   e->path, e->key->bits, kr_key_fingerprint(e->key, fp));
            break;
        case KR_ENTRY_SESSION: {
            char k[33], iv[33];
            printf("line %d: session %s: key %s, IV %s\n", e->line, e->device_id_hex, kr_hex(e->session, 16, k),
                   kr_hex(e->session + 16, 16, iv));
            continue;
        }
        }
        kr_note notes[16];
        int nn = kr_key_check(e->key, role, notes, 16);
        int w = print_notes(notes, nn, "  ", true);
        if (w > worst)
            worst = w;
        if (e->kind == KR_ENTRY_DEVICE) {
            char *pub = find_public_beside(e);
            if (pub) {
                kr_err perr;
                kr_key *pk = kr_key_load_file(pub, &perr);
                if (!pk) {
                    printf("  problem: the cloud's copy %s does not load: %s\n", pub, perr.msg);
                    worst = KR_NOTE_PROBLEM;
                } else if (kr_key_same_public(pk, e->key)) {
                    printf("  pair: %s is its public half: match\n", pub);
                } else {
                    printf("  problem: %s (fingerprint %s) is NOT this key's public half: a cloud holding it "
                           "fails this device's handshakes (device-key-mismatch)\n", pub,
                           kr_key_fingerprint(pk, fp));
                    printf("    fix: openssl rsa -in %s -pubout -out %s\n", e->path, pub);
                    worst = KR_NOTE_PROBLEM;
                }
                kr_key_free(pk);
                g_free(pub);
            }
            for (size_t j = 0; j < i; j++) {
                const kr_entry *o = kr_keyfile_entry(kf, j);
                if (o->kind == KR_ENTRY_DEVICE && kr_key_same_public(o->key, e->key)) {
                    printf("  note: the same key as line %d\n", o->line);
                    break;
                }
            }
        }
    }
    if (sp && spub) {
        char a[65], b[65];
        if (kr_key_same_public(sp->key, spub->key)) {
            printf("pair: server-private (line %d) and server-public (line %d) belong together (%s)\n", sp->line,
                   spub->line, kr_key_fingerprint(sp->key, a));
        } else {
            printf("problem: server-private (line %d, %s) and server-public (line %d, %s) do NOT belong together: "
                   "devices holding that public key send id blocks this private key cannot open "
                   "(server-key-mismatch)\n", sp->line, kr_key_fingerprint(sp->key, a), spub->line,
                   kr_key_fingerprint(spub->key, b));
            worst = KR_NOTE_PROBLEM;
        }
    }
    if (n == 0)
        printf("the keyfile has no entries: the tools will run without keys\n");
    printf("%s: %zu entr%s, %s\n", argv[1], n, n == 1 ? "y" : "ies",
           worst == KR_NOTE_PROBLEM ? "PROBLEMS found (see above)" :
           worst == KR_NOTE_WARNING ? "usable, with warnings" : "fine");
    kr_keyfile_free(kf);
    return worst == KR_NOTE_PROBLEM ? EXIT_PROBLEM : EXIT_FINE;
}

/* ---- writing files ------------------------------------------------------------------------------ */

static bool write_file(const char *path, const void *data, size_t len, bool secret, kr_err *err)
{
    GError *gerr = NULL;
    if (!g_file_set_contents_full(path, data, (gssize)len, G_FILE_SET_CONTENTS_CONSISTENT,
                                  secret ? 0600 : 0644, &gerr)) {
        kr_err_set(err, "%s", gerr->message);
        g_error_free(gerr);
        return false;
    }
    return true;
}

static bool write_public_pem(const kr_key *k, const char *path, kr_err *err)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || !PEM_write_bio_PUBKEY(bio, k->pkey)) {
        BIO_free(bio);
        kr_err_set(err, "%s: cannot encode the public key", path);
        return false;
    }
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    bool ok = write_file(path, data, (size_t)len, false, err);
    BIO_free(bio);
    return ok;
}

static bool make_dir(const char *dir, kr_err *err)
{
    if (g_mkdir_with_parents(dir, 0755) != 0) {
        kr_err_set(err, "%s: cannot create the folder: %s", dir, strerror(errno));
        return false;
    }
    return true;
}

static bool valid_id(const char *id)
{
    uint8_t raw[KR_DEVICE_ID_LEN];
    return id && strlen(id) == KR_DEVICE_ID_HEX_LEN && kr_unhex(id, raw, KR_DEVICE_ID_LEN) == 0;
}

/* ---- import ------------------------------------------------------------------------------------- */

static void print_slot(const kr_flash_slot *s)
{
    if (s->state == KR_SLOT_KEY) {
        char fp[65];
        printf("%s at 0x%zx: RSA-%d %s key, %s, %zu bytes, fingerprint %s\n", s->name, s->offset, s->key->bits,
               s->key->is_private ? "private" : "public", kr_key_encoding_str(s->key), s->key->der_len,
               kr_key_fingerprint(s->key, fp));
    } else {
        printf("problem: %s\n", s->why);
    }
}

static int cmd_import(int argc, char **argv)
{
    char *out = NULL, *layout_s = NULL, *id = NULL;
    GOptionEntry entries[] = {
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "Folder for the key files and the keyfile (required)", "DIR"},
        {"device", 'd', 0, G_OPTION_ARG_STRING, &id,
         "The device id (24 hex digits): names the files and the keyfile line (default: device *)", "ID"},
        {"layout", 'l', 0, G_OPTION_ARG_STRING, &layout_s,
         "core (Spark Core external flash), dct (Photon/P1 DCT) or auto (default)", "LAYOUT"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionContext *ctx = g_option_context_new("DUMP --out DIR - keys from a flash dump");
    g_option_context_set_summary(ctx,
        "Reads the key slots of a Spark Core external flash dump (server public key at 0x1000, server\n"
        "address at 0x1180, device private key at 0x2000; a whole 2 MB dump or a shorter read from\n"
        "address 0) or of a Photon/P1 DCT dump (16 KB), checks them, and writes to DIR: the device\n"
        "private key (DER), its public half as PEM (what the cloud stores), the server public key (DER)\n"
        "and a keyfile naming them. Make a Core dump with\n"
        "  dfu-util -d 1d50:607f -a 1 -s 0x00000000:2097152 -U core-flash.bin");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *gerr = NULL;
    int rc = EXIT_FINE;
    if (!g_option_context_parse(ctx, &argc, &argv, &gerr)) {
        fprintf(stderr, "%s import: %s (see `keyring import --help`)\n", prog, gerr->message);
        g_error_free(gerr);
        g_option_context_free(ctx);
        rc = EXIT_USAGE;
        goto done;
    }
    g_option_context_free(ctx);
    kr_flash_layout layout = KR_FLASH_AUTO;
    if (layout_s && !strcmp(layout_s, "core"))
        layout = KR_FLASH_CORE;
    else if (layout_s && !strcmp(layout_s, "dct"))
        layout = KR_FLASH_DCT;
    else if (layout_s && strcmp(layout_s, "auto")) {
        fprintf(stderr, "%s import: unknown layout \"%s\" (use core, dct or auto)\n", prog, layout_s);
        rc = EXIT_USAGE;
        goto done;
    }
    if (argc != 2 || !out) {
        fprintf(stderr, "%s import: give a dump and --out DIR (usage: keyring import DUMP --out DIR)\n", prog);
        rc = EXIT_USAGE;
        goto done;
    }
    if (id && !valid_id(id)) {
        fprintf(stderr, "%s import: bad device id \"%s\": give the 24 hex digits\n", prog, id);
        rc = EXIT_USAGE;
        goto done;
    }
    if (id)
        for (char *p = id; *p; p++)
            *p = g_ascii_tolower(*p);
    kr_err err;
    if (!file_readable(argv[1], &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        rc = EXIT_USAGE;
        goto done;
    }
    kr_flash fl;
    if (kr_flash_load_file(argv[1], layout, &fl, &err) != 0) {
        printf("problem: %s\n", err.msg);
        rc = EXIT_PROBLEM;
        goto done;
    }
    printf("%s: %s dump, %zu bytes\n", argv[1], kr_flash_layout_str(fl.layout), fl.dump_len);
    int worst = -1;
    const char *base = id ? id : "device";
    char *dev_name = g_strdup_printf("%s.der", base);
    char *dev_path = g_build_filename(out, dev_name, NULL);
    char *srv_path = g_build_filename(out, "server-public.der", NULL);
    /* Name the keys after the files they are written to, so that every fix names a real file. */
    if (fl.device_private.key)
        g_strlcpy(fl.device_private.key->source, dev_path, sizeof fl.device_private.key->source);
    if (fl.server_public.key)
        g_strlcpy(fl.server_public.key->source, srv_path, sizeof fl.server_public.key->source);
    if (fl.device_private.state == KR_SLOT_ABSENT || fl.server_public.state == KR_SLOT_ABSENT)
        worst = KR_NOTE_PROBLEM;   /* a slot the dump does not reach was not imported */
    print_slot(&fl.device_private);
    if (fl.device_private.state == KR_SLOT_KEY) {
        kr_note notes[16];
        int n = kr_key_check(fl.device_private.key, KR_ROLE_DEVICE_PRIVATE, notes, 16);
        int w = print_notes(notes, n, "  ", false);
        if (w > worst)
            worst = w;
    } else if (fl.device_private.state != KR_SLOT_ABSENT) {
        worst = KR_NOTE_PROBLEM;
    }
    if (fl.layout == KR_FLASH_DCT) {
        print_slot(&fl.device_public);
        if (fl.device_public.state == KR_SLOT_KEY && fl.device_private.state == KR_SLOT_KEY) {
            if (kr_key_same_public(fl.device_public.key, fl.device_private.key))
                printf("  pair: the stored public key is the private key's public half\n");
            else {
                printf("  problem: the stored device public key is NOT the private key's public half\n");
                worst = KR_NOTE_PROBLEM;
            }
        }
    }
    print_slot(&fl.server_public);
    if (fl.server_public.state == KR_SLOT_KEY) {
        kr_note notes[16];
        int n = kr_key_check(fl.server_public.key, KR_ROLE_SERVER_PUBLIC, notes, 16);
        int w = print_notes(notes, n, "  ", false);
        if (w > worst)
            worst = w;
    } else if (fl.server_public.state != KR_SLOT_ABSENT) {
        worst = KR_NOTE_PROBLEM;
    }
    if (fl.address.state == KR_SLOT_KEY)
        printf("server address at 0x%zx: %s %s, port %u%s\n", fl.address.offset,
               fl.address.type == 0 ? "IPv4" : "domain", fl.address.host, fl.address.port_used,
               fl.address.port_used != fl.address.port ? " (stored 0 or 0xFFFF: default)" : "");
    else
        printf("%s\n", fl.address.why);

    for (size_t i = 0; i < fl.n_found; i++) {
        const kr_flash_slot *x = &fl.found[i];
        char fp[65];
        const char *same = "";
        if (fl.device_private.key && kr_key_same_public(x->key, fl.device_private.key))
            same = ": the same key as the device key slot";
        else if (fl.server_public.key && kr_key_same_public(x->key, fl.server_public.key))
            same = ": the same key as the server key slot";
        else if (x->key->bits == 1024)
            same = ": not the key in the device key slot";
        else if (x->key->bits == 2048)
            same = ": not the key in the server key slot";
        printf("also found at 0x%zx: %s, fingerprint %s%s\n", x->offset, x->name, kr_key_fingerprint(x->key, fp),
               same);
    }
    if (!make_dir(out, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        kr_flash_clear(&fl);
        g_free(dev_name);
        g_free(dev_path);
        g_free(srv_path);
        rc = EXIT_USAGE;
        goto done;
    }
    GString *kfile = g_string_new("# keys imported by keyring from ");
    g_string_append_printf(kfile, "%s\n", argv[1]);
    bool io_ok = true;
    if (fl.server_public.state == KR_SLOT_KEY) {
        io_ok = io_ok && write_file(srv_path, fl.server_public.key->der, fl.server_public.key->der_len, false,
                                    &err);
        printf("wrote %s\n", srv_path);
        g_string_append(kfile, "server-public  server-public.der\n");
    }
    if (fl.device_private.state == KR_SLOT_KEY) {
        io_ok = io_ok && write_file(dev_path, fl.device_private.key->der, fl.device_private.key->der_len, true,
                                    &err);
        printf("wrote %s\n", dev_path);
        char *pubname = g_strdup_printf("%s.pub.pem", base);
        char *p = g_build_filename(out, pubname, NULL);
        io_ok = io_ok && write_public_pem(fl.device_private.key, p, &err);
        printf("wrote %s (the public half, as the cloud stores it)\n", p);
        g_free(p);
        g_free(pubname);
        g_string_append_printf(kfile, "device  %s  %s\n", id ? id : "*", dev_name);
    }
    g_free(dev_name);
    g_free(dev_path);
    g_free(srv_path);
    char *kp = g_build_filename(out, "keyfile", NULL);
    io_ok = io_ok && write_file(kp, kfile->str, kfile->len, false, &err);
    if (!io_ok) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        rc = EXIT_USAGE;
    } else {
        printf("wrote %s:\n%s", kp, kfile->str);
        rc = worst == KR_NOTE_PROBLEM ? EXIT_PROBLEM : EXIT_FINE;
    }
    g_free(kp);
    g_string_free(kfile, TRUE);
    kr_flash_clear(&fl);
done:
    g_free(out);
    g_free(layout_s);
    g_free(id);
    return rc;
}

/* ---- new ---------------------------------------------------------------------------------------- */

static EVP_PKEY *generate_device_key(kr_err *err)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
        EVP_PKEY *pkey = NULL;
        BIGNUM *e = BN_new();
        int ok = ctx && e && BN_set_word(e, 65537) && EVP_PKEY_keygen_init(ctx) > 0 &&
                 EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 1024) > 0 &&
                 EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, e) > 0 && EVP_PKEY_keygen(ctx, &pkey) > 0;
        BN_free(e);
        EVP_PKEY_CTX_free(ctx);
        if (!ok) {
            EVP_PKEY_free(pkey);
            kr_err_set(err, "RSA key generation failed");
            kr_err_openssl(err);
            return NULL;
        }
        unsigned char *der = NULL;
        int n = i2d_PrivateKey(pkey, &der);
        bool good = n > 0 && kr_key_device_layout_ok(der, (size_t)n, NULL, 0);
        OPENSSL_free(der);
        if (good)
            return pkey;
        EVP_PKEY_free(pkey);   /* a number came out short: devices would misread it; draw again */
    }
    kr_err_set(err, "no key with the device layout after 200 tries");
    return NULL;
}

static int cmd_new(int argc, char **argv)
{
    char *out = NULL, *id = NULL;
    gboolean force = FALSE;
    GOptionEntry entries[] = {
        {"device", 'd', 0, G_OPTION_ARG_STRING, &id, "The device id, 24 hex digits (required)", "ID"},
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "Folder for the key files (required; created)", "DIR"},
        {"force", 'f', 0, G_OPTION_ARG_NONE, &force, "Replace key files of this id that exist", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionContext *ctx = g_option_context_new("--device ID --out DIR - a new device key pair");
    g_option_context_set_summary(ctx,
        "Makes a new RSA-1024 device key (e = 65537, PKCS#1 DER laid out as the device reads it:\n"
        "drawn again until no number is shorter than nominal) and writes DIR/ID.der for the device\n"
        "and DIR/ID.pub.pem (SubjectPublicKeyInfo PEM) for the cloud, and adds a line to DIR/keyfile.\n"
        "Then: dfu-util -d 1d50:607f -a 1 -i 0 -s 0x00002000:leave -D DIR/ID.der (Core) and give\n"
        "DIR/ID.pub.pem to the cloud.");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *gerr = NULL;
    int rc = EXIT_FINE;
    char *der_path = NULL, *pub_path = NULL, *kf_path = NULL;
    EVP_PKEY *pkey = NULL;
    kr_key *k = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &gerr)) {
        fprintf(stderr, "%s new: %s (see `keyring new --help`)\n", prog, gerr->message);
        g_error_free(gerr);
        g_option_context_free(ctx);
        rc = EXIT_USAGE;
        goto done;
    }
    g_option_context_free(ctx);
    if (argc != 1 || !id || !out) {
        fprintf(stderr, "%s new: give --device ID and --out DIR (usage: keyring new --device ID --out DIR)\n",
                prog);
        rc = EXIT_USAGE;
        goto done;
    }
    if (!valid_id(id)) {
        fprintf(stderr, "%s new: bad device id \"%s\": give the 24 hex digits of the device id\n", prog, id);
        rc = EXIT_USAGE;
        goto done;
    }
    for (char *p = id; *p; p++)
        *p = g_ascii_tolower(*p);
    kr_err err;
    if (!make_dir(out, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        rc = EXIT_USAGE;
        goto done;
    }
    char *name = g_strdup_printf("%s.der", id);
    der_path = g_build_filename(out, name, NULL);
    g_free(name);
    name = g_strdup_printf("%s.pub.pem", id);
    pub_path = g_build_filename(out, name, NULL);
    g_free(name);
    kf_path = g_build_filename(out, "keyfile", NULL);
    if (!force && (g_file_test(der_path, G_FILE_TEST_EXISTS) || g_file_test(pub_path, G_FILE_TEST_EXISTS))) {
        fprintf(stderr, "%s new: %s already exists: not replacing a key (move it away or give --force)\n", prog,
                g_file_test(der_path, G_FILE_TEST_EXISTS) ? der_path : pub_path);
        rc = EXIT_USAGE;
        goto done;
    }
    pkey = generate_device_key(&err);
    if (!pkey) {
        fprintf(stderr, "%s new: %s\n", prog, err.msg);
        rc = EXIT_USAGE;
        goto done;
    }
    k = kr_key_from_pkey(pkey, der_path, &err);
    pkey = NULL;
    if (!k) {
        fprintf(stderr, "%s new: %s\n", prog, err.msg);
        rc = EXIT_USAGE;
        goto done;
    }
    if (!write_file(der_path, k->der, k->der_len, true, &err) || !write_public_pem(k, pub_path, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        rc = EXIT_USAGE;
        goto done;
    }
    /* Add the line to DIR/keyfile unless it names this id already. */
    char *old = NULL;
    gsize oldlen = 0;
    GString *kf = g_string_new(NULL);
    if (g_file_get_contents(kf_path, &old, &oldlen, NULL)) {
        g_string_append_len(kf, old, (gssize)oldlen);
        if (oldlen && old[oldlen - 1] != '\n')
            g_string_append_c(kf, '\n');
    } else {
        g_string_append(kf, "# sparkwire keyfile\n");
    }
    char *line = g_strdup_printf("device  %s  %s.der\n", id, id);
    char *pattern = g_strdup_printf("device  %s ", id);
    bool have = old && strstr(old, pattern);
    if (!have)
        g_string_append(kf, line);
    bool ok = have || write_file(kf_path, kf->str, kf->len, false, &err);
    g_free(old);
    g_string_free(kf, TRUE);
    g_free(pattern);
    char fp[65];
    printf("wrote %s (device private key: RSA-1024, e=65537, PKCS#1 DER, %zu bytes)\n", der_path, k->der_len);
    printf("wrote %s (public key for the cloud, fingerprint %s)\n", pub_path, kr_key_fingerprint(k, fp));
    printf("keyfile line: %s", line);
    if (!ok) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        rc = EXIT_USAGE;
    } else if (!have) {
        printf("added to %s\n", kf_path);
    }
    printf("to install: dfu-util -d 1d50:607f -a 1 -i 0 -s 0x00002000:leave -D %s (Core), and give %s to "
           "the cloud for device %s\n", der_path, pub_path, id);
    g_free(line);
done:
    EVP_PKEY_free(pkey);
    kr_key_free(k);
    g_free(der_path);
    g_free(pub_path);
    g_free(kf_path);
    g_free(out);
    g_free(id);
    return rc;
}

/* ---- main --------------------------------------------------------------------------------------- */

static void print_usage(FILE *f)
{
    fprintf(f,
        "Usage:\n"
        "  keyring show [--role ROLE] FILE...      what a key file holds and who can use it\n"
        "  keyring match PRIVATE PUBLIC            do these two keys belong together?\n"
        "  keyring check KEYFILE                   load a keyfile, check every key and pair\n"
        "  keyring import DUMP --out DIR [--device ID] [--layout core|dct]\n"
        "                                          keys from a Core flash or Photon DCT dump\n"
        "  keyring new --device ID --out DIR       a new device key pair (device DER + cloud PEM)\n"
        "  keyring COMMAND --help                  options of a command\n"
        "  keyring --version\n"
        "\n"
        "Keys of the Spark Core / Particle device-cloud protocol: RSA-1024 device keys, RSA-2048 server\n"
        "keys, in DER or PEM, PKCS#1, PKCS#8 or SubjectPublicKeyInfo, whatever the file extension.\n"
        "Exit status: 0 fine, 1 a problem was found, 2 usage or I/O error.\n");
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        print_usage(stdout);
        return EXIT_FINE;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("keyring (sparkwire) %s, %s\n", SPARKWIRE_VERSION, OpenSSL_version(OPENSSL_VERSION));
        return EXIT_FINE;
    }
    int sub_argc = argc - 1;
    char **sub_argv = argv + 1;
    char *pname = g_strdup_printf("keyring %s", cmd);
    g_set_prgname(pname);
    g_free(pname);
    if (!strcmp(cmd, "show"))
        return cmd_show(sub_argc, sub_argv);
    if (!strcmp(cmd, "match"))
        return cmd_match(sub_argc, sub_argv);
    if (!strcmp(cmd, "check"))
        return cmd_check(sub_argc, sub_argv);
    if (!strcmp(cmd, "import"))
        return cmd_import(sub_argc, sub_argv);
    if (!strcmp(cmd, "new"))
        return cmd_new(sub_argc, sub_argv);
    fprintf(stderr, "%s: unknown command \"%s\" (use show, match, check, import or new; see `keyring --help`)\n",
            prog, cmd);
    return EXIT_USAGE;
}
