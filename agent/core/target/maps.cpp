#include "target/maps.h"

#include <algorithm>
#include <charconv>

namespace aioscope {

namespace {

constexpr std::string_view kDeleted = " (deleted)";

std::string_view nextField(std::string_view& line) {
    std::size_t b = line.find_first_not_of(' ');
    if (b == std::string_view::npos) {
        line = {};
        return {};
    }
    line.remove_prefix(b);
    std::size_t e = line.find(' ');
    std::string_view f = line.substr(0, e);
    line.remove_prefix(e == std::string_view::npos ? line.size() : e);
    return f;
}

bool hex(std::string_view s, std::uint64_t& out) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
    return ec == std::errc() && p == s.data() + s.size();
}

bool dec(std::string_view s, std::uint64_t& out) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 10);
    return ec == std::errc() && p == s.data() + s.size();
}

std::optional<Mapping> parseLine(std::string_view line) {
    Mapping m;
    std::string_view range = nextField(line);
    std::size_t dash = range.find('-');
    if (dash == std::string_view::npos || !hex(range.substr(0, dash), m.start) ||
        !hex(range.substr(dash + 1), m.end) || m.end <= m.start) {
        return std::nullopt;
    }
    m.perms = std::string(nextField(line));
    if (m.perms.size() != 4) return std::nullopt;
    if (!hex(nextField(line), m.offset)) return std::nullopt;
    if (nextField(line).empty()) return std::nullopt;  // device
    if (!dec(nextField(line), m.inode)) return std::nullopt;
    std::size_t b = line.find_first_not_of(' ');
    if (b != std::string_view::npos) m.path = std::string(line.substr(b));
    return m;
}

}  // namespace

bool Mapping::deleted() const {
    return path.size() > kDeleted.size() && path.ends_with(kDeleted);
}

std::string Mapping::cleanPath() const {
    return deleted() ? path.substr(0, path.size() - kDeleted.size()) : path;
}

std::vector<Mapping> parseMaps(std::string_view text) {
    std::vector<Mapping> out;
    while (!text.empty()) {
        std::size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (auto m = parseLine(line)) out.push_back(std::move(*m));
    }
    return out;
}

std::optional<std::uint64_t> loadBias(const Mapping& m, const std::vector<LoadSegment>& loads) {
    // Segments are mapped from page-aligned file offsets, so a mapping may
    // start up to a page before p_offset; when a segment starts mid-page the
    // one before it covers that page too, so the latest-starting segment that
    // covers the mapping's offset is the one mapped there.
    const LoadSegment* best = nullptr;
    for (const auto& seg : loads) {
        std::uint64_t segPageOff = seg.offset & ~std::uint64_t{0xfff};
        if (m.offset >= segPageOff && m.offset < seg.offset + std::max(seg.filesz, std::uint64_t{1}) &&
            (!best || seg.offset > best->offset)) {
            best = &seg;
        }
    }
    if (!best) return std::nullopt;
    return m.start - m.offset - (best->vaddr - best->offset);
}

}  // namespace aioscope
