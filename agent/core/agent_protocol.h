// What the agent and the CLI agree on about their connection
// (docs/json-schema.md#events, docs/security.md#the-agents-connection): the
// ranges of the agent's options, so that the CLI refuses a value before it
// touches a target rather than the agent after it was loaded, and the shape
// of the session token.
#pragma once

#include <cstdint>

namespace aioscope::protocol {

// The agent's options, in milliseconds (AIOSCOPE_AGENT / aioscope_agent_start).
inline constexpr std::int64_t kIntervalMinMs = 1;
inline constexpr std::int64_t kIntervalMaxMs = 60'000;          // 1 min
inline constexpr std::int64_t kStallMinMs = 1;
inline constexpr std::int64_t kStallMaxMs = 3'600'000;          // 1 h
inline constexpr std::int64_t kSnapshotEveryMaxMs = 86'400'000;  // 24 h; 0: only on request

// The ELF section of the agent's calls out to the program's Python code
// (agent/so/callout.h): `attach` finds it in the agent's file and accepts a
// thread whose agent frames are only those calls. A macro: a section
// attribute takes a string literal.
#define AIOSCOPE_CALLOUT_SECTION "aioscope_callout"
inline constexpr const char* kCalloutSection = AIOSCOPE_CALLOUT_SECTION;

// The CLI's random session secret, as hexadecimal digits.
inline constexpr std::size_t kTokenHexChars = 32;

// The CLI's answer once it authenticated a connection: the agent's exit
// flush waits for it (bounded), so that a program ending at once is still
// alive while the CLI checks who it is.
inline constexpr const char* kAcceptedLine = "{\"cmd\": \"accepted\"}\n";

}  // namespace aioscope::protocol
