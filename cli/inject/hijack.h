// One thread of another process, stopped with ptrace (PTRACE_SEIZE +
// PTRACE_INTERRUPT: no signal is sent; a system call in progress is
// restarted as usual when it resumes) to run the return stub in it
// (return_stub.h). Only this thread stops; the others keep running
// (stopping them could deadlock on a lock they hold).
//
// Its registers are never left changed while aioscope holds it: until the
// stub starts, the thread resumes exactly where it was; once its registers
// point at the stub, the stub itself brings it back. Released on
// destruction whatever happens, and by the kernel if aioscope dies. Signals
// that arrive meanwhile are delivered at once, never held back (a held
// signal would be lost with aioscope). Every wait is bounded.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "inject/return_stub.h"

namespace aioscope::cli {

class HijackedThread {
public:
    // Throws InspectError when the thread cannot be stopped (permission:
    // naming a tracer that already holds it; gone: process_exited).
    HijackedThread(pid_t pid, pid_t tid);
    ~HijackedThread();
    HijackedThread(const HijackedThread&) = delete;
    HijackedThread& operator=(const HijackedThread&) = delete;

    pid_t tid() const { return m_tid; }
    const user_regs_struct& registers() const { return m_saved; }

    // Lets it run briefly, then stops it again (looking for a safe point).
    void nudge(int microseconds);

    // Writes into the target's memory through ptrace, read-only code pages
    // included (private copies: the file is not changed).
    bool poke(std::uint64_t addr, const void* data, std::size_t len);

    struct Outcome {
        bool finished = false;  // the stub reported; else it was left to finish alone
        StubResults results;
        std::string dlerror;    // when dlopen failed
        std::string why;        // why it was left (time out, interrupted, stopped)
    };
    // Runs the stub (already in place at `stubAddr`) for `call` and follows
    // it to its report, at most `within` (and not after `interrupted()`
    // says so). The thread is released in every case. Throws InspectError
    // when the target exits meanwhile or the stub could not be started (the
    // thread is then back where it was).
    Outcome runStub(std::uint64_t stubAddr, const Resume& resume, const XstateFormat& xstate, const StubCall& call,
                    std::chrono::milliseconds within, const std::function<bool()>& interrupted);

private:
    void stop();
    void release();

    pid_t m_pid;
    pid_t m_tid;
    bool m_seized = false;
    bool m_stopped = false;
    user_regs_struct m_saved{};
};

}  // namespace aioscope::cli
