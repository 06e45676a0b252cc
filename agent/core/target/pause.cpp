#include "target/pause.h"

#include <sys/ptrace.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "errors.h"
#include "target/proc.h"
#include "target/trace_wait.h"

namespace aioscope {

namespace {
constexpr int kRounds = 8;                    // re-list threads until none appear
constexpr long kStopTimeoutNs = 1'000'000'000; // a thread in D state may not stop

// The kernel refuses (EPERM) to trace a thread that is exiting: tell that
// apart from a real permission problem by watching the thread for a moment.
enum class Retry { gone, seized, denied };

Retry retrySeize(pid_t pid, pid_t tid) {
    for (int i = 0; i < 20; ++i) {
        timespec ms{0, 1'000'000};
        nanosleep(&ms, nullptr);
        char state = procState(pid, tid);
        if (state == 0 || state == 'Z' || state == 'X') return Retry::gone;
        if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) == 0) return Retry::seized;
        if (errno == ESRCH) return Retry::gone;
    }
    return Retry::denied;
}
}  // namespace

ProcessPause::ProcessPause(pid_t pid) : m_pid(pid) {
    // Ctrl-C while the target is stopped must not leave it stopped: hold the
    // signals until it is resumed.
    sigset_t block;
    sigemptyset(&block);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&block, s);
    sigprocmask(SIG_BLOCK, &block, &m_savedMask);
    m_start = std::chrono::steady_clock::now();
    ProcFs proc(pid);
    try {
        for (int round = 0; round < kRounds; ++round) {
            bool fresh = false;
            for (pid_t tid : proc.threads()) {
                bool known = std::any_of(m_stopped.begin(), m_stopped.end(),
                                         [&](const Stopped& s) { return s.tid == tid; });
                if (!known && stopThread(tid)) fresh = true;
            }
            if (!fresh) break;
        }
        if (m_stopped.empty()) {
            throw InspectError(Errc::no_such_process, "no process with pid " + std::to_string(pid));
        }
    } catch (...) {
        resume();
        throw;
    }
}

bool ProcessPause::stopThread(pid_t tid) {
    if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
        int err = errno;
        if (err == ESRCH) return false;  // the thread exited meanwhile
        Retry retry = err == EPERM ? retrySeize(m_pid, tid) : Retry::denied;
        if (retry == Retry::gone) return false;
        if (retry == Retry::denied && err == EPERM) {
            throw InspectError(Errc::permission_denied,
                               "permission denied stopping process " + std::to_string(m_pid) +
                                   " with ptrace: " + permissionAdvice() +
                                   " (or read it without --pause)");
        }
        if (retry == Retry::denied) {
            throw InspectError(Errc::internal, "ptrace(SEIZE) failed on thread " + std::to_string(tid));
        }
    }
    return stopSeized(tid);
}

bool ProcessPause::stopSeized(pid_t tid) {
    m_stopped.push_back({tid, 0});
    if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) return true;
    timespec tick{0, 1'000'000};
    for (long waited = 0; waited < kStopTimeoutNs; waited += tick.tv_nsec) {
        int status = 0;
        TraceState state = pollTraced(tid, status);
        if (state == TraceState::stopped) m_stopped.back().pendingSignal = signalOnRelease(status);
        if (state == TraceState::gone) m_stopped.pop_back();
        if (state != TraceState::running) return true;
        nanosleep(&tick, nullptr);
    }
    return true;
}

double ProcessPause::resume() {
    if (m_resumed) return m_stoppedMs;
    m_resumed = true;
    for (const auto& s : m_stopped) {
        void* sig = reinterpret_cast<void*>(static_cast<long>(s.pendingSignal));
        if (ptrace(PTRACE_DETACH, s.tid, nullptr, sig) == 0 || errno != ESRCH) continue;
        // Detach needs a stopped tracee; a thread that had not stopped yet
        // (it was in uninterruptible sleep) is stopped once more, then released.
        ptrace(PTRACE_INTERRUPT, s.tid, nullptr, nullptr);
        timespec tick{0, 1'000'000};
        for (long waited = 0; waited < kStopTimeoutNs; waited += tick.tv_nsec) {
            int status = 0;
            if (pollTraced(s.tid, status) != TraceState::running) break;
            nanosleep(&tick, nullptr);
        }
        ptrace(PTRACE_DETACH, s.tid, nullptr, sig);
    }
    m_stoppedMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - m_start).count();
    sigprocmask(SIG_SETMASK, &m_savedMask, nullptr);
    return m_stoppedMs;
}

ProcessPause::~ProcessPause() { resume(); }

}  // namespace aioscope
