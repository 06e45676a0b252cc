// Waiting for a thread this process traces (ptrace) without ever reaping
// its parent's child: `aioscope run` is also the real parent of the program
// it traces, and a wait that collects the program's exit status by mistake
// leaves run waiting for an exit it can no longer see (a hang).
#pragma once

#include <sys/types.h>

#include <chrono>

namespace aioscope {

enum class TraceState {
    running,  // nothing to report yet
    stopped,  // a ptrace stop, consumed: `status` is waitpid's
    gone,     // exited, or not traced by us any more
};

// Never blocks. An exit is only looked at (WNOWAIT) when `tid` leads a
// process whose real parent is us; any other traced thread's exit is
// collected (only its tracer can, and an uncollected thread would keep its
// process from ever being reported to its own parent).
TraceState pollTraced(pid_t tid, int& status);

// pollTraced() until `tid` is no longer running or `within` has passed:
// a deadline on the clock, never a count of 1 ms sleeps (on a busy machine
// each sleep takes longer, and a "1 s" wait lasted seconds).
TraceState awaitStop(pid_t tid, int& status, std::chrono::milliseconds within);

// For a stop `status`: the signal to deliver when the thread is released,
// if the stop was a signal on its way in (a signal-delivery-stop) rather
// than our interrupt; else 0.
int signalOnRelease(int status);

}  // namespace aioscope
