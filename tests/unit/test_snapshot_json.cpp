// The "aioscope/snapshot/1" JSON form. The reference document is the example
// in docs/json-schema.md, copied verbatim.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "error_code.h"
#include "errors.h"
#include "model/snapshot_json.h"

using namespace aioscope;
using aioscope::test::errorCode;
using nlohmann::json;

namespace {

const char* kDocExample = R"({
  "schema": "aioscope/snapshot/1",
  "pid": 4242,
  "captured_at": 1763800000.123,
  "duration_ms": 1.51,
  "paused_ms": null,
  "attempts": 1,
  "python": {
    "version": "3.12.1",
    "hexversion": 51118576,
    "implementation": "cpython",
    "executable": "/usr/bin/python3.12",
    "runtime_file": "/usr/lib/x86_64-linux-gnu/libpython3.12.so.1.0",
    "shared_libpython": true,
    "layout_source": "static table for CPython 3.12"
  },
  "threads": [
    {
      "interpreter_id": 0,
      "thread_id": 140188963645120,
      "native_id": 4245,
      "name": "order-worker",
      "holds_gil": false,
      "frames": [
        {"function": "record_payment", "qualname": "record_payment",
         "file": "/srv/app/orders.py", "line": 25}
      ],
      "truncated": false,
      "error": null
    }
  ],
  "warnings": []
})";

// The snapshot the documentation's example describes.
Snapshot docSnapshot() {
    Snapshot s;
    s.pid = 4242;
    s.capturedAt = 1763800000.123;
    s.durationMs = 1.51;
    s.attempts = 1;
    s.python.version = "3.12.1";
    s.python.hexversion = 0x30c01f0;  // 51118576
    s.python.executable = "/usr/bin/python3.12";
    s.python.runtimeFile = "/usr/lib/x86_64-linux-gnu/libpython3.12.so.1.0";
    s.python.sharedLibpython = true;
    s.python.layoutSource = "static table for CPython 3.12";
    Thread t;
    t.threadId = 140188963645120u;
    t.nativeId = 4245;
    t.name = "order-worker";
    t.frames.push_back({"record_payment", "record_payment", "/srv/app/orders.py", 25});
    s.threads.push_back(t);
    return s;
}

Snapshot roundTrip(const Snapshot& s) { return snapshotFromJson(json::parse(toJson(s).dump())); }

Errc badInputOf(const std::string& text) {
    return errorCode([&] { snapshotFromJson(json::parse(text)); }).value_or(Errc::internal);
}

// The example with one field replaced (nlohmann JSON pointer syntax).
std::string withPatch(const std::string& op, const std::string& path, const json& value = nullptr) {
    json doc = json::parse(kDocExample);
    json patch = json::array({{{"op", op}, {"path", path}}});
    if (op != "remove") patch[0]["value"] = value;
    return doc.patch(patch).dump();
}

// Fields are only ever added within a schema version (docs/json-schema.md),
// so the documented example must be contained in what is written: every
// documented field present with the same value, extra fields allowed.
bool contains(const json& got, const json& want, const std::string& where = "") {
    if (want.is_object()) {
        if (!got.is_object()) {
            UNSCOPED_INFO(where << " is not an object");
            return false;
        }
        for (const auto& [k, v] : want.items()) {
            if (!got.contains(k)) {
                UNSCOPED_INFO(where << "/" << k << " is missing");
                return false;
            }
            if (!contains(got[k], v, where + "/" + k)) return false;
        }
        return true;
    }
    if (want.is_array()) {
        if (!got.is_array() || got.size() != want.size()) {
            UNSCOPED_INFO(where << " differs: " << got.dump());
            return false;
        }
        for (std::size_t i = 0; i < want.size(); ++i) {
            if (!contains(got[i], want[i], where + "/" + std::to_string(i))) return false;
        }
        return true;
    }
    if (got != want) UNSCOPED_INFO(where << " is " << got.dump() << ", not " << want.dump());
    return got == want;
}

}  // namespace

TEST_CASE("toJson writes the documented example", "[snapshot_json]") {
    CHECK(contains(toJson(docSnapshot()), json::parse(kDocExample)));
    CHECK_FALSE(contains(toJson(Snapshot{}), json::parse(kDocExample)));  // the check can fail
}

TEST_CASE("snapshotFromJson reads the documented example", "[snapshot_json]") {
    Snapshot s = snapshotFromJson(json::parse(kDocExample));
    Snapshot want = docSnapshot();
    CHECK(s.pid == 4242);
    CHECK(s.capturedAt == Approx(1763800000.123));
    CHECK(s.durationMs == Approx(1.51));
    CHECK_FALSE(s.pausedMs.has_value());
    CHECK(s.attempts == 1);
    CHECK(s.python.version == "3.12.1");
    CHECK(s.python.hexversion == 51118576u);
    CHECK(s.python.executable == want.python.executable);
    CHECK(s.python.runtimeFile == want.python.runtimeFile);
    CHECK(s.python.layoutSource == want.python.layoutSource);
    REQUIRE(s.threads.size() == 1);
    CHECK(s.threads[0].threadId == 140188963645120u);
    CHECK(s.threads[0].nativeId == 4245);
    CHECK(s.threads[0].name == "order-worker");
    CHECK(s.threads[0].frames == want.threads[0].frames);
    CHECK(s.warnings.empty());
}

