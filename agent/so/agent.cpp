#include "agent.h"

#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <thread>

#include "channel.h"
#include "early_install.h"
#include "errors.h"
#include "events.h"
#include "gil_gate.h"
#include "layout/resolve.h"
#include "mem/process_reader.h"
#include "observers.h"
#include "pyapi.h"
#include "snapshot_reader.h"
#include "stall_hook.h"

namespace aioscope::agent {

namespace {

constexpr std::int64_t kHookRetryNs = 500'000'000;

double nowUnix() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Where this process's interpreter is, from the dynamic linker: the agent
// runs inside it, so no ELF parsing is needed.
RuntimeLocation locateSelf() {
    RuntimeLocation loc;
    void* runtime = dlsym(RTLD_DEFAULT, "_PyRuntime");
    if (!runtime) throw InspectError(Errc::not_python, "_PyRuntime is not exported by this interpreter");
    loc.candidates.push_back(reinterpret_cast<Addr>(runtime));
    if (void* v = dlsym(RTLD_DEFAULT, "Py_Version")) loc.pyVersion = reinterpret_cast<Addr>(v);
    Dl_info info{};
    if (dladdr(runtime, &info) && info.dli_fname) loc.file = info.dli_fname;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) loc.executable.assign(exe, static_cast<std::size_t>(n));
    loc.sharedLibpython = loc.file.find("libpython") != std::string::npos;
    // 3.10 has no Py_Version: its version string names the minor.
    if (const char* version = python().getVersion ? python().getVersion() : nullptr) {
        if (version[0] == '3' && version[1] == '.') loc.minorFromName = std::atoi(version + 2);
    }
    return loc;
}

void onInterpreterExit() { Agent::instance().interpreterExiting(); }

// Once per process, with the GIL held: the interpreter's last exit handler
// (goodbye), and the gate's atexit callback.
void registerExitHandlers() {
    static bool registered = false;
    if (!registered) registered = python().atExit(&onInterpreterExit) == 0;
    GilGate::instance().registerAtExit();
}

void forwardObserved(Channel& channel) {
    for (const auto& line : Observers::instance().drain()) channel.send(line);
}

struct StallState {
    std::uint64_t reportedSeq = 0;  // the callback already reported for this slot
    std::uint64_t stallId = 0;
};

}  // namespace

Agent& Agent::instance() {
    // Never destroyed: the session thread outlives the static destructors
    // that run when the program exits (a destroyed member would be freed
    // twice: heap corruption in the target).
    static Agent* agent = new Agent;
    return *agent;
}

void Agent::interpreterExiting() {
    m_exiting = true;
    std::lock_guard lock(m_channelMutex);
    if (m_channel) {
        if (m_flushEnded) m_flushEnded();
        forwardObserved(*m_channel);
        m_channel->send(messageEvent("goodbye", "the interpreter has shut down"));
    }
}

int Agent::start(const std::string& configText) {
    auto cfg = parseConfig(configText);
    if (!cfg) return -1;
    std::lock_guard lock(m_mutex);
    // The same loader may run on several threads (PEP 768 asks more than one):
    // one session per configuration.
    if (configText == m_lastConfig && m_sessionActive) return 0;
    m_lastConfig = configText;
    std::uint64_t generation = ++m_generation;  // any running session stops
    std::thread(&Agent::run, this, *cfg, generation).detach();
    return 0;
}

void Agent::afterForkInChild() {
    // Only this thread survived the fork; the lock may be held by a thread
    // that no longer exists.
    new (&m_mutex) std::mutex;
    GilGate::instance().afterForkInChild();
    StallHook::instance().afterForkInChild();
    if (m_sessionActive && !m_exiting && !m_lastConfig.empty()) {
        m_sessionActive = false;
        start(m_lastConfig);
    }
}

