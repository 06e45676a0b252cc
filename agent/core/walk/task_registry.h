// Finds every live asyncio task of an interpreter, from the registry the C
// _asyncio module really uses in that version:
//   3.10/3.11  the _all_tasks WeakSet;
//   3.12/3.13  the _scheduled_tasks WeakSet and the _eager_tasks set;
//   3.14+      the per-thread and per-interpreter linked lists of TaskObj,
//              plus the sets holding tasks that are not _asyncio.Task.
// Pure-Python registries (asyncio.tasks) are added where they differ. Tasks
// are de-duplicated by address; every walk is bounded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "remote/objects.h"
#include "remote/witness.h"
#include "walk/interpreters.h"

namespace aioscope {

struct TaskRegistryResult {
    std::vector<Addr> tasks;             // unique, in discovery order
    std::vector<std::string> warnings;   // parts of the registry that could not be read
};

// With `witness`, records the structure of what was read (list links, set
// tables) so the caller can check nothing moved under the read.
TaskRegistryResult discoverTasks(Objects& objects, const InterpreterState& interp,
                                 const std::vector<ThreadState>& threads, Witness* witness = nullptr);

// Objects in a weakref.WeakSet that are still alive.
std::vector<Addr> weakSetItems(Objects& objects, Addr weakset, Witness* witness = nullptr);

}  // namespace aioscope
