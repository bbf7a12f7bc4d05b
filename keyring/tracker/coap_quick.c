/* sparkwire libkeyring: a quick reader of the CoAP messages the protocol sends (docs/protocol.md 4.1): version
 * 1, a token of at most 8 bytes, options numbered below 269, only the options the protocol uses (Uri-Path,
 * Uri-Query, Max-Age, Content-Format), and a payload after the marker. Max-Age and Content-Format have the
 * lengths CoAP allows them; Uri-Path and Uri-Query any length the message holds (one or two extension bytes),
 * as the devices read them: a Photon's function argument (up to 622 bytes) is one Uri-Query, which CoAP
 * would cut at 255 bytes and libcoap refuses beyond. It reads into the message and the view without a heap PDU. Anything else (and every
 * message it cannot be sure of) is left to libcoap: kr_coap_quick then returns false and has set nothing of
 * the message (the view, which libcoap's reader makes anew, may be half made). */
#include <string.h>
#include "msg_int.h"

/* The option numbers read here and the value lengths taken for each (RFC 7252 5.10, RFC 7641; the URI options
 * without CoAP's upper bound of 255, see above). */
static bool option_fits(unsigned number, unsigned len)
{
    switch (number) {
    case 11: return true;                   /* Uri-Path */
    case 15: return len >= 1;               /* Uri-Query */
    case 14: return len <= 4;              /* Max-Age */
    case 12: return len <= 2;              /* Content-Format */
    default: return false;
    }
}

/* A nibble of an option header of 13 or more: 13 = 13 + the next byte, 14 = 269 + the next two bytes
 * (big-endian); false for 15 and for extension bytes past the end. */
static bool extended(const uint8_t *pt, size_t len, size_t *i, unsigned *v)
{
    if (*v == 13 && *i < len) {
        *v = 13 + pt[(*i)++];
        return true;
    }
    if (*v == 14 && len - *i >= 2) {
        *v = 269 + (unsigned)(pt[*i] << 8 | pt[*i + 1]);
        *i += 2;
        return true;
    }
    return false;
}

bool kr_coap_quick(const uint8_t *pt, size_t len, kr_message *m, kr_coap_view *cv)
{
    if (len < 4 || (pt[0] >> 6) != 1)
        return false;   /* short or another version: libcoap judges them */
    size_t tkl = pt[0] & 0x0f;
    if (tkl > 8 || 4 + tkl > len || (pt[1] == 0 && len > 4))
        return false;   /* an empty message is the header alone (the cloud's with a token: see message.c) */
    cv->n_path = cv->n_query = 0;   /* the counts set: only the segments counted are read */
    cv->has_max_age = false;
    cv->max_age = 0;
    size_t i = 4 + tkl;
    unsigned number = 0;
    while (i < len && pt[i] != 0xff) {
        unsigned delta = pt[i] >> 4, olen = pt[i] & 0x0f;
        i++;
        if ((delta >= 13 && !extended(pt, len, &i, &delta)) || (olen >= 13 && !extended(pt, len, &i, &olen)))
            return false;
        number += delta;
        if (!option_fits(number, olen) || olen > len - i)
            return false;
        kr_coap_view_option(cv, (uint16_t)number, (kr_seg){ pt + i, olen });
        i += olen;
    }
    if (i < len && ++i == len)
        return false;   /* a payload marker with nothing after it */
    m->type = (pt[0] >> 4) & 3;
    m->code = pt[1];
    m->msg_id = (uint16_t)(pt[2] << 8 | pt[3]);
    m->token_len = (uint8_t)tkl;
    for (size_t k = 0; k < tkl; k++)   /* a byte or two, usually */
        m->token[k] = pt[4 + k];
    if (i < len) {
        m->payload = pt + i;
        m->payload_len = len - i;
    }
    return true;
}
