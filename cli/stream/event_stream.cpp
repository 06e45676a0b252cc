#include "stream/event_stream.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "errors.h"
#include "model/snapshot_json.h"
#include "render/tasks_text.h"
#include "render/terminal_safe.h"
#include "render/text.h"

namespace aioscope::cli {

using nlohmann::json;

namespace {

double nowUnix() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

// Fields of a checked event (event_schema.h): present ones have their type.
std::string str(const json& o, const char* key, const char* fallback = "?") {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? terminalSafe(it->get<std::string>()) : fallback;
}

double number(const json& o, const char* key) {
    auto it = o.find(key);
    return it != o.end() && it->is_number() ? it->get<double>() : 0.0;
}

std::string integer(const json& o, const char* key) {
    auto it = o.find(key);
    if (it == o.end() || !it->is_number_integer()) return "?";
    return it->is_number_unsigned() ? std::to_string(it->get<std::uint64_t>()) : std::to_string(it->get<std::int64_t>());
}

const json& member(const json& o, const char* key) {
    static const json none;
    auto it = o.find(key);
    return it == o.end() ? none : *it;
}

std::string frameText(const json& f, const Style& st) {
    std::string line = f.contains("line") && f["line"].is_number_integer() ? integer(f, "line") : "?";
    return st.bold(str(f, "qualname")) + " " + st.dim("(" + str(f, "file") + ":" + line + ")");
}

bool isDeadlockKind(const std::string& k) {
    return k == "await-cycle" || k == "lock-deadlock" || k == "orphaned-wait" || k == "abandoned-lock" ||
           k == "cross-deadlock" || k == "thread-deadlock" || k == "loop-blocked-forever" || k == "executor-starved";
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
    std::string name = "'";
    name += str(t, "name");
    name += '\'';
    return name;
}

// GitHub's workflow commands treat %, CR, LF (and , : in properties) specially.
std::string ghEscape(const std::string& s, bool property) {
    std::string out;
    for (char c : terminalSafe(s)) {
        if (c == '%') out += "%25";
        else if (c == '\r') out += "%0D";
        else if (c == '\n') out += "%0A";
        else if (property && c == ':') out += "%3A";
        else if (property && c == ',') out += "%2C";
        else out += c;
    }
    return out;
}

std::string annotation(const json& frame, const std::string& title, const std::string& message) {
    if (!frame.is_object() || !frame.contains("file") || !frame["file"].is_string()) return "";
    std::string line = frame.contains("line") && frame["line"].is_number_integer() ? integer(frame, "line") : "0";
    return "::error file=" + ghEscape(frame["file"].get<std::string>(), true) + ",line=" + line +
           ",title=" + ghEscape(title, true) + "::" + ghEscape(message + " (aioscope)", false) + "\n";
}

const json& first(const json& frames) {
    static const json none;
    return frames.is_array() && !frames.empty() ? frames[0] : none;
}

// Python's own library (".../lib/python3.12/asyncio/locks.py"), not a
// third-party package in it, nor the program's code.
bool inStandardLibrary(const std::string& file) {
    std::size_t at = file.find("/lib/python3.");
    return (at != std::string::npos && file.find("-packages/", at) == std::string::npos) ||
           file.starts_with("<frozen ");
}

// Where to annotate for a stack (innermost first): its innermost frame in
// the program's own code, else its innermost frame.
const json& place(const json& frames) {
    if (frames.is_array()) {
        for (const auto& f : frames) {
            if (f.is_object() && f.contains("file") && f["file"].is_string() &&
                !inStandardLibrary(f["file"].get<std::string>())) {
                return f;
            }
        }
    }
    return first(frames);
}

}  // namespace

EventStream::EventStream(const StreamOptions& options)
    : m_options(options),
      m_style([&] {
          if (options.color == ColorMode::always) return Style(true);
          if (options.color == ColorMode::never) return Style(false);
          const char* noColor = std::getenv("NO_COLOR");
          return Style(isatty(options.fd) && !(noColor && *noColor));
      }()),
      m_text(!options.json && isatty(options.fd)) {
    if (!options.outputFile.empty()) {
        m_file = ::open(options.outputFile.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (m_file < 0) {
            throw InspectError(Errc::output_failed,
                               "cannot write " + options.outputFile + ": " + std::strerror(errno));
        }
    }
}

EventStream::~EventStream() {
    if (m_file >= 0) ::close(m_file);
}

bool EventStream::writeAll(int fd, const std::string& data, const char* what) {
    std::size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR && !(m_options.interrupted && *m_options.interrupted)) continue;
        if (n < 0 && errno == EINTR) {
            if (m_outputError.empty()) {
                m_outputError = std::string("cannot write ") + what + ": interrupted while blocked (nobody was reading it)";
            }
            return false;
        }
        if (n <= 0) {
            if (m_outputError.empty()) {
                m_outputError = std::string("cannot write ") + what + ": " +
                                (n < 0 ? std::strerror(errno) : "nothing was written");
            }
            return false;
        }
        off += static_cast<std::size_t>(n);
    }
    return true;
}

