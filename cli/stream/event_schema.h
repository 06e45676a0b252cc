// Checking an agent's line before anything else looks at it: the agent runs
// inside a process the operator may not trust (docs/security.md). A line must
// be one JSON object of a known event type, with the documented field types
// (docs/json-schema.md#events), within the size limits below. Strings longer
// than kMaxString are shortened (and said so); anything else wrong rejects
// the whole line. Parsing itself is bounded: nesting and element counts are
// checked while the line is parsed, not after.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace aioscope::cli {

inline constexpr const char* kEventSchema = "aioscope/event/1";

// The longest line of any event but a snapshot, and of a snapshot (100,000
// tasks with their stacks take about 70 MB).
inline constexpr std::size_t kMaxEventLine = 1u << 20;
inline constexpr std::size_t kMaxSnapshotLine = 128u << 20;
inline constexpr std::size_t kMaxString = 64u << 10;
inline constexpr int kMaxDepth = 24;
inline constexpr std::size_t kMaxArray = 4096;           // any array of an event but a snapshot's
inline constexpr std::size_t kMaxSnapshotArray = 1'000'000;
// JSON values in one line (100,000 tasks make about 3.6 million): what the
// parser may build, about 150 bytes each.
inline constexpr std::size_t kMaxNodes = 100'000;
inline constexpr std::size_t kMaxSnapshotNodes = 6'000'000;

struct CheckedEvent {
    std::optional<nlohmann::json> event;  // set when the line is an acceptable event
    std::string why;                       // else what is wrong, in a few words
    int shortened = 0;                     // strings cut to kMaxString
};

CheckedEvent checkAgentLine(const std::string& line);

// The agent's event types (connect is the protocol's, never an event after it).
bool isAgentEventType(const std::string& type);

}  // namespace aioscope::cli
