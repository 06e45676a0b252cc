#include "render/style.h"

#include <unistd.h>

#include <cstdlib>

namespace aioscope::cli {

Style Style::forStdout(ColorMode mode) {
    if (mode == ColorMode::always) return Style(true);
    if (mode == ColorMode::never) return Style(false);
    const char* noColor = std::getenv("NO_COLOR");
    return Style(isatty(STDOUT_FILENO) && !(noColor && *noColor));
}

std::string Style::wrap(const char* code, std::string_view s) const {
    if (!m_color) return std::string(s);
    return std::string("\x1b[") + code + "m" + std::string(s) + "\x1b[0m";
}

ColorMode parseColorMode(const std::string& s) {
    if (s == "always") return ColorMode::always;
    if (s == "never") return ColorMode::never;
    return ColorMode::automatic;
}

}  // namespace aioscope::cli
