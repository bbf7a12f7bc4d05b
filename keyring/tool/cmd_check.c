/* sparkkeys check: load a keyfile, check every key for its role and every pair that can be checked. */
#include <string.h>

#include "tool.h"

/* What check found so far. */
typedef struct check_state {
    const kr_keyfile *kf;
    const kr_entry *server_private, *server_public;
    int worst;
} check_state;

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

/* The device key against the cloud's copy of its public half, when one is beside it. */
static void check_device_pair(const kr_entry *e, check_state *st)
{
    char *pub = find_public_beside(e);
    if (!pub) {
        printf("  note: no copy of the cloud's record for this device (%s.pub.pem beside the key): whether the "
               "cloud holds this key's public half is not checked here\n", e->has_id ? e->device_id_hex : "ID");
        return;
    }
    kr_err perr;
    char fp[65], send[800];
    kr_key *pk = kr_key_load_file(pub, &perr);
    if (!pk) {
        printf("  problem: the cloud's copy %s does not load: %s\n", pub, perr.msg);
        worsen(&st->worst, KR_NOTE_PROBLEM);
    } else if (kr_key_same_public(pk, e->key)) {
        printf("  pair: %s is its public half: match\n", pub);
    } else {
        printf("  problem: %s (fingerprint %s) is NOT this key's public half: a cloud holding it "
               "fails this device's handshakes (device-key-mismatch)\n", pub, kr_key_fingerprint(pk, fp));
        printf("    fix: openssl rsa -in %s%s -pubout -out %s, then %s\n", e->path, e->key->pem ? "" : " -inform DER",
               pub, kr_fix_send_public(e->has_id ? e->device_id_hex : NULL, pub, send, sizeof send));
        worsen(&st->worst, KR_NOTE_PROBLEM);
    }
    kr_key_free(pk);
    g_free(pub);
}

/* Prints the entry's line; returns the role its key is checked for (KR_ROLE_ANY: nothing to check). */
static kr_role print_entry(const kr_entry *e, check_state *st)
{
    char fp[65], k[33], iv[33];
    switch (e->kind) {
    case KR_ENTRY_SERVER_PRIVATE:
        st->server_private = e;
        printf("line %d: server-private %s%s%s: RSA-%d private, %s, fingerprint %s\n", e->line, e->path,
               e->bound ? " cloud=" : "", e->bound ? e->cloud : "", e->key->bits, kr_key_encoding_str(e->key),
               kr_key_fingerprint(e->key, fp));
        return KR_ROLE_SERVER_PRIVATE;
    case KR_ENTRY_SERVER_PUBLIC:
        st->server_public = e;
        printf("line %d: server-public %s%s%s: RSA-%d %s, %s, fingerprint %s\n", e->line, e->path,
               e->bound ? " cloud=" : "", e->bound ? e->cloud : "", e->key->bits,
               e->key->is_private ? "private (its public half is used)" : "public",
               kr_key_encoding_str(e->key), kr_key_fingerprint(e->key, fp));
        return KR_ROLE_SERVER_PUBLIC;
    case KR_ENTRY_DEVICE:
        printf("line %d: device %s %s: RSA-%d private, %s, fingerprint %s\n", e->line,
               e->wildcard ? "*" : e->device_id_hex, e->path, e->key->bits, kr_key_encoding_str(e->key),
               kr_key_fingerprint(e->key, fp));
        return KR_ROLE_DEVICE_PRIVATE;
    case KR_ENTRY_SESSION:
        printf("line %d: session %s: key %s, IV %s\n", e->line, e->device_id_hex, kr_hex(e->session, 16, k),
               kr_hex(e->session + 16, 16, iv));
        return KR_ROLE_ANY;
    case KR_ENTRY_DEVICE_SERVER_KEY:
        printf("line %d: device-server-key %s %s: RSA-%d public, %s, fingerprint %s (the server key in the "
               "device's flash)\n", e->line, e->device_id_hex, e->path, e->key->bits, kr_key_encoding_str(e->key),
               kr_key_fingerprint(e->key, fp));
        return KR_ROLE_SERVER_PUBLIC;
    case KR_ENTRY_DEVICE_PUBLIC:
        printf("line %d: device-public %s %s: RSA-%d public, %s, fingerprint %s (the cloud's record of the "
               "device's key)\n", e->line, e->device_id_hex, e->path, e->key->bits, kr_key_encoding_str(e->key),
               kr_key_fingerprint(e->key, fp));
        return KR_ROLE_DEVICE_PUBLIC;
    }
    return KR_ROLE_ANY;
}

