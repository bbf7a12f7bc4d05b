/* sparkwire libkeyring: the words for protocol values (keyring/names.h). */
#include <stdio.h>
#include "keyring/names.h"

const kr_name kr_frame_state_names[] = {
    { KR_FRAME_NOT_DECRYPTED, "not decrypted" },
    { KR_FRAME_DECRYPTED, "decrypted" },
    { KR_FRAME_PARTIAL, "partly decrypted (first block lost)" },
    { KR_FRAME_DECRYPT_ERROR, "decryption error" },
    { 0, NULL }
};

static const kr_name frame_state_words[] = {
    { KR_FRAME_NOT_DECRYPTED, "not-decrypted" },
    { KR_FRAME_DECRYPTED, "decrypted" },
    { KR_FRAME_PARTIAL, "partial" },
    { KR_FRAME_DECRYPT_ERROR, "decrypt-error" },
    { 0, NULL }
};

const kr_name kr_coap_type_names[] = {
    { 0, "CON" }, { 1, "NON" }, { 2, "ACK" }, { 3, "RST" }, { 0, NULL }
};

const kr_name kr_coap_code_names[] = {
    { 0x00, "Empty" }, { 0x01, "GET" }, { 0x02, "POST" }, { 0x03, "PUT" },
    { 0x44, "2.04 Changed" }, { 0x45, "2.05 Content" }, { 0x80, "4.00 Bad Request" },
    { 0, NULL }
};

const kr_name kr_platform_names[] = {
    { 0, "Core" }, { 6, "Photon" }, { 8, "P1" }, { 10, "Electron" }, { 0, NULL }
};

const kr_name kr_var_type_names[] = {
    { KR_VAR_UNKNOWN, "unknown" }, { KR_VAR_BOOL, "bool" }, { KR_VAR_INT, "int32" },
    { KR_VAR_STRING, "string" }, { KR_VAR_NULL, "null" }, { KR_VAR_DOUBLE, "double" }, { 0, NULL }
};

const kr_name kr_generation_names[] = {
    { 1, "first Core firmware (52-byte id block)" },
    { 2, "later firmware (214-byte id block)" },
    { 3, "Photon firmware 0.8 or later (214-byte id block, little-endian message-id start)" },
    { 0, NULL }
};

const kr_name kr_describe_flag_names[] = {
    { 1, "system" }, { 2, "application" }, { 3, "system and application" }, { 4, "metrics" }, { 0, NULL }
};

static const kr_name kind_titles[] = {
    { KR_MSG_UNKNOWN, "Unknown request" }, { KR_MSG_HELLO, "Hello" }, { KR_MSG_DESCRIBE, "Describe" },
    { KR_MSG_DESCRIBE_REPLY, "Describe answer" }, { KR_MSG_FUNCTION_CALL, "Function call" },
    { KR_MSG_FUNCTION_RETURN, "Function return" }, { KR_MSG_VARIABLE_REQUEST, "Variable request" },
    { KR_MSG_VARIABLE_VALUE, "Variable value" }, { KR_MSG_EVENT, "Event" }, { KR_MSG_SUBSCRIBE, "Subscribe" },
    { KR_MSG_TIME_REQUEST, "Time request" }, { KR_MSG_TIME_RESPONSE, "Time" }, { KR_MSG_SIGNAL, "Signal" },
    { KR_MSG_UPDATE_BEGIN, "Update begin" }, { KR_MSG_UPDATE_READY, "Update ready" }, { KR_MSG_CHUNK, "Chunk" },
    { KR_MSG_CHUNK_RECEIVED, "Chunk received" }, { KR_MSG_CHUNK_MISSED, "Chunk missed" },
    { KR_MSG_UPDATE_DONE, "Update done" }, { KR_MSG_SAVE_BEGIN, "Save begin" }, { KR_MSG_KEY_CHANGE, "Key change" },
    { KR_MSG_PING, "Ping" }, { KR_MSG_EMPTY_ACK, "Empty message" }, { KR_MSG_ACK, "ACK" }, { KR_MSG_RST, "RST" },
    { 0, NULL }
};

const char *kr_name_of(const kr_name *table, uint32_t value)
{
    for (const kr_name *n = table; n->text; n++)
        if (n->value == value)
            return n->text;
    return NULL;
}

const char *kr_name_in_order(const kr_name *table, uint32_t first, size_t n, uint32_t value)
{
    return kr_name_at(table, first, n, value);
}

static const char *or_else(const char *s, const char *fallback)
{
    return s ? s : fallback;
}

const char *kr_frame_state_str(kr_frame_state s)
{
    return or_else(kr_name_at(frame_state_words, KR_FRAME_NOT_DECRYPTED, 4, (uint32_t)s), "not-decrypted");
}

const char *kr_coap_type_str(uint8_t type)
{
    return kr_name_at(kr_coap_type_names, 0, 4, type & 3u);
}

char *kr_coap_code_str(uint8_t code, char out[8])
{
    unsigned detail = code & 0x1f;
    out[0] = (char)('0' + (code >> 5));
    out[1] = '.';
    out[2] = (char)('0' + detail / 10);
    out[3] = (char)('0' + detail % 10);
    out[4] = '\0';
    return out;
}

const char *kr_platform_str(int platform)
{
    return platform < 0 ? "unknown platform" : or_else(kr_name_of(kr_platform_names, (uint32_t)platform),
                                                       "unknown platform");
}

const char *kr_var_type_str(kr_var_type t)
{
    return or_else(kr_name_of(kr_var_type_names, (uint32_t)t), "unknown");
}

const char *kr_generation_str(int generation)
{
    return generation <= 0 ? "" : or_else(kr_name_of(kr_generation_names, (uint32_t)generation), "");
}

const char *kr_describe_flags_str(uint8_t flags)
{
    return or_else(kr_name_of(kr_describe_flag_names, flags), "");
}

const char *kr_msg_kind_title(kr_msg_kind k)
{
    return or_else(kr_name_at(kind_titles, KR_MSG_UNKNOWN, KR_MSG_RST + 1, (uint32_t)k), "Unknown request");
}
