/* LD_PRELOADed into a target by the fault-injection tests
 * (tests/integration/test_attach_faults.py): when the agent starts its
 * thread (pthread_create called from aioscope-agent.so, inside
 * aioscope_agent_start, so inside the injected call or the PEP 768 loader),
 * it first writes AIOSCOPE_TEST_SLOW_MARK (a counter) and sleeps
 * AIOSCOPE_TEST_SLOW_AGENT_MS: a test can then kill aioscope while the
 * target is inside the call, every time. Nothing else is changed. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int (*create_fn)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);

static int from_agent(void* caller) {
    Dl_info info;
    return dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "aioscope-agent.so");
}

int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg) {
    static create_fn real;
    static int calls;
    if (!real) real = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
    const char* ms = getenv("AIOSCOPE_TEST_SLOW_AGENT_MS");
    if (ms && from_agent(__builtin_return_address(0))) {
        const char* mark = getenv("AIOSCOPE_TEST_SLOW_MARK");
        if (mark) {
            char text[32];
            int n = snprintf(text, sizeof text, "%d\n", ++calls);
            int fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (fd >= 0) {
                if (write(fd, text, (size_t)n) != n) { /* the test then just waits longer */ }
                close(fd);
            }
        }
        long v = atol(ms);
        struct timespec t = {v / 1000, (v % 1000) * 1000000L};
        while (nanosleep(&t, &t) != 0) {
        }
    }
    return real(thread, attr, start, arg);
}
