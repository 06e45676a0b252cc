// Follows what a coroutine awaits: coroutine -> coroutine -> ... -> the object
// at the bottom (usually a FutureIter over a Future or Task). Generators
// (`yield from`), async generators (`async for` awaits an asend object,
// anext(), aclose()) and coroutine wrappers are followed too; they are
// recognised by their real types, never by a name a Python class could take.
// How "what does this frame await" is read differs per version
// (layout.yieldFrom); the result does not.
//
// Every link is checked against the one before it (the awaited coroutine has
// started, owns its frame, is suspended while its awaiter is, and is alive):
// a chain read while the program moved on would otherwise splice two
// moments together. A chain that does not hold together has `error` set.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "remote/witness.h"
#include "walk/frames.h"

namespace aioscope {

struct ChainLink {
    Addr gen = 0;
    RawFrame frame;
    int state = 0;
};

struct CoroutineChain {
    // The task's coroutine first, innermost last. Deeper than the cap
    // (limits::kMaxChain), the innermost links are kept and `omitted` counts
    // the outer ones left out.
    std::deque<ChainLink> links;
    std::size_t omitted = 0;
    Addr awaited = 0;        // what the innermost link awaits, if not a generator
    bool executing = false;  // the chain is running on some thread
    bool idleWrapper = false;  // the coroutine is an asend/athrow not started (or done)
    std::optional<std::string> error;
};

// True when one of the chain's frames is handling a CancelledError (inside an
// `except` or `finally` reached by one): the generator's saved exception.
bool handlingCancelledError(Objects& objects, const CoroutineChain& chain);

class CoroutineWalker {
public:
    explicit CoroutineWalker(FrameWalker& frames, Objects& objects) : m_frames(frames), m_objects(objects) {}

    // With `witness`, records every value the chain was built from.
    CoroutineChain follow(Addr coroutine, Witness* witness = nullptr);

    // The generator-like object (coroutine, generator, async generator) that
    // `obj` stands for, looking through wrappers; 0 if it is none. `idle` is
    // set when obj is an async generator's asend/athrow that is not running
    // its generator (not started, or finished).
    Addr unwrap(Addr obj, bool* idle = nullptr, Witness* witness = nullptr);

    // The values a suspended frame holds: local variables and its value stack.
    std::vector<Addr> frameSlots(const RawFrame& frame);
    // Only the value stack (what `with` and `await` left there).
    std::vector<Addr> stackSlots(const RawFrame& frame);

    Objects& objects() { return m_objects; }
    FrameWalker& frames() { return m_frames; }

private:
    std::optional<ChainLink> link(Addr gen, Witness* witness);
    Addr awaitee(const ChainLink& link, Witness* witness);
    std::vector<Addr> slots(Addr from, Addr to);

    FrameWalker& m_frames;
    Objects& m_objects;
};

}  // namespace aioscope
