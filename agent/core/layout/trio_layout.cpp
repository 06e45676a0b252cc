// Names checked against trio 0.22.0 (Debian bookworm's python3-trio:
// trio/_core/_run.py, _sync.py, _channel.py, _core/_parking_lot.py,
// _core/_io_epoll.py, _threads.py, _timeouts.py, _core/_traps.py), 0.22.2 and
// 0.34.0 (Debian sid's), and anyio 3.6 and 4.15 (anyio/_backends/_trio.py,
// _core/_synchronization.py, streams/memory.py). Where a name changed between
// releases, the table lists both.
#include "layout/trio_layout.h"

#include <array>

namespace aioscope {

namespace {

constexpr std::array<const char*, 2> kLibraryPackages{"trio", "anyio"};
constexpr std::array<const char*, 2> kTrapFunctions{"_async_yield", "_real_async_yield"};

// Innermost first within each group does not matter: the outermost match of
// the run of library frames wins, so a wait built on another (Lock.acquire
// on ParkingLot.park, anyio's Event on trio's) is named by the outer one.
constexpr std::array kWaits{
    // sleeping
    TrioWait{"/trio/_timeouts.py", "sleep_forever", nullptr, "sleep", nullptr, nullptr},
    TrioWait{"/trio/_timeouts.py", "sleep_until", nullptr, "sleep", nullptr, nullptr},
    TrioWait{"/trio/_timeouts.py", "sleep", nullptr, "sleep", nullptr, nullptr},
    // synchronization primitives: `self` is the object
    TrioWait{"/trio/_core/_parking_lot.py", "park", nullptr, "parking-lot", "self", nullptr},
    TrioWait{"/trio/_sync.py", "wait", "Event", "event", "self", nullptr},
    TrioWait{"/trio/_sync.py", "wait", "Condition", "condition", "self", nullptr},
    TrioWait{"/trio/_sync.py", "acquire", "Lock", "lock", "self", nullptr},
    TrioWait{"/trio/_sync.py", "acquire", "StrictFIFOLock", "lock", "self", nullptr},
    TrioWait{"/trio/_sync.py", "acquire", "Semaphore", "semaphore", "self", nullptr},
    TrioWait{"/trio/_sync.py", "acquire_on_behalf_of", "CapacityLimiter", "capacity-limiter", "self", nullptr},
    // memory channels
    TrioWait{"/trio/_channel.py", "send", "MemorySendChannel", "channel-send", "self", nullptr},
    TrioWait{"/trio/_channel.py", "receive", "MemoryReceiveChannel", "channel-receive", "self", nullptr},
    // file descriptors: the epoll helper knows the fd number, the public
    // functions outside it the object the program passed (a socket, or the number)
    TrioWait{"/trio/_core/_io_epoll.py", "_epoll_wait", nullptr, nullptr, nullptr, "fd"},
    TrioWait{"/trio/_core/_io_epoll.py", "wait_readable", nullptr, "wait-readable", "fd", nullptr},
    TrioWait{"/trio/_core/_io_epoll.py", "wait_writable", nullptr, "wait-writable", "fd", nullptr},
    TrioWait{"/trio/_core/_generated_io_epoll.py", "wait_readable", nullptr, "wait-readable", "fd", nullptr},
    TrioWait{"/trio/_core/_generated_io_epoll.py", "wait_writable", nullptr, "wait-writable", "fd", nullptr},
    // structure: a nursery's parent task waiting for its children in __aexit__
    TrioWait{"/trio/_core/_run.py", "_nested_child_finished", "Nursery", "nursery", "self", nullptr},
    TrioWait{"/trio/_threads.py", "to_thread_run_sync", nullptr, "to-thread", nullptr, nullptr},
    TrioWait{"/trio/_subprocess.py", "wait", "Process", "subprocess", "self", nullptr},
    TrioWait{"/trio/_signals.py", "__anext__", "SignalReceiver", "signal", "self", nullptr},
    TrioWait{"/trio/_core/_run.py", "wait_all_tasks_blocked", nullptr, "wait_all_tasks_blocked", nullptr, nullptr},
    // anything else blocking in trio's primitive
    TrioWait{"/trio/_core/_traps.py", "wait_task_rescheduled", nullptr, "wait_task_rescheduled", nullptr, nullptr},
    // anyio on trio: its own primitives over trio's
    TrioWait{"/anyio/_core/_eventloop.py", "sleep", nullptr, "sleep", nullptr, nullptr},
    TrioWait{"/anyio/_core/_eventloop.py", "sleep_forever", nullptr, "sleep", nullptr, nullptr},
    TrioWait{"/anyio/_core/_eventloop.py", "sleep_until", nullptr, "sleep", nullptr, nullptr},
    TrioWait{"/anyio/_backends/_trio.py", "wait", "Event", "event", "self", nullptr},
    TrioWait{"/anyio/_core/_synchronization.py", "acquire", "Lock", "lock", "self", nullptr},
    TrioWait{"/anyio/_core/_synchronization.py", "acquire", "Semaphore", "semaphore", "self", nullptr},
    TrioWait{"/anyio/_core/_synchronization.py", "wait", "Condition", "condition", "self", nullptr},
    TrioWait{"/anyio/_backends/_trio.py", "acquire_on_behalf_of", "CapacityLimiter", "capacity-limiter", "self",
             nullptr},
    TrioWait{"/anyio/streams/memory.py", "receive", "MemoryObjectReceiveStream", "channel-receive", "self", nullptr},
    TrioWait{"/anyio/streams/memory.py", "send", "MemoryObjectSendStream", "channel-send", "self", nullptr},
    TrioWait{"/anyio/_backends/_trio.py", "run_sync_in_worker_thread", nullptr, "to-thread", nullptr, nullptr},
};

const TrioLayout kTrio022{
    .describes = "trio 0.22 to 0.34",
    .runModule = "trio._core._run",
    .runFunction = "run",
    .runFile = "/trio/_core/_run.py",
    .runRunnerLocal = "runner",
    .runContext = "GLOBAL_RUN_CONTEXT",
    .runContextRunner = "runner",
    .runner = {"trio._core._run", "Runner"},
    .task = {"trio._core._run", "Task"},
    .nursery = {"trio._core._run", "Nursery"},
    .cancelStatus = {"trio._core._run", "CancelStatus"},
    .lockImpl = {"trio._sync", "_LockImpl"},
    .capacityLimiter = {"trio._sync", "CapacityLimiter"},
    .cancelled = {"trio._core._exceptions", "Cancelled"},
    .runnerTasks = "tasks",
    .taskName = "name",
    .taskCoro = "coro",
    .taskParentNursery = "_parent_nursery",
    .taskNextSendFn = "_next_send_fn",
    .taskSleepData = "custom_sleep_data",
    .taskAbortFunc = "_abort_func",
    .taskCancelStatus = "_cancel_status",
    .taskCounter = "_counter",
    .cancelStatusCancelled = "effectively_cancelled",
    .nurseryParentTask = "_parent_task",
    .nurseryChildren = "_children",
    .lockOwner = "_owner",
    .lockLot = "_lot",
    .limiterBorrowers = "_borrowers",
    .trapClass = "WaitTaskRescheduled",
    .trapAbort = "abort_func",
    .trapFile = "/trio/_core/_traps.py",
    .trapLocal = "obj",
    .trapFunctions = kTrapFunctions,
    .aexitFile = "/trio/_sync.py",
    .aexitFunction = "__aexit__",
    .libraryPackages = kLibraryPackages,
    .waits = kWaits,
};

}  // namespace

const TrioLayout& trioLayout() { return kTrio022; }

}  // namespace aioscope
