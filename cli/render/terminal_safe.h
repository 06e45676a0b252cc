// Strings from a target (task, thread, function and file names, type names,
// messages quoting them) and from `render`'s input are untrusted: printed
// raw, an escape sequence in a task name can retitle the terminal, clear the
// screen or overwrite what aioscope printed. Every such string goes through
// terminalSafe() before it reaches text output (docs/security.md, "Terminal
// output"). JSON output is not touched: its writer escapes control
// characters and keeps the exact value.
#pragma once

#include <cstddef>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace aioscope::cli {

inline constexpr std::size_t kNoLimit = std::numeric_limits<std::size_t>::max();

// `s` with everything a terminal would interpret shown as visible escapes:
//   C0 controls and DEL       \n \r \t, else \x1b, \x7f ...
//   C1 controls (U+0080-9F)   \u009b ...
//   bidi and line controls    \u202e, \u2066, \u200f, \u061c, \u2028 ... (they
//                             reorder or break what is printed after them)
//   bytes that are not UTF-8  \xff ... (invalid, overlong, surrogate, cut off)
// Everything else, including other non-ASCII text, is kept. A backslash is
// kept as is, so the function is idempotent (text already made safe, e.g.
// an event sanitized before it is rendered, is not escaped twice).
// Past `maxChars` characters the rest is cut and "…(+N bytes)" appended.
std::string terminalSafe(std::string_view s, std::size_t maxChars = kNoLimit);

// The number of characters (code points; a byte that is not UTF-8 counts as
// one) terminalSafe() keeps of `s`: for aligning columns.
std::size_t displayChars(std::string_view safe);

// `safe` (already terminalSafe) cut or padded with spaces to exactly `width`
// characters; a cut ends with "…".
std::string fitColumn(std::string_view safe, std::size_t width);

// A copy of a JSON value with every string (and object key) made safe, for
// text renderers of untrusted documents (the agents' events). Iterative: a
// hostile document nested a million levels deep is fine; levels below
// `maxDepth` are replaced by the string "(nested too deep)".
nlohmann::json terminalSafeJson(const nlohmann::json& value, std::size_t maxDepth = 64);

}  // namespace aioscope::cli
