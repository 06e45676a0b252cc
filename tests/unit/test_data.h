// Access to the recorded interpreter data in tests/data (see its README.md).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "layout/debug_offsets.h"
#include "layout/tables.h"

namespace aioscope::test {

inline std::vector<std::uint8_t> loadData(const std::string& name) {
    std::string path = std::string(AIOSCOPE_TEST_DATA) + "/" + name;
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open test data " + path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The _Py_DebugOffsets blob recorded from a real 3.13/3.14/3.15 interpreter.
inline std::vector<std::uint8_t> debugOffsetsBlob(int minor) {
    switch (minor) {
        case 13: return loadData("debug_offsets_3.13.0.bin");
        case 14: return loadData("debug_offsets_3.14.10.bin");
        case 15: return loadData("debug_offsets_3.15.2.bin");
        default: throw std::logic_error("no recorded blob for 3." + std::to_string(minor));
    }
}

inline void putU64(std::vector<std::uint8_t>& blob, std::size_t pos, std::uint64_t v) {
    std::memcpy(blob.data() + pos, &v, 8);
}

// The complete layout the inspector would use for a recorded interpreter.
inline Layout recordedLayout(int minor) {
    Layout L = staticLayout(minor).value();
    if (usesDebugOffsets(minor)) applyDebugOffsets(L, decodeDebugOffsets(minor, debugOffsetsBlob(minor)));
    return L;
}

}  // namespace aioscope::test
