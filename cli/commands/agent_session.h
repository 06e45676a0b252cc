// What `run` and `attach` share: the agent's options, its shared object, and
// the loop that turns agent lines into events (adding native stacks to stall
// reports, naming each agent by its real pid).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "stream/event_stream.h"
#include "stream/server.h"

namespace aioscope::cli {

struct AgentOptions {
    std::int64_t stallMs = 100;
    std::int64_t intervalMs = 10;
    std::int64_t snapshotEveryMs = 0;
    bool trackOrigins = false;
};

// The agent shared object shipped with this aioscope.
std::string agentLibraryPath();

// "socket=...;interval_ms=...;..." for the agent.
std::string agentConfig(const AgentOptions& options, const std::string& socketAsSeenByAgent, const char* mode);

// SIGUSR1 to aioscope asks every agent for a snapshot (handled in pump()).
void installSnapshotRequestSignal();

class AgentRelay {
public:
    AgentRelay(EventServer& server, EventStream& stream) : m_server(server), m_stream(stream) {}

    // Handles whatever arrives within timeoutMs.
    void pump(int timeoutMs);
    // Asks every agent for a snapshot; waits up to timeoutMs for them.
    int requestSnapshots(int timeoutMs, const char* reason);
    void detachAll();
    bool helloSeen() const { return m_hellos > 0; }
    std::size_t agents() const { return m_server.connections(); }

private:
    void onLine(int conn, std::string& line);

    EventServer& m_server;
    EventStream& m_stream;
    std::map<int, long> m_pidOf;  // connection -> pid in our namespace
    int m_hellos = 0;
    int m_snapshots = 0;
    std::string m_snapshotReason;
};

}  // namespace aioscope::cli
