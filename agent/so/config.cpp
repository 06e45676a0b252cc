#include "config.h"

#include <cstdlib>

#include "agent_protocol.h"

namespace aioscope::agent {

namespace {

// Digits only: no sign, no spaces, no hex (strtoll alone would take " +1").
bool number(const std::string& v, std::int64_t& out, std::int64_t min, std::int64_t max) {
    if (v.empty() || v.size() > 18) return false;
    std::int64_t n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return false;
        n = n * 10 + (c - '0');
    }
    if (n < min || n > max) return false;
    out = n;
    return true;
}

bool millis(const std::string& v, std::int64_t& outNs, std::int64_t min, std::int64_t max) {
    std::int64_t ms = 0;
    if (!number(v, ms, min, max)) return false;
    outNs = ms * 1'000'000;
    return true;
}

bool hexToken(const std::string& v) {
    if (v.size() != protocol::kTokenHexChars) return false;
    for (char c : v) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

}  // namespace

std::optional<Config> parseConfig(const std::string& text) {
    Config c;
    bool havePid = false, haveUid = false;
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
        std::int64_t n = 0;
        if (key == "socket") {
            c.socket = value;
        } else if (key == "interval_ms") {
            ok = millis(value, c.intervalNs, protocol::kIntervalMinMs, protocol::kIntervalMaxMs);
        } else if (key == "stall_ms") {
            ok = millis(value, c.stallNs, protocol::kStallMinMs, protocol::kStallMaxMs);
        } else if (key == "snapshot_ms") {
            ok = millis(value, c.snapshotEveryNs, 0, protocol::kSnapshotEveryMaxMs);
        } else if (key == "track_origins") {
            c.trackOrigins = value == "1";
        } else if (key == "mode") {
            c.mode = value == "run" ? "run" : "attach";
        } else if (key == "cli_pid") {
            ok = havePid = number(value, n, 1, 1 << 30);
            c.cliPid = static_cast<pid_t>(n);
        } else if (key == "cli_uid") {
            ok = haveUid = number(value, n, 0, 0xFFFFFFFEll);
            c.cliUid = static_cast<uid_t>(n);
        } else if (key == "token") {
            ok = hexToken(value);
            c.token = value;
        }  // unknown keys: from a newer CLI, ignored
        if (!ok) return std::nullopt;
    }
    if (c.socket.empty() || c.socket.size() > 100) return std::nullopt;
    if (!havePid || !haveUid || c.token.empty()) return std::nullopt;
    return c;
}

}  // namespace aioscope::agent
