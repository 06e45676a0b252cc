#include "running_loop_watch.h"

#include "context_run_hook.h"
#include "observers.h"
#include "pyapi.h"
#include "stall_hook.h"
#include "uvloop_hook.h"

namespace aioscope::agent {

namespace {

// Ours in place now, and what it wraps (put back on unwatch).
PyObject* g_setRunning = nullptr;
PyObject* g_ourSetRunning = nullptr;

PyObject* setRunningLoop(PyObject* original, PyObject* loop) {
    PyApi& py = python();
    PyObject* args = py.buildValue("(O)", loop);
    if (!args) return nullptr;
    PyObject* result = py.call(original, args, nullptr);
    py.decRef(args);
    if (!result) return nullptr;
    markLoopThread(loop != py.none());
    // Cheap when nothing was loaded since the last look (a stop included).
    if (StallHook::instance().installed()) UvloopHook::instance().patchLoaded();
    Observers::instance().loopStarts(loop);
    return result;
}

PyMethodDef g_setRunningDef{"_set_running_loop", reinterpret_cast<void*>(&setRunningLoop), 0x0008 /* METH_O */,
                            "asyncio._set_running_loop, watched by aioscope"};

}  // namespace

bool watchRunningLoops() {
    PyApi& py = python();
    PyObject* events = py.importedModule("asyncio.events");
    PyObject* package = py.importedModule("asyncio");
    PyObject* current = events ? py.getAttrString(events, "_set_running_loop") : nullptr;
    if (!current) py.clearError();
    bool ok = false;
    if (current && package) {
        if (current == g_ourSetRunning) {
            ok = true;  // still in place from an earlier session
        } else if (PyObject* ours = py.cfunctionNewEx(&g_setRunningDef, current, nullptr)) {
            // uvloop reads it from the package once, at its import.
            ok = py.setAttrString(events, "_set_running_loop", ours) == 0 &&
                 py.setAttrString(package, "_set_running_loop", ours) == 0;
            if (!ok) py.clearError();
            // Kept even when only one module took it: unwatch puts back both.
            if (g_ourSetRunning) py.decRef(g_ourSetRunning);
            if (g_setRunning) py.decRef(g_setRunning);
            g_ourSetRunning = ours;
            g_setRunning = current;  // keeps the reference
            current = nullptr;
        } else {
            py.clearError();
        }
    }
    if (current) py.decRef(current);
    if (events) py.decRef(events);
    if (package) py.decRef(package);
    return ok;
}

void unwatchRunningLoops() {
    PyApi& py = python();
    if (!g_setRunning || !g_ourSetRunning) return;
    for (const char* name : {"asyncio.events", "asyncio"}) {
        PyObject* module = py.importedModule(name);
        if (!module) continue;
        PyObject* current = py.getAttrString(module, "_set_running_loop");
        if (!current) py.clearError();
        // Somebody may have wrapped ours meanwhile: leave theirs in place.
        if (current == g_ourSetRunning && py.setAttrString(module, "_set_running_loop", g_setRunning) != 0) {
            py.clearError();
        }
        if (current) py.decRef(current);
        py.decRef(module);
    }
}

}  // namespace aioscope::agent
