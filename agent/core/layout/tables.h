// Per-version layout tables. 3.10–3.12 are complete static tables; for 3.13+
// the table holds only what _Py_DebugOffsets does not publish, and
// debug_offsets.h fills in the rest from the target itself.
#pragma once

#include <optional>

#include "layout/layout.h"

namespace aioscope {

// nullopt for a version aioscope does not support.
std::optional<Layout> staticLayout(int minor);

// True when the version publishes _Py_DebugOffsets that must be applied.
bool usesDebugOffsets(int minor);

constexpr int kOldestMinor = 10;
constexpr int kNewestMinor = 15;

}  // namespace aioscope
