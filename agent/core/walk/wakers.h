// Who awaits a future or task: the tasks that will be woken when it
// completes. 3.14+ records this in the future (`awaited_by`); for every
// version it can be derived from the future's done-callbacks, which is what
// wakes waiters up:
//   - task_wakeup (a builtin bound to the waiting task);
//   - TaskGroup._on_task_done (the group's parent task awaits its children);
//   - closures and partials over other futures (gather's _done_callback,
//     wait/wait_for/shield helpers): followed to whoever awaits those.
#pragma once

#include <unordered_map>
#include <vector>

#include "remote/objects.h"

namespace aioscope {

class Wakers {
public:
    explicit Wakers(Objects& objects) : m_objects(objects) {}

    // Tasks woken when `future` completes (itself too, when it gathers or
    // waits for itself: a deadlock of one).
    std::vector<Addr> awaitersOf(Addr future);

    // Forget what was learnt (before reading again a process that moved on).
    void clear() {
        m_cache.clear();
        m_inProgress.clear();
    }

    // The callables registered with add_done_callback.
    std::vector<Addr> callbacks(Addr future);

    // The co_name of a Python function used as a callback, "" otherwise.
    std::string functionName(Addr callable);

private:
    // Tasks met on the way, and among them those that a wake-up names (a
    // task_wakeup callback, awaited_by, a TaskGroup's parent): a task named
    // only by a helper's closure may be the awaited one (shield keeps its
    // inner task there), so it is not its own awaiter.
    struct Found {
        std::vector<Addr> all;
        std::vector<Addr> woken;
    };
    // Awaiters of a future, memoized for every future met on the way (a
    // gather's outer future is reached from each of its children).
    const Found& collect(Addr future, int depth);
    Found expand(Addr future, int depth);
    void fromCallable(Addr cb, int depth, Found& out);
    void fromObject(Addr obj, int depth, Found& out, bool wakes);

    Objects& m_objects;
    std::unordered_map<Addr, Found> m_cache;
    // The futures being expanded, outermost first (at most kMaxDepth + 1).
    std::vector<Addr> m_inProgress;
};

}  // namespace aioscope
