// Durations on the command line: "100ms", "1.5s", "2m", "1h"; a bare number
// is seconds.
#pragma once

#include <cstdint>
#include <string>

namespace aioscope::cli {

// Milliseconds; throws InspectError(usage) naming the option.
std::int64_t parseDurationMs(const std::string& text, const char* option);

}  // namespace aioscope::cli
