// _Py_DebugOffsets: the table of offsets CPython 3.13+ places at the start of
// _PyRuntime for out-of-process tools. Its own shape changes between minor
// versions, so each supported minor lists its fields in order. Everything in
// it comes from the target and is validated before use.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "layout/layout.h"

namespace aioscope {

inline constexpr char kDebugCookie[8] = {'x', 'd', 'e', 'b', 'u', 'g', 'p', 'y'};

struct DebugOffsetsSection {
    std::string name;
    std::vector<std::string> fields;  // in declaration order; every field is a u64
};

struct DebugOffsets {
    std::uint64_t version = 0;
    bool freeThreaded = false;
    std::map<std::string, std::uint64_t> values;  // "thread_state.current_frame" -> 72

    bool has(const std::string& key) const { return values.count(key) != 0; }
    std::uint64_t at(const std::string& key) const;  // throws InspectError if missing
};

// Field order of the table for `minor`; empty for versions without one.
const std::vector<DebugOffsetsSection>& debugOffsetsShape(int minor);

// Bytes to read at _PyRuntime for `minor` (cookie, version and flags included).
std::size_t debugOffsetsSize(int minor);

// Decodes and validates the table. Throws InspectError(unsupported_version)
// when the cookie, version or any offset is implausible.
DebugOffsets decodeDebugOffsets(int minor, std::span<const std::uint8_t> blob);

// Fills the layout fields the table publishes.
void applyDebugOffsets(Layout& layout, const DebugOffsets& offsets);

}  // namespace aioscope
