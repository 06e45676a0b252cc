// Decoders from an instruction offset to a source line, for both line-table
// formats: PEP 626 (3.10 co_linetable) and the location table (3.11+). Pure:
// they take bytes and never read the target. Malformed tables yield no line.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace aioscope {

// byteOffset: offset of the instruction in co_code (f_lasti * 2 on 3.10).
std::optional<int> lineFromPep626(std::span<const std::uint8_t> table, int firstLine,
                                  std::int64_t byteOffset);

// codeUnit: index of the instruction in 2-byte code units.
std::optional<int> lineFromLocations(std::span<const std::uint8_t> table, int firstLine,
                                     std::int64_t codeUnit);

}  // namespace aioscope
