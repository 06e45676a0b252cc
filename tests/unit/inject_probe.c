/* The agent's stand-in for the return stub's tests (test_return_stub.cpp):
 * loaded into a child by the stub, it records its configuration, may sleep
 * ("sleep=MS") to keep the stub busy, and clobbers the vector registers the
 * stub must restore. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

__attribute__((visibility("default"))) int probe_calls = 0;

/* For test_safe_point.cpp: a thread stuck inside dlopen (in the dynamic
 * loader, holding its lock) while this constructor waits. */
__attribute__((constructor)) static void maybe_block(void) {
    if (getenv("AIOSCOPE_PROBE_BLOCK_IN_CONSTRUCTOR")) {
        for (;;) pause();
    }
}
__attribute__((visibility("default"))) char probe_config[256];

__attribute__((target("avx"))) static void clobberAvx(void) {
    __asm__ volatile("vpcmpeqd %%ymm8, %%ymm8, %%ymm8\n\tvpcmpeqd %%ymm15, %%ymm15, %%ymm15" ::: "xmm8", "xmm15");
}

__attribute__((target("avx512f"))) static void clobberAvx512(void) {
    __asm__ volatile("vpternlogd $0xff, %%zmm16, %%zmm16, %%zmm16\n\tkxnorw %%k1, %%k1, %%k1" ::: "xmm16", "k1");
}

__attribute__((visibility("default"))) int aioscope_agent_start(const char* config) {
    strncpy(probe_config, config, sizeof probe_config - 1);
    if (strncmp(config, "sleep=", 6) == 0) {
        long ms = strtol(config + 6, NULL, 10);
        struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&t, NULL);
    }
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx")) clobberAvx();
    if (__builtin_cpu_supports("avx512f")) clobberAvx512();
    ++probe_calls;
    return strncmp(config, "refuse", 6) == 0 ? -1 : 0;
}
