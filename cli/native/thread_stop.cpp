#include "native/thread_stop.h"

#include <sys/ptrace.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <vector>

#include "target/proc.h"
#include "target/seize.h"
#include "target/trace_wait.h"

namespace aioscope::cli {

namespace {

// Deadlines on the clock, never counts of 1 ms sleeps: on a busy machine a
// sleep takes longer, and a "1 s" wait of 1000 sleeps lasted seconds.
constexpr auto kStopWithin = std::chrono::milliseconds(1000);
constexpr auto kReleaseWithin = std::chrono::milliseconds(2000);
using Clock = std::chrono::steady_clock;

std::vector<pid_t> g_strays;

void sleepMs(long ms) {
    timespec t{0, ms * 1'000'000L};
    nanosleep(&t, nullptr);
}

// Detaches `tid` if it is in a ptrace stop now, or gone: true. False while
// it still runs toward its pending stop.
bool releaseIfStopped(pid_t tid) {
    int status = 0;
    switch (pollTraced(tid, status)) {
        case TraceState::running: return false;
        case TraceState::gone: return true;
        case TraceState::stopped:
            ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(signalOnRelease(status))));
            return true;
    }
    return true;
}

}  // namespace

ThreadStop::ThreadStop(pid_t tid) : m_tid(tid) {
    releaseStrayStops();
    int err = 0;
    switch (seizeThread(processOfThread(tid), tid, 0, err)) {
        case Seize::seized: break;
        case Seize::gone: m_error = "the thread ended"; return;
        case Seize::denied: m_error = std::string("cannot attach to thread: ") + std::strerror(err); return;
    }
    m_seized = true;
    ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr);
    int status = 0;
    switch (awaitStop(tid, status, kStopWithin)) {
        case TraceState::running: break;
        case TraceState::gone:
            m_seized = false;
            m_error = "the thread ended";
            return;
        case TraceState::stopped:
            m_signal = signalOnRelease(status);
            m_stopped = true;
            return;
    }
    m_error = "the thread did not stop";
}

ThreadStop::~ThreadStop() {
    if (!m_seized) return;
    if (m_stopped) {
        ptrace(PTRACE_DETACH, m_tid, nullptr, reinterpret_cast<void*>(static_cast<long>(m_signal)));
        return;
    }
    // PTRACE_DETACH only works on a stopped thread: wait for the pending
    // stop a while longer, then leave it to the retries.
    for (auto deadline = Clock::now() + kReleaseWithin; Clock::now() < deadline;) {
        if (releaseIfStopped(m_tid)) return;
        sleepMs(1);
    }
    g_strays.push_back(m_tid);
}

void releaseStrayStops() { std::erase_if(g_strays, releaseIfStopped); }

std::size_t strayStops() { return g_strays.size(); }

}  // namespace aioscope::cli
