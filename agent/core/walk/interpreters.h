// The runtime's interpreters and each interpreter's thread states, as linked
// lists in target memory: bounded, cycle-checked.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "layout/layout.h"
#include "mem/remote.h"

namespace aioscope {

struct InterpreterState {
    Addr addr = 0;
    std::int64_t id = 0;
    Addr sysdict = 0;
    Addr modules = 0;
    Addr gilHolder = 0;  // thread state holding the GIL, 0 if unlocked
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
std::vector<ThreadState> readThreads(Remote& mem, const Layout& L, const InterpreterState& interp);

}  // namespace aioscope
