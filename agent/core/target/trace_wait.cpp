#include "target/trace_wait.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "target/proc.h"

namespace aioscope {

namespace {

// Whether `tid` is a process (a thread-group leader) that is our own child.
bool ownChild(pid_t tid) { return processOfThread(tid) == tid && parentOf(tid) == getpid(); }

}  // namespace

TraceState pollTraced(pid_t tid, int& status) {
    status = 0;
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(tid), &info, WEXITED | WSTOPPED | WNOHANG | WNOWAIT | __WALL) != 0) {
        return errno == EINTR ? TraceState::running : TraceState::gone;
    }
    if (info.si_pid == 0) return TraceState::running;
    bool exited = info.si_code == CLD_EXITED || info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
    if (exited && ownChild(tid)) return TraceState::gone;
    pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
    if (r == tid) return WIFSTOPPED(status) ? TraceState::stopped : TraceState::gone;
    if (r == 0 || errno == EINTR) return TraceState::running;
    return TraceState::gone;
}

int signalOnRelease(int status) {
    return (status >> 16) != PTRACE_EVENT_STOP && WSTOPSIG(status) != SIGTRAP ? WSTOPSIG(status) : 0;
}

TraceState awaitStop(pid_t tid, int& status, std::chrono::milliseconds within) {
    auto deadline = std::chrono::steady_clock::now() + within;
    for (;;) {
        TraceState state = pollTraced(tid, status);
        if (state != TraceState::running || std::chrono::steady_clock::now() >= deadline) return state;
        timespec tick{0, 1'000'000};
        nanosleep(&tick, nullptr);
    }
}

}  // namespace aioscope
