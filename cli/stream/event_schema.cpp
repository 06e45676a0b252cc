#include "stream/event_schema.h"

#include <initializer_list>
#include <stdexcept>

#include "errors.h"
#include "model/snapshot.h"
#include "model/snapshot_json.h"

namespace aioscope::cli {

using nlohmann::json;

namespace {

struct Reject : std::runtime_error {
    using std::runtime_error::runtime_error;
};

[[noreturn]] void reject(const std::string& why) { throw Reject(why); }

// Field kinds of the type table.
enum Kind : unsigned {
    String = 1, Integer = 2, Number = 4, Bool = 8, Null = 16, Object = 32, Array = 64,
};

bool is(const json& v, unsigned kinds) {
    return ((kinds & String) && v.is_string()) || ((kinds & Integer) && v.is_number_integer()) ||
           ((kinds & Number) && v.is_number()) || ((kinds & Bool) && v.is_boolean()) ||
           ((kinds & Null) && v.is_null()) || ((kinds & Object) && v.is_object()) ||
           ((kinds & Array) && v.is_array());
}

const json* get(const json& obj, const char* key, unsigned kinds, bool required, const std::string& where) {
    auto it = obj.find(key);
    if (it == obj.end()) {
        if (required) reject(where + " has no \"" + key + "\"");
        return nullptr;
    }
    if (!is(*it, kinds)) reject(where + "." + key + " has the wrong type");
    return &*it;
}

void need(const json& obj, std::initializer_list<std::pair<const char*, unsigned>> fields, const std::string& where) {
    for (const auto& [key, kinds] : fields) get(obj, key, kinds, true, where);
}

void maybe(const json& obj, std::initializer_list<std::pair<const char*, unsigned>> fields, const std::string& where) {
    for (const auto& [key, kinds] : fields) get(obj, key, kinds, false, where);
}

void frame(const json& f, const std::string& where) {
    if (!f.is_object()) reject(where + " is not a frame");
    need(f, {{"function", String}, {"qualname", String}, {"file", String}, {"line", Integer | Null}}, where);
}

void frames(const json& obj, const char* key, bool required, bool nullable, const std::string& where) {
    const json* a = get(obj, key, Array | (nullable ? Null : 0u), required, where);
    if (!a || a->is_null()) return;
    for (const json& f : *a) frame(f, where + "." + key);
}

void optFrame(const json& obj, const char* key, const std::string& where) {
    const json* f = get(obj, key, Object | Null, false, where);
    if (f && f->is_object()) frame(*f, where + "." + key);
}

void taskRef(const json& obj, const std::string& where) {
    const json* t = get(obj, "task", Object | Null, false, where);
    if (t && t->is_object()) maybe(*t, {{"id", String}, {"name", String}}, where + ".task");
}

void capabilities(const json& caps) {
    if (caps.size() > 64) reject("too many capabilities");
    for (const auto& [name, c] : caps.items()) {
        if (!c.is_object()) reject("capability " + name + " is not an object");
        need(c, {{"state", String}}, "capability");
        maybe(c, {{"reason", String | Null}}, "capability");
        const std::string state = c["state"].get<std::string>();
        if (state != "active" && state != "pending" && state != "inactive") reject("unknown capability state");
    }
}

// The snapshot's own reader is the check: it is what `render` trusts.
void snapshot(const json& e) {
    need(e, {{"threads", Array}, {"tasks", Array}, {"findings", Array}}, "snapshot");
    maybe(e, {{"warnings", Array}, {"duration_ms", Number}, {"attempts", Integer}, {"reason", String}}, "snapshot");
    json doc = json::object();
    doc["schema"] = kSnapshotSchema;
    doc["pid"] = 0;
    doc["python"] = {{"version", "?"}};
    for (const char* k : {"threads", "tasks", "findings", "warnings"}) {
        if (e.contains(k)) doc[k] = e[k];
    }
    try {
        snapshotFromJson(doc);
    } catch (const InspectError& err) {
        reject(err.what());
    }
}

void checkType(const std::string& type, const json& e) {
    const std::string& w = type;
    if (type == "hello") {
        need(e, {{"agent_version", String}, {"mode", String}, {"python", Object}}, w);
        need(e["python"], {{"version", String}}, "hello.python");
        maybe(e["python"], {{"hexversion", Integer}, {"executable", String}, {"runtime_file", String}}, "hello.python");
        if (const json* o = get(e, "options", Object, false, w)) {
            maybe(*o, {{"interval_ms", Number}, {"stall_threshold_ms", Number}, {"snapshot_interval_ms", Number}},
                  "hello.options");
        }
        maybe(e, {{"stall_detection", String}}, w);
        if (const json* c = get(e, "capabilities", Object, false, w)) capabilities(*c);
    } else if (type == "capabilities") {
        capabilities(*get(e, "capabilities", Object, true, w));
    } else if (type == "info" || type == "warning" || type == "error" || type == "goodbye" || type == "detached") {
        need(e, {{"message", String}}, w);
        maybe(e, {{"capability_gap", String}, {"thread_id", Integer}}, w);
    } else if (type == "dropped") {
        need(e, {{"count", Integer}, {"since", Number}}, w);
        if (e["count"].get<std::int64_t>() < 0) reject("dropped.count is negative");
    } else if (type == "snapshot") {
        snapshot(e);
    } else if (type == "stall") {
        need(e, {{"stall_id", Integer}, {"thread_id", Integer}, {"native_id", Integer}, {"started_at", Number},
                 {"elapsed_ms", Number}, {"captured", Bool}},
             w);
        frames(e, "stack", true, false, w);
        if (const json* wt = get(e, "waiting", Object | Null, false, w); wt && wt->is_object()) {
            need(*wt, {{"kind", String}}, w);
        }
        if (const json* t = get(e, "task", Object | Null, false, w); t && t->is_object()) {
            json doc = json::object();
            doc["schema"] = kSnapshotSchema;
            doc["pid"] = 0;
            doc["python"] = {{"version", "?"}};
            doc["threads"] = json::array();
            doc["tasks"] = json::array({*t});
            try {
                snapshotFromJson(doc);
            } catch (const InspectError& err) {
                reject(std::string("stall.task: ") + err.what());
            }
        }
        maybe(e, {{"task_error", String | Null}}, w);
        if (const json* s = get(e, "_slot", Object, false, w)) {
            need(*s, {{"seq_address", Integer}, {"depth_address", Integer}, {"seq", Integer}}, "stall._slot");
        }
    } else if (type == "stall_end") {
        need(e, {{"stall_id", Integer}, {"thread_id", Integer}, {"native_id", Integer}, {"started_at", Number},
                 {"duration_ms", Number}},
             w);
    } else if (type == "unawaited_coroutine") {
        const json* c = get(e, "coroutine", Object, true, w);
        maybe(*c, {{"id", String}, {"qualname", String}}, "unawaited_coroutine.coroutine");
        for (const char* k : {"defined_at", "created_at", "discarded_at"}) optFrame(e, k, w);
        frames(e, "creating_stack", false, true, w);
        frames(e, "discarding_stack", false, true, w);
        taskRef(e, w);
        maybe(e, {{"note", String}}, w);
    } else if (type == "cancellation_swallowed") {
        taskRef(e, w);
        optFrame(e, "caught_at", w);
        maybe(e, {{"cancel_requests", Integer | Null}, {"cancel_message", String | Null}, {"outcome", String}}, w);
        frames(e, "task_stack", false, false, w);
    } else if (type == "task_exception_unretrieved") {
        taskRef(e, w);
        const json* x = get(e, "exception", Object, true, w);
        maybe(*x, {{"type", String | Null}, {"module", String | Null}, {"message", String | Null}},
              "task_exception_unretrieved.exception");
        frames(*x, "traceback", false, false, "task_exception_unretrieved.exception");
    } else if (type == "task_destroyed_pending") {
        taskRef(e, w);
        frames(e, "stack", false, false, w);
    } else {
        reject("unknown event type \"" + type.substr(0, 40) + "\"");
    }
    // pytest attribution (any event).
    maybe(e, {{"test", String | Null}, {"test_phase", String | Null}, {"task_created_in_test", String | Null}}, w);
}

// Cuts strings longer than kMaxString at a UTF-8 boundary.
void shorten(json& v, int& count) {
    if (v.is_string()) {
        auto& s = v.get_ref<std::string&>();
        if (s.size() > kMaxString) {
            std::size_t cut = kMaxString;
            while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
            s.resize(cut);
            s += "…";
            ++count;
        }
    } else if (v.is_structured()) {
        for (auto& x : v) shorten(x, count);
    }
}

}  // namespace

bool isAgentEventType(const std::string& t) {
    static const char* const kTypes[] = {"hello", "capabilities", "info", "warning", "error", "goodbye", "detached",
                                         "dropped", "snapshot", "stall", "stall_end", "unawaited_coroutine",
                                         "cancellation_swallowed", "task_exception_unretrieved",
                                         "task_destroyed_pending"};
    for (const char* k : kTypes) {
        if (t == k) return true;
    }
    return false;
}

CheckedEvent checkAgentLine(const std::string& line) {
    CheckedEvent out;
    if (line.size() > kMaxSnapshotLine) {
        out.why = "a line of " + std::to_string(line.size()) + " bytes";
        return out;
    }
    const bool big = line.size() > kMaxEventLine;
    const std::size_t maxArray = big ? kMaxSnapshotArray : kMaxArray;
    // Bounds checked while parsing: a hostile line cannot make the parser
    // build more than these allow.
    const std::size_t maxNodes = big ? kMaxSnapshotNodes : kMaxNodes;
    std::size_t nodes = 0;
    std::vector<std::size_t> counts;
    std::string topKey;
    auto limits = [&](int /*depth*/, json::parse_event_t ev, json& parsed) {
        // Only a snapshot may be big: give up on any other at its type.
        if (counts.size() == 1 && ev == json::parse_event_t::key && parsed.is_string()) {
            topKey = parsed.get<std::string>();
        } else if (big && counts.size() == 1 && ev == json::parse_event_t::value && topKey == "type" &&
                   parsed != "snapshot") {
            throw Reject("a line of " + std::to_string(line.size()) + " bytes that is not a snapshot");
        }
        if ((ev == json::parse_event_t::object_start || ev == json::parse_event_t::array_start ||
             ev == json::parse_event_t::value) &&
            ++nodes > maxNodes) {
            throw Reject("more than " + std::to_string(maxNodes) + " values");
        }
        if (ev == json::parse_event_t::object_start || ev == json::parse_event_t::array_start) {
            if (counts.size() >= static_cast<std::size_t>(kMaxDepth)) throw Reject("nested deeper than " + std::to_string(kMaxDepth));
            if (!counts.empty() && ++counts.back() > maxArray) throw Reject("an array or object too long");
            counts.push_back(0);
        } else if (ev == json::parse_event_t::object_end || ev == json::parse_event_t::array_end) {
            if (!counts.empty()) counts.pop_back();
        } else if (ev == json::parse_event_t::value) {
            if (!counts.empty() && ++counts.back() > maxArray) throw Reject("an array or object too long");
        }
        return true;
    };
    try {
        json e = json::parse(line, limits, /*allow_exceptions=*/false);
        if (e.is_discarded()) reject("not JSON");
        if (!e.is_object()) reject("not a JSON object");
        need(e, {{"schema", String}, {"type", String}}, "event");
        if (e["schema"] != kEventSchema) reject("schema is not " + std::string(kEventSchema));
        maybe(e, {{"ts", Number}, {"pid", Integer}}, "event");
        const std::string type = e["type"].get<std::string>();
        if (!isAgentEventType(type)) reject("unknown event type \"" + type.substr(0, 40) + "\"");
        if (big && type != "snapshot") reject("a " + type + " event of " + std::to_string(line.size()) + " bytes");
        checkType(type, e);
        shorten(e, out.shortened);
        out.event = std::move(e);
    } catch (const Reject& r) {
        out.why = r.what();
    } catch (const json::exception& x) {
        out.why = "not JSON";
    }
    return out;
}

}  // namespace aioscope::cli
