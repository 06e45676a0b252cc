// What a suspended task is waiting on, in the user's terms: another task, a
// gather, a TaskGroup, sleep, an Event, Lock, Condition, Semaphore, Queue,
// a timeout, an executor future, a stream read, a subprocess... decided from
// the awaited object and the asyncio function (file and name) waiting on it,
// never from version checks.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "walk/coroutines.h"

namespace aioscope {

struct AwaitTarget {
    std::string kind;           // "task", "gather", "taskgroup", "sleep", "event", "lock", ...
    Addr address = 0;           // the awaited future/task/object
    std::string type;           // its type name
    Addr object = 0;            // the synchronisation object (Lock, Event, Queue, TaskGroup...)
    std::string objectType;
    Addr task = 0;              // kind "task": the awaited task
    std::vector<Addr> children; // gather / TaskGroup / wait: the futures or tasks waited for
    bool done = false;          // the awaited future has completed: the task is about to resume
};

class AwaitClassifier {
public:
    explicit AwaitClassifier(CoroutineWalker& walker) : m_walker(walker), m_objects(walker.objects()) {}

    // futWaiter: the task's own record of the future it is blocked on; it
    // must be the future at the bottom of the chain (BadRead otherwise: the
    // task and its coroutines were read at different moments).
    std::optional<AwaitTarget> classify(const CoroutineChain& chain, Addr futWaiter, Witness* witness = nullptr);

    bool isTask(Addr obj) { return obj && m_objects.isInstance(obj, "_asyncio.Task", true); }
    bool isFuture(Addr obj) { return obj && m_objects.isInstance(obj, "_asyncio.Future", true); }

private:
    void byFrame(const CoroutineChain& chain, AwaitTarget& t);
    Addr firstArgument(const RawFrame& frame);
    std::vector<Addr> containerItems(Addr obj);

    CoroutineWalker& m_walker;
    Objects& m_objects;
};

}  // namespace aioscope
