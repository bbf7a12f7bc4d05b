/* libFuzzer target: the keyfile parser (kr_keyfile_parse). Relative key paths resolve in the samples
 * folder (SPARKWIRE_SOURCE_ROOT/samples, or FUZZ_KEY_DIR), so real key files are reachable. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <keyring/keyring.h>

static char base[1024];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *d = getenv("FUZZ_KEY_DIR");
    const char *src = getenv("SPARKWIRE_SOURCE_ROOT");
    if (d)
        snprintf(base, sizeof base, "%s", d);
    else
        snprintf(base, sizeof base, "%s/samples", src ? src : FUZZ_SOURCE_ROOT);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kr_err err = { "" };
    kr_keyfile *kf = kr_keyfile_parse((const char *)data, size, base, "fuzz-keyfile", &err);
    if (kf) {
        for (size_t i = 0; i < kr_keyfile_count(kf); i++)
            (void)kr_keyfile_entry(kf, i);
        uint8_t id[KR_DEVICE_ID_LEN] = { 0x53, 0xff, 0x6c, 0x06, 0x50, 0x67, 0x54, 0x48, 0x16, 0x30, 0x01, 0x87 };
        (void)kr_keyfile_device_key(kf, id);
        (void)kr_keyfile_session(kf, id);
        (void)kr_keyfile_server_public(kf);
        kr_keyfile_free(kf);
    }
    return 0;
}
