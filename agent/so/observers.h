// The agent's observers of silent asyncio bugs (never-awaited coroutines,
// swallowed cancellations, unretrieved task exceptions, pending tasks
// destroyed). Their Python half, observers.py, is embedded in the agent and
// run with the GIL; this half gives it an emit() that queues events for the
// agent's thread, and decides cheaply, around each Handle._run, whether the
// step is one that delivers a cancellation (only those are traced).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "fork_safe.h"
#include "layout/layout.h"
#include "pyapi.h"

namespace aioscope::agent {

class Observers {
public:
    static Observers& instance();

    // GIL held. False while asyncio is not imported yet.
    bool install(const Layout& layout, bool trackOrigins);
    // GIL held: only the never-awaited coroutines observer (a trio program:
    // CPython warns about them whatever runs the coroutines). install()
    // later adds the rest.
    bool installUnawaited(const Layout& layout, bool trackOrigins);
    // GIL held.
    void uninstall();
    bool active() const { return m_active; }
    bool unawaitedActive() const { return m_active || m_unawaited; }
    // Whether Task fields can be read (cancellations are judged from them).
    bool taskLayoutKnown() const { return m_active && m_layout.asyncio.available; }

    // Around one Handle._run, GIL held: the task whose step delivers (or
    // follows) a cancellation, with a reference, or null.
    PyObject* stepBegin(PyObject* handle);
    // The same for a step run as ctx.run(callback, firstArg, ...).
    PyObject* stepBeginCall(PyObject* callback, PyObject* firstArg);
    // `failed`: the step left an exception set, kept across our call.
    void stepEnd(PyObject* task, bool failed);
    // The first item of an argument tuple (the Handle, for _run).
    PyObject* firstOf(PyObject* tuple) const;

    // GIL held, from asyncio._set_running_loop: a loop starts (or None).
    // A loop class that is not asyncio's (uvloop's Loop) gets its own
    // call_exception_handler observed, once per class.
    void loopStarts(PyObject* loop);
    // Whether such a loop class runs, and whether its reports are observed.
    bool foreignLoopSeen() const { return m_foreignSeen; }
    bool foreignLoopObserved() const { return m_foreignObserved; }

    // Who speaks when the program calls os._exit(status), which ends the
    // process without exit handlers (GIL held, on the calling thread): what
    // the observers saw just before must still reach the CLI.
    void setExitHandler(void (*handler)(long status)) { m_exitHandler = handler; }
    void programExits(long status) {
        if (m_exitHandler) m_exitHandler(status);
    }

    // Event lines queued by the observers (any thread).
    std::vector<std::string> drain();
    void queue(const char* type, const char* json);

    // In a forked child: the lines queued are the parent's, which sends them.
    void afterForkInChild();

private:
    PyObject* taskOfStep(PyObject* callback, PyObject* firstArg, bool& cancellation);
    // Runs observers.py once (m_globals), then its `function` (install or
    // install_unawaited). GIL held.
    bool callInstall(const char* function, bool trackOrigins, bool unawaitedIn);

    std::atomic<bool> m_active{false};
    std::atomic<bool> m_unawaited{false};  // installUnawaited() only
    Layout m_layout;
    PyObject* m_globals = nullptr;
    PyObject* m_begin = nullptr;  // observers.cancel_step_begin
    PyObject* m_end = nullptr;    // observers.cancel_step_end
    PyObject* m_loopStarts = nullptr;  // observers.loop_starts
    std::atomic<bool> m_foreignSeen{false};
    std::atomic<bool> m_foreignObserved{false};
    std::int64_t m_callbackOffset = -1;  // Handle._callback slot
    std::int64_t m_argsOffset = -1;      // Handle._args slot
    // Recognised once by name (GIL held: only the loop's threads use them).
    const void* m_stepType = nullptr;     // _asyncio's TaskStepMethWrapper
    const void* m_builtinType = nullptr;  // builtin_function_or_method
    const void* m_wakeupDef = nullptr;    // the PyMethodDef of task_wakeup
    std::atomic<void (*)(long)> m_exitHandler{nullptr};
    ForkSafeMutex m_mutex;
    std::deque<std::string> m_events;
    std::uint64_t m_dropped = 0;
};

}  // namespace aioscope::agent
