// The runtime's interpreters and each interpreter's thread states, as linked
// lists in target memory: bounded, cycle-checked.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "layout/layout.h"
#include "mem/remote.h"
#include "remote/witness.h"

namespace aioscope {

struct InterpreterState {
    Addr addr = 0;
    std::int64_t id = 0;
    Addr sysdict = 0;
    Addr modules = 0;
    Addr gilHolder = 0;  // thread state holding the GIL, 0 if unlocked
    Addr threadsMain = 0;  // 3.13+: interp->threads.main, 0 where unknown
};

struct ThreadState {
    Addr addr = 0;
    std::uint64_t threadId = 0;
    std::optional<std::int64_t> nativeId;
    Addr dict = 0;
    Addr currentFrame = 0;
};

// Throws BadRead on a torn or looping list.
std::vector<InterpreterState> readInterpreters(Remote& mem, const Layout& L, Addr runtime);

// The interpreter's thread states, newest first. Thread states are freed
// while the list is read: each must point back at its interpreter, and with
// `witness` the links followed (head, every next, every back-pointer) are
// recorded so the caller can check the list still reads the same. Throws
// BadRead on a torn or looping list, or one that lacks the main thread
// (3.13+, where the interpreter names it). States not yet bound to a thread
// (thread id 0, a thread being started) are skipped: no frames, no name.
std::vector<ThreadState> readThreads(Remote& mem, const Layout& L, const InterpreterState& interp,
                                     Witness* witness = nullptr);

// The thread's innermost frame now (tstate->current_frame, or through its
// cframe on 3.11/3.12). Throws BadRead if unreadable.
Addr readCurrentFrame(Remote& mem, const Layout& L, Addr tstate);

// readThreads, again until the list reads the same twice (the second time
// straight from the target): a thread exiting during the walk leaves a freed
// state behind whose `next` may read as the end of the list.
std::vector<ThreadState> readThreadsConsistent(Remote& mem, MemoryReader& fresh, const Layout& L,
                                               const InterpreterState& interp, int attempts = 8);

}  // namespace aioscope
