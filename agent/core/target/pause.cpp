#include "target/pause.h"

#include <sys/ptrace.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "errors.h"
#include "target/proc.h"
#include "target/seize.h"
#include "target/trace_wait.h"

namespace aioscope {

namespace {
constexpr int kRounds = 8;                    // re-list threads until none appear
constexpr auto kStopWithin = std::chrono::seconds(1);  // a thread in D state may not stop
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
    int err = 0;
    switch (seizeThread(m_pid, tid, 0, err)) {
        case Seize::gone: return false;
        case Seize::seized: break;
        case Seize::denied:
            if (err == EPERM) {
                throw InspectError(Errc::permission_denied,
                                   "permission denied stopping process " + std::to_string(m_pid) +
                                       " with ptrace: " + permissionAdvice() + " (or read it without --pause)");
            }
            throw InspectError(Errc::internal, "ptrace(SEIZE) failed on thread " + std::to_string(tid));
    }
    return stopSeized(tid);
}

bool ProcessPause::stopSeized(pid_t tid) {
    m_stopped.push_back({tid, 0});
    if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) return true;
    int status = 0;
    TraceState state = awaitStop(tid, status, kStopWithin);
    if (state == TraceState::stopped) m_stopped.back().pendingSignal = signalOnRelease(status);
    if (state == TraceState::gone) m_stopped.pop_back();
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
        int status = 0;
        awaitStop(s.tid, status, kStopWithin);
        ptrace(PTRACE_DETACH, s.tid, nullptr, sig);
    }
    m_stoppedMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - m_start).count();
    sigprocmask(SIG_SETMASK, &m_savedMask, nullptr);
    return m_stoppedMs;
}

ProcessPause::~ProcessPause() { resume(); }

}  // namespace aioscope
