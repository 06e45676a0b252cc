// `aioscope run -- PROGRAM ARGS...`: starts the program with the agent
// preloaded (LD_PRELOAD, inherited by every process it execs, so `pytest` or a
// shell script that ends up in python works), streams events until it exits,
// and in CI mode fails on stalls, deadlocks or silent bugs and stops a hung
// program after --timeout with a full dump.
//
// The program shares standard output (and usually standard error) with us:
// its bytes are never touched. Events go to standard error, whole lines, or
// to --output (docs/guide.md#where-events-go).
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <sstream>

#include "commands/agent_session.h"
#include "commands/commands.h"
#include "errors.h"
#include "inspect.h"
#include "model/snapshot_json.h"

extern char** environ;

namespace aioscope::cli {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

volatile sig_atomic_t g_forward = 0;  // a signal to pass on to the program
volatile sig_atomic_t g_interrupted = 0;
void onSignal(int sig) {
    g_forward = sig;
    g_interrupted = sig;
}

pid_t spawnWithAgent(const std::vector<std::string>& command, const std::string& agentSo, const std::string& config) {
    std::vector<std::string> env;
    std::string preload = agentSo;
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        if (kv.starts_with("LD_PRELOAD=")) {
            preload += ':';
            preload.append(kv, 11);
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
    // aioscope ignores SIGPIPE (a closed output is an exit status, 14): the
    // program gets the default back, as it would have without us.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, argv[0], nullptr, &attr, argv.data(), envp.data());
    posix_spawnattr_destroy(&attr);
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
        for (const char* k : {"threads", "tasks", "findings", "warnings", "duration_ms", "python"}) e[k] = doc[k];
        stream.emit(e);
    } catch (const InspectError& err) {
        stream.warn(std::string("no dump at timeout: ") + err.what(), pid);
    }
}

// Whether the program has ended, without reaping it: a zombie still has its
// /proc entry, so the connections of its last moments can be authenticated.
// No child left to wait for (ECHILD) is an end too: were it ever reaped
// elsewhere, run must still finish, not wait forever.
bool ended(pid_t child) {
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOHANG | WNOWAIT) != 0) return errno == ECHILD;
    return info.si_pid == child;
}

// The program's orphans are ours to reap (we are their subreaper).
void reapOrphans(pid_t child) {
    for (;;) {
        siginfo_t info{};
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0 || info.si_pid == child) {
            return;
        }
        waitpid(info.si_pid, nullptr, WNOHANG);
    }
}

// One line on standard error saying why run ends with a status of its own.
int because(int status, const std::string& why) {
    std::string line = "aioscope: " + why + "\n";
    ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
    (void)ignored;
    return status;
}

std::string plural(int n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

const char* describeBug(const std::string& type) {
    if (type == "unawaited_coroutine") return "coroutine(s) never awaited";
    if (type == "cancellation_swallowed") return "cancellation(s) swallowed";
    if (type == "task_exception_unretrieved") return "task exception(s) never retrieved";
    return "pending task(s) destroyed";
}

std::string humanMs(std::int64_t ms) {
    if (ms % 1000) return std::to_string(ms) + "ms";
    return std::to_string(ms / 1000) + "s";
}

}  // namespace

