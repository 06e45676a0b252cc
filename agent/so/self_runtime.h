// The agent's own interpreter as the core's readers see it. What the hello
// needs is known before the interpreter starts (the dynamic linker and
// Py_GetVersion); the validated layout needs an interpreter state, and is
// resolved once, by whichever thread needs it first: the agent's thread to
// sample, or the program's own thread installing the hooks at `import
// asyncio`. Thread-safe.
#pragma once

#include <mutex>
#include <optional>
#include <string>

#include "layout/resolve.h"
#include "model/snapshot.h"
#include "fork_safe.h"

namespace aioscope::agent {

// Version, executable and runtime file, without reading the interpreter:
// usable from the library's constructor, before Py_Initialize.
PythonInfo earlyPythonInfo();

// The library's constructor, on the thread that will run Py_Initialize,
// before it does: the only moment the agent calls Py_GetVersion() (see
// self_runtime.cpp). Does nothing once the interpreter is initialized.
void captureVersionBeforeInit();

class SelfRuntime {
public:
    static SelfRuntime& instance();

    // The resolved runtime, or nullopt: not yet (no interpreter state yet;
    // ask again later) or never (`failure()` says why).
    std::optional<ResolvedRuntime> get();
    // Why it can never be resolved (an unsupported Python), or "".
    std::string failure();
    const RuntimeLocation& location();
    // Py_GetVersion()'s text if captureVersionBeforeInit() got it, else "".
    std::string versionText();
    // In a forked child: what another thread was writing at the fork is
    // resolved again.
    void afterForkInChild();

private:
    ForkSafeMutex m_mutex;
    std::optional<ResolvedRuntime> m_runtime;
    std::optional<RuntimeLocation> m_location;
    std::string m_failure;
    std::string m_versionText;  // set once, before any other thread reads it
    friend void captureVersionBeforeInit();
};

}  // namespace aioscope::agent
