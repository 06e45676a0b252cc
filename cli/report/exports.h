// `aioscope export`: the stacks and timings in formats other tools open.
//   speedscope: one sampled profile per loop thread, a sample per stall
//     weighted by its duration in milliseconds (speedscope's file format,
//     https://www.speedscope.app/file-format-schema.json);
//   perfetto: Chrome trace event JSON for Perfetto / chrome://tracing: stalls
//     as complete events on their loop thread's track, task lifetimes as async
//     slices (one id per task), silent bugs, messages and snapshots as
//     instants, process and thread names as metadata;
//   folded: FlameGraph's folded stacks, `frame;frame;... weight` per line.
// With `tasks` stacks (speedscope, folded), each task of each snapshot is one
// sample instead: where the tasks wait.
#pragma once

#include <ostream>
#include <string>

#include "report/activity.h"

namespace aioscope::cli::report {

enum class StackSource { stalls, tasks };

// Return how many samples (stalls or tasks) were written.
std::size_t writeSpeedscope(std::ostream& out, const Activity& a, StackSource what, const std::string& name);
std::size_t writeFolded(std::ostream& out, const Activity& a, StackSource what);
std::size_t writePerfetto(std::ostream& out, const Activity& a);

// A frame name made safe for the folded format: `;` separates frames and the
// line ends with " count", so `;`, `%` and control characters are written
// %XX (as in a URL).
std::string foldedEscape(const std::string& name);

}  // namespace aioscope::cli::report
