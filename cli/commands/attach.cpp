// `aioscope attach PID`: loads the agent into a running Python process (PEP
// 768 on 3.14+, ptrace below) or reconnects to the agent it already carries,
// streams events until the target exits, --duration runs out or Ctrl-C, then
// detaches: the agent goes idle and the target runs on as before.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <iostream>
#include <string>

#include "commands/agent_session.h"
#include "commands/commands.h"
#include "errors.h"
#include "inject/ptrace_injector.h"
#include "inject/remote_exec.h"
#include "inject/target_files.h"
#include "inspect.h"
#include "target/proc.h"

namespace aioscope::cli {

namespace {

volatile sig_atomic_t g_stop = 0;
void onSignal(int) { g_stop = 1; }

std::string pythonLiteral(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\\' || c == '\'') out += '\\';
        out += c;
    }
    return out + "'";
}

// A program that ended is a zombie until its parent reaps it: kill(pid, 0)
// still succeeds then, so its state is read.
bool alive(pid_t pid) {
    if (kill(pid, 0) != 0 && errno != EPERM) return false;
    char state = procState(pid);
    return state != 0 && state != 'Z' && state != 'X';
}

// Pumps events until the first hello, the deadline, or the target's death.
bool waitForHello(AgentRelay& relay, pid_t pid, std::chrono::milliseconds within) {
    auto deadline = std::chrono::steady_clock::now() + within;
    while (!relay.helloSeen() && std::chrono::steady_clock::now() < deadline && alive(pid) && !g_stop) relay.pump(20);
    return relay.helloSeen();
}

}  // namespace

int runAttach(const AttachArgs& args) {
    Inspector target(args.pid);  // refuses non-Python, unsupported versions, missing permission
    TargetFiles files(args.pid);
    EventStream stream(args.stream);
    AgentRelay relay(files.server(), stream);
    installSnapshotRequestSignal();
    struct sigaction sa{};
    sa.sa_handler = onSignal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    std::string config = agentConfig(args.agent, files.inTarget(files.server().socketPath()), "attach");
    // Already loaded (an earlier attach): start it again rather than load a second copy.
    std::string agent = loadedAgentPath(args.pid);
    if (agent.empty()) agent = files.stageAgent(agentLibraryPath());

    bool loaded = false;
    if (RemoteExec::supported(target)) {
        RemoteExec exec(target);
        std::string loader = files.stageFile(
            "loader.py", "import ctypes\nctypes.CDLL(" + pythonLiteral(agent) + ").aioscope_agent_start(" +
                             pythonLiteral(config) + ".encode())\n");
        exec.request(loader, false);
        // A main thread blocked in C never reaches a safe point: ask the others too.
        if (!waitForHello(relay, args.pid, std::chrono::seconds(2))) exec.request(loader, true);
        loaded = waitForHello(relay, args.pid, std::chrono::seconds(2));
        // Requests not yet run must not run later. (If one runs anyway, the
        // agent takes the same configuration once only.)
        exec.withdraw();
        // PEP 768 runs the loader at the next bytecode; a program idle in
        // epoll (a hung service) may never execute one: inject as below 3.14.
    }
    if (!loaded) {
        injectAgent(args.pid, agent, config);
        if (!waitForHello(relay, args.pid, std::chrono::seconds(10))) {
            throw InspectError(Errc::internal, "the agent was loaded but did not connect within 10 s");
        }
    }

    auto start = std::chrono::steady_clock::now();
    while (!g_stop && alive(args.pid)) {
        relay.pump(50);
        if (args.durationMs && std::chrono::steady_clock::now() - start > std::chrono::milliseconds(args.durationMs)) break;
        if (relay.agents() == 0 && !alive(args.pid)) break;
    }
    if (alive(args.pid)) {
        relay.detachAll();
        for (int i = 0; i < 100 && relay.agents() > 0; ++i) relay.pump(20);
    } else {
        auto e = stream.make("exit", args.pid);
        e["status"] = nullptr;
        e["description"] = "(the process ended while attached)";
        e["stalls"] = stream.stalls();
        e["deadlocks"] = stream.deadlocks();
        stream.emit(e);
    }
    return 0;
}

}  // namespace aioscope::cli
