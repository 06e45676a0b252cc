// Checks that a layout is complete and self-consistent for the models it
// selects: every field a walker will read is present and lies inside its
// structure. Run on every layout before the first read of the target.
#pragma once

#include <string>
#include <vector>

#include "layout/layout.h"

namespace aioscope {

// Empty when the layout is usable; otherwise one line per problem.
std::vector<std::string> validateLayout(const Layout& layout);

}  // namespace aioscope
