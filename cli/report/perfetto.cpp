// Chrome trace event JSON (opened by Perfetto and chrome://tracing).
// Timestamps are microseconds from the first thing seen; `otherData.t0`
// gives that moment as Unix seconds.
#include <algorithm>
#include <cmath>
#include <tuple>
#include <map>
#include <set>

#include "report/exports.h"

namespace aioscope::cli::report {

using nlohmann::json;

namespace {

// Trace viewers keep 32-bit thread ids: kernel thread ids fit, a Python
// thread id (a pthread_t, used when the native one is unknown) is folded.
std::int64_t tid32(std::int64_t id) {
    return id >= 0 && id < (1LL << 31) ? id : (id ^ (id >> 31)) & 0x7fffffff;
}

std::string str(const json& e, const char* key) {
    auto it = e.find(key);
    return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
}

json frames(const std::vector<StackFrame>& path) {
    json out = json::array();
    for (auto it = path.rbegin(); it != path.rend(); ++it) out.push_back(frameLabel(*it, false));
    return out;  // innermost first, as everywhere in aioscope
}

struct TaskSpan {
    long pid;
    std::string name;
    std::int64_t tid;
    double first, last;
    std::size_t lastSnapshot;  // index into the process's snapshot times
};

}  // namespace

std::size_t writePerfetto(std::ostream& out, const Activity& a) {
    json events = json::array();
    auto us = [&](double ts) { return std::llround((ts - a.t0) * 1e6); };

    for (const auto& [pid, p] : a.processes) {
        std::string name = "python " + std::to_string(pid) + (p.python.empty() ? "" : " (CPython " + p.python + ")");
        events.push_back({{"ph", "M"}, {"name", "process_name"}, {"pid", pid}, {"tid", 0}, {"args", {{"name", name}}}});
    }
    std::set<std::pair<long, std::int64_t>> named;
    std::size_t stalls = 0;
    for (const auto& s : a.stalls) {
        std::int64_t tid = tid32(s.threadKey);
        if (named.insert({s.pid, tid}).second) {
            events.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", s.pid}, {"tid", tid},
                              {"args", {{"name", s.threadName.empty() ? "event loop thread " + std::to_string(s.threadKey)
                                                                      : s.threadName + " (event loop)"}}}});
        }
        std::vector<StackFrame> path = stallPath(s);
        // The innermost frame of the program itself names the slice.
        std::string where = path.back().name;
        for (auto it = path.rbegin(); it != path.rend(); ++it) {
            if (!it->native && it->file.find("/lib/python3.") == std::string::npos) {
                where = frameLabel(*it, true);
                break;
            }
        }
        json args = {{"stall_id", s.stallId}, {"duration_ms", s.durationMs}, {"exact", s.exact}, {"stack", frames(path)}};
        if (s.event && s.event->contains("task") && (*s.event)["task"].is_object()) args["task"] = str((*s.event)["task"], "name");
        if (s.event && s.event->contains("test")) args["test"] = (*s.event)["test"];
        events.push_back({{"ph", "X"}, {"cat", "stall"}, {"name", "stall: " + where}, {"pid", s.pid}, {"tid", tid},
                          {"ts", us(s.start)}, {"dur", std::llround(s.durationMs * 1000)}, {"args", std::move(args)}});
        ++stalls;
    }

    // Task lifetimes: from the first to the last moment a task was seen (in
    // snapshots, stalls, events); one seen in a single snapshot lasts until
    // the next snapshot of its process (or the process's last event).
    std::map<long, std::vector<double>> snapTimes;
    for (const auto& snap : a.snapshots) snapTimes[snap.pid].push_back(snap.ts);
    for (auto& [pid, times] : snapTimes) std::sort(times.begin(), times.end());
    std::map<std::tuple<long, std::string, std::string>, TaskSpan> tasks;
    std::vector<std::tuple<long, std::string, std::string>> taskOrder;
    auto sight = [&](long pid, const json& t, double ts, std::int64_t tid) {
        if (!t.is_object()) return;
        std::string id = str(t, "id"), name = str(t, "name");
        if (id.empty()) return;
        auto key = std::make_tuple(pid, id, name);
        auto [it, fresh] = tasks.try_emplace(key, TaskSpan{pid, name, tid, ts, ts, 0});
        if (fresh) taskOrder.push_back(key);
        it->second.first = std::min(it->second.first, ts);
        it->second.last = std::max(it->second.last, ts);
        if (!it->second.tid && tid) it->second.tid = tid;
    };
    for (const auto& snap : a.snapshots) {
        const json& doc = *snap.doc;
        if (!doc.contains("tasks") || !doc["tasks"].is_array()) continue;
        std::map<std::int64_t, std::int64_t> nativeOf;  // Python thread id -> native id
        if (doc.contains("threads") && doc["threads"].is_array()) {
            for (const auto& th : doc["threads"]) {
                if (th.is_object() && th.contains("thread_id") && th["thread_id"].is_number_integer() &&
                    th.contains("native_id") && th["native_id"].is_number_integer()) {
                    nativeOf[th["thread_id"].get<std::int64_t>()] = th["native_id"].get<std::int64_t>();
                }
            }
        }
        for (const auto& t : doc["tasks"]) {
            std::int64_t tid = 0;
            if (t.is_object() && t.contains("thread_id") && t["thread_id"].is_number_integer()) {
                auto it = nativeOf.find(t["thread_id"].get<std::int64_t>());
                tid = it != nativeOf.end() ? it->second : t["thread_id"].get<std::int64_t>();
            }
            sight(snap.pid, t, snap.ts, tid);
        }
    }
    for (const auto& s : a.stalls) {
        if (s.event && s.event->contains("task")) sight(s.pid, (*s.event)["task"], s.start, s.threadKey);
    }
    for (const auto& b : a.bugs) {
        if (b.event->contains("task")) sight(b.pid, (*b.event)["task"], b.ts, 0);
    }
    std::int64_t nextId = 1;
    for (const auto& key : taskOrder) {
        const TaskSpan& t = tasks[key];
        double end = t.last;
        if (end <= t.first) {
            const auto& times = snapTimes[t.pid];
            auto next = std::upper_bound(times.begin(), times.end(), t.first);
            auto proc = a.processes.find(t.pid);
            end = next != times.end() ? *next : proc != a.processes.end() ? proc->second.last : t.first;
            if (end <= t.first) end = t.first + 0.001;
        }
        json common = {{"cat", "task"}, {"name", t.name.empty() ? std::get<1>(key) : t.name}, {"id", nextId++},
                       {"pid", t.pid}, {"tid", tid32(t.tid ? t.tid : t.pid)}};
        json b = common, e = common;
        b["ph"] = "b";
        b["ts"] = us(t.first);
        b["args"] = {{"task", std::get<1>(key)}};
        e["ph"] = "e";
        e["ts"] = us(end);
        events.push_back(std::move(b));
        events.push_back(std::move(e));
    }

    for (const auto& b : a.bugs) {
        const json& e = *b.event;
        json args = json::object();
        if (e.contains("task") && e["task"].is_object()) args["task"] = str(e["task"], "name");
        for (const char* k : {"test", "test_phase", "outcome", "exception", "coroutine", "caught_at", "discarded_at"}) {
            if (e.contains(k)) args[k] = e[k];
        }
        events.push_back({{"ph", "i"}, {"s", "p"}, {"cat", "bug"}, {"name", str(e, "type")}, {"pid", b.pid},
                          {"tid", 0}, {"ts", us(b.ts)}, {"args", std::move(args)}});
    }
    for (const auto& m : a.messages) {
        const json& e = *m.event;
        json args = json::object();
        if (e.contains("message")) args["message"] = e["message"];
        if (e.contains("count")) args["count"] = e["count"];
        events.push_back({{"ph", "i"}, {"s", "p"}, {"cat", "message"}, {"name", str(e, "type")}, {"pid", m.pid},
                          {"tid", 0}, {"ts", us(m.ts)}, {"args", std::move(args)}});
    }
    for (const auto& snap : a.snapshots) {
        const json& doc = *snap.doc;
        std::size_t n = doc.contains("tasks") && doc["tasks"].is_array() ? doc["tasks"].size() : 0;
        json findings = json::array();
        if (doc.contains("findings") && doc["findings"].is_array()) {
            for (const auto& f : doc["findings"]) {
                if (f.is_object()) findings.push_back(str(f, "kind") + ": " + str(f, "message"));
            }
        }
        events.push_back({{"ph", "i"}, {"s", "p"}, {"cat", "snapshot"},
                          {"name", "snapshot: " + std::to_string(n) + " tasks" + (findings.empty() ? "" : ", findings")},
                          {"pid", snap.pid}, {"tid", 0}, {"ts", us(snap.ts)}, {"args", {{"findings", findings}}}});
    }
    json doc = {{"traceEvents", std::move(events)},
                {"displayTimeUnit", "ms"},
                {"otherData", {{"exporter", std::string("aioscope ") + AIOSCOPE_VERSION}, {"t0", a.t0}}}};
    out << doc.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    return stalls;
}

}  // namespace aioscope::cli::report
