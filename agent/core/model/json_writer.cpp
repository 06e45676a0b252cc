#include "model/json_writer.h"

#include <cmath>
#include <cstdio>

namespace aioscope {

void JsonWriter::newline() {
    m_out << '\n';
    for (std::size_t i = 0; i < m_first.size() * static_cast<std::size_t>(m_indent); ++i) m_out << ' ';
}

void JsonWriter::beforeValue() {
    if (m_afterKey) {
        m_afterKey = false;
        return;
    }
    if (!m_first.empty()) {
        if (!m_first.back()) m_out << ',';
        m_first.back() = false;
        newline();
    }
}

JsonWriter& JsonWriter::beginObject() {
    beforeValue();
    m_out << '{';
    m_first.push_back(true);
    return *this;
}

JsonWriter& JsonWriter::close(char bracket) {
    bool empty = m_first.back();
    m_first.pop_back();
    if (!empty) newline();
    m_out << bracket;
    return *this;
}

JsonWriter& JsonWriter::endObject() { return close('}'); }

JsonWriter& JsonWriter::beginArray() {
    beforeValue();
    m_out << '[';
    m_first.push_back(true);
    return *this;
}

JsonWriter& JsonWriter::endArray() { return close(']'); }

JsonWriter& JsonWriter::key(std::string_view k) {
    value(k);
    m_out << ": ";
    m_afterKey = true;
    return *this;
}

JsonWriter& JsonWriter::value(std::string_view s) {
    beforeValue();
    m_out << '"';
    for (char c : s) {
        switch (c) {
            case '"': m_out << "\\\""; break;
            case '\\': m_out << "\\\\"; break;
            case '\n': m_out << "\\n"; break;
            case '\r': m_out << "\\r"; break;
            case '\t': m_out << "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    m_out << buf;
                } else {
                    m_out << c;
                }
        }
    }
    m_out << '"';
    return *this;
}

JsonWriter& JsonWriter::value(std::int64_t v) {
    beforeValue();
    m_out << v;
    return *this;
}

JsonWriter& JsonWriter::value(std::uint64_t v) {
    beforeValue();
    m_out << v;
    return *this;
}

JsonWriter& JsonWriter::value(double v) {
    beforeValue();
    if (!std::isfinite(v)) {
        m_out << "null";
        return *this;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    m_out << buf;
    return *this;
}

JsonWriter& JsonWriter::value(bool v) {
    beforeValue();
    m_out << (v ? "true" : "false");
    return *this;
}

JsonWriter& JsonWriter::null() {
    beforeValue();
    m_out << "null";
    return *this;
}

JsonWriter& JsonWriter::hex(std::uint64_t address) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(address));
    return value(std::string_view(buf));
}

}  // namespace aioscope
