#include "inject/remote_exec.h"

#include <algorithm>
#include <cstring>

#include "errors.h"
#include "inject/target_files.h"
#include "walk/interpreters.h"

namespace aioscope::cli {

namespace {
constexpr std::uint64_t kPleaseStopBit = 1u << 5;  // _PY_EVAL_PLEASE_STOP_BIT
}

bool RemoteExec::supported(const Inspector& target) { return target.runtime().layout.remoteDebug.available; }

RemoteExec::RemoteExec(Inspector& target) : m_target(target) {
    const auto& R = target.runtime().layout.remoteDebug;
    if (!R.available) throw InspectError(Errc::unsupported_version, "this Python has no PEP 768 remote execution");
}

std::vector<RemoteExec::Thread> RemoteExec::threads() {
    const ResolvedRuntime& rt = m_target.runtime();
    const Layout& L = rt.layout;
    Remote& mem = m_target.reader().memory();
    m_target.reader().forget();
    auto interps = readInterpreters(mem, L, rt.runtime);
    if (interps.empty()) throw InspectError(Errc::not_python, "the target has no interpreter");
    const InterpreterState& main = interps.back();  // the first created is last in the list
    auto enabled = mem.get<std::int32_t>(main.addr + L.remoteDebug.enabled, "remote_debug");
    if (enabled != 1) {
        throw InspectError(Errc::permission_denied,
                           "the target disabled remote debugging (PYTHON_DISABLE_REMOTE_DEBUG, -X "
                           "disable-remote-debug, or a build without it); aioscope will not inject into it");
    }
    Addr mainThread = mem.ptr(main.addr + L.remoteDebug.threadsMain, "threads.main");
    std::vector<Thread> out;
    // Threads come and go: only a list that reads the same twice is written to.
    for (const auto& t : readThreadsConsistent(mem, m_target.reader().freshReader(), L, main)) {
        out.push_back({t.addr, t.addr == mainThread, t.nativeId.value_or(0)});
    }
    return out;
}

void RemoteExec::requireEnabled() { threads(); }

bool RemoteExec::request(const std::string& scriptPath, pid_t tid) {
    const auto& R = m_target.runtime().layout.remoteDebug;
    if (static_cast<Off>(scriptPath.size()) >= R.scriptPathSize) {
        throw InspectError(Errc::internal, "the loader's path is too long for PEP 768: " + scriptPath);
    }
    Remote& mem = m_target.reader().memory();
    for (const auto& t : threads()) {
        if (t.nativeId != tid) continue;
        Addr support = t.tstate + static_cast<Addr>(R.support);
        std::vector<char> path(scriptPath.begin(), scriptPath.end());
        path.push_back('\0');
        std::int32_t one = 1;
        std::uint64_t breaker = mem.get<std::uint64_t>(t.tstate + R.evalBreaker, "eval_breaker") | kPleaseStopBit;
        // Path first, then the flag, then the breaker: the interpreter reads
        // them in the opposite order.
        if (!writeTargetMemory(m_target.pid(), support + R.scriptPath, path.data(), path.size()) ||
            !writeTargetMemory(m_target.pid(), support + R.pendingCall, &one, sizeof one) ||
            !writeTargetMemory(m_target.pid(), t.tstate + R.evalBreaker, &breaker, sizeof breaker)) {
            throw InspectError(Errc::permission_denied,
                               "cannot write into the target's memory: " + permissionAdvice());
        }
        m_requested.push_back(t.tstate);
        return true;
    }
    return false;
}

int RemoteExec::withdrawStale(const std::string& stagingPrefix) {
    const auto& R = m_target.runtime().layout.remoteDebug;
    Remote& mem = m_target.reader().memory();
    int withdrawn = 0;
    std::int32_t zero = 0;
    for (const auto& t : threads()) {
        Addr support = t.tstate + static_cast<Addr>(R.support);
        std::int32_t pending = 0;
        if (!mem.tryRead(support + R.pendingCall, &pending, sizeof pending) || pending != 1) continue;
        std::vector<char> path(static_cast<std::size_t>(R.scriptPathSize), '\0');
        if (!mem.tryRead(support + R.scriptPath, path.data(), path.size())) continue;
        std::string script(path.data(), strnlen(path.data(), path.size()));
        if (script.starts_with(stagingPrefix) &&
            writeTargetMemory(m_target.pid(), support + R.pendingCall, &zero, sizeof zero)) {
            ++withdrawn;
        }
    }
    return withdrawn;
}

bool RemoteExec::withdraw() {
    const auto& R = m_target.runtime().layout.remoteDebug;
    std::int32_t zero = 0;
    bool taken = false;
    try {
        Remote& mem = m_target.reader().memory();
        m_target.reader().forget();
        for (const auto& t : threads()) {
            Addr flag = t.tstate + static_cast<Addr>(R.support + R.pendingCall);
            bool asked = std::find(m_requested.begin(), m_requested.end(), t.tstate) != m_requested.end();
            std::int32_t pending = 1;
            // The interpreter clears the flag when it takes the request.
            if (asked && mem.tryRead(flag, &pending, sizeof pending) && pending == 0) taken = true;
            writeTargetMemory(m_target.pid(), flag, &zero, sizeof zero);
        }
    } catch (const InspectError&) {
        // The target may be gone; nothing left to withdraw then.
    }
    m_requested.clear();
    return taken;
}

}  // namespace aioscope::cli
