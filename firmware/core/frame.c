#include "frame.h"

#include <string.h>

#include "crypto_port.h"

void sw_cipher_init(sw_cipher *c, const uint8_t material[SW_SESSION_LEN])
{
    memcpy(c->key, material, 16);
    memcpy(c->send_iv, material + 16, 16);
    memcpy(c->recv_iv, material + 16, 16);
}

int sw_frame_seal(sw_cipher *c, const uint8_t *msg, size_t msg_len, uint8_t *out, size_t out_cap)
{
    size_t pad = 16 - msg_len % 16;
    size_t ct_len = msg_len + pad;
    if (ct_len > 0xFFFF || out_cap < 2 || ct_len > out_cap - 2)
        return -1;
    uint8_t *ct = out + 2;
    /* Pad in place in out, then encrypt from a copy block by block is not needed: the port takes
     * distinct buffers, so the plaintext goes at the end of out first. */
    uint8_t block[16];
    size_t whole = msg_len - msg_len % 16;
    uint8_t iv[16];
    memcpy(iv, c->send_iv, 16);
    for (size_t off = 0; off < ct_len; off += 16) {
        if (off < whole) {
            memcpy(block, msg + off, 16);
        } else {
            size_t rest = msg_len - off;
            memcpy(block, msg + off, rest);
            memset(block + rest, (int)pad, 16 - rest);
        }
        if (sw_crypto_aes128_cbc_encrypt(c->key, iv, block, 16, ct + off) < 0)
            return -1;
        memcpy(iv, ct + off, 16);
    }
    out[0] = (uint8_t)(ct_len >> 8);
    out[1] = (uint8_t)ct_len;
    memcpy(c->send_iv, ct, 16);
    return (int)(ct_len + 2);
}

int sw_frame_open(sw_cipher *c, const uint8_t *ct, size_t ct_len, uint8_t *out, size_t out_cap)
{
    if (ct_len == 0 || ct_len % 16 != 0)
        return -1;
    uint8_t iv[16];
    memcpy(iv, c->recv_iv, 16);
    memcpy(c->recv_iv, ct, 16);
    if (ct_len > out_cap)
        return -1;
    if (sw_crypto_aes128_cbc_decrypt(c->key, iv, ct, ct_len, out) < 0)
        return -1;
    uint8_t pad = out[ct_len - 1];
    if (pad == 0 || pad > 16)
        return -1;
    for (size_t i = ct_len - pad; i < ct_len; i++)
        if (out[i] != pad)
            return -1;
    return (int)(ct_len - pad);
}
