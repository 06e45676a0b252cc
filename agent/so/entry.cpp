// The agent's only exported symbol and its two ways in:
//  - aioscope_agent_start(config): called by the injector (ptrace dlopen +
//    call) or by the PEP 768 loader script, for `aioscope attach`;
//  - a constructor reading AIOSCOPE_AGENT, for `aioscope run` (LD_PRELOAD).
// Both only start one thread.
#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <cstdlib>

#include "agent.h"

using aioscope::agent::Agent;

extern "C" __attribute__((visibility("default"))) int aioscope_agent_start(const char* config) {
    if (!config) return -1;
    return Agent::instance().start(config);
}

namespace {

// Set once the constructor has created everything: a child forked in the
// middle of it (another thread of an attached program) must not wait at
// its exit on an object the constructing thread, gone there, was building.
std::atomic<bool> g_ready{false};

void childAfterFork() { Agent::instance().afterForkInChild(); }

__attribute__((constructor)) void startFromEnvironment() {
    Agent::createSharedObjects();
    pthread_atfork(nullptr, nullptr, &childAfterFork);
    g_ready = true;
    const char* config = std::getenv("AIOSCOPE_AGENT");
    // Preloaded into every program `aioscope run` starts: only Python gets a thread.
    if (config && dlsym(RTLD_DEFAULT, "Py_IsInitialized")) Agent::instance().startFromEnvironment(config);
}

// exit() runs this after the interpreter's own exit handler (which already
// said goodbye), or instead of it for a process that never finalized one.
__attribute__((destructor)) void sayGoodbye() {
    if (g_ready) Agent::instance().processExiting();
}

}  // namespace
