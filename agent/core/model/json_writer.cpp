#include "model/json_writer.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace aioscope {

void JsonWriter::flush() {
    m_out.write(m_buf.data(), static_cast<std::streamsize>(m_buf.size()));
    m_buf.clear();
}

void JsonWriter::newline() {
    if (m_indent <= 0) return;  // compact: one line
    put('\n');
    m_buf.append((m_baseDepth + m_first.size()) * static_cast<std::size_t>(m_indent), ' ');
}

void JsonWriter::beforeValue() {
    if (m_afterKey) {
        m_afterKey = false;
        return;
    }
    if (!m_first.empty()) {
        if (!m_first.back()) put(',');
        m_first.back() = false;
        newline();
    }
}

JsonWriter& JsonWriter::beginObject() {
    beforeValue();
    put('{');
    m_first.push_back(true);
    return *this;
}

JsonWriter& JsonWriter::close(char bracket) {
    bool empty = m_first.back();
    m_first.pop_back();
    if (!empty) newline();
    put(bracket);
    return *this;
}

JsonWriter& JsonWriter::endObject() { return close('}'); }

JsonWriter& JsonWriter::beginArray() {
    beforeValue();
    put('[');
    m_first.push_back(true);
    return *this;
}

JsonWriter& JsonWriter::endArray() { return close(']'); }

JsonWriter& JsonWriter::key(std::string_view k) {
    // Keys are this program's own names: written straight when they need no
    // escape (a dump of 100,000 tasks writes five million of them).
    bool plain = std::all_of(k.begin(), k.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u >= 0x20 && u < 0x80 && c != '"' && c != '\\';
    });
    if (plain) {
        beforeValue();
        put('"');
        m_buf.append(k);
        m_buf.append("\": ", 3);
    } else {
        value(k);
        put(": ");
    }
    m_afterKey = true;
    return *this;
}

JsonWriter& JsonWriter::raw(std::string_view formatted) {
    beforeValue();
    put(formatted);
    return *this;
}

namespace {

// The length of the well-formed UTF-8 sequence at s[i], or 0.
std::size_t utf8Length(std::string_view s, std::size_t i) {
    auto byte = [&](std::size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
    unsigned c = byte(i);
    auto cont = [&](std::size_t k) { return (byte(k) & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned c1 = byte(i + 1);
        if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F)) return 0;  // overlong, surrogate
        return cont(i + 1) && cont(i + 2) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned c1 = byte(i + 1);
        if ((c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 > 0x8F)) return 0;
        return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    }
    return 0;
}

}  // namespace

JsonWriter& JsonWriter::value(std::string_view s) {
    beforeValue();
    put('"');
    std::size_t run = 0;  // start of the pending run of characters that need no escape
    for (std::size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            // Names come from the target (and the kernel cuts thread names
            // mid-character): a broken sequence becomes U+FFFD, so the
            // output is always valid JSON.
            std::size_t n = utf8Length(s, i);
            if (n) {
                i += n - 1;
                continue;
            }
            m_buf.append(s.substr(run, i - run));
            run = i + 1;
            put("\\ufffd");
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        m_buf.append(s.substr(run, i - run));
        run = i + 1;
        switch (c) {
            case '"': put("\\\""); break;
            case '\\': put("\\\\"); break;
            case '\n': put("\\n"); break;
            case '\r': put("\\r"); break;
            case '\t': put("\\t"); break;
            default: {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                put(buf);
            }
        }
    }
    put(s.substr(run));
    put('"');
    return *this;
}

JsonWriter& JsonWriter::value(std::int64_t v) {
    beforeValue();
    char buf[24];
    put(std::string_view(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf)));
    return *this;
}

JsonWriter& JsonWriter::value(std::uint64_t v) {
    beforeValue();
    char buf[24];
    put(std::string_view(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf)));
    return *this;
}

JsonWriter& JsonWriter::value(double v) {
    beforeValue();
    if (!std::isfinite(v)) {
        put("null");
        return *this;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    put(buf);
    return *this;
}

JsonWriter& JsonWriter::value(bool v) {
    beforeValue();
    put(v ? "true" : "false");
    return *this;
}

JsonWriter& JsonWriter::null() {
    beforeValue();
    put("null");
    return *this;
}

JsonWriter& JsonWriter::hex(std::uint64_t address) {
    // No escaping to do: written straight (snprintf was a tenth of a dump).
    beforeValue();
    char buf[24] = {'"', '0', 'x'};
    char* end = std::to_chars(buf + 3, buf + sizeof buf - 1, address, 16).ptr;
    *end++ = '"';
    put(std::string_view(buf, static_cast<std::size_t>(end - buf)));
    return *this;
}

}  // namespace aioscope
