// Reads every task of every trio run in an interpreter into model Tasks
// (runtime "trio"), in the same shape as asyncio's: name, the stitched
// coroutine stack (for the running task, its thread's live frames), what it
// waits on, the nursery tree as awaited_by (a nursery's parent task over its
// children), cancellation, the locks it holds; and the deadlocks trio's own
// bookkeeping makes certain. Facts a deadlock would rest on are read twice,
// with the cache dropped in between: a live process that changed between the
// reads tears the snapshot instead of producing a finding.
#pragma once

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/snapshot.h"
#include "walk/frames.h"
#include "walk/interpreters.h"

namespace aioscope {

struct TrioTasksResult {
    std::vector<Task> tasks;
    std::vector<Finding> findings;  // certain from trio's state; more come from analyze()
    std::vector<std::string> warnings;
    bool torn = false;  // something changed while it was read: read again
};

// `stacks`: the interpreter's walked thread stacks, by thread id. `forget`
// drops cached memory before the confirming read. On the last attempt,
// facts that did not confirm are dropped (with a warning) rather than torn.
TrioTasksResult readTrioTasks(Objects& objects, FrameWalker& frames, const InterpreterState& interp,
                              const std::vector<ThreadState>& threads,
                              const std::unordered_map<std::uint64_t, WalkedStack>& stacks,
                              const std::function<void()>& forget, bool lastAttempt);

}  // namespace aioscope
