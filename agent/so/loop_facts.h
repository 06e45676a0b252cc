// What the process's event loops are, read from memory (the agent's thread,
// no GIL): whether asyncio is imported, whether trio is, and the class of
// every running loop. A loop that is not an asyncio BaseEventLoop (uvloop's
// Loop) runs its callbacks without asyncio.events.Handle._run, so the stall
// hook cannot time them: the capabilities must say so.
#pragma once

#include <string>

#include "snapshot_reader.h"

namespace aioscope::agent {

struct LoopFacts {
    bool asyncioImported = false;
    bool trio = false;
    // A running loop is uvloop's (uvloop.loop.Loop or a subclass).
    bool uvloop = false;
    // The class of the running loops when none of them is a BaseEventLoop
    // or uvloop's.
    std::string foreignLoop;
};

// Throws nothing: what cannot be read is left at its default.
LoopFacts readLoopFacts(SnapshotReader& reader);

}  // namespace aioscope::agent
