// Finds the CPython runtime (_PyRuntime) in a live process: which mapped ELF
// file holds it (libpython or a static interpreter), where it was loaded, and
// what version the file says it is. Nothing here interprets interpreter
// structures; that is the layout's job.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mem/reader.h"
#include "target/proc.h"

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
    int minorFromName = -1;           // from a "python3.X" file name
};

// Throws InspectError(not_python) when no mapped file holds a CPython runtime.
RuntimeLocation locateRuntime(const ProcFs& proc, const std::vector<Mapping>& maps);

// Finds a section (or, failing that, a symbol) in any mapped ELF file whose
// name contains `fileHint`; returns its address in the target.
std::optional<Addr> findInMappedFiles(const ProcFs& proc, const std::vector<Mapping>& maps,
                                      const std::string& fileHint, const std::string& section,
                                      const std::vector<std::string>& symbols);

// "python3.12" / "libpython3.12.so.1.0" -> 12; -1 otherwise.
int minorFromFileName(const std::string& path);

}  // namespace aioscope
