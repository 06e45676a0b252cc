// The agent's only exported symbol and its two ways in:
//  - aioscope_agent_start(config): called by the injector (ptrace dlopen +
//    call) or by the PEP 768 loader script, for `aioscope attach`;
//  - a constructor reading AIOSCOPE_AGENT, for `aioscope run` (LD_PRELOAD).
// Both only start one thread.
#include <dlfcn.h>
#include <pthread.h>

#include <cstdlib>

#include "agent.h"

using aioscope::agent::Agent;

extern "C" __attribute__((visibility("default"))) int aioscope_agent_start(const char* config) {
    if (!config) return -1;
    return Agent::instance().start(config);
}

namespace {

void childAfterFork() { Agent::instance().afterForkInChild(); }

__attribute__((constructor)) void startFromEnvironment() {
    pthread_atfork(nullptr, nullptr, &childAfterFork);
    const char* config = std::getenv("AIOSCOPE_AGENT");
    // Preloaded into every program `aioscope run` starts: only Python gets a thread.
    if (config && dlsym(RTLD_DEFAULT, "Py_IsInitialized")) Agent::instance().startFromEnvironment(config);
}

// exit() runs this after the interpreter's own exit handler (which already
// said goodbye), or instead of it for a process that never finalized one.
__attribute__((destructor)) void sayGoodbye() { Agent::instance().processExiting(); }

}  // namespace
