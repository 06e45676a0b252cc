#include "snapshot_reader.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <unordered_map>

#include "analysis/findings.h"
#include "layout/asyncio_offsets.h"
#include "walk/interpreters.h"
#include "walk/native_ids.h"
#include "walk/python_facts.h"
#include "walk/tasks.h"
#include "walk/trio_tasks.h"

namespace aioscope {

namespace {

double nowUnix() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

SnapshotReader::SnapshotReader(MemoryReader& memory, ResolvedRuntime runtime, PythonInfo python, pid_t pid)
    : m_proc(pid), m_cache(memory), m_mem(m_cache), m_runtime(std::move(runtime)), m_python(std::move(python)) {
    m_objects = std::make_unique<Objects>(m_mem, m_runtime.layout);
    m_codes = std::make_unique<CodeReader>(*m_objects);
    m_frames = std::make_unique<FrameWalker>(*m_codes, *m_objects);
}

void SnapshotReader::forget() {
    m_cache.clear();
    m_codes->clear();
}

Snapshot SnapshotReader::read(int maxAttempts) {
    Snapshot snap;
    snap.pid = m_proc.pid();
    snap.capturedAt = nowUnix();
    auto start = std::chrono::steady_clock::now();
    int attempts = std::max(1, maxAttempts);
    for (int attempt = 1; attempt <= attempts; ++attempt) {
        forget();
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
    // Walkers may have found deadlocks their runtime's own state makes certain.
    auto found = analyze(snap);
    snap.findings.insert(snap.findings.end(), found.begin(), found.end());
    snap.durationMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    forget();
    return snap;
}

bool SnapshotReader::loadAsyncioLayout() {
    forget();
    try {
        Snapshot unused;
        auto interps = readInterpreters(m_mem, m_runtime.layout, m_runtime.runtime);
        if (!interps.empty()) ensureAsyncioLayout(unused, interps.back());
    } catch (const BadRead&) {
        // Unknown for now: the caller may ask again.
    }
    forget();
    return m_runtime.layout.asyncio.available;
}

std::optional<SnapshotReader::ThreadReport> SnapshotReader::readThread(std::uint64_t threadId) {
    forget();
    const Layout& L = m_runtime.layout;
    Snapshot unused;
    auto interps = readInterpreters(m_mem, L, m_runtime.runtime);
    if (!interps.empty()) ensureAsyncioLayout(unused, interps.back());
    for (const auto& interp : interps) {
        auto threads = readThreads(m_mem, L, interp);
        auto ts = std::find_if(threads.begin(), threads.end(), [&](const ThreadState& t) { return t.threadId == threadId; });
        if (ts == threads.end()) continue;
        ThreadReport report;
        report.thread.interpreterId = interp.id;
        report.thread.threadId = threadId;
        report.thread.nativeId = ts->nativeId;
        report.thread.holdsGil = interp.gilHolder == ts->addr;
        auto stack = m_frames->walk(ts->currentFrame);
        for (const auto& f : stack.frames) report.thread.frames.push_back(f.frame);
        report.thread.truncated = stack.truncated;
        report.thread.error = stack.error;
        std::unordered_map<std::uint64_t, WalkedStack> stacks;
        stacks.emplace(threadId, std::move(stack));
        TaskWalker tasks(*m_objects, *m_frames, m_proc.pid());
        try {
            report.task = tasks.readRunning(interp, threads, stacks, threadId);
        } catch (const BadRead&) {
            // The stack alone is still worth reporting.
        }
        forget();
        return report;
    }
    forget();
    return std::nullopt;
}

void SnapshotReader::fillPythonInfo(Snapshot& snap) {
    snap.python = m_python;
    snap.python.layoutSource = m_runtime.layout.source;
    snap.python.hexversion = m_runtime.version.hex;
    snap.python.version = m_runtime.version.str();
}

// 3.14+ publish the Task layout in the _asyncio module's .AsyncioDebug
// section, and the module state keeps a pointer to it (so the compiler cannot
// drop it): found through sys.modules, whether _asyncio is a shared object or
// built in, and only once it has been imported.
void SnapshotReader::ensureAsyncioLayout(Snapshot& snap, const InterpreterState& interp) {
    Layout& L = m_runtime.layout;
    if (L.asyncio.available || L.asyncio.stateDebugOffsets == kAbsent) return;
    auto module = interp.modules ? m_objects->dictGet(interp.modules, "_asyncio") : std::nullopt;
    if (!module) return;  // asyncio not imported: no tasks to show
    Addr state = m_mem.ptr(*module + L.module.state, "_asyncio module state");
    if (!state) return;
    Addr table = m_mem.ptr(state + L.asyncio.stateDebugOffsets, "_asyncio debug offsets");
    std::vector<std::uint8_t> blob(kAsyncioDebugSize);
    if (!table || !m_mem.tryRead(table, blob.data(), blob.size())) {
        snap.warnings.push_back("asyncio tasks unavailable: the _asyncio module state has no debug offsets");
        return;
    }
    if (auto problem = applyAsyncioDebugOffsets(L, blob)) snap.warnings.push_back("asyncio tasks unavailable: " + *problem);
}

void SnapshotReader::readOnce(Snapshot& snap, bool lastAttempt, bool& torn) {
    const Layout& L = m_runtime.layout;
    fillPythonInfo(snap);
    TaskWalker tasks(*m_objects, *m_frames, m_proc.pid());
    auto interps = readInterpreters(m_mem, L, m_runtime.runtime);
    if (!interps.empty()) ensureAsyncioLayout(snap, interps.back());  // the main interpreter is last
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
        auto trio = readTrioTasks(*m_objects, *m_frames, interp, threads, stacks, [this] { forget(); }, lastAttempt);
        if (trio.torn) {
            torn = true;
            if (!lastAttempt) continue;
        }
        for (auto& w : trio.warnings) snap.warnings.push_back(std::move(w));
        snap.tasks.insert(snap.tasks.end(), std::make_move_iterator(trio.tasks.begin()),
                          std::make_move_iterator(trio.tasks.end()));
        snap.findings.insert(snap.findings.end(), trio.findings.begin(), trio.findings.end());
    }
}

}  // namespace aioscope
