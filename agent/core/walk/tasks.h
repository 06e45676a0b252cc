// Reads every unfinished asyncio task of an interpreter into model Tasks:
// name, state, the loop's thread, the stitched coroutine stack (for the
// running task: the thread's live frames down to the task's coroutine), what
// it awaits, who awaits it, cancellation state and the locks it holds.
//
// A live process changes while it is read, so every task is checked: against
// itself (a live Task object, a real str or int for a name, a coroutine chain
// whose links hold together, the future its coroutine awaits is the one the
// task records), and against the target once more after all were read (the
// values each record was built from, re-read in one batch past the page
// cache). A task that fails is read again, up to kRereads times; one that
// still fails is reported with `error` set and a warning, never guessed. A
// task that finished meanwhile is left out, as asyncio.all_tasks() would.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/snapshot.h"
#include "remote/witness.h"
#include "walk/awaiting.h"
#include "walk/holdings.h"
#include "walk/interpreters.h"
#include "walk/wakers.h"

namespace aioscope {

struct TasksResult {
    std::vector<Task> tasks;
    std::vector<std::string> warnings;
    bool torn = false;  // some task (or the registry) could not be read consistently
    int rereads = 0;    // tasks read again because they changed while read
};

class TaskWalker {
public:
    static constexpr int kRereads = 3;
    static constexpr int kRegistryAttempts = 8;
    static constexpr std::size_t kFreshEvery = 1024;  // tasks read between two page cache clears
    // Tasks whose values get their second look in one batch: the batch's
    // values and pages are held until it is done (about 1.5 KB a task, the
    // agent's snapshot counts it inside the program); smaller batches read
    // a quarter more pages at 10,000 tasks, for no measurable time.
    static constexpr std::size_t kLookEvery = 256;

    // `fresh` reads the target past any cache (for the second look).
    TaskWalker(Objects& objects, FrameWalker& frames, MemoryReader& fresh, pid_t pid);

    // A running task's frames are read from its thread, again, as they are
    // when the task is read (the thread moves on).
    TasksResult read(const InterpreterState& interp, const std::vector<ThreadState>& threads);

    // Only the task the loop on `threadId` is running now, if any. Throws
    // BadRead when whether one runs, or which, could not be read.
    std::optional<Task> readRunning(const InterpreterState& interp, const std::vector<ThreadState>& threads,
                                    std::uint64_t threadId);

private:
    struct Context;
    struct Attempt {
        std::optional<Task> task;            // nullopt: not (or no longer) a pending task
        std::optional<std::string> problem;  // why it is not consistent
        Witness witness;
    };
    Attempt readTask(Addr addr, Context& ctx);
    void fillTask(Addr addr, Context& ctx, Attempt& out);
    std::string taskName(Addr nameObj, Witness& w);
    std::shared_ptr<const Stack> suspendedStack(const CoroutineChain& chain);
    std::optional<std::int64_t> externalRefs(const CoroutineChain& chain, const AwaitTarget& t, Addr futWaiter);
    bool runningStack(Addr gen, std::uint64_t threadId, Context& ctx, Task& t, Witness& w);

    Objects& m_objects;
    FrameWalker& m_frames;
    MemoryReader& m_fresh;
    CoroutineWalker m_coroutines;
    AwaitClassifier m_classifier;
    Holdings m_holdings;
    pid_t m_pid;
    std::map<std::vector<std::pair<Addr, std::int64_t>>, std::shared_ptr<const Stack>> m_stacks;
};

}  // namespace aioscope
