/* Shared by the fuzz targets that need keys: loads a keyfile from the samples once. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <keyring/keyring.h>

/* keyfiles[0] is empty; the others are sample keyfiles (NULL when the samples are missing). */
static kr_keyfile *fuzz_keyfiles[4];

static void fuzz_load_keyfiles(void)
{
    static const char *names[] = { "healthy", "healthy-g1", "mid-session" };
    const char *src = getenv("SPARKWIRE_SOURCE_ROOT");
    fuzz_keyfiles[0] = kr_keyfile_new_empty();
    for (int i = 0; i < 3; i++) {
        char path[2048];
        kr_err err = { "" };
        snprintf(path, sizeof path, "%s/samples/%s/keyfile", src ? src : FUZZ_SOURCE_ROOT, names[i]);
        fuzz_keyfiles[i + 1] = kr_keyfile_load(path, &err);
        if (!fuzz_keyfiles[i + 1])
            fprintf(stderr, "fuzz: %s (keyfile %d left out)\n", err.msg, i + 1);
    }
}

static kr_keyfile *fuzz_keyfile(uint8_t sel)
{
    kr_keyfile *kf = fuzz_keyfiles[sel % 4];
    return kf ? kf : fuzz_keyfiles[0];
}
#endif
