// One thread of another process, interrupted with ptrace (PTRACE_SEIZE +
// PTRACE_INTERRUPT: no signal, a system call in progress is restarted
// transparently) for as long as the object lives, and released on
// destruction whatever happened. A thread that did not stop in time is
// still traced, its interrupt pending: it is detached once it does stop
// (by the destructor, or later by releaseStrayStops()), so it can never stay
// stopped while aioscope lives on (`run` lives as long as the program).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace aioscope::cli {

class ThreadStop {
public:
    explicit ThreadStop(pid_t tid);
    ~ThreadStop();
    ThreadStop(const ThreadStop&) = delete;
    ThreadStop& operator=(const ThreadStop&) = delete;

    bool stopped() const { return m_stopped; }
    const std::string& error() const { return m_error; }

private:
    pid_t m_tid;
    bool m_seized = false;
    bool m_stopped = false;
    int m_signal = 0;
    std::string m_error;
};

// Detaches the threads earlier ThreadStops gave up on, those that have
// stopped since: call it regularly while a stream runs (cheap when there
// are none).
void releaseStrayStops();

// How many such threads are still waited for (tests).
std::size_t strayStops();

}  // namespace aioscope::cli
