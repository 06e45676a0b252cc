// What a blocked trio task waits on, in the user's terms (sleep, an Event, a
// Lock, a memory channel, a readable socket, its nursery's children, a
// worker thread...): from the library functions its suspended stack sits in
// (layout/trio_layout.h), their `self` and arguments read by name.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "layout/trio_layout.h"
#include "walk/coroutines.h"
#include "walk/locals.h"

namespace aioscope {

struct TrioWaitTarget {
    std::string kind;
    Addr object = 0;                 // the Event, Lock, channel, Nursery, socket... waited on
    std::optional<std::int64_t> fd;  // wait-readable / wait-writable: the file descriptor
    std::size_t link = 0;            // index in the chain of the frame that named the wait
};

class TrioWaitClassifier {
public:
    TrioWaitClassifier(CoroutineWalker& walker, FrameLocals& locals, const TrioLayout& layout)
        : m_walker(walker), m_locals(locals), m_layout(layout) {}

    // nullopt when the chain does not end in a known library wait.
    std::optional<TrioWaitTarget> classify(const CoroutineChain& chain);

    // The directories of the libraries' files in this process.
    void setLibraryDirs(std::vector<std::string> dirs) { m_dirs = std::move(dirs); }
    bool isLibraryFile(const std::string& filename) const;

private:
    bool matches(const TrioWait& w, const CodeInfo& code, const RawFrame& frame);

    CoroutineWalker& m_walker;
    FrameLocals& m_locals;
    const TrioLayout& m_layout;
    std::vector<std::string> m_dirs;
};

}  // namespace aioscope
