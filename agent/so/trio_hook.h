// Times trio's task steps. trio runs each step of a task in its own run loop
// (trio._core._run.unrolled_run: task.context.run(...)), pure Python that
// calls the instruments registered with the run before and after each step
// (trio.abc.Instrument's before_task_step / after_task_step). The agent
// registers one whose two hooks are C functions marking the step's start and
// end in the stall hook's per-thread slot: a step past the threshold is a
// stall, read and reported by the same sampler as asyncio's callbacks.
//
// It is registered with every run started after trio is imported
// (trio._core._run.setup_runner is wrapped) and with the run in progress on
// the installing thread, if any. Under `run`, the audit hook installs it when
// the program imports trio (importing trio itself first, as it does for
// asyncio).
#pragma once

#include <atomic>

namespace aioscope::agent {

class TrioHook {
public:
    static TrioHook& instance();

    // GIL held, trio imported: installs (once). False if it could not be.
    bool install();
    bool installed() const { return m_installed.load(); }
    // An install began (perhaps still running its Python, GIL handed over).
    bool begun() const { return m_begun.load(); }
    // Whether a task step went through the instrument.
    bool timedAny() const { return m_timed.load(std::memory_order_relaxed); }
    void markTimed() {
        if (!m_timed.load(std::memory_order_relaxed)) m_timed.store(true, std::memory_order_relaxed);
    }

private:
    std::atomic<bool> m_installed{false};
    std::atomic<bool> m_begun{false};
    std::atomic<bool> m_timed{false};
};

}  // namespace aioscope::agent
