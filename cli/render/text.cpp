#include "render/text.h"

#include <cstdio>
#include <map>
#include <set>
#include <vector>

#include "render/frames_text.h"
#include "render/tasks_text.h"
#include "render/terminal_safe.h"

namespace aioscope::cli {

namespace {

std::string fmtMs(double ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, ms < 10 ? "%.2f ms" : "%.0f ms", ms);
    return buf;
}

// Every string below comes from the target (or from render's input).
constexpr std::size_t kNameChars = 200;
constexpr std::size_t kMessageChars = 4000;

std::string hex(std::uint64_t a) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(a));
    return buf;
}

std::string threadName(const Snapshot& snap, std::uint64_t id) {
    for (const auto& t : snap.threads) {
        if (t.threadId == id) {
            return "thread " + std::to_string(id) + (t.name ? " \"" + terminalSafe(*t.name, kNameChars) + "\"" : "");
        }
    }
    return "thread " + std::to_string(id);
}

std::string taskName(const Snapshot& snap, std::uint64_t id) {
    for (const auto& t : snap.tasks) {
        if (t.id == id) return "task '" + terminalSafe(t.name, kNameChars) + "'";
    }
    return "task " + hex(id);
}

// What a blocked thread waits on, in one line.
std::string threadWaitText(const Snapshot& snap, const ThreadWait& w) {
    std::string what = w.object ? terminalSafe(w.objectType, kNameChars) + " " + hex(w.object) : terminalSafe(w.kind, kNameChars);
    const std::string& k = w.kind;
    std::string text;
    if (k == "lock" || k == "rlock") {
        text = "waits for " + what + (w.owner ? " held by " + threadName(snap, *w.owner) : " (holder unknown)");
    } else if (k == "join") {
        text = "waits in join() for " + (w.thread ? threadName(snap, *w.thread) : what);
    } else if (k == "future-result") {
        text = "waits in Future.result() on " + what;
        if (w.task) text += " for " + taskName(snap, *w.task);
        else if (w.queued) text += " for a coroutine whose start is queued on event loop " + hex(w.loop.value_or(0));
    } else if (k == "futures-wait") {
        text = "waits in concurrent.futures.wait() for " + std::to_string(w.futures.size()) + " futures";
    } else {
        text = "waits on " + what + " [" + k + "]";
    }
    return text;
}

void renderThread(const Snapshot& snap, const Thread& t, std::ostream& out, const Style& st) {
    out << st.cyan("Thread " + std::to_string(t.threadId));
    if (t.nativeId) out << " (native " << *t.nativeId << ")";
    if (t.name) out << " \"" << terminalSafe(*t.name, kNameChars) << "\"";
    if (t.holdsGil) out << " " << st.yellow("holds the GIL");
    out << "\n";
    if (t.worker && t.worker->workItem) {
        std::string line = "pool worker of " + hex(t.worker->executor) + " running work item " +
                           hex(*t.worker->workItem) + " (future " + hex(t.worker->future.value_or(0)) + ")";
        for (std::size_t i = 0; i < t.worker->awaitedBy.size(); ++i) {
            line += (i ? ", " : ", awaited by ") + taskName(snap, t.worker->awaitedBy[i]);
        }
        out << "    " << st.yellow(line) << "\n";
    }
    if (t.waiting) out << "    " << st.yellow(threadWaitText(snap, *t.waiting)) << "\n";
    if (!t.holds.empty()) {
        std::string held;
        for (auto h : t.holds) held += (held.empty() ? "" : ", ") + hex(h);
        out << "    " << st.yellow("holds lock " + held) << "\n";
    }
    if (t.frames.empty() && !t.error) out << "    " << st.dim("(no Python frames)") << "\n";
    renderFrames(out, t.frames, "    ", st);
    if (t.truncated) {
        out << "    " << st.dim(t.omittedFrames ? "\u2026 " + std::to_string(t.omittedFrames) + " frames omitted"
                                                : std::string("\u2026 deeper frames not read"))
            << "\n";
    }
    if (t.error) out << "    " << st.red("stack incomplete: " + terminalSafe(*t.error, kMessageChars)) << "\n";
}

}  // namespace

void renderText(const Snapshot& snap, std::ostream& out, const Style& st, bool table) {
    out << st.bold("CPython " + terminalSafe(snap.python.version, kNameChars)) << " · pid " << snap.pid << " · "
        << snap.threads.size() << (snap.threads.size() == 1 ? " thread" : " threads");
    if (!snap.tasks.empty()) out << " · " << snap.tasks.size() << (snap.tasks.size() == 1 ? " task" : " tasks");
    out << " · read in " << fmtMs(snap.durationMs);
    if (snap.pausedMs) out << ", stopped for " << fmtMs(*snap.pausedMs);
    if (snap.attempts > 1) out << " (" << snap.attempts << " attempts)";
    out << "\n";
    if (!snap.python.executable.empty()) out << st.dim(terminalSafe(snap.python.executable, kNameChars)) << "\n";
    if (!snap.findings.empty()) out << "\n";
    renderFindings(snap, out, st);
    if (table) {
        renderTaskTable(snap, out, st);
        for (const auto& w : snap.warnings) out << st.yellow("warning: " + terminalSafe(w, kMessageChars)) << "\n";
        return;
    }

    std::map<std::int64_t, std::vector<const Thread*>> interpreters;
    for (const auto& t : snap.threads) interpreters[t.interpreterId].push_back(&t);
    for (const auto& [id, threads] : interpreters) {
        if (interpreters.size() > 1) out << "\n" << st.bold("Interpreter " + std::to_string(id)) << "\n";
        // Idle pool workers are folded: one line per pool.
        std::map<std::uint64_t, std::vector<const Thread*>> idle;
        for (const Thread* t : threads) {
            if (t->worker && !t->worker->workItem && !t->waiting) {
                idle[t->worker->executor].push_back(t);
                continue;
            }
            out << "\n";
            renderThread(snap, *t, out, st);
        }
        for (const auto& [executor, workers] : idle) {
            std::string ids;
            for (const Thread* t : workers) ids += (ids.empty() ? "" : ", ") + std::to_string(t->threadId);
            out << "\n"
                << st.cyan(std::to_string(workers.size()) + (workers.size() == 1 ? " idle worker" : " idle workers") +
                           " of thread pool " + hex(executor))
                << st.dim(" (threads " + ids + ")") << "\n";
        }
    }
    renderTaskTrees(snap, out, st);
    for (const auto& w : snap.warnings) out << "\n" << st.yellow("warning: " + terminalSafe(w, kMessageChars));
    if (!snap.warnings.empty()) out << "\n";
}

}  // namespace aioscope::cli
