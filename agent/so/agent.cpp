#include "agent.h"

#include <pthread.h>
#include <malloc.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <memory>
#include <thread>

#include "agent_thread.h"
#include "audit_hook.h"
#include "capabilities.h"
#include "channel.h"
#include "context_run_hook.h"
#include "early_install.h"
#include "errors.h"
#include "events.h"
#include "gil_gate.h"
#include "loop_facts.h"
#include "mem/process_reader.h"
#include "observers.h"
#include "pyapi.h"
#include "pytest_env.h"
#include "running_loop_watch.h"
#include "self_runtime.h"
#include "snapshot_reader.h"
#include "stall_hook.h"
#include "stall_sampler.h"
#include "trio_hook.h"
#include "uvloop_hook.h"

namespace aioscope::agent {

namespace {

constexpr std::int64_t kHookRetryNs = 500'000'000;
// At exit, how long the last events may take to go out: long enough for a
// CLI starved of CPU to accept the connection (1 s lost a goodbye now and
// then with a CPU hog on each core), short enough that a stopped CLI barely
// delays the program's exit.
constexpr int kExitFlushMs = 2500;
// How often the modules and loops are looked at (a few milliseconds of
// reading each time), while the hook has timed no callback yet: once it has,
// an asyncio loop runs and there is nothing more to learn.
constexpr std::int64_t kLoopCheckNs = 1'000'000'000;
// How often the threads learn again whether a loop runs on them
// (context_run_hook.h): one call to _get_running_loop() per thread each
// time, at its next callback, about a microsecond; it bounds how long a loop
// started where the agent could not see it goes untimed.
constexpr std::int64_t kThreadRecheckNs = 100'000'000;
// The slowest the agent's thread ticks with a shorter --interval, while no
// callback comes near the threshold (the default interval's rate).
constexpr std::int64_t kQuietTickNs = 10'000'000;
// The agent's page caches (512 KiB at most, grown 4 KiB at a time): inside the
// program, what it caches stays resident between snapshots. Measured with
// 10,000 tasks (tests/bench/agent_memory.py), a snapshot took as long with
// 512 KiB as with 4 MiB: the agent reads its own memory, each page about once.
constexpr std::size_t kAgentCachePages = 128;

// Set once installHere() has put in everything it could: the capabilities
// never show the instant between the stall hook and the observers.
std::atomic<bool> g_installed{false};

// The installer's thread (pthread_self), while it lives: waiting for the GIL
// it has a thread state of its own, which is the agent's, not the program's.
std::atomic<std::uint64_t> g_installerThread{0};

Snapshot withoutAgentThreads(Snapshot snap) {
    std::uint64_t ours = g_installerThread.load();
    if (ours) std::erase_if(snap.threads, [&](const Thread& t) { return t.threadId == ours; });
    return snap;
}

void onInterpreterExit() { Agent::instance().interpreterExiting(); }
void onProgramExit(long status) { Agent::instance().programExiting(status); }

// What the hooks themselves say (any thread, no GIL).
void hookFacts(CapabilityFacts& f) {
    f.hookInstalled = StallHook::instance().installed() && g_installed;
    f.observersActive = Observers::instance().active();
    f.unawaitedObserved = Observers::instance().unawaitedActive();
    f.taskLayout = Observers::instance().taskLayoutKnown();
    UvloopHook& uv = UvloopHook::instance();
    f.uvloop = f.uvloop || uv.timedAny();
    f.uvloopTimed = uv.patched();
    f.uvloopFailure = uv.failure();
    f.uvloopProtocols = uv.protocolsTimed();
    f.uvloopProtocolFailure = uv.protocolFailure();
    f.foreignReports = Observers::instance().foreignLoopObserved();
    f.trioTimed = TrioHook::instance().installed() && StallHook::instance().installed();
    f.trio = f.trio || TrioHook::instance().timedAny();
}

// A loop runs whose callbacks the hooks time: asyncio's, or uvloop's.
bool asyncioLoopTimed() { return StallHook::instance().timedHandleRun() || UvloopHook::instance().timedAny(); }

// Once per process, with the GIL held: the interpreter's last exit handler
// (goodbye), and the gate's atexit callback.
void registerExitHandlers() {
    static bool registered = false;
    if (!registered) registered = python().atExit(&onInterpreterExit) == 0;
    Observers::instance().setExitHandler(&onProgramExit);
    GilGate::instance().registerAtExit();
}

// With the GIL held, on any thread: trio's runs, present and future, get
// the stall instrument once trio is imported. True when it is in.
bool installTrioHere(const Config& cfg) {
    if (TrioHook::instance().begun()) return TrioHook::instance().installed();
    PyApi& py = python();
    PyObject* run = py.importedModule("trio._core._run");
    if (!run) return false;
    py.decRef(run);
    StallHook::instance().enable(cfg.stallNs);
    // trio's silent failure: a coroutine never awaited (trio.sleep(1)
    // without await) is only a warning, as in asyncio.
    if (auto runtime = SelfRuntime::instance().get()) Observers::instance().installUnawaited(runtime->layout, cfg.trackOrigins);
    return TrioHook::instance().install();
}

// With the GIL held, on any thread: the stall hook and the observers.
// 1 installed, 0 not yet (asyncio not imported), -1 never.
int installHere(const Config& cfg) {
    auto runtime = SelfRuntime::instance().get();
    if (!runtime) return SelfRuntime::instance().failure().empty() ? 0 : -1;
    registerExitHandlers();
    // trio (a trio program at attach, or anyio's trio backend): its own
    // instrument, whether asyncio is imported or not.
    installTrioHere(cfg);
    ProcessReader self(getpid());
    SnapshotReader reader(self, *runtime, PythonInfo{}, getpid(), kAgentCachePages);
    reader.loadAsyncioLayout();  // the observers need the Task offsets
    // Loops are seen when they start: before the stall hook, which times
    // callbacks at Context.run only where it learns of them.
    bool loopsWatched = watchRunningLoops();
    if (!StallHook::instance().install(cfg.stallNs, loopsWatched)) return 0;
    // uvloop's callbacks: timed once its loop module is loaded (now, at
    // attach; or when its loop starts running).
    UvloopHook::instance().patchLoaded();
    Observers::instance().install(reader.runtime().layout, cfg.trackOrigins);
    g_installed = true;
    return 1;
}

// A snapshot of many tasks builds a model and its JSON (tens of MB at
// 100,000 tasks), freed once sent: hand the free memory back to the system,
// so that the program's resident set does not keep it.
void returnFreedMemory() { malloc_trim(0); }

// Sleeps until the monotonic time `until`, answering the CLI meanwhile. The
// socket wait has millisecond resolution: a tick may end a little late (one
// wake-up), a `precise` wake (a callback crossing the threshold) sleeps the
// rest of the millisecond with an absolute sleep.
bool waitUntil(Channel& channel, std::vector<std::string>& commands, std::int64_t until, bool precise) {
    std::int64_t left = until - monotonicNs();
    // The socket is read even when the wake is due already: a detach, or
    // the CLI gone, is never left unseen behind a run of due wakes.
    if (!precise) return channel.receive(commands, left <= 0 ? 0 : static_cast<int>((left + 999'999) / 1'000'000));
    if (!channel.receive(commands, left >= 1'000'000 ? static_cast<int>(left / 1'000'000) : 0)) return false;
    if (until > monotonicNs()) {
        timespec ts{static_cast<time_t>(until / 1'000'000'000), static_cast<long>(until % 1'000'000'000)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
        }
    }
    return true;
}

}  // namespace

// What the session's thread, its installer and the exit handler share.
struct Agent::Session {
    Session(Config c, std::uint64_t g) : cfg(std::move(c)), generation(g) { facts.attached = cfg.mode != "run"; }

    Config cfg;
    std::uint64_t generation;
    Channel channel;
    // Connecting, the hello, the capabilities and the exit handler's last
    // words (which wait for it a bounded time: the program must not hang at exit).
    std::timed_mutex mutex;
    std::atomic<bool> helloSent{false};  // written under `mutex`; read without it by a starved exit
    bool goodbyeSent = false;  // or the session ended: nothing more to say
    CapabilityFacts facts;
    std::optional<Capabilities> announced;
    StallSampler* sampler = nullptr;           // owned by the session's thread
    std::optional<ResolvedRuntime> runtime;    // set once, before any event but the hello
    // The installer's side (attach; run without its audit hook).
    std::mutex installMutex;
    bool over = false;                         // under installMutex: install nothing any more
    std::atomic<std::int64_t> gilWaitSince{0};  // the installer waits for the GIL since then
    std::string installFailure;                // under installMutex
    // Loops found started unseen that were said (sayUnseenLoops).
    std::atomic<std::uint32_t> unseenSaid{unseenLoopStarts(0, nullptr)};

    // Any thread, never under `mutex` (the sampler sends while the exit
    // handler may hold it): the event, with the running pytest test.
    void send(std::string line) {
        if (runtime) {
            if (auto test = readCurrentTest(*runtime)) {
                channel.send(withTest(std::move(line), *test));
                return;
            }
        }
        channel.send(std::move(line));
    }

    // Under `mutex`: connected and hello sent, connecting once if needed.
    bool ensureHello() {
        if (!channel.connected() && !channel.connect(cfg)) return false;
        if (!helloSent) {
            Capabilities caps = Capabilities::assess(facts);
            channel.send(helloEvent(cfg, earlyPythonInfo(), caps));
            announced = caps;
            helloSent = true;
        }
        return true;
    }

    // Under `mutex`: the capabilities event to send (after unlocking: the
    // lock is never held across a send or a read) when they changed since
    // last said, or "".
    std::string announcement() {
        Capabilities caps = Capabilities::assess(facts);
        if (!helloSent || (announced && *announced == caps)) return {};
        announced = caps;
        return capabilitiesEvent(caps);
    }
    // The line (about 1 KB per task) goes to the CLI in parts as it is
    // written: the program holds the model and the parts the CLI has not
    // read yet, not the whole line besides the model.
    void sendSnapshot(SnapshotReader& reader) {
        Snapshot snap = withoutAgentThreads(reader.readConfirmed());
        std::optional<TestRef> test = runtime ? readCurrentTest(*runtime) : std::nullopt;
        if (channel.beginLine()) {
            LineParts parts(channel);
            std::ostream out(&parts);
            writeSnapshotEvent(out, snap, test ? &*test : nullptr);
            parts.finish();
        }
        snap = Snapshot();
        returnFreedMemory();
    }
    void sendIf(std::string line) {
        if (!line.empty()) send(std::move(line));
    }

    void forwardObserved() {
        for (const auto& line : Observers::instance().drain()) channel.send(line);
    }

    // Any thread (the session's at each tick, the exit handler's last): a
    // warning for each loop the Context.run hook found started unseen since
    // the last ones said (context_run_hook.h), sent once.
    void sayUnseenLoops() {
        std::uint32_t said = unseenSaid.load();
        std::vector<std::uint64_t> threads;  // allocates only for a start to say
        std::uint32_t unseen = unseenLoopStarts(said, &threads);
        if (unseen == said) return;
        if (!unseenSaid.compare_exchange_strong(said, unseen)) return;  // another thread says them
        std::uint32_t unnamed = unseen - said - static_cast<std::uint32_t>(threads.size());
        for (std::uint64_t thread : threads) {
            std::string more = unnamed ? " (and " + std::to_string(unnamed) +
                                             " more loops started unseen on threads no longer known)"
                                       : "";
            unnamed = 0;
            send(gapEvent("stall_detection", thread,
                          "an event loop started on thread " + std::to_string(thread) +
                              " without asyncio.events._set_running_loop, which the agent watches (replaced by "
                              "something that does not call it): its callbacks went untimed until the agent's "
                              "next check, up to a tenth of a second later" +
                              more));
        }
    }
};

Agent& Agent::instance() {
    // Never destroyed: the session thread outlives the static destructors
    // that run when the program exits (a destroyed member would be freed
    // twice: heap corruption in the target).
    static Agent* agent = new Agent;
    return *agent;
}

void Agent::createSharedObjects() {
    instance();
    GilGate::instance();
    Observers::instance();
    SelfRuntime::instance();
    UvloopHook::instance();
    StallHook::instance();
    TrioHook::instance();
    AuditHook::instance();
    EarlyInstall::instance();
    python();
    inheritedPytestCurrentTest();
}

std::shared_ptr<Agent::Session> Agent::session() {
    std::lock_guard lock(m_sessionMutex);
    return m_session;
}

void Agent::interpreterExiting() { lastWords("the interpreter has shut down"); }

void Agent::processExiting() {
    if (!m_exiting) lastWords("the process exited without shutting the interpreter down");
}

void Agent::programExiting(long status) {
    lastWords(("the program called os._exit(" + std::to_string(status) + ")").c_str());
}

void Agent::lastWords(const char* goodbye) {
    m_exiting = true;
    auto s = session();
    if (!s) return;
    // The session's thread holds the lock only for moments (never across a
    // send or a read), but a starved machine may keep it off the CPU then.
    std::unique_lock lock(s->mutex, std::chrono::milliseconds(2000));
    if (!lock.owns_lock()) {
        // Never a silent end: what the observers saw and the goodbye go
        // without the lock (the channel takes sends from any thread), only
        // the last capabilities are not re-assessed.
        if (!s->helloSent || !s->channel.connected()) return;
        s->forwardObserved();
        s->sayUnseenLoops();
        s->channel.send(messageEvent("goodbye", std::string(goodbye) +
                                                    " (the agent's own thread was kept off the CPU: its last capabilities were not re-checked)"));
        s->channel.flush(kExitFlushMs);
        return;
    }
    if (s->goodbyeSent || !s->ensureHello()) return;
    s->goodbyeSent = true;  // from here on the session's thread adds nothing
    if (s->sampler) s->sampler->flushEnded();
    hookFacts(s->facts);
    s->facts.asyncioImported = s->facts.asyncioImported || s->facts.hookInstalled;
    s->facts.exiting = true;  // what is pending now never will be
    // Announced before the events of a check that just became active.
    s->sendIf(s->announcement());
    s->forwardObserved();
    s->sayUnseenLoops();
    s->channel.send(messageEvent("goodbye", goodbye));
    // The process ends after this: what is still queued goes now, for a
    // bounded time (a stopped CLI must not hold the program).
    s->channel.flush(kExitFlushMs);
}

int Agent::installForRun() { return installHere(instance().m_runConfig); }

void Agent::installTrioForRun() {
    PyApi& py = python();
    // As for asyncio: imported here, on the program's thread, as its own
    // statement was about to; that statement then finds it imported.
    PyObject* trio = py.importModule("trio");
    if (!trio) {
        py.clearError();  // its own import will fail the same way, and say why
        return;
    }
    py.decRef(trio);
    installTrioHere(instance().m_runConfig);
}

int Agent::startFromEnvironment(const std::string& configText) {
    auto cfg = parseConfig(configText);
    if (!cfg) return -1;
    python().resolve();
    // Here, before Py_Initialize and before the agent's thread exists: the
    // one moment Py_GetVersion() may be called (self_runtime.cpp says why).
    captureVersionBeforeInit();
    m_runConfig = *cfg;
    if (cfg->mode == "run") {
        AuditHook::instance().add({&registerExitHandlers, [] {
                                       int r = installForRun();
                                       return r > 0 ? AuditHook::Install::installed
                                              : r == 0 ? AuditHook::Install::later
                                                       : AuditHook::Install::failed;
                                   },
                                   &Agent::installTrioForRun});
    }
    return start(configText);
}

int Agent::start(const std::string& configText) {
    auto cfg = parseConfig(configText);
    if (!cfg) return -1;
    std::lock_guard lock(m_mutex);
    python().resolve();  // the hello needs Py_Version (3.11+) at once
    // The same loader may run on several threads (PEP 768 asks more than one):
    // one session per configuration, from the moment it starts (a second
    // start while the first connects would say hello twice).
    if (configText == m_lastConfig && m_sessionActive) return 0;
    m_lastConfig = configText;
    std::uint64_t generation = ++m_generation;  // any running session stops
    auto s = std::make_shared<Session>(*cfg, generation);
    {
        // Published before its thread runs: the exit handler can speak for
        // a session whose thread never got the CPU.
        std::lock_guard sl(m_sessionMutex);
        m_session = s;
    }
    m_sessionActive = true;  // until it fails to connect or ends
    startAgentThread([this, s] {
        run(s);
        // The session's reader, sampler and buffers are gone: what they
        // freed goes back to the system, not kept by the program.
        returnFreedMemory();
    });
    return 0;
}

void Agent::afterForkInChild() {
    // Only this thread survived the fork; the lock may be held by a thread
    // that no longer exists.
    m_mutex.afterFork();
    // The parent's session, if one was being set when it forked, is left
    // as it is (its locks may be held by threads that are gone).
    if (!m_sessionMutex.afterFork()) new (&m_session) std::shared_ptr<Session>;
    m_session.reset();
    // All created before any thread of the agent (createSharedObjects).
    GilGate::instance().afterForkInChild();
    Observers::instance().afterForkInChild();
    SelfRuntime::instance().afterForkInChild();
    UvloopHook::instance().afterForkInChild();
    StallHook::instance().afterForkInChild();
    // Under `run` the CLI accepts the program's descendants; under `attach`
    // only the attached process: a child's session would start a thread and
    // connect only to be refused (a warning on the stream per fork).
    auto cfg = parseConfig(m_lastConfig);
    if (m_sessionActive && !m_exiting && cfg && cfg->mode == "run") {
        m_sessionActive = false;
        start(m_lastConfig);
    } else {
        m_sessionActive = false;
    }
}

// Attach (or run without its audit hook): the hooks need the GIL, which a
// wedged program may not give for a long time. This thread waits for it, so
// that the session's thread samples meanwhile.
void Agent::installer(std::shared_ptr<Session> s) {
    g_installerThread = static_cast<std::uint64_t>(pthread_self());
    while (current(s->generation) && !m_exiting) {
        {
            std::lock_guard lock(s->installMutex);
            if (s->over) break;
        }
        int result = 0;
        s->gilWaitSince = monotonicNs();
        bool ran = GilGate::instance().run([&] {
            s->gilWaitSince = 0;
            std::lock_guard lock(s->installMutex);
            if (s->over || !current(s->generation)) return;
            result = installHere(s->cfg);
            if (result < 0) s->installFailure = "the hooks could not be installed: " + SelfRuntime::instance().failure();
        });
        s->gilWaitSince = 0;
        if (!ran || result != 0) break;
        for (int i = 0; i < kHookRetryNs / 10'000'000 && current(s->generation) && !m_exiting; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    g_installerThread = 0;
    // Installing ran Python on this thread (the observers compiled): its
    // malloc arena keeps the freed temporaries resident, about 1 MB,
    // until trimmed.
    returnFreedMemory();
}

void Agent::trioInstaller(std::shared_ptr<Session> s) {
    GilGate::instance().run([&] {
        std::lock_guard lock(s->installMutex);
        if (s->over || !current(s->generation)) return;
        if (SelfRuntime::instance().get()) installTrioHere(s->cfg);
    });
}

void Agent::run(std::shared_ptr<Session> s) {
    const Config& cfg = s->cfg;
    PyApi& py = python();
    // Connect and say hello at once: nothing in it waits for the interpreter.
    for (int i = 0; i < 50; ++i) {
        {
            std::lock_guard lock(s->mutex);
            if (s->goodbyeSent) return;  // the exit handler spoke for this session
            if (s->ensureHello()) break;
        }
        if (!current(s->generation) || m_exiting) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!s->channel.connected()) {
        if (current(s->generation)) m_sessionActive = false;  // a later start may try again
        return;
    }

    // Loading the agent does no work: wait here for the interpreter.
    std::vector<std::string> commands;
    std::optional<ResolvedRuntime> runtime;
    while (!runtime) {
        if (py.resolve() && py.isInitialized()) {
            runtime = SelfRuntime::instance().get();
            std::string failure = SelfRuntime::instance().failure();
            if (!failure.empty()) {
                s->send(messageEvent("error", failure));
                std::unique_lock lock(s->mutex);
                s->facts.runtimeFailure = failure;
                std::string line = s->announcement();
                lock.unlock();
                s->sendIf(std::move(line));
                m_sessionActive = false;
                return;
            }
            if (runtime) break;
        }
        if (!current(s->generation) || m_exiting || !s->channel.receive(commands, 10)) return;
    }
    {
        std::lock_guard lock(s->mutex);
        s->runtime = runtime;
    }

    ProcessReader self(getpid());
    // A small page cache (kAgentCachePages; dump's is 16 MB): the memory
    // the agent adds to the program stays bounded.
    SnapshotReader reader(self, *runtime, earlyPythonInfo(), getpid(), kAgentCachePages);
    StallSampler sampler(cfg, reader, [s](const std::string& line) { s->send(line); });
    {
        std::unique_lock lock(s->mutex);
        s->sampler = &sampler;
        s->facts.runtimeReady = true;
        std::string line = s->announcement();
        lock.unlock();
        s->sendIf(std::move(line));
    }

    StallHook& hook = StallHook::instance();
    AuditHook& audit = AuditHook::instance();
    bool installing = false;
    bool trioInstalling = false;
    auto startInstaller = [&] {
        if (installing || hook.installed()) return;
        installing = true;
        startAgentThread(&Agent::installer, this, s);
    };
    if (cfg.mode == "run" && !audit.added()) {
        // No audit hook: the main thread installs at its first safe point,
        // importing asyncio itself (as the program will).
        EarlyInstall::instance().run(&Agent::installForRun, true, 2000,
                                     [&](int ms) { return current(s->generation) && s->channel.receive(commands, ms); });
    }
    if (cfg.mode != "run" || !audit.added()) startInstaller();

    std::int64_t nextSnapshot = cfg.snapshotEveryNs ? monotonicNs() + cfg.snapshotEveryNs : INT64_MAX;
    std::int64_t nextTick = monotonicNs() + cfg.intervalNs;
    std::int64_t lastTick = monotonicNs();
    std::int64_t nextLoopCheck = 0;
    std::int64_t nextRecheck = 0;
    bool detached = false;
    // The loop ends because the program is exiting: the exit handler, which
    // set m_exiting before it waits for the session's lock, says goodbye.
    bool exitHandlerSpeaks = false;
    LoopFacts loops;
    while (current(s->generation) && !detached) {
        // Ticks on a fixed schedule (the work of one does not delay the
        // next), and exact wakes when a timed callback crosses the threshold.
        std::int64_t crossing = sampler.nextWake();
        // While no callback comes near the threshold, the crossing wakes
        // detect every stall: ticks faster than kQuietTickNs would only cost
        // the program's CPU (about 10 us a wake here), so they are skipped.
        std::int64_t tickAt = nextTick;
        if (cfg.intervalNs < kQuietTickNs && hook.installed() &&
            !sampler.wantsTicks(monotonicNs(), kQuietTickNs)) {
            tickAt = std::max(nextTick, lastTick + kQuietTickNs);
        }
        std::int64_t wake = std::min(tickAt, crossing);
        // Commands that came while the agent was starting are in `commands`
        // already: answered now, not dropped.
        if (!waitUntil(s->channel, commands, wake, crossing < nextTick)) break;  // CLI gone
        for (const auto& c : commands) {
            if (c.find("\"detach\"") != std::string::npos) detached = true;
            if (c.find("\"snapshot\"") != std::string::npos) {
                s->sendSnapshot(reader);
            }
        }
        commands.clear();
        std::int64_t now = monotonicNs();
        bool tick = now >= tickAt;
        if (tick) {
            lastTick = now;
            nextTick += cfg.intervalNs;
            if (nextTick < now) nextTick = now + cfg.intervalNs;
        }
        if (m_exiting) {
            exitHandlerSpeaks = true;  // it sends the rest, goodbye last
            break;
        }
        // While the interpreter shuts down, observers still report (pending
        // tasks are destroyed then); nothing else is read.
        if (py.isFinalizing()) {
            s->forwardObserved();
            sampler.flushEnded();
            continue;
        }
        if (tick && now >= nextLoopCheck && !asyncioLoopTimed()) {
            loops = readLoopFacts(reader);
            nextLoopCheck = now + kLoopCheckNs;
        } else if (asyncioLoopTimed()) {
            // A loop runs whose callbacks are timed: asyncio's, or uvloop's
            // when they went through its wrappers.
            loops.asyncioImported = true;
            loops.foreignLoop.clear();
            loops.uvloop = loops.uvloop || UvloopHook::instance().timedAny();
        }
        if (tick && now >= nextRecheck && timingAsyncioCallbacks()) {
            recheckLoopThreads();
            nextRecheck = now + kThreadRecheckNs;
        }
        if (tick) s->sayUnseenLoops();
        std::int64_t waitSince = s->gilWaitSince.load();
        {
            // Announced before the events of a check that just became active.
            std::unique_lock lock(s->mutex);
            CapabilityFacts& f = s->facts;
            f.uvloop = loops.uvloop;
            hookFacts(f);
            // Under `run` the audit hook installs within the import itself:
            // until it is done, asyncio is as good as not imported.
            bool installsItself = cfg.mode == "run" && audit.active();
            f.asyncioImported = (loops.asyncioImported && !installsItself) || f.hookInstalled;
            f.trio = loops.trio;
            f.foreignLoop = loops.foreignLoop;
            f.gilWaitMs = waitSince && !f.hookInstalled ? (now - waitSince) / 1'000'000 : -1;
            {
                std::lock_guard il(s->installMutex);
                f.installFailure = s->installFailure;
            }
            if (s->goodbyeSent) break;  // the exit handler has spoken
            std::string line = s->announcement();
            lock.unlock();
            s->sendIf(std::move(line));
        }
        s->forwardObserved();
        if (tick && loops.trio && !trioInstalling && !TrioHook::instance().begun() &&
            (hook.installed() || (cfg.mode == "run" && !audit.active()))) {
            // trio imported after the hooks went in (anyio on trio, asyncio
            // imported first): no import hook saw it. (Otherwise the
            // installer or the audit hook installs it.)
            trioInstalling = true;
            startAgentThread(&Agent::trioInstaller, this, s);
        }
        if (tick && cfg.mode == "run" && audit.waitingForAsyncio()) {
            // asyncio was imported without an import event the hook saw:
            // ask the main thread to install once that import is over.
            EarlyInstall::instance().run(&Agent::installForRun, false, 20,
                                         [&](int ms) { return s->channel.receive(commands, ms); });
        }
        if (tick && cfg.mode == "run" && audit.added() && !audit.active() && !hook.installed()) startInstaller();
        sampler.tick(now, {hook.installed(), hook.installedAtNs(), waitSince});
        if (!tick) continue;
        if (now >= nextSnapshot) {
            s->sendSnapshot(reader);
            nextSnapshot = now + cfg.snapshotEveryNs;
        }
    }
    bool installed;
    {
        // No install after this point; one under way has finished.
        std::lock_guard lock(s->installMutex);
        s->over = true;
        // The observers too: they go in after the stall hook, and nothing
        // the program leaves behind may keep them (a detach that left them
        // in place would go unseen).
        installed = hook.installed() || g_installed || Observers::instance().unawaitedActive();
    }
    // The exit handler reports the callbacks that ended through the sampler,
    // which goes with this thread: its last ones are reported here.
    if (exitHandlerSpeaks) sampler.flushEnded();
    {
        std::lock_guard lock(s->mutex);
        s->sampler = nullptr;
        // Detached, replaced or the CLI gone: the exit handler has nothing
        // more to say for this session. Not when the program is exiting: the
        // exit handler may not have taken the lock yet, and marking the
        // session over here lost its goodbye (issue 8).
        if (!exitHandlerSpeaks) s->goodbyeSent = true;
    }
    // Detached or replaced: leave the program as it was.
    if (installed && current(s->generation) && !m_exiting) {
        GilGate::instance().run([&] {
            hook.uninstall();
            unwatchRunningLoops();
            Observers::instance().uninstall();
        });
    }
    if (!exitHandlerSpeaks) {
        s->forwardObserved();
        s->sayUnseenLoops();
    }
    if (detached) {
        s->channel.send(messageEvent("detached", "the agent is idle"));
        // The CLI waits for the connection to end; the session itself stays
        // referenced until a later attach replaces it, so end it here.
        s->channel.flush(kExitFlushMs);
        s->channel.close();
    }
    if (current(s->generation)) m_sessionActive = false;
}

}  // namespace aioscope::agent
