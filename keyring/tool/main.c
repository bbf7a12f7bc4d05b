/* sparkkeys: look at, compare, import and make the keys of the Spark Core / Particle device-cloud protocol.
 *
 *   sparkkeys show FILE...            what a key file holds and whether a device or the cloud can use it
 *   sparkkeys match KEY1 KEY2         do two keys belong together (same public key)?
 *   sparkkeys check KEYFILE           load a keyfile, check every key and every pair that can be checked
 *   sparkkeys check KEYFILE CAPTURE   per connection of the capture, the keyfile line it contradicts
 *   sparkkeys import DUMP --out DIR   keys from a Core flash dump or a Photon DCT dump
 *   sparkkeys new --device ID --out DIR  a new device key pair as the device and the cloud want it
 *
 * One file per command (cmd_*.c); printing, writing and argument checks are shared (print.c, write.c,
 * util.c). Exit status: 0 fine, 1 a problem was found, 2 usage or I/O error (check KEYFILE CAPTURE: 3, no
 * key contradicted, but the keys at hand leave open a cause that blames one).
 */
#include <locale.h>
#include <string.h>

#include <openssl/crypto.h>

#include "tool.h"

#ifndef SPARKWIRE_VERSION
#define SPARKWIRE_VERSION "unknown"
#endif

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"show", cmd_show},
    {"match", cmd_match},
    {"check", cmd_check},
    {"import", cmd_import},
    {"new", cmd_new},
};

static void print_usage(FILE *f)
{
    fprintf(f,
        "Usage:\n"
        "  sparkkeys show [--role ROLE] FILE...      what a key file holds and who can use it\n"
        "  sparkkeys match PRIVATE PUBLIC            do these two keys belong together?\n"
        "  sparkkeys check KEYFILE                   load a keyfile, check every key and pair\n"
        "  sparkkeys check KEYFILE CAPTURE           which key line each connection contradicts, and the fix\n"
        "  sparkkeys import DUMP --out DIR [--device ID] [--layout core|dct]\n"
        "                                            keys from a Core flash or Photon DCT dump\n"
        "  sparkkeys new --device ID --out DIR       a new device key pair (device DER + cloud PEM)\n"
        "  sparkkeys COMMAND --help                  options of a command\n"
        "  sparkkeys --version\n"
        "\n"
        "Keys of the Spark Core / Particle device-cloud protocol: RSA-1024 device keys, RSA-2048 server\n"
        "keys, in DER or PEM, PKCS#1, PKCS#8 or SubjectPublicKeyInfo, whatever the file extension.\n"
        "Exit status: 0 fine, 1 a problem was found, 2 usage or I/O error; check with a capture:\n"
        "3 no key contradicted, but the keys at hand leave open a cause that blames one.\n");
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
    if (!strcmp(cmd, "--version")) {
        printf("sparkkeys (sparkwire) %s, %s\n", SPARKWIRE_VERSION, OpenSSL_version(OPENSSL_VERSION));
        return EXIT_FINE;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(cmd, commands[i].name) != 0)
            continue;
        char *pname = g_strdup_printf("%s %s", PROG, cmd);
        g_set_prgname(pname);
        g_free(pname);
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "%s: unknown command \"%s\" (use show, match, check, import or new; see `%s --help`)\n",
            PROG, cmd, PROG);
    return EXIT_USAGE;
}
