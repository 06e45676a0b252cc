#include "commands/agent_session.h"

#include <signal.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "errors.h"
#include "native/native_stack.h"
#include "native/thread_stop.h"
#include "stream/event_schema.h"

namespace aioscope::cli {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kSnapshotCommand = "{\"cmd\": \"snapshot\"}\n";
constexpr const char* kDeadlockCheck = "deadlock-check";
constexpr std::size_t kMaxRequested = 16;
// Native stacks: each stops a thread of the target for about a millisecond.
constexpr double kCapturesPerSecond = 20;
constexpr double kCaptureBurst = 20;
constexpr auto kFirstCheck = std::chrono::milliseconds(200);
constexpr auto kCheckEvery = std::chrono::milliseconds(1000);
constexpr auto kAnswerWithin = std::chrono::seconds(10);

volatile sig_atomic_t g_snapshotRequested = 0;
void onSnapshotRequest(int) { g_snapshotRequested = 1; }

// The agent says where its hook counts the loop thread's callbacks: while the
// thread is stopped, the stall's callback must still be the one running, or
// the native stack would be of whatever ran after it.
std::function<bool()> sameCallback(pid_t pid, const json& event) {
    const json* slot = event.contains("_slot") && event["_slot"].is_object() ? &event["_slot"] : nullptr;
    if (!slot) return {};
    auto seqAddr = slot->value("seq_address", std::uint64_t{0});
    auto depthAddr = slot->value("depth_address", std::uint64_t{0});
    auto seq = slot->value("seq", std::uint64_t{0});
    if (!seqAddr || !depthAddr) return {};
    return [=] {
        std::uint64_t nowSeq = 0;
        int depth = 0;
        iovec local[2] = {{&nowSeq, sizeof nowSeq}, {&depth, sizeof depth}};
        iovec remote[2] = {{reinterpret_cast<void*>(seqAddr), sizeof nowSeq},
                           {reinterpret_cast<void*>(depthAddr), sizeof depth}};
        ssize_t want = sizeof nowSeq + sizeof depth;
        return process_vm_readv(pid, local, 2, remote, 2, 0) == want && nowSeq == seq && depth > 0;
    };
}

// The deadlock findings of a snapshot, as one comparable string ("" if none).
std::string deadlocksOf(const json& snapshot) {
    std::string key;
    for (const auto& f : snapshot.value("findings", json::array())) {
        std::string kind = f.value("kind", std::string());
        if (kind != "await-cycle" && kind != "lock-deadlock" && kind != "orphaned-wait") continue;
        key += kind + ":" + f.value("tasks", json::array()).dump() + ";";
    }
    return key;
}

}  // namespace

std::string agentLibraryPath() {
    if (const char* env = std::getenv("AIOSCOPE_AGENT_SO")) return env;
    fs::path self = fs::read_symlink("/proc/self/exe").parent_path();
    for (const fs::path& p : {self / "aioscope-agent.so", self / "../lib/aioscope/aioscope-agent.so"}) {
        if (fs::exists(p)) return fs::canonical(p).string();
    }
    throw InspectError(Errc::internal, "cannot find aioscope-agent.so next to aioscope; set AIOSCOPE_AGENT_SO");
}

std::string agentConfig(const AgentOptions& o, const std::string& socket, const char* mode) {
    return "socket=" + socket + ";mode=" + mode + ";interval_ms=" + std::to_string(o.intervalMs) +
           ";stall_ms=" + std::to_string(o.stallMs) + ";snapshot_ms=" + std::to_string(o.snapshotEveryMs) +
           ";track_origins=" + (o.trackOrigins ? "1" : "0") + ";" + cliIdentityConfig();
}

void installSnapshotRequestSignal() {
    struct sigaction sa{};
    sa.sa_handler = onSnapshotRequest;
    sigaction(SIGUSR1, &sa, nullptr);
}

AgentRelay::AgentRelay(EventServer& server, EventStream& stream, const PeerPolicy& policy)
    : m_server(server), m_stream(stream) {
    m_server.setPolicy(policy);
}

void AgentRelay::ignore(pid_t pid, const std::string& why) {
    if (++m_ignored <= 3) {
        m_stream.warn("ignored a line from the agent of pid " + std::to_string(pid) +
                      " that is not a valid aioscope event (" + why + ")");
    }
}

void AgentRelay::request(int conn, Agent& agent, const std::string& reason) {
    if (agent.requested.size() >= kMaxRequested) return;  // it does not answer: do not pile up
    m_server.send(conn, kSnapshotCommand);
    if (agent.requested.empty()) agent.requestedAt = Clock::now();
    agent.requested.push_back(reason);
}

