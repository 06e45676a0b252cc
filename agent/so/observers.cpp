#include "observers.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>

#include "mem/process_reader.h"
#include "mem/remote.h"
#include "remote/objects.h"
#include "walk/coroutines.h"

namespace aioscope::agent {

namespace {

// observers.py, embedded at build time (observers_source.h is generated).
#include "observers_source.h"

constexpr std::size_t kMaxQueued = 10000;

// In-process reads of live objects we hold references to, GIL held.
template <class T>
T field(const void* obj, std::int64_t off) {
    T v;
    std::memcpy(&v, static_cast<const char*>(obj) + off, sizeof v);
    return v;
}
PyObject* pointerAt(const void* obj, std::int64_t off) { return field<PyObject*>(obj, off); }
const char* typeName(const void* obj) {
    const void* type = pointerAt(obj, 8);
    return type ? field<const char*>(type, 24) : "";
}

// The slot offset behind a __slots__ member descriptor (PyMemberDescrObject:
// PyDescr_COMMON then d_member; PyMemberDef: name, type, offset).
std::int64_t slotOffset(PyObject* cls, const char* name) {
    PyApi& py = python();
    PyObject* descr = py.getAttrString(cls, name);
    if (!descr) {
        py.errClear();
        return -1;
    }
    std::int64_t off = -1;
    if (std::strcmp(typeName(descr), "member_descriptor") == 0) {
        const void* member = pointerAt(descr, 40);
        if (member) off = field<std::int64_t>(member, 16);
    }
    py.decRef(descr);
    return off >= 16 && off < 4096 ? off : -1;
}

PyObject* emitFn(PyObject*, PyObject* args) {
    PyApi& py = python();
    const char* type = nullptr;
    const char* json = nullptr;
    if (!py.argParseTuple(args, "ss", &type, &json)) return nullptr;
    Observers::instance().queue(type, json);
    return py.buildValue("");
}

// Whether the task's coroutine chain is handling a CancelledError, read
// from memory like everything else the agent reports.
PyObject* handlingFn(PyObject*, PyObject* args);
const Layout* g_layout = nullptr;

PyObject* handlingFn(PyObject*, PyObject* args) {
    PyApi& py = python();
    PyObject* task = nullptr;
    if (!py.argParseTuple(args, "O", &task)) return nullptr;
    bool handling = false;
    try {
        ProcessReader self(getpid());
        Remote mem(self);
        Objects objects(mem, *g_layout);
        CodeReader codes(objects);
        FrameWalker frames(codes, objects);
        CoroutineWalker walker(frames, objects);
        Addr coro = mem.ptr(reinterpret_cast<Addr>(task) + g_layout->asyncio.taskCoro, "task coro");
        handling = handlingCancelledError(objects, walker.follow(coro));
    } catch (const std::exception&) {
        handling = false;
    }
    return py.boolFromLong(handling);
}

// Calls observer(*args), then original(*args), or original(*r) when the
// observer returned a tuple r. `self` is (original, observer).
PyObject* trampolineCall(PyObject* self, PyObject* args, PyObject* kwargs) {
    PyApi& py = python();
    PyObject* original = pointerAt(self, g_layout->tuple.items);
    PyObject* observer = pointerAt(self, g_layout->tuple.items + 8);
    PyObject* replaced = py.call(observer, args, nullptr);
    if (!replaced) py.errClear();
    bool isTuple = replaced && (field<unsigned long>(pointerAt(replaced, 8), 168) & (1ul << 26));
    PyObject* result = py.call(original, isTuple ? replaced : args, kwargs);
    if (replaced) py.decRef(replaced);
    return result;
}

PyMethodDef g_trampolineCallDef{"aioscope_observed", reinterpret_cast<void*>(&trampolineCall),
                                kMethVarargs | kMethKeywords, nullptr};

// _trampoline(original, observer, method): the callable to install in
// place of `original`; with `method`, one that binds like a method.
PyObject* trampolineFn(PyObject*, PyObject* args) {
    PyApi& py = python();
    PyObject *original = nullptr, *observer = nullptr;
    int method = 0;
    if (!py.argParseTuple(args, "OOp", &original, &observer, &method)) return nullptr;
    PyObject* pair = py.buildValue("(OO)", original, observer);
    if (!pair) return nullptr;
    PyObject* fn = py.cfunctionNewEx(&g_trampolineCallDef, pair, nullptr);
    py.decRef(pair);
    if (!fn || !method) return fn;
    PyObject* bound = py.instanceMethodNew(fn);
    py.decRef(fn);
    return bound;
}

// _on_main(fn): fn() on the main thread, at its next check of the eval
// breaker (Py_AddPendingCall). For per-thread interpreter state, such as
// the coroutine origin tracking depth, set from the agent's own thread.
int runOnMain(void* arg) {
    PyApi& py = python();
    PyObject* holder = static_cast<PyObject*>(arg);  // (fn,): our reference to fn
    PyObject* noArgs = py.buildValue("()");
    PyObject* r = noArgs ? py.call(pointerAt(holder, g_layout->tuple.items), noArgs, nullptr) : nullptr;
    if (r) py.decRef(r);
    if (noArgs) py.decRef(noArgs);
    py.errClear();  // a pending call that fails would raise in the program
    py.decRef(holder);
    return 0;
}

PyObject* onMainFn(PyObject*, PyObject* args) {
    PyApi& py = python();
    PyObject* fn = nullptr;
    if (!py.argParseTuple(args, "O", &fn)) return nullptr;
    PyObject* holder = py.buildValue("(O)", fn);
    if (!holder) return nullptr;
    bool queued = py.addPendingCall(&runOnMain, holder) == 0;
    if (!queued) py.decRef(holder);
    return py.boolFromLong(queued);
}

PyMethodDef g_onMainDef{"_on_main", reinterpret_cast<void*>(&onMainFn), kMethVarargs, nullptr};
PyMethodDef g_emitDef{"_emit", reinterpret_cast<void*>(&emitFn), kMethVarargs, nullptr};
PyMethodDef g_trampolineDef{"_trampoline", reinterpret_cast<void*>(&trampolineFn), kMethVarargs, nullptr};
PyMethodDef g_handlingDef{"_handling", reinterpret_cast<void*>(&handlingFn), kMethVarargs, nullptr};

double nowUnix() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

Observers& Observers::instance() {
    static Observers* o = new Observers;  // never destroyed: see Agent::instance()
    return *o;
}

void Observers::queue(const char* type, const char* json) {
    std::string body = json ? json : "{}";
    if (body.size() < 2 || body.front() != '{') body = "{}";
    char head[160];
    std::snprintf(head, sizeof head, "{\"schema\": \"aioscope/event/1\", \"type\": \"%s\", \"ts\": %.6f, \"pid\": %d", type,
                  nowUnix(), static_cast<int>(getpid()));
    std::string line = head;
    line += body.size() > 2 ? ", " + body.substr(1) : "}";
    line += '\n';
    std::lock_guard lock(m_mutex);
    if (m_events.size() >= kMaxQueued) {
        m_events.pop_front();
        ++m_dropped;
    }
    m_events.push_back(std::move(line));
}

std::vector<std::string> Observers::drain() {
    std::lock_guard lock(m_mutex);
    std::vector<std::string> out(m_events.begin(), m_events.end());
    m_events.clear();
    return out;
}

bool Observers::install(const Layout& layout, bool trackOrigins) {
    if (m_active) return true;
    PyApi& py = python();
    PyObject* events = py.importedModule("asyncio.events");
    PyObject* baseEvents = py.importedModule("asyncio.base_events");
    PyObject* warnings = py.importedModule("warnings");
    bool ready = events && baseEvents && warnings;
    PyObject* handle = events ? py.getAttrString(events, "Handle") : nullptr;
    for (PyObject* m : {events, baseEvents, warnings}) {
        if (m) py.decRef(m);
    }
    if (!ready || !handle) {
        py.errClear();
        if (handle) py.decRef(handle);
        return false;
    }
    m_layout = layout;
    g_layout = &m_layout;
    m_callbackOffset = slotOffset(handle, "_callback");
    m_argsOffset = slotOffset(handle, "_args");
    py.decRef(handle);

    PyObject* globals = py.dictNew();
    if (!globals) return false;
    py.dictSetItemString(globals, "__builtins__", py.evalGetBuiltins());
    py.dictSetItemString(globals, "__name__", py.buildValue("s", "aioscope_observers"));
    PyObject* result = py.runString(kObserversSource, kFileInput, globals, globals);
    PyObject* installFn = result ? py.dictGetItemString(globals, "install") : nullptr;
    PyObject* emit = py.cfunctionNewEx(&g_emitDef, nullptr, nullptr);
    PyObject* handling = py.cfunctionNewEx(&g_handlingDef, nullptr, nullptr);
    PyObject* trampoline = py.cfunctionNewEx(&g_trampolineDef, nullptr, nullptr);
    PyObject* onMain = py.cfunctionNewEx(&g_onMainDef, nullptr, nullptr);
    PyObject* done = nullptr;
    if (installFn && emit && handling && trampoline && onMain) {
        PyObject* argsTuple =
            py.buildValue("(OOOOO)", emit, handling, trampoline, onMain, py.boolFromLong(trackOrigins));
        if (argsTuple) {
            done = py.call(installFn, argsTuple, nullptr);
            py.decRef(argsTuple);
        }
    }
    if (result) py.decRef(result);
    if (emit) py.decRef(emit);
    if (handling) py.decRef(handling);
    if (trampoline) py.decRef(trampoline);
    if (onMain) py.decRef(onMain);
    if (!done) {
        py.errClear();
        py.decRef(globals);
        queue("warning", "{\"message\": \"the observers could not be installed\"}");
        return false;
    }
    py.decRef(done);
    m_globals = globals;
    m_begin = py.dictGetItemString(globals, "cancel_step_begin");
    m_end = py.dictGetItemString(globals, "cancel_step_end");
    m_active = m_begin && m_end;
    return m_active;
}

void Observers::uninstall() {
    if (!m_active) return;
    m_active = false;
    PyApi& py = python();
    if (PyObject* fn = py.dictGetItemString(m_globals, "uninstall")) {
        PyObject* none = py.buildValue("()");
        PyObject* r = none ? py.call(fn, none, nullptr) : nullptr;
        if (r) py.decRef(r);
        if (none) py.decRef(none);
        py.errClear();
    }
    // The namespace stays alive: a step in flight still calls cancel_step_end.
}

PyObject* Observers::taskOfStep(PyObject* handle, bool& cancellation) {
    cancellation = false;
    // Without the Task layout (3.14+ before _asyncio published it) nothing
    // is read from a task.
    if (m_callbackOffset < 0 || !m_layout.asyncio.available) return nullptr;
    const auto& A = m_layout.asyncio;
    PyObject* callback = pointerAt(handle, m_callbackOffset);
    if (!callback) return nullptr;
    const char* type = typeName(callback);
    PyObject* task = nullptr;
    PyObject* wokenBy = nullptr;
    if (std::strcmp(type, "TaskStepMethWrapper") == 0) {
        task = pointerAt(callback, 16);  // sw_task
    } else if (std::strcmp(type, "builtin_function_or_method") == 0) {
        const void* def = pointerAt(callback, 16);
        const char* name = def ? field<const char*>(def, 0) : nullptr;
        if (!name || std::strcmp(name, "task_wakeup") != 0) return nullptr;
        task = pointerAt(callback, 24);  // m_self
        PyObject* args = m_argsOffset >= 0 ? pointerAt(handle, m_argsOffset) : nullptr;
        if (args && field<std::int64_t>(args, 16) >= 1) wokenBy = pointerAt(args, m_layout.tuple.items);
    } else {
        return nullptr;
    }
    if (!task) return nullptr;
    bool mustCancel = A.taskMustCancelBit ? (field<std::uint8_t>(task, A.taskMustCancel) & A.taskMustCancelBit) != 0
                                          : field<std::int32_t>(task, A.taskMustCancel) != 0;
    std::int32_t requests = A.taskNumCancels != kAbsent ? field<std::int32_t>(task, A.taskNumCancels) : 0;
    // 3.10 counts no requests: a wake-up by a cancelled future delivers one.
    bool wokenByCancel = A.taskNumCancels == kAbsent && wokenBy && field<std::int32_t>(wokenBy, A.futState) == 1;
    cancellation = mustCancel || requests > 0 || wokenByCancel;
    return task;
}

PyObject* Observers::firstOf(PyObject* tuple) const {
    if (!m_active || !tuple || field<std::int64_t>(tuple, m_layout.tuple.size) < 1) return nullptr;
    return pointerAt(tuple, m_layout.tuple.items);
}

PyObject* Observers::stepBegin(PyObject* handle) {
    if (!m_active || !handle) return nullptr;
    bool cancellation = false;
    PyObject* task = taskOfStep(handle, cancellation);
    if (!task || !cancellation) return nullptr;
    PyApi& py = python();
    PyObject* argsTuple = py.buildValue("(O)", task);  // also our reference to the task
    if (!argsTuple) {
        py.errClear();
        return nullptr;
    }
    if (PyObject* r = py.call(m_begin, argsTuple, nullptr)) {
        py.decRef(r);
    } else {
        py.errClear();
    }
    return argsTuple;
}

void Observers::stepEnd(PyObject* argsTuple, bool failed) {
    if (!argsTuple) return;
    PyApi& py = python();
    PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
    if (failed) py.errFetch(&type, &value, &tb);  // the step's own exception, kept as it was
    if (PyObject* r = py.call(m_end, argsTuple, nullptr)) {
        py.decRef(r);
    } else {
        py.errClear();
    }
    if (failed) py.errRestore(type, value, tb);
    py.decRef(argsTuple);
}

}  // namespace aioscope::agent