json EventStream::make(const char* type, long pid) {
    return {{"schema", kEventSchema}, {"type", type}, {"ts", nowUnix()}, {"pid", pid}};
}

void EventStream::warn(const std::string& message, long pid) {
    json e = make("warning", pid ? pid : getpid());
    e["message"] = message;
    emit(e);
}

void EventStream::emit(const json& e) {
    const std::string type = e.value("type", std::string());
    long pid = e.value("pid", 0L);
    if (type == "hello" && e.contains("python")) m_python[pid] = e["python"];
    if (type == "hello" || type == "capabilities" || type == "info" || type == "warning") m_caps.observe(static_cast<pid_t>(pid), e);
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
    if (m_file >= 0 && !m_fileFailed) {
        m_fileFailed = !writeAll(m_file, e.dump() + "\n", m_options.outputFile.c_str());
    }
    std::string out;
    if (m_options.githubAnnotations) out += annotations(e);
    // Agents are untrusted: every string of theirs is made terminal-safe.
    if (!m_options.quiet) out += m_text ? renderText(terminalSafeJson(e)) : e.dump() + "\n";
    if (!out.empty() && !m_streamFailed) {
        m_streamFailed = !writeAll(m_options.fd, out,
                                   m_options.fd == STDERR_FILENO ? "standard error" : "standard output");
    }
}

std::string EventStream::annotations(const json& e) {
    const std::string type = e.value("type", std::string());
    if (type == "stall") {
        const json& top = place(member(e, "stack"));
        return annotation(top, "asyncio event loop stall",
                          "The event loop was blocked for " + fmt("%.0f", number(e, "elapsed_ms")) + " ms or more in " +
                              (top.is_object() ? str(top, "qualname") : "?"));
    }
    if (type == "unawaited_coroutine") {
        const json& c = member(e, "coroutine");
        std::string name = c.is_object() ? str(c, "qualname") : "?";
        const json& created = member(e, "created_at");
        const json& discarded = member(e, "discarding_stack").is_array() && !e["discarding_stack"].empty()
                                    ? place(e["discarding_stack"])
                                    : member(e, "discarded_at");
        const json& at = created.is_object() && created.contains("file") && created["file"].is_string() &&
                                 !inStandardLibrary(created["file"].get<std::string>())
                             ? created
                             : discarded;
        return annotation(at, "coroutine never awaited", "Coroutine '" + name + "' was never awaited");
    }
    if (type == "cancellation_swallowed") {
        return annotation(member(e, "caught_at"), "CancelledError swallowed",
                          "Task " + taskName(member(e, "task")) + " caught a cancellation and " +
                              str(e, "outcome", "went on"));
    }
    if (type == "task_exception_unretrieved") {
        const json& x = member(e, "exception");
        if (!x.is_object()) return "";
        return annotation(place(member(x, "traceback")), "task exception never retrieved",
                          "Task " + taskName(member(e, "task")) + " raised " + str(x, "type") + ": " +
                              str(x, "message", "") + " and nobody retrieved it");
    }
    if (type == "task_destroyed_pending") {
        return annotation(place(member(e, "stack")), "pending task destroyed",
                          "Task " + taskName(member(e, "task")) + " was destroyed while still pending");
    }
    if (type == "snapshot" && e.contains("findings") && e["findings"].is_array()) {
        std::string out;
        const json& tasks = member(e, "tasks");
        for (const auto& f : e["findings"]) {
            if (!f.is_object() || !isDeadlockKind(f.value("kind", std::string()))) continue;
            // At the innermost frame of the first task involved.
            const json* where = nullptr;
            const json& ids = member(f, "tasks");
            if (ids.is_array() && !ids.empty() && tasks.is_array()) {
                for (const auto& t : tasks) {
                    if (t.is_object() && t.value("id", json()) == ids[0]) where = &place(member(t, "stack"));
                }
            }
            if (!where) continue;
            std::string note = annotation(*where, "asyncio deadlock (" + f.value("kind", std::string()) + ")",
                                          str(f, "message"));
            if (!note.empty() && m_annotated.insert(note).second) out += note;
        }
        return out;
    }
    return "";
}

