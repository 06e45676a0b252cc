// Where, in a loop thread's stack, the event loop's callback begins: the
// frames the stall sampler tells callbacks apart by.
#pragma once

#include <cstddef>
#include <optional>

#include "snapshot_reader.h"

namespace aioscope::agent {

// asyncio runs every callback and task step in Handle._run (events.py).
bool isHandleRun(const Frame& f);
// A frame that runs a loop whose callbacks have no Python frame of their
// own (asyncio.run's runner driving uvloop, trio's unrolled_run).
bool runsLoop(const Frame& f);
// The loop's own code, called by those frames between callbacks.
bool loopOwn(const Frame& f);

// Where a thread is inside an event-loop callback, as a frame that stays the
// same while that callback runs: the outermost asyncio Handle._run frame (a
// callback may run a nested loop); under uvloop or trio, the outermost frame
// the loop called (a task's coroutine, a protocol method).
std::optional<std::size_t> handleRunFrame(const SnapshotReader::ThreadReport& r);

// Whether the thread is inside a callback's Python body: false when its
// innermost frame is Handle._run itself (a C callback, or the body has
// returned and the callback is ending) or no loop's callback shows at all.
bool inStepBody(const SnapshotReader::ThreadReport& r);

// Whether `later`, read during the same callback as `earlier` (the hook's
// seq unchanged), is still inside the step `earlier` saw: the frames from
// the outermost down to the body the innermost loop called are the same
// frame objects running the same code. False when `earlier` shows no loop.
bool sameStep(const SnapshotReader::ThreadReport& earlier, const SnapshotReader::ThreadReport& later);

}  // namespace aioscope::agent
