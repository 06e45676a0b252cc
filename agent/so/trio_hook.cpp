#include "trio_hook.h"

#include "pyapi.h"
#include "stall_hook.h"

namespace aioscope::agent {

namespace {

// Run in a private namespace: install(begin, end) -> True once registered.
constexpr const char kTrioSource[] = R"aioscope(
import sys


def install(begin, end):
    run = sys.modules.get("trio._core._run")
    if run is None or not hasattr(run, "setup_runner"):
        return False

    class AioscopeStallTimer:
        """aioscope: times each task step (stall detection). Its hooks are
        C functions: no Python frame, no allocation per step."""
        __slots__ = ("before_task_step", "after_task_step")

        def __init__(self):
            self.before_task_step = begin
            self.after_task_step = end

    timer = AioscopeStallTimer()
    original = run.setup_runner

    def setup_runner(clock, instruments, *args, **kwargs):
        return original(clock, (*instruments, timer), *args, **kwargs)

    setup_runner.__wrapped__ = original
    run.setup_runner = setup_runner
    # The runs in progress, on any thread (GLOBAL_RUN_CONTEXT is a
    # threading.local: the installer's thread is rarely trio's). Each is in
    # the locals of trio.run / unrolled_run, on its thread's stack; adding
    # an instrument twice does nothing.
    for frame in sys._current_frames().values():
        depth = 0
        while frame is not None and depth < 1000:
            code = frame.f_code
            if code.co_name in ("run", "unrolled_run") and frame.f_globals is run.__dict__:
                runner = frame.f_locals.get("runner")
                if isinstance(runner, run.Runner):
                    runner.instruments.add_instrument(timer)
            frame = frame.f_back
            depth += 1
    return True
)aioscope";

PyObject* g_none = nullptr;

PyObject* stepBegin(PyObject*, PyObject* task) {
    if (StallHook::instance().enterNested()) {
        TrioHook::instance().markTimed();
        // The stall report names the task from it (read while the step runs).
        StallHook::instance().setSubject(reinterpret_cast<std::uint64_t>(task));
    }
    python().buildValue("");  // a new reference to None, returned below
    return g_none;
}

PyObject* stepEnd(PyObject*, PyObject*) {
    StallHook::instance().leaveNested();
    python().buildValue("");
    return g_none;
}

PyMethodDef g_beginDef{"before_task_step", reinterpret_cast<void*>(&stepBegin), 0x0008 /* METH_O */,
                       "aioscope: a trio task step starts"};
PyMethodDef g_endDef{"after_task_step", reinterpret_cast<void*>(&stepEnd), 0x0008 /* METH_O */,
                     "aioscope: a trio task step ended"};

}  // namespace

TrioHook& TrioHook::instance() {
    static TrioHook* hook = new TrioHook;  // never destroyed: see Agent::instance()
    return *hook;
}

bool TrioHook::install() {
    // Marked before any Python runs (it may hand the GIL to another
    // installer, which must not register a second instrument).
    if (m_installed || m_begun.exchange(true)) return m_installed;
    PyApi& py = python();
    if (!g_none) {
        g_none = py.buildValue("");  // ours for the life of the process
        if (!g_none) {
            py.clearError();
            m_begun = false;
            return false;
        }
    }
    PyObject* globals = py.dictNew();
    if (!globals) {
        m_begun = false;
        return false;
    }
    py.dictSetItemString(globals, "__builtins__", py.evalGetBuiltins());
    PyObject* result = py.runString(kTrioSource, kFileInput, globals, globals);
    PyObject* installFn = result ? py.dictGetItemString(globals, "install") : nullptr;  // borrowed
    PyObject* begin = py.cfunctionNewEx(&g_beginDef, nullptr, nullptr);
    PyObject* end = py.cfunctionNewEx(&g_endDef, nullptr, nullptr);
    PyObject* args = begin && end ? py.buildValue("(OO)", begin, end) : nullptr;
    PyObject* done = installFn && args ? py.call(installFn, args, nullptr) : nullptr;
    bool ok = done && py.isTrue(done) == 1;
    if (!done) py.clearError();
    for (PyObject* o : {result, begin, end, args, done}) {
        if (o) py.decRef(o);
    }
    // The namespace lives on: the instrument's class is defined in it.
    m_installed = ok;
    if (!ok) m_begun = false;
    return ok;
}

}  // namespace aioscope::agent
