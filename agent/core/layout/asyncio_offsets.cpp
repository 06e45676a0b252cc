#include "layout/asyncio_offsets.h"

#include <cstring>

namespace aioscope {

std::optional<std::string> applyAsyncioDebugOffsets(Layout& L, std::span<const std::uint8_t> blob) {
    if (blob.size() < kAsyncioDebugSize) return "the .AsyncioDebug table is truncated";
    auto u = [&](std::size_t i) {
        std::uint64_t v;
        std::memcpy(&v, blob.data() + 8 * i, 8);
        return static_cast<Off>(v);
    };
    // asyncio_task_object {size, task_name, task_awaited_by, task_is_task,
    //   task_awaited_by_is_set, task_coro, task_node},
    // asyncio_interpreter_state {size, asyncio_tasks_head},
    // asyncio_thread_state {size, asyncio_running_loop, asyncio_running_task, asyncio_tasks_head}
    Off taskSize = u(0), name = u(1), awaitedBy = u(2), isTask = u(3), isSet = u(4), coro = u(5), node = u(6);
    Off interpSize = u(7), interpHead = u(8);
    Off threadSize = u(9), runningLoop = u(10), runningTask = u(11), threadHead = u(12);

    if (taskSize < 64 || taskSize > 4096) return "implausible Task size " + std::to_string(taskSize);
    // Compared without adding to them: the values are the target's, any
    // 64-bit number (a signed overflow would be undefined; found by fuzz_memory).
    for (Off f : {name, awaitedBy, isTask, isSet, coro, node}) {
        if (f < 16 || f > taskSize) return "a Task field lies outside the Task";
    }
    if (threadSize < L.thread.size || threadSize > (1 << 16)) return "implausible thread state size";
    for (Off f : {runningLoop, runningTask, threadHead}) {
        if (f < 0 || f > threadSize - 16) return "a thread state field lies outside the thread state";
    }
    // PyInterpreterState is large (its caches and freelists), never 16 MiB.
    if (interpSize <= 0 || interpSize > (1 << 24) || interpHead < 0 || interpHead > interpSize - 16) {
        return "the interpreter's task list lies outside the interpreter state";
    }
    // The fields this table omits sit next to ones it lists (FutureObj_HEAD
    // then TaskObj in _asynciomodule.c); check the neighbours it does list.
    if (name != coro + 8 || isTask != awaitedBy + 12 || isSet != isTask + 1) {
        return "the Task layout differs from CPython 3.14's";
    }
    auto& A = L.asyncio;
    A.taskSize = taskSize;
    A.taskName = name;
    A.taskCoro = coro;
    A.taskFutWaiter = coro - 8;
    A.taskNumCancels = coro - 16;
    A.taskNode = node;
    A.futAwaitedBy = awaitedBy;
    A.futAwaitedByIsSet = isSet;
    A.futState = awaitedBy + 8;
    A.taskMustCancel = isSet + 1;  // bit field: log_tb, blocking, must_cancel, ...
    A.taskMustCancelBit = 1 << 2;
    A.threadRunningLoop = runningLoop;
    A.threadRunningTask = runningTask;
    A.threadTasksHead = threadHead;
    A.interpTasksHead = interpHead;
    A.available = true;
    return std::nullopt;
}

}  // namespace aioscope