void Agent::run(Config cfg, std::uint64_t generation) {
    Channel channel;
    for (int i = 0; i < 50 && !channel.connect(cfg.socket); ++i) {
        if (!current(generation)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!channel.connected()) return;
    PyApi& py = python();
    std::vector<std::string> commands;
    // Loading the agent does no work: wait here for the interpreter.
    while (!(py.resolve() && py.isInitialized())) {
        if (!current(generation) || !channel.receive(commands, 10)) return;
    }
    m_sessionActive = true;

    ProcessReader self(getpid());  // process_vm_readv on ourselves: a torn pointer returns EFAULT
    std::unique_ptr<SnapshotReader> reader;
    try {
        Remote mem(self);
        RuntimeLocation loc = locateSelf();
        ResolvedRuntime runtime = resolveRuntime(mem, loc);
        PythonInfo info;
        info.executable = loc.executable;
        info.runtimeFile = loc.file;
        info.sharedLibpython = loc.sharedLibpython;
        reader = std::make_unique<SnapshotReader>(self, std::move(runtime), std::move(info), getpid());
    } catch (const InspectError& e) {
        channel.send(messageEvent("error", e.what()));
        m_sessionActive = false;
        return;
    }

    StallHook& hook = StallHook::instance();
    auto tryHook = [&] {
        if (m_exiting) return false;
        bool ok = false;
        GilGate::instance().run([&] {
            registerExitHandlers();
            if (!hook.install(cfg.stallNs)) return;
            reader->loadAsyncioLayout();  // the observers need the Task offsets
            Observers::instance().install(reader->runtime().layout, cfg.trackOrigins);
            ok = true;
        });
        return ok;
    };
    bool hooked = false;
    if (cfg.mode == "run") {
        hooked = EarlyInstall::instance().run(cfg.stallNs, cfg.trackOrigins, *reader, 2000, &registerExitHandlers,
                                              [&](int ms) { return current(generation) && channel.receive(commands, ms); });
    }
    if (!hooked) hooked = tryHook();
    std::int64_t nextHookTry = monotonicNs() + kHookRetryNs;

    Snapshot first = reader->read(1);
    PythonInfo python = first.python;
    channel.send(helloEvent(cfg, python, hooked));

    // Stall bookkeeping, shared with the exit handler (which reports the
    // callbacks that ended just before the interpreter shut down).
    std::mutex stallsMutex;
    std::map<int, StallState> stalls;
    std::uint64_t stallCounter = 0;
    // Callbacks that ended past the threshold: their exact durations.
    auto reportEnded = [&] {
        std::lock_guard lock(stallsMutex);
        for (const auto& done : hook.drainLong()) {
            LoopSlot& slot = hook.slot(done.slot);
            std::uint64_t tid = slot.threadId.load();
            double durationMs = static_cast<double>(done.endNs - done.startNs) / 1e6;
            double startedAt = nowUnix() - static_cast<double>(monotonicNs() - done.startNs) / 1e9;
            auto& st = stalls[done.slot];
            if (st.reportedSeq != done.seq) {
                // It ended before a sample saw it: report it, without stacks.
                st = {done.seq, ++stallCounter};
                channel.send(stallEvent(st.stallId, nullptr, tid, slot.nativeId, startedAt, durationMs));
            }
            channel.send(stallEndEvent(st.stallId, tid, slot.nativeId, startedAt, durationMs));
        }
    };
    // A callback past the threshold: report it once, with its stacks.
    auto reportRunning = [&](std::int64_t now) {
        std::lock_guard lock(stallsMutex);
        for (int i = 0; i < StallHook::kSlots; ++i) {
            LoopSlot& slot = hook.slot(i);
            std::uint64_t tid = slot.threadId.load(std::memory_order_acquire);
            if (!tid || slot.depth.load(std::memory_order_acquire) == 0) continue;
            std::uint64_t seq = slot.seq.load(std::memory_order_acquire);
            std::int64_t start = slot.startNs.load(std::memory_order_relaxed);
            if (now - start < cfg.stallNs || stalls[i].reportedSeq == seq) continue;
            stalls[i] = {seq, ++stallCounter};
            double elapsedMs = static_cast<double>(now - start) / 1e6;  // when it was seen
            double startedAt = nowUnix() - static_cast<double>(monotonicNs() - start) / 1e9;
            std::optional<SnapshotReader::ThreadReport> report;
            for (int attempt = 0; attempt < 3 && (!report || report->thread.error); ++attempt) {
                report = reader->readThread(tid);
            }
            // The callback may have ended during the read: the stack would
            // then be whatever ran next (often the selector), not the stall's.
            if (slot.seq.load(std::memory_order_acquire) != seq || slot.depth.load(std::memory_order_acquire) == 0) {
                report.reset();
            }
            StallSlotRef ref{reinterpret_cast<std::uintptr_t>(&slot.seq), reinterpret_cast<std::uintptr_t>(&slot.depth),
                             seq};
            channel.send(stallEvent(stallCounter, report ? &*report : nullptr, tid, slot.nativeId, startedAt,
                                    elapsedMs, report ? &ref : nullptr));
        }
    };

    {
        std::lock_guard lock(m_channelMutex);
        m_channel = &channel;
        m_flushEnded = reportEnded;  // nothing to drain while unhooked
    }

    std::int64_t nextSnapshot = cfg.snapshotEveryNs ? monotonicNs() + cfg.snapshotEveryNs : INT64_MAX;
    std::int64_t nextTick = monotonicNs() + cfg.intervalNs;
    bool detached = false;
    while (current(generation) && !detached) {
        // Ticks on a fixed schedule: the work of one tick does not delay the next.
        std::int64_t wait = std::max<std::int64_t>(0, nextTick - monotonicNs());
        nextTick += cfg.intervalNs;
        if (nextTick < monotonicNs()) nextTick = monotonicNs() + cfg.intervalNs;
        commands.clear();
        if (!channel.receive(commands, static_cast<int>((wait + 999'999) / 1'000'000))) break;  // CLI gone
        for (const auto& c : commands) {
            if (c.find("\"detach\"") != std::string::npos) detached = true;
            if (c.find("\"snapshot\"") != std::string::npos) channel.send(snapshotEvent(reader->read()));
        }
        std::int64_t now = monotonicNs();
        forwardObserved(channel);
        if (m_exiting) break;  // the exit handler sent the rest
        if (hooked) reportEnded();  // no Python involved: also while shutting down
        // While the interpreter shuts down, observers still report (pending
        // tasks are destroyed then); nothing else is read.
        if (py.isFinalizing()) continue;
        if (hooked) reportRunning(now);
        if (!hooked && now >= nextHookTry) {
            hooked = tryHook();
            nextHookTry = now + kHookRetryNs;
            if (hooked) channel.send(messageEvent("info", "stall detection active"));
        }
        if (now >= nextSnapshot) {
            channel.send(snapshotEvent(reader->read()));
            nextSnapshot = now + cfg.snapshotEveryNs;
        }
    }
    {
        std::lock_guard lock(m_channelMutex);
        m_channel = nullptr;
        m_flushEnded = nullptr;
    }
    // Detached or replaced: leave the program as it was.
    if (hooked && current(generation) && !m_exiting) {
        GilGate::instance().run([&] {
            hook.uninstall();
            Observers::instance().uninstall();
        });
    }
    forwardObserved(channel);
    if (detached) channel.send(messageEvent("detached", "the agent is idle"));
    if (current(generation)) m_sessionActive = false;
}

}  // namespace aioscope::agent
