/* sparkwire libkeyring: the words for steps, messages, findings and verdicts (docs/design.md), as tables
 * (keyring/names.h) and the functions tracker.h promises. */
#include "tracker_int.h"
#include "keyring/names.h"
#include "keyring/budget.h"

const kr_name kr_step_names[] = {
    { KR_STEP_NONCE, "nonce" }, { KR_STEP_IDBLOCK, "id-block" }, { KR_STEP_SESSIONBLOCK, "session-block" },
    { KR_STEP_HELLO, "hello" }, { KR_STEP_FRAME, "frame" }, { KR_STEP_DATA, "data" }, { 0, NULL }
};

/* in the order of the kinds, read at a kind's place (a Hello's title names its side: kr_step_title) */
static const kr_name step_titles[] = {
    { KR_STEP_NONCE, "Nonce" }, { KR_STEP_IDBLOCK, "Device ID block" }, { KR_STEP_SESSIONBLOCK, "Session key block" },
    { KR_STEP_HELLO, "Hello" }, { KR_STEP_FRAME, "Frame" }, { KR_STEP_DATA, "Data" }, { 0, NULL }
};

const kr_name kr_msg_kind_names[] = {
    { KR_MSG_UNKNOWN, "unknown" }, { KR_MSG_HELLO, "hello" }, { KR_MSG_DESCRIBE, "describe" },
    { KR_MSG_DESCRIBE_REPLY, "describe-reply" }, { KR_MSG_FUNCTION_CALL, "function-call" },
    { KR_MSG_FUNCTION_RETURN, "function-return" }, { KR_MSG_VARIABLE_REQUEST, "variable-request" },
    { KR_MSG_VARIABLE_VALUE, "variable-value" }, { KR_MSG_EVENT, "event" }, { KR_MSG_SUBSCRIBE, "subscribe" },
    { KR_MSG_TIME_REQUEST, "time-request" }, { KR_MSG_TIME_RESPONSE, "time-response" }, { KR_MSG_SIGNAL, "signal" },
    { KR_MSG_UPDATE_BEGIN, "update-begin" }, { KR_MSG_UPDATE_READY, "update-ready" }, { KR_MSG_CHUNK, "chunk" },
    { KR_MSG_CHUNK_RECEIVED, "chunk-received" }, { KR_MSG_CHUNK_MISSED, "chunk-missed" },
    { KR_MSG_UPDATE_DONE, "update-done" }, { KR_MSG_SAVE_BEGIN, "save-begin" }, { KR_MSG_KEY_CHANGE, "key-change" },
    { KR_MSG_PING, "ping" }, { KR_MSG_EMPTY_ACK, "empty-ack" }, { KR_MSG_ACK, "ack" }, { KR_MSG_RST, "rst" },
    { 0, NULL }
};

const kr_name kr_finding_names[] = {
    { KR_FIND_GAP, "gap" }, { KR_FIND_OTA_INCOMPLETE, "ota-incomplete" },
    { KR_FIND_OTA_CHUNK_ERROR, "ota-chunk-error" }, { KR_FIND_COUNTER_ERROR, "counter-error" },
    { KR_FIND_DECRYPT_ERROR, "decrypt-error" }, { 0, NULL }
};

const kr_name kr_verdict_names[] = {
    { KR_V_OK, "ok" }, { KR_V_DEVICE_KEY_MISMATCH, "device-key-mismatch" },
    { KR_V_SERVER_KEY_MISMATCH, "server-key-mismatch" }, { KR_V_UNKNOWN_DEVICE, "unknown-device" },
    { KR_V_BAD_SIGNATURE, "bad-signature" }, { KR_V_NONCE_MISMATCH, "nonce-mismatch" },
    { KR_V_ID_BLOCK_REJECTED, "id-block-rejected" }, { KR_V_SESSION_BLOCK_REJECTED, "session-block-rejected" },
    { KR_V_NOT_SPARK, "not-spark" }, { KR_V_STALLED, "stalled" }, { KR_V_INCOMPLETE, "incomplete" },
    { KR_V_MID_SESSION, "mid-session" }, { KR_V_REFUSED, "refused" }, { 0, NULL }
};

