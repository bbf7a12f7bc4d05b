/* librsacount.so: counts the RSA operations a program makes through OpenSSL's EVP_PKEY API, by key size,
 * for the benchmarks (LD_PRELOAD; the counts are appended to the file named by SPARKWIRE_RSA_COUNT when the
 * program exits). Only calls that produce output count: the size queries with out == NULL do not. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <openssl/evp.h>

static unsigned long priv[2], pub[2];   /* [0] RSA 1024, [1] RSA 2048 (and larger) */

static void count(EVP_PKEY_CTX *ctx, unsigned long *tab)
{
    EVP_PKEY *k = EVP_PKEY_CTX_get0_pkey(ctx);
    __atomic_add_fetch(&tab[k && EVP_PKEY_get_bits(k) > 1024 ? 1 : 0], 1, __ATOMIC_RELAXED);
}

#define WRAP(name, tab)                                                                                   \
    int name(EVP_PKEY_CTX *ctx, unsigned char *out, size_t *outlen, const unsigned char *in, size_t inlen) \
    {                                                                                                     \
        static int (*real)(EVP_PKEY_CTX *, unsigned char *, size_t *, const unsigned char *, size_t);    \
        if (!real)                                                                                        \
            *(void **)&real = dlsym(RTLD_NEXT, #name);                                                    \
        if (out)                                                                                          \
            count(ctx, tab);                                                                              \
        return real(ctx, out, outlen, in, inlen);                                                         \
    }

WRAP(EVP_PKEY_decrypt, priv)
WRAP(EVP_PKEY_sign, priv)
WRAP(EVP_PKEY_encrypt, pub)
WRAP(EVP_PKEY_verify_recover, pub)

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("SPARKWIRE_RSA_COUNT");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (!f)
        return;
    fprintf(f, "priv1024 %lu priv2048 %lu pub1024 %lu pub2048 %lu\n", priv[0], priv[1], pub[0], pub[1]);
    fclose(f);
}
