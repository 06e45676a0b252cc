#include "inject/ptrace_injector.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <sstream>
#include <utility>
#include <vector>

#include "errors.h"
#include "inject/hijack.h"
#include "inject/return_stub.h"
#include "inject/safe_point.h"
#include "inject/stub_site.h"
#include "target/elf_file.h"
#include "target/proc.h"

namespace aioscope::cli {

namespace {

constexpr int kMaxTries = 400;  // safe-point attempts, across threads
constexpr auto kSafePointWithin = std::chrono::seconds(10);
constexpr auto kStubWithin = std::chrono::milliseconds(10000);
constexpr std::uint64_t kRtldDlopen = 0x80000000;  // __RTLD_DLOPEN for __libc_dlopen_mode

struct LoaderFunctions {
    std::uint64_t dlopen = 0, dlsym = 0, dlerror = 0;
    bool libcPrivate = false;  // glibc < 2.34 without libdl: __libc_dlopen_mode
};

// dlopen and friends, from the target's own libc (or libdl), opened through
// /proc/PID so that a target in a container uses its own.
LoaderFunctions findLoader(const ProcFs& proc) {
    LoaderFunctions out;
    const std::vector<std::string> wanted{"dlopen", "dlsym", "dlerror", "__libc_dlopen_mode", "__libc_dlsym"};
    std::map<std::string, bool> seen;
    auto maps = proc.maps();
    for (const auto& m : maps) {
        std::string base = m.cleanPath().substr(m.cleanPath().rfind('/') + 1);
        if (!(base.starts_with("libc.so") || base.starts_with("libc-") || base.starts_with("libdl")) || seen[m.path]) {
            continue;
        }
        seen[m.path] = true;
        for (const auto& path : proc.openablePaths(m)) {
            auto elf = readElfFacts(path, {}, wanted);
            if (!elf || elf->inode != m.inode) continue;
            std::uint64_t bias = 0;
            for (const auto& mm : maps) {
                if (mm.path == m.path && mm.offset == 0) {
                    if (auto b = loadBias(mm, elf->loads)) bias = *b;
                    break;
                }
            }
            auto sym = [&](const char* n) { return elf->symbols.count(n) ? bias + elf->symbols[n] : 0; };
            if (!out.dlopen) out.dlopen = sym("dlopen");
            if (!out.dlsym) out.dlsym = sym("dlsym");
            if (!out.dlerror) out.dlerror = sym("dlerror");
            if (!out.dlopen && sym("__libc_dlopen_mode")) {
                out.dlopen = sym("__libc_dlopen_mode");
                out.dlsym = sym("__libc_dlsym");
                out.libcPrivate = true;
            }
            break;
        }
    }
    if (!out.dlopen || !out.dlsym) {
        throw InspectError(Errc::internal, "cannot find dlopen in the target's libc (a statically linked program?)");
    }
    return out;
}

// What the stub cannot do: threads with a user-space shadow stack (CET)
// would refuse its way back, and strict seccomp forbids dlopen altogether.
void refuseUnsupported(const ProcFs& proc) {
    auto status = readSmallFile(proc.path("status"), 1 << 16);
    if (!status) return;
    std::istringstream in(*status);
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("x86_Thread_features:") && line.find("shstk") != std::string::npos) {
            throw InspectError(Errc::internal, "the target uses x86 shadow stacks (CET), which aioscope's ptrace "
                                               "injection does not support");
        }
        if (line.starts_with("Seccomp:") && line.find('1') != std::string::npos && line.find('2') == std::string::npos) {
            throw InspectError(Errc::permission_denied, "the target runs under strict seccomp: it cannot load a library");
        }
    }
}

// Threads blocked in a system call first (idle in epoll, asleep, waiting
// on a lock: usually safe at once), the main thread first among equals.
// Each thread's state is read once, before sorting: threads change state
// while the list is sorted, and a comparison whose answer changes breaks
// the sort's invariants (its insertion step then walks past the start of
// the list: attach corrupted its heap about once in 150 runs against a
// busy target, and picked thread 0).
std::vector<pid_t> threadsByPreference(pid_t pid, const ProcFs& proc) {
    std::vector<std::pair<int, pid_t>> ranked;  // 0 asleep main, 1 asleep, 2 main, 3 other
    for (pid_t tid : proc.threads()) ranked.push_back({(procState(pid, tid) == 'S' ? 0 : 2) + (tid == pid ? 0 : 1), tid});
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<pid_t> tids;
    for (const auto& r : ranked) tids.push_back(r.second);
    return tids;
}

