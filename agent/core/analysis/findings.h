// Analyses over a snapshot: pure functions, no memory access, unit-tested on
// hand-built snapshots. They explain why tasks will never finish:
//   await-cycle    tasks awaiting each other (directly, through gather,
//                  TaskGroup, wait_for...), so none can complete;
//   lock-deadlock  a cycle in which some task waits for an asyncio lock held
//                  (inside `async with`) by the next;
//   orphaned-wait  a task waiting on a future/event/queue/lock that nothing
//                  outside the task references, so nothing can ever set it;
//   abandoned-lock a trio task waiting for a Lock whose owner has finished
//                  (found by the trio walker from trio's own records);
//   cancel-ignored a task asked to cancel that caught the CancelledError and
//                  went on waiting.
#pragma once

#include <vector>

#include "model/snapshot.h"

namespace aioscope {

std::vector<Finding> analyze(const Snapshot& snap);

// Kinds that mean "these tasks will never finish".
bool isDeadlock(const Finding& f);

}  // namespace aioscope