static void check_entry(size_t i, check_state *st)
{
    const kr_entry *e = kr_keyfile_entry(st->kf, i);
    kr_role role = print_entry(e, st);
    if (role == KR_ROLE_ANY)
        return;
    kr_note notes[16];
    int nn = kr_key_check_for(e->key, role, KR_FLASH_AUTO, e->has_id ? e->device_id_hex : NULL, notes, 16);
    worsen(&st->worst, print_notes(notes, nn, "  ", true));
    if (e->kind != KR_ENTRY_DEVICE)
        return;
    check_device_pair(e, st);
    for (size_t j = 0; j < i; j++) {
        const kr_entry *o = kr_keyfile_entry(st->kf, j);
        if (o->kind == KR_ENTRY_DEVICE && kr_key_same_public(o->key, e->key)) {
            printf("  note: the same key as line %d\n", o->line);
            break;
        }
    }
}

static const kr_entry *device_entry(const kr_keyfile *kf, const uint8_t id[KR_DEVICE_ID_LEN])
{
    for (size_t i = 0; i < kr_keyfile_count(kf); i++) {
        const kr_entry *e = kr_keyfile_entry(kf, i);
        if (e->kind == KR_ENTRY_DEVICE && e->has_id && memcmp(e->device_id, id, KR_DEVICE_ID_LEN) == 0)
            return e;
    }
    return NULL;
}

/* The cloud's key a device-server-key line is compared with, as the tracker does: the server-public line
 * (else the public half of server-private); NULL: the published Particle cloud key. */
static const kr_entry *cloud_key_entry(const kr_keyfile *kf)
{
    const kr_entry *e = kr_keyfile_server_entry(kf, KR_ENTRY_SERVER_PUBLIC, 0, NULL, 0);
    for (size_t i = 0; !e && i < kr_keyfile_count(kf); i++) {
        const kr_entry *x = kr_keyfile_entry(kf, i);
        if (x->kind == KR_ENTRY_SERVER_PUBLIC)
            e = x;
    }
    return e ? e : kr_keyfile_server_entry(kf, KR_ENTRY_SERVER_PRIVATE, 0, NULL, 0);
}

/* device-server-key lines (the server key in that device's flash) against the cloud's key, and
 * device-public lines (the cloud's record of a device's key) against the device's own key. */
static void check_device_copies(check_state *st)
{
    char text[KR_NOTE_TEXT_LEN], buf[KR_NOTE_FIX_LEN];
    const kr_entry *cloud = cloud_key_entry(st->kf);
    for (size_t i = 0; i < kr_keyfile_count(st->kf); i++) {
        const kr_entry *e = kr_keyfile_entry(st->kf, i);
        char *fix = NULL;
        bool same = true;
        if (e->kind == KR_ENTRY_DEVICE_SERVER_KEY) {
            same = kr_contradiction_server_copy(e, cloud, text, sizeof text, buf, sizeof buf);
            fix = same ? NULL : g_strdup(buf);
        } else if (e->kind == KR_ENTRY_DEVICE_PUBLIC) {
            const kr_entry *d = device_entry(st->kf, e->device_id);
            if (!d) {
                printf("note (line %d): no device line for %s: its key is not compared with the cloud's "
                       "record\n", e->line, e->device_id_hex);
                continue;
            }
            same = kr_fix_device_record(d->key, d->path, e->key, e->device_id_hex, text, sizeof text, buf,
                                        sizeof buf);
            fix = same ? NULL : g_strdup(buf);
        } else {
            continue;
        }
        printf("%s (line %d): %s\n", same ? "pair" : "problem", e->line, text);
        if (!same) {
            printf("  fix: %s\n", fix);
            worsen(&st->worst, KR_NOTE_PROBLEM);
        }
        g_free(fix);
    }
}

