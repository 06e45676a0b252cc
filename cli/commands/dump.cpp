#include <iostream>

#include "commands/commands.h"
#include "heap_pages.h"
#include <algorithm>

#include "analysis/confirm.h"
#include "analysis/findings.h"
#include "inspect.h"
#include "model/snapshot_json.h"
#include "render/text.h"

namespace aioscope::cli {

int runDump(const DumpArgs& args) {
    // A one-shot read: long-running commands (run, attach under an agent's
    // flood of events) keep glibc's defaults, which give back what they free.
    preferHugeHeapPages();
    Inspector inspector(args.pid);
    InspectOptions options;
    options.pause = args.pause;
    Snapshot snap = inspector.snapshot(options);
    // Exit status 10 says tasks can never finish: a live read claims it only
    // when a second read finds the same (docs/how-it-works.md#consistency).
    // A paused process did not move; one read is the truth.
    if (!args.pause && !snap.findings.empty()) {
        Snapshot again = inspector.snapshot(options);
        confirmFindings(snap, again);
        again.capturedAt = snap.capturedAt;
        again.durationMs += snap.durationMs;
        snap = std::move(again);
    }
    if (args.json) {
        writeJson(snap, std::cout);
    } else {
        renderText(snap, std::cout, Style::forStdout(args.color), args.table);
    }
    return std::any_of(snap.findings.begin(), snap.findings.end(), isDeadlock) ? kExitDeadlock : 0;
}

}  // namespace aioscope::cli
