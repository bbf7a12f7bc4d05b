/* libFuzzer target: the key loader (kr_key_load_mem) and the key checks on whatever loads. */
#include <stdint.h>
#include <stddef.h>
#include <keyring/keyring.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kr_err err = { "" };
    kr_key *k = kr_key_load_mem(data, size, "fuzz-input", &err);
    if (k) {
        kr_note notes[16];
        for (int role = KR_ROLE_ANY; role <= KR_ROLE_SERVER_PUBLIC; role++)
            kr_key_check(k, (kr_role)role, notes, 16);
        uint8_t spki[1024];
        kr_key_public_spki(k, spki, sizeof spki);
        char fp[65];
        kr_key_fingerprint(k, fp);
        kr_key_guess_role(k);
        kr_key_free(k);
    }
    char why[256];
    kr_key_device_layout_ok(data, size, why, sizeof why);
    return 0;
}