TEST_CASE("round trip keeps nulls, flags and every frame", "[snapshot_json]") {
    Snapshot s = docSnapshot();
    s.pausedMs = 0.25;
    s.attempts = 3;
    s.warnings = {"thread 7: frame chain tore", "second"};
    Thread bare;  // no native id, no name, torn stack
    bare.interpreterId = 2;
    bare.threadId = 18446744073709551615u;  // any pthread_t value
    bare.holdsGil = true;
    bare.truncated = true;
    bare.error = "cannot read frame at 0x10";
    bare.frames.push_back({"<module>", "<module>", "/x.py", std::nullopt});
    bare.frames.push_back({"f", "C.f", "/x.py", 0});
    s.threads.push_back(bare);

    Snapshot r = roundTrip(s);
    CHECK(r.pausedMs == 0.25);
    CHECK(r.attempts == 3);
    CHECK(r.warnings == s.warnings);
    REQUIRE(r.threads.size() == 2);
    const Thread& t = r.threads[1];
    CHECK(t.interpreterId == 2);
    CHECK(t.threadId == 18446744073709551615u);
    CHECK_FALSE(t.nativeId.has_value());
    CHECK_FALSE(t.name.has_value());
    CHECK(t.holdsGil);
    CHECK(t.truncated);
    CHECK(t.error == "cannot read frame at 0x10");
    CHECK(t.frames == bare.frames);
    CHECK_FALSE(t.frames[0].line.has_value());
    CHECK(r.threads[0].frames == s.threads[0].frames);
}

TEST_CASE("strings and numbers survive the writer exactly", "[snapshot_json]") {
    Snapshot s = docSnapshot();
    s.capturedAt = 1763800000.1234567;  // needs all 17 significant digits
    s.durationMs = 1e-9;
    s.pid = 2147483648;
    s.threads[0].name = "q\"uote b\\ack\nline\ttab \x01\x1f del\x7f caf\xC3\xA9 \xF0\x9F\x98\x80";
    s.threads[0].frames[0].file = "C:\\path\\\"x\".py";
    Snapshot r = roundTrip(s);
    CHECK(r.capturedAt == s.capturedAt);
    CHECK(r.durationMs == s.durationMs);
    CHECK(r.pid == 2147483648);
    CHECK(r.threads[0].name == s.threads[0].name);
    CHECK(r.threads[0].frames[0].file == s.threads[0].frames[0].file);
}

TEST_CASE("optional fields may be absent", "[snapshot_json]") {
    auto doc = json::parse(R"({"schema": "aioscope/snapshot/1", "pid": 1, "python": {"version": "3.10.13"},
                               "threads": [{"thread_id": 5, "frames": []}]})");
    Snapshot s = snapshotFromJson(doc);
    CHECK(s.attempts == 1);
    CHECK(s.capturedAt == 0);
    REQUIRE(s.threads.size() == 1);
    CHECK(s.threads[0].threadId == 5u);
    CHECK_FALSE(s.threads[0].holdsGil);
    CHECK_FALSE(s.threads[0].error.has_value());
}

TEST_CASE("what is not a snapshot is bad input", "[snapshot_json][negative]") {
    CHECK(badInputOf("[]") == Errc::bad_input);
    CHECK(badInputOf("42") == Errc::bad_input);
    CHECK(badInputOf("null") == Errc::bad_input);
    CHECK(badInputOf(withPatch("remove", "/schema")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/schema", "aioscope/snapshot/2")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/schema", 1)) == Errc::bad_input);
    CHECK(badInputOf(withPatch("remove", "/pid")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/pid", "4242")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/paused_ms", "soon")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("remove", "/python")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/python", "3.12")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("remove", "/python/version")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/python/executable", 7)) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/threads", json::object())) == Errc::bad_input);
    CHECK(badInputOf(withPatch("remove", "/threads")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/threads/0", "t")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("remove", "/threads/0/thread_id")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/threads/0/native_id", "4245")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/threads/0/name", 3)) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/threads/0/frames", nullptr)) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/threads/0/frames/0", 1)) == Errc::bad_input);
    CHECK(badInputOf(withPatch("remove", "/threads/0/frames/0/file")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/threads/0/frames/0/function", nullptr)) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/threads/0/frames/0/line", "25")) == Errc::bad_input);
    CHECK(badInputOf(withPatch("replace", "/threads/0/error", false)) == Errc::bad_input);
}

