// Stops every thread of a process for a consistent read (ptrace SEIZE +
// INTERRUPT: no signal is sent, job control is not disturbed) and always
// resumes it: on destruction, on error, and, if aioscope itself dies, by the
// kernel, which detaches a dead tracer's tracees.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <vector>

namespace aioscope {

class ProcessPause {
public:
    // Throws InspectError (permission_denied, no_such_process).
    explicit ProcessPause(pid_t pid);
    ~ProcessPause();
    ProcessPause(const ProcessPause&) = delete;
    ProcessPause& operator=(const ProcessPause&) = delete;

    // Resumes every thread; returns how long the process was stopped (ms).
    double resume();
    std::size_t threadsStopped() const { return m_stopped.size(); }

private:
    struct Stopped {
        pid_t tid;
        int pendingSignal;  // a signal that arrived while stopping; re-delivered on detach
    };
    bool stopThread(pid_t tid);
    bool stopSeized(pid_t tid);  // already PTRACE_SEIZEd: interrupt it and wait for the stop

    pid_t m_pid;
    std::vector<Stopped> m_stopped;
    std::chrono::steady_clock::time_point m_start;
    sigset_t m_savedMask;
    bool m_resumed = false;
    double m_stoppedMs = 0;
};

}  // namespace aioscope
