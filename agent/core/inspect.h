// The inspection pipeline for one live process:
//   locate (maps, ELF) -> layout (version table, debug offsets) -> read
//   (walkers over object readers) -> Snapshot (a plain value).
// Construction locates and validates; snapshot() may be called repeatedly.
#pragma once

#include <sys/types.h>

#include <memory>

#include "layout/resolve.h"
#include "mem/page_cache.h"
#include "mem/process_reader.h"
#include "model/snapshot.h"
#include "remote/objects.h"
#include "target/locate.h"
#include "walk/code.h"
#include "walk/frames.h"

namespace aioscope {

struct InspectOptions {
    bool pause = false;   // stop the target for a consistent read
    int maxAttempts = 3;  // re-reads of a live target that tore
};

class Inspector {
public:
    // Throws InspectError for every reason the target cannot be read.
    explicit Inspector(pid_t pid);

    Snapshot snapshot(const InspectOptions& options);

    const ResolvedRuntime& runtime() const { return m_runtime; }
    const RuntimeLocation& location() const { return m_location; }

private:
    void readOnce(Snapshot& snap, bool lastAttempt, bool& torn);
    void fillPythonInfo(Snapshot& snap);
    void ensureAsyncioLayout(Snapshot& snap);

    ProcFs m_proc;
    ProcessReader m_reader;
    PageCache m_cache;
    Remote m_mem;
    RuntimeLocation m_location;
    ResolvedRuntime m_runtime;
    std::unique_ptr<Objects> m_objects;
    std::unique_ptr<CodeReader> m_codes;
    std::unique_ptr<FrameWalker> m_frames;
};

}  // namespace aioscope
