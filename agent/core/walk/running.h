// Which event loop each thread is running, and which task that loop is
// running right now: from the thread state (3.13+/3.14+), the thread's dict
// (3.10-3.12) and _asyncio._current_tasks (3.10-3.13).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "remote/objects.h"
#include "walk/interpreters.h"

namespace aioscope {

struct RunningLoops {
    std::unordered_map<Addr, std::uint64_t> threadOfLoop;  // loop -> thread id
    std::unordered_map<std::uint64_t, Addr> loopOfThread;  // thread id -> loop
    std::unordered_map<std::uint64_t, Addr> taskOfThread;  // thread id -> running task
    // thread id -> why its running task (if any) could not be read: a torn
    // read must not pass for "no task".
    std::unordered_map<std::uint64_t, std::string> taskUnknown;
};

RunningLoops readRunningLoops(Objects& objects, const InterpreterState& interp,
                              const std::vector<ThreadState>& threads, pid_t pid);

}  // namespace aioscope
