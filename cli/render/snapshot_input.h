// `aioscope render`'s input: the text of a snapshot document, untrusted (it
// may come from anywhere). Nesting is checked before the JSON is parsed: a
// snapshot is at most 5 levels deep, and a document a million levels deep
// must be refused with a clear error, not crash a recursive consumer.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "model/snapshot.h"

namespace aioscope::cli {

// Deeper than any snapshot or agent event; far from any stack limit.
inline constexpr std::size_t kMaxJsonNesting = 64;

// True when no array or object in `text` is nested deeper than maxDepth
// (strings are skipped; the text need not be valid JSON). Linear, no
// recursion.
bool jsonNestingWithin(std::string_view text, std::size_t maxDepth = kMaxJsonNesting);

// Throws InspectError(bad_input) naming `source` and what is wrong.
Snapshot snapshotFromText(std::string_view text, const std::string& source);

}  // namespace aioscope::cli
