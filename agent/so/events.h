// The agent's events, one JSON object per line, schema "aioscope/event/1"
// (docs/json-schema.md#events). Every event has type, ts and pid.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "config.h"
#include "model/snapshot.h"
#include "snapshot_reader.h"

namespace aioscope::agent {

inline constexpr const char* kEventSchema = "aioscope/event/1";
inline constexpr const char* kAgentVersion = "0.1.0";

std::string helloEvent(const Config& cfg, const PythonInfo& python, bool hookInstalled);
std::string snapshotEvent(const Snapshot& snap);
// Where the CLI can check, while it has the loop thread stopped for its
// native stack, that the same callback still runs (internal: "_slot").
struct StallSlotRef {
    std::uint64_t seqAddress = 0;
    std::uint64_t depthAddress = 0;
    std::uint64_t seq = 0;
};

std::string stallEvent(std::uint64_t stallId, const SnapshotReader::ThreadReport* report, std::uint64_t threadId,
                       std::int32_t nativeId, double startedAt, double elapsedMs, const StallSlotRef* slot = nullptr);
std::string stallEndEvent(std::uint64_t stallId, std::uint64_t threadId, std::int32_t nativeId, double startedAt,
                          double durationMs);
std::string messageEvent(const char* type, const std::string& message);

}  // namespace aioscope::agent
