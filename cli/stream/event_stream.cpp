#include <algorithm>
#include "stream/event_stream.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "errors.h"
#include "model/snapshot_json.h"
#include "render/tasks_text.h"

namespace aioscope::cli {

using nlohmann::json;

namespace {

constexpr const char* kEventSchema = "aioscope/event/1";

double nowUnix() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

std::string frameText(const json& f, const Style& st) {
    std::string line = f.value("line", json()).is_number() ? std::to_string(f["line"].get<int>()) : "?";
    return st.bold(f.value("qualname", std::string("?"))) + " " +
           st.dim("(" + f.value("file", std::string("?")) + ":" + line + ")");
}

bool isDeadlockKind(const std::string& k) {
    return k == "await-cycle" || k == "lock-deadlock" || k == "orphaned-wait" || k == "abandoned-lock";
}

bool isBugEvent(const std::string& t) {
    return std::find(std::begin(kBugEventTypes), std::end(kBugEventTypes), t) != std::end(kBugEventTypes);
}

std::string where(const json& f, const Style& st) {
    if (!f.is_object()) return st.dim("(unknown)");
    return frameText(f, st);
}

std::string taskName(const json& t) {
    if (!t.is_object()) return "(no task)";
    return "'" + t.value("name", std::string("?")) + "'";
}

// GitHub's workflow commands treat %, CR, LF (and , : in properties) specially.
std::string ghEscape(std::string s, bool property) {
    std::string out;
    for (char c : s) {
        if (c == '%') out += "%25";
        else if (c == '\r') out += "%0D";
        else if (c == '\n') out += "%0A";
        else if (property && c == ':') out += "%3A";
        else if (property && c == ',') out += "%2C";
        else out += c;
    }
    return out;
}

}  // namespace

EventStream::EventStream(const StreamOptions& options)
    : m_options(options),
      m_style(Style::forStdout(options.color)),
      m_text(!options.json && isatty(STDOUT_FILENO)) {
    if (!options.outputFile.empty()) {
        m_file = std::make_unique<std::ofstream>(options.outputFile, std::ios::out | std::ios::trunc);
        if (!*m_file) throw InspectError(Errc::usage, "cannot write " + options.outputFile);
    }
}

std::optional<json> EventStream::parse(const std::string& line) {
    json e = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (e.is_discarded() || !e.is_object() || e.value("schema", std::string()) != kEventSchema ||
        !e.contains("type") || !e["type"].is_string()) {
        if (++m_dropped <= 3) warn("ignored a line from an agent that is not an aioscope event");
        return std::nullopt;
    }
    return e;
}

json EventStream::make(const char* type, long pid) {
    return {{"schema", kEventSchema}, {"type", type}, {"ts", nowUnix()}, {"pid", pid}};
}

void EventStream::warn(const std::string& message) {
    json e = make("warning", getpid());
    e["message"] = message;
    emit(e);
}

void EventStream::emit(const json& e) {
    const std::string type = e.value("type", std::string());
    long pid = e.value("pid", 0L);
    if (type == "hello" && e.contains("python")) m_python[pid] = e["python"];
    if (type == "stall") ++m_stalls;
    if (isBugEvent(type)) ++m_bugs[type];
    if (type == "snapshot" && e.contains("findings") && e["findings"].is_array()) {
        for (const auto& f : e["findings"]) {
            if (f.is_object() && isDeadlockKind(f.value("kind", std::string()))) {
                ++m_deadlocks;
                break;
            }
        }
    }
    if (m_file) *m_file << e.dump() << "\n" << std::flush;
    if (m_options.githubAnnotations && type == "stall" && e.contains("stack") && e["stack"].is_array() &&
        !e["stack"].empty() && e["stack"][0].is_object()) {
        const json& top = e["stack"][0];
        std::cout << "::error file=" << ghEscape(top.value("file", std::string()), true)
                  << ",line=" << (top["line"].is_number() ? top["line"].get<int>() : 0)
                  << ",title=" << ghEscape("asyncio event loop stall", true) << "::"
                  << ghEscape("The event loop was blocked for " + fmt("%.0f", e.value("elapsed_ms", 0.0)) +
                                  " ms or more in " + top.value("qualname", std::string("?")) + " (aioscope)",
                              false)
                  << "\n";
    }
    if (m_options.quiet) return;
    if (m_text) {
        renderText(e);
    } else {
        std::cout << e.dump() << "\n";
    }
    std::cout << std::flush;
}

void EventStream::renderText(const json& e) {
    const Style& st = m_style;
    const std::string type = e.value("type", std::string());
    long pid = e.value("pid", 0L);
    std::string who = "pid " + std::to_string(pid);
    if (type == "hello") {
        const json& py = e.value("python", json::object());
        const json& opt = e.value("options", json::object());
        const bool run = e.value("mode", std::string()) == "run";
        std::cout << st.green("● ") << who << " · CPython " << py.value("version", std::string("?")) << " · agent "
                  << (run ? "loaded at start" : "attached") << " · stall threshold "
                  << fmt("%.0f", opt.value("stall_threshold_ms", 0.0)) << " ms · "
                  << e.value("stall_detection", std::string()) << "\n";
    } else if (type == "stall") {
        std::cout << st.red(st.bold("STALL #" + std::to_string(e.value("stall_id", 0))) + " · " + who + " · thread " +
                            std::to_string(e.value("native_id", 0L)) + " · event loop blocked for " +
                            fmt("%.0f", e.value("elapsed_ms", 0.0)) + " ms")
                  << "\n";
        if (e.contains("task") && e["task"].is_object()) {
            std::cout << "  in task '" << e["task"].value("name", std::string("?")) << "' "
                      << st.dim(e["task"].value("id", std::string())) << "\n";
        }
        if (!e.value("captured", true)) std::cout << "  " << st.dim("(it ended before a sample could see it)") << "\n";
        for (const auto& f : e.value("stack", json::array())) std::cout << "    " << frameText(f, st) << "\n";
        if (e.contains("native_stack") && e["native_stack"].is_array() && !e["native_stack"].empty()) {
            std::cout << "  " << st.dim("native:") << "\n";
            for (const auto& f : e["native_stack"]) {
                std::string fn = f.value("function", std::string());
                std::string mod = f.value("module", std::string());
                std::cout << "    " << (fn.empty() ? f.value("address", std::string("?")) : fn) << " "
                          << st.dim("(" + mod.substr(mod.rfind('/') + 1) + ")") << "\n";
            }
        }
    } else if (type == "stall_end") {
        std::cout << "  " << st.yellow("stall #" + std::to_string(e.value("stall_id", 0)) + " ended after " +
                                       fmt("%.1f", e.value("duration_ms", 0.0)) + " ms")
                  << "\n";
    } else if (type == "snapshot") {
        json doc = e;
        doc["schema"] = kSnapshotSchema;
        doc["python"] = m_python.count(pid) ? m_python[pid] : json{{"version", "?"}};
        try {
            Snapshot snap = snapshotFromJson(doc);
            std::cout << st.bold("snapshot · " + who + " · " + std::to_string(snap.tasks.size()) + " tasks") << "\n";
            renderFindings(snap, std::cout, st);
            renderTaskTrees(snap, std::cout, st);
        } catch (const InspectError& err) {
            std::cout << st.yellow("unreadable snapshot: " + std::string(err.what())) << "\n";
        }
    } else if (type == "unawaited_coroutine") {
        const json& c = e.value("coroutine", json::object());
        std::cout << st.red(st.bold("NEVER AWAITED") + " coroutine '" + c.value("qualname", std::string("?")) +
                            "' · " + who)
                  << "\n";
        std::cout << "  created   " << (e.contains("created_at") && e["created_at"].is_object()
                                            ? where(e["created_at"], st)
                                            : st.dim("(where: unknown, " + e.value("note", std::string("")) + ")"))
                  << "\n";
        std::cout << "  discarded " << where(e.value("discarded_at", json()), st) << "\n";
        std::cout << "  task      " << taskName(e.value("task", json())) << "\n";
    } else if (type == "cancellation_swallowed") {
        std::cout << st.red(st.bold("CANCELLATION SWALLOWED") + " task " + taskName(e.value("task", json())) +
                            " · " + who)
                  << "\n";
        std::cout << "  caught at " << where(e.value("caught_at", json()), st) << " and "
                  << e.value("outcome", std::string("?")) << "\n";
    } else if (type == "task_exception_unretrieved") {
        const json& x = e.value("exception", json::object());
        std::cout << st.red(st.bold("EXCEPTION NEVER RETRIEVED") + " task " + taskName(e.value("task", json())) +
                            " · " + who + ": " + x.value("type", std::string("?")) + ": " +
                            x.value("message", std::string()))
                  << "\n";
        for (const auto& f : x.value("traceback", json::array())) std::cout << "    " << frameText(f, st) << "\n";
    } else if (type == "task_destroyed_pending") {
        std::cout << st.red(st.bold("PENDING TASK DESTROYED") + " task " + taskName(e.value("task", json())) + " · " +
                            who)
                  << "\n";
        for (const auto& f : e.value("stack", json::array())) std::cout << "    " << frameText(f, st) << "\n";
    } else if (type == "exit") {
        std::cout << st.bold(who + " exited") << " " << e.value("description", std::string()) << "\n";
    } else if (e.contains("message")) {
        std::string msg = e.value("message", std::string());
        std::cout << (type == "error" || type == "warning" ? st.yellow(type + ": " + msg) : st.dim(type + ": " + msg))
                  << " " << st.dim(who) << "\n";
    } else {
        std::cout << st.dim(type + " " + who) << "\n";
    }
}

}  // namespace aioscope::cli