// Whether taking or nudging a thread failed for good: a refusal, or the
// whole target ending (else another thread, or this one later, may do).
bool failedForGood(const InspectError& e, pid_t pid) {
    return e.code() == Errc::permission_denied || (e.code() == Errc::process_exited && processEnding(pid));
}

}  // namespace

InjectResult injectAgent(pid_t pid, const std::string& agentPath, const std::string& config,
                         const std::function<bool()>& interrupted) {
    ProcFs proc(pid);
    refuseUnsupported(proc);
    LoaderFunctions fn = findLoader(proc);
    XstateFormat xstate = hostXstateFormat();
    StubCall call;
    call.dlopen = fn.dlopen;
    call.dlsym = fn.dlsym;
    call.dlerror = fn.dlerror;
    call.mode = RTLD_NOW | (fn.libcPrivate ? kRtldDlopen : 0);
    call.path = agentPath;
    call.symbol = "aioscope_agent_start";
    call.config = config;

    auto judge = std::make_unique<SafePointJudge>(pid);
    std::optional<std::uint64_t> stub;
    auto tids = threadsByPreference(pid, proc);
    std::string lastReason = "no thread to use";
    auto deadline = std::chrono::steady_clock::now() + kSafePointWithin;
    int tries = 0;
    for (std::size_t round = 0; tries < kMaxTries && std::chrono::steady_clock::now() < deadline; ++round) {
        if (interrupted && interrupted()) throw InspectError(Errc::interrupted, "interrupted before the agent was loaded");
        if (tids.empty()) throw InspectError(Errc::process_exited, "the target has no threads left");
        pid_t tid = tids[round % tids.size()];
        std::unique_ptr<HijackedThread> thread;
        try {
            thread = std::make_unique<HijackedThread>(pid, tid);
        } catch (const InspectError& e) {
            if (failedForGood(e, pid)) throw;
            ++tries;
            lastReason = e.what();
            tids = proc.threads();  // it exited (or would not stop): look again
            continue;
        }
        for (int i = 0; i < 25 && tries < kMaxTries; ++i, ++tries) {
            if (interrupted && interrupted()) throw InspectError(Errc::interrupted, "interrupted before the agent was loaded");
            if (tries % 50 == 49) {
                // Libraries loaded since (a PEP 768 loader's ctypes, say)
                // would look like code without unwind information.
                judge = std::make_unique<SafePointJudge>(pid);
                if (stub) judge->setStubRange(*stub, *stub + stubCode().size);
            }
            auto resume = resumeFrom(thread->registers());
            Verdict verdict = judge->judge(tid, thread->registers());
            if (verdict.safe && !resume) verdict = {false, "it is in a system call entered other than by `syscall`"};
            if (verdict.safe) {
                if (!stub) {
                    stub = placeStub(pid, *thread);
                    judge->setStubRange(*stub, *stub + stubCode().size);
                }
                auto outcome = thread->runStub(*stub, *resume, xstate, call, kStubWithin, interrupted);
                if (!outcome.finished) {
                    if (interrupted && interrupted()) {
                        throw InspectError(Errc::interrupted, "interrupted while the agent was loading");
                    }
                    return {false, outcome.why};
                }
                if (!outcome.results.handle) {
                    throw InspectError(Errc::internal, "the target could not load the agent" +
                                                           (outcome.dlerror.empty() ? "" : ": " + outcome.dlerror));
                }
                if (!outcome.results.start) throw InspectError(Errc::internal, "the agent in the target has no aioscope_agent_start");
                if (static_cast<std::int32_t>(outcome.results.rc) != 0) {
                    throw InspectError(Errc::internal, "the agent refused its configuration");
                }
                return {true, ""};
            }
            lastReason = verdict.why;
            try {
                thread->nudge(1000 + 500 * (i % 4));
            } catch (const InspectError& e) {
                if (failedForGood(e, pid)) throw;
                lastReason = e.what();  // it exited or would not stop again: another thread
                tids = proc.threads();
                break;
            }
        }
    }
    throw InspectError(Errc::internal, "no thread of the target reached a safe point to load the agent (" + lastReason + ")");
}

}  // namespace aioscope::cli
