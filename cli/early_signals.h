// SIGPIPE for the whole CLI, from the start of main: a closed output
// (`aioscope dump PID | head`) is an exit status (14), not a silent death, so
// the signal must never kill aioscope. It is caught (not ignored) and
// recorded: a command that stops on it (attach: detach, clean up, exit) may
// install its own handler only after the signal came, and would otherwise
// never learn of it and go on streaming.
#pragma once

namespace aioscope::cli {

void catchPipeSignals();
// Whether a SIGPIPE came since catchPipeSignals().
bool pipeSignalled();

}  // namespace aioscope::cli
