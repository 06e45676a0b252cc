// `aioscope run` observes from the program's first line. Preloaded, the agent
// adds a C audit hook before the interpreter starts (PySys_AddAuditHook is
// allowed then). CPython raises audit events on the thread doing the work,
// with the GIL held, so the hook installs the observers synchronously, on the
// program's own thread:
//  - at "import" of asyncio or one of its submodules (raised before the import
//    runs): the hook imports asyncio itself, on that thread, as the program's
//    statement was about to, and installs before that statement returns;
//  - at "cpython.run_*" (after site, before the program's first line): the
//    exit handlers, and the observers if site already imported asyncio.
// Once the observers are in, the hook unlinks itself from the runtime's list
// of hooks (the API cannot remove one): afterwards it costs nothing, and
// CPython never frees its entry, which was allocated before the interpreter
// chose its allocator (freeing it with a debug allocator, -X dev or
// PYTHONMALLOC=debug, aborts the program).
#pragma once

#include <atomic>

#include "pyapi.h"

namespace aioscope::agent {

class AuditHook {
public:
    enum class Install { installed, later, failed };
    struct Callbacks {
        void (*firstLine)();   // the program's first line is next (GIL held)
        Install (*install)();  // asyncio is fully imported: install (GIL held)
        void (*trio)();        // the program imports trio (GIL held, before the import runs)
    };

    static AuditHook& instance();

    // From the library's constructor, before Py_Initialize, on the main thread.
    bool add(Callbacks callbacks);
    bool added() const { return m_added; }
    // Whether the hook still acts (added, not yet done or given up).
    bool active() const { return m_added && !m_retired; }
    // asyncio was seen half imported by an import the hook did not see start
    // (importlib.import_module): the agent's thread asks the main thread to
    // install once the import is over (EarlyInstall).
    bool waitingForAsyncio() const { return m_waiting; }
    // GIL held: stop acting and unlink from the runtime's list.
    void retire();

private:
    static int onEvent(const char* event, PyObject* args, void* userData);
    void handle(const char* event, PyObject* args);
    void tryInstall(bool mayImport);

    Callbacks m_callbacks{};
    std::atomic<bool> m_added{false};
    std::atomic<bool> m_retired{false};
    std::atomic<bool> m_waiting{false};
    bool m_firstLineSeen = false;
    bool m_trioSeen = false;
    void** m_head = nullptr;   // the runtime's list head, when we are its first entry
    void** m_entry = nullptr;  // our entry: {next, hook, userData}
};

}  // namespace aioscope::agent
