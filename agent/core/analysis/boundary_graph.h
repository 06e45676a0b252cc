// One wait-for graph across tasks and threads, and the deadlocks only it
// shows:
//   cross-deadlock        a cycle mixing task and thread edges (a task
//                         awaiting executor work whose thread waits on a lock
//                         held by a thread waiting in Future.result() for a
//                         task that awaits the first...), named step by step;
//   thread-deadlock       threads waiting on each other's locks or joins;
//   loop-blocked-forever  an event loop's thread blocked in a wait that only
//                         that loop could complete (Future.result() of
//                         run_coroutine_threadsafe on its own loop);
//   executor-starved      every worker of a thread pool busy, each waiting on
//                         something that waits for tasks queued behind them.
// Edges (each one a definite wait): task -> task as in findings.h; task ->
// the worker thread running the executor future it awaits; task -> its loop's
// thread when that thread is blocked in a synchronous wait; thread -> the
// thread owning the lock it waits for, or the thread it joins; thread -> the
// task a run_coroutine_threadsafe future it waits on is chained to, or the
// thread whose loop has that coroutine's start queued.
#pragma once

#include <vector>

#include "model/snapshot.h"

namespace aioscope {

std::vector<Finding> analyzeBoundary(const Snapshot& snap);

}  // namespace aioscope
