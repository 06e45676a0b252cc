#include <fstream>
#include <iostream>
#include <sstream>

#include "commands/commands.h"
#include "errors.h"
#include "model/snapshot_json.h"
#include "render/text.h"

namespace aioscope::cli {

int runRender(const RenderArgs& args) {
    std::string text;
    if (args.input == "-") {
        std::ostringstream ss;
        ss << std::cin.rdbuf();
        text = ss.str();
    } else {
        std::ifstream in(args.input);
        if (!in) throw InspectError(Errc::bad_input, "cannot open " + args.input);
        std::ostringstream ss;
        ss << in.rdbuf();
        text = ss.str();
    }
    nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
        throw InspectError(Errc::bad_input, (args.input == "-" ? std::string("standard input") : args.input) +
                                                " is not valid JSON");
    }
    Snapshot snap = snapshotFromJson(doc);
    renderText(snap, std::cout, Style::forStdout(args.color), args.table);
    return 0;
}

}  // namespace aioscope::cli
