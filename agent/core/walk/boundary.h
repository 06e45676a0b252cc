// Across the sync/async boundary: what the threads of an interpreter are
// blocked in and how they connect to its asyncio tasks.
//  - a thread-pool worker (concurrent.futures.thread) runs a _WorkItem,
//    found as `self` of its `run` frame; its Future is chained to the
//    asyncio future a task awaits (asyncio.futures._chain_future leaves a
//    closure over each in the other's done-callbacks);
//  - a thread blocked in threading/queue/concurrent.futures names the object
//    (the outermost library frame of the innermost run of them, with its
//    `self` or first argument); a C lock acquire, which has no frame, is
//    found from the calling frame's locals and `self`: the one lock there
//    that is taken and not by this thread;
//  - locks a thread holds: `with lock:` keeps the lock's __exit__ in the
//    live part of the frame's value stack (walk/live_stack.h) until the
//    block ends; RLock records its owner itself;
//  - Future.result() of run_coroutine_threadsafe names the task running the
//    coroutine, or says that its start is still queued on the loop.
// Everything is read from the snapshot's page cache, the same moment as the
// stacks; a thread whose facts tear gets none, with a warning.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "model/snapshot.h"
#include "remote/fields.h"
#include "walk/coroutines.h"
#include "walk/frames.h"
#include "walk/interpreters.h"
#include "walk/live_stack.h"
#include "walk/locals.h"
#include "walk/wakers.h"

namespace aioscope {

class BoundaryReader {
public:
    BoundaryReader(Objects& objects, FrameWalker& frames)
        : m_objects(objects),
          m_frames(frames),
          m_fields(objects),
          m_locals(objects),
          m_live(objects),
          m_wakers(objects),
          m_coroutines(frames, objects) {}

    // Annotates `threads` (waiting, worker, holds, loop) and the tasks'
    // executor waits (concurrent future, worker thread) of one interpreter.
    void read(const InterpreterState& interp, const std::unordered_map<std::uint64_t, WalkedStack>& stacks,
              std::vector<Thread*>& threads, std::vector<Task*>& tasks, std::vector<std::string>& warnings);

private:
    struct Classes {
        Addr cfFuture = 0;      // concurrent.futures._base.Future
        Addr condition = 0;     // threading.Condition
    };
    void readThread(Thread& t, const WalkedStack& stack);
    // Who references what tasks wait on (Awaiting::referencedBy).
    void referencedBy(std::vector<Thread*>& threads, std::vector<Task*>& tasks);
    void countSlots(const std::vector<Addr>& slots, std::unordered_map<Addr, std::int64_t>& out);
    std::optional<ThreadWait> knownWait(const std::vector<RawFrame>& raws);
    std::optional<ThreadWait> lockWait(const Thread& t, const RawFrame& frame);
    std::vector<Addr> heldLocks(const std::vector<RawFrame>& raws);
    bool isLock(Addr obj);
    bool isRLock(Addr obj);
    bool lockTaken(Addr lock);
    std::optional<std::uint64_t> rlockOwner(Addr lock);
    Addr self(const RawFrame& frame);
    // The object of `kind` among a function's closure cells.
    std::vector<Addr> closureObjects(Addr function);
    // asyncio future -> the concurrent future chained to it, and back.
    std::optional<Addr> concurrentOf(Addr asyncioFuture);
    std::optional<Addr> asyncioOf(Addr concurrentFuture);
    std::vector<Addr> dequeItems(Addr deque);
    std::vector<Addr> simpleQueueItems(Addr queue);
    bool startQueued(Addr loop, Addr concurrentFuture);

    Objects& m_objects;
    FrameWalker& m_frames;
    Fields m_fields;
    FrameLocals m_locals;
    LiveStack m_live;
    Wakers m_wakers;
    CoroutineWalker m_coroutines;
    Classes m_classes;
    std::unordered_map<std::uint64_t, std::vector<RawFrame>> m_raws;  // per thread
};

}  // namespace aioscope
