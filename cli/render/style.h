// Terminal styling: ANSI colours only when writing to a terminal (or when
// asked), never in files or pipes; NO_COLOR is honoured.
#pragma once

#include <string>
#include <string_view>

namespace aioscope::cli {

enum class ColorMode { automatic, always, never };

class Style {
public:
    explicit Style(bool color) : m_color(color) {}
    static Style forStdout(ColorMode mode);

    std::string bold(std::string_view s) const { return wrap("1", s); }
    std::string dim(std::string_view s) const { return wrap("2", s); }
    std::string red(std::string_view s) const { return wrap("31", s); }
    std::string green(std::string_view s) const { return wrap("32", s); }
    std::string yellow(std::string_view s) const { return wrap("33", s); }
    std::string cyan(std::string_view s) const { return wrap("36", s); }
    bool color() const { return m_color; }

private:
    std::string wrap(const char* code, std::string_view s) const;
    bool m_color;
};

ColorMode parseColorMode(const std::string& s);

}  // namespace aioscope::cli
