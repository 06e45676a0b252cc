#include "remote/linetable.h"

namespace aioscope {

std::optional<int> lineFromPep626(std::span<const std::uint8_t> table, int firstLine,
                                  std::int64_t byteOffset) {
    if (byteOffset < 0) return firstLine;
    std::int64_t line = firstLine;
    std::int64_t end = 0;
    for (std::size_t i = 0; i + 1 < table.size(); i += 2) {
        std::int64_t start = end;
        end += table[i];
        auto ldelta = static_cast<std::int8_t>(table[i + 1]);
        bool noLine = ldelta == -128;
        if (!noLine) line += ldelta;
        if (start == end) continue;
        if (byteOffset >= start && byteOffset < end) {
            if (noLine || line < 0) return std::nullopt;
            return static_cast<int>(line);
        }
    }
    return std::nullopt;
}

namespace {

class Cursor {
public:
    explicit Cursor(std::span<const std::uint8_t> t) : m_t(t) {}
    bool done() const { return m_i >= m_t.size(); }
    bool byte(std::uint8_t& b) {
        if (m_i >= m_t.size()) return false;
        b = m_t[m_i++];
        return true;
    }
    bool skip(std::size_t n) {
        if (m_t.size() - m_i < n) return false;
        m_i += n;
        return true;
    }
    bool varint(std::uint64_t& out) {
        std::uint8_t b;
        if (!byte(b)) return false;
        out = b & 63;
        unsigned shift = 0;
        while (b & 64) {
            if (!byte(b) || shift > 56) return false;
            shift += 6;
            out |= static_cast<std::uint64_t>(b & 63) << shift;
        }
        return true;
    }
    bool svarint(std::int64_t& out) {
        std::uint64_t u;
        if (!varint(u)) return false;
        out = (u & 1) ? -static_cast<std::int64_t>(u >> 1) : static_cast<std::int64_t>(u >> 1);
        return true;
    }

private:
    std::span<const std::uint8_t> m_t;
    std::size_t m_i = 0;
};

}  // namespace

std::optional<int> lineFromLocations(std::span<const std::uint8_t> table, int firstLine,
                                     std::int64_t codeUnit) {
    if (codeUnit < 0) return firstLine;
    std::int64_t line = firstLine;
    std::int64_t addr = 0;
    Cursor c(table);
    while (!c.done()) {
        std::uint8_t first;
        c.byte(first);
        if (!(first & 0x80)) return std::nullopt;  // not the start of an entry
        int code = (first >> 3) & 15;
        std::int64_t length = (first & 7) + 1;
        std::int64_t delta = 0;
        bool ok = true;
        if (code == 15) {
            // NONE: no location for these instructions
        } else if (code == 14) {
            std::uint64_t ignore;
            ok = c.svarint(delta) && c.varint(ignore) && c.varint(ignore) && c.varint(ignore);
        } else if (code == 13) {
            ok = c.svarint(delta);
        } else if (code >= 10) {
            delta = code - 10;
            ok = c.skip(2);
        } else {
            ok = c.skip(1);
        }
        if (!ok) return std::nullopt;
        line += delta;
        if (codeUnit >= addr && codeUnit < addr + length) {
            if (code == 15 || line < 0) return std::nullopt;
            return static_cast<int>(line);
        }
        addr += length;
    }
    return std::nullopt;
}

}  // namespace aioscope
