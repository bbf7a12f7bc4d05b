/* sparkwire libkeyring: everything about the protocol's security layer, in one place. */
#ifndef KEYRING_KEYRING_H
#define KEYRING_KEYRING_H
#include "common.h"
#include "key.h"
#include "keyfile.h"
#include "handshake.h"
#include "cipher.h"
#include "flash.h"
#include "tracker.h"
#include "names.h"
#include "contradict.h"
#include "budget.h"
#include "advice.h"
#endif
