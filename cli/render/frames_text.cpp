#include "render/frames_text.h"

#include "render/terminal_safe.h"

namespace aioscope::cli {

namespace {
constexpr std::size_t kNameChars = 200;
constexpr std::size_t kRepeatsShown = 3;  // as in Python's tracebacks
}  // namespace

// Built by appending: GCC 12 -O3 warns (-Wrestrict, a false positive, GCC
// bug 105329) on `"literal" + std::string` once inlined.
std::string frameText(const Frame& f, const Style& st) {
    std::string where = "(";
    where += terminalSafe(f.file, kNameChars);
    where += ':';
    where += f.line ? std::to_string(*f.line) : std::string("?");
    where += ')';
    return st.bold(terminalSafe(f.qualname, kNameChars)) + " " + st.dim(where);
}

void renderFrames(std::ostream& out, const Stack& frames, const std::string& prefix, const Style& st) {
    std::size_t i = 0;
    while (i < frames.size()) {
        std::size_t run = 1;
        while (i + run < frames.size() && frames[i + run] == frames[i]) ++run;
        std::string line = frameText(frames[i], st);
        for (std::size_t k = 0; k < run && k < kRepeatsShown; ++k) out << prefix << line << "\n";
        if (run > kRepeatsShown) {
            std::size_t more = run - kRepeatsShown;
            out << prefix << st.dim("[previous frame repeated " + std::to_string(more) + " more time" +
                                    (more == 1 ? "]" : "s]"))
                << "\n";
        }
        i += run;
    }
}

}  // namespace aioscope::cli
