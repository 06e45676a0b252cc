// The agent's own thread takes the GIL only through this gate. CPython
// terminates a thread that asks for the GIL once the interpreter finalizes
// (pthread_exit inside PyGILState_Ensure), which a C++ thread cannot survive:
// the process would abort. So the gate closes at the interpreter's
// Python-level exit (an atexit callback, run before finalization starts),
// after waiting, with the GIL released, for a holder to finish.
#pragma once

#include <atomic>
#include <mutex>

#include "pyapi.h"
#include "fork_safe.h"

namespace aioscope::agent {

class GilGate {
public:
    static GilGate& instance();

    // Runs f with the GIL held; false, without running it, once the
    // interpreter is exiting.
    template <class F>
    bool run(F&& f) {
        std::lock_guard lock(m_mutex);
        PyApi& py = python();
        if (m_closed || py.isFinalizing()) return false;
        int state = py.gilStateEnsure();
        registerAtExit();
        f();
        py.gilStateRelease(state);
        return true;
    }

    // With the GIL held (any thread): makes sure the closing callback is
    // registered with the interpreter's atexit module.
    void registerAtExit();
    // The atexit callback (main thread, GIL held).
    void close();
    // In a fork's child: the agent thread that may have held the lock is gone.
    void afterForkInChild();

private:
    ForkSafeMutex m_mutex;
    bool m_closed = false;
    std::atomic<bool> m_registered{false};
};

}  // namespace aioscope::agent
