// Human-readable asyncio views of a snapshot: findings, then one tree per
// event loop (each task under the tasks awaiting it, with its coroutine
// stack and what it waits on, identical siblings coalesced as "× N"), or a
// ps-like table with one line per task.
#pragma once

#include <ostream>

#include "model/snapshot.h"
#include "render/style.h"

namespace aioscope::cli {

void renderFindings(const Snapshot& snap, std::ostream& out, const Style& st);
void renderTaskTrees(const Snapshot& snap, std::ostream& out, const Style& st);
void renderTaskTable(const Snapshot& snap, std::ostream& out, const Style& st);

// "waits on Lock 0x7f.. held by 'B'" and the like.
std::string describeWait(const Snapshot& snap, const Task& t);

}  // namespace aioscope::cli
