#include "inject/ptrace_injector.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>

#include "errors.h"
#include "inject/hijack.h"
#include "mem/process_reader.h"
#include "mem/remote.h"
#include "target/elf_file.h"
#include "target/proc.h"

namespace aioscope::cli {

namespace {

constexpr int kMaxTries = 400;               // safe-point attempts, across threads
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
    for (const auto& m : proc.maps()) {
        std::string base = m.cleanPath().substr(m.cleanPath().rfind('/') + 1);
        if (!(base.starts_with("libc.so") || base.starts_with("libc-") || base.starts_with("libdl")) || seen[m.path]) {
            continue;
        }
        seen[m.path] = true;
        for (const auto& path : proc.openablePaths(m)) {
            auto elf = readElfFacts(path, {}, wanted);
            if (!elf || elf->inode != m.inode) continue;
            std::uint64_t bias = 0;
            for (const auto& mm : proc.maps()) {
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

std::string readCString(pid_t pid, std::uint64_t addr) {
    ProcessReader reader(pid);
    Remote mem(reader);
    std::string s;
    char c;
    while (addr && s.size() < 1024 && mem.tryRead(addr + s.size(), &c, 1) && c) s.push_back(c);
    return s;
}

}  // namespace

void injectAgent(pid_t pid, const std::string& agentPath, const std::string& config) {
    ProcFs proc(pid);
    LoaderFunctions fn = findLoader(proc);
    // The main thread first; a busy one reaches a safe point soon.
    auto tids = proc.threads();
    std::stable_partition(tids.begin(), tids.end(), [&](pid_t t) { return t == pid; });
    std::string lastReason = "no thread to use";
    int tries = 0;
    for (std::size_t round = 0; tries < kMaxTries; ++round) {
        pid_t tid = tids[round % tids.size()];
        std::unique_ptr<HijackedThread> thread;
        try {
            thread = std::make_unique<HijackedThread>(pid, tid);
        } catch (const InspectError& e) {
            if (e.code() == Errc::permission_denied) throw;
            tids = proc.threads();  // it exited: look again
            if (tids.empty()) throw;
            continue;
        }
        for (int i = 0; i < 25 && tries < kMaxTries; ++i, ++tries) {
            if (atSafePoint(pid, *thread, lastReason)) {
                // The strings the calls need, below the thread's stack.
                const std::string symbol = "aioscope_agent_start";
                std::uint64_t path = thread->placeData(agentPath + '\0' + symbol + '\0' + config + '\0');
                std::uint64_t symbolAt = path + agentPath.size() + 1;
                std::uint64_t configAt = symbolAt + symbol.size() + 1;
                std::uint64_t mode = RTLD_NOW | (fn.libcPrivate ? kRtldDlopen : 0);
                std::uint64_t handle = thread->call(fn.dlopen, {path, mode});
                if (!handle) {
                    std::string why = fn.dlerror ? readCString(pid, thread->call(fn.dlerror, {})) : "";
                    throw InspectError(Errc::internal, "the target could not load the agent" + (why.empty() ? "" : ": " + why));
                }
                std::uint64_t start = thread->call(fn.dlsym, {handle, symbolAt});
                if (!start) throw InspectError(Errc::internal, "the agent in the target has no aioscope_agent_start");
                std::uint64_t rc = thread->call(start, {configAt});
                if (static_cast<std::int32_t>(rc) != 0) throw InspectError(Errc::internal, "the agent refused its configuration");
                return;  // the thread is restored and released here
            }
            thread->nudge(1000 + 500 * (i % 4));
        }
    }
    throw InspectError(Errc::internal, "no thread of the target reached a safe point to load the agent (" + lastReason + ")");
}

}  // namespace aioscope::cli
