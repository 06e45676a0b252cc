#include "inspect.h"

#include <chrono>
#include <thread>

#include "target/pause.h"
#include "target/proc.h"

namespace aioscope {

namespace {

// Distinguishes "cannot read at all" (permission) from "not Python" before
// any interpretation, so the user gets the real reason.
void probeAccess(Remote& mem, const std::vector<Mapping>& maps) {
    for (const auto& m : maps) {
        if (m.perms[0] != 'r') continue;
        std::uint8_t byte;
        mem.tryRead(m.start, &byte, 1);  // throws on denied / gone
        return;
    }
}

// A runtime without an interpreter is also what a process shows between
// the end of finalization and its exit: if it ends within a moment, say so.
ResolvedRuntime resolveOrExited(Remote& mem, const RuntimeLocation& location, pid_t pid) {
    try {
        return resolveRuntime(mem, location);
    } catch (const InspectError& e) {
        if (e.code() != Errc::not_python) throw;
        for (int i = 0; i < 20; ++i) {
            char state = procState(pid);
            if (state == 0 || state == 'Z' || state == 'X') {
                throw InspectError(Errc::process_exited, "process " + std::to_string(pid) + " exited during the read");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        throw;
    }
}

}  // namespace

Inspector::Inspector(pid_t pid) : m_pid(pid), m_process(pid) {
    ProcFs proc(pid);
    proc.requireAlive();
    auto maps = proc.maps();
    Remote mem(m_process);
    probeAccess(mem, maps);
    // The likeliest file first; one whose runtime never ran (a libpython a
    // static interpreter's program loaded) gives way to the next.
    auto locations = locateRuntimes(proc, maps);
    std::optional<ResolvedRuntime> resolved;
    for (std::size_t i = 0; i < locations.size() && !resolved; ++i) {
        try {
            resolved = resolveOrExited(mem, locations[i], pid);
            m_location = locations[i];
        } catch (const InspectError& e) {
            if (e.code() != Errc::not_python || i + 1 == locations.size()) throw;
        }
    }
    ResolvedRuntime runtime = std::move(*resolved);
    PythonInfo python;
    python.executable = m_location.executable;
    python.runtimeFile = m_location.file;
    python.sharedLibpython = m_location.sharedLibpython;
    m_reader = std::make_unique<SnapshotReader>(m_process, std::move(runtime), std::move(python), pid);
    // An Inspector reads once or twice (dump, run's timeout dump, demo).
    m_reader->releaseAfterRead(true);
}

Snapshot Inspector::snapshot(const InspectOptions& options) {
    auto start = std::chrono::steady_clock::now();
    std::unique_ptr<ProcessPause> pause;
    if (options.pause) pause = std::make_unique<ProcessPause>(m_pid);
    Snapshot snap = m_reader->read(options.maxAttempts);
    if (pause) snap.pausedMs = pause->resume();
    snap.durationMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return snap;
}

}  // namespace aioscope
