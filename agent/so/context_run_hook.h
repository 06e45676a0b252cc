// Times event-loop callbacks at contextvars.Context.run, the one C function
// every callback of asyncio's loop runs through (asyncio.events.Handle._run
// calls self._context.run(callback, *args)), and through which uvloop calls
// a protocol's methods. The "run" entry of CPython's method table for Context
// is pointed at a C wrapper that calls the real function directly: no Python
// function of ours in between, so a callback costs two clock reads and a few
// stores more, not a second entry into the interpreter (what wrapping
// Handle._run with a C function costs: the reason for this hook).
//
// Context.run is also called outside loops (asyncio.to_thread runs its
// function through ctx.run in a worker thread; trio steps its tasks through
// it): the wrapper times a call only on a thread where an asyncio loop is
// running (running_loop_watch.h marks the thread; a thread seen first after
// the hooks went in asks, and every thread asks again every 100 ms), and
// only the outermost call there (a callback's own ctx.run calls are part of
// it). On a thread where uvloop's handles ran, it times the call as a
// stretch of its own, nested in the handle (uvloop_hook.h).
//
// The entry stays ours for the life of the process (a pass-through once the
// stall hook is uninstalled): a call entered through ours returns through it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pyapi.h"

namespace aioscope::agent {

// GIL held. "" once Context.run is ours (now or before), else why not.
std::string patchContextRun();

// Whether asyncio's callbacks are timed here (rather than by the fallback
// wrapper of Handle._run). GIL held.
void timeAsyncioCallbacks(bool on);
bool timingAsyncioCallbacks();

// From the wrapper of asyncio._set_running_loop, GIL held: a loop starts
// (true) or stops (false) on the calling thread.
void markLoopThread(bool running);
// At each install: what the threads were is learnt again (a loop may have
// started or stopped while the wrapper of _set_running_loop was out).
void forgetLoopThreads();
// Any thread, no GIL (the agent's, every 100 ms): every thread asks again
// at its next call. A loop started or stopped without the wrapper of
// _set_running_loop (replaced by a library that does not call it) is known
// a tenth of a second later at most, and such a start is counted: the
// loop's callbacks were untimed until then.
void recheckLoopThreads();
// How many such starts there were, and in `threads` the thread
// (pthread_self) of each one after the first `since`: the last kUnseenKept
// of them at most (the agent asks every tick; more starts than that within
// one tick are counted, not named).
constexpr std::uint32_t kUnseenKept = 8;
std::uint32_t unseenLoopStarts(std::uint32_t since, std::vector<std::uint64_t>* threads);
// GIL held: whether an asyncio loop runs on the calling thread.
bool onLoopThread();

// From uvloop's GOT wrappers: uvloop's handles run on this thread.
void markUvloopThread();

}  // namespace aioscope::agent
