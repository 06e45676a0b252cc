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
    SnapshotReader(MemoryReader& memory, ResolvedRuntime runtime, PythonInfo python, pid_t pid);

    // Reads threads, tasks and findings; re-reads a live target up to
    // maxAttempts times while reads tear.
    Snapshot read(int maxAttempts = 3);

    const ResolvedRuntime& runtime() const { return m_runtime; }
    Remote& memory() { return m_mem; }
    Objects& objects() { return *m_objects; }
    FrameWalker& frames() { return *m_frames; }

    // One thread's stack and the task its event loop is running, if any:
    // what a stall report needs, without reading every task.
    struct ThreadReport {
        Thread thread;
        std::optional<Task> task;
    };
    std::optional<ThreadReport> readThread(std::uint64_t threadId);
    // Completes the layout with asyncio's Task offsets (on 3.14+ they are
    // read from the _asyncio module, once imported). True when they are known.
    bool loadAsyncioLayout();

    // Forget cached memory (call before reading a live process again).
    void forget();

private:
    void readOnce(Snapshot& snap, bool lastAttempt, bool& torn);
    void fillPythonInfo(Snapshot& snap);
    void ensureAsyncioLayout(Snapshot& snap, const InterpreterState& interp);

    ProcFs m_proc;
    PageCache m_cache;
    Remote m_mem;
    ResolvedRuntime m_runtime;
    PythonInfo m_python;
    std::unique_ptr<Objects> m_objects;
    std::unique_ptr<CodeReader> m_codes;
    std::unique_ptr<FrameWalker> m_frames;
};

}  // namespace aioscope
