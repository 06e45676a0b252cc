// Who else could ever complete a blocked task's wait: the waited-on object's
// reference count minus the references the task's own suspended frames
// account for. Those include references through objects that only the task
// holds: the cell of a variable its abort callback captured, that callback's
// closure, the trap object trio's wait yields. An object counts as the task's
// own when every reference to it comes from the task's frames or from other
// such objects (a greatest fixpoint over a small, bounded graph). Weak
// references do not show in reference counts, so a weakly referenced object
// is never judged.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "layout/trio_layout.h"
#include "remote/fields.h"
#include "walk/coroutines.h"

namespace aioscope {

class OwnedReferences {
public:
    OwnedReferences(CoroutineWalker& walker, Fields& fields, const TrioLayout& layout)
        : m_walker(walker), m_fields(fields), m_layout(layout) {}

    // rc(obj) minus what the chain owns; `taskRefs`: objects the task object
    // itself references for its wait (its abort callback). nullopt when the
    // count cannot be judged (immortal, weakly referenced, unreadable).
    std::optional<std::int64_t> external(const CoroutineChain& chain, Addr obj, const std::vector<Addr>& taskRefs);

private:
    std::optional<std::int64_t> refcount(Addr obj);
    std::vector<Addr> edges(Addr obj);

    CoroutineWalker& m_walker;
    Fields& m_fields;
    const TrioLayout& m_layout;
};

}  // namespace aioscope
