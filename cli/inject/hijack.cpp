#include "inject/hijack.h"

#include <elf.h>
#include <libunwind-ptrace.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>

#include "errors.h"
#include "inject/target_files.h"
#include "target/proc.h"

namespace aioscope::cli {

namespace {

constexpr std::size_t kRedZone = 128;
constexpr std::size_t kXstateMax = 1 << 14;

void sleepUs(int us) {
    timespec t{0, us * 1000L};
    nanosleep(&t, nullptr);
}

// Waits for the thread's next stop; returns the wait status.
int waitStop(pid_t tid, int timeoutMs) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    for (;;) {
        int status = 0;
        pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
        if (r == tid) return status;
        if (r < 0 && errno != EINTR) throw InspectError(Errc::process_exited, "the target's thread went away");
        if (std::chrono::steady_clock::now() > deadline) throw InspectError(Errc::internal, "the target's thread did not stop in time");
        sleepUs(200);
    }
}

}  // namespace

HijackedThread::HijackedThread(pid_t pid, pid_t tid) : m_pid(pid), m_tid(tid) {
    if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
        if (errno == EPERM) {
            throw InspectError(Errc::permission_denied,
                               "permission denied attaching to process " + std::to_string(pid) + " with ptrace: " + permissionAdvice());
        }
        throw InspectError(Errc::no_such_process, "cannot attach to thread " + std::to_string(tid) + ": " + std::strerror(errno));
    }
    m_seized = true;
    stop();
}

void HijackedThread::stop() {
    ptrace(PTRACE_INTERRUPT, m_tid, nullptr, nullptr);
    for (;;) {
        int status = waitStop(m_tid, 2000);
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            m_seized = false;
            throw InspectError(Errc::process_exited, "the target exited");
        }
        if (WIFSTOPPED(status) && (status >> 16) != PTRACE_EVENT_STOP && WSTOPSIG(status) != SIGTRAP) {
            // A signal arrived first: keep it for later and stop again.
            m_pendingSignal = WSTOPSIG(status);
            ptrace(PTRACE_INTERRUPT, m_tid, nullptr, nullptr);
            ptrace(PTRACE_CONT, m_tid, nullptr, nullptr);
            continue;
        }
        break;
    }
    save();
}

void HijackedThread::save() {
    if (ptrace(PTRACE_GETREGS, m_tid, nullptr, &m_saved) != 0) throw InspectError(Errc::internal, "cannot read the thread's registers");
    m_xstate.assign(kXstateMax, 0);
    iovec io{m_xstate.data(), m_xstate.size()};
    if (ptrace(PTRACE_GETREGSET, m_tid, reinterpret_cast<void*>(NT_X86_XSTATE), &io) == 0) {
        m_xstate.resize(io.iov_len);
    } else {
        m_xstate.clear();
    }
}

void HijackedThread::restore() {
    if (!m_dirty) return;
    ptrace(PTRACE_SETREGS, m_tid, nullptr, &m_saved);  // orig_rax included: an interrupted syscall restarts
    if (!m_xstate.empty()) {
        iovec io{m_xstate.data(), m_xstate.size()};
        ptrace(PTRACE_SETREGSET, m_tid, reinterpret_cast<void*>(NT_X86_XSTATE), &io);
    }
    m_dirty = false;
}

void HijackedThread::nudge(int microseconds) {
    restore();
    m_dataBottom = 0;
    ptrace(PTRACE_CONT, m_tid, nullptr, nullptr);
    sleepUs(microseconds);
    stop();
}

HijackedThread::~HijackedThread() {
    if (!m_seized) return;
    restore();
    ptrace(PTRACE_DETACH, m_tid, nullptr, reinterpret_cast<void*>(static_cast<long>(m_pendingSignal)));
}

std::uint64_t HijackedThread::placeData(const std::string& data) {
    std::uint64_t at = (m_saved.rsp - kRedZone - data.size()) & ~std::uint64_t{15};
    if (!writeTargetMemory(m_pid, at, data.data(), data.size())) {
        throw InspectError(Errc::internal, "cannot write to the target's stack");
    }
    m_dataBottom = at;
    return at;
}

