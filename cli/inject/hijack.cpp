#include "inject/hijack.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "errors.h"
#include "inject/target_memory.h"
#include "inject/tracer.h"
#include "target/seize.h"
#include "target/trace_wait.h"

namespace aioscope::cli {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kStopWithin = std::chrono::milliseconds(2000);
constexpr auto kReleaseWithin = std::chrono::milliseconds(1000);

void sleepUs(long us) {
    timespec t{us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&t, nullptr);
}

// Waits for the thread's next state change until `deadline`: true with
// `status` set (0: gone), false on time out. Polls with a short, growing
// sleep (a traced thread that is not our child gives us no way to block
// with a time limit); the injection follows every system call of dlopen,
// so the first polls are quick. Never reaps our own child (trace_wait.h).
bool waitThread(pid_t tid, Clock::time_point deadline, int& status) {
    long sleep = 20;
    for (;;) {
        switch (pollTraced(tid, status)) {
            case TraceState::stopped: return true;
            case TraceState::gone: status = 0; return true;
            case TraceState::running: break;
        }
        if (Clock::now() >= deadline) return false;
        sleepUs(sleep);
        sleep = std::min(sleep * 2, 1000L);
    }
}

bool gone(int status) { return WIFEXITED(status) || WIFSIGNALED(status) || status == 0; }
bool syscallStop(int status) { return WIFSTOPPED(status) && WSTOPSIG(status) == (SIGTRAP | 0x80); }
bool eventStop(int status) { return WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP; }

std::string readString(pid_t pid, std::uint64_t addr) {
    std::string s;
    char buf[256];
    while (addr && s.size() < 4096) {
        iovec local{buf, sizeof buf};
        iovec remote{reinterpret_cast<void*>(addr + s.size()), sizeof buf};
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n <= 0) break;
        auto end = std::find(buf, buf + n, '\0');
        s.append(buf, end);
        if (end != buf + n) break;
    }
    return s;
}

}  // namespace

HijackedThread::HijackedThread(pid_t pid, pid_t tid) : m_pid(pid), m_tid(tid) {
    // Never PTRACE_O_EXITKILL: if aioscope dies the thread must go on.
    int err = 0;
    switch (seizeThread(pid, tid, PTRACE_O_TRACESYSGOOD, err)) {
        case Seize::seized: break;
        case Seize::gone:
            throw InspectError(Errc::process_exited, "the target's thread " + std::to_string(tid) + " exited");
        case Seize::denied:
            if (err == EPERM) throw InspectError(Errc::permission_denied, ptraceRefusedMessage(pid, tid));
            throw InspectError(Errc::internal, "cannot attach to thread " + std::to_string(tid) + ": " + std::strerror(err));
    }
    m_seized = true;
    try {
        stop();
    } catch (...) {
        release();
        throw;
    }
}

HijackedThread::~HijackedThread() { release(); }

