#include "config.h"

#include <cstdlib>

namespace aioscope::agent {

namespace {

bool positive(const std::string& v, std::int64_t& out, std::int64_t scale, std::int64_t min, std::int64_t max) {
    char* end = nullptr;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || n < min || n > max) return false;
    out = n * scale;
    return true;
}

}  // namespace

std::optional<Config> parseConfig(const std::string& text) {
    Config c;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t end = text.find(';', pos);
        if (end == std::string::npos) end = text.size();
        std::string item = text.substr(pos, end - pos);
        pos = end + 1;
        if (item.empty()) continue;
        std::size_t eq = item.find('=');
        if (eq == std::string::npos) return std::nullopt;
        std::string key = item.substr(0, eq), value = item.substr(eq + 1);
        bool ok = true;
        if (key == "socket") {
            c.socket = value;
        } else if (key == "interval_ms") {
            ok = positive(value, c.intervalNs, 1'000'000, 1, 60'000);
        } else if (key == "stall_ms") {
            ok = positive(value, c.stallNs, 1'000'000, 1, 3'600'000);
        } else if (key == "snapshot_ms") {
            ok = positive(value, c.snapshotEveryNs, 1'000'000, 0, 86'400'000);
        } else if (key == "track_origins") {
            c.trackOrigins = value == "1";
        } else if (key == "mode") {
            c.mode = value == "run" ? "run" : "attach";
        }  // unknown keys: from a newer CLI, ignored
        if (!ok) return std::nullopt;
    }
    if (c.socket.empty() || c.socket.size() > 100) return std::nullopt;
    return c;
}

}  // namespace aioscope::agent