ThreadCopyPtr AgentRelay::copyNativeStack(Agent& agent, json& event) {
    const pid_t pid = agent.pid;
    const auto tid = event["native_id"].get<std::int64_t>();
    // Only a thread of the process that reported the stall is ever stopped:
    // /proc/PID/task/TID exists and the thread's own Tgid is PID.
    pid_t owner = tid > 0 && tid < (1 << 30) ? processOfThread(static_cast<pid_t>(tid)) : -1;
    if (owner == 0) {
        event["native_error"] = "the thread had ended before its native stack could be copied";
        event["native_stack"] = json::array();
        return nullptr;
    }
    std::error_code ec;
    if (owner != pid || !fs::exists("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid), ec)) {
        throw std::invalid_argument("the stall names thread " + std::to_string(tid) + ", not a thread of pid " +
                                    std::to_string(pid));
    }
    auto now = Clock::now();
    agent.captureCredit = std::min(kCaptureBurst, agent.captureCredit +
                                                      std::chrono::duration<double>(now - agent.refilled).count() *
                                                          kCapturesPerSecond);
    agent.refilled = now;
    if (agent.captureCredit < 1) {
        event["native_error"] = "not copied: more than 20 stalls per second";
        event["native_stack"] = json::array();
        return nullptr;
    }
    agent.captureCredit -= 1;
    auto same = sameCallback(pid, event);
    const pid_t thread = static_cast<pid_t>(tid);
    // Checked again while the thread is stopped: still the same process's.
    auto stillWanted = [same, pid, thread] { return processOfThread(thread) == pid && (!same || same()); };
    // How long the stall's line waited for the CLI: a callback that ends
    // within it leaves no native stack to copy.
    const double reportedAt = event.value("ts", 0.0);
    const double copyingAt =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (reportedAt > 0) event["native_delay_ms"] = std::max(0.0, (copyingAt - reportedAt) * 1000);
    NativeStack failed;
    ThreadCopyPtr copy;
    try {
        copy = copyThread(pid, thread, failed, stillWanted,
                          "the callback had ended before its native stack could be copied");
    } catch (const InspectError& e) {
        // The process exited while its stack was read: the stall is still
        // reported, and the stream goes on (it once ended `run` with status 7).
        failed.error = e.what();
    }
    if (copy) return copy;
    event["native_stack"] = json::array();
    event["native_stopped_ms"] = failed.stoppedMs;
    event["native_error"] = *failed.error;
    return nullptr;
}

void AgentRelay::addNativeStack(json& event, NativeStack native) {
    json frames = json::array();
    for (const auto& f : native.frames) {
        char addr[24];
        std::snprintf(addr, sizeof addr, "0x%llx", static_cast<unsigned long long>(f.address));
        json j{{"address", addr}, {"function", f.function}, {"offset", f.offset}, {"module", f.module}};
        j["file"] = f.file.empty() ? json() : json(f.file);
        j["line"] = f.line ? json(f.line) : json();
        frames.push_back(std::move(j));
    }
    event["native_stack"] = std::move(frames);
    event["native_stopped_ms"] = native.stoppedMs;
    if (native.error) event["native_error"] = *native.error;
}

// Events leave in the order their lines came: a stall waits in the queue
// until its frames are named, and every event after it waits behind it.
void AgentRelay::emitInOrder(json event, ThreadCopyPtr copy) {
    event.erase("_slot");  // the agent's note to the CLI, not the user's
    if (m_queue.empty() && !copy) {
        m_stream.emit(event);
        return;
    }
    Queued q{std::move(event), std::nullopt};
    if (copy) q.native = m_namer.name(std::move(copy));
    m_queue.push_back(std::move(q));
}

void AgentRelay::emitNamed(bool wait) {
    while (!m_queue.empty()) {
        Queued& q = m_queue.front();
        if (q.native) {
            if (!wait && q.native->wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
            addNativeStack(q.event, q.native->get());
        }
        m_stream.emit(q.event);
        m_queue.pop_front();
    }
}

void AgentRelay::onLine(int conn, pid_t pid, std::string& line) {
    auto it = m_agents.find(conn);
    if (it == m_agents.end()) return;
    Agent& agent = it->second;
    CheckedEvent checked = checkAgentLine(line);
    if (!checked.event) return ignore(pid, checked.why);
    m_shortened += checked.shortened;
    json& event = *checked.event;
    // The kernel's pid, in our namespace: never the one the line claims.
    event["pid"] = pid;
    const std::string type = event["type"].get<std::string>();
    if (type == "hello") {
        ++m_hellos;
        agent.hello = true;
    }
    if (type == "detached") ++m_detached;
    if (type == "snapshot") {
        ++m_snapshots;
        agent.lastSnapshot = Clock::now();
        agent.snapshotMs = event.value("duration_ms", 0.0);
        std::string reason;
        if (!agent.requested.empty()) {
            reason = agent.requested.front();
            agent.requested.pop_front();
            agent.requestedAt = Clock::now();
        }
        if (!reason.empty()) event["reason"] = reason;
        if (reason == kDeadlockCheck) {
            // Shown only when it found something new: the check is the CLI's own.
            std::string found = deadlocksOf(event);
            if (found.empty() || found == agent.lastDeadlocks) return;
            agent.lastDeadlocks = found;
        }
    }
    ThreadCopyPtr copy;
    if (type == "stall" && event["captured"].get<bool>()) {
        try {
            copy = copyNativeStack(agent, event);
        } catch (const std::invalid_argument& e) {
            return ignore(pid, e.what());
        }
    }
    emitInOrder(std::move(event), std::move(copy));
}

void AgentRelay::pump(int timeoutMs) {
    releaseStrayStops();
    if (g_snapshotRequested) {
        g_snapshotRequested = 0;
        for (auto& [conn, agent] : m_agents) request(conn, agent, "");
    }
    EventServer::Handlers h;
    h.accepted = [&](int conn, pid_t pid) {
        Agent a;
        a.pid = pid;
        a.captureCredit = kCaptureBurst;
        a.refilled = Clock::now();
        a.lastCheck = Clock::now() - kCheckEvery + kFirstCheck;  // the first check soon after hello
        m_agents[conn] = std::move(a);
    };
    h.line = [&](int conn, pid_t pid, std::string& line) { onLine(conn, pid, line); };
    h.closed = [&](int conn, pid_t pid) {
        m_agents.erase(conn);
        m_namer.forget(pid);
    };
    h.refused = [&](pid_t, const std::string& why) {
        // Each kind of refusal once (a flood of connections is summarized).
        std::string kind;
        for (char c : why) {
            if (c < '0' || c > '9') kind += c;
        }
        if (m_refusedKinds.size() < 8 && m_refusedKinds.insert(kind).second) {
            m_stream.warn("refused a connection to aioscope's socket: " + why);
        }
    };
    // While a stall is being named, in short slices: it leaves as soon as
    // it is named, not at the end of the wait.
    auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
    for (;;) {
        int left = static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
        m_server.poll(m_queue.empty() ? std::max(left, 0) : std::clamp(left, 0, 2), h);
        emitNamed(false);
        if (m_queue.empty() || Clock::now() >= deadline) return;
    }
}

int AgentRelay::requestSnapshots(int timeoutMs, const char* reason) {
    int before = m_snapshots;
    std::size_t wanted = m_agents.size();
    if (!wanted) return 0;
    for (auto& [conn, agent] : m_agents) request(conn, agent, reason);
    auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
    while (static_cast<std::size_t>(m_snapshots - before) < wanted && Clock::now() < deadline) pump(20);
    return m_snapshots - before;
}

void AgentRelay::checkDeadlocks() {
    auto now = Clock::now();
    for (auto& [conn, agent] : m_agents) {
        // Every second, or less often when snapshots of this process are slow
        // to read (at most 5% of its agent's time).
        auto every = std::max<Clock::duration>(
            kCheckEvery, std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double, std::milli>(agent.snapshotMs * 20)));
        // An agent that never answered (one that has just detached, or an
        // older one that dropped a request while starting) is asked again.
        if (!agent.requested.empty() && now - agent.requestedAt > kAnswerWithin) agent.requested.clear();
        if (!agent.hello || now - agent.lastSnapshot < every || now - agent.lastCheck < every ||
            !agent.requested.empty()) {
            continue;
        }
        agent.lastCheck = now;
        request(conn, agent, kDeadlockCheck);
    }
}

void AgentRelay::detachAll() { m_server.sendAll("{\"cmd\": \"detach\"}\n"); }

void AgentRelay::drain() {
    for (int i = 0, idle = 0; i < 100 && idle < 2; ++i) {
        pump(20);
        idle = agents() > 0 ? 0 : idle + 1;
    }
}

void AgentRelay::summarize() {
    emitNamed(true);
    if (m_ignored > 3) m_stream.warn("ignored " + std::to_string(m_ignored) + " lines from agents in all");
    int refused = m_server.refusedConnections();
    if (refused > static_cast<int>(m_refusedKinds.size())) m_stream.warn("refused " + std::to_string(refused) + " connections to aioscope's socket in all");
    if (int n = m_server.discardedLines()) {
        m_stream.warn("discarded " + std::to_string(n) + " lines from agents longer than " +
                      std::to_string(kMaxSnapshotLine >> 20) + " MiB");
    }
    if (m_shortened) {
        m_stream.warn("shortened " + std::to_string(m_shortened) + " strings from agents to " +
                      std::to_string(kMaxString >> 10) + " KiB");
    }
}

}  // namespace aioscope::cli
