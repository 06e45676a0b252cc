// Py_AsyncioModuleDebugOffsets: the offsets CPython 3.14+ publishes for its
// _asyncio Task in the `.AsyncioDebug` ELF section (of the _asyncio extension
// module, or of the interpreter when _asyncio is built in). Untrusted input:
// validated, and the Task fields it does not list are derived from the ones
// it does, with consistency checks.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "layout/layout.h"

namespace aioscope {

constexpr std::size_t kAsyncioDebugSize = 104;

// Fills layout.asyncio; returns a reason when the table is unusable (tasks
// are then reported as unavailable, stacks are unaffected).
std::optional<std::string> applyAsyncioDebugOffsets(Layout& layout, std::span<const std::uint8_t> blob);

}  // namespace aioscope
