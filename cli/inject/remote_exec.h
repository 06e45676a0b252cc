// PEP 768 (CPython 3.14+): asks the interpreter to run a Python script at its
// next safe point, with the GIL held, by writing the script's path and a flag
// into a thread state and setting that thread's eval breaker. No ptrace, no
// code run by us in the target. Refused when the target disabled remote
// debugging (PYTHON_DISABLE_REMOTE_DEBUG, -X disable-remote-debug, or a build
// without it): aioscope honours that and does not fall back to ptrace.
#pragma once

#include <string>
#include <vector>

#include "inspect.h"

namespace aioscope::cli {

class RemoteExec {
public:
    explicit RemoteExec(Inspector& target);

    // True when this interpreter supports PEP 768 at all.
    static bool supported(const Inspector& target);

    // Throws InspectError (permission_denied) when the target disabled
    // remote debugging: aioscope then injects nothing at all.
    void requireEnabled();

    // Withdraws requests an earlier aioscope left pending (it was killed
    // before it could withdraw them; their script path is in a staging
    // folder): they must not run once that folder is removed. Returns how
    // many.
    int withdrawStale(const std::string& stagingPrefix);

    // Queues `scriptPath` (as the target names it) on the Python thread
    // whose native id is `tid` (one at a time: every thread that takes a
    // request runs the script). False when no Python thread has that id.
    bool request(const std::string& scriptPath, pid_t tid);
    // Withdraws requests not yet run, so a stale one cannot run later.
    // True when a thread had already taken its request (the script is
    // running or ran).
    bool withdraw();

private:
    struct Thread {
        Addr tstate;
        bool main;
        std::int64_t nativeId;  // 0 if unknown
    };
    std::vector<Thread> threads();

    Inspector& m_target;
    std::vector<Addr> m_requested;  // thread states asked to run the script
};

}  // namespace aioscope::cli
