/* sparkwire libkeyring: the algorithms fetched from OpenSSL's provider once for the process, until
 * kr_library_end. The implicit forms (EVP_aes_128_ecb(), EVP_sha256()) have every use look the algorithm up
 * again: about half of a probe key's set-up, and most of a connection's session hint. A context set up with
 * one holds a reference of its own, so giving ours back leaves such a context working. */
#include <pthread.h>
#include <openssl/evp.h>

#include "internal.h"

static pthread_mutex_t fetched_lock = PTHREAD_MUTEX_INITIALIZER;
static EVP_CIPHER *aes_ecb;
static EVP_MD *sha256;

/* Both, as fetched at the first need of either (again after kr_library_end; a fetch that failed is tried
 * again at the next need), read under the lock. */
static void fetch(const EVP_CIPHER **c, const EVP_MD **md)
{
    pthread_mutex_lock(&fetched_lock);
    if (!aes_ecb)
        aes_ecb = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
    if (!sha256)
        sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    *c = aes_ecb;
    *md = sha256;
    pthread_mutex_unlock(&fetched_lock);
}

const EVP_CIPHER *kr_fetched_aes_128_ecb(void)
{
    const EVP_CIPHER *c;
    const EVP_MD *md;
    fetch(&c, &md);
    return c ? c : EVP_aes_128_ecb();
}

const EVP_MD *kr_fetched_sha256(void)
{
    const EVP_CIPHER *c;
    const EVP_MD *md;
    fetch(&c, &md);
    return md ? md : EVP_sha256();
}

void kr_fetched_end(void)
{
    pthread_mutex_lock(&fetched_lock);
    EVP_CIPHER_free(aes_ecb);
    EVP_MD_free(sha256);
    aes_ecb = NULL;
    sha256 = NULL;
    pthread_mutex_unlock(&fetched_lock);
}
