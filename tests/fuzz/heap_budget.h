// Fails a fuzzer run whose heap grows past a budget. A torn image is a few
// hundred kilobytes of recorded memory; what reading it costs must stay in
// proportion, because the same reader runs inside the user's program (the
// agent). libFuzzer's own limits miss it: -malloc_limit_mb sees one
// allocation, not many small ones, and -rss_limit_mb sees the process after
// the fact, without the input. This counts the bytes live during one run
// through the sanitizer's allocation hooks and aborts, with the stack of the
// allocation that crossed the budget, as soon as one run holds more: the
// input is then written as a crash.
#pragma once

#include <sanitizer/allocator_interface.h>
#include <sanitizer/common_interface_defs.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>

namespace aioscope::fuzz {

class HeapBudget {
public:
    // AIOSCOPE_FUZZ_HEAP_MB overrides the budget (0: only report peaks).
    static void install(std::size_t defaultMb) {
        const char* env = std::getenv("AIOSCOPE_FUZZ_HEAP_MB");
        s_budget = static_cast<long long>(env ? std::strtoull(env, nullptr, 10) : defaultMb) << 20;
        s_report = env && std::getenv("AIOSCOPE_FUZZ_HEAP_REPORT");
        __sanitizer_install_malloc_and_free_hooks(onMalloc, onFree);
    }

    // Counts from here to end(): the bytes allocated and not freed.
    static void begin() {
        s_live.store(0, std::memory_order_relaxed);
        s_peak = 0;
        s_armed.store(true, std::memory_order_release);
    }
    static void end() {
        s_armed.store(false, std::memory_order_release);
        if (s_report && s_peak > s_maxPeak) {
            s_maxPeak = s_peak;
            std::fprintf(stderr, "heap peak of one run: %lld KB\n", s_peak >> 10);
        }
    }

private:
    // Called on every allocation: not checked by the sanitizers (clang 14
    // cannot leave out its coverage instrumentation too).
#define AIOSCOPE_FUZZ_UNINSTRUMENTED __attribute__((no_sanitize("address", "undefined")))
    AIOSCOPE_FUZZ_UNINSTRUMENTED static void onMalloc(const volatile void*, std::size_t size) {
        if (!s_armed.load(std::memory_order_acquire)) return;
        long long now = s_live.fetch_add(static_cast<long long>(size), std::memory_order_relaxed) +
                        static_cast<long long>(size);
        if (now > s_peak) s_peak = now;
        if (s_budget > 0 && now > s_budget) {
            s_armed.store(false);
            std::fprintf(stderr, "==fuzz== heap budget exceeded: %lld MB live in one run (budget %lld MB); "
                                 "the allocation that crossed it:\n", now >> 20, s_budget >> 20);
            __sanitizer_print_stack_trace();
            std::abort();
        }
    }
    AIOSCOPE_FUZZ_UNINSTRUMENTED static void onFree(const volatile void* p) {
        if (!p || !s_armed.load(std::memory_order_acquire)) return;
        // Before the run began: what it frees was not counted, so it may go
        // below zero; only growth matters.
        s_live.fetch_sub(static_cast<long long>(__sanitizer_get_allocated_size(const_cast<const void*>(p))),
                         std::memory_order_relaxed);
    }

    static inline std::atomic<long long> s_live{0};
    static inline std::atomic<bool> s_armed{false};
    static inline long long s_peak = 0;
    static inline long long s_maxPeak = 0;
    static inline long long s_budget = 0;
    static inline bool s_report = false;
};

}  // namespace aioscope::fuzz
