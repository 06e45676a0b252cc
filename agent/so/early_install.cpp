#include "early_install.h"

#include "pyapi.h"

namespace aioscope::agent {

namespace {

bool truthy(PyObject* obj, const char* attr) {
    PyApi& py = python();
    PyObject* value = obj ? py.getAttrString(obj, attr) : nullptr;
    if (!value) {
        py.clearError();
        return false;
    }
    int t = py.isTrue(value);
    py.decRef(value);
    if (t < 0) py.clearError();
    return t > 0;
}

}  // namespace

bool initializing(PyObject* module) {
    PyApi& py = python();
    PyObject* spec = py.getAttrString(module, "__spec__");
    if (!spec) py.clearError();
    bool half = truthy(spec, "_initializing");
    if (spec) py.decRef(spec);
    return half;
}

// The hooks need asyncio.base_events (and asyncio.events, which it imports)
// fully executed; the rest of the package may still be loading. A module
// half executed would make an import fail or hand back the half module.
AsyncioState asyncioState() {
    PyApi& py = python();
    if (PyObject* base = py.importedModule("asyncio.base_events")) {
        bool half = initializing(base);
        py.decRef(base);
        return half ? AsyncioState::importing : AsyncioState::ready;
    }
    if (PyObject* asyncio = py.importedModule("asyncio")) {
        py.decRef(asyncio);
        return AsyncioState::importing;  // the package loads, base_events not yet
    }
    PyObject* bootstrap = py.importedModule("_frozen_importlib");
    bool importing = truthy(bootstrap, "_module_locks");  // non-empty while modules load
    if (bootstrap) py.decRef(bootstrap);
    return importing ? AsyncioState::busy : AsyncioState::absent;
}

EarlyInstall& EarlyInstall::instance() {
    static EarlyInstall* install = new EarlyInstall;  // never destroyed: the call may run late
    return *install;
}

bool EarlyInstall::schedule() { return python().addPendingCall(&EarlyInstall::onMainThread, this) == 0; }

int EarlyInstall::onMainThread(void* arg) {
    auto* self = static_cast<EarlyInstall*>(arg);
    PyApi& py = python();
    AsyncioState state = asyncioState();
    if (state == AsyncioState::absent && self->m_mayImport) {
        // On the main thread importing threading is harmless (from another
        // thread it would become threading's "main thread" on 3.10-3.12).
        if (PyObject* asyncio = py.importModule("asyncio")) {
            py.decRef(asyncio);
            state = AsyncioState::ready;
        }
        py.clearError();  // a pending call that fails would raise in the program
    }
    if (state == AsyncioState::absent && !self->m_mayImport) {
        self->m_state = failed;  // nothing to install into yet: the caller asks again later
        return 0;
    }
    if (state != AsyncioState::ready) {
        self->m_state = retry;
        return 0;
    }
    int r = self->m_install ? self->m_install() : -1;
    py.clearError();
    self->m_state = r > 0 ? installed : r == 0 ? retry : failed;
    return 0;
}

}  // namespace aioscope::agent
