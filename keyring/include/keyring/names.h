/* sparkwire libkeyring: the words a user reads, as tables a frontend can use directly (the layout of a
 * Wireshark value_string: value, then text; the last entry has text NULL), and as functions. The
 * functions for steps, message kinds, findings and verdicts are declared in tracker.h. */
#ifndef KEYRING_NAMES_H
#define KEYRING_NAMES_H

#include <stdint.h>
#include "tracker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kr_name {
    uint32_t value;
    const char *text;
} kr_name;

extern const kr_name kr_frame_state_names[];  /* "not decrypted", "decrypted", "partly decrypted (first block
                                                 lost)", "decryption error" */
extern const kr_name kr_coap_type_names[];    /* "CON", "NON", "ACK", "RST" */
extern const kr_name kr_coap_code_names[];    /* "Empty", "GET", "POST", "PUT", "2.04 Changed", ... */
extern const kr_name kr_platform_names[];     /* 0 "Core", 6 "Photon", 8 "P1", 10 "Electron" */
extern const kr_name kr_var_type_names[];     /* "unknown", "bool", "int32", "string", "null", "double" */
extern const kr_name kr_generation_names[];   /* 1 "first Core firmware (52-byte id block)", 2, 3 */
extern const kr_name kr_describe_flag_names[];/* 1 "system", 2 "application", 3 "system and application" ... */
extern const kr_name kr_step_names[];         /* "nonce", "id-block", ... (kr_step_str) */
extern const kr_name kr_msg_kind_names[];     /* "hello", "describe", ... (kr_msg_kind_str) */
extern const kr_name kr_finding_names[];      /* "gap", "ota-incomplete", ... (kr_finding_str) */
extern const kr_name kr_verdict_names[];      /* "ok", "device-key-mismatch", ... (kr_verdict_str) */
extern const kr_name kr_verdict_meanings[];   /* one sentence per verdict (kr_verdict_meaning) */
extern const kr_name kr_step_reason_names[];  /* "bytes-lost", "no-server-key", ... (kr_step_reason_str) */
extern const kr_name kr_budget_why_names[];   /* why a handshake's RSA work was skipped (kr_budget_why_str) */
extern const kr_name kr_budget_class_names[]; /* "known", "fits", "other" (kr_budget_class_str) */

/* The text of value in table, or NULL. */
const char *kr_name_of(const kr_name *table, uint32_t value);
/* The same for a table that lists the n values first, first + 1, ... in order: read at its place (the
 * words asked for every step and message). */
const char *kr_name_in_order(const kr_name *table, uint32_t first, size_t n, uint32_t value);
/* kr_name_in_order made inline, for the words of every step and message */
static inline const char *kr_name_at(const kr_name *table, uint32_t first, size_t n, uint32_t value)
{
    if (value >= first && value - first < n && table[value - first].value == value)
        return table[value - first].text;
    return kr_name_of(table, value);
}

const char *kr_frame_state_str(kr_frame_state s);  /* "not-decrypted", "decrypted", "partial", "decrypt-error" */
const char *kr_coap_type_str(uint8_t type);         /* "CON", "NON", "ACK", "RST" */
char *kr_coap_code_str(uint8_t code, char out[8]);  /* "2.05" */
const char *kr_platform_str(int platform);          /* "Photon"; "unknown platform" */
const char *kr_var_type_str(kr_var_type t);         /* "int32"; "unknown" */
const char *kr_generation_str(int generation);      /* "" when unknown */
const char *kr_describe_flags_str(uint8_t flags);   /* "" when the value is not a describe selection */
const char *kr_msg_kind_title(kr_msg_kind k);       /* "Function call", "Update done", ... */

#ifdef __cplusplus
}
#endif

#endif
