/* sparkkeys match: do two keys belong together (the same public key)? */
#include <string.h>

#include "tool.h"

/* Loads both keys; rc gets the exit status of a failure. */
static bool load_two(char **paths, kr_key *k[2], int *rc)
{
    kr_err err;
    for (int i = 0; i < 2; i++) {
        if (!file_readable(paths[i], "the key file", &err)) {
            fprintf(stderr, "%s: %s\n", PROG, err.msg);
            *rc = EXIT_USAGE;
            continue;
        }
        k[i] = kr_key_load_file(paths[i], &err);
        if (!k[i]) {
            printf("problem: %s\n", err.msg);
            if (*rc == EXIT_FINE)
                *rc = EXIT_PROBLEM;
        }
    }
    return k[0] && k[1];
}

/* The name for the public half of the key in path: "k.der" -> "k.pub.der" (with ext ".pub.der"). */
static void public_name(const char *path, const char *ext, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash + 1 : path, '.');
    int stem = dot ? (int)(dot - path) : (int)strlen(path);
    g_snprintf(out, cap, "%.*s%s", stem, path, ext);
}

/* What two keys that differ mean, and the command that makes them one pair. */
static void explain_mismatch(char **paths, kr_key *k[2])
{
    char fix[KR_NOTE_FIX_LEN], pem[600], send[800];
    if (k[0]->bits != k[1]->bits) {
        printf("  note: the sizes differ: one looks like a device key (1024) and the other like a server "
               "key (2048)\n");
        return;
    }
    int priv = k[0]->is_private ? 0 : k[1]->is_private ? 1 : -1;
    if (k[0]->bits == 1024) {
        printf("  note: a device whose flash holds one and whose cloud record holds the other fails every "
               "handshake with a decryption error (one orange blink)\n");
        if (priv >= 0) {
            public_name(paths[priv], ".pub.pem", pem, sizeof pem);
            printf("  fix: openssl rsa -in %s%s -pubout -out %s, then %s\n", paths[priv],
                   k[priv]->pem ? "" : " -inform DER", pem, kr_fix_send_public(NULL, pem, send, sizeof send));
        } else {
            printf("  fix: %s\n", kr_fix_send_public(NULL, "THE_DEVICE_KEY.pub.pem", send, sizeof send));
        }
    } else if (k[0]->bits == 2048) {
        printf("  note: a device holding the one server key encrypts its id block to a key the cloud holding "
               "the other cannot open (server-key-mismatch)\n");
        if (priv >= 0) {
            public_name(paths[priv], ".pub.der", pem, sizeof pem);
            printf("  fix: give the device the cloud's public key: openssl rsa -in %s%s -pubout -outform DER "
                   "-out %s, then %s\n", paths[priv], k[priv]->pem ? "" : " -inform DER", pem,
                   kr_fix_server_key(KR_FLASH_AUTO, pem, fix, sizeof fix));
        } else {
            printf("  fix: give the device the key of the cloud it talks to: %s\n",
                   kr_fix_server_key(KR_FLASH_AUTO, paths[kr_key_is_particle_cloud(k[1]) ? 1 : 0], fix,
                                     sizeof fix));
        }
    }
}

int cmd_match(int argc, char **argv)
{
    static const tool_command cmd = {
        "match", "PRIVATE PUBLIC - do these two keys belong together?",
        "Says whether PUBLIC is the public half of PRIVATE (any two key files may be given: their public\n"
        "halves are compared), and when not, the command that makes them a pair.\n"
        "Exit status 0 when they match, 1 when they do not.",
    };
    if (!tool_parse_options(&cmd, NULL, &argc, &argv))
        return EXIT_USAGE;
    if (argc != 3) {
        fprintf(stderr, "%s match: give two key files (usage: %s match PRIVATE PUBLIC)\n", PROG, PROG);
        return EXIT_USAGE;
    }
    kr_key *k[2] = {NULL, NULL};
    int rc = EXIT_FINE;
    if (load_two(argv + 1, k, &rc)) {
        char fa[65], fb[65];
        kr_key_fingerprint(k[0], fa);
        kr_key_fingerprint(k[1], fb);
        const char *wa = k[0]->is_private ? "private" : "public";
        const char *wb = k[1]->is_private ? "private" : "public";
        if (kr_key_same_public(k[0], k[1])) {
            printf("yes: %s (RSA-%d %s) and %s (RSA-%d %s) belong together\n", argv[1], k[0]->bits, wa,
                   argv[2], k[1]->bits, wb);
            printf("  public key fingerprint: %s\n", fa);
            if (!k[0]->is_private && !k[1]->is_private)
                printf("  note: both are public keys: they are the same key\n");
        } else {
            printf("no: %s (RSA-%d %s) and %s (RSA-%d %s) do NOT belong together\n", argv[1], k[0]->bits, wa,
                   argv[2], k[1]->bits, wb);
            printf("  %s: public key fingerprint %s\n", argv[1], fa);
            printf("  %s: public key fingerprint %s\n", argv[2], fb);
            explain_mismatch(argv + 1, k);
            rc = EXIT_PROBLEM;
        }
    }
    kr_key_free(k[0]);
    kr_key_free(k[1]);
    return rc;
}
