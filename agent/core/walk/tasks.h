// Reads every unfinished asyncio task of an interpreter into model Tasks:
// name, state, the loop's thread, the stitched coroutine stack (for the
// running task: the thread's live frames down to the task's coroutine), what
// it awaits, who awaits it, cancellation state and the locks it holds.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/snapshot.h"
#include "walk/awaiting.h"
#include "walk/holdings.h"
#include "walk/interpreters.h"
#include "walk/wakers.h"

namespace aioscope {

struct TasksResult {
    std::vector<Task> tasks;
    std::vector<std::string> warnings;
    bool torn = false;  // some task could not be read consistently
};

class TaskWalker {
public:
    TaskWalker(Objects& objects, FrameWalker& frames, pid_t pid);

    // `stacks`: the interpreter's walked thread stacks, by thread id.
    TasksResult read(const InterpreterState& interp, const std::vector<ThreadState>& threads,
                     const std::unordered_map<std::uint64_t, WalkedStack>& stacks);

    // Only the task the loop on `threadId` is running now, if any.
    std::optional<Task> readRunning(const InterpreterState& interp, const std::vector<ThreadState>& threads,
                                    const std::unordered_map<std::uint64_t, WalkedStack>& stacks,
                                    std::uint64_t threadId);

private:
    struct Context;
    std::optional<Task> readTask(Addr addr, Context& ctx);
    std::string taskName(Addr nameObj);
    std::shared_ptr<const Stack> suspendedStack(const CoroutineChain& chain);
    std::optional<std::int64_t> externalRefs(const CoroutineChain& chain, const AwaitTarget& t, Addr futWaiter);

    Objects& m_objects;
    FrameWalker& m_frames;
    CoroutineWalker m_coroutines;
    AwaitClassifier m_classifier;
    Holdings m_holdings;
    pid_t m_pid;
    std::map<std::vector<std::pair<Addr, std::int64_t>>, std::shared_ptr<const Stack>> m_stacks;
};

}  // namespace aioscope
