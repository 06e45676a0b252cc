// Times uvloop's callbacks. uvloop (Cython over libuv) runs every callback and
// every task step in its own Handle._run / TimerHandle._run, C functions that
// no Python-level wrapper can reach. Each of them enters the handle's
// contextvars context first and leaves it last: Context_Enter(ctx) ...
// Context_Exit(ctx), which call CPython's PyContext_Enter / PyContext_Exit
// through uvloop's own GOT (its loop module's global offset table). The
// agent points those two GOT slots of uvloop's module, and of no other
// object, at wrappers that call the real functions and mark the callback's
// start and end in the stall hook's per-thread slot: the same record, the
// same sampler, as asyncio's own loop. Cost: one clock read per callback.
//
// Protocol callbacks that libuv invokes directly (data_received,
// connection_made, ...) run through context.run, past uvloop's GOT: the
// agent's wrapper of Context.run (context_run_hook.h, which also times
// asyncio's callbacks) times them the same way on uvloop's thread. Not timed:
// the code of loop.run_until_complete itself, between callbacks.
//
// The GOT is patched with the GIL held, when a loop that is not asyncio's
// starts running (running_loop_watch.h: uvloop calls asyncio's
// _set_running_loop from run_forever) or when the hooks go in and uvloop is
// already loaded (attach). The wrappers stay for the life of the process (pass-
// throughs once the stall hook is uninstalled): a callback that entered
// through ours leaves through ours.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include "fork_safe.h"

namespace aioscope::agent {

class UvloopHook {
public:
    static UvloopHook& instance();

    // GIL held: patches every loaded uvloop loop module not patched yet.
    // Returns whether one is patched (now or before).
    bool patchLoaded();
    bool patched() const { return m_patched.load(); }
    // Why a loaded uvloop could not be patched ("" if none failed).
    std::string failure() const;
    // Whether protocol callbacks (Context.run) are timed; if not, why.
    bool protocolsTimed() const { return m_protocolsTimed.load(); }
    std::string protocolFailure() const;
    // In a forked child (the patches are the parent's, and stay).
    void afterForkInChild();
    // Whether a callback went through the wrappers.
    bool timedAny() const { return m_timed.load(std::memory_order_relaxed); }

    // Called by the wrappers.
    void markTimed() {
        if (!m_timed.load(std::memory_order_relaxed)) m_timed.store(true, std::memory_order_relaxed);
    }

private:
    std::atomic<bool> m_patched{false};
    std::atomic<bool> m_timed{false};
    std::atomic<int> m_adds{-1};  // the loader's count of objects at the last scan
    // Written with the GIL held, read by the agent's thread without it
    // (hookFacts): a copy racing an assignment could read a freed buffer.
    mutable ForkSafeMutex m_textMutex;
    std::string m_failure;        // under m_textMutex
    std::atomic<bool> m_protocolsTimed{false};
    std::string m_protocolFailure = "uvloop's loop module is not patched";  // under m_textMutex
};

}  // namespace aioscope::agent
