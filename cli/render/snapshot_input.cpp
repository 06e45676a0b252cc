#include "render/snapshot_input.h"

#include <nlohmann/json.hpp>

#include "errors.h"
#include "model/snapshot_json.h"
#include "render/terminal_safe.h"

namespace aioscope::cli {

bool jsonNestingWithin(std::string_view text, std::size_t maxDepth) {
    std::size_t depth = 0;
    bool inString = false, escaped = false;
    for (char c : text) {
        if (inString) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                inString = false;
            }
        } else if (c == '"') {
            inString = true;
        } else if (c == '[' || c == '{') {
            if (++depth > maxDepth) return false;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return true;
}

Snapshot snapshotFromText(std::string_view text, const std::string& source) {
    if (!jsonNestingWithin(text)) {
        throw InspectError(Errc::bad_input, source + " is not an aioscope snapshot: JSON nested deeper than " +
                                                std::to_string(kMaxJsonNesting) + " levels");
    }
    nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) throw InspectError(Errc::bad_input, source + " is not valid JSON");
    try {
        return snapshotFromJson(doc);
    } catch (const InspectError& e) {
        // The message quotes the input (a schema name, an address): it goes
        // to a terminal too.
        throw InspectError(e.code(), terminalSafe(source + ": " + e.what(), 1000));
    }
}

}  // namespace aioscope::cli
