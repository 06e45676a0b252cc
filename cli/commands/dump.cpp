#include <iostream>

#include "commands/commands.h"
#include "inspect.h"
#include "model/snapshot_json.h"
#include "render/text.h"

namespace aioscope::cli {

int runDump(const DumpArgs& args) {
    Inspector inspector(args.pid);
    InspectOptions options;
    options.pause = args.pause;
    Snapshot snap = inspector.snapshot(options);
    if (args.json) {
        std::cout << toJson(snap).dump(2) << "\n";
    } else {
        renderText(snap, std::cout, Style::forStdout(args.color));
    }
    return 0;
}

}  // namespace aioscope::cli
