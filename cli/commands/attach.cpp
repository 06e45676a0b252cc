// `aioscope attach PID`: loads the agent into a running Python process (PEP
// 768 on 3.14+, ptrace below) or reconnects to the agent it already carries,
// streams events until the target exits, --duration runs out or Ctrl-C, then
// detaches: the agent goes idle and the target runs on as before.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <time.h>

#include "commands/agent_session.h"
#include "commands/commands.h"
#include "early_signals.h"
#include "errors.h"
#include "inject/ptrace_injector.h"
#include "inject/remote_exec.h"
#include "inject/target_files.h"
#include "inspect.h"
#include "target/proc.h"

namespace aioscope::cli {

namespace {

// How long a detach may take before it is reported unconfirmed.
constexpr std::chrono::seconds kDetachWithin{5};

// Ctrl-C, SIGTERM, SIGHUP: stop cleanly (detach, remove the staging folder).
// SIGPIPE (`attach | head`): the same, then exit 14. Installed without
// SA_RESTART so that a wait returns at once.
volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_pipe = 0;
void onSignal(int sig) {
    if (sig == SIGPIPE) g_pipe = 1;
    g_stop = 1;
}
bool interrupted() { return g_stop != 0; }

void installStopSignals() {
    struct sigaction sa{};
    sa.sa_handler = onSignal;
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaction(sig, &sa, nullptr);
    if (pipeSignalled()) onSignal(SIGPIPE);  // before ours was in
}

[[noreturn]] void throwInterrupted(const char* when) {
    throw InspectError(Errc::interrupted, std::string("interrupted ") + when);
}

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

// Pumps events until the first hello, the deadline, the target's death or
// a stop signal.
bool waitForHello(AgentRelay& relay, pid_t pid, std::chrono::milliseconds within) {
    auto deadline = std::chrono::steady_clock::now() + within;
    while (!relay.helloSeen() && std::chrono::steady_clock::now() < deadline && alive(pid) && !g_stop) relay.pump(10);
    return relay.helloSeen();
}

// The target's threads that are on a CPU now (state R), in a few looks over
// a few milliseconds, the main thread first: only they can run PEP 768's
// request soon (it runs at the next bytecode; a process idle in epoll or
// blocked on a lock runs none).
std::vector<pid_t> runningThreads(pid_t pid) {
    ProcFs proc(pid);
    std::vector<pid_t> out;
    for (int look = 0; look < 3; ++look) {
        for (pid_t tid : proc.threads()) {
            if (procState(pid, tid) == 'R' && std::find(out.begin(), out.end(), tid) == out.end()) out.push_back(tid);
        }
        timespec t{0, 2'000'000};
        nanosleep(&t, nullptr);
    }
    std::stable_partition(out.begin(), out.end(), [&](pid_t t) { return t == pid; });
    return out;
}

// PEP 768 (3.14+): asks one running thread at a time to run the loader at
// its next bytecode (each thread that takes a request runs it: one at a
// time, the agent starts once). Waited for briefly, then withdrawn (so it
// can never run later), and waited for longer only if the thread took it.
// False: load the agent with ptrace instead.
bool loadWithRemoteExec(RemoteExec& exec, TargetFiles& files, AgentRelay& relay, pid_t pid, const std::string& agent,
                        const std::string& config) {
    auto running = runningThreads(pid);
    if (running.empty()) return false;
    std::string loader = files.stageScript("import ctypes\nctypes.CDLL(" + pythonLiteral(agent) +
                                           ").aioscope_agent_start(" + pythonLiteral(config) + ".encode())\n");
    int asked = 0;
    for (pid_t tid : running) {
        if (asked == 2 || g_stop) break;
        if (!exec.request(loader, tid)) continue;  // not a Python thread
        ++asked;
        bool loaded = waitForHello(relay, pid, std::chrono::milliseconds(250));
        bool taken = exec.withdraw();
        // Taken: the loader is running (importing ctypes on a busy machine
        // takes a while). If it still does not report, ptrace loads the
        // agent; the agent takes the same configuration once only.
        if (!loaded && taken) loaded = waitForHello(relay, pid, std::chrono::seconds(5));
        if (loaded || taken) return loaded;
    }
    return false;
}

}  // namespace

namespace {
int attachTo(const AttachArgs& args);
}

int runAttach(const AttachArgs& args) {
    try {
        return attachTo(args);
    } catch (const InspectError& e) {
        // A target ending takes its threads, then its memory, one by one:
        // whatever step met it (a seize refused, no room for the stub, no
        // runtime in its maps) says it exited, not what that step saw.
        bool judged = e.code() == Errc::internal || e.code() == Errc::permission_denied ||
                      e.code() == Errc::not_python || e.code() == Errc::unsupported_version;
        if (judged && processEnding(args.pid)) {
            throw InspectError(Errc::process_exited, "the target exited while aioscope attached");
        }
        throw;
    }
}

namespace {

int attachTo(const AttachArgs& args) {
    installStopSignals();  // before anything is created in the target's /tmp
    Inspector target(args.pid);  // refuses non-Python, unsupported versions, missing permission
    if (g_stop) throwInterrupted("before attaching");
    std::unique_ptr<RemoteExec> exec;
    if (RemoteExec::supported(target)) {
        exec = std::make_unique<RemoteExec>(target);
        exec->requireEnabled();  // disabled: nothing is injected at all, ptrace included
        // Before stale staging folders go: a killed attach's requests still
        // pending must not run a script that no longer exists.
        exec->withdrawStale(std::string("/tmp/") + kStagingPrefix);
    }
    TargetFiles files(args.pid);
    StreamOptions streamOptions = args.stream;
    streamOptions.interrupted = &g_stop;
    EventStream stream(streamOptions);
    AgentRelay relay(files.server(), stream, PeerPolicy::process(args.pid));  // nobody else may connect
    installSnapshotRequestSignal();

    std::string config = agentConfig(args.agent, files.inTarget(files.server().socketPath()), "attach");
    // Already loaded (an earlier attach): start it again rather than load a second copy.
    std::string agent = loadedAgentPath(args.pid);
    if (agent.empty()) agent = files.stageAgent(agentLibraryPath());

    bool loaded = exec && loadWithRemoteExec(*exec, files, relay, args.pid, agent, config);
    if (!loaded) {
        if (g_stop) throwInterrupted("before the agent was loaded");
        if (!alive(args.pid)) throw InspectError(Errc::process_exited, "the target exited while aioscope attached");
        InjectResult injected = injectAgent(args.pid, agent, config, interrupted);
        if (!waitForHello(relay, args.pid, std::chrono::seconds(10))) {
            if (g_stop) throwInterrupted("before the agent reported");
            if (!alive(args.pid)) throw InspectError(Errc::process_exited, "the target exited before its agent reported");
            throw InspectError(Errc::internal, "the agent was loaded but did not connect within 10 s" +
                                                   (injected.note.empty() ? "" : " (" + injected.note + ")"));
        }
    }

    auto start = std::chrono::steady_clock::now();
    while (!g_stop && alive(args.pid)) {
        relay.pump(50);
        if (args.durationMs && std::chrono::steady_clock::now() - start > std::chrono::milliseconds(args.durationMs)) break;
        if (relay.agents() == 0 && !alive(args.pid)) break;
    }
    const bool ended = !alive(args.pid);
    if (!ended) {
        // The agent takes the GIL to remove its hooks: a program busy in one
        // C call may hold it a while. Not confirmed is said, never assumed.
        relay.detachAll();
        auto until = std::chrono::steady_clock::now() + kDetachWithin;
        while (relay.agents() > 0 && std::chrono::steady_clock::now() < until && alive(args.pid)) relay.pump(20);
        if (relay.detachedAgents() == 0 && alive(args.pid)) {
            stream.warn("the agent in process " + std::to_string(args.pid) + " did not confirm its detach within " +
                        std::to_string(kDetachWithin.count()) +
                        " s (the program may be holding the GIL): its hooks stay until it can take the GIL, "
                        "and it removes them then by itself");
        }
    } else {
        relay.drain();  // its goodbye, and a stall being named, come before the exit
    }
    relay.summarize();
    if (ended) {
        auto e = stream.make("exit", args.pid);
        e["status"] = nullptr;
        e["description"] = "(the process ended while attached)";
        e["stalls"] = stream.stalls();
        e["deadlocks"] = stream.deadlocks();
        stream.emit(e);
    }
    if (!stream.outputError().empty()) throw InspectError(Errc::output_failed, stream.outputError());
    if (g_pipe) throw InspectError(Errc::output_failed, "standard output was closed (the reading end of the pipe exited)");
    return 0;
}

}  // namespace

}  // namespace aioscope::cli
