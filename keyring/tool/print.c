/* sparkkeys: how keys, notes and flash slots are printed. */
#include "tool.h"

static const char *level_word(kr_note_level l)
{
    switch (l) {
    case KR_NOTE_PROBLEM: return "problem";
    case KR_NOTE_WARNING: return "warning";
    default: return "note";
    }
}

void worsen(int *worst, int level)
{
    if (level > *worst)
        *worst = level;
}

int print_notes(const kr_note *notes, int n, const char *indent, bool storage_is_warning)
{
    int worst = -1;
    for (int i = 0; i < n; i++) {
        kr_note_level l = notes[i].level;
        if (storage_is_warning && notes[i].storage && l == KR_NOTE_PROBLEM)
            l = KR_NOTE_WARNING;
        worsen(&worst, (int)l);
        printf("%s%s: %s%s\n", indent, level_word(l), notes[i].storage && storage_is_warning ?
               "for writing to a device: " : "", notes[i].text);
        if (notes[i].fix[0])
            printf("%s  fix: %s\n", indent, notes[i].fix);
    }
    return worst;
}

void print_key_facts(const kr_key *k, const char *indent)
{
    char fp[65];
    printf("%stype: RSA-%d %s key, exponent %lu\n", indent, k->bits, k->is_private ? "private" : "public",
           k->exponent);
    printf("%sencoding: %s, %zu bytes%s\n", indent, kr_key_encoding_str(k), k->der_len, k->pem ? " of DER" : "");
    printf("%sfingerprint: %s (SHA-256 of the public key as SubjectPublicKeyInfo DER)\n", indent,
           kr_key_fingerprint(k, fp));
    if (k->trailing_len)
        printf("%strailing: %zu bytes after the key%s%s\n", indent, k->trailing_len,
               k->trailing_all_ff ? ", all 0xFF (erased flash)" :
               k->trailing_address ? ", 0xFF and a server address record: " : ", not erased flash",
               k->trailing_address ? k->trailing_address_text : "");
}

void print_slot(const kr_flash_slot *s)
{
    if (s->state == KR_SLOT_KEY) {
        char fp[65];
        printf("%s at 0x%zx: RSA-%d %s key, %s, %zu bytes, fingerprint %s\n", s->name, s->offset, s->key->bits,
               s->key->is_private ? "private" : "public", kr_key_encoding_str(s->key), s->key->der_len,
               kr_key_fingerprint(s->key, fp));
    } else {
        printf("problem: %s\n", s->why);
    }
}
