/* sparkkeys show: what a key file holds and whether a device or the cloud can use it. */
#include <string.h>

#include "tool.h"

/* Checks one key for its role (forced, or guessed from size and kind); prints; returns the worst level. */
static int show_key(const char *path, const kr_key *k, kr_role forced)
{
    kr_role role = forced != KR_ROLE_ANY ? forced : kr_key_guess_role(k);
    printf("%s\n", path);
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
    return worst;
}

int cmd_show(int argc, char **argv)
{
    char *role_s = NULL;
    GOptionEntry entries[] = {
        {"role", 'r', 0, G_OPTION_ARG_STRING, &role_s,
         "Check the key for this use: device, device-public, server, server-public (default: guessed from "
         "size and kind)", "ROLE"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    static const tool_command cmd = {
        "show", "FILE... - what a key file holds and who can use it",
        "Shows type, encoding, size, fingerprint and trailing bytes of each key file (DER or PEM, PKCS#1,\n"
        "PKCS#8 or SubjectPublicKeyInfo, any extension) and checks it for the role it plays: a device\n"
        "private key must be RSA-1024 PKCS#1 DER laid out as the device reads it, a server public key\n"
        "the 294-byte SubjectPublicKeyInfo DER. A server public key is compared with the published\n"
        "Particle cloud key. Every problem comes with the command that fixes it.",
    };
    if (!tool_parse_options(&cmd, entries, &argc, &argv))
        return EXIT_USAGE;
    bool ok;
    kr_role forced = parse_role(role_s, &ok);
    if (!ok) {
        fprintf(stderr, "%s show: unknown role \"%s\" (use device, device-public, server or server-public)\n",
                PROG, role_s);
        g_free(role_s);
        return EXIT_USAGE;
    }
    g_free(role_s);
    if (argc < 2) {
        fprintf(stderr, "%s show: name a key file (usage: %s show FILE...)\n", PROG, PROG);
        return EXIT_USAGE;
    }
    int rc = EXIT_FINE;
    for (int i = 1; i < argc; i++) {
        kr_err err;
        if (!file_readable(argv[i], "the key file", &err)) {
            fprintf(stderr, "%s: %s\n", PROG, err.msg);
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
        if (show_key(argv[i], k, forced) == KR_NOTE_PROBLEM && rc == EXIT_FINE)
            rc = EXIT_PROBLEM;
        kr_key_free(k);
    }
    return rc;
}
