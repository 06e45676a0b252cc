// Reads snapshots of one interpreter runtime through any MemoryReader: the
// read -> model half of the pipeline, shared by `aioscope dump` (another
// process) and the injected agent (its own process). It knows where the
// runtime is and how it is laid out; it does not know how that was found.
#pragma once

#include <sys/types.h>

#include <memory>

#include "layout/resolve.h"
#include "mem/page_cache.h"
#include "model/snapshot.h"
#include "remote/objects.h"
#include "target/proc.h"
#include "walk/code.h"
#include "walk/frames.h"
#include "walk/interpreters.h"

namespace aioscope {

class SnapshotReader {
public:
    // `python` describes the interpreter for the snapshot header.
    // `cachePages` bounds the page cache (4 KiB each): the agent, living
    // in the program it reads, keeps a smaller one than dump. Dump's 16 MiB:
    // at 100,000 tasks, 32 MiB read 11% fewer pages, no faster, and held 16
    // MB more at the peak (tests/bench/tasks_100k.py).
    SnapshotReader(MemoryReader& memory, ResolvedRuntime runtime, PythonInfo python, pid_t pid,
                   std::size_t cachePages = 4096);

    // Reads threads, tasks and findings. Every thread's stack and every
    // task is checked and re-read while it tears (docs/how-it-works.md
    // #consistency); what stays torn is marked as such, with a warning. A
    // read that fails as a whole is retried up to maxAttempts times.
    Snapshot read(int maxAttempts = 3);

    // read(), and when it finds anything (tasks that can never finish, an
    // ignored cancellation), a second read:
    // only findings seen in both are reported (a live process can look stuck
    // for the instant of one read). `confirmed` says whether a second read
    // was made. The snapshot returned is the second one.
    Snapshot readConfirmed(int maxAttempts = 3, bool* confirmed = nullptr);

    const ResolvedRuntime& runtime() const { return m_runtime; }
    Remote& memory() { return m_mem; }
    // The target past the page cache (for a second look).
    MemoryReader& freshReader() { return m_raw; }
    Objects& objects() { return *m_objects; }
    FrameWalker& frames() { return *m_frames; }

    // One thread's stack and the task its event loop is running, if any:
    // what a stall report needs, without reading every task. Never throws
    // BadRead: nullopt when the thread is not found or the read tore.
    struct ThreadReport {
        Thread thread;
        std::optional<Task> task;
        std::optional<std::string> taskError;  // why no task could be read, when one may have been running
        std::vector<Addr> frameAddrs;  // of thread.frames, innermost first
    };
    // withTask: also the asyncio task running there (none in a program without asyncio).
    std::optional<ThreadReport> readThread(std::uint64_t threadId, bool withTask = true);
    // The trio task at `task` (one a step hook saw start on `threadId`,
    // whose stack is `threadFrames`): its name, and its frames down to its
    // own coroutine. nullopt if it does not read as a trio Task.
    std::optional<Task> readTrioTask(Addr task, std::uint64_t threadId, const Stack& threadFrames);
    // Every thread's stack (without tasks): the agent looks for threads
    // inside an event-loop callback.
    std::vector<ThreadReport> readAllThreads();
    // Completes the layout with asyncio's Task offsets (on 3.14+ they are
    // read from the _asyncio module, once imported). True when they are known.
    bool loadAsyncioLayout();

    // Forget cached memory (call before reading a live process again).
    void forget();
    // Whether the cache's memory is given back after each read: for a
    // one-shot reader (dump) rather than one that reads again and again
    // (the agent, which keeps it to avoid faulting it in every time).
    void releaseAfterRead(bool release) { m_release = release; }

private:
    // One read; throws BadRead when what it stands on (the interpreters, a
    // thread list) would not read consistently.
    // lastAttempt: what cannot be confirmed is dropped with a warning
    // instead of tearing the read (the trio reader's checks).
    void readOnce(Snapshot& snap, bool lastAttempt);
    // One thread's stack, walked again while what ties it together changes
    // under the walk; nullopt error when it holds, else why not.
    WalkedStack readStack(const ThreadState& ts, int& rounds);
    // Fills what `thread` is blocked in (walk/boundary.h), reading the other
    // threads' stacks for the holders of what it waits on.
    void boundaryOf(Thread& thread, const InterpreterState& interp, const std::vector<ThreadState>& threads,
                    const WalkedStack& stack);
    std::vector<ThreadReport> readThreadReports(std::optional<std::uint64_t> only, bool withTask);
    void fillPythonInfo(Snapshot& snap);
    void ensureAsyncioLayout(Snapshot& snap, const InterpreterState& interp);

    ProcFs m_proc;
    MemoryReader& m_raw;  // the target, past the cache: for second looks
    PageCache m_cache;
    bool m_release = false;
    static constexpr std::size_t kKeepFrames = 1024;  // 4 MiB
    Remote m_mem;
    ResolvedRuntime m_runtime;
    PythonInfo m_python;
    std::unique_ptr<Objects> m_objects;
    std::unique_ptr<CodeReader> m_codes;
    std::unique_ptr<FrameWalker> m_frames;
};

}  // namespace aioscope
