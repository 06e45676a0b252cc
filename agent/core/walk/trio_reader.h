// The trio reader's internals, shared by its two halves: reading the tasks
// (trio_tasks.cpp) and the deadlock facts with their confirmation
// (trio_deadlocks.cpp). Not a public interface: see trio_tasks.h.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "layout/trio_layout.h"
#include "remote/fields.h"
#include "walk/coroutines.h"
#include "walk/locals.h"
#include "walk/trio_refs.h"
#include "walk/trio_runtime.h"
#include "walk/trio_tasks.h"
#include "walk/trio_waits.h"

namespace aioscope::trio {

// What a task's wait rests on beyond the model Task.
struct Facts {
    Addr runner = 0;
    Addr coro = 0;
    Addr parentTask = 0;
    bool blocked = false;  // in wait_task_rescheduled, not scheduled to run
    Addr sleepData = 0;    // custom_sleep_data: the ParkingLot or channel it sleeps on
    Addr abortFunc = 0;
    std::int64_t counter = 0;
    CoroutineChain chain;
};

// A fact a finding rests on, to be read again after the cache is dropped.
struct Check {
    std::function<std::optional<Addr>()> read;
    Addr expected = 0;
    std::function<void()> drop;  // what to forget if it changed on the last attempt
};

class TrioReader {
public:
    TrioReader(Objects& objects, FrameWalker& frames)
        : m_objects(objects),
          m_frames(frames),
          m_layout(trioLayout()),
          m_fields(objects),
          m_locals(objects),
          m_coroutines(frames, objects),
          m_classifier(m_coroutines, m_locals, m_layout),
          m_refs(m_coroutines, m_fields, m_layout) {}

    TrioTasksResult read(const InterpreterState& interp, const std::vector<ThreadState>& threads,
                         const std::unordered_map<std::uint64_t, WalkedStack>& stacks,
                         const std::function<void()>& forget, bool lastAttempt);

private:
    // trio_tasks.cpp: the tasks.
    Task readTask(Addr addr, Addr runner, std::optional<std::uint64_t> thread, const InterpreterState& interp,
                  const std::unordered_map<std::uint64_t, WalkedStack>& stacks, Facts& facts);
    void describeWait(Task& t, const Facts& facts);
    std::shared_ptr<const Stack> suspendedStack(const CoroutineChain& chain);
    std::vector<Addr> enteredPrimitives(const CoroutineChain& chain);
    std::vector<Addr> tasksIn(Addr set);
    std::optional<Addr> field(Addr obj, const char* name) { return m_fields.get(obj, name); }
    // trio_deadlocks.cpp: who holds what, certain deadlocks, their confirmation.
    bool inTrap(const CoroutineChain& chain);
    bool blockedOn(Addr task, Addr coro, Addr sleepData);
    void addHolds(std::vector<Task>& tasks, std::vector<Facts>& facts, TrioTasksResult& out);
    void abandoned(std::vector<Task>& tasks, std::vector<Facts>& facts, TrioTasksResult& out, std::size_t waiter,
                   Addr lock, Addr owner);
    void confirmCycles(std::vector<Task>& tasks, std::vector<Facts>& facts);
    void addExternalRefs(std::vector<Task>& tasks, std::vector<Facts>& facts, TrioTasksResult& out);
    void confirm(const std::function<void()>& forget, bool lastAttempt, TrioTasksResult& out);

    Objects& m_objects;
    FrameWalker& m_frames;
    const TrioLayout& m_layout;
    Fields m_fields;
    FrameLocals m_locals;
    CoroutineWalker m_coroutines;
    TrioWaitClassifier m_classifier;
    OwnedReferences m_refs;
    TrioClasses m_classes;
    std::map<Addr, std::set<Addr>> m_living;  // runner -> its tasks
    std::vector<Check> m_checks;
    struct LockEdge {
        std::size_t waiter;
        Addr lock;
        std::size_t owner;
    };
    std::vector<LockEdge> m_lockEdges;
    std::map<std::vector<std::pair<Addr, std::int64_t>>, std::shared_ptr<const Stack>> m_stacks;
};

// " at worker (app.py:12)": where a finding says a task waits.
std::string where(const Task& t);

}  // namespace aioscope::trio