TEST_CASE("bad input errors name the offending field", "[snapshot_json][negative]") {
    try {
        snapshotFromJson(json::parse(withPatch("remove", "/threads/0/frames/0/file")));
        FAIL("accepted a frame without a file");
    } catch (const InspectError& e) {
        CHECK(std::string(e.what()).find("\"file\"") != std::string::npos);
    }
}

// Every field of the python section written (docs/json-schema.md) is read
// back.
TEST_CASE("round trip keeps the python section", "[snapshot_json]") {
    Snapshot r = roundTrip(docSnapshot());
    CHECK(r.python.sharedLibpython);
}

// A thread Python did not start is named from /proc/PID/task/TID/comm, which
// the kernel cuts to 15 bytes regardless of UTF-8: the writer replaces the
// broken character so `aioscope render` still accepts the document.
TEST_CASE("a thread name cut inside a UTF-8 character still gives valid JSON",
          "[snapshot_json]") {
    Snapshot s = docSnapshot();
    s.threads[0].name = "worker-1\xC3\xA9\xC3\xA9\xC3\xA9\xC3";  // 15 bytes, the last half an "é"
    std::ostringstream out;
    writeJson(s, out);
    CHECK_NOTHROW(json::parse(out.str()));
}

TEST_CASE("a stack shared by tasks is written as each task's own copy would be", "[snapshot_json]") {
    Snapshot s = docSnapshot();
    auto shared = std::make_shared<Stack>(s.threads[0].frames);
    shared->push_back({"f", "C.f", "/x \"q\".py", 3});
    Snapshot copies = s;
    for (int i = 0; i < 3; ++i) {
        Task t;
        t.id = 0x1000 + static_cast<std::uint64_t>(i);
        t.name = "t" + std::to_string(i);
        t.stack = shared;
        s.tasks.push_back(t);
        t.stack = std::make_shared<Stack>(*shared);  // not shared: written frame by frame
        copies.tasks.push_back(t);
    }
    Task bare;  // no stack at all
    bare.id = 0x2000;
    s.tasks.push_back(bare);
    copies.tasks.push_back(bare);
    std::ostringstream a, b;
    writeJson(s, a);
    writeJson(copies, b);
    CHECK(a.str() == b.str());
    CHECK(json::parse(a.str())["tasks"][2]["stack"].size() == shared->size());
    // Written inside an object nested deeper, the copies follow its indentation.
    std::ostringstream c;
    {
        JsonWriter w(c);
        w.beginObject().key("outer").beginObject().key("tasks");
        writeTasks(w, s.tasks);
        w.endObject().endObject();
    }
    std::ostringstream d;
    {
        JsonWriter w(d);
        w.beginObject().key("outer").beginObject().key("tasks").beginArray();
        for (const auto& t : copies.tasks) writeTask(w, t);
        w.endArray().endObject().endObject();
    }
    CHECK(c.str() == d.str());
    CHECK(json::parse(c.str())["outer"]["tasks"][1]["stack"][0] == json::parse(a.str())["tasks"][1]["stack"][0]);
}

TEST_CASE("an awaiting's out-of-line detail is copied whole, compared by value, and made only when set", "[snapshot_json]") {
    Awaiting plain{.kind = "sleep"};
    CHECK_FALSE(plain.detail().thread);
    CHECK_FALSE(plain.detail().referencedBy);
    Awaiting ex{.kind = "executor", .address = 0x300};
    ex.editDetail().thread = 7;
    ex.editDetail().referencedBy = Awaiting::ReferencedBy{{0x100}, {7}};
    Awaiting copy = ex;
    copy.editDetail().referencedBy->tasks.push_back(0x200);  // the copy's own
    CHECK(ex.detail().referencedBy->tasks == std::vector<std::uint64_t>{0x100});
    CHECK(copy.detail().thread == 7);
    CHECK_FALSE(copy == ex);
    copy = ex;
    CHECK(copy == ex);
    // Set and cleared again: equal to one never set.
    Awaiting cleared{.kind = "sleep"};
    cleared.editDetail().fd = 3;
    cleared.editDetail().fd.reset();
    CHECK(cleared == plain);
    // Read from JSON without any of its fields: none made.
    Snapshot s;
    s.python.version = "3.12.1";
    Task t;
    t.id = 0x10;
    t.name = "t";
    t.stack = std::make_shared<Stack>();
    t.awaiting = plain;
    s.tasks = {t};
    Snapshot back = snapshotFromJson(toJson(s));
    CHECK_FALSE(back.tasks.at(0).awaiting->detailStore.made());
    CHECK_FALSE(plain.detailStore.made());
    CHECK(ex.detailStore.made());
    // Set to a default value: nothing made (and one made before is let go).
    Awaiting set{.kind = "sleep"};
    set.setDetail({});
    CHECK_FALSE(set.detailStore.made());
    set.setDetail({.fd = 4});
    CHECK(set.detailStore.made());
    CHECK(set.detail().fd == 4);
    set.setDetail({});
    CHECK_FALSE(set.detailStore.made());
    CHECK(set == plain);
}
