#include "early_signals.h"

#include <csignal>

namespace aioscope::cli {

namespace {
volatile sig_atomic_t g_pipeSeen = 0;
void onPipe(int) { g_pipeSeen = 1; }
}  // namespace

void catchPipeSignals() {
    struct sigaction sa{};
    sa.sa_handler = onPipe;
    // Restarted: a read or wait in progress goes on as if it were ignored;
    // the write to a closed pipe that raised it fails with EPIPE either way.
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, nullptr);
}

bool pipeSignalled() { return g_pipeSeen != 0; }

}  // namespace aioscope::cli
