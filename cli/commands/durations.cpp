#include "commands/durations.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "errors.h"

namespace aioscope::cli {

std::string formatDuration(std::int64_t ms) {
    if (ms && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
    if (ms && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
    if (ms && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

std::int64_t parseDurationMs(const std::string& text, const char* option, const DurationRange& range) {
    auto bad = [&](const std::string& why) {
        return InspectError(Errc::usage, std::string(option) + ": \"" + text + "\" " + why);
    };
    // digits[.digits]unit: no sign, spaces, exponent or hex (strtod takes them all).
    std::size_t i = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    std::size_t intDigits = i;
    if (i < text.size() && text[i] == '.') {
        ++i;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    }
    std::string number = text.substr(0, i), unit = text.substr(i);
    double scale = 0;
    if (unit.empty() || unit == "s") scale = 1000;
    else if (unit == "ms") scale = 1;
    else if (unit == "m" || unit == "min") scale = 60'000;
    else if (unit == "h") scale = 3'600'000;
    if (number.empty() || number == "." || (intDigits == 0 && number.size() < 2) || scale == 0 || number.size() > 30) {
        throw bad("is not a duration (examples: 100ms, 1.5s, 2m)");
    }
    double ms = std::strtod(number.c_str(), nullptr) * scale;
    if (!std::isfinite(ms)) throw bad("is not a duration (examples: 100ms, 1.5s, 2m)");
    std::string range_ = formatDuration(range.minMs) + " to " + formatDuration(range.maxMs);
    if (range.zeroMeans) range_ = "0 for " + std::string(range.zeroMeans) + ", or " + range_;
    if (ms == 0) {
        if (range.zeroMeans) return 0;
        throw bad("is out of range (" + range_ + ")");
    }
    // Never rounded into another meaning: a tiny value is not 0 ("off").
    if (ms < static_cast<double>(range.minMs) || ms > static_cast<double>(range.maxMs)) {
        throw bad("is out of range (" + range_ + ")");
    }
    return std::max<std::int64_t>(range.minMs, static_cast<std::int64_t>(std::llround(ms)));
}

}  // namespace aioscope::cli
