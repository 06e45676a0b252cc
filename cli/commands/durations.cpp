#include "commands/durations.h"

#include <cmath>
#include <cstdlib>

#include "errors.h"

namespace aioscope::cli {

std::int64_t parseDurationMs(const std::string& text, const char* option) {
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    std::string unit = end ? std::string(end) : std::string();
    double scale = 0;
    if (unit.empty() || unit == "s") scale = 1000;
    else if (unit == "ms") scale = 1;
    else if (unit == "m" || unit == "min") scale = 60'000;
    else if (unit == "h") scale = 3'600'000;
    if (end == text.c_str() || scale == 0 || !std::isfinite(v) || v < 0 || v * scale > 1e12) {
        throw InspectError(Errc::usage, std::string(option) + ": \"" + text +
                                            "\" is not a duration (examples: 100ms, 1.5s, 2m)");
    }
    return static_cast<std::int64_t>(std::llround(v * scale));
}

}  // namespace aioscope::cli
