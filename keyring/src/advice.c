/* sparkwire libkeyring: what to do about each verdict, with the command that does it (the "Fix" of
 * cloudmon's --report). One table beside the verdict words, for every frontend that gives advice. */
#include "keyring/advice.h"

#include <stdlib.h>
#include <string.h>

/* DEVICE in a text stands for the device the connection belongs to. */
static const struct {
    kr_verdict_code code;
    const char *fix;
} fixes[] = {
    { KR_V_DEVICE_KEY_MISMATCH, "The cloud holds another public key for this device. Read the device's key from "
      "its flash and give the cloud its public half:\n  sparkkeys import DUMP --out DIR\n  (DUMP: dfu-util -a 1 -s "
      "0x00002000:1024 -U DUMP on a Core), then install DIR's public key as the cloud's key for DEVICE." },
    { KR_V_SERVER_KEY_MISMATCH, "The device holds another server public key than the cloud's. Check the pair, "
      "then write the cloud's public key into the device:\n  sparkkeys match SERVER_PRIVATE SERVER_PUBLIC\n  "
      "particle keys server SERVER_PUBLIC.der" },
    { KR_V_BAD_SIGNATURE, "The session block is signed with a key the device does not hold as the server key. "
      "Check the cloud's key pair, then write its public key into the device:\n  sparkkeys match SERVER_PRIVATE "
      "SERVER_PUBLIC\n  particle keys server SERVER_PUBLIC.der" },
    { KR_V_UNKNOWN_DEVICE, "The cloud has no key for this device. Register the device's public key with the "
      "cloud:\n  sparkkeys import DUMP --out DIR\n  then install DIR's public key as the cloud's key for DEVICE." },
    { KR_V_NONCE_MISMATCH, "The device did not echo the cloud's nonce: a firmware fault or a replayed id block. "
      "Reflash the device's firmware and check the keys:\n  sparkkeys check KEYFILE" },
    { KR_V_ID_BLOCK_REJECTED, "The cloud refused the id block. Check its keys, and its log for the reason:\n"
      "  sparkkeys check KEYFILE" },
    { KR_V_SESSION_BLOCK_REJECTED, "The device refused the session block: its server key or its own key does not "
      "match the cloud's records. Check both pairs:\n  sparkkeys check KEYFILE" },
    { KR_V_NOT_SPARK, "Something else answers on the cloud port. Point the device at the right cloud address, or "
      "stop the other service on that port." },
    { KR_V_STALLED, "A side stopped answering mid-handshake. Look at the side that went silent (the ladder shows "
      "which), its load and its log; capture again with -s 0 to rule out lost packets." },
    { KR_V_INCOMPLETE, "The capture ends before the handshake does: capture for longer (--duration SEC)." },
    { KR_V_MID_SESSION, "The capture started inside a session: capture from the device's connect, or give its "
      "session line:\n  cloudmon -r FILE -k KEYFILE --export-sessions SESSIONS (on a capture that holds the "
      "handshake)" },
};

static const char fallback[] = "Look at the evidence and the ladder above.";

const char *kr_verdict_fix(kr_verdict_code code)
{
    for (size_t k = 0; k < sizeof fixes / sizeof fixes[0]; k++)
        if (fixes[k].code == code)
            return fixes[k].fix;
    return fallback;
}

char *kr_verdict_fix_for(kr_verdict_code code, const char *device)
{
    static const char mark[] = "DEVICE";
    const char *text = kr_verdict_fix(code);
    size_t ml = sizeof mark - 1, dl = device ? strlen(device) : 0, marks = 0;
    for (const char *p = strstr(text, mark); p; p = strstr(p + ml, mark))
        marks++;
    char *out = malloc(strlen(text) - marks * ml + marks * dl + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const char *p = text, *m; *p; p = m + ml) {
        m = strstr(p, mark);
        size_t keep = m ? (size_t)(m - p) : strlen(p);
        memcpy(o, p, keep);
        o += keep;
        if (!m)
            break;
        memcpy(o, device ? device : "", dl);
        o += dl;
    }
    *o = '\0';
    return out;
}