std::string EventStream::renderText(const json& e) {
    std::ostringstream out;
    const Style& st = m_style;
    const std::string type = e.value("type", std::string());
    long pid = e.value("pid", 0L);
    std::string who = "pid " + std::to_string(pid);
    if (type == "hello") {
        const json& py = member(e, "python");
        const json& opt = member(e, "options");
        const bool run = e.value("mode", std::string()) == "run";
        out << st.green("● ") << who << " · CPython " << (py.is_object() ? str(py, "version") : "?") << " · agent "
            << (run ? "loaded at start" : "attached") << " · stall threshold "
            << fmt("%.0f", opt.is_object() ? number(opt, "stall_threshold_ms") : 0.0) << " ms · "
            << str(e, "stall_detection", "") << "\n";
    } else if (type == "stall") {
        out << st.red(st.bold("STALL #" + integer(e, "stall_id")) + " · " + who + " · thread " +
                      integer(e, "native_id") + " · event loop blocked for " + fmt("%.0f", number(e, "elapsed_ms")) +
                      " ms")
            << "\n";
        const json& task = member(e, "task");
        if (task.is_object()) out << "  in task '" << str(task, "name") << "' " << st.dim(str(task, "id", "")) << "\n";
        if (!task.is_object() && e.contains("task_error") && e["task_error"].is_string()) {
            out << "  " << st.dim("task unknown: " + str(e, "task_error")) << "\n";
        }
        if (!e.value("captured", true)) out << "  " << st.dim("(it ended before a sample could see it)") << "\n";
        const json& waiting = member(e, "waiting");
        if (waiting.is_object()) {
            std::string line = "blocked in a synchronous wait: " + str(waiting, "kind");
            if (waiting.contains("object") && waiting["object"].is_string()) {
                line += " on " + str(waiting, "object_type", "") + " " + str(waiting, "object");
            }
            if (waiting.contains("owner") && waiting["owner"].is_number_integer()) line += " held by thread " + integer(waiting, "owner");
            if (waiting.contains("task") && waiting["task"].is_string()) line += " for task " + str(waiting, "task");
            if (waiting.value("queued", false)) line += " for a coroutine whose start is queued on the loop it blocks";
            out << "  " << st.yellow(line) << "\n";
        }
        for (const auto& f : member(e, "stack").is_array() ? e["stack"] : json::array()) {
            out << "    " << frameText(f, st) << "\n";
        }
        const json& native = member(e, "native_stack");
        if (native.is_array() && !native.empty()) {
            out << "  " << st.dim("native:") << "\n";
            for (const auto& f : native) {
                std::string fn = str(f, "function", "");
                std::string mod = str(f, "module", "");
                out << "    " << (fn.empty() ? str(f, "address") : fn) << " "
                    << st.dim("(" + mod.substr(mod.rfind('/') + 1) + ")") << "\n";
            }
        }
    } else if (type == "stall_end") {
        out << "  " << st.yellow("stall #" + integer(e, "stall_id") + " ended after " +
                                 fmt("%.1f", number(e, "duration_ms")) + " ms")
            << "\n";
    } else if (type == "snapshot") {
        json doc = e;
        doc["schema"] = kSnapshotSchema;
        if (m_python.count(pid)) doc["python"] = m_python[pid];
        if (!doc.contains("python") || !doc["python"].is_object()) doc["python"] = json{{"version", "?"}};
        try {
            Snapshot snap = snapshotFromJson(doc);
            std::string reason = e.contains("reason") && e["reason"].is_string() ? " (" + str(e, "reason") + ")" : "";
            out << st.bold("snapshot · " + who + " · " + std::to_string(snap.tasks.size()) + " tasks · " +
                           std::to_string(snap.threads.size()) + " threads" + reason)
                << "\n";
            // What every thread is doing when there is no task to show, and
            // always for the watchdog's dump of a hung program.
            if (snap.tasks.empty() || e.value("reason", json()) == "timeout") {
                cli::renderText(snap, out, st);
            } else {
                renderFindings(snap, out, st);
                renderTaskTrees(snap, out, st);
            }
        } catch (const InspectError& err) {
            out << st.yellow("unreadable snapshot: " + terminalSafe(err.what())) << "\n";
        }
    } else if (type == "unawaited_coroutine") {
        const json& c = member(e, "coroutine");
        out << st.red(st.bold("NEVER AWAITED") + " coroutine '" + (c.is_object() ? str(c, "qualname") : "?") +
                      "' · " + who)
            << "\n";
        out << "  created   "
            << (member(e, "created_at").is_object() ? where(e["created_at"], st)
                                                    : st.dim("(where: unknown, " + str(e, "note", "") + ")"))
            << "\n";
        out << "  discarded " << where(member(e, "discarded_at"), st) << "\n";
        out << "  task      " << taskName(member(e, "task")) << "\n";
    } else if (type == "cancellation_swallowed") {
        out << st.red(st.bold("CANCELLATION SWALLOWED") + " task " + taskName(member(e, "task")) + " · " + who) << "\n";
        out << "  caught at " << where(member(e, "caught_at"), st) << " and " << str(e, "outcome") << "\n";
    } else if (type == "task_exception_unretrieved") {
        const json& x = member(e, "exception");
        out << st.red(st.bold("EXCEPTION NEVER RETRIEVED") + " task " + taskName(member(e, "task")) + " · " + who +
                      ": " + (x.is_object() ? str(x, "type") + ": " + str(x, "message", "") : "?"))
            << "\n";
        if (x.is_object() && member(x, "traceback").is_array()) {
            for (const auto& f : x["traceback"]) out << "    " << frameText(f, st) << "\n";
        }
    } else if (type == "task_destroyed_pending") {
        out << st.red(st.bold("PENDING TASK DESTROYED") + " task " + taskName(member(e, "task")) + " · " + who) << "\n";
        if (member(e, "stack").is_array()) {
            for (const auto& f : e["stack"]) out << "    " << frameText(f, st) << "\n";
        }
    } else if (type == "dropped") {
        out << st.yellow("warning: the agent dropped " + integer(e, "count") +
                         " events: aioscope was not reading fast enough")
            << " " << st.dim(who) << "\n";
    } else if (type == "capabilities") {
        std::string text;
        if (member(e, "capabilities").is_object()) {
            for (const auto& [name, c] : e["capabilities"].items()) {
                text += (text.empty() ? "" : ", ") + terminalSafe(name) + " " + str(c, "state");
            }
        }
        out << st.dim("capabilities: " + text) << " " << st.dim(who) << "\n";
    } else if (type == "exit") {
        out << st.bold(who + " exited") << " " << str(e, "description", "") << "\n";
    } else if (e.contains("message")) {
        std::string msg = str(e, "message", "");
        out << (type == "error" || type == "warning" ? st.yellow(type + ": " + msg) : st.dim(type + ": " + msg)) << " "
            << st.dim(who) << "\n";
    } else {
        out << st.dim(type + " " + who) << "\n";
    }
    if (member(e, "test").is_string()) {  // under pytest: which test it happened in
        std::string test = str(e, "test");
        std::string created = member(e, "task_created_in_test").is_string() ? str(e, "task_created_in_test") : "";
        out << "  " << st.dim("in test " + test + " (" + str(e, "test_phase", "") + ")" +
                               (created.empty() || created == test ? "" : ", task created in " + created))
            << "\n";
    }
    return out.str();
}

}  // namespace aioscope::cli
