// /proc/PID/maps as plain values, and the ELF load-bias arithmetic that turns a
// file's virtual addresses into the target's addresses. Pure: unit-tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aioscope {

struct Mapping {
    std::uint64_t start = 0;
    std::uint64_t end = 0;
    std::string perms;  // e.g. "r-xp"
    std::uint64_t offset = 0;
    std::uint64_t inode = 0;
    std::string path;   // empty for anonymous mappings; may end in " (deleted)"

    bool fileBacked() const { return inode != 0 && !path.empty() && path[0] == '/'; }
    bool deleted() const;
    std::string cleanPath() const;  // path without a " (deleted)" suffix
};

// Lines that do not parse are skipped (the kernel format is stable; a torn
// read of the file is not).
std::vector<Mapping> parseMaps(std::string_view text);

struct LoadSegment {
    std::uint64_t vaddr = 0;
    std::uint64_t offset = 0;
    std::uint64_t filesz = 0;
    std::uint64_t memsz = 0;
};

// The bias to add to the file's virtual addresses, given one mapping of it.
// nullopt if no PT_LOAD covers the mapping's file offset.
std::optional<std::uint64_t> loadBias(const Mapping& m, const std::vector<LoadSegment>& loads);

}  // namespace aioscope
