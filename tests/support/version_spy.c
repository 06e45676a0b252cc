/* LD_PRELOADed, after the agent, into a program run under `aioscope run` by
 * tests/integration/test_agent_version_buffer.py. It stands in for CPython's
 * Py_GetVersion() (the agent looks it up with dlsym(RTLD_DEFAULT), which
 * finds a preloaded library's definition before libpython's), calls the real
 * one, and for every call made from aioscope-agent.so appends a line to the
 * file named by AIOSCOPE_TEST_VERSION_SPY: "<on the main thread: 1|0>
 * <Py_IsInitialized()>". Py_GetVersion() rewrites a static buffer that
 * Py_Initialize copies into sys.version: the agent may call it only on the
 * main thread, before the interpreter is initialized. Nothing else changes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef const char* (*version_fn)(void);
typedef int (*initialized_fn)(void);

static const char* g_log;  /* read once, before any thread exists */

__attribute__((constructor)) static void read_env(void) { g_log = getenv("AIOSCOPE_TEST_VERSION_SPY"); }

static int from_agent(void* caller) {
    Dl_info info;
    return dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "aioscope-agent.so");
}

const char* Py_GetVersion(void) {
    version_fn real = (version_fn)dlsym(RTLD_NEXT, "Py_GetVersion");
    if (g_log && from_agent(__builtin_return_address(0))) {
        initialized_fn initialized = (initialized_fn)dlsym(RTLD_DEFAULT, "Py_IsInitialized");
        char line[32];
        int n = snprintf(line, sizeof line, "%d %d\n", (pid_t)syscall(SYS_gettid) == getpid(),
                         initialized ? initialized() : -1);
        int fd = open(g_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            if (write(fd, line, (size_t)n) != n) { /* the test sees a missing line */ }
            close(fd);
        }
    }
    return real ? real() : "";
}
