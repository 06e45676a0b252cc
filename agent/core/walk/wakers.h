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

    // Tasks woken when `future` completes (never `future` itself).
    const std::vector<Addr>& awaitersOf(Addr future);

    // The callables registered with add_done_callback.
    std::vector<Addr> callbacks(Addr future);

    // The co_name of a Python function used as a callback, "" otherwise.
    std::string functionName(Addr callable);

private:
    // Awaiters of a future, memoized for every future met on the way (a
    // gather's outer future is reached from each of its children).
    const std::vector<Addr>& collect(Addr future, int depth);
    void fromCallable(Addr cb, int depth, std::vector<Addr>& out);
    void fromObject(Addr obj, int depth, std::vector<Addr>& out);

    Objects& m_objects;
    std::unordered_map<Addr, std::vector<Addr>> m_cache;
    std::unordered_map<Addr, bool> m_inProgress;
};

}  // namespace aioscope
