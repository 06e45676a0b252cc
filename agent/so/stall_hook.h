// Times every event-loop callback. asyncio runs each callback and each task
// step through asyncio.events.Handle._run, which runs it with
// self._context.run(...): the agent times that call (context_run_hook.h) or,
// where CPython's Context.run is not the method it knows, wraps Handle._run
// itself with a C function. Either records, per thread, when the current
// callback started and when it ended. The sampler thread reads these records
// without the GIL and without calling into Python: a callback running longer
// than the threshold is a stall, and its exact duration is known when it
// returns.
//
// The hook is installed, with the GIL, only after the program itself
// imported asyncio; on detach timing stops (and a wrapper of Handle._run is
// removed, restoring the original method if it is still the one in place).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

namespace aioscope::agent {

std::int64_t monotonicNs();

// One per thread that runs callbacks; written by that thread only.
struct LoopSlot {
    std::atomic<std::uint64_t> threadId{0};   // pthread_self(), 0: free
    std::atomic<std::int32_t> nativeId{0};
    std::atomic<std::uint64_t> seq{0};        // callbacks started so far
    std::atomic<std::int64_t> startNs{0};     // of the running callback
    std::atomic<int> depth{0};                // >0 while a callback runs
    // What the running stretch runs, when the hook knows it (a trio step:
    // its Task object's address), else 0. Valid while seq is unchanged.
    std::atomic<std::uint64_t> subject{0};
};
// The CLI reads seq and depth from outside as plain integers (StallSlotRef).
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && sizeof(std::atomic<std::uint64_t>) == 8);
static_assert(std::atomic<int>::is_always_lock_free && sizeof(std::atomic<int>) == sizeof(int));

// What the hooks keep per thread, in one record: in a library loaded at run
// time every lookup of a thread-local is a call (__tls_get_addr), and a
// callback's path through the hooks makes one.
struct ThreadHooks {
    int slot = -2;                 // its LoopSlot: -2 not looked up yet, -1 none free
    std::uint32_t loopEpoch = 0;   // when `loop` was learnt (context_run_hook)
    bool loop = false;             // an asyncio loop runs on this thread
    bool uvloop = false;           // uvloop's handles ran on this thread
};
inline thread_local ThreadHooks t_hooks;

// A callback that ran longer than the threshold, recorded when it returned.
struct LongCallback {
    int slot;
    std::uint64_t seq;
    std::int64_t startNs;
    std::int64_t endNs;
};

class StallHook {
public:
    static constexpr int kSlots = 64;

    static StallHook& instance();

    // With the GIL held. Returns false while asyncio is not imported yet.
    // `loopsWatched`: loops starting are seen (running_loop_watch.h), which
    // timing at Context.run needs; else Handle._run is wrapped.
    bool install(std::int64_t thresholdNs, bool loopsWatched);
    // Timing without asyncio's Handle._run (a trio program): the slots are
    // used by the trio hook only.
    void enable(std::int64_t thresholdNs);
    // With the GIL held.
    void uninstall();
    // Whether asyncio's Handle._run (the wrapper) ran a callback: an asyncio
    // loop runs.
    bool timedHandleRun() const { return m_timedHandleRun.load(std::memory_order_relaxed); }
    void markHandleRun() {
        if (!m_timedHandleRun.load(std::memory_order_relaxed)) m_timedHandleRun.store(true, std::memory_order_relaxed);
    }
    bool installed() const { return m_installed.load(); }
    // When it was (last) installed, monotonic ns: callbacks running then
    // began before it could time them.
    std::int64_t installedAtNs() const { return m_installedAtNs.load(); }

    LoopSlot& slot(int i) { return m_slots[i]; }
    // Whether any callback went through the hook: an asyncio loop runs.
    bool timedAny() const {
        for (const auto& s : m_slots) {
            if (s.seq.load(std::memory_order_relaxed)) return true;
        }
        return false;
    }
    // Long callbacks recorded since the last call (sampler thread only).
    std::vector<LongCallback> drainLong();

    // In a fork's child: only the forking thread survived, under a new
    // native id; the other threads' slots and the parent's records are stale.
    void afterForkInChild();
    // In a forked child: whether thread `tid` (pthread_self) is still inside
    // the callback it forked in (no callback started on it since), whose
    // Handle._run frame is the parent's, not one to report as under way.
    bool insideForkedCallback(std::uint64_t tid);

    // Called by the wrapper, GIL held, on the loop's thread. `outermost`:
    // whether this call started the callback (not nested in one).
    int enter(bool* outermost = nullptr) { return enter(t_hooks, outermost); }
    int enter(ThreadHooks& thread, bool* outermost);
    void leave(int slot);
    // uvloop's handles nest: the loop runs its ready queue, its timers and
    // its queued writes from internal handles of its own, so every user
    // callback runs inside one of those. There the innermost handle is the
    // callback: each enter and each exit starts a new stretch of the slot
    // (a new seq), and a stretch that lasted past the threshold is a long
    // callback (the internal handle's own code between two callbacks is a
    // stretch of its own: a batch of short callbacks is no stall).
    // Returns whether the slot is timed.
    bool enterNested();
    // A slot that is idle ignores it: the callback began before the hook.
    void leaveNested();
    // Right after enterNested(): what the stretch runs (LoopSlot::subject).
    void setSubject(std::uint64_t subject);

private:
    int ownSlot(ThreadHooks& thread);
    void recordIfLong(int slot, std::int64_t start, std::int64_t end);

    LoopSlot m_slots[kSlots];
    std::atomic<std::int64_t> m_thresholdNs{0};
    std::atomic<bool> m_installed{false};  // timing on
    std::atomic<std::uint64_t> m_forkedThread{0};  // 0: not forked inside a callback
    std::uint64_t m_forkedSeq = 0;                  // its slot's seq then
    std::atomic<bool> m_wrapped{false};    // Handle._run is ours
    std::atomic<bool> m_timedHandleRun{false};
    std::atomic<std::int64_t> m_installedAtNs{0};

    struct Entry {
        std::atomic<std::uint64_t> ready{0};  // index + 1 once written
        LongCallback value;
    };
    static constexpr int kRing = 256;
    Entry m_ring[kRing];
    std::atomic<std::uint64_t> m_ringWrite{0};
    std::uint64_t m_ringRead = 0;
};

}  // namespace aioscope::agent
