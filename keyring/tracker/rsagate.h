/* sparkwire libkeyring: where the tracker consults the RSA budget (keyring/budget.h). A handshake block
 * whose RSA work must wait stays in its direction's buffer, and everything the tracker is given meanwhile
 * is held, in order, until the budget serves or skips it; then the block is opened (or reported as not
 * opened for the budget) and the held calls are replayed. Without a budget none of this happens. */
#ifndef KEYRING_RSAGATE_H
#define KEYRING_RSAGATE_H

#include "tracker_int.h"

/* Before the id block (D2S) or the session block (S2D) is opened: true when it waits for the budget. */
bool krt_rsa_gate(kr_tracker *t, kr_dir dir, double ts);
/* Whether a block waits for the budget (read for every packet: a flag of the tracker's, not the state's). */
static inline bool krt_rsa_holding(const kr_tracker *t)
{
    return t->rsa_parked;
}
/* While a block waits, these keep the calls for later and return true. */
bool krt_rsa_hold_feed(kr_tracker *t, kr_dir dir, const uint8_t *p, size_t len, double ts);
bool krt_rsa_hold_data(kr_tracker *t, kr_dir dir, const uint8_t *p, size_t len, double ts);
bool krt_rsa_hold_gap(kr_tracker *t, kr_dir dir, uint64_t nbytes, double ts);
bool krt_rsa_hold_close(kr_tracker *t, kr_dir by, bool rst, double ts);
bool krt_rsa_hold_dispute(kr_tracker *t, kr_dir dir, uint64_t offset, uint64_t len);
/* No more input: a waiting block is decided now (served when the budget allows, else skipped). */
void krt_rsa_settle(kr_tracker *t, double ts);
void krt_rsa_free(kr_tracker *t);
/* Why the budget skipped the handshake's RSA work (kr_budget_why_str), or NULL when it did not. Notes say
 * KRT_RSA_SKIPPED ": " and that. */
#define KRT_RSA_SKIPPED "not opened for the RSA budget"
const char *krt_rsa_skipped(const kr_tracker *t);
/* ops private-key operations were done for this handshake. */
void krt_rsa_charge(kr_tracker *t, unsigned ops);
/* The session block opened with the device's key: its address completed a handshake. */
void krt_rsa_opened(kr_tracker *t, double ts);

#endif
