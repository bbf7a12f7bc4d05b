/* sparkwire libkeyring: the words for steps, messages, findings and verdicts (docs/design.md). */
#include "tracker_int.h"

const char *kr_step_str(kr_step_kind k)
{
    switch (k) {
    case KR_STEP_NONCE: return "nonce";
    case KR_STEP_IDBLOCK: return "id-block";
    case KR_STEP_SESSIONBLOCK: return "session-block";
    case KR_STEP_HELLO: return "hello";
    case KR_STEP_FRAME: return "frame";
    case KR_STEP_DATA: return "data";
    case KR_STEP_NONE: break;
    }
    return "";
}

const char *kr_step_title(kr_step_kind k, kr_dir d)
{
    switch (k) {
    case KR_STEP_NONCE: return "Nonce";
    case KR_STEP_IDBLOCK: return "Device ID block";
    case KR_STEP_SESSIONBLOCK: return "Session key block";
    case KR_STEP_HELLO: return d == KR_D2S ? "Device Hello" : "Cloud Hello";
    case KR_STEP_FRAME: return "Frame";
    case KR_STEP_DATA: return "Data";
    case KR_STEP_NONE: break;
    }
    return "";
}

const char *kr_msg_kind_str(kr_msg_kind k)
{
    switch (k) {
    case KR_MSG_UNKNOWN: return "unknown";
    case KR_MSG_HELLO: return "hello";
    case KR_MSG_DESCRIBE: return "describe";
    case KR_MSG_DESCRIBE_REPLY: return "describe-reply";
    case KR_MSG_FUNCTION_CALL: return "function-call";
    case KR_MSG_FUNCTION_RETURN: return "function-return";
    case KR_MSG_VARIABLE_REQUEST: return "variable-request";
    case KR_MSG_VARIABLE_VALUE: return "variable-value";
    case KR_MSG_EVENT: return "event";
    case KR_MSG_SUBSCRIBE: return "subscribe";
    case KR_MSG_TIME_REQUEST: return "time-request";
    case KR_MSG_TIME_RESPONSE: return "time-response";
    case KR_MSG_SIGNAL: return "signal";
    case KR_MSG_UPDATE_BEGIN: return "update-begin";
    case KR_MSG_UPDATE_READY: return "update-ready";
    case KR_MSG_CHUNK: return "chunk";
    case KR_MSG_CHUNK_RECEIVED: return "chunk-received";
    case KR_MSG_CHUNK_MISSED: return "chunk-missed";
    case KR_MSG_UPDATE_DONE: return "update-done";
    case KR_MSG_SAVE_BEGIN: return "save-begin";
    case KR_MSG_KEY_CHANGE: return "key-change";
    case KR_MSG_PING: return "ping";
    case KR_MSG_EMPTY_ACK: return "empty-ack";
    case KR_MSG_ACK: return "ack";
    case KR_MSG_RST: return "rst";
    }
    return "unknown";
}

const char *kr_finding_str(kr_finding_code c)
{
    switch (c) {
    case KR_FIND_GAP: return "gap";
    case KR_FIND_OTA_INCOMPLETE: return "ota-incomplete";
    case KR_FIND_OTA_CHUNK_ERROR: return "ota-chunk-error";
    case KR_FIND_COUNTER_ERROR: return "counter-error";
    case KR_FIND_DECRYPT_ERROR: return "decrypt-error";
    }
    return "";
}

const char *kr_verdict_str(kr_verdict_code c)
{
    switch (c) {
    case KR_V_NONE: return "";
    case KR_V_OK: return "ok";
    case KR_V_DEVICE_KEY_MISMATCH: return "device-key-mismatch";
    case KR_V_SERVER_KEY_MISMATCH: return "server-key-mismatch";
    case KR_V_UNKNOWN_DEVICE: return "unknown-device";
    case KR_V_BAD_SIGNATURE: return "bad-signature";
    case KR_V_NONCE_MISMATCH: return "nonce-mismatch";
    case KR_V_ID_BLOCK_REJECTED: return "id-block-rejected";
    case KR_V_SESSION_BLOCK_REJECTED: return "session-block-rejected";
    case KR_V_NOT_SPARK: return "not-spark";
    case KR_V_STALLED: return "stalled";
    case KR_V_INCOMPLETE: return "incomplete";
    case KR_V_MID_SESSION: return "mid-session";
    case KR_V_REFUSED: return "refused";
    }
    return "";
}

const char *kr_verdict_meaning(kr_verdict_code c)
{
    switch (c) {
    case KR_V_NONE: return "not decided yet";
    case KR_V_OK: return "handshake completed, Hello seen both ways";
    case KR_V_DEVICE_KEY_MISMATCH:
        return "the cloud encrypted the session key to a public key that is not this device's";
    case KR_V_SERVER_KEY_MISMATCH:
        return "the device encrypted its id to a public key that is not the cloud's";
    case KR_V_UNKNOWN_DEVICE: return "the cloud read the device id but had no key for it and closed";
    case KR_V_BAD_SIGNATURE:
        return "the session block's signature does not verify with the cloud's public key";
    case KR_V_NONCE_MISMATCH: return "the id block does not echo the nonce that was sent";
    case KR_V_ID_BLOCK_REJECTED:
        return "the cloud closed right after the device's id block";
    case KR_V_SESSION_BLOCK_REJECTED:
        return "the device went silent or closed right after the session block";
    case KR_V_NOT_SPARK: return "the peer on the cloud port does not speak this protocol";
    case KR_V_STALLED: return "a side stopped sending mid-handshake and the connection was closed by timeout";
    case KR_V_INCOMPLETE: return "the capture ends before the handshake does";
    case KR_V_MID_SESSION: return "the capture starts after the handshake";
    case KR_V_REFUSED:
        return "the device's connection was refused: its SYN was answered by a reset, nothing listens there";
    }
    return "";
}

const char *kr_step_reason_str(kr_step_reason r)
{
    switch (r) {
    case KR_WHY_NONE: return "";
    case KR_WHY_BYTES_LOST: return "bytes-lost";
    case KR_WHY_NO_SERVER_KEY: return "no-server-key";
    case KR_WHY_NO_DEVICE_KEY: return "no-device-key";
    case KR_WHY_KEY_DOES_NOT_OPEN: return "key-does-not-open";
    case KR_WHY_NO_SESSION_KEY: return "no-session-key";
    case KR_WHY_BAD_PADDING: return "bad-padding";
    case KR_WHY_NOT_COAP: return "not-coap";
    case KR_WHY_BAD_LENGTH: return "bad-length";
    case KR_WHY_NOT_PROTOCOL: return "not-protocol";
    case KR_WHY_DISPUTED: return "disputed";
    }
    return "";
}
