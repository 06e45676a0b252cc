#include "render/text.h"

#include <cstdio>
#include <set>

#include "render/tasks_text.h"

namespace aioscope::cli {

namespace {

std::string fmtMs(double ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, ms < 10 ? "%.2f ms" : "%.0f ms", ms);
    return buf;
}

std::string frameLine(const Frame& f, const Style& st) {
    std::string where = f.file + ":" + (f.line ? std::to_string(*f.line) : std::string("?"));
    return st.bold(f.qualname) + " " + st.dim("(" + where + ")");
}

void renderThread(const Thread& t, std::ostream& out, const Style& st) {
    out << st.cyan("Thread " + std::to_string(t.threadId));
    if (t.nativeId) out << " (native " << *t.nativeId << ")";
    if (t.name) out << " \"" << *t.name << "\"";
    if (t.holdsGil) out << " " << st.yellow("holds the GIL");
    out << "\n";
    if (t.frames.empty() && !t.error) out << "    " << st.dim("(no Python frames)") << "\n";
    for (const auto& f : t.frames) out << "    " << frameLine(f, st) << "\n";
    if (t.truncated) out << "    " << st.dim("... deeper frames not read") << "\n";
    if (t.error) out << "    " << st.red("stack incomplete: " + *t.error) << "\n";
}

}  // namespace

void renderText(const Snapshot& snap, std::ostream& out, const Style& st, bool table) {
    out << st.bold("CPython " + snap.python.version) << " · pid " << snap.pid << " · "
        << snap.threads.size() << (snap.threads.size() == 1 ? " thread" : " threads");
    if (!snap.tasks.empty()) out << " · " << snap.tasks.size() << (snap.tasks.size() == 1 ? " task" : " tasks");
    out << " · read in " << fmtMs(snap.durationMs);
    if (snap.pausedMs) out << ", stopped for " << fmtMs(*snap.pausedMs);
    if (snap.attempts > 1) out << " (" << snap.attempts << " attempts)";
    out << "\n";
    if (!snap.python.executable.empty()) out << st.dim(snap.python.executable) << "\n";
    if (!snap.findings.empty()) out << "\n";
    renderFindings(snap, out, st);
    if (table) {
        renderTaskTable(snap, out, st);
        for (const auto& w : snap.warnings) out << st.yellow("warning: " + w) << "\n";
        return;
    }

    std::set<std::int64_t> interpreters;
    for (const auto& t : snap.threads) interpreters.insert(t.interpreterId);
    for (std::int64_t id : interpreters) {
        if (interpreters.size() > 1) out << "\n" << st.bold("Interpreter " + std::to_string(id)) << "\n";
        for (const auto& t : snap.threads) {
            if (t.interpreterId != id) continue;
            out << "\n";
            renderThread(t, out, st);
        }
    }
    renderTaskTrees(snap, out, st);
    for (const auto& w : snap.warnings) out << "\n" << st.yellow("warning: " + w);
    if (!snap.warnings.empty()) out << "\n";
}

}  // namespace aioscope::cli
