#include "early_install.h"

#include "observers.h"
#include "pyapi.h"
#include "snapshot_reader.h"
#include "stall_hook.h"

namespace aioscope::agent {

namespace {

enum class Asyncio { ready, importing, absent, busy };

bool truthy(PyObject* obj, const char* attr) {
    PyApi& py = python();
    PyObject* value = obj ? py.getAttrString(obj, attr) : nullptr;
    if (!value) {
        py.errClear();
        return false;
    }
    int t = py.isTrue(value);
    py.decRef(value);
    if (t < 0) py.errClear();
    return t > 0;
}

// Whether importing asyncio now is safe. A module half executed (asyncio
// itself, or threading, which asyncio needs) would make our import fail or
// hand back the half module, so while any import is under way we wait.
Asyncio asyncioState() {
    PyApi& py = python();
    if (PyObject* asyncio = py.importedModule("asyncio")) {
        PyObject* spec = py.getAttrString(asyncio, "__spec__");
        if (!spec) py.errClear();
        bool initializing = truthy(spec, "_initializing");
        if (spec) py.decRef(spec);
        py.decRef(asyncio);
        return initializing ? Asyncio::importing : Asyncio::ready;
    }
    PyObject* bootstrap = py.importedModule("_frozen_importlib");
    bool importing = truthy(bootstrap, "_module_locks");  // non-empty while modules load
    if (bootstrap) py.decRef(bootstrap);
    return importing ? Asyncio::busy : Asyncio::absent;
}

}  // namespace

EarlyInstall& EarlyInstall::instance() {
    static EarlyInstall* install = new EarlyInstall;  // never destroyed: the call may run late
    return *install;
}

bool EarlyInstall::schedule() { return python().addPendingCall(&EarlyInstall::onMainThread, this) == 0; }

int EarlyInstall::onMainThread(void* arg) {
    auto* self = static_cast<EarlyInstall*>(arg);
    PyApi& py = python();
    Asyncio state = asyncioState();
    if (state == Asyncio::absent) {
        // On the main thread importing threading is harmless (from another
        // thread it would become threading's "main thread" on 3.10-3.12).
        if (PyObject* asyncio = py.importModule("asyncio")) {
            py.decRef(asyncio);
            state = Asyncio::ready;
        }
        py.errClear();  // a pending call that fails would raise in the program
    }
    if (state != Asyncio::ready) {
        self->m_state = retry;
        return 0;
    }
    self->m_reader->loadAsyncioLayout();  // the observers need the Task offsets
    bool ok = StallHook::instance().install(self->m_stallNs) &&
              Observers::instance().install(self->m_reader->runtime().layout, self->m_trackOrigins);
    py.errClear();
    if (ok && self->m_withGil) self->m_withGil();
    self->m_state = ok ? installed : failed;
    return 0;
}

}  // namespace aioscope::agent
