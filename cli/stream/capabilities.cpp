#include "stream/capabilities.h"

namespace aioscope::cli {

using nlohmann::json;

namespace {

const char* const kObserverCapabilities[] = {"unawaited_coroutine", "cancellation_swallowed",
                                             "task_exception_unretrieved", "task_destroyed_pending"};

}  // namespace

void Capabilities::observe(pid_t pid, const json& e) {
    const std::string type = e.value("type", std::string());
    if (type != "hello" && !m_byPid.count(pid)) return;  // reported nothing yet
    if (type == "warning" && e.contains("capability_gap") && e["capability_gap"].is_string()) {
        m_gaps[pid].emplace(e["capability_gap"].get<std::string>(), e.value("message", std::string()));
        return;
    }
    auto& caps = m_byPid[pid];
    if (type == "hello" && !e.contains("capabilities")) {
        std::string stall = e.value("stall_detection", std::string());
        CapabilityState s{stall == "active" ? "active" : "pending", stall == "active" ? "" : stall};
        caps["stall_detection"] = s;
        for (const char* name : kObserverCapabilities) caps[name] = s;
        caps["snapshots"] = {"active", ""};
        return;
    }
    if ((type == "hello" || type == "capabilities") && e.contains("capabilities") && e["capabilities"].is_object()) {
        for (const auto& [name, c] : e["capabilities"].items()) {
            if (!c.is_object()) continue;
            caps[name] = {c.value("state", std::string("inactive")),
                          c.contains("reason") && c["reason"].is_string() ? c["reason"].get<std::string>() : ""};
        }
        return;
    }
    // Older agents announce the stall hook (and the observers with it) later.
    if (type == "info" && e.value("message", std::string()) == "stall detection active") {
        caps["stall_detection"] = {"active", ""};
        for (const char* name : kObserverCapabilities) caps[name] = {"active", ""};
    }
}

std::vector<std::string> Capabilities::notActive(const std::string& name) const {
    std::vector<std::string> out;
    for (const auto& [pid, caps] : m_byPid) {
        auto it = caps.find(name);
        if (it != caps.end() && it->second.state == "active") {
            if (const std::string* gap = gapOf(pid, name)) {
                out.push_back("pid " + std::to_string(pid) + " (active, but not for part of the run: " + *gap + ")");
            }
            continue;
        }
        std::string why = it == caps.end() ? "not reported" : it->second.state;
        if (it != caps.end() && !it->second.reason.empty()) why += ": " + it->second.reason;
        out.push_back("pid " + std::to_string(pid) + " (" + why + ")");
    }
    return out;
}

const std::string* Capabilities::gapOf(pid_t pid, const std::string& name) const {
    auto gaps = m_gaps.find(pid);
    if (gaps == m_gaps.end()) return nullptr;
    auto gap = gaps->second.find(name);
    return gap == gaps->second.end() ? nullptr : &gap->second;
}

std::string capabilityFor(const std::string& failOn) {
    if (failOn == "stall") return "stall_detection";
    if (failOn == "deadlock") return "snapshots";
    if (failOn == "unawaited") return "unawaited_coroutine";
    if (failOn == "cancel-swallowed") return "cancellation_swallowed";
    if (failOn == "unretrieved") return "task_exception_unretrieved";
    if (failOn == "destroyed-pending") return "task_destroyed_pending";
    return failOn;
}

}  // namespace aioscope::cli
