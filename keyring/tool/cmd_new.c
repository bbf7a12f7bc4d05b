/* sparkkeys new: a new device key pair in the forms the device (PKCS#1 DER, fixed layout) and the cloud
 * (SubjectPublicKeyInfo PEM) want, and its line in DIR/keyfile. */
#include <string.h>

#include <openssl/rsa.h>

#include "tool.h"

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

typedef struct new_job {
    char *out, *id;
    gboolean force;
    char *der_path, *pub_path, *kf_path;
} new_job;

static int parse_new(int *argc, char ***argv, new_job *j)
{
    GOptionEntry entries[] = {
        {"device", 'd', 0, G_OPTION_ARG_STRING, &j->id, "The device id, 24 hex digits (required)", "ID"},
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &j->out, "Folder for the key files (required; created)", "DIR"},
        {"force", 'f', 0, G_OPTION_ARG_NONE, &j->force, "Replace key files of this id that exist", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    static const tool_command cmd = {
        "new", "--device ID --out DIR - a new device key pair",
        "Makes a new RSA-1024 device key (e = 65537, PKCS#1 DER laid out as the device reads it:\n"
        "drawn again until no number is shorter than nominal) and writes DIR/ID.der for the device\n"
        "and DIR/ID.pub.pem (SubjectPublicKeyInfo PEM) for the cloud, adds a line to DIR/keyfile,\n"
        "and prints the commands that put them on the device and in the cloud.",
    };
    if (!tool_parse_options(&cmd, entries, argc, argv))
        return EXIT_USAGE;
    if (*argc != 1 || !j->id || !j->out) {
        fprintf(stderr, "%s new: give --device ID and --out DIR (usage: %s new --device ID --out DIR)\n", PROG,
                PROG);
        return EXIT_USAGE;
    }
    if (!valid_id(j->id)) {
        fprintf(stderr, "%s new: bad device id \"%s\": give the 24 hex digits of the device id\n", PROG, j->id);
        return EXIT_USAGE;
    }
    return EXIT_FINE;
}

/* Adds "device ID ID.der" to DIR/keyfile unless it names this id already. *added says whether it did. */
static bool add_keyfile_line(const new_job *j, bool *added, kr_err *err)
{
    char *old = NULL;
    gsize oldlen = 0;
    GString *kf = g_string_new(NULL);
    if (g_file_get_contents(j->kf_path, &old, &oldlen, NULL)) {
        g_string_append_len(kf, old, (gssize)oldlen);
        if (oldlen && old[oldlen - 1] != '\n')
            g_string_append_c(kf, '\n');
    } else {
        g_string_append(kf, "# sparkwire keyfile\n");
    }
    char *pattern = g_strdup_printf("device  %s ", j->id);
    bool have = old && strstr(old, pattern);
    g_string_append_printf(kf, "device  %s  %s.der\n", j->id, j->id);
    bool ok = have || write_file(j->kf_path, kf->str, kf->len, false, err);
    *added = !have && ok;
    g_free(old);
    g_free(pattern);
    g_string_free(kf, TRUE);
    return ok;
}

static int make_pair(new_job *j)
{
    kr_err err;
    if (!make_dir(j->out, &err)) {
        fprintf(stderr, "%s: %s\n", PROG, err.msg);
        return EXIT_USAGE;
    }
    j->der_path = g_strdup_printf("%s/%s.der", j->out, j->id);
    j->pub_path = g_strdup_printf("%s/%s.pub.pem", j->out, j->id);
    j->kf_path = g_build_filename(j->out, "keyfile", NULL);
    bool der_exists = g_file_test(j->der_path, G_FILE_TEST_EXISTS);
    if (!j->force && (der_exists || g_file_test(j->pub_path, G_FILE_TEST_EXISTS))) {
        fprintf(stderr, "%s new: %s already exists: not replacing a key (move it away or give --force)\n", PROG,
                der_exists ? j->der_path : j->pub_path);
        return EXIT_USAGE;
    }
    EVP_PKEY *pkey = generate_device_key(&err);
    kr_key *k = pkey ? kr_key_from_pkey(pkey, j->der_path, &err) : NULL;
    if (!k) {
        fprintf(stderr, "%s new: %s\n", PROG, err.msg);
        return EXIT_USAGE;
    }
    int rc = EXIT_FINE;
    bool added = false;
    if (!write_file(j->der_path, k->der, k->der_len, true, &err) || !write_public_pem(k, j->pub_path, &err) ||
        !add_keyfile_line(j, &added, &err)) {
        fprintf(stderr, "%s: %s\n", PROG, err.msg);
        rc = EXIT_USAGE;
    } else {
        char fp[65], load[KR_NOTE_FIX_LEN], send[800];
        printf("wrote %s (device private key: RSA-1024, e=65537, PKCS#1 DER, %zu bytes)\n", j->der_path, k->der_len);
        printf("wrote %s (public key for the cloud, fingerprint %s)\n", j->pub_path, kr_key_fingerprint(k, fp));
        printf("keyfile line: device  %s  %s.der\n", j->id, j->id);
        if (added)
            printf("added to %s\n", j->kf_path);
        printf("to install: %s\n", kr_fix_write_device_key(KR_FLASH_AUTO, j->der_path, load, sizeof load));
        printf("  and %s\n", kr_fix_send_public(j->id, j->pub_path, send, sizeof send));
    }
    kr_key_free(k);
    return rc;
}

int cmd_new(int argc, char **argv)
{
    new_job j;
    memset(&j, 0, sizeof j);
    int rc = parse_new(&argc, &argv, &j);
    if (rc == EXIT_FINE)
        rc = make_pair(&j);
    g_free(j.der_path);
    g_free(j.pub_path);
    g_free(j.kf_path);
    g_free(j.out);
    g_free(j.id);
    return rc;
}
