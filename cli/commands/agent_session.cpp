#include "commands/agent_session.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <filesystem>

#include "errors.h"
#include "native/native_stack.h"

namespace aioscope::cli {

namespace fs = std::filesystem;
using nlohmann::json;

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
           ";track_origins=" + (o.trackOrigins ? "1" : "0");
}

namespace {

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

}  // namespace

void AgentRelay::onLine(int conn, std::string& line) {
    auto event = m_stream.parse(line);
    if (!event) return;
    auto pidIt = m_pidOf.find(conn);
    if (pidIt == m_pidOf.end()) {
        // The agent's getpid() is its own namespace's; the kernel tells us ours.
        ucred cred{};
        socklen_t len = sizeof cred;
        long pid = getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : event->value("pid", 0L);
        pidIt = m_pidOf.emplace(conn, pid).first;
    }
    long pid = pidIt->second;
    (*event)["pid"] = pid;
    const std::string type = event->value("type", std::string());
    if (type == "hello") ++m_hellos;
    if (type == "snapshot") {
        ++m_snapshots;
        if (!m_snapshotReason.empty()) (*event)["reason"] = m_snapshotReason;
    }
    if (type == "stall" && event->value("captured", false) && (*event)["native_id"].is_number()) {
        NativeStack native = captureNativeStack(static_cast<pid_t>(pid), (*event)["native_id"].get<pid_t>(),
                                                sameCallback(static_cast<pid_t>(pid), *event),
                                                "the callback had ended before its native stack could be copied");
        json frames = json::array();
        for (const auto& f : native.frames) {
            char addr[24];
            std::snprintf(addr, sizeof addr, "0x%llx", static_cast<unsigned long long>(f.address));
            json j{{"address", addr}, {"function", f.function}, {"offset", f.offset}, {"module", f.module}};
            j["file"] = f.file.empty() ? json() : json(f.file);
            j["line"] = f.line ? json(f.line) : json();
            frames.push_back(std::move(j));
        }
        (*event)["native_stack"] = std::move(frames);
        (*event)["native_stopped_ms"] = native.stoppedMs;
        if (native.error) (*event)["native_error"] = *native.error;
    }
    if (event->is_object()) event->erase("_slot");  // the agent's note to the CLI, not the user's
    m_stream.emit(*event);
}

namespace {
volatile sig_atomic_t g_snapshotRequested = 0;
void onSnapshotRequest(int) { g_snapshotRequested = 1; }
}  // namespace

void installSnapshotRequestSignal() {
    struct sigaction sa{};
    sa.sa_handler = onSnapshotRequest;
    sigaction(SIGUSR1, &sa, nullptr);
}

void AgentRelay::pump(int timeoutMs) {
    if (g_snapshotRequested) {
        g_snapshotRequested = 0;
        m_server.sendAll("{\"cmd\": \"snapshot\"}\n");
    }
    m_server.poll(
        timeoutMs, [&](int conn, std::string& line) { onLine(conn, line); },
        [&](int conn) { m_pidOf.erase(conn); });
}

int AgentRelay::requestSnapshots(int timeoutMs, const char* reason) {
    int before = m_snapshots;
    std::size_t wanted = m_server.connections();
    if (!wanted) return 0;
    m_snapshotReason = reason;
    m_server.sendAll("{\"cmd\": \"snapshot\"}\n");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    while (static_cast<std::size_t>(m_snapshots - before) < wanted && std::chrono::steady_clock::now() < deadline) {
        pump(20);
    }
    m_snapshotReason.clear();
    return m_snapshots - before;
}

void AgentRelay::detachAll() { m_server.sendAll("{\"cmd\": \"detach\"}\n"); }

}  // namespace aioscope::cli
