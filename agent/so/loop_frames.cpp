#include "loop_frames.h"

#include <string_view>

namespace aioscope::agent {

namespace {

bool endsWith(const std::string& s, std::string_view tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The body of the innermost callback: the frame its Handle._run called, or
// (uvloop, trio: no Handle._run) the frame the loop called.
std::optional<std::size_t> stepBody(const SnapshotReader::ThreadReport& r) {
    std::size_t n = std::min(r.thread.frames.size(), r.frameAddrs.size());
    for (std::size_t i = 0; i < n; ++i) {
        if (isHandleRun(r.thread.frames[i])) return i ? i - 1 : 0;  // 0: no Python body yet
    }
    return handleRunFrame(r);
}

}  // namespace

bool isHandleRun(const Frame& f) {
    if (f.function != "_run" || (f.qualname != "Handle._run" && f.qualname != "_run")) return false;
    return endsWith(f.file, "asyncio/events.py");
}

// Only the runner's `run` (Runner.run, or asyncio.run itself on 3.10) calls
// the loop: its helpers (_lazy_init creating the loop) run before any.
bool runsLoop(const Frame& f) {
    return (f.function == "run" && endsWith(f.file, "asyncio/runners.py")) ||
           (f.function == "unrolled_run" && endsWith(f.file, "trio/_core/_run.py"));
}

// Also what the runner calls before its loop runs (making the loop, checking
// the coroutine, looking at the main thread and SIGINT): on a starved
// machine these can take longer than a threshold, and are no callback.
bool loopOwn(const Frame& f) {
    for (const char* file : {"asyncio/base_events.py", "asyncio/runners.py", "asyncio/events.py",
                             "asyncio/coroutines.py", "/threading.py", "/signal.py"}) {
        if (endsWith(f.file, file)) return true;
    }
    return f.file.find("/trio/_core/") != std::string::npos;
}

std::optional<std::size_t> handleRunFrame(const SnapshotReader::ThreadReport& r) {
    std::optional<std::size_t> found;
    std::size_t n = std::min(r.thread.frames.size(), r.frameAddrs.size());
    for (std::size_t i = 0; i < n; ++i) {
        if (isHandleRun(r.thread.frames[i])) found = i;
    }
    if (found) return found;
    for (std::size_t i = 0; i + 1 < n; ++i) {
        if (runsLoop(r.thread.frames[i + 1]) && !loopOwn(r.thread.frames[i]) && !runsLoop(r.thread.frames[i])) found = i;
    }
    return found;
}

bool inStepBody(const SnapshotReader::ThreadReport& r) {
    auto body = stepBody(r);
    return body && !isHandleRun(r.thread.frames[*body]);
}

// Frame addresses alone are not enough: on 3.11+ a function's frame lives on
// the thread's frame stack, where the next call at that depth reuses it.
bool sameStep(const SnapshotReader::ThreadReport& earlier, const SnapshotReader::ThreadReport& later) {
    auto body = stepBody(earlier);
    if (!body) return false;
    std::size_t na = std::min(earlier.thread.frames.size(), earlier.frameAddrs.size());
    std::size_t nb = std::min(later.thread.frames.size(), later.frameAddrs.size());
    std::size_t k = na - *body;  // the body and every frame outside it
    if (nb < k) return false;
    for (std::size_t j = 1; j <= k; ++j) {
        const Frame& fa = earlier.thread.frames[na - j];
        const Frame& fb = later.thread.frames[nb - j];
        if (earlier.frameAddrs[na - j] != later.frameAddrs[nb - j] || fa.function != fb.function ||
            fa.qualname != fb.qualname || fa.file != fb.file) {
            return false;
        }
    }
    return true;
}

}  // namespace aioscope::agent
