// What `run` and `attach` share: the agent's options, its shared object, and
// the loop that turns agent lines into events (adding native stacks to stall
// reports, naming each agent by its real pid). Nothing an agent sends is
// trusted: connections are authenticated by the server, every line is
// checked against the event schema, and a stall's thread must belong to the
// process that reported it before the CLI stops it for its native stack.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <optional>
#include <map>
#include <set>
#include <string>

#include "native/frame_namer.h"
#include "native/native_stack.h"
#include "stream/event_stream.h"
#include "stream/peer_auth.h"
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

// "socket=...;interval_ms=...;...;token=..." for the agent.
std::string agentConfig(const AgentOptions& options, const std::string& socketAsSeenByAgent, const char* mode);

// SIGUSR1 to aioscope asks every agent for a snapshot (handled in pump()).
void installSnapshotRequestSignal();

class AgentRelay {
public:
    // `policy`: which processes may connect (attach: the target; run: the
    // program and its descendants).
    AgentRelay(EventServer& server, EventStream& stream, const PeerPolicy& policy);

    // Handles whatever arrives within timeoutMs.
    void pump(int timeoutMs);
    // Asks every agent for a snapshot; waits up to timeoutMs for them.
    int requestSnapshots(int timeoutMs, const char* reason);
    // `--fail-on deadlock`: asks agents that have not sent a snapshot lately
    // for one, without waiting; their answers are checked for deadlocks and
    // shown only when they found one.
    void checkDeadlocks();
    void detachAll();
    // Agents that confirmed a detach (their `detached` line).
    int detachedAgents() const { return m_detached; }
    bool helloSeen() const { return m_hellos > 0; }
    std::size_t agents() const { return m_server.connections(); }
    // Once the processes ended: their agents' last lines (a goodbye, a stall
    // being named) are read until two rounds in a row find no agent connected
    // (at most 2 s: descendants may live on), so nothing comes after the exit.
    void drain();
    // At the end: the events still waiting for their native stacks' names,
    // then warnings that summarize what was refused or ignored.
    void summarize();

private:
    struct Agent {
        pid_t pid = 0;
        bool hello = false;                  // commands are sent only once it said hello
        std::deque<std::string> requested;  // reasons of snapshots asked for, oldest first
        std::chrono::steady_clock::time_point requestedAt;  // of the oldest unanswered
        std::chrono::steady_clock::time_point lastSnapshot;
        std::chrono::steady_clock::time_point lastCheck;
        double snapshotMs = 0;               // how long its last snapshot took to read
        double captureCredit = 0;            // native stacks it may still have us capture
        std::chrono::steady_clock::time_point refilled;
        std::string lastDeadlocks;           // the deadlock findings last shown
    };
    struct Queued {
        nlohmann::json event;
        std::optional<std::future<NativeStack>> native;  // a stall's, being named by m_namer
    };
    void onLine(int conn, pid_t pid, std::string& line);
    // Stops the stall's thread for a copy of its stack, at once; m_namer
    // unwinds and names the copy meanwhile.
    ThreadCopyPtr copyNativeStack(Agent& agent, nlohmann::json& event);
    static void addNativeStack(nlohmann::json& event, NativeStack native);
    void emitInOrder(nlohmann::json event, ThreadCopyPtr copy);
    // Emits the queue's events up to the first stall still being named
    // (all of them, waiting for each, when `wait`).
    void emitNamed(bool wait);
    void ignore(pid_t pid, const std::string& why);
    void request(int conn, Agent& agent, const std::string& reason);

    EventServer& m_server;
    EventStream& m_stream;
    std::map<int, Agent> m_agents;  // connection -> agent
    std::deque<Queued> m_queue;     // events waiting behind a stall whose frames are being named
    FrameNamer m_namer;             // last: its thread ends before what it writes to
    int m_hellos = 0;
    int m_snapshots = 0;
    int m_detached = 0;
    int m_ignored = 0;
    std::set<std::string> m_refusedKinds;  // kinds of refusals already reported
    int m_shortened = 0;
};

}  // namespace aioscope::cli
