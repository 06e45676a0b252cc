// Sees every event loop start and stop: asyncio.events._set_running_loop
// (and the asyncio package's name for it) is wrapped with a C function that
// calls what it wrapped, then tells the hooks. asyncio's loops call it from
// run_forever, uvloop's too (it took the package's one at its own import),
// before their first callback: the Context.run hook learns that the thread
// runs a loop (context_run_hook.h), a loop of a kind not seen yet may be
// uvloop's, loaded since the last look (uvloop_hook.h), and the observers
// learn its class (observers.h).
//
// Each wrapper of ours calls the original it is bound to (its `self`):
// another tool may wrap ours, we detach (leaving theirs) and watch again over
// theirs; with one shared original, ours called theirs called ours again,
// without end.
#pragma once

namespace aioscope::agent {

// GIL held: wraps it, or finds ours still in place. False while asyncio is
// not imported (or the wrapper could not be put in place).
bool watchRunningLoops();
// GIL held: puts back what ours wrapped, where ours is still the one in place.
void unwatchRunningLoops();

}  // namespace aioscope::agent
