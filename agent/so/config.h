// The agent's options, passed as "key=value;key=value" by the CLI (through
// aioscope_agent_start's argument, or AIOSCOPE_AGENT for `aioscope run`).
// Plain data: the agent never runs code it receives.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace aioscope::agent {

struct Config {
    std::string socket;               // Unix socket of the CLI, as this process sees it
    std::int64_t intervalNs = 10'000'000;      // sampling interval (100 Hz)
    std::int64_t stallNs = 100'000'000;        // stall threshold
    std::int64_t snapshotEveryNs = 0;          // periodic snapshots; 0: only on request
    std::string mode = "attach";              // or "run"
    bool trackOrigins = false;                // record where every coroutine is created (costly)
    // Who the CLI is (docs/security.md#the-agents-connection): the server is
    // checked against these before anything is sent, and the token opens the
    // connection. Required: without them the agent connects nowhere.
    pid_t cliPid = 0;                         // as the CLI sees itself (0 here if in another pid namespace)
    uid_t cliUid = 0;
    std::string token;                        // kTokenHexChars lowercase hex digits
};

// nullopt when the text is malformed, a value is out of range, or the socket
// or the CLI's identity is missing.
std::optional<Config> parseConfig(const std::string& text);

}  // namespace aioscope::agent
