// The agent's observers of silent asyncio bugs (never-awaited coroutines,
// swallowed cancellations, unretrieved task exceptions, pending tasks
// destroyed). Their Python half, observers.py, is embedded in the agent and
// run with the GIL; this half gives it an emit() that queues events for the
// agent's thread, and decides cheaply, around each Handle._run, whether the
// step is one that delivers a cancellation (only those are traced).
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "layout/layout.h"
#include "pyapi.h"

namespace aioscope::agent {

class Observers {
public:
    static Observers& instance();

    // GIL held. False while asyncio is not imported yet.
    bool install(const Layout& layout, bool trackOrigins);
    // GIL held.
    void uninstall();
    bool active() const { return m_active; }

    // Around one Handle._run, GIL held: the task whose step delivers (or
    // follows) a cancellation, with a reference, or null.
    PyObject* stepBegin(PyObject* handle);
    // `failed`: the step left an exception set, kept across our call.
    void stepEnd(PyObject* task, bool failed);
    // The first item of an argument tuple (the Handle, for _run).
    PyObject* firstOf(PyObject* tuple) const;

    // Event lines queued by the observers (any thread).
    std::vector<std::string> drain();
    void queue(const char* type, const char* json);

private:
    PyObject* taskOfStep(PyObject* handle, bool& cancellation);

    bool m_active = false;
    Layout m_layout;
    PyObject* m_globals = nullptr;
    PyObject* m_begin = nullptr;  // observers.cancel_step_begin
    PyObject* m_end = nullptr;    // observers.cancel_step_end
    std::int64_t m_callbackOffset = -1;  // Handle._callback slot
    std::int64_t m_argsOffset = -1;      // Handle._args slot
    std::mutex m_mutex;
    std::deque<std::string> m_events;
    std::uint64_t m_dropped = 0;
};

}  // namespace aioscope::agent
