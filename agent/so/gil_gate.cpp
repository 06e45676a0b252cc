#include "gil_gate.h"

#include <new>

namespace aioscope::agent {

namespace {

PyObject* closeFn(PyObject*, PyObject*) {
    GilGate::instance().close();
    return python().buildValue("");
}

PyMethodDef g_closeDef{"aioscope_closing", reinterpret_cast<void*>(&closeFn), kMethVarargs, nullptr};

}  // namespace

GilGate& GilGate::instance() {
    static GilGate* gate = new GilGate;  // never destroyed: see Agent::instance()
    return *gate;
}

void GilGate::registerAtExit() {
    if (m_registered.exchange(true)) return;
    PyApi& py = python();
    PyObject* atexit = py.importModule("atexit");
    PyObject* reg = atexit ? py.getAttrString(atexit, "register") : nullptr;
    PyObject* fn = py.cfunctionNewEx(&g_closeDef, nullptr, nullptr);
    PyObject* args = fn ? py.buildValue("(O)", fn) : nullptr;
    PyObject* result = reg && args ? py.call(reg, args, nullptr) : nullptr;
    if (!result) m_registered = false;
    for (PyObject* o : {result, args, fn, reg, atexit}) {
        if (o) py.decRef(o);
    }
    py.clearError();
}

void GilGate::close() {
    PyApi& py = python();
    void* state = py.evalSaveThread();  // lets a holder waiting for the GIL finish
    {
        std::lock_guard lock(m_mutex);
        m_closed = true;
    }
    py.evalRestoreThread(state);
}

void GilGate::afterForkInChild() { m_mutex.afterFork(); }

}  // namespace aioscope::agent
