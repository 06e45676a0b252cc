#include "inspect.h"

#include <chrono>
#include <unordered_map>

#include "analysis/findings.h"
#include "layout/asyncio_offsets.h"
#include "target/pause.h"
#include "walk/interpreters.h"
#include "walk/tasks.h"
#include "walk/native_ids.h"
#include "walk/python_facts.h"

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

double nowUnix() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

Inspector::Inspector(pid_t pid) : m_proc(pid), m_reader(pid), m_cache(m_reader), m_mem(m_cache) {
    m_proc.requireAlive();
    auto maps = m_proc.maps();
    probeAccess(m_mem, maps);
    m_location = locateRuntime(m_proc, maps);
    m_runtime = resolveRuntime(m_mem, m_location);
    m_objects = std::make_unique<Objects>(m_mem, m_runtime.layout);
    m_codes = std::make_unique<CodeReader>(*m_objects);
    m_frames = std::make_unique<FrameWalker>(*m_codes, *m_objects);
}

Snapshot Inspector::snapshot(const InspectOptions& options) {
    Snapshot snap;
    snap.pid = m_proc.pid();
    snap.capturedAt = nowUnix();
    auto start = std::chrono::steady_clock::now();
    std::unique_ptr<ProcessPause> pause;
    if (options.pause) pause = std::make_unique<ProcessPause>(m_proc.pid());

    int attempts = std::max(1, options.maxAttempts);
    for (int attempt = 1; attempt <= attempts; ++attempt) {
        m_cache.clear();
        m_codes->clear();
        Snapshot trial = snap;
        bool torn = false;
        try {
            readOnce(trial, attempt == attempts, torn);
        } catch (const BadRead& e) {
            torn = true;
            if (attempt == attempts) trial.warnings.push_back(std::string("incomplete read: ") + e.what());
        }
        trial.attempts = attempt;
        if (!torn || attempt == attempts) {
            snap = std::move(trial);
            break;
        }
    }
    if (pause) snap.pausedMs = pause->resume();
    snap.findings = analyze(snap);
    snap.durationMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    m_cache.clear();
    return snap;
}

void Inspector::fillPythonInfo(Snapshot& snap) {
    PythonInfo& py = snap.python;
    PythonVersion v = m_runtime.version;
    py.executable = m_location.executable;
    py.runtimeFile = m_location.file;
    py.sharedLibpython = m_location.sharedLibpython;
    py.layoutSource = m_runtime.layout.source;
    py.hexversion = v.hex;
    py.version = v.str();
}

// 3.14+ publish the Task layout in the _asyncio module's .AsyncioDebug
// section; _asyncio may be imported after we first looked.
void Inspector::ensureAsyncioLayout(Snapshot& snap) {
    Layout& L = m_runtime.layout;
    if (L.asyncio.available || L.asyncio.registry != TaskRegistryModel::linkedLists) return;
    auto maps = m_proc.maps();
    const std::vector<std::string> symbols{"_Py_AsyncioDebug", "_AsyncioDebug"};
    auto addr = findInMappedFiles(m_proc, maps, "_asyncio", ".AsyncioDebug", symbols);
    if (!addr) {
        std::string runtimeFile = m_location.file.substr(m_location.file.rfind('/') + 1);
        addr = findInMappedFiles(m_proc, maps, runtimeFile, ".AsyncioDebug", symbols);
    }
    if (!addr) return;  // asyncio not imported: no tasks to show
    std::vector<std::uint8_t> blob(kAsyncioDebugSize);
    if (!m_mem.tryRead(*addr, blob.data(), blob.size())) return;
    if (auto problem = applyAsyncioDebugOffsets(L, blob)) snap.warnings.push_back("asyncio tasks unavailable: " + *problem);
}

void Inspector::readOnce(Snapshot& snap, bool lastAttempt, bool& torn) {
    const Layout& L = m_runtime.layout;
    fillPythonInfo(snap);
    ensureAsyncioLayout(snap);
    TaskWalker tasks(*m_objects, *m_frames, m_proc.pid());
    auto interps = readInterpreters(m_mem, L, m_runtime.runtime);
    for (const auto& interp : interps) {
        if (m_runtime.version.micro < 0 && interp.sysdict) {
            if (auto hex = m_objects->dictGet(interp.sysdict, "hexversion")) {
                if (auto h = m_objects->integer(*hex)) {
                    m_runtime.version = PythonVersion::fromHex(static_cast<std::uint64_t>(*h));
                    fillPythonInfo(snap);
                }
            }
        }
        auto threads = readThreads(m_mem, L, interp);
        std::map<std::uint64_t, std::string> names;
        try {
            names = threadNames(*m_objects, interp);
        } catch (const BadRead& e) {
            snap.warnings.push_back(std::string("thread names unavailable: ") + e.what());
        }
        std::map<std::uint64_t, std::int64_t> pthreadTids;
        if (L.thread.nativeThreadId == kAbsent) {
            std::vector<std::uint64_t> ids;
            for (const auto& t : threads) ids.push_back(t.threadId);
            pthreadTids = nativeIdsFromPthreads(m_mem, ids, m_proc.threads());
        }
        std::unordered_map<std::uint64_t, WalkedStack> stacks;
        for (const auto& ts : threads) {
            Thread t;
            t.interpreterId = interp.id;
            t.threadId = ts.threadId;
            t.nativeId = ts.nativeId;
            if (!t.nativeId) {
                if (auto it = pthreadTids.find(ts.threadId); it != pthreadTids.end()) t.nativeId = it->second;
            }
            if (auto it = names.find(ts.threadId); it != names.end()) {
                t.name = it->second;
            } else if (t.nativeId) {
                std::string comm = m_proc.threadComm(static_cast<pid_t>(*t.nativeId));
                if (!comm.empty()) t.name = comm;
            }
            t.holdsGil = interp.gilHolder == ts.addr;
            auto stack = m_frames->walk(ts.currentFrame);
            for (const auto& f : stack.frames) t.frames.push_back(f.frame);
            t.truncated = stack.truncated;
            if (stack.error) {
                torn = true;
                if (lastAttempt) {
                    t.error = stack.error;
                    snap.warnings.push_back("thread " + std::to_string(ts.threadId) +
                                            ": stack read incomplete: " + *stack.error);
                }
            }
            stacks.emplace(ts.threadId, std::move(stack));
            snap.threads.push_back(std::move(t));
        }
        auto found = tasks.read(interp, threads, stacks);
        if (found.torn) {
            torn = true;
            if (!lastAttempt) continue;
        }
        for (auto& w : found.warnings) snap.warnings.push_back(std::move(w));
        if (snap.tasks.empty()) {
            snap.tasks = std::move(found.tasks);
        } else {
            snap.tasks.insert(snap.tasks.end(), std::make_move_iterator(found.tasks.begin()),
                              std::make_move_iterator(found.tasks.end()));
        }
    }
}

}  // namespace aioscope
