// What each observed process could check, from its hello and later
// `capabilities` events: `--fail-on X` passes only if X was active, at the
// end, in every process that reported, and no warning of that process said
// that X missed part of the run (docs/guide.md#ci-mode-run).
//
// Agents that predate the capabilities object send only "stall_detection":
// anything but "active" means not active, and the observers of the silent
// bugs are installed with the stall hook, so they share its state.
#pragma once

#include <sys/types.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace aioscope::cli {

struct CapabilityState {
    std::string state;   // active, pending, inactive
    std::string reason;  // why not active ("" if none given)
};

class Capabilities {
public:
    // hello, capabilities, (older agents) info events, and warnings that
    // carry a capability_gap.
    void observe(pid_t pid, const nlohmann::json& event);
    // Processes in which `name` is not active now, or was not for part of
    // the run (a `capability_gap` warning): "pid N (reason)".
    std::vector<std::string> notActive(const std::string& name) const;
    bool any() const { return !m_byPid.empty(); }

private:
    const std::string* gapOf(pid_t pid, const std::string& name) const;

    std::map<pid_t, std::map<std::string, CapabilityState>> m_byPid;
    std::map<pid_t, std::map<std::string, std::string>> m_gaps;  // the first gap's message
};

// The capability a --fail-on condition needs ("stall" -> "stall_detection").
std::string capabilityFor(const std::string& failOn);

}  // namespace aioscope::cli
