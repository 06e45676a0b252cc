// Where trio keeps its state, by name: the modules, classes, attributes and
// locals aioscope reads, and the library functions that tell what a blocked
// task waits on. trio is pure Python, so names (not byte offsets) are its
// layout; the byte offsets of the slots and dicts holding them are read from
// the classes themselves at run time. Walkers take every name from here.
#pragma once

#include <span>

namespace aioscope {

struct TrioClass {
    const char* module;
    const char* name;
};

// A library function a blocked task sits in, innermost first in its stack.
// The outermost match of the innermost run of library frames names the wait
// (Lock.acquire is built on ParkingLot.park: "lock", not "parking-lot").
struct TrioWait {
    const char* file;      // suffix of co_filename
    const char* function;  // co_name
    const char* selfType;  // the class of `self` (tp_name), or nullptr for any
    const char* kind;      // Awaiting.kind; nullptr: only contributes the fd
    const char* object;    // local holding the object waited on, or nullptr
    const char* fd;        // local holding the file descriptor (an int), or nullptr
};

struct TrioLayout {
    const char* describes;  // the trio releases this table was checked against

    // Finding the runners: trio.run's frame keeps the Runner in a local, and
    // trio's thread-local run context keeps it for every thread (guest runs too).
    const char* runModule;
    const char* runFunction;
    const char* runFile;  // suffix of the run function's co_filename
    const char* runRunnerLocal;
    const char* runContext;        // threading.local instance in runModule
    const char* runContextRunner;  // its per-thread attribute

    TrioClass runner, task, nursery, cancelStatus, lockImpl, capacityLimiter, cancelled;

    // Runner
    const char* runnerTasks;  // set of every living Task
    // Task
    const char* taskName, *taskCoro, *taskParentNursery, *taskNextSendFn, *taskSleepData, *taskAbortFunc,
        *taskCancelStatus, *taskCounter;
    // CancelStatus
    const char* cancelStatusCancelled;
    // Nursery
    const char* nurseryParentTask, *nurseryChildren;
    // Lock (owner: the Task holding it) and CapacityLimiter (borrowers: the tasks holding a token)
    const char* lockOwner, *lockLot, *limiterBorrowers;
    // What wait_task_rescheduled yields to the run loop (holding the task's
    // abort function), from the generator that yields it: a task is blocked
    // only while suspended there (other yields, such as a checkpoint's, are
    // rescheduled at once).
    const char* trapClass, *trapAbort, *trapFile, *trapLocal;
    std::span<const char* const> trapFunctions;  // _async_yield (0.22), _real_async_yield (later)
    // `async with primitive:` leaves this bound method on the frame's value stack until the block ends.
    const char* aexitFile, *aexitFunction;

    // Packages whose frames are the library's, not the program's (found by
    // the directory of each package's __init__.py in the target).
    std::span<const char* const> libraryPackages;
    std::span<const TrioWait> waits;
};

// trio 0.22 to 0.34 and anyio 3 and 4 on it; names missing from another
// trio make the reader report trio as unreadable, with a warning.
const TrioLayout& trioLayout();

}  // namespace aioscope
