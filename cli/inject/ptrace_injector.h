// Loading the agent into CPython 3.10-3.13 with ptrace: on one thread stopped
// at a safe point, call dlopen(agent) (skipped when the agent is already
// loaded), dlsym(handle, "aioscope_agent_start") and that function, which
// only starts the agent's thread; then put the thread back as it was.
#pragma once

#include <sys/types.h>

#include <string>

namespace aioscope::cli {

// Throws InspectError with what went wrong (permission, no safe point, the
// target's dlopen error message...).
void injectAgent(pid_t pid, const std::string& agentPathInTarget, const std::string& config);

}  // namespace aioscope::cli
