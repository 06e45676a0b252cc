#include "render/terminal_safe.h"

#include <cstdint>
#include <cstdio>
#include <utility>
#include <vector>

namespace aioscope::cli {

namespace {

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs,
// no surrogates, nothing above U+10FFFF), 0 if it is not one; sets cp.
std::size_t decode(std::string_view s, std::size_t i, std::uint32_t& cp) {
    auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    auto cont = [&](std::size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
    unsigned char c = b(0);
    if (c < 0x80) {
        cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF && cont(1)) {
        cp = (c & 0x1Fu) << 6 | (b(1) & 0x3Fu);
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF && cont(1) && cont(2)) {
        cp = (c & 0x0Fu) << 12 | (b(1) & 0x3Fu) << 6 | (b(2) & 0x3Fu);
        if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4 && cont(1) && cont(2) && cont(3)) {
        cp = (c & 0x07u) << 18 | (b(1) & 0x3Fu) << 12 | (b(2) & 0x3Fu) << 6 | (b(3) & 0x3Fu);
        if (cp < 0x10000 || cp > 0x10FFFF) return 0;
        return 4;
    }
    return 0;
}

// Code points a terminal acts on rather than shows: C1 controls (CSI, OSC,
// NEL...), and the bidirectional and line controls that reorder or break
// the text printed after them (the "Trojan Source" characters).
bool isInvisibleControl(std::uint32_t cp) {
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0x061C || cp == 0x200E || cp == 0x200F ||
           (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029;
}

void appendHexByte(std::string& out, unsigned char c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", c);
    out += buf;
}

}  // namespace

std::string terminalSafe(std::string_view s, std::size_t maxChars) {
    std::string out;
    out.reserve(s.size() < 256 ? s.size() : 256);
    std::size_t chars = 0;
    std::size_t i = 0;
    while (i < s.size()) {
        if (chars == maxChars) {
            out += "…(+" + std::to_string(s.size() - i) + " bytes)";
            break;
        }
        ++chars;
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        std::uint32_t cp = 0;
        std::size_t len = decode(s, i, cp);
        if (len == 0) {  // not UTF-8: one escaped byte, then resynchronize
            appendHexByte(out, c);
            ++i;
            continue;
        }
        if (cp == '\n') {
            out += "\\n";
        } else if (cp == '\r') {
            out += "\\r";
        } else if (cp == '\t') {
            out += "\\t";
        } else if (cp < 0x20 || cp == 0x7F) {
            appendHexByte(out, static_cast<unsigned char>(cp));
        } else if (isInvisibleControl(cp)) {
            char buf[12];
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
            out += buf;
        } else {
            out.append(s.substr(i, len));
        }
        i += len;
    }
    return out;
}

std::size_t displayChars(std::string_view safe) {
    std::size_t n = 0;
    for (char c : safe) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
}

std::string fitColumn(std::string_view safe, std::size_t width) {
    std::size_t n = displayChars(safe);
    if (n <= width) return std::string(safe) + std::string(width - n, ' ');
    if (width == 0) return {};
    // Keep width - 1 characters, then the ellipsis.
    std::size_t kept = 0, end = 0;
    while (end < safe.size()) {
        bool starts = (static_cast<unsigned char>(safe[end]) & 0xC0) != 0x80;
        if (starts && kept == width - 1) break;
        kept += starts;
        ++end;
    }
    return std::string(safe.substr(0, end)) + "…";
}

nlohmann::json terminalSafeJson(const nlohmann::json& value, std::size_t maxDepth) {
    using nlohmann::json;
    struct Item {
        const json* from;
        json* to;
        std::size_t depth;
    };
    json root;
    std::vector<Item> todo{{&value, &root, 0}};
    while (!todo.empty()) {
        Item it = todo.back();
        todo.pop_back();
        const json& from = *it.from;
        json& to = *it.to;
        if (from.is_string()) {
            to = terminalSafe(from.get_ref<const std::string&>());
        } else if (!from.is_structured()) {
            to = from;
        } else if (it.depth >= maxDepth) {
            to = "(nested too deep)";
        } else if (from.is_array()) {
            // Every slot exists before a pointer to one is taken: the array
            // is not resized afterwards, so the pointers stay valid.
            to = json::array();
            for (std::size_t k = 0; k < from.size(); ++k) to.push_back(nullptr);
            for (std::size_t k = 0; k < from.size(); ++k) todo.push_back({&from[k], &to[k], it.depth + 1});
        } else {
            to = json::object();  // map nodes do not move on insertion
            for (auto kv = from.begin(); kv != from.end(); ++kv) {
                json& slot = to[terminalSafe(kv.key())];
                todo.push_back({&kv.value(), &slot, it.depth + 1});
            }
        }
    }
    return root;
}

}  // namespace aioscope::cli
