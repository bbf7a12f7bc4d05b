/* sparkwire libkeyring: what the library keeps per thread (the shared AES context, the kept frames' block
 * cache) is given back when the thread ends. One key for the process; each thread lists what to call. */
#include <pthread.h>
#include <stdbool.h>

#include "internal.h"

#define AT_END_MOST 4

static _Thread_local struct {
    void (*fn[AT_END_MOST])(void *);
    void *arg[AT_END_MOST];
    int n;
} at_end;

static pthread_key_t end_key;
static pthread_once_t end_once = PTHREAD_ONCE_INIT;
static bool end_key_made;

/* The thread ends: the calls it listed, the last first (one listed meanwhile runs as well). */
static void run_at_end(void *p)
{
    (void)p;
    while (at_end.n > 0) {
        int i = --at_end.n;
        at_end.fn[i](at_end.arg[i]);
    }
}

static void make_end_key(void)
{
    end_key_made = pthread_key_create(&end_key, run_at_end) == 0;
}

bool kr_at_thread_end(void (*fn)(void *), void *arg)
{
    pthread_once(&end_once, make_end_key);
    if (!end_key_made || at_end.n == AT_END_MOST || pthread_setspecific(end_key, &at_end) != 0)
        return false;
    at_end.fn[at_end.n] = fn;
    at_end.arg[at_end.n] = arg;
    at_end.n++;
    return true;
}
