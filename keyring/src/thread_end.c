/* sparkwire libkeyring: what the library keeps beyond its objects is given back. Per thread (the shared AES
 * context, the kept frames' block cache) when the thread ends: one key for the process, each thread lists
 * what to call. All of it, for the process and the calling thread, at kr_library_end. */
#include <pthread.h>
#include <stdbool.h>

#include "internal.h"

#define AT_END_MOST 4

static _Thread_local struct {
    void (*fn[AT_END_MOST])(void *);
    void *arg[AT_END_MOST];
    int n;
} at_end;

static pthread_mutex_t end_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t end_key;
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

/* The process's key, made on first need (again after kr_library_end deleted it). */
static bool end_key_ready(void)
{
    pthread_mutex_lock(&end_lock);
    if (!end_key_made)
        end_key_made = pthread_key_create(&end_key, run_at_end) == 0;
    bool ok = end_key_made;
    pthread_mutex_unlock(&end_lock);
    return ok;
}

bool kr_at_thread_end(void (*fn)(void *), void *arg)
{
    if (!end_key_ready() || at_end.n == AT_END_MOST || pthread_setspecific(end_key, &at_end) != 0)
        return false;
    at_end.fn[at_end.n] = fn;
    at_end.arg[at_end.n] = arg;
    at_end.n++;
    return true;
}

void kr_library_end(void)
{
    run_at_end(NULL);
    kr_fetched_end();
    kr_key_decode_end();
    kr_msg_end();
    /* no thread end may call into a library that is gone */
    pthread_mutex_lock(&end_lock);
    if (end_key_made) {
        pthread_setspecific(end_key, NULL);
        pthread_key_delete(end_key);
        end_key_made = false;
    }
    pthread_mutex_unlock(&end_lock);
}
