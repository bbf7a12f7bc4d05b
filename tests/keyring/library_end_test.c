/* libkeyring inside a module that is loaded and unloaded, as Wireshark loads and unloads the plugin: after
 * kr_library_end nothing the library made is left without an owner once the module is gone (the sanitized
 * build's leak check, at exit, sees what is), and the library works again after it (the second run gives
 * the first one's figures).
 *   library_end_test MODULE SAMPLE_DIR end   run, end, run again, end, unload: exit 0
 *   library_end_test MODULE SAMPLE_DIR keep  run and unload without kr_library_end (what the leak check
 *                                            must catch: the sanitized build's wrapper expects its report)
 * The libraries the module brings in (OpenSSL, GLib, libcoap, libpcap) stay loaded after it goes, as they
 * do in Wireshark, so what they keep for themselves stays theirs. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

static const char *module_path;

/* every shared object loaded besides the module: kept loaded when the module goes */
static int pin(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    (void)ud;
    if (info->dlpi_name[0] && !strstr(info->dlpi_name, module_path) && !strstr(module_path, info->dlpi_name))
        dlopen(info->dlpi_name, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[3], "end") != 0 && strcmp(argv[3], "keep") != 0)) {
        fprintf(stderr, "usage: library_end_test MODULE SAMPLE_DIR end|keep\n");
        return 2;
    }
    module_path = argv[1];
    void *m = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!m) {
        fprintf(stderr, "library_end_test: %s\n", dlerror());
        return 1;
    }
    dl_iterate_phdr(pin, NULL);
    int (*run)(const char *, int) = (int (*)(const char *, int))dlsym(m, "library_end_run");
    if (!run) {
        fprintf(stderr, "library_end_test: %s has no library_end_run\n", argv[1]);
        return 1;
    }
    int end = strcmp(argv[3], "end") == 0;
    int first = run(argv[2], end);
    int second = end ? run(argv[2], 1) : first;
    printf("first run %d, second run %d (frames decrypted x 10 + connections ok)\n", first, second);
    if (first <= 10 || first % 10 == 0 || second != first) {
        fprintf(stderr, "FAIL: the runs must decrypt frames, prove the connection ok and agree\n");
        return 1;
    }
    if (dlclose(m) != 0) {
        fprintf(stderr, "library_end_test: %s\n", dlerror());
        return 1;
    }
    return 0;
}
