/* cloudmon: libpcap, loaded at first need. */
#include "pcaplib.h"

#include <dlfcn.h>
#include <stdio.h>

cm_pcap_lib cm_pcap;

/* The library's names: Debian's soname first, then the upstream one. */
static const char *const libnames[] = { "libpcap.so.0.8", "libpcap.so.1" };

bool cm_pcap_load(char *err, size_t errcap)
{
    static bool loaded;
    if (loaded)
        return true;
    void *h = NULL;
    for (size_t i = 0; !h && i < sizeof libnames / sizeof libnames[0]; i++)
        h = dlopen(libnames[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errcap, "cannot load libpcap (%s): install it (Debian: libpcap0.8)", dlerror());
        return false;
    }
    cm_pcap_lib l;
    const char *missing = NULL;
#define CM_PCAP_SYM(ret, name, params)                                   \
    *(void **)&l.name = dlsym(h, "pcap_" #name);                        \
    if (!l.name && !missing)                                            \
        missing = "pcap_" #name;
    CM_PCAP_FUNCS(CM_PCAP_SYM)
#undef CM_PCAP_SYM
    if (missing) {
        snprintf(err, errcap, "cannot use libpcap: it has no %s (install libpcap 1.9 or newer)", missing);
        dlclose(h);
        return false;
    }
    cm_pcap = l;
    loaded = true;
    return true;
}
