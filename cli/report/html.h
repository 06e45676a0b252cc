// The self-contained report: viewer/index.html with its style sheet and
// scripts inlined and the data embedded as JSON in a
// <script type="application/json"> element. Everything in the data comes from
// target processes: it is written so that nothing in it can end that element
// (a task named "</script>") or be read as markup.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <string_view>

namespace aioscope::cli::report {

// JSON text made safe inside a <script> element: <, >, & and the line
// separators U+2028/U+2029 written as \u escapes (they only ever occur
// inside JSON strings, where the escape means the same character).
std::string escapeForScript(std::string_view jsonText);

// The viewer page with the embedded data `data` (already packed or not).
void writeReportHtml(std::ostream& out, const nlohmann::json& data);

}  // namespace aioscope::cli::report
