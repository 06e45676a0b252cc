#include "report/activity.h"

#include <algorithm>
#include <regex>
#include <tuple>

namespace aioscope::cli::report {

using nlohmann::json;

namespace {

bool isBugType(const std::string& t) {
    return t == "unawaited_coroutine" || t == "cancellation_swallowed" || t == "task_exception_unretrieved" ||
           t == "task_destroyed_pending";
}

double num(const json& e, const char* key, double fallback = 0) {
    auto it = e.find(key);
    return it != e.end() && it->is_number() ? it->get<double>() : fallback;
}

std::string str(const json& e, const char* key) {
    auto it = e.find(key);
    return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<std::int64_t> integer(const json& e, const char* key) {
    auto it = e.find(key);
    if (it == e.end() || !it->is_number_integer()) return std::nullopt;
    return it->get<std::int64_t>();
}

void see(Process& p, double t) {
    if (t <= 0) return;
    if (!p.seen || t < p.first) p.first = t;
    if (!p.seen || t > p.last) p.last = t;
    p.seen = true;
}

StackFrame pyFrame(const json& f) {
    StackFrame out;
    if (!f.is_object()) {
        out.name = "?";
        return out;
    }
    out.name = str(f, "qualname");
    if (out.name.empty()) out.name = str(f, "function");
    if (out.name.empty()) out.name = "?";
    out.file = str(f, "file");
    if (auto l = integer(f, "line")) out.line = *l;
    return out;
}

}  // namespace

Activity collectActivity(const std::vector<Input>& inputs) {
    Activity a;
    std::map<std::tuple<long, std::int64_t, std::int64_t>, std::size_t> open;  // (pid, thread, stall id) -> stall
    std::map<long, std::map<std::int64_t, std::string>> threadNames;
    auto addSnapshot = [&](long pid, double ts, const json& doc) {
        a.snapshots.push_back({pid, ts, &doc});
        see(a.processes[pid], ts);
        if (doc.contains("threads") && doc["threads"].is_array()) {
            for (const auto& t : doc["threads"]) {
                if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) continue;
                if (auto n = integer(t, "native_id")) threadNames[pid][*n] = t["name"].get<std::string>();
                if (auto n = integer(t, "thread_id")) threadNames[pid][*n] = t["name"].get<std::string>();
            }
        }
    };
    for (const auto& in : inputs) {
        if (in.snapshot) {
            long pid = static_cast<long>(num(in.doc, "pid"));
            Process& p = a.processes[pid];
            p.pid = pid;
            if (in.doc.contains("python") && in.doc["python"].is_object()) {
                p.python = str(in.doc["python"], "version");
                p.executable = str(in.doc["python"], "executable");
            }
            addSnapshot(pid, num(in.doc, "captured_at"), in.doc);
            continue;
        }
        for (const auto& e : in.events) {
            long pid = static_cast<long>(num(e, "pid"));
            Process& p = a.processes[pid];
            p.pid = pid;
            double ts = num(e, "ts");
            const std::string type = e["type"].get<std::string>();
            if (type == "connect") continue;
            see(p, ts);
            if (type == "hello" && e.contains("python") && e["python"].is_object()) {
                p.python = str(e["python"], "version");
                p.executable = str(e["python"], "executable");
            } else if (type == "snapshot") {
                addSnapshot(pid, ts, e);
            } else if (type == "stall" || type == "stall_end") {
                std::int64_t thread = integer(e, "native_id").value_or(integer(e, "thread_id").value_or(0));
                std::int64_t id = integer(e, "stall_id").value_or(-1);
                auto key = std::make_tuple(pid, thread, id);
                auto it = open.find(key);
                if (it == open.end() || (type == "stall" && a.stalls[it->second].event)) {
                    Stall s;
                    s.pid = pid;
                    s.threadKey = thread;
                    s.stallId = id;
                    a.stalls.push_back(s);
                    it = open.insert_or_assign(key, a.stalls.size() - 1).first;
                }
                Stall& s = a.stalls[it->second];
                if (type == "stall") {
                    s.event = &e;
                    if (!s.exact) s.durationMs = num(e, "elapsed_ms");
                    s.start = num(e, "started_at", s.start);
                } else {
                    s.exact = true;
                    s.durationMs = num(e, "duration_ms", s.durationMs);
                    if (s.start == 0) s.start = num(e, "started_at");
                }
                see(p, s.start);
                see(p, s.start + s.durationMs / 1000);
            } else if (isBugType(type)) {
                a.bugs.push_back({pid, ts, &e});
            } else if (type != "exit") {
                a.messages.push_back({pid, ts, &e});
            }
        }
    }
    for (auto& s : a.stalls) {
        auto& names = threadNames[s.pid];
        auto it = names.find(s.threadKey);
        if (it != names.end()) s.threadName = it->second;
    }
    std::stable_sort(a.stalls.begin(), a.stalls.end(), [](const Stall& x, const Stall& y) { return x.start < y.start; });
    bool any = false;
    for (auto& [pid, p] : a.processes) {
        p.pid = pid;
        if (!p.seen) continue;
        if (!any || p.first < a.t0) a.t0 = p.first;
        if (!any || p.last > a.t1) a.t1 = p.last;
        any = true;
    }
    return a;
}

std::vector<StackFrame> stallPath(const Stall& stall) {
    std::vector<StackFrame> path;
    if (!stall.event) return {StackFrame{"(no stack: only the stall's end was recorded)", "", std::nullopt, false}};
    const json& e = *stall.event;
    if (e.contains("stack") && e["stack"].is_array()) {
        const json& st = e["stack"];
        for (auto it = st.rbegin(); it != st.rend(); ++it) path.push_back(pyFrame(*it));
    }
    // Same patterns as viewer/js/core/flame.js.
    static const std::regex eval("^_?PyEval_EvalFrame|^_PyEval_Vector$|^PyEval_EvalCode");
    static const std::regex glue("^_?PyObject_(Vectorcall|Call)|^_PyFunction_Vectorcall|^cfunction_(vectorcall|call)|"
                                 "^method_vectorcall|^_PyCFunction|^PyCFunction_Call|^vectorcall_");
    std::vector<StackFrame> called;
    if (e.contains("native_stack") && e["native_stack"].is_array()) {
        for (const auto& f : e["native_stack"]) {
            if (!f.is_object()) continue;
            std::string fn = str(f, "function");
            if (std::regex_search(fn, eval)) break;
            if (std::regex_search(fn, glue)) continue;
            called.push_back({fn.empty() ? str(f, "address") : fn, str(f, "module"), std::nullopt, true});
        }
    }
    path.insert(path.end(), called.rbegin(), called.rend());
    if (path.empty()) {
        bool ended = e.contains("captured") && e["captured"] == false;
        path.push_back({ended ? "(ended before its stack could be read)" : "(no stack)", "", std::nullopt, false});
    }
    return path;
}

std::vector<StackFrame> taskPath(const json& task) {
    std::vector<StackFrame> path;
    if (task.is_object() && task.contains("stack") && task["stack"].is_array()) {
        const json& st = task["stack"];
        for (auto it = st.rbegin(); it != st.rend(); ++it) path.push_back(pyFrame(*it));
    }
    if (path.empty()) path.push_back({"(no stack)", "", std::nullopt, false});
    return path;
}

std::string frameLabel(const StackFrame& f, bool shortFiles) {
    std::string file = f.file;
    if (shortFiles) {
        auto slash = file.rfind('/');
        if (slash != std::string::npos) file = file.substr(slash + 1);
    }
    if (file.empty()) return f.name;
    if (f.native) return f.name + " (" + file + ")";
    return f.name + " (" + file + ":" + (f.line ? std::to_string(*f.line) : std::string("?")) + ")";
}

}  // namespace aioscope::cli::report
