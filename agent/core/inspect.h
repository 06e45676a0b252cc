// `aioscope dump`'s pipeline for another live process:
//   locate (maps, ELF) -> layout (version table, debug offsets) -> read
//   (SnapshotReader) -> Snapshot (a plain value).
// Construction locates and validates; snapshot() may be called repeatedly.
#pragma once

#include <sys/types.h>

#include <memory>

#include "mem/process_reader.h"
#include "snapshot_reader.h"
#include "target/locate.h"

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

    const ResolvedRuntime& runtime() const { return m_reader->runtime(); }
    const RuntimeLocation& location() const { return m_location; }
    pid_t pid() const { return m_pid; }
    SnapshotReader& reader() { return *m_reader; }

private:
    pid_t m_pid;
    ProcessReader m_process;
    RuntimeLocation m_location;
    std::unique_ptr<SnapshotReader> m_reader;
};

}  // namespace aioscope
