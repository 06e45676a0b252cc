#include "snapshot_reader.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <unordered_map>

#include "analysis/confirm.h"
#include "analysis/findings.h"
#include "layout/asyncio_offsets.h"
#include "layout/trio_layout.h"
#include "remote/fields.h"
#include "walk/boundary.h"
#include "walk/interpreters.h"
#include "walk/native_ids.h"
#include "walk/python_facts.h"
#include "walk/tasks.h"
#include "walk/thread_stack.h"
#include "walk/trio_tasks.h"

namespace aioscope {

namespace {

double nowUnix() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

SnapshotReader::SnapshotReader(MemoryReader& memory, ResolvedRuntime runtime, PythonInfo python, pid_t pid,
                               std::size_t cachePages)
    : m_proc(pid),
      m_raw(memory),
      // No readahead: measured, reading 8 pages per miss made a stacks-only
      // dump 3-6x slower (scattered code objects and strings: the copy, not
      // the system call, dominated) and 10,000 tasks no faster.
      m_cache(memory, cachePages, 1),
      m_mem(m_cache),
      m_runtime(std::move(runtime)),
      m_python(std::move(python)) {
    m_objects = std::make_unique<Objects>(m_mem, m_runtime.layout);
    m_objects->useHashSecret(m_runtime.hashSecret);
    m_codes = std::make_unique<CodeReader>(*m_objects);
    m_frames = std::make_unique<FrameWalker>(*m_codes, *m_objects);
}

void SnapshotReader::forget() {
    m_cache.clear();
    m_codes->clear();
    m_objects->forget();
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
        trial.attempts = attempt;  // readOnce adds the rounds of re-reads it needed
        try {
            readOnce(trial, attempt == attempts);
        } catch (const BadRead& e) {
            // Something the whole read stands on (the interpreters, a thread
            // list) would not read consistently: nothing of it is kept.
            if (attempt < attempts) continue;
            trial.threads.clear();
            trial.tasks.clear();
            trial.warnings.push_back(std::string("incomplete read: nothing could be read consistently after ") +
                                     std::to_string(attempts) + " attempts: " + e.what());
        }
        snap = std::move(trial);
        break;
    }
    // Only worth it when much is resident: giving back a few pages costs a
    // stacks-only dump more (unmapping) than it saves.
    if (m_release && m_cache.framesTouched() > kKeepFrames) m_cache.release();
    // Walkers may have found deadlocks their runtime's own state makes certain.
    auto found = analyze(snap);
    snap.findings.insert(snap.findings.end(), found.begin(), found.end());
    snap.durationMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    forget();
    return snap;
}

Snapshot SnapshotReader::readConfirmed(int maxAttempts, bool* confirmed) {
    if (confirmed) *confirmed = false;
    Snapshot first = read(maxAttempts);
    if (first.findings.empty()) return first;
    Snapshot second = read(maxAttempts);
    if (confirmed) *confirmed = true;
    second.capturedAt = first.capturedAt;
    second.durationMs += first.durationMs;
    confirmFindings(first, second);
    return second;
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

std::optional<SnapshotReader::ThreadReport> SnapshotReader::readThread(std::uint64_t threadId, bool withTask) {
    auto reports = readThreadReports(threadId, withTask);
    if (reports.empty()) return std::nullopt;
    return std::move(reports.front());
}

void SnapshotReader::boundaryOf(Thread& thread, const InterpreterState& interp, const std::vector<ThreadState>& threads,
                                const WalkedStack& stack) {
    if (stack.error) return;
    std::vector<Thread> others;
    std::unordered_map<std::uint64_t, WalkedStack> stacks;
    others.reserve(threads.size());
    for (const auto& ts : threads) {
        if (ts.threadId == thread.threadId) {
            stacks.emplace(ts.threadId, stack);
            continue;
        }
        int rounds = 0;
        auto walked = readStack(ts, rounds);
        if (walked.error) continue;
        Thread t;
        t.threadId = ts.threadId;
        t.holdsGil = interp.gilHolder == ts.addr;
        others.push_back(std::move(t));
        stacks.emplace(ts.threadId, std::move(walked));
    }
    std::vector<Thread*> all{&thread};
    for (auto& t : others) all.push_back(&t);
    std::vector<Task*> none;
    std::vector<std::string> warnings;
    BoundaryReader(*m_objects, *m_frames).read(interp, stacks, all, none, warnings);
}

std::optional<Task> SnapshotReader::readTrioTask(Addr task, std::uint64_t threadId, const Stack& threadFrames) try {
    forget();
    if (m_objects->typeNameOf(task) != "Task") return std::nullopt;
    Fields fields(*m_objects);
    auto name = fields.get(task, trioLayout().taskName);
    if (!name || !fields.get(task, trioLayout().taskCoro)) return std::nullopt;
    Task t;
    t.id = task;
    t.runtime = "trio";
    t.state = TaskState::running;
    t.threadId = threadId;
    t.name = m_objects->str(*name, 1024).value_or("");
    // Its frames: the thread's, down to the one trio's run loop called.
    auto stack = std::make_shared<Stack>();
    for (std::size_t i = 0; i < threadFrames.size(); ++i) {
        if (threadFrames[i].function == "unrolled_run" && threadFrames[i].file.ends_with("trio/_core/_run.py")) break;
        stack->push_back(threadFrames[i]);
    }
    t.stack = std::move(stack);
    forget();
    return t;
} catch (const BadRead&) {
    forget();
    return std::nullopt;
}

std::vector<SnapshotReader::ThreadReport> SnapshotReader::readAllThreads() { return readThreadReports(std::nullopt, false); }

// The agent calls this on its own thread inside the target: an exception
// escaping would terminate the target. A torn read (found by fuzz_memory: a
// looping interpreter list) gives no report; the caller may read again.
std::vector<SnapshotReader::ThreadReport> SnapshotReader::readThreadReports(std::optional<std::uint64_t> only,
                                                                       bool withTask) try {
    forget();
    const Layout& L = m_runtime.layout;
    std::vector<ThreadReport> out;
    Snapshot unused;
    auto interps = readInterpreters(m_mem, L, m_runtime.runtime);
    if (withTask && !interps.empty()) ensureAsyncioLayout(unused, interps.back());
    for (const auto& interp : interps) {
        auto threads = readThreadsConsistent(m_mem, m_raw, L, interp);
        std::map<std::uint64_t, std::int64_t> pthreadTids;  // 3.10 keeps no native id
        if (L.thread.nativeThreadId == kAbsent) {
            std::vector<std::uint64_t> ids;
            for (const auto& t : threads) {
                if (!only || t.threadId == *only) ids.push_back(t.threadId);
            }
            pthreadTids = nativeIdsFromPthreads(m_mem, ids, m_proc.threads());
        }
        for (const auto& ts : threads) {
            if (only && ts.threadId != *only) continue;
            ThreadReport report;
            report.thread.interpreterId = interp.id;
            report.thread.threadId = ts.threadId;
            report.thread.nativeId = ts.nativeId;
            if (!report.thread.nativeId) {
                if (auto it = pthreadTids.find(ts.threadId); it != pthreadTids.end()) report.thread.nativeId = it->second;
            }
            report.thread.holdsGil = interp.gilHolder == ts.addr;
            int rounds = 0;
            auto stack = readStack(ts, rounds);
            for (const auto& f : stack.frames) {
                report.thread.frames.push_back(f.frame);
                report.frameAddrs.push_back(f.addr);
            }
            report.thread.truncated = stack.truncated;
            report.thread.omittedFrames = stack.omitted;
            report.thread.error = stack.error;
            if (withTask) {
                TaskWalker tasks(*m_objects, *m_frames, m_raw, m_proc.pid());
                try {
                    report.task = tasks.readRunning(interp, threads, ts.threadId);
                } catch (const BadRead& e) {
                    report.taskError = e.what();  // the stack alone is still worth reporting
                }
                // A stalled loop thread blocked in a synchronous wait: what it
                // waits on and who holds it (the other threads' `with` blocks).
                boundaryOf(report.thread, interp, threads, stack);
            }
            out.push_back(std::move(report));
            if (only) {
                forget();
                return out;
            }
        }
    }
    forget();
    return out;
} catch (const BadRead&) {
    forget();
    return {};
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

WalkedStack SnapshotReader::readStack(const ThreadState& ts, int& rounds) {
    auto read = readThreadStack(*m_frames, m_mem, m_raw, m_runtime.layout, ts.addr, ts.currentFrame);
    rounds = std::max(rounds, read.rounds);
    return std::move(read.stack);
}

void SnapshotReader::readOnce(Snapshot& snap, bool lastAttempt) {
    const Layout& L = m_runtime.layout;
    fillPythonInfo(snap);
    TaskWalker tasks(*m_objects, *m_frames, m_raw, m_proc.pid());
    auto interps = readInterpreters(m_mem, L, m_runtime.runtime);
    if (!interps.empty()) ensureAsyncioLayout(snap, interps.back());  // the main interpreter is last
    int rounds = 0;
    for (const auto& interp : interps) {
        if (m_runtime.version.micro < 0 && interp.sysdict) {
            if (auto hex = m_objects->dictGet(interp.sysdict, "hexversion")) {
                if (auto h = m_objects->integer(*hex)) {
                    m_runtime.version = PythonVersion::fromHex(static_cast<std::uint64_t>(*h));
                    fillPythonInfo(snap);
                }
            }
        }
        // A torn list throws: the whole read is tried again (read()).
        auto threads = readThreadsConsistent(m_mem, m_raw, L, interp);
        // threading._active changes as threads come and go: read it until
        // it reads the same twice.
        std::map<std::uint64_t, std::string> names;
        std::optional<std::string> namesProblem = "threading._active kept changing while it was read";
        for (int i = 0; i < 4 && namesProblem; ++i) {
            Witness w;
            try {
                names = threadNames(*m_objects, interp, &w);
                if (w.holds(m_raw)) namesProblem.reset();
            } catch (const BadRead& e) {
                namesProblem = e.what();
            }
            if (namesProblem) forget();
        }
        if (namesProblem) {
            names.clear();
            snap.warnings.push_back("thread names unavailable: " + *namesProblem);
        }
        std::map<std::uint64_t, std::int64_t> pthreadTids;
        if (L.thread.nativeThreadId == kAbsent) {
            std::vector<std::uint64_t> ids;
            for (const auto& t : threads) ids.push_back(t.threadId);
            pthreadTids = nativeIdsFromPthreads(m_mem, ids, m_proc.threads());
        }
        std::unordered_map<std::uint64_t, WalkedStack> stacks;  // the trio and boundary readers'
        std::size_t firstThread = snap.threads.size();
        std::size_t firstTask = snap.tasks.size();
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
            } else if (t.nativeId && !namesProblem) {
                // Not a thread the threading module started (when its
                // names could not be read, no name rather than a wrong one).
                std::string comm = m_proc.threadComm(static_cast<pid_t>(*t.nativeId));
                if (!comm.empty()) t.name = comm;
            }
            t.holdsGil = interp.gilHolder == ts.addr;
            auto stack = readStack(ts, rounds);
            for (const auto& f : stack.frames) t.frames.push_back(f.frame);
            t.truncated = stack.truncated;
            t.omittedFrames = stack.omitted;
            if (stack.error) {
                t.error = stack.error;
                snap.warnings.push_back("thread " + std::to_string(ts.threadId) +
                                        ": stack read incomplete: " + *stack.error);
            }
            stacks.emplace(ts.threadId, std::move(stack));
            snap.threads.push_back(std::move(t));
        }
        auto found = tasks.read(interp, threads);
        if (found.rereads) rounds = std::max(rounds, 1 + TaskWalker::kRereads);
        for (auto& w : found.warnings) snap.warnings.push_back(std::move(w));
        if (snap.tasks.empty()) {
            snap.tasks = std::move(found.tasks);
        } else {
            snap.tasks.insert(snap.tasks.end(), std::make_move_iterator(found.tasks.begin()),
                              std::make_move_iterator(found.tasks.end()));
        }
        auto trio = readTrioTasks(*m_objects, *m_frames, interp, threads, stacks, [this] { forget(); }, lastAttempt);
        if (trio.torn && !lastAttempt) throw BadRead("trio's tasks changed while they were read");
        for (auto& w : trio.warnings) snap.warnings.push_back(std::move(w));
        snap.tasks.insert(snap.tasks.end(), std::make_move_iterator(trio.tasks.begin()),
                          std::make_move_iterator(trio.tasks.end()));
        snap.findings.insert(snap.findings.end(), trio.findings.begin(), trio.findings.end());

        std::vector<Thread*> ownThreads;
        for (std::size_t i = firstThread; i < snap.threads.size(); ++i) ownThreads.push_back(&snap.threads[i]);
        std::vector<Task*> ownTasks;
        for (std::size_t i = firstTask; i < snap.tasks.size(); ++i) ownTasks.push_back(&snap.tasks[i]);
        BoundaryReader boundary(*m_objects, *m_frames);
        boundary.read(interp, stacks, ownThreads, ownTasks, snap.warnings);
    }
    snap.attempts += rounds;
}

}  // namespace aioscope
