// A small streaming JSON writer: snapshots of 100,000 tasks are written
// without building a document in memory. Output is indented like
// nlohmann::json::dump(2) and is valid UTF-8 (strings are UTF-8 already).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace aioscope {

class JsonWriter {
public:
    // indent 0 writes everything on one line (JSON Lines).
    explicit JsonWriter(std::ostream& out, int indent = 2) : m_out(out), m_indent(indent) {}
    // A writer of values to be copied into `outer` with raw(): indented as
    // if written by `outer` where it is now.
    JsonWriter(std::ostream& out, const JsonWriter& outer)
        : m_out(out), m_indent(outer.m_indent), m_baseDepth(outer.m_baseDepth + outer.m_first.size()) {}
    ~JsonWriter() { flush(); }
    JsonWriter(const JsonWriter&) = delete;
    JsonWriter& operator=(const JsonWriter&) = delete;

    // Writes what is buffered to the stream (also done on destruction).
    void flush();

    JsonWriter& beginObject();
    JsonWriter& endObject();
    JsonWriter& beginArray();
    JsonWriter& endArray();
    JsonWriter& key(std::string_view k);

    JsonWriter& value(std::string_view s);
    JsonWriter& value(const char* s) { return value(std::string_view(s)); }
    JsonWriter& value(std::int64_t v);
    JsonWriter& value(std::uint64_t v);
    JsonWriter& value(int v) { return value(static_cast<std::int64_t>(v)); }
    JsonWriter& value(double v);
    JsonWriter& value(bool v);
    JsonWriter& null();
    JsonWriter& hex(std::uint64_t address);  // "0x7f..."
    // A value written by a writer made for this one (see above), as is: a
    // stack that 50,000 tasks share is formatted once.
    JsonWriter& raw(std::string_view formatted);

    template <class T>
    JsonWriter& value(const std::optional<T>& v) {
        return v ? value(*v) : null();
    }

private:
    void beforeValue();
    JsonWriter& close(char bracket);
    void put(char c) { m_buf.push_back(c); }
    void put(std::string_view s) {
        m_buf.append(s);
        if (m_buf.size() > (1 << 16)) flush();
    }
    void newline();

    std::ostream& m_out;
    std::string m_buf;
    int m_indent;
    std::size_t m_baseDepth = 0;  // containers open around this writer's output
    std::vector<bool> m_first;  // per open container: no element written yet
    bool m_afterKey = false;
};

}  // namespace aioscope
