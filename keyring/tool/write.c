/* sparkkeys: writing key files and keyfiles. */
#include <errno.h>
#include <string.h>

#include <glib/gstdio.h>
#include <openssl/pem.h>

#include "tool.h"

bool write_file(const char *path, const void *data, size_t len, bool secret, kr_err *err)
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

bool write_public_pem(const kr_key *k, const char *path, kr_err *err)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || !PEM_write_bio_PUBKEY(bio, kr_key_pkey(k))) {
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

bool make_dir(const char *dir, kr_err *err)
{
    if (g_mkdir_with_parents(dir, 0755) != 0) {
        kr_err_set(err, "%s: cannot create the folder: %s", dir, strerror(errno));
        return false;
    }
    return true;
}
