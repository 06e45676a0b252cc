// The snapshot: a plain value describing one moment of a Python process. The
// walkers produce it, analyses read it, renderers print it; nothing in it
// points back into the target. Serialized as "aioscope/snapshot/1"
// (docs/json-schema.md).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace aioscope {

inline constexpr const char* kSnapshotSchema = "aioscope/snapshot/1";

struct Frame {
    std::string function;  // co_name
    std::string qualname;  // co_qualname (co_name on 3.10)
    std::string file;      // co_filename
    std::optional<int> line;

    bool operator==(const Frame&) const = default;
};

// What a thread is blocked in, when it is a synchronous wait aioscope knows:
// threading's primitives, queue.Queue, concurrent.futures, Thread.join, or a
// C lock acquire found from the calling frame's locals.
struct ThreadWait {
    std::string kind;                    // lock, rlock, condition, event, semaphore, barrier, queue-get,
                                         // queue-put, queue-join, join, future-result, futures-wait
    std::uint64_t object = 0;            // the Lock/Condition/Event/Queue/Thread/Future waited on
    std::string objectType;
    std::optional<std::uint64_t> owner;  // the thread holding the lock (RLock's owner, or a `with` block)
    std::optional<std::uint64_t> thread; // join: the thread joined
    // future-result: the asyncio task or future the concurrent future is
    // chained to (run_coroutine_threadsafe), and the loop that runs it.
    std::optional<std::uint64_t> task;
    std::optional<std::uint64_t> loop;
    // future-result on a coroutine whose start is still queued on `loop`.
    bool queued = false;
    std::vector<std::uint64_t> futures;  // futures-wait: the futures

    bool operator==(const ThreadWait&) const = default;
};

// A thread-pool worker and what it runs (concurrent.futures.thread).
struct WorkerInfo {
    std::uint64_t executor = 0;          // the ThreadPoolExecutor (0: already collected)
    std::optional<std::int64_t> maxWorkers;
    std::optional<std::uint64_t> workItem;  // absent: the worker is idle
    std::optional<std::uint64_t> future;    // the work item's concurrent.futures.Future
    std::vector<std::uint64_t> awaitedBy;   // asyncio tasks awaiting that future

    bool operator==(const WorkerInfo&) const = default;
};

struct Thread {
    std::int64_t interpreterId = 0;
    std::uint64_t threadId = 0;              // threading.get_ident()
    std::optional<std::int64_t> nativeId;    // threading.get_native_id()
    std::optional<std::string> name;
    bool holdsGil = false;
    std::vector<Frame> frames;               // innermost first
    bool truncated = false;                  // more frames than aioscope reads
    std::size_t omittedFrames = 0;           // the outermost frames left out (truncated)
    std::optional<std::string> error;        // why frames are incomplete
    std::optional<ThreadWait> waiting;       // blocked in a known synchronous wait
    std::optional<WorkerInfo> worker;        // a thread-pool worker
    std::vector<std::uint64_t> holds;        // threading locks held in `with` blocks
    std::optional<std::uint64_t> loop;       // the asyncio event loop this thread runs
};

using Stack = std::vector<Frame>;

// A value kept on the heap, and only once set: copied deeply, compared by
// value; reads of an unset one see a default T.
template <class T>
class OutOfLine {
public:
    OutOfLine() = default;
    OutOfLine(const OutOfLine& o) : m_p(o.m_p ? std::make_unique<T>(*o.m_p) : nullptr) {}
    OutOfLine(OutOfLine&&) noexcept = default;
    OutOfLine& operator=(const OutOfLine& o) {
        if (this != &o) m_p = o.m_p ? std::make_unique<T>(*o.m_p) : nullptr;
        return *this;
    }
    OutOfLine& operator=(OutOfLine&&) noexcept = default;
    ~OutOfLine() = default;
    const T& get() const {
        static const T none{};
        return m_p ? *m_p : none;
    }
    T& edit() {
        if (!m_p) m_p = std::make_unique<T>();
        return *m_p;
    }
    // A default value is what an unset one reads: nothing is made for it.
    void set(T v) {
        if (v == T{}) m_p.reset();
        else edit() = std::move(v);
    }
    bool operator==(const OutOfLine& o) const { return get() == o.get(); }
    bool made() const { return m_p != nullptr; }

private:
    std::unique_ptr<T> m_p;
};

