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
#include "target/runtime_location.h"

namespace aioscope {

// Throws InspectError(not_python) when no mapped file holds a CPython runtime.
RuntimeLocation locateRuntime(const ProcFs& proc, const std::vector<Mapping>& maps);

// Every mapped file that holds a CPython runtime, likeliest first. A process
// can map one that never ran: a static interpreter whose program loaded a
// libpython with ctypes, an embedder that dlopens a second copy.
std::vector<RuntimeLocation> locateRuntimes(const ProcFs& proc, const std::vector<Mapping>& maps);

// "python3.12" / "libpython3.12.so.1.0" -> 12; -1 otherwise.
int minorFromFileName(const std::string& path);

}  // namespace aioscope
