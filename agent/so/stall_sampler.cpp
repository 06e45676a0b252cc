#include "stall_sampler.h"

#include <chrono>
#include <algorithm>
#include <climits>

#include "events.h"
#include "loop_frames.h"
#include "off_cpu.h"
#include "trio_hook.h"
#include "uvloop_hook.h"

namespace aioscope::agent {

namespace {

double nowUnix() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A monotonic time as Unix seconds.
double unixAt(std::int64_t monoNs) { return nowUnix() - static_cast<double>(monotonicNs() - monoNs) / 1e9; }

constexpr std::int64_t kSwitchIntervalNs = 5'000'000;

double ms(std::int64_t ns) { return static_cast<double>(ns) / 1e6; }

// A trio step's stall names the running trio task, found in a snapshot
// (trio's runners know which task runs on which thread).
std::optional<Task> runningTrioTask(SnapshotReader& reader, std::uint64_t tid) {
    try {
        Snapshot snap = reader.read(1);
        for (auto& t : snap.tasks) {
            if (t.runtime == "trio" && t.state == TaskState::running && t.threadId == tid) return std::move(t);
        }
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

// Steps timed by the trio hook only: there is no asyncio task to read.
bool trioOnly() {
    return TrioHook::instance().timedAny() && !StallHook::instance().timedHandleRun() &&
           !UvloopHook::instance().timedAny();
}

}  // namespace

StallSampler::StallSampler(const Config& cfg, SnapshotReader& reader, Send send)
    : m_cfg(cfg), m_reader(reader), m_send(std::move(send)), m_hook(StallHook::instance()) {}

// How long before the crossing the fallback stack is read: close enough to
// show what the callback is stuck in, early enough to be taken before a
// callback just over the threshold ends.
std::int64_t StallSampler::lead() const {
    std::int64_t l = m_cfg.stallNs / 20;
    return std::clamp<std::int64_t>(l, 500'000, 5'000'000);
}

// Reads during this span before the crossing keep a fallback stack: at the
// ticks in it, and once more at crossing - lead(). A sampler that loses the
// CPU for tens of milliseconds (a busy machine) still has the latest one.
// Only callbacks past half the threshold are read; each read costs the
// agent's thread about 0.3 ms and the program nothing.
std::int64_t StallSampler::window() const { return std::max(lead(), m_cfg.stallNs / 2); }

LoopSlot* StallSampler::slotOf(std::uint64_t threadId) {
    for (int i = 0; i < StallHook::kSlots; ++i) {
        if (m_hook.slot(i).threadId.load(std::memory_order_acquire) == threadId) return &m_hook.slot(i);
    }
    return nullptr;
}

std::int64_t StallSampler::nextWake() {
    std::lock_guard lock(m_mutex);
    std::int64_t wake = INT64_MAX;
    // Without the hook tick() reports nothing: a crossing it cannot report
    // would be due forever (the agent's thread spinning in the program).
    if (!m_hook.installed()) return wake;
    for (int i = 0; i < StallHook::kSlots; ++i) {
        LoopSlot& slot = m_hook.slot(i);
        if (!slot.threadId.load(std::memory_order_acquire) || slot.depth.load(std::memory_order_acquire) == 0) continue;
        std::uint64_t seq = slot.seq.load(std::memory_order_acquire);
        std::int64_t start = slot.startNs.load(std::memory_order_relaxed);
        auto it = m_slots.find(i);
        if (it != m_slots.end() && it->second.reportedSeq == seq) continue;
        std::int64_t crossing = start + m_cfg.stallNs;
        bool sampled = it != m_slots.end() && it->second.sampleSeq == seq &&
                       it->second.sampledAtNs >= crossing - lead();
        wake = std::min(wake, sampled ? crossing : crossing - lead());
    }
    return wake;
}

bool StallSampler::wantsTicks(std::int64_t now, std::int64_t quietEveryNs) {
    std::lock_guard lock(m_mutex);
    if (!m_ongoing.empty() || !m_scannedAfterHook) return true;
    for (int i = 0; i < StallHook::kSlots; ++i) {
        LoopSlot& slot = m_hook.slot(i);
        if (!slot.threadId.load(std::memory_order_acquire) || slot.depth.load(std::memory_order_acquire) == 0) continue;
        std::uint64_t seq = slot.seq.load(std::memory_order_acquire);
        auto it = m_slots.find(i);
        if (it != m_slots.end() && it->second.reportedSeq == seq) continue;
        // Within a quiet tick of the window: full rate before it begins.
        if (now - slot.startNs.load(std::memory_order_relaxed) >= m_cfg.stallNs - window() - quietEveryNs) return true;
    }
    return false;
}

// Reads the thread's stack and task, and keeps it only if the callback `seq`
// still ran when the read was over (else it may show what ran next).
std::optional<SnapshotReader::ThreadReport> StallSampler::readStill(int slotIndex, std::uint64_t tid,
                                                                     std::uint64_t seq, bool crossing) {
    LoopSlot& slot = m_hook.slot(slotIndex);
    std::uint64_t subject = slot.subject.load(std::memory_order_acquire);
    bool withTask = !trioOnly();
    auto report = readThread(tid, withTask);
    // No task: a plain callback, or a task step whose task read was torn or
    // came just after the step let go of its task (the stack is read first;
    // a step's last moments are still inside its callback). At the crossing,
    // once more: a read that finds the task has a stack and task of one moment.
    if (crossing && report && withTask && !subject && !report->thread.error && !report->task) {
        auto again = readThread(tid, true);
        if (again && again->task && !again->thread.error) report = std::move(again);
    }
    // A trio step: the task the instrument saw start it (checked below: the
    // same step still runs, so the task is alive).
    if (report && !report->task && subject) report->task = m_reader.readTrioTask(subject, tid, report->thread.frames);
    if (slot.seq.load(std::memory_order_acquire) != seq || slot.depth.load(std::memory_order_acquire) == 0) {
        report.reset();
    }
    return report;
}

std::optional<SnapshotReader::ThreadReport> StallSampler::readThread(std::uint64_t tid, bool withTask) {
    std::optional<SnapshotReader::ThreadReport> report;
    for (int attempt = 0; attempt < 3 && (!report || report->thread.error); ++attempt) {
        try {
            report = m_reader.readThread(tid, withTask);
        } catch (const BadRead&) {
            report.reset();  // a torn list of threads: try again
        }
    }
    return report;
}

void StallSampler::tick(std::int64_t now, const HookStatus& hook) {
    std::lock_guard lock(m_mutex);
    if (hook.installed) {
        reportEndedLocked();
        checkRunning(now);
    }
    checkOngoing(now, hook);
}

void StallSampler::flushEnded(int waitMs) {
    std::unique_lock lock(m_mutex, std::chrono::milliseconds(waitMs));
    if (lock.owns_lock()) reportEndedLocked();
}

// Callbacks that ended past the threshold: their exact durations, and the
// stall itself if no read at the crossing reported it (with the stack read
// before the crossing when there is one).
void StallSampler::reportEndedLocked() {
    for (const auto& done : m_hook.drainLong()) {
        LoopSlot& slot = m_hook.slot(done.slot);
        std::uint64_t tid = slot.threadId.load();
        double startedAt = unixAt(done.startNs);
        double durationMs = ms(done.endNs - done.startNs);
        SlotState& st = m_slots[done.slot];
        if (st.reportedSeq != done.seq) {
            bool haveSample = st.sampleSeq == done.seq && st.sample;
            StallReport r;
            r.stallId = ++m_counter;
            r.threadId = tid;
            r.nativeId = slot.nativeId;
            r.startedAt = startedAt;
            r.elapsedMs = durationMs;
            r.report = haveSample ? &*st.sample : nullptr;
            r.stackAt = kStackBeforeThreshold;
            r.stackElapsedMs = ms(st.sampleElapsedNs);
            // The CLI checks the callback before copying the native stack:
            // over, so it copies none (that of whatever runs now would be wrong).
            StallSlotRef ref{reinterpret_cast<std::uintptr_t>(&slot.seq),
                             reinterpret_cast<std::uintptr_t>(&slot.depth), done.seq};
            r.slot = haveSample ? &ref : nullptr;
            m_send(stallEvent(r));
            st.reportedSeq = done.seq;
            st.stallId = r.stallId;
        }
        if (st.sampleSeq == done.seq) st.sample.reset();
        m_send(stallEndEvent(st.stallId, tid, slot.nativeId, startedAt, durationMs));
    }
}

void StallSampler::checkRunning(std::int64_t now) {
    for (int i = 0; i < StallHook::kSlots; ++i) {
        LoopSlot& slot = m_hook.slot(i);
        std::uint64_t tid = slot.threadId.load(std::memory_order_acquire);
        if (!tid || slot.depth.load(std::memory_order_acquire) == 0) continue;
        std::uint64_t seq = slot.seq.load(std::memory_order_acquire);
        std::int64_t start = slot.startNs.load(std::memory_order_relaxed);
        SlotState& st = m_slots[i];
        if (st.reportedSeq == seq) continue;
        std::int64_t elapsed = now - start;
        if (elapsed < m_cfg.stallNs - window()) continue;
        if (elapsed < m_cfg.stallNs) {
            // Shortly before the crossing: the fallback stack of this callback.
            // (Recorded even when the read failed: the next wake is the crossing.)
            auto report = readStill(i, tid, seq, false);
            if (report || st.sampleSeq != seq) {
                st.sample = std::move(report);
                st.sampleElapsedNs = elapsed;
            }
            st.sampleSeq = seq;
            st.sampledAtNs = now;
            continue;
        }
        // At the crossing: report it once, with the stack read now if the
        // callback outlived the read, else the one read before the crossing.
        std::int64_t readAt = monotonicNs();
        auto report = readStill(i, tid, seq, true);
        const char* stackAt = kStackAtThreshold;
        std::int64_t stackElapsed = readAt - start;
        // Also when the read at the crossing came as the callback was ending,
        // its body already returned: the stack it spent its time in is the
        // one read before.
        bool sampled = st.sampleSeq == seq && st.sample;
        if (sampled && (!report || (!inStepBody(*report) && inStepBody(*st.sample)))) {
            report = std::move(st.sample);
            stackAt = kStackBeforeThreshold;
            stackElapsed = st.sampleElapsedNs;
        } else if (sampled && report && !report->task && st.sample->task && sameStep(*st.sample, *report)) {
            // The step still ran at the crossing but its task was gone by
            // then (it was ending): the task the read before the crossing
            // found in this same step (same callback, same frames down to
            // its body).
            report->task = std::move(st.sample->task);
        }
        st.sample.reset();
        st.sampleSeq = 0;
        st.reportedSeq = seq;
        st.stallId = ++m_counter;
        StallSlotRef ref{reinterpret_cast<std::uintptr_t>(&slot.seq), reinterpret_cast<std::uintptr_t>(&slot.depth),
                         seq};
        StallReport r;
        r.stallId = st.stallId;
        r.threadId = tid;
        r.nativeId = slot.nativeId;
        r.startedAt = unixAt(start);
        r.elapsedMs = ms(readAt - start);  // when it was seen past the threshold and read
        r.report = report ? &*report : nullptr;
        r.stackAt = stackAt;
        r.stackElapsedMs = ms(stackElapsed);
        r.slot = report ? &ref : nullptr;
        m_send(stallEvent(r));
    }
}

// Callbacks running since before the hook could time them. After the hook is
// in, every new callback goes through it: a thread inside Handle._run whose
// slot is idle is in one that began before, and stays recognisable (the same
// Handle._run frame, the slot still idle) until it returns. Before the hook
// is in, only a thread holding the GIL that an installer has been waiting
// for since is looked at: its stack must not move at all.
void StallSampler::checkOngoing(std::int64_t now, const HookStatus& hook) {
    bool scan = false;
    if (hook.installed && !m_scannedAfterHook) {
        m_scannedAfterHook = true;
        scan = true;
    }
    bool wedged = !hook.installed && hook.gilWaitSinceNs && now - hook.gilWaitSinceNs >= m_cfg.stallNs / 2;
    if (!scan && !wedged && m_ongoing.empty()) return;

    std::vector<SnapshotReader::ThreadReport> threads;
    // Thread -> its slot's seq before the read, for slots idle then: a
    // Handle._run frame is a callback the hook never saw only if its slot was
    // idle before and after the read, with no callback started in between.
    std::map<std::uint64_t, std::uint64_t> seqBefore;
    for (int i = 0; i < StallHook::kSlots; ++i) {
        LoopSlot& slot = m_hook.slot(i);
        std::uint64_t tid = slot.threadId.load(std::memory_order_acquire);
        std::uint64_t seq = slot.seq.load(std::memory_order_acquire);
        if (tid && slot.depth.load(std::memory_order_acquire) == 0) seqBefore[tid] = seq;
    }
    try {
        threads = m_reader.readAllThreads();
    } catch (const BadRead&) {
        return;  // torn: next tick
    }
    std::map<std::uint64_t, const SnapshotReader::ThreadReport*> byThread;
    for (const auto& t : threads) byThread[t.thread.threadId] = &t;

    // The ones already followed: still in the same callback?
    for (auto it = m_ongoing.begin(); it != m_ongoing.end();) {
        std::uint64_t tid = it->first;
        Ongoing& og = it->second;
        LoopSlot* slot = slotOf(tid);
        auto found = byThread.find(tid);
        bool still = found != byThread.end();
        if (still) {
            const auto& r = *found->second;
            auto at = handleRunFrame(r);
            still = at && r.frameAddrs[*at] == og.runFrame;
            if (still && !hook.installed) {
                still = r.thread.holdsGil && !r.frameAddrs.empty() && r.frameAddrs.front() == og.innermost &&
                        r.thread.frames.front().line == og.innermostLine;
            }
        }
        // A callback the hook timed on that thread means this one returned.
        if (still && slot) still = slot->seq.load(std::memory_order_acquire) == og.slotSeq && slot->depth.load() == 0;
        if (still) {
            og.lastSeenNs = now;
            if (!og.stallId && now - og.startBoundNs >= m_cfg.stallNs) {
                og.stallId = ++m_counter;
                std::optional<SnapshotReader::ThreadReport> report;
                try {
                    report = m_reader.readThread(tid);  // with its task
                } catch (const BadRead&) {
                }
                if (!report) report = *found->second;
                if (!report->task && og.trio) report->task = runningTrioTask(m_reader, tid);
                StallReport r;
                r.stallId = og.stallId;
                r.threadId = tid;
                r.nativeId = og.nativeId;
                r.startedAt = unixAt(og.startBoundNs);
                r.elapsedMs = ms(now - og.startBoundNs);
                r.report = &*report;
                r.stackAt = kStackOngoing;
                r.stackElapsedMs = r.elapsedMs;
                r.atLeast = true;
                m_send(stallEvent(r));
            }
            ++it;
            continue;
        }
        if (og.stallId) {
            m_send(stallEndEvent(og.stallId, tid, og.nativeId, unixAt(og.startBoundNs),
                                 ms(og.lastSeenNs - og.startBoundNs), true));
        }
        it = m_ongoing.erase(it);
    }

    // New ones.
    if (!scan && !wedged) return;
    for (const auto& r : threads) {
        std::uint64_t tid = r.thread.threadId;
        if (m_ongoing.count(tid)) continue;
        // The callback a forked child's thread was in is the parent's: a pool
        // worker forked there runs inside it for its whole life.
        if (m_hook.insideForkedCallback(tid)) continue;
        auto at = handleRunFrame(r);
        if (!at) continue;
        LoopSlot* slot = slotOf(tid);
        std::uint64_t seq = slot ? slot->seq.load(std::memory_order_acquire) : 0;
        auto before = seqBefore.find(tid);
        if (slot && (slot->depth.load(std::memory_order_acquire) != 0 || before == seqBefore.end() ||
                     before->second != seq)) {
            continue;  // timed by the hook, or one ran during the read
        }
        if (!hook.installed && !r.thread.holdsGil) continue;
        Ongoing og;
        og.nativeId = static_cast<std::int32_t>(r.thread.nativeId.value_or(0));
        og.runFrame = r.frameAddrs[*at];
        og.trio = *at + 1 < r.thread.frames.size() && r.thread.frames[*at + 1].function == "unrolled_run";
        og.innermost = r.frameAddrs.front();
        og.innermostLine = r.thread.frames.front().line;
        og.slotSeq = seq;
        // It ran when the hook went in (or when the installer began to wait
        // for the GIL this thread holds); we cannot know since when before.
        // (A holder running bytecode gives the GIL up within the switch
        // interval, 5 ms by default, of being asked.)
        og.startBoundNs = hook.installed ? hook.installedAtNs : hook.gilWaitSinceNs + kSwitchIntervalNs;
        // Asleep since earlier (a sleep, a futex, a blocking read): it was in
        // this callback since then.
        if (auto since = offCpuSinceNs(og.nativeId)) og.startBoundNs = std::min(og.startBoundNs, *since);
        og.lastSeenNs = now;
        m_ongoing.emplace(tid, og);
    }
}

}  // namespace aioscope::agent
