/* sparkkeys import: the keys of a Spark Core flash dump or a Photon/P1 DCT dump, checked and written out
 * with a keyfile naming them. Analysis (which slot holds what) is libkeyring's kr_flash_load_file; this
 * file prints what was found (report_*) and writes the files (write_*). */
#include <string.h>

#include "tool.h"

typedef struct import_opts {
    char *out, *layout_s, *id;
    kr_flash_layout layout;
} import_opts;

/* What import read and where it writes. */
typedef struct import_job {
    const char *dump;
    const char *id;        /* lower-case device id, or NULL */
    kr_flash fl;
    char *dev_name, *dev_path, *srv_name, *srv_path;
    int worst;
} import_job;

static int parse_import(int *argc, char ***argv, import_opts *o)
{
    GOptionEntry entries[] = {
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &o->out, "Folder for the key files and the keyfile (required)", "DIR"},
        {"device", 'd', 0, G_OPTION_ARG_STRING, &o->id,
         "The device id (24 hex digits): names the files and the keyfile lines (default: device *)", "ID"},
        {"layout", 'l', 0, G_OPTION_ARG_STRING, &o->layout_s,
         "core (Spark Core external flash), dct (Photon/P1 DCT) or auto (default: told by content and size)",
         "LAYOUT"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    static const tool_command cmd = {
        "import", "DUMP --out DIR - keys from a flash dump",
        "Reads the key slots of a Spark Core external flash dump (server public key at 0x1000, server\n"
        "address at 0x1180, device private key at 0x2000; a whole 2 MB dump or a shorter read from\n"
        "address 0) or of a Photon/P1 DCT dump (16 KB), checks them, says whether the server key is the\n"
        "published Particle cloud key, and writes to DIR: the device private key (DER), its public half\n"
        "as PEM (what the cloud stores), the server key the device holds (DER) and a keyfile naming them.\n"
        "Make a dump with (device in DFU mode)\n"
        "  dfu-util -d 1d50:607f -a 1 -s 0x00000000:2097152 -U core-flash.bin   (Core)\n"
        "  dfu-util -d 2b04:d006 -a 1 -s 0:16384 -U dct.bin                    (Photon)",
    };
    if (!tool_parse_options(&cmd, entries, argc, argv))
        return EXIT_USAGE;
    o->layout = KR_FLASH_AUTO;
    if (o->layout_s && !strcmp(o->layout_s, "core")) {
        o->layout = KR_FLASH_CORE;
    } else if (o->layout_s && !strcmp(o->layout_s, "dct")) {
        o->layout = KR_FLASH_DCT;
    } else if (o->layout_s && strcmp(o->layout_s, "auto")) {
        fprintf(stderr, "%s import: unknown layout \"%s\" (use core, dct or auto)\n", PROG, o->layout_s);
        return EXIT_USAGE;
    }
    if (*argc != 2 || !o->out) {
        fprintf(stderr, "%s import: give a dump and --out DIR (usage: %s import DUMP --out DIR)\n", PROG, PROG);
        return EXIT_USAGE;
    }
    if (o->id && !valid_id(o->id)) {
        fprintf(stderr, "%s import: bad device id \"%s\": give the 24 hex digits\n", PROG, o->id);
        return EXIT_USAGE;
    }
    return EXIT_FINE;
}

/* A slot that holds no usable key: its line and the command that fixes it. */
static void report_bad_slot(import_job *j, const kr_flash_slot *s)
{
    char fix[KR_NOTE_FIX_LEN];
    print_slot(s);
    kr_flash_slot_fix(&j->fl, s, j->id, fix, sizeof fix);
    if (fix[0])
        printf("  fix: %s\n", fix);
    worsen(&j->worst, KR_NOTE_PROBLEM);
}

static void report_key_slot(import_job *j, const kr_flash_slot *s, kr_role role)
{
    if (s->state != KR_SLOT_KEY) {
        report_bad_slot(j, s);
        return;
    }
    print_slot(s);
    kr_note notes[16];
    int n = kr_key_check_for(s->key, role, j->fl.layout, j->id, notes, 16);
    worsen(&j->worst, print_notes(notes, n, "  ", false));
}

static void report_slots(import_job *j)
{
    const kr_flash *fl = &j->fl;
    printf("%s: %s dump, %zu bytes (%s)\n", j->dump, kr_flash_layout_str(fl->layout), fl->dump_len, fl->layout_why);
    report_key_slot(j, &fl->device_private, KR_ROLE_DEVICE_PRIVATE);
    if (fl->layout == KR_FLASH_DCT) {
        report_key_slot(j, &fl->device_public, KR_ROLE_DEVICE_PUBLIC);
        if (fl->device_public.state == KR_SLOT_KEY && fl->device_private.state == KR_SLOT_KEY) {
            if (kr_key_same_public(fl->device_public.key, fl->device_private.key)) {
                printf("  pair: the stored public key is the private key's public half\n");
            } else {
                char fix[KR_NOTE_FIX_LEN];
                printf("  problem: the stored device public key is NOT the private key's public half\n");
                printf("  fix: %s\n", kr_fix_new_device_key(j->id, fix, sizeof fix));
                worsen(&j->worst, KR_NOTE_PROBLEM);
            }
        }
    }
    report_key_slot(j, &fl->server_public, KR_ROLE_SERVER_PUBLIC);
    if (fl->address.state == KR_SLOT_KEY)
        printf("server address at 0x%zx: %s %s, port %u%s\n", fl->address.offset,
               fl->address.type == 0 ? "IPv4" : "domain", fl->address.host, fl->address.port_used,
               fl->address.port_used != fl->address.port ? " (stored 0 or 0xFFFF: default)" : "");
    else
        printf("%s\n", fl->address.why);
}

static void report_found(const kr_flash *fl)
{
    for (size_t i = 0; i < fl->n_found; i++) {
        const kr_flash_slot *x = &fl->found[i];
        char fp[65];
        const char *same = "";
        if (fl->device_private.key && kr_key_same_public(x->key, fl->device_private.key))
            same = ": the same key as the device key slot";
        else if (fl->server_public.key && kr_key_same_public(x->key, fl->server_public.key))
            same = ": the same key as the server key slot";
        else if (x->key->bits == 1024)
            same = ": not the key in the device key slot";
        else if (x->key->bits == 2048)
            same = kr_key_is_particle_cloud(x->key) ? ": not the key in the server key slot; the published "
                   "Particle cloud key" : ": not the key in the server key slot";
        printf("also found at 0x%zx: %s, fingerprint %s%s\n", x->offset, x->name, kr_key_fingerprint(x->key, fp),
               same);
    }
}

/* The keyfile text: device line, the device's server key, and server-public only for the Particle key. */
static GString *build_keyfile(const import_job *j)
{
    const kr_flash *fl = &j->fl;
    GString *kf = g_string_new(NULL);
    g_string_append_printf(kf, "# keys imported by sparkkeys from %s (%s)\n", j->dump, kr_flash_layout_str(fl->layout));
    if (fl->device_private.state == KR_SLOT_KEY)
        g_string_append_printf(kf, "device  %s  %s\n", j->id ? j->id : "*", j->dev_name);
    if (fl->server_public.state != KR_SLOT_KEY)
        return kf;
    if (j->id)
        g_string_append_printf(kf, "device-server-key  %s  %s\n", j->id, j->srv_name);
    else
        g_string_append_printf(kf, "# device-server-key  ID  %s   (import again with --device ID to name the "
                               "device)\n", j->srv_name);
    if (kr_key_is_particle_cloud(fl->server_public.key))
        g_string_append_printf(kf, "server-public  %s   # the published Particle cloud key\n", j->srv_name);
    return kf;
}

static bool write_outputs(import_job *j, const char *out, kr_err *err)
{
    const kr_flash *fl = &j->fl;
    bool ok = make_dir(out, err);
    if (ok && fl->server_public.state == KR_SLOT_KEY) {
        ok = write_file(j->srv_path, fl->server_public.key->der, fl->server_public.key->der_len, false, err);
        if (ok)
            printf("wrote %s (the server key the device holds)\n", j->srv_path);
    }
    if (ok && fl->device_private.state == KR_SLOT_KEY) {
        ok = write_file(j->dev_path, fl->device_private.key->der, fl->device_private.key->der_len, true, err);
        if (ok)
            printf("wrote %s\n", j->dev_path);
        char *pubname = g_strdup_printf("%s.pub.pem", j->id ? j->id : "device");
        char *p = g_build_filename(out, pubname, NULL);
        ok = ok && write_public_pem(fl->device_private.key, p, err);
        if (ok)
            printf("wrote %s (the public half, as the cloud stores it)\n", p);
        g_free(p);
        g_free(pubname);
    }
    if (!ok)
        return false;
    GString *kfile = build_keyfile(j);
    char *kp = g_build_filename(out, "keyfile", NULL);
    ok = write_file(kp, kfile->str, kfile->len, false, err);
    if (ok)
        printf("wrote %s:\n%s", kp, kfile->str);
    g_free(kp);
    g_string_free(kfile, TRUE);
    return ok;
}

static int run_import(import_job *j, const import_opts *o)
{
    kr_err err;
    if (kr_flash_load_file(j->dump, o->layout, &j->fl, &err) != 0) {
        printf("problem: %s\n", err.msg);
        return EXIT_PROBLEM;
    }
    const char *base = j->id ? j->id : "device";
    j->dev_name = g_strdup_printf("%s.der", base);
    j->dev_path = g_build_filename(o->out, j->dev_name, NULL);
    j->srv_name = g_strdup_printf("%s-server-key.der", base);
    j->srv_path = g_build_filename(o->out, j->srv_name, NULL);
    /* Name the keys after the files they are written to, so that every fix names a real file. */
    if (j->fl.device_private.key)
        g_strlcpy(j->fl.device_private.key->source, j->dev_path, sizeof j->fl.device_private.key->source);
    if (j->fl.server_public.key)
        g_strlcpy(j->fl.server_public.key->source, j->srv_path, sizeof j->fl.server_public.key->source);
    report_slots(j);
    report_found(&j->fl);
    if (!write_outputs(j, o->out, &err)) {
        fprintf(stderr, "%s: %s\n", PROG, err.msg);
        return EXIT_USAGE;
    }
    return j->worst == KR_NOTE_PROBLEM ? EXIT_PROBLEM : EXIT_FINE;
}

int cmd_import(int argc, char **argv)
{
    import_opts o = {NULL, NULL, NULL, KR_FLASH_AUTO};
    int rc = parse_import(&argc, &argv, &o);
    kr_err err;
    if (rc == EXIT_FINE && !file_readable(argv[1], "the dump", &err)) {
        fprintf(stderr, "%s: %s\n", PROG, err.msg);
        rc = EXIT_USAGE;
    }
    if (rc == EXIT_FINE) {
        import_job j;
        memset(&j, 0, sizeof j);
        j.dump = argv[1];
        j.id = o.id;
        j.worst = -1;
        rc = run_import(&j, &o);
        kr_flash_clear(&j.fl);
        g_free(j.dev_name);
        g_free(j.dev_path);
        g_free(j.srv_name);
        g_free(j.srv_path);
    }
    g_free(o.out);
    g_free(o.layout_s);
    g_free(o.id);
    return rc;
}