const kr_name kr_verdict_meanings[] = {
    { KR_V_NONE, "not decided yet" },
    { KR_V_OK, "handshake completed, Hello seen both ways" },
    { KR_V_DEVICE_KEY_MISMATCH, "the cloud encrypted the session key to a public key that is not this device's" },
    { KR_V_SERVER_KEY_MISMATCH, "the device encrypted its id to a public key that is not the cloud's" },
    { KR_V_UNKNOWN_DEVICE, "the cloud read the device id but had no key for it and closed" },
    { KR_V_BAD_SIGNATURE, "the session block's signature does not verify with the cloud's public key" },
    { KR_V_NONCE_MISMATCH, "the id block does not echo the nonce that was sent" },
    { KR_V_ID_BLOCK_REJECTED, "the cloud closed right after the device's id block" },
    { KR_V_SESSION_BLOCK_REJECTED, "the device went silent or closed right after the session block" },
    { KR_V_NOT_SPARK, "the peer on the cloud port does not speak this protocol" },
    { KR_V_STALLED, "a side stopped sending mid-handshake and the connection was closed by timeout" },
    { KR_V_INCOMPLETE, "the capture ends before the handshake does" },
    { KR_V_MID_SESSION, "the capture starts after the handshake" },
    { KR_V_REFUSED, "the device's connection was refused: its SYN was answered by a reset, nothing listens there" },
    { 0, NULL }
};

const kr_name kr_step_reason_names[] = {
    { KR_WHY_BYTES_LOST, "bytes-lost" }, { KR_WHY_NO_SERVER_KEY, "no-server-key" },
    { KR_WHY_NO_DEVICE_KEY, "no-device-key" }, { KR_WHY_KEY_DOES_NOT_OPEN, "key-does-not-open" },
    { KR_WHY_NO_SESSION_KEY, "no-session-key" }, { KR_WHY_BAD_PADDING, "bad-padding" },
    { KR_WHY_NOT_COAP, "not-coap" }, { KR_WHY_BAD_LENGTH, "bad-length" }, { KR_WHY_NOT_PROTOCOL, "not-protocol" },
    { KR_WHY_DISPUTED, "disputed" }, { KR_WHY_RSA_BUDGET, "rsa-budget" }, { 0, NULL }
};

const kr_name kr_budget_why_names[] = {
    { KR_BUDGET_WHY_ADDRESS, "its address started more handshakes a second than one address may" },
    { KR_BUDGET_WHY_FULL, "the queue of handshakes waiting for RSA work was full of ones as likely genuine" },
    { KR_BUDGET_WHY_GAVE_WAY, "it waited, and gave its place in the full queue to a handshake more likely genuine" },
    { KR_BUDGET_WHY_WAITED, "it waited for RSA work longer than a handshake may" },
    { KR_BUDGET_WHY_ENDED, "the connection ended while it waited for RSA work" },
    { 0, NULL }
};

const kr_name kr_budget_class_names[] = {
    { KR_BUDGET_KNOWN, "known" }, { KR_BUDGET_FITS, "fits" }, { KR_BUDGET_PLAIN, "other" },
    { KR_BUDGET_FLOODING, "flooding" }, { 0, NULL }
};

static const char *word(const kr_name *table, uint32_t value, const char *fallback)
{
    const char *w = kr_name_of(table, value);
    return w ? w : fallback;
}

const char *kr_step_str(kr_step_kind k)
{
    const char *w = kr_name_at(kr_step_names, KR_STEP_NONCE, KR_STEP_DATA, (uint32_t)k);
    return w ? w : "";
}

const char *kr_step_title(kr_step_kind k, kr_dir d)
{
    if (k == KR_STEP_HELLO)
        return d == KR_D2S ? "Device Hello" : "Cloud Hello";
    const char *w = kr_name_at(step_titles, KR_STEP_NONCE, KR_STEP_DATA, (uint32_t)k);
    return w ? w : "";
}

const char *kr_msg_kind_str(kr_msg_kind k)
{
    const char *w = kr_name_at(kr_msg_kind_names, KR_MSG_UNKNOWN, KR_MSG_RST + 1, (uint32_t)k);
    return w ? w : "unknown";
}

const char *kr_finding_str(kr_finding_code c)
{
    return word(kr_finding_names, (uint32_t)c, "");
}

const char *kr_verdict_str(kr_verdict_code c)
{
    return word(kr_verdict_names, (uint32_t)c, "");
}

const char *kr_verdict_meaning(kr_verdict_code c)
{
    return word(kr_verdict_meanings, (uint32_t)c, "");
}

const char *kr_step_reason_str(kr_step_reason r)
{
    return word(kr_step_reason_names, (uint32_t)r, "");
}

const char *kr_budget_why_str(kr_budget_why w)
{
    return word(kr_budget_why_names, (uint32_t)w, "");
}

const char *kr_budget_class_str(kr_budget_class c)
{
    return word(kr_budget_class_names, (uint32_t)c, "");
}
