// One thread of another process, stopped with ptrace to call functions in it
// (dlopen, dlsym, aioscope_agent_start) and then put back exactly as it was:
// general registers, FPU/SSE/AVX state (XSTATE), and an interrupted system
// call, which the kernel restarts on resume. Only this thread stops; the
// others keep running (stopping them could deadlock on a lock they hold).
// Released on destruction whatever happens, and by the kernel if aioscope dies.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <string>
#include <vector>

namespace aioscope::cli {

class HijackedThread {
public:
    // Throws InspectError when the thread cannot be stopped.
    HijackedThread(pid_t pid, pid_t tid);
    ~HijackedThread();
    HijackedThread(const HijackedThread&) = delete;
    HijackedThread& operator=(const HijackedThread&) = delete;

    pid_t tid() const { return m_tid; }
    const user_regs_struct& registers() const { return m_saved; }

    // Lets it run briefly, then stops it again (looking for a safe point).
    void nudge(int microseconds);

    // Copies `data` below the thread's stack (past the red zone) and returns
    // its address in the target, for arguments that point into it.
    std::uint64_t placeData(const std::string& data);

    // Calls fn(args...) in the thread, below any placed data, and returns rax.
    // Throws InspectError.
    std::uint64_t call(std::uint64_t fn, const std::vector<std::uint64_t>& args);

private:
    void stop();
    void save();
    void restore();

    pid_t m_pid;
    pid_t m_tid;
    bool m_seized = false;
    bool m_dirty = false;       // registers changed since they were saved
    int m_pendingSignal = 0;    // delivered on release
    std::uint64_t m_dataBottom = 0;  // lowest address of placed data
    user_regs_struct m_saved{};
    std::vector<std::uint8_t> m_xstate;
};

// True when the stopped thread is not inside libc or the dynamic loader,
// except in one libc system-call wrapper of a blocking call: calling dlopen
// from inside malloc or dlopen itself would deadlock the target.
bool atSafePoint(pid_t pid, const HijackedThread& thread, std::string& why);

}  // namespace aioscope::cli
