// Fuzzes `aioscope render`'s input: any bytes as a snapshot document, read
// the way render reads it (nesting check, JSON parse, schema check), then
// rendered as trees and as a table, with and without colours.
// Oracles: ASan/UBSan; no exception but InspectError(bad_input); error
// messages and text output free of terminal control bytes (colour codes
// aside); a snapshot that was read writes JSON that reads back the same.
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "errors.h"
#include "model/snapshot_json.h"
#include "render/snapshot_input.h"
#include "render/text.h"
#include "terminal_check.h"

using namespace aioscope;

namespace {

void hazard(const std::string& what, const std::string& text, bool colors) {
    auto at = test::firstTerminalHazard(text, colors);
    if (at == std::string::npos) return;
    std::cerr << "terminal control byte in " << what << " at " << at << ": "
              << text.substr(at > 40 ? at - 40 : 0, 80) << "\n";
    std::abort();
}

std::string json(const Snapshot& s) {
    std::ostringstream out;
    writeJson(s, out);
    return out.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    Snapshot snap;
    try {
        snap = cli::snapshotFromText(text, "input.json");
    } catch (const InspectError& e) {
        if (e.code() != Errc::bad_input) std::abort();
        hazard("the error message", e.what(), false);
        return 0;
    }
    for (bool table : {false, true}) {
        for (bool colors : {false, true}) {
            std::ostringstream out;
            cli::renderText(snap, out, cli::Style(colors), table);
            hazard(table ? "the table" : "the trees", out.str(), colors);
        }
    }
    std::string once = json(snap);
    std::string twice = json(cli::snapshotFromText(once, "written.json"));
    if (once != twice) {
        std::cerr << "JSON round trip differs:\n" << once << "\n" << twice << "\n";
        std::abort();
    }
    return 0;
}
