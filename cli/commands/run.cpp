// `aioscope run -- PROGRAM ARGS...`: starts the program with the agent
// preloaded (LD_PRELOAD, inherited by every process it execs, so `pytest` or a
// shell script that ends up in python works), streams events until it exits,
// and in CI mode fails on stalls or deadlocks and stops a hung program after
// --timeout with a full dump.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <iostream>

#include "commands/agent_session.h"
#include "commands/commands.h"
#include "errors.h"
#include "inspect.h"
#include "model/snapshot_json.h"

extern char** environ;

namespace aioscope::cli {

using nlohmann::json;

namespace {

volatile sig_atomic_t g_forward = 0;  // a signal to pass on to the program
void onSignal(int sig) { g_forward = sig; }

pid_t spawnWithAgent(const std::vector<std::string>& command, const std::string& agentSo, const std::string& config) {
    std::vector<std::string> env;
    std::string preload = agentSo;
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        if (kv.starts_with("LD_PRELOAD=")) {
            preload += ":" + kv.substr(11);
        } else if (!kv.starts_with("AIOSCOPE_AGENT=")) {
            env.push_back(kv);
        }
    }
    env.push_back("LD_PRELOAD=" + preload);
    env.push_back("AIOSCOPE_AGENT=" + config);
    std::vector<char*> envp, argv;
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), envp.data());
    if (rc != 0) throw InspectError(Errc::usage, "cannot run " + command[0] + ": " + std::strerror(rc));
    return pid;
}

std::string describeStatus(int status) {
    if (WIFEXITED(status)) return "with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
    return "";
}

// The hang watchdog: everything the program is doing, from the agent if it
// answers, else read from outside.
void dumpForTimeout(AgentRelay& relay, EventStream& stream, pid_t pid) {
    if (relay.requestSnapshots(3000, "timeout") > 0) return;
    try {
        Inspector inspector(pid);
        Snapshot snap = inspector.snapshot(InspectOptions{});
        std::ostringstream out;
        writeJson(snap, out);
        json doc = json::parse(out.str());
        json e = stream.make("snapshot", pid);
        e["reason"] = "timeout";
        for (const char* k : {"threads", "tasks", "findings", "warnings", "duration_ms"}) e[k] = doc[k];
        stream.emit(e);
    } catch (const InspectError& err) {
        stream.warn(std::string("no dump at timeout: ") + err.what());
    }
}

}  // namespace

int runProgram(const RunArgs& args) {
    if (args.command.empty()) throw InspectError(Errc::usage, "run: no program given (aioscope run -- python app.py)");
    std::string agentSo = agentLibraryPath();
    EventServer server("/tmp", getuid(), getgid());
    EventStream stream(args.stream);
    AgentRelay relay(server, stream);

    installSnapshotRequestSignal();
    struct sigaction sa{};
    sa.sa_handler = onSignal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);

    pid_t child = spawnWithAgent(args.command, agentSo, agentConfig(args.agent, server.socketPath(), "run"));
    auto start = std::chrono::steady_clock::now();
    int status = 0;
    bool timedOut = false;
    for (;;) {
        relay.pump(20);
        if (g_forward) {
            kill(child, g_forward == SIGINT ? SIGINT : SIGTERM);
            g_forward = 0;
        }
        pid_t r = waitpid(child, &status, WNOHANG);
        if (r == child) break;
        if (args.timeoutMs && !timedOut &&
            std::chrono::steady_clock::now() - start > std::chrono::milliseconds(args.timeoutMs)) {
            timedOut = true;
            stream.warn("timeout after " + std::to_string(args.timeoutMs) + " ms: dumping and stopping the program");
            dumpForTimeout(relay, stream, child);
            kill(child, SIGTERM);
            for (int i = 0; i < 150 && waitpid(child, &status, WNOHANG) == 0; ++i) relay.pump(20);
            if (waitpid(child, &status, WNOHANG) == 0) {
                kill(child, SIGKILL);
                waitpid(child, &status, 0);
            }
            break;
        }
    }
    // Agents of the program's last moments may still have lines in flight.
    for (int i = 0; i < 25 && relay.agents() > 0; ++i) relay.pump(20);

    json e = stream.make("exit", child);
    e["status"] = WIFEXITED(status) ? json(WEXITSTATUS(status)) : json();
    e["signal"] = WIFSIGNALED(status) ? json(WTERMSIG(status)) : json();
    e["description"] = timedOut ? "after the timeout (stopped by aioscope)" : describeStatus(status);
    e["stalls"] = stream.stalls();
    e["deadlocks"] = stream.deadlocks();
    json bugs = json::object();
    for (const char* type : kBugEventTypes) bugs[type] = stream.bugs(type);
    e["bugs"] = bugs;
    e["timed_out"] = timedOut;
    stream.emit(e);

    bool failOn = args.failOnDeadlock || args.failOnStall || !args.failOnBugs.empty();
    if (!relay.helloSeen()) {
        stream.warn("no agent reported: the program ran no CPython 3.10-3.15, ended before its agent started "
                    "(a few milliseconds), or could not load " + agentSo +
                    " (a chroot or container hides the host's files: start the program there and use "
                    "`aioscope attach PID` from the host)");
    }
    if (timedOut) return kExitTimeout;
    if (args.failOnDeadlock && stream.deadlocks() > 0) return kExitDeadlock;
    if (args.failOnStall && stream.stalls() > 0) return kExitStall;
    for (const auto& type : args.failOnBugs) {
        if (stream.bugs(type) > 0) return kExitAsyncioBug;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && failOn && !relay.helloSeen()) return kExitNotObserved;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

}  // namespace aioscope::cli
