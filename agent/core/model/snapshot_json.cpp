#include "model/snapshot_json.h"

#include "errors.h"

namespace aioscope {

using nlohmann::json;

namespace {

template <class T>
json optional(const std::optional<T>& v) {
    return v ? json(*v) : json(nullptr);
}

[[noreturn]] void bad(const std::string& what) {
    throw InspectError(Errc::bad_input, "not an aioscope snapshot: " + what);
}

const json& field(const json& obj, const char* key, const char* where) {
    if (!obj.is_object()) bad(std::string(where) + " is not an object");
    auto it = obj.find(key);
    if (it == obj.end()) bad(std::string(where) + " has no \"" + key + "\"");
    return *it;
}

std::string str(const json& obj, const char* key, const char* where) {
    const json& v = field(obj, key, where);
    if (!v.is_string()) bad(std::string(where) + "." + key + " is not a string");
    return v.get<std::string>();
}

template <class T>
T num(const json& obj, const char* key, const char* where) {
    const json& v = field(obj, key, where);
    if (!v.is_number()) bad(std::string(where) + "." + key + " is not a number");
    return v.get<T>();
}

template <class T>
std::optional<T> optNum(const json& obj, const char* key, const char* where) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (!it->is_number()) bad(std::string(where) + "." + key + " is not a number");
    return it->get<T>();
}

std::optional<std::string> optStr(const json& obj, const char* key, const char* where) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) bad(std::string(where) + "." + key + " is not a string");
    return it->get<std::string>();
}

const json& array(const json& obj, const char* key, const char* where) {
    const json& v = field(obj, key, where);
    if (!v.is_array()) bad(std::string(where) + "." + key + " is not an array");
    return v;
}

}  // namespace

json toJson(const Frame& f) {
    return {{"function", f.function}, {"qualname", f.qualname}, {"file", f.file}, {"line", optional(f.line)}};
}

json toJson(const Snapshot& s) {
    json threads = json::array();
    for (const auto& t : s.threads) {
        json frames = json::array();
        for (const auto& f : t.frames) frames.push_back(toJson(f));
        threads.push_back({{"interpreter_id", t.interpreterId},
                           {"thread_id", t.threadId},
                           {"native_id", optional(t.nativeId)},
                           {"name", optional(t.name)},
                           {"holds_gil", t.holdsGil},
                           {"frames", std::move(frames)},
                           {"truncated", t.truncated},
                           {"error", optional(t.error)}});
    }
    const PythonInfo& p = s.python;
    return {{"schema", kSnapshotSchema},
            {"pid", s.pid},
            {"captured_at", s.capturedAt},
            {"duration_ms", s.durationMs},
            {"paused_ms", optional(s.pausedMs)},
            {"attempts", s.attempts},
            {"python",
             {{"version", p.version},
              {"hexversion", p.hexversion},
              {"implementation", p.implementation},
              {"executable", p.executable},
              {"runtime_file", p.runtimeFile},
              {"shared_libpython", p.sharedLibpython},
              {"layout_source", p.layoutSource}}},
            {"threads", std::move(threads)},
            {"warnings", s.warnings}};
}

Frame frameFromJson(const json& j) {
    Frame f;
    f.function = str(j, "function", "frame");
    f.qualname = str(j, "qualname", "frame");
    f.file = str(j, "file", "frame");
    f.line = optNum<int>(j, "line", "frame");
    return f;
}

Snapshot snapshotFromJson(const json& doc) {
    if (!doc.is_object()) bad("the document is not a JSON object");
    auto schema = doc.find("schema");
    if (schema == doc.end() || !schema->is_string()) bad("no \"schema\" field");
    if (*schema != kSnapshotSchema) {
        bad("schema is \"" + schema->get<std::string>() + "\", expected \"" + kSnapshotSchema + "\"");
    }
    Snapshot s;
    s.pid = num<std::int64_t>(doc, "pid", "snapshot");
    s.capturedAt = optNum<double>(doc, "captured_at", "snapshot").value_or(0);
    s.durationMs = optNum<double>(doc, "duration_ms", "snapshot").value_or(0);
    s.pausedMs = optNum<double>(doc, "paused_ms", "snapshot");
    s.attempts = optNum<int>(doc, "attempts", "snapshot").value_or(1);
    const json& py = field(doc, "python", "snapshot");
    s.python.version = str(py, "version", "python");
    s.python.hexversion = optNum<std::uint64_t>(py, "hexversion", "python").value_or(0);
    s.python.executable = optStr(py, "executable", "python").value_or("");
    s.python.runtimeFile = optStr(py, "runtime_file", "python").value_or("");
    s.python.layoutSource = optStr(py, "layout_source", "python").value_or("");
    for (const json& t : array(doc, "threads", "snapshot")) {
        Thread th;
        th.interpreterId = optNum<std::int64_t>(t, "interpreter_id", "thread").value_or(0);
        th.threadId = num<std::uint64_t>(t, "thread_id", "thread");
        th.nativeId = optNum<std::int64_t>(t, "native_id", "thread");
        th.name = optStr(t, "name", "thread");
        auto gil = t.find("holds_gil");
        th.holdsGil = gil != t.end() && gil->is_boolean() && gil->get<bool>();
        for (const json& f : array(t, "frames", "thread")) th.frames.push_back(frameFromJson(f));
        auto tr = t.find("truncated");
        th.truncated = tr != t.end() && tr->is_boolean() && tr->get<bool>();
        th.error = optStr(t, "error", "thread");
        s.threads.push_back(std::move(th));
    }
    if (auto w = doc.find("warnings"); w != doc.end() && w->is_array()) {
        for (const json& x : *w) {
            if (x.is_string()) s.warnings.push_back(x.get<std::string>());
        }
    }
    return s;
}

}  // namespace aioscope