void HijackedThread::stop() {
    ptrace(PTRACE_INTERRUPT, m_tid, nullptr, nullptr);
    auto deadline = Clock::now() + kStopWithin;
    for (;;) {
        int status = 0;
        if (!waitThread(m_tid, deadline, status)) {
            throw InspectError(Errc::internal, "thread " + std::to_string(m_tid) +
                                                   " did not stop within 2 s (uninterruptible sleep?)");
        }
        if (gone(status)) {
            m_seized = false;
            throw InspectError(Errc::process_exited, "the target's thread " + std::to_string(m_tid) + " exited");
        }
        if (eventStop(status)) break;  // our interrupt, or a group stop (SIGSTOP): stopped either way
        // A signal on its way in (a signal-delivery-stop): deliver it now;
        // the interrupt stays pending and stops the thread right after.
        int sig = syscallStop(status) ? 0 : WSTOPSIG(status);
        ptrace(PTRACE_CONT, m_tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
    }
    m_stopped = true;
    if (ptrace(PTRACE_GETREGS, m_tid, nullptr, &m_saved) != 0) {
        throw InspectError(Errc::internal, "cannot read the registers of thread " + std::to_string(m_tid));
    }
}

void HijackedThread::release() {
    if (!m_seized) return;
    if (!m_stopped) {
        // Running (a nudge, or the stub): stop it to detach. If it does not
        // stop in time it stays traced until aioscope exits, which detaches
        // it; its state is valid either way.
        ptrace(PTRACE_INTERRUPT, m_tid, nullptr, nullptr);
        auto deadline = Clock::now() + kReleaseWithin;
        int status = 0;
        while (waitThread(m_tid, deadline, status)) {
            if (gone(status)) {
                m_seized = false;
                return;
            }
            if (eventStop(status)) {
                m_stopped = true;
                break;
            }
            int sig = syscallStop(status) ? 0 : WSTOPSIG(status);
            ptrace(PTRACE_CONT, m_tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
        }
        if (!m_stopped) return;
    }
    ptrace(PTRACE_DETACH, m_tid, nullptr, nullptr);
    m_seized = false;
    m_stopped = false;
}

void HijackedThread::nudge(int microseconds) {
    if (ptrace(PTRACE_CONT, m_tid, nullptr, nullptr) != 0) {
        throw InspectError(Errc::process_exited, "the target's thread " + std::to_string(m_tid) + " went away");
    }
    m_stopped = false;
    sleepUs(microseconds);
    stop();
}

bool HijackedThread::poke(std::uint64_t addr, const void* data, std::size_t len) {
    const auto* bytes = static_cast<const std::uint8_t*>(data);
    for (std::size_t done = 0; done < len;) {
        std::uint64_t at = addr + done;
        std::uint64_t word = at & ~std::uint64_t{7};
        std::size_t skip = at - word;
        std::size_t n = std::min<std::size_t>(8 - skip, len - done);
        unsigned long value = 0;
        if (skip || n < 8) {
            errno = 0;
            value = static_cast<unsigned long>(ptrace(PTRACE_PEEKDATA, m_tid, reinterpret_cast<void*>(word), nullptr));
            if (errno != 0) return false;
        }
        std::memcpy(reinterpret_cast<std::uint8_t*>(&value) + skip, bytes + done, n);
        if (ptrace(PTRACE_POKEDATA, m_tid, reinterpret_cast<void*>(word), reinterpret_cast<void*>(value)) != 0) {
            return false;
        }
        done += n;
    }
    return true;
}

HijackedThread::Outcome HijackedThread::runStub(std::uint64_t stubAddr, const Resume& resume, const XstateFormat& xstate,
                                                const StubCall& call, std::chrono::milliseconds within,
                                                const std::function<bool()>& interrupted) {
    StubPlan plan = planStub(m_saved, resume, xstate, call, stubAddr);
    // The block first, while the thread still has its own registers: it is
    // below everything the thread uses.
    if (!writeTargetMemory(m_pid, plan.blockAddr, plan.block.data(), plan.block.size())) {
        throw InspectError(Errc::internal, "cannot write below the stack of thread " + std::to_string(m_tid));
    }
    // From this call on the thread's registers start the stub, which returns
    // it to `resume` by itself: a valid state at every instant.
    if (ptrace(PTRACE_SETREGS, m_tid, nullptr, &plan.entry) != 0) {
        throw InspectError(Errc::internal, "cannot set the registers of thread " + std::to_string(m_tid));
    }
    Outcome out;
    if (ptrace(PTRACE_SYSCALL, m_tid, nullptr, nullptr) != 0) {
        out.why = "the thread could not be resumed";
        release();
        return out;
    }
    m_stopped = false;
    const std::uint64_t marker = stubAddr + stubCode().markerOffset;
    auto deadline = Clock::now() + within;
    for (;;) {
        if (interrupted && interrupted()) {
            out.why = "interrupted";
            break;
        }
        int status = 0;
        auto slice = std::min(deadline, Clock::now() + std::chrono::milliseconds(20));
        if (!waitThread(m_tid, slice, status)) {
            if (Clock::now() >= deadline) {
                out.why = "it did not finish within " + std::to_string(within.count() / 1000) + " s";
                break;
            }
            continue;
        }
        if (gone(status)) {
            m_seized = false;
            throw InspectError(Errc::process_exited, "the target exited while loading the agent");
        }
        int sig = 0;
        if (syscallStop(status)) {
            user_regs_struct now{};
            if (ptrace(PTRACE_GETREGS, m_tid, nullptr, &now) == 0 && now.rip == marker &&
                static_cast<long>(now.orig_rax) == kStubMarkerSyscall) {
                iovec local{&out.results, sizeof out.results};
                iovec remote{reinterpret_cast<void*>(plan.blockAddr + kStubResultsOffset), sizeof out.results};
                out.finished = process_vm_readv(m_pid, &local, 1, &remote, 1, 0) == sizeof out.results;
                if (out.finished && !out.results.handle) out.dlerror = readString(m_pid, out.results.error);
                m_stopped = true;
                break;
            }
        } else if (eventStop(status)) {
            // A group stop (SIGSTOP to the target): let it be; the stub
            // finishes once the process is continued.
            m_stopped = true;
            out.why = "the target was stopped by a signal";
            break;
        } else {
            sig = WSTOPSIG(status);  // a signal for the target: delivered now
        }
        if (ptrace(PTRACE_SYSCALL, m_tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig))) != 0) {
            m_seized = false;  // gone under us
            throw InspectError(Errc::process_exited, "the target exited while loading the agent");
        }
    }
    release();  // at the marker, the stub goes on from getpid and returns
    return out;
}

}  // namespace aioscope::cli
