// Loading the agent with ptrace (CPython 3.10-3.13, and 3.14+ when PEP 768
// cannot run soon): one thread stopped at a safe point (safe_point.h) runs
// the return stub (return_stub.h), which calls dlopen(agent) (a no-op when
// it is already loaded), dlsym(handle, "aioscope_agent_start") and that
// function (which only starts the agent's thread), then puts the thread back
// by itself. aioscope follows the stub to its report, within a time limit;
// whatever happens to aioscope meanwhile, the thread resumes where it was.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

namespace aioscope::cli {

struct InjectResult {
    // True: the stub reported that the agent started. False: the stub was
    // left to finish on its own (`note` says why: a slow library constructor,
    // a stopped target); its hello will tell.
    bool confirmed = false;
    std::string note;
};

// Throws InspectError with what went wrong (permission, a tracer already
// attached, no safe point, the target's dlopen error message, interrupted
// when `interrupted()` said so).
InjectResult injectAgent(pid_t pid, const std::string& agentPathInTarget, const std::string& config,
                         const std::function<bool()>& interrupted);

}  // namespace aioscope::cli
