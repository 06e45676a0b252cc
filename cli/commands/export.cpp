// `aioscope export --format speedscope|perfetto|folded INPUT... -o FILE`.
#include <iostream>

#include "commands/report_commands.h"
#include "errors.h"
#include "report/activity.h"
#include "report/exports.h"
#include "report/inputs.h"
#include "report/output.h"

namespace aioscope::cli {

int runExport(const ExportArgs& args) {
    auto inputs = report::readInputs(args.inputs);
    for (const auto& in : inputs) {
        if (in.skipped) std::cerr << "aioscope: warning: " << in.name << ": " << in.skipped << " line(s) skipped\n";
    }
    report::Activity activity = report::collectActivity(inputs);
    auto what = args.stacks == "tasks" ? report::StackSource::tasks : report::StackSource::stalls;
    std::size_t written = 0;
    report::writeOutput(args.output, [&](std::ostream& out) {
        if (args.format == "speedscope") written = report::writeSpeedscope(out, activity, what, "aioscope");
        else if (args.format == "folded") written = report::writeFolded(out, activity, what);
        else written = report::writePerfetto(out, activity) + activity.snapshots.size() + activity.bugs.size();
    });
    if (written == 0) {
        std::cerr << "aioscope: warning: nothing to export: "
                  << (args.format == "perfetto" ? "no stall, snapshot or event with a time"
                      : what == report::StackSource::stalls
                          ? "no stall in the input (--stacks tasks exports the tasks of snapshots)"
                          : "no task in any snapshot")
                  << "\n";
    }
    return 0;
}

}  // namespace aioscope::cli
