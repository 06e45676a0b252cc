#include <iostream>

#include "commands/commands.h"
#include <algorithm>

#include "analysis/findings.h"
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
        writeJson(snap, std::cout);
    } else {
        renderText(snap, std::cout, Style::forStdout(args.color), args.table);
    }
    return std::any_of(snap.findings.begin(), snap.findings.end(), isDeadlock) ? kExitDeadlock : 0;
}

}  // namespace aioscope::cli