std::uint64_t HijackedThread::call(std::uint64_t fn, const std::vector<std::uint64_t>& args) {
    user_regs_struct r = m_saved;
    std::uint64_t sp = (m_dataBottom ? m_dataBottom : m_saved.rsp - kRedZone) & ~std::uint64_t{15};
    // At function entry rsp is 8 past a 16-byte boundary: the fake return
    // address 0 makes the callee's `ret` fault, which stops it for us.
    sp -= 8;
    std::uint64_t zero = 0;
    if (!writeTargetMemory(m_pid, sp, &zero, sizeof zero)) throw InspectError(Errc::internal, "cannot write to the target's stack");
    r.rsp = sp;
    r.rip = fn;
    r.rax = 0;
    r.orig_rax = static_cast<unsigned long long>(-1);  // no syscall restart at the new rip
    r.eflags &= ~(1ull << 10);                          // the ABI wants DF clear
    unsigned long long* argRegs[] = {&r.rdi, &r.rsi, &r.rdx, &r.rcx, &r.r8, &r.r9};
    for (std::size_t i = 0; i < args.size() && i < 6; ++i) *argRegs[i] = args[i];
    m_dirty = true;
    if (ptrace(PTRACE_SETREGS, m_tid, nullptr, &r) != 0 || ptrace(PTRACE_CONT, m_tid, nullptr, nullptr) != 0) {
        throw InspectError(Errc::internal, "cannot start the call in the target");
    }
    for (;;) {
        int status = waitStop(m_tid, 15000);
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            m_seized = false;
            throw InspectError(Errc::process_exited, "the target exited during injection");
        }
        int sig = WSTOPSIG(status);
        if (sig == SIGSEGV) {
            user_regs_struct out{};
            ptrace(PTRACE_GETREGS, m_tid, nullptr, &out);
            if (out.rip == 0) return out.rax;
            throw InspectError(Errc::internal, "the call crashed in the target (the thread was restored)");
        }
        if ((status >> 16) != PTRACE_EVENT_STOP && sig != SIGTRAP) m_pendingSignal = sig;  // deliver later
        ptrace(PTRACE_CONT, m_tid, nullptr, nullptr);
    }
}

bool atSafePoint(pid_t pid, const HijackedThread& thread, std::string& why) {
    // System calls in which a thread holds no libc lock (x86_64 numbers).
    static const std::set<long> kBlocking{0, 7, 23, 34, 35, 43, 45, 47, 61, 128, 230, 232, 270, 271, 281, 288, 441};
    const user_regs_struct& r = thread.registers();
    long syscallNr = static_cast<long>(r.orig_rax);
    ProcFs proc(pid);
    auto maps = proc.maps();
    auto kind = [&](std::uint64_t ip) {
        for (const auto& m : maps) {
            if (ip < m.start || ip >= m.end) continue;
            std::string base = m.cleanPath().substr(m.cleanPath().rfind('/') + 1);
            if (base.starts_with("ld-linux") || base.starts_with("ld-")) return 'L';
            if (base.starts_with("libc.so") || base.starts_with("libc-")) return 'c';
            return 'o';
        }
        return 'o';
    };
    std::vector<std::uint64_t> ips;
    unw_addr_space_t as = unw_create_addr_space(&_UPT_accessors, 0);
    void* upt = _UPT_create(thread.tid());
    unw_cursor_t cursor;
    if (as && upt && unw_init_remote(&cursor, as, upt) == 0) {
        do {
            unw_word_t ip = 0;
            if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || !ip) break;
            ips.push_back(ip);
        } while (ips.size() < 8 && unw_step(&cursor) > 0);
    }
    if (upt) _UPT_destroy(upt);
    if (as) unw_destroy_addr_space(as);
    if (ips.empty()) {
        why = "its stack could not be unwound";
        return false;
    }
    std::size_t inLibc = 0;
    while (inLibc < ips.size() && kind(ips[inLibc]) != 'o') {
        if (kind(ips[inLibc]) == 'L') {
            why = "it is inside the dynamic loader";
            return false;
        }
        ++inLibc;
    }
    if (inLibc == 0) return true;
    if (inLibc == 1 && kBlocking.count(syscallNr)) return true;
    why = "it is inside libc (system call " + std::to_string(syscallNr) + ")";
    return false;
}

}  // namespace aioscope::cli
