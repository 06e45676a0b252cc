#include "events.h"

#include <unistd.h>

#include <chrono>
#include <sstream>

#include "model/json_writer.h"
#include "model/snapshot_json.h"
#include "capabilities.h"
#include "stall_sampler.h"

namespace aioscope::agent {

namespace {

double nowUnix() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void writeTestFields(JsonWriter& w, const TestRef& test) {
    w.key("test").value(test.id);
    w.key("test_phase").value(test.phase);
}

// Events are single lines: no indentation. The test fields go last, as
// withTest() adds them.
template <class Body>
void writeEvent(std::ostream& out, const char* type, Body&& body, const TestRef* test = nullptr) {
    {
        JsonWriter w(out, 0);
        w.beginObject();
        w.key("schema").value(kEventSchema);
        w.key("type").value(type);
        w.key("ts").value(nowUnix());
        w.key("pid").value(static_cast<std::int64_t>(getpid()));
        body(w);
        if (test && !test->id.empty()) writeTestFields(w, *test);
        w.endObject();
    }
    out << '\n';
}

template <class Body>
std::string event(const char* type, Body&& body) {
    std::ostringstream out;
    writeEvent(out, type, std::forward<Body>(body));
    return std::move(out).str();  // the buffer itself, not a copy
}

}  // namespace

std::string helloEvent(const Config& cfg, const PythonInfo& python, const Capabilities& caps) {
    return event("hello", [&](JsonWriter& w) {
        w.key("agent_version").value(kAgentVersion);
        w.key("mode").value(cfg.mode);
        w.key("python").beginObject();
        w.key("version").value(python.version);
        w.key("hexversion").value(python.hexversion);
        w.key("executable").value(python.executable);
        w.key("runtime_file").value(python.runtimeFile);
        w.endObject();
        w.key("options").beginObject();
        w.key("interval_ms").value(static_cast<double>(cfg.intervalNs) / 1e6);
        w.key("stall_threshold_ms").value(static_cast<double>(cfg.stallNs) / 1e6);
        w.key("snapshot_interval_ms").value(static_cast<double>(cfg.snapshotEveryNs) / 1e6);
        w.endObject();
        caps.write(w);
    });
}

std::string capabilitiesEvent(const Capabilities& caps) {
    return event("capabilities", [&](JsonWriter& w) {
        w.key("message").value(caps.summary());
        caps.write(w);
    });
}

void writeSnapshotEvent(std::ostream& out, const Snapshot& snap, const TestRef* test) {
    writeEvent(out, "snapshot", [&](JsonWriter& w) {
        w.key("duration_ms").value(snap.durationMs);
        w.key("attempts").value(snap.attempts);
        w.key("threads");
        writeThreads(w, snap.threads);
        w.key("tasks");
        writeTasks(w, snap.tasks);
        w.key("findings");
        writeFindings(w, snap.findings);
        w.key("warnings").beginArray();
        for (const auto& x : snap.warnings) w.value(x);
        w.endArray();
    }, test);
}

std::string stallEvent(const StallReport& st) {
    return event("stall", [&](JsonWriter& w) {
        const SnapshotReader::ThreadReport* report = st.report;
        w.key("stall_id").value(st.stallId);
        w.key("thread_id").value(st.threadId);
        w.key("native_id").value(static_cast<std::int64_t>(st.nativeId));
        w.key("started_at").value(st.startedAt);
        w.key("elapsed_ms").value(st.elapsedMs);
        w.key("at_least").value(st.atLeast);
        w.key("captured").value(report != nullptr);
        w.key("stack_at");
        if (report && st.stackAt) {
            w.value(st.stackAt);
        } else {
            w.null();
        }
        w.key("stack_elapsed_ms");
        if (report) {
            w.value(st.stackElapsedMs);
        } else {
            w.null();
        }
        w.key("stack");
        writeFrames(w, report ? report->thread.frames : Stack{});
        w.key("task");
        if (report && report->task) {
            writeTask(w, *report->task);
        } else {
            w.null();
        }
        if (report && !report->task && report->taskError) w.key("task_error").value(*report->taskError);
        // The loop's thread blocked in a synchronous wait (a lock, Future.result()...).
        w.key("waiting");
        writeThreadWait(w, report ? report->thread.waiting : std::nullopt);
        w.key("holds").beginArray();
        if (report) {
            for (auto h : report->thread.holds) w.hex(h);
        }
        w.endArray();
        if (st.slot) {
            w.key("_slot").beginObject();
            w.key("seq_address").value(st.slot->seqAddress);
            w.key("depth_address").value(st.slot->depthAddress);
            w.key("seq").value(st.slot->seq);
            w.endObject();
        }
    });
}

std::string stallEndEvent(std::uint64_t stallId, std::uint64_t threadId, std::int32_t nativeId, double startedAt,
                          double durationMs, bool atLeast) {
    return event("stall_end", [&](JsonWriter& w) {
        w.key("stall_id").value(stallId);
        w.key("thread_id").value(threadId);
        w.key("native_id").value(static_cast<std::int64_t>(nativeId));
        w.key("started_at").value(startedAt);
        w.key("duration_ms").value(durationMs);
        w.key("at_least").value(atLeast);
    });
}

std::string withTest(std::string line, const TestRef& test) {
    std::size_t close = line.rfind('}');
    if (close == std::string::npos || test.id.empty()) return line;
    std::ostringstream fields;
    {
        JsonWriter w(fields, 0);
        w.beginObject();
        writeTestFields(w, test);
        w.endObject();
    }
    std::string inner = fields.str();  // {"test": ..., "test_phase": ...}
    inner = inner.substr(1, inner.rfind('}') - 1);
    line.insert(close, ", " + inner);  // in place: a snapshot's line is not copied
    return line;
}

std::string messageEvent(const char* type, const std::string& message) {
    return event(type, [&](JsonWriter& w) { w.key("message").value(message); });
}

std::string gapEvent(const char* capability, std::uint64_t threadId, const std::string& message) {
    return event("warning", [&](JsonWriter& w) {
        w.key("message").value(message);
        w.key("capability_gap").value(capability);
        w.key("thread_id").value(threadId);
    });
}

}  // namespace aioscope::agent
