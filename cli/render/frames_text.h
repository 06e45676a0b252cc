// Frames as text lines, shared by thread stacks and task stacks: names
// escaped for the terminal, and a deep recursion folded the way Python's
// tracebacks fold it.
#pragma once

#include <ostream>
#include <string>

#include "model/snapshot.h"
#include "render/style.h"

namespace aioscope::cli {

// "qualname (file:line)", both made terminal-safe and cut at 200 characters.
std::string frameText(const Frame& f, const Style& st);

// One line per frame after `prefix`, innermost first. A frame repeated more
// than 3 times in a row is shown 3 times, then "[previous frame repeated N
// more times]": a recursion 30,000 calls deep prints 4 lines.
void renderFrames(std::ostream& out, const Stack& frames, const std::string& prefix, const Style& st);

}  // namespace aioscope::cli
