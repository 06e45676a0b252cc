// What a suspended task holds and references, read from its frames:
//  - the asyncio locks/semaphores it is inside `async with` of: `async with`
//    leaves the lock's __aexit__ on the frame's value stack until the block
//    ends, so it is there in every frame suspended inside the block;
//  - how many references to an object its own frames hold, so that an object
//    referenced by nothing else can be recognised (nobody can ever set it).
#pragma once

#include <cstdint>
#include <vector>

#include "walk/coroutines.h"

namespace aioscope {

class Holdings {
public:
    explicit Holdings(CoroutineWalker& walker) : m_walker(walker), m_objects(walker.objects()) {}

    // asyncio Lock / Semaphore / BoundedSemaphore / Condition objects held.
    std::vector<Addr> heldLocks(const CoroutineChain& chain);

    // Strong references to `obj` from the chain's frames (locals, value
    // stacks, cells) and from FutureIters the chain awaits through.
    std::int64_t referencesFromChain(const CoroutineChain& chain, Addr obj);

    // The object's reference count, or nullopt if implausible (immortal).
    std::optional<std::int64_t> refcount(Addr obj);

private:
    bool isLockExit(Addr function);

    CoroutineWalker& m_walker;
    Objects& m_objects;
};

}  // namespace aioscope
