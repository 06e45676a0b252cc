// One thread's stack as it really was at one moment, from a thread that keeps
// running while it is read. Its frames are read one after the other; a frame
// that returns meanwhile can be reused by the next call before the walk gets
// past it, which would splice two moments (a function shown called by one it
// never calls). So after the walk:
//   - what links the frames read (each frame's `previous` and code, the
//     instruction of every frame but the innermost) is read again straight
//     from the target, and must hold;
//   - the thread's current frame is read again and followed outward until
//     it meets the frames read: those met are still on the thread's stack,
//     the ones above them returned during the read and are left out (the
//     stack shown is then the one of an instant later, whose innermost frame
//     had just been returned to).
// When neither holds (the thread switched to another call chain entirely),
// the stack is read again; after kAttempts it is reported with `error`.
#pragma once

#include "mem/reader.h"
#include "walk/frames.h"
#include "walk/interpreters.h"

namespace aioscope {

struct ThreadStackRead {
    WalkedStack stack;
    int rounds = 0;  // walks needed beyond the first
};

// `first`: the thread's current frame as read with its thread state (0: read it now).
ThreadStackRead readThreadStack(FrameWalker& frames, Remote& mem, MemoryReader& fresh, const Layout& L,
                                Addr tstate, Addr first, Witness* witness = nullptr);

}  // namespace aioscope
