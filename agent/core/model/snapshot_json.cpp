#include "model/snapshot_json.h"

#include <algorithm>
#include <limits>
#include <sstream>
#include <type_traits>

#include "errors.h"

namespace aioscope {

using nlohmann::json;

namespace {

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

// A number of type T, or bad input: integer fields take integers in T's
// range only (converting 1e300 to an integer is undefined behaviour, and a
// wrapped line number would be a lie).
template <class T>
T number(const json& v, const char* key, const char* where) {
    auto fail = [&](const char* what) { bad(std::string(where) + "." + key + " is " + what); };
    if constexpr (std::is_integral_v<T>) {
        if (v.is_number_unsigned()) {
            auto u = v.get<std::uint64_t>();
            if (u > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) fail("out of range");
            return static_cast<T>(u);
        }
        if (v.is_number_integer()) {
            auto i = v.get<std::int64_t>();
            if (i < 0 ? i < static_cast<std::int64_t>(std::numeric_limits<T>::min())
                      : static_cast<std::uint64_t>(i) > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
                fail("out of range");
            }
            return static_cast<T>(i);
        }
        fail(v.is_number() ? "not an integer" : "not a number");
    } else {
        if (!v.is_number()) fail("not a number");
    }
    return v.get<T>();
}

template <class T>
T num(const json& obj, const char* key, const char* where) {
    return number<T>(field(obj, key, where), key, where);
}

template <class T>
std::optional<T> optNum(const json& obj, const char* key, const char* where) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    return number<T>(*it, key, where);
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

void writeFrames(JsonWriter& w, const Stack& frames) {
    w.beginArray();
    for (const auto& f : frames) {
        w.beginObject();
        w.key("function").value(f.function);
        w.key("qualname").value(f.qualname);
        w.key("file").value(f.file);
        w.key("line").value(f.line);
        w.endObject();
    }
    w.endArray();
}

namespace {

void writeHexList(JsonWriter& w, const std::vector<std::uint64_t>& ids) {
    w.beginArray();
    for (auto id : ids) w.hex(id);
    w.endArray();
}

void writeOptHex(JsonWriter& w, const std::optional<std::uint64_t>& v) { v ? w.hex(*v) : w.null(); }

}  // namespace

void writeThreadWait(JsonWriter& w, const std::optional<ThreadWait>& t) {
    if (!t) {
        w.null();
        return;
    }
    w.beginObject();
    w.key("kind").value(t->kind);
    w.key("object");
    t->object ? w.hex(t->object) : w.null();
    w.key("object_type").value(t->objectType);
    w.key("owner").value(t->owner);
    w.key("thread").value(t->thread);
    w.key("task");
    writeOptHex(w, t->task);
    w.key("loop");
    writeOptHex(w, t->loop);
    w.key("queued").value(t->queued);
    w.key("futures");
    writeHexList(w, t->futures);
    w.endObject();
}

namespace {

void writeWorker(JsonWriter& w, const std::optional<WorkerInfo>& k) {
    if (!k) {
        w.null();
        return;
    }
    w.beginObject();
    w.key("executor");
    k->executor ? w.hex(k->executor) : w.null();
    w.key("max_workers").value(k->maxWorkers);
    w.key("work_item");
    writeOptHex(w, k->workItem);
    w.key("future");
    writeOptHex(w, k->future);
    w.key("awaited_by");
    writeHexList(w, k->awaitedBy);
    w.endObject();
}

}  // namespace

void writeThreads(JsonWriter& w, const std::vector<Thread>& threads) {
    w.beginArray();
    for (const auto& t : threads) {
        w.beginObject();
        w.key("interpreter_id").value(t.interpreterId);
        w.key("thread_id").value(t.threadId);
        w.key("native_id").value(t.nativeId);
        w.key("name").value(t.name);
        w.key("holds_gil").value(t.holdsGil);
        w.key("frames");
        writeFrames(w, t.frames);
        w.key("truncated").value(t.truncated);
        w.key("omitted_frames").value(static_cast<std::int64_t>(t.omittedFrames));
        w.key("error").value(t.error);
        w.key("waiting");
        writeThreadWait(w, t.waiting);
        w.key("worker");
        writeWorker(w, t.worker);
        w.key("holds");
        writeHexList(w, t.holds);
        w.key("loop");
        writeOptHex(w, t.loop);
        w.endObject();
    }
    w.endArray();
}

namespace {

void writeIds(JsonWriter& w, const std::vector<std::uint64_t>& ids) {
    w.beginArray();
    for (auto id : ids) w.hex(id);
    w.endArray();
}

void writeAwaiting(JsonWriter& w, const std::optional<Awaiting>& a) {
    if (!a) {
        w.null();
        return;
    }
    w.beginObject();
    w.key("kind").value(a->kind);
    w.key("address");
    a->address ? w.hex(a->address) : w.null();
    w.key("type").value(a->type);
    w.key("object");
    a->object ? w.hex(*a->object) : w.null();
    w.key("object_type").value(a->objectType);
    w.key("task");
    a->task ? w.hex(*a->task) : w.null();
    w.key("children");
    writeIds(w, a->children);
    w.key("external_refs").value(a->externalRefs);
    const Awaiting::Detail& d = a->detail();
    w.key("fd").value(d.fd);
    w.key("concurrent_future");
    writeOptHex(w, d.concurrentFuture);
    w.key("thread").value(d.thread);
    w.key("executor");
    writeOptHex(w, d.executor);
    w.key("referenced_by");
    if (d.referencedBy) {
        w.beginObject();
        w.key("tasks");
        writeHexList(w, d.referencedBy->tasks);
        w.key("threads").beginArray();
        for (auto id : d.referencedBy->threads) w.value(id);
        w.endArray();
        w.endObject();
    } else {
        w.null();
    }
    w.key("done").value(a->done);
    w.endObject();
}

}  // namespace

void writeTask(JsonWriter& w, const Task& t) { writeTask(w, t, nullptr); }

void writeTask(JsonWriter& w, const Task& t, StackTexts* stacks) {
    {
        w.beginObject();
        w.key("id").hex(t.id);
        w.key("runtime").value(t.runtime);
        w.key("name").value(t.name);
        w.key("state").value(taskStateName(t.state));
        w.key("interpreter_id").value(t.interpreterId);
        w.key("thread_id").value(t.threadId);
        w.key("loop");
        t.loop ? w.hex(t.loop) : w.null();
        w.key("stack");
        if (stacks && t.stack) {
            auto [it, added] = stacks->try_emplace(t.stack.get());
            if (added) {
                std::ostringstream text;
                {
                    JsonWriter sub(text, w);
                    writeFrames(sub, *t.stack);
                }
                it->second = std::move(text).str();
            }
            w.raw(it->second);
        } else {
            writeFrames(w, t.frames());
        }
        w.key("awaiting");
        writeAwaiting(w, t.awaiting);
        w.key("awaited_by");
        writeIds(w, t.awaitedBy);
        w.key("cancel_requests").value(t.cancelRequests);
        w.key("cancel_pending").value(t.cancelPending);
        w.key("handling_cancel").value(t.handlingCancel);
        w.key("holds");
        writeIds(w, t.holds);
        w.key("omitted_frames").value(static_cast<std::int64_t>(t.omittedFrames));
        w.key("error").value(t.error);
        w.endObject();
    }
}

void writeTasks(JsonWriter& w, const std::vector<Task>& tasks) {
    w.beginArray();
    StackTexts stacks;
    for (const auto& t : tasks) writeTask(w, t, &stacks);
    w.endArray();
}

void writeFindings(JsonWriter& w, const std::vector<Finding>& findings) {
    w.beginArray();
    for (const auto& f : findings) {
        w.beginObject();
        w.key("kind").value(f.kind);
        w.key("tasks");
        writeIds(w, f.tasks);
        w.key("objects");
        writeIds(w, f.objects);
        w.key("threads").beginArray();
        for (auto id : f.threads) w.value(id);
        w.endArray();
        w.key("message").value(f.message);
        w.endObject();
    }
    w.endArray();
}

void writeJson(const Snapshot& s, std::ostream& out) {
    JsonWriter w(out);
    const PythonInfo& p = s.python;
    w.beginObject();
    w.key("schema").value(kSnapshotSchema);
    w.key("pid").value(s.pid);
    w.key("captured_at").value(s.capturedAt);
    w.key("duration_ms").value(s.durationMs);
    w.key("paused_ms").value(s.pausedMs);
    w.key("attempts").value(s.attempts);
    w.key("python").beginObject();
    w.key("version").value(p.version);
    w.key("hexversion").value(p.hexversion);
    w.key("implementation").value(p.implementation);
    w.key("executable").value(p.executable);
    w.key("runtime_file").value(p.runtimeFile);
    w.key("shared_libpython").value(p.sharedLibpython);
    w.key("layout_source").value(p.layoutSource);
    w.endObject();
    w.key("threads");
    writeThreads(w, s.threads);
    w.key("tasks");
    writeTasks(w, s.tasks);
    w.key("findings");
    writeFindings(w, s.findings);
    w.key("warnings").beginArray();
    for (const auto& x : s.warnings) w.value(x);
    w.endArray();
    w.endObject();
    w.flush();
    out << "\n";
}

json toJson(const Snapshot& s) {
    std::ostringstream out;
    writeJson(s, out);
    return json::parse(out.str());
}

namespace {

std::uint64_t hexId(const json& v, const char* where) {
    if (!v.is_string()) bad(std::string(where) + " is not a hex string");
    const std::string& s = v.get_ref<const std::string&>();
    if (s.size() < 3 || s.size() > 18 || s.compare(0, 2, "0x") != 0 ||
        s.find_first_not_of("0123456789abcdefABCDEF", 2) != std::string::npos) {
        bad(std::string(where) + " is not a hex address: \"" + s + "\"");
    }
    return std::stoull(s.substr(2), nullptr, 16);
}

std::optional<std::uint64_t> optHex(const json& obj, const char* key, const char* where) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    return hexId(*it, (std::string(where) + "." + key).c_str());
}

std::vector<std::uint64_t> hexIds(const json& obj, const char* key, const char* where) {
    std::vector<std::uint64_t> out;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return out;
    if (!it->is_array()) bad(std::string(where) + "." + key + " is not an array");
    for (const json& v : *it) out.push_back(hexId(v, where));
    return out;
}

bool flag(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it != obj.end() && it->is_boolean() && it->get<bool>();
}

TaskState taskState(const std::string& s) {
    if (s == "running") return TaskState::running;
    if (s == "done") return TaskState::done;
    if (s == "cancelled") return TaskState::cancelled;
    if (s == "pending") return TaskState::pending;
    bad("unknown task state \"" + s + "\"");
}

Task taskFromJson(const json& j) {
    Task t;
    t.id = hexId(field(j, "id", "task"), "task.id");
    // Snapshots written before trio support have no runtime: asyncio's.
    t.runtime = optStr(j, "runtime", "task").value_or("asyncio");
    t.name = str(j, "name", "task");
    t.state = taskState(str(j, "state", "task"));
    t.interpreterId = optNum<std::int64_t>(j, "interpreter_id", "task").value_or(0);
    t.threadId = optNum<std::uint64_t>(j, "thread_id", "task");
    t.loop = optHex(j, "loop", "task").value_or(0);
    auto stack = std::make_shared<Stack>();
    for (const json& f : array(j, "stack", "task")) stack->push_back(frameFromJson(f));
    t.stack = std::move(stack);
    if (auto a = j.find("awaiting"); a != j.end() && !a->is_null()) {
        if (!a->is_object()) bad("task.awaiting is not an object");
        Awaiting w;
        w.kind = str(*a, "kind", "awaiting");
        w.address = optHex(*a, "address", "awaiting").value_or(0);
        w.type = optStr(*a, "type", "awaiting").value_or("");
        w.object = optHex(*a, "object", "awaiting");
        w.objectType = optStr(*a, "object_type", "awaiting").value_or("");
        w.task = optHex(*a, "task", "awaiting");
        w.children = hexIds(*a, "children", "awaiting");
        w.externalRefs = optNum<std::int64_t>(*a, "external_refs", "awaiting");
        Awaiting::Detail d;
        d.fd = optNum<std::int64_t>(*a, "fd", "awaiting");
        d.concurrentFuture = optHex(*a, "concurrent_future", "awaiting");
        d.thread = optNum<std::uint64_t>(*a, "thread", "awaiting");
        d.executor = optHex(*a, "executor", "awaiting");
        if (auto r = a->find("referenced_by"); r != a->end() && !r->is_null()) {
            if (!r->is_object()) bad("awaiting.referenced_by is not an object");
            Awaiting::ReferencedBy by;
            by.tasks = hexIds(*r, "tasks", "awaiting.referenced_by");
            if (auto th = r->find("threads"); th != r->end() && th->is_array()) {
                for (const json& v : *th) {
                    if (!v.is_number_unsigned()) bad("awaiting.referenced_by.threads holds a non-number");
                    by.threads.push_back(v.get<std::uint64_t>());
                }
            }
            d.referencedBy = std::move(by);
        }
        w.setDetail(std::move(d));
        w.done = flag(*a, "done");
        t.awaiting = std::move(w);
    }
    t.awaitedBy = hexIds(j, "awaited_by", "task");
    t.cancelRequests = optNum<int>(j, "cancel_requests", "task");
    t.cancelPending = flag(j, "cancel_pending");
    t.handlingCancel = flag(j, "handling_cancel");
    t.holds = hexIds(j, "holds", "task");
    t.omittedFrames = static_cast<std::size_t>(std::max<std::int64_t>(0, optNum<std::int64_t>(j, "omitted_frames", "task").value_or(0)));
    t.error = optStr(j, "error", "task");
    return t;
}

Finding findingFromJson(const json& j) {
    Finding f;
    f.kind = str(j, "kind", "finding");
    f.tasks = hexIds(j, "tasks", "finding");
    f.objects = hexIds(j, "objects", "finding");
    if (auto th = j.find("threads"); th != j.end() && th->is_array()) {
        for (const json& v : *th) {
            if (!v.is_number_unsigned()) bad("finding.threads holds a non-number");
            f.threads.push_back(v.get<std::uint64_t>());
        }
    }
    f.message = str(j, "message", "finding");
    return f;
}

}  // namespace

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
    s.python.implementation = optStr(py, "implementation", "python").value_or("cpython");
    s.python.sharedLibpython = flag(py, "shared_libpython");
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
        th.omittedFrames = static_cast<std::size_t>(
            std::max<std::int64_t>(0, optNum<std::int64_t>(t, "omitted_frames", "thread").value_or(0)));
        th.error = optStr(t, "error", "thread");
        if (auto wt = t.find("waiting"); wt != t.end() && !wt->is_null()) {
            if (!wt->is_object()) bad("thread.waiting is not an object");
            ThreadWait w;
            w.kind = str(*wt, "kind", "thread.waiting");
            w.object = optHex(*wt, "object", "thread.waiting").value_or(0);
            w.objectType = optStr(*wt, "object_type", "thread.waiting").value_or("");
            w.owner = optNum<std::uint64_t>(*wt, "owner", "thread.waiting");
            w.thread = optNum<std::uint64_t>(*wt, "thread", "thread.waiting");
            w.task = optHex(*wt, "task", "thread.waiting");
            w.loop = optHex(*wt, "loop", "thread.waiting");
            w.queued = flag(*wt, "queued");
            w.futures = hexIds(*wt, "futures", "thread.waiting");
            th.waiting = std::move(w);
        }
        if (auto wk = t.find("worker"); wk != t.end() && !wk->is_null()) {
            if (!wk->is_object()) bad("thread.worker is not an object");
            WorkerInfo k;
            k.executor = optHex(*wk, "executor", "thread.worker").value_or(0);
            k.maxWorkers = optNum<std::int64_t>(*wk, "max_workers", "thread.worker");
            k.workItem = optHex(*wk, "work_item", "thread.worker");
            k.future = optHex(*wk, "future", "thread.worker");
            k.awaitedBy = hexIds(*wk, "awaited_by", "thread.worker");
            th.worker = std::move(k);
        }
        th.holds = hexIds(t, "holds", "thread");
        th.loop = optHex(t, "loop", "thread");
        s.threads.push_back(std::move(th));
    }
    if (auto tasks = doc.find("tasks"); tasks != doc.end()) {
        if (!tasks->is_array()) bad("snapshot.tasks is not an array");
        for (const json& t : *tasks) s.tasks.push_back(taskFromJson(t));
    }
    if (auto findings = doc.find("findings"); findings != doc.end()) {
        if (!findings->is_array()) bad("snapshot.findings is not an array");
        for (const json& f : *findings) s.findings.push_back(findingFromJson(f));
    }
    if (auto w = doc.find("warnings"); w != doc.end() && w->is_array()) {
        for (const json& x : *w) {
            if (x.is_string()) s.warnings.push_back(x.get<std::string>());
        }
    }
    return s;
}

}  // namespace aioscope
