// Where a CPython runtime is in a process and what version it claims to be:
// plain values, produced by locate.h (another process, from its ELF files) or
// by the agent (its own process, from the dynamic linker).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mem/reader.h"

namespace aioscope {

struct PythonVersion {
    int major = 0;
    int minor = 0;
    int micro = -1;       // -1 until known (3.10 publishes no Py_Version)
    std::uint64_t hex = 0;

    static PythonVersion fromHex(std::uint64_t hex);
    std::string str() const;  // "3.12.1", or "3.10" when the micro is unknown
};

struct RuntimeLocation {
    std::string file;                 // the file holding _PyRuntime, as the target names it
    std::string openedAs;             // the path we opened it through
    std::string executable;           // /proc/PID/exe
    bool sharedLibpython = false;
    std::vector<Addr> candidates;     // one per load of the file (duplicate loads exist)
    std::optional<Addr> pyVersion;    // address of Py_Version (3.11+)
    // Where _Py_HashSecret is, relative to the runtime (the same file holds
    // both: one offset serves every load of it).
    std::optional<std::int64_t> hashSecretFromRuntime;
    int minorFromName = -1;           // from a "python3.X" file name
};

}  // namespace aioscope
