// Durations on the command line: "100ms", "1.5s", "2m", "1h"; a bare number
// is seconds. Checked against each option's range before anything touches a
// target: a value the agent would refuse, or one that would round to a
// different meaning (0.0001ms is not "off"), is a usage error.
#pragma once

#include <cstdint>
#include <string>

namespace aioscope::cli {

struct DurationRange {
    std::int64_t minMs;           // for a value that is not zero
    std::int64_t maxMs;
    const char* zeroMeans = nullptr;  // "off", "forever"... or nullptr: 0 is refused
};

// Milliseconds (rounded to the nearest); throws InspectError(usage) naming
// the option when the text is not a duration or is out of range.
std::int64_t parseDurationMs(const std::string& text, const char* option, const DurationRange& range);

// "1h", "60s", "100ms": a range limit as the user would write it.
std::string formatDuration(std::int64_t ms);

}  // namespace aioscope::cli
