// Which callbacks are stalls, and the stacks that show why (the agent's
// thread; reads memory, never the GIL).
//
// A callback the hook timed is read at the moment it crosses the threshold:
// the hook's slot says when it started, so the sampler wakes at exactly
// start + threshold (nextWake()). On a busy machine that read can lose the
// race with the callback's end; the sampler therefore also reads the stack a
// little before the crossing, during the same callback, and reports that one
// (marked as such) when the read at the crossing comes too late. A read is
// kept only if the same callback (the slot's seq) still ran after it.
//
// A callback the hook never saw start (it began before the agent arrived,
// e.g. a loop wedged in time.sleep or a futex) is found in the stacks: a
// thread inside asyncio's Handle._run whose slot is idle (under uvloop, whose
// handles are Cython, or trio: inside the frame the loop called). It is reported as
// an ongoing stall whose start is a bound ("at least"), and its end when it
// ends.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "config.h"
#include "snapshot_reader.h"
#include "stall_hook.h"

namespace aioscope::agent {

// What the sampler needs to know about the hook's installation.
struct HookStatus {
    bool installed = false;
    std::int64_t installedAtNs = 0;  // monotonic
    std::int64_t gilWaitSinceNs = 0; // an installer waits for the GIL since then; 0: none
};

class StallSampler {
public:
    using Send = std::function<void(const std::string&)>;

    StallSampler(const Config& cfg, SnapshotReader& reader, Send send);

    // The agent's thread, at every wake.
    void tick(std::int64_t now, const HookStatus& hook);
    // When a callback the hook times reaches its crossing or its pre-crossing
    // read (monotonic ns), or INT64_MAX.
    std::int64_t nextWake();
    // Whether ticks at the full rate are of use now: a callback near its
    // window before the crossing (fallback stacks are read at the ticks in
    // it), a callback under way since before the hook, or a scan to do.
    // Otherwise the crossing wakes (nextWake) detect every stall as well, and
    // the agent's thread may tick at `quietEveryNs` only.
    bool wantsTicks(std::int64_t now, std::int64_t quietEveryNs);
    // Any thread (the exit handler): callbacks that ended past the
    // threshold, from the hook's records only (no memory read). Waits at
    // most `waitMs` for a tick under way.
    void flushEnded(int waitMs = 1000);

private:
    struct SlotState {
        std::uint64_t reportedSeq = 0;  // the callback already reported as a stall
        std::uint64_t stallId = 0;
        std::uint64_t sampleSeq = 0;    // the callback `sample` was read during
        std::optional<SnapshotReader::ThreadReport> sample;
        std::int64_t sampleElapsedNs = 0;
        std::int64_t sampledAtNs = 0;
    };
    // A callback running since before the hook could time it.
    struct Ongoing {
        std::int32_t nativeId = 0;
        Addr runFrame = 0;           // its Handle._run frame (uvloop, trio: the loop's callee)
        bool trio = false;           // a trio task step
        Addr innermost = 0;          // before the hook: the stack must not move
        std::optional<int> innermostLine;
        std::uint64_t slotSeq = 0;   // the thread's slot when found (idle)
        std::int64_t startBoundNs = 0;  // it was running then already
        std::int64_t lastSeenNs = 0;
        std::uint64_t stallId = 0;   // 0 until reported
    };

    void reportEndedLocked();
    void checkRunning(std::int64_t now);
    void checkOngoing(std::int64_t now, const HookStatus& hook);
    std::optional<SnapshotReader::ThreadReport> readStill(int slot, std::uint64_t tid, std::uint64_t seq,
                                                          bool crossing);
    // The thread's report, read again (up to three times) while torn.
    std::optional<SnapshotReader::ThreadReport> readThread(std::uint64_t tid, bool withTask);
    LoopSlot* slotOf(std::uint64_t threadId);
    std::int64_t lead() const;
    std::int64_t window() const;

    Config m_cfg;
    SnapshotReader& m_reader;
    Send m_send;
    StallHook& m_hook;
    std::timed_mutex m_mutex;
    std::map<int, SlotState> m_slots;
    std::map<std::uint64_t, Ongoing> m_ongoing;  // by thread id
    bool m_scannedAfterHook = false;
    std::uint64_t m_counter = 0;
};

// The stall event's stack fields, for tests of where a stack came from.
inline constexpr const char* kStackAtThreshold = "threshold";
inline constexpr const char* kStackBeforeThreshold = "before_threshold";
inline constexpr const char* kStackOngoing = "ongoing";

}  // namespace aioscope::agent
