// The property every text output must have (docs/security.md, "Terminal
// output"): nothing a terminal would act on. Shared by the unit tests and the
// fuzzers' oracles.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace aioscope::test {

// Offset of the first byte a terminal could interpret (a C0 control other
// than newline, DEL, a C1 control, a bidi or line control, a byte that is
// not UTF-8), or npos. ANSI colour sequences (ESC [ digits ; m) are allowed
// when `colors` is set: aioscope writes those itself.
inline std::size_t firstTerminalHazard(std::string_view s, bool colors = false) {
    std::size_t i = 0;
    while (i < s.size()) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '\n' || (c >= 0x20 && c < 0x7F)) {
            ++i;
            continue;
        }
        if (c == 0x1B && colors && i + 1 < s.size() && s[i + 1] == '[') {
            std::size_t j = i + 2;
            while (j < s.size() && ((s[j] >= '0' && s[j] <= '9') || s[j] == ';')) ++j;
            if (j < s.size() && s[j] == 'm') {
                i = j + 1;
                continue;
            }
            return i;
        }
        if (c < 0x80) return i;
        std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        if (len == 0 || c > 0xF4 || i + len > s.size()) return i;
        std::uint32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
        for (std::size_t k = 1; k < len; ++k) {
            unsigned char b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xC0) != 0x80) return i;
            cp = cp << 6 | (b & 0x3F);
        }
        bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
        bool bad = overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x80 && cp <= 0x9F) ||
                   cp == 0x061C || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
                   (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029;
        if (bad) return i;
        i += len;
    }
    return std::string_view::npos;
}

}  // namespace aioscope::test
