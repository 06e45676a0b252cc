// What aioscope needs from an ELF file on disk, read with elfutils' libelf:
// its PT_LOAD segments, a few named sections and a few named symbols.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "target/maps.h"

namespace aioscope {

struct ElfSection {
    std::uint64_t addr = 0;
    std::uint64_t size = 0;
};

struct ElfFacts {
    bool executable = false;  // ET_EXEC (non-PIE): addresses are absolute
    std::vector<LoadSegment> loads;
    std::map<std::string, ElfSection> sections;        // only the wanted ones found
    std::map<std::string, std::uint64_t> symbols;      // only the wanted ones found
    std::uint64_t inode = 0;
};

// Reads the file at `path`; nullopt if it is not a readable 64-bit ELF file.
std::optional<ElfFacts> readElfFacts(const std::string& path,
                                     const std::vector<std::string>& wantedSections,
                                     const std::vector<std::string>& wantedSymbols);

}  // namespace aioscope
