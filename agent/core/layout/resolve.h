// Decides which CPython a located runtime is and builds its validated layout:
// the version from _Py_DebugOffsets, Py_Version or the file name; the table for
// that version; the target's own debug offsets on 3.13+.
#pragma once

#include "layout/layout.h"
#include "mem/remote.h"
#include "target/runtime_location.h"

namespace aioscope {

struct ResolvedRuntime {
    Addr runtime = 0;
    PythonVersion version;
    Addr hashSecret = 0;  // _Py_HashSecret; 0: not found (dict lookups then scan)
    Layout layout;
};

// Throws InspectError: unsupported_version (too old/new, free-threaded, bad
// table), not_python (no candidate holds an initialized runtime).
ResolvedRuntime resolveRuntime(Remote& mem, const RuntimeLocation& loc);

}  // namespace aioscope
