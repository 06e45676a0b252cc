// The agent's events, one JSON object per line, schema "aioscope/event/1"
// (docs/json-schema.md#events). Every event has type, ts and pid.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

#include "config.h"
#include "model/snapshot.h"
#include "snapshot_reader.h"

namespace aioscope::agent {

inline constexpr const char* kEventSchema = "aioscope/event/1";
inline constexpr const char* kAgentVersion = "0.1.0";

class Capabilities;
std::string helloEvent(const Config& cfg, const PythonInfo& python, const Capabilities& caps);
// A change of capabilities after the hello (docs/json-schema.md#capabilities).
std::string capabilitiesEvent(const Capabilities& caps);
struct TestRef;
// Written to `out` as it is made (a snapshot of 10,000 tasks is about
// 10 MB of JSON): one line, "\n" included, with the running pytest test.
void writeSnapshotEvent(std::ostream& out, const Snapshot& snap, const TestRef* test);
// Where the CLI can check, while it has the loop thread stopped for its
// native stack, that the same callback still runs (internal: "_slot").
struct StallSlotRef {
    std::uint64_t seqAddress = 0;
    std::uint64_t depthAddress = 0;
    std::uint64_t seq = 0;
};

struct StallReport {
    std::uint64_t stallId = 0;
    std::uint64_t threadId = 0;
    std::int32_t nativeId = 0;
    double startedAt = 0;  // Unix seconds
    double elapsedMs = 0;  // when reported
    // Its stacks, or null when none could be read during the callback.
    const SnapshotReader::ThreadReport* report = nullptr;
    const char* stackAt = nullptr;  // kStackAtThreshold, kStackBeforeThreshold, kStackOngoing
    double stackElapsedMs = 0;      // how long the callback had run when its stack was read
    // The callback began before the agent could time it: it started at or
    // before startedAt, and the durations are lower bounds.
    bool atLeast = false;
    const StallSlotRef* slot = nullptr;
};
std::string stallEvent(const StallReport& stall);
std::string stallEndEvent(std::uint64_t stallId, std::uint64_t threadId, std::int32_t nativeId, double startedAt,
                          double durationMs, bool atLeast = false);
// `line` (an event) with the running pytest test added.
struct TestRef {
    std::string id;     // the node id
    std::string phase;  // setup, call, teardown
};
std::string withTest(std::string line, const TestRef& test);
std::string messageEvent(const char* type, const std::string& message);
// A warning that a check, active, missed part of the run on one thread
// (--fail-on fails for it as for a check that was not active).
std::string gapEvent(const char* capability, std::uint64_t threadId, const std::string& message);

}  // namespace aioscope::agent