// What a task's innermost coroutine waits on.
struct Awaiting {
    struct ReferencedBy {
        std::vector<std::uint64_t> tasks;
        std::vector<std::uint64_t> threads;
        bool operator==(const ReferencedBy&) const = default;
    };
    std::string kind;                 // task, gather, taskgroup, sleep, event, lock, semaphore,
                                      // condition, barrier, queue-get, queue-put, queue-join,
                                      // wait, wait_for, timeout, as_completed, executor,
                                      // stream-read, stream-drain, subprocess, socket, server,
                                      // future, other
    std::uint64_t address = 0;        // the awaited future, task or object
    std::string type;                 // its type name
    std::optional<std::uint64_t> object;     // the Lock/Event/Queue/TaskGroup... waited on
    std::string objectType;
    std::optional<std::uint64_t> task;       // kind "task": the awaited task
    std::vector<std::uint64_t> children;     // gather/taskgroup/wait: what it waits for
    // References to the waited-on object from outside the waiting task (its
    // refcount minus its own frames' references); 0 means nothing else can
    // ever complete the wait. Absent where it cannot be counted.
    std::optional<std::int64_t> externalRefs;
    // What few waits have, out of line: the record of every task stays small
    // (112 bytes less each, 552 -> 440: 11 MB at 100,000 tasks). detail()
    // reads (empty when none was set), editDetail() and setDetail() write.
    struct Detail {
        std::optional<std::int64_t> fd;          // trio wait-readable/wait-writable: the file descriptor
        // kind "executor": the concurrent.futures.Future the awaited future is
        // chained to, and the worker thread running it (absent: queued).
        std::optional<std::uint64_t> concurrentFuture;
        std::optional<std::uint64_t> thread;
        std::optional<std::uint64_t> executor;   // queued: the pool whose work queue holds it
        // Every reference to the waited-on object from outside the task comes
        // from these tasks' and threads' frames: only they can complete the wait.
        // Absent when some reference comes from elsewhere (or was not counted).
        std::optional<ReferencedBy> referencedBy;
        bool operator==(const Detail&) const = default;
    };
    const Detail& detail() const { return detailStore.get(); }
    Detail& editDetail() { return detailStore.edit(); }
    void setDetail(Detail d) { detailStore.set(std::move(d)); }
    // The awaited future has completed: the task resumes at its next step.
    bool done = false;

    OutOfLine<Detail> detailStore;  // through detail() and editDetail(); public: Awaiting stays an aggregate

    bool operator==(const Awaiting&) const = default;
};

enum class TaskState { pending, running, done, cancelled };

struct Task {
    std::uint64_t id = 0;                    // address of the Task object (hex(id(task)))
    std::string runtime = "asyncio";         // "asyncio" or "trio": whose task it is
    std::string name;
    TaskState state = TaskState::pending;
    std::int64_t interpreterId = 0;
    std::optional<std::uint64_t> threadId;   // the thread running the task's loop
    std::uint64_t loop = 0;                  // asyncio: the event loop; trio: the Runner
    // Innermost first: from the innermost awaiting coroutine out to the task's
    // own coroutine; for a running task, the thread's live frames down to it.
    // Shared between tasks whose stacks are identical.
    std::shared_ptr<const Stack> stack;
    std::optional<Awaiting> awaiting;
    std::vector<std::uint64_t> awaitedBy;    // task ids
    std::optional<int> cancelRequests;       // Task.cancelling() (3.11+)
    bool cancelPending = false;              // cancel() called, not yet delivered
    bool handlingCancel = false;             // a CancelledError is being handled in its frames
    std::vector<std::uint64_t> holds;        // asyncio locks held through `async with`
    std::size_t omittedFrames = 0;           // coroutines beyond the cap, outermost, left out of `stack`
    std::optional<std::string> error;        // why the record is incomplete (it could not be read consistently)

    const Stack& frames() const;
    // Where the task waits, for one-line summaries: the innermost frame, or
    // for a trio task the innermost frame outside trio's and anyio's files
    // (every blocked trio task sits in the same trio internals), or its
    // outermost when all are theirs; nullptr if the stack is empty.
    const Frame* where() const;
};

struct Finding {
    std::string kind;                        // await-cycle, lock-deadlock, orphaned-wait, abandoned-lock,
                                             // cancel-ignored, cross-deadlock, loop-blocked-forever,
                                             // executor-starved
    std::vector<std::uint64_t> tasks;
    std::vector<std::uint64_t> objects;
    std::string message;
    std::vector<std::uint64_t> threads;      // threads in it (cross-deadlock, loop-blocked-forever, executor-starved)
};

struct PythonInfo {
    std::string version;        // "3.12.1"
    std::uint64_t hexversion = 0;
    std::string implementation = "cpython";
    std::string executable;     // /proc/PID/exe as the target names it
    std::string runtimeFile;    // the ELF file holding _PyRuntime
    bool sharedLibpython = false;
    std::string layoutSource;
};

struct Snapshot {
    std::int64_t pid = 0;
    double capturedAt = 0;           // unix seconds
    double durationMs = 0;           // time spent reading
    std::optional<double> pausedMs;  // with --pause: how long the target was stopped
    int attempts = 1;                // reads needed for a consistent result
    PythonInfo python;
    std::vector<Thread> threads;
    std::vector<Task> tasks;
    std::vector<Finding> findings;
    std::vector<std::string> warnings;
};

const char* taskStateName(TaskState s);

}  // namespace aioscope