int runProgram(const RunArgs& args) {
    if (args.command.empty()) throw InspectError(Errc::usage, "run: no program given (aioscope run -- python app.py)");
    std::string agentSo = agentLibraryPath();
    EventServer server("/tmp", geteuid(), getegid());
    StreamOptions streamOptions = args.stream;
    streamOptions.interrupted = &g_interrupted;
    EventStream stream(streamOptions);

    installSnapshotRequestSignal();
    struct sigaction sa{};
    sa.sa_handler = onSignal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);
    // Orphans of the program (a daemonizing child) stay ours: they are still
    // its descendants, and their agents may connect.
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    pid_t child = spawnWithAgent(args.command, agentSo, agentConfig(args.agent, server.socketPath(), "run"));
    AgentRelay relay(server, stream, PeerPolicy::descendantsOf(child));
    auto start = Clock::now();
    int status = 0;
    bool timedOut = false;
    for (;;) {
        relay.pump(20);
        if (g_forward) {
            kill(child, g_forward == SIGINT ? SIGINT : SIGTERM);
            g_forward = 0;
        }
        if (args.failOnDeadlock) relay.checkDeadlocks();
        reapOrphans(child);
        if (ended(child)) break;
        if (args.timeoutMs && !timedOut && Clock::now() - start > std::chrono::milliseconds(args.timeoutMs)) {
            timedOut = true;
            stream.warn("timeout after " + humanMs(args.timeoutMs) + ": dumping and stopping the program", child);
            dumpForTimeout(relay, stream, child);
            kill(child, SIGTERM);
            // On the clock: a pump returns early when a line comes.
            for (auto killAt = Clock::now() + std::chrono::seconds(3); Clock::now() < killAt && !ended(child);) {
                relay.pump(20);
            }
            if (!ended(child)) kill(child, SIGKILL);
            while (!ended(child)) relay.pump(20);
            break;
        }
    }
    // Agents of the program's last moments may still have lines in flight,
    // or connections not accepted yet (a program that ended within
    // milliseconds).
    relay.drain();
    const bool statusKnown = waitpid(child, &status, 0) == child;
    relay.summarize();

    json e = stream.make("exit", child);
    e["status"] = statusKnown && WIFEXITED(status) ? json(WEXITSTATUS(status)) : json();
    e["signal"] = statusKnown && WIFSIGNALED(status) ? json(WTERMSIG(status)) : json();
    e["description"] = timedOut       ? "after the timeout (stopped by aioscope)"
                       : statusKnown ? describeStatus(status)
                                     : "with a status aioscope could not collect";
    e["stalls"] = stream.stalls();
    e["deadlocks"] = stream.deadlocks();
    json bugs = json::object();
    for (const char* type : kBugEventTypes) bugs[type] = stream.bugs(type);
    e["bugs"] = bugs;
    e["timed_out"] = timedOut;
    stream.emit(e);

    bool failOn = !args.failOn.empty();
    if (!relay.helloSeen()) {
        stream.warn("no agent reported: the program ran no CPython 3.10-3.15, ended before its agent started "
                    "(a few milliseconds), or could not load " + agentSo +
                    " (a chroot or container hides the host's files: start the program there and use "
                    "`aioscope attach PID` from the host)", child);
    }
    if (!statusKnown) {
        // Never a pass that was not seen.
        return because(static_cast<int>(Errc::internal), "the program ended, but its exit status was lost");
    }
    if (timedOut) {
        return because(kExitTimeout, "the program ran longer than --timeout " + humanMs(args.timeoutMs) +
                                         ": it was dumped and stopped");
    }
    if (g_interrupted) {
        return because(static_cast<int>(Errc::interrupted), std::string("interrupted by SIG") +
                                                                sigabbrev_np(g_interrupted) + ": the program ended " +
                                                                describeStatus(status));
    }
    if (args.failOnDeadlock && stream.deadlocks() > 0) {
        return because(kExitDeadlock, "--fail-on deadlock: asyncio tasks that can never finish (see the snapshot)");
    }
    if (args.failOnStall && stream.stalls() > 0) {
        return because(kExitStall, "--fail-on stall: the event loop stalled " + plural(stream.stalls(), "time", "times"));
    }
    for (const auto& type : args.failOnBugs) {
        if (int n = stream.bugs(type)) {
            return because(kExitAsyncioBug, "--fail-on: " + std::to_string(n) + " " + describeBug(type));
        }
    }
    for (const auto& what : args.failOn) {
        auto missing = stream.capabilities().notActive(capabilityFor(what));
        if (missing.empty()) continue;
        std::string list;
        for (std::size_t i = 0; i < missing.size() && i < 3; ++i) list += (i ? ", " : "") + missing[i];
        if (missing.size() > 3) list += " and " + std::to_string(missing.size() - 3) + " more";
        return because(kExitNotActive, "--fail-on " + what + " could not be checked: not active in " + list);
    }
    if (!stream.outputError().empty()) return because(static_cast<int>(Errc::output_failed), stream.outputError());
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && failOn && !relay.helloSeen()) {
        return because(kExitNotObserved, "--fail-on: nothing was checked: no agent reported (see the warning)");
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return because(128 + WTERMSIG(status), "the program was " + describeStatus(status));
}

}  // namespace aioscope::cli