static void check_server_pair(check_state *st)
{
    const kr_entry *sp = st->server_private, *spub = st->server_public;
    if (!sp || !spub)
        return;
    char a[65], b[65], fix[KR_NOTE_FIX_LEN];
    if (kr_key_same_public(sp->key, spub->key)) {
        printf("pair: server-private (line %d) and server-public (line %d) belong together (%s)\n", sp->line,
               spub->line, kr_key_fingerprint(sp->key, a));
        return;
    }
    printf("problem: server-private (line %d, %s) and server-public (line %d, %s) do NOT belong together: "
           "devices holding that public key send id blocks this private key cannot open "
           "(server-key-mismatch)\n", sp->line, kr_key_fingerprint(sp->key, a), spub->line,
           kr_key_fingerprint(spub->key, b));
    printf("  fix: if server-private is the cloud's key, give the keyfile and the devices its public half: "
           "openssl rsa -in %s -pubout -outform DER -out %s, then %s\n", sp->path, spub->path,
           kr_fix_server_key(KR_FLASH_AUTO, spub->path, fix, sizeof fix));
    worsen(&st->worst, KR_NOTE_PROBLEM);
}

int cmd_check(int argc, char **argv)
{
    static const tool_command cmd = {
        "check", "KEYFILE [CAPTURE] - check every key and pair, or the keys a capture contradicts",
        "Loads the keyfile (the one format sparkwire's plugin, cloudmon and sparkkeys read), prints one\n"
        "line per entry with what was found, checks each key for its role (saying for every server\n"
        "public key whether it is the published Particle cloud key), and checks the pairs that can be\n"
        "checked: server-private against server-public, each device key against a public copy\n"
        "beside it (<id>.pub.pem, as the cloud stores it) and against its device-public line, and each\n"
        "device-server-key against the cloud's key (server-public, else the Particle key). Every problem\n"
        "comes with the command that fixes it. Exit status 1 when a problem was found.\n"
        "\n"
        "With a CAPTURE (pcap or pcapng, read as cloudmon reads it), every connection to port 5683 is\n"
        "followed with the keyfile's keys instead, and each gets its verdict, the line of the keyfile\n"
        "the capture contradicts (line number, kind, path, fingerprint), the line it was compared with\n"
        "and the command that fixes it; or that it contradicts no key. Exit status 0 when no key is\n"
        "contradicted, 1 when one is, 2 when the capture cannot be read whole, 3 when none is but\n"
        "the keys at hand leave open a cause that blames one.",
    };
    if (!tool_parse_options(&cmd, NULL, &argc, &argv))
        return EXIT_USAGE;
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "%s check: give one keyfile and at most one capture (usage: %s check KEYFILE "
                "[CAPTURE])\n", PROG, PROG);
        return EXIT_USAGE;
    }
    kr_err err;
    if (!file_readable(argv[1], "the keyfile", &err)) {
        fprintf(stderr, "%s: %s\n", PROG, err.msg);
        return EXIT_USAGE;
    }
    kr_keyfile *kf = kr_keyfile_load(argv[1], &err);
    if (!kf) {
        printf("problem: %s\n", err.msg);
        return EXIT_PROBLEM;
    }
    if (argc == 3) {
#ifdef SPARKKEYS_CAPTURE
        int rc = check_capture(kf, argv[1], argv[2]);
#else
        fprintf(stderr, "%s: this sparkkeys was built without capture reading (build sparkwire with "
                "-Dmonitor=true and libpcap)\n", PROG);
        int rc = EXIT_USAGE;
#endif
        kr_keyfile_free(kf);
        return rc;
    }
    check_state st = {kf, NULL, NULL, -1};
    size_t n = kr_keyfile_count(kf);
    for (size_t i = 0; i < n; i++)
        check_entry(i, &st);
    check_server_pair(&st);
    check_device_copies(&st);
    if (n == 0)
        printf("the keyfile has no entries: the tools will run without keys\n");
    printf("%s: %zu entr%s, %s\n", argv[1], n, n == 1 ? "y" : "ies",
           st.worst == KR_NOTE_PROBLEM ? "PROBLEMS found (see above)" :
           st.worst == KR_NOTE_WARNING ? "usable, with warnings" : "fine");
    kr_keyfile_free(kf);
    return st.worst == KR_NOTE_PROBLEM ? EXIT_PROBLEM : EXIT_FINE;
}
