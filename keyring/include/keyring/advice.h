/* sparkwire libkeyring: advice on each verdict, with the command that does it. */
#ifndef KEYRING_ADVICE_H
#define KEYRING_ADVICE_H

#include "tracker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What to do about a verdict: a few sentences and the commands, lines separated by "\n" (commands on
 * lines of their own, indented by two spaces); DEVICE stands for the device. Verdicts without advice of
 * their own get "Look at the evidence and the ladder above." Never NULL. */
const char *kr_verdict_fix(kr_verdict_code code);
/* The same with DEVICE replaced by device (a device id or name); malloc'd (free it), NULL without memory. */
char *kr_verdict_fix_for(kr_verdict_code code, const char *device);

#ifdef __cplusplus
}
#endif

#endif
