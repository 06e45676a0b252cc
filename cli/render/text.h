// The human-readable form of a snapshot: a header, then per interpreter and
// thread its ids, name, GIL state and frames innermost first, traceback-like.
#pragma once

#include <ostream>

#include "model/snapshot.h"
#include "render/style.h"

namespace aioscope::cli {

// `table`: tasks as a ps-like table instead of trees (threads omitted).
void renderText(const Snapshot& snap, std::ostream& out, const Style& style, bool table = false);

}  // namespace aioscope::cli
