#include "keyring/keyring.h"
