// Follows what a coroutine awaits: coroutine -> coroutine -> ... -> the object
// at the bottom (usually a FutureIter over a Future or Task). Generators
// (`yield from`), async generators (`async for` awaits an asend object) and
// coroutine wrappers are followed too. How "what does this frame await" is
// read differs per version (layout.yieldFrom); the result does not.
#pragma once

#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "walk/frames.h"

namespace aioscope {

struct ChainLink {
    Addr gen = 0;
    RawFrame frame;
    int state = 0;
};

struct CoroutineChain {
    std::vector<ChainLink> links;  // the task's coroutine first, innermost last
    Addr awaited = 0;              // what the innermost link awaits, if not a generator
    bool executing = false;        // the innermost link is running on some thread
    std::optional<std::string> error;
};

// True when one of the chain's frames is handling a CancelledError (inside an
// `except` or `finally` reached by one): the generator's saved exception.
bool handlingCancelledError(Objects& objects, const CoroutineChain& chain);

class CoroutineWalker {
public:
    explicit CoroutineWalker(FrameWalker& frames, Objects& objects) : m_frames(frames), m_objects(objects) {}

    CoroutineChain follow(Addr coroutine);

    // The generator-like object (coroutine, generator, async generator) that
    // `obj` stands for, looking through wrappers; 0 if it is none.
    Addr unwrap(Addr obj);

    // The values a suspended frame holds: local variables and its value stack.
    std::vector<Addr> frameSlots(const RawFrame& frame);
    // Only the value stack (what `with` and `await` left there).
    std::vector<Addr> stackSlots(const RawFrame& frame);

    Objects& objects() { return m_objects; }
    FrameWalker& frames() { return m_frames; }

private:
    std::optional<ChainLink> link(Addr gen);
    Addr awaitee(const ChainLink& link);
    std::vector<Addr> slots(Addr from, Addr to);

    FrameWalker& m_frames;
    Objects& m_objects;
};

}  // namespace aioscope
