#include "events.h"

#include <unistd.h>

#include <chrono>
#include <sstream>

#include "model/json_writer.h"
#include "model/snapshot_json.h"

namespace aioscope::agent {

namespace {

double nowUnix() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Events are single lines: no indentation.
template <class Body>
std::string event(const char* type, Body&& body) {
    std::ostringstream out;
    {
        JsonWriter w(out, 0);
        w.beginObject();
        w.key("schema").value(kEventSchema);
        w.key("type").value(type);
        w.key("ts").value(nowUnix());
        w.key("pid").value(static_cast<std::int64_t>(getpid()));
        body(w);
        w.endObject();
    }
    return out.str() + "\n";
}

}  // namespace

std::string helloEvent(const Config& cfg, const PythonInfo& python, bool hookInstalled) {
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
        w.key("stall_detection").value(hookInstalled ? "active" : "waiting for asyncio");
    });
}

std::string snapshotEvent(const Snapshot& snap) {
    return event("snapshot", [&](JsonWriter& w) {
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
    });
}

std::string stallEvent(std::uint64_t stallId, const SnapshotReader::ThreadReport* report, std::uint64_t threadId,
                       std::int32_t nativeId, double startedAt, double elapsedMs, const StallSlotRef* slot) {
    return event("stall", [&](JsonWriter& w) {
        w.key("stall_id").value(stallId);
        w.key("thread_id").value(threadId);
        w.key("native_id").value(static_cast<std::int64_t>(nativeId));
        w.key("started_at").value(startedAt);
        w.key("elapsed_ms").value(elapsedMs);
        w.key("captured").value(report != nullptr);
        w.key("stack");
        writeFrames(w, report ? report->thread.frames : Stack{});
        w.key("task");
        if (report && report->task) {
            writeTask(w, *report->task);
        } else {
            w.null();
        }
        if (slot) {
            w.key("_slot").beginObject();
            w.key("seq_address").value(slot->seqAddress);
            w.key("depth_address").value(slot->depthAddress);
            w.key("seq").value(slot->seq);
            w.endObject();
        }
    });
}

std::string stallEndEvent(std::uint64_t stallId, std::uint64_t threadId, std::int32_t nativeId, double startedAt,
                          double durationMs) {
    return event("stall_end", [&](JsonWriter& w) {
        w.key("stall_id").value(stallId);
        w.key("thread_id").value(threadId);
        w.key("native_id").value(static_cast<std::int64_t>(nativeId));
        w.key("started_at").value(startedAt);
        w.key("duration_ms").value(durationMs);
    });
}

std::string messageEvent(const char* type, const std::string& message) {
    return event(type, [&](JsonWriter& w) { w.key("message").value(message); });
}

}  // namespace aioscope::agent
