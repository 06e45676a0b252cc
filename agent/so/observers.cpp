#include "observers.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>

#include "callout.h"
#include "mem/process_reader.h"
#include "mem/remote.h"
#include "remote/objects.h"
#include "context_run_hook.h"
#include "pytest_env.h"
#include "stall_hook.h"
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
        py.clearError();
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
PyObject* g_true = nullptr;  // Py_True, once seen

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

// Calls observer(*args, **kwargs), then original(*args, **kwargs), or
// original(*r, **kwargs) when the observer returned a tuple r; or, for an
// observer of results, original(*args) first, then observer(result, *args).
// `self` is (original, observer, after, timed).
PyObject* trampolineCall(PyObject* self, PyObject* args, PyObject* kwargs) {
    PyApi& py = python();
    PyObject* original = pointerAt(self, g_layout->tuple.items);
    PyObject* observer = pointerAt(self, g_layout->tuple.items + 8);
    bool after = pointerAt(self, g_layout->tuple.items + 16) == g_true;
    bool timed = pointerAt(self, g_layout->tuple.items + 24) == g_true;
    if (after) {
        PyObject* result = callOutTuple(original, args, kwargs);
        if (!result) return nullptr;
        PyObject* withResult = py.buildValue("(OO)", result, args);
        PyObject* r = withResult ? py.call(observer, withResult, nullptr) : nullptr;
        if (r) py.decRef(r);
        if (withResult) py.decRef(withResult);
        py.clearError();  // the observer's trouble is not the program's
        return result;
    }
    PyObject* replaced = py.call(observer, args, kwargs);
    if (!replaced) py.clearError();
    bool isTuple = replaced && (field<unsigned long>(pointerAt(replaced, 8), 168) & (1ul << 26));
    // A loop's exception handler, called by Handle._run after the callback's
    // Context.run returned with an exception: a slow handler (a report sent
    // synchronously) blocks the loop too, so it is a stretch of its own (or
    // part of the callback it is called from).
    int slot = timed && timingAsyncioCallbacks() && onLoopThread() ? StallHook::instance().enter() : -1;
    PyObject* result = callOutTuple(original, isTuple ? replaced : args, kwargs);
    if (slot >= 0) StallHook::instance().leave(slot);
    if (replaced) py.decRef(replaced);
    return result;
}

PyMethodDef g_trampolineCallDef{"aioscope_observed", reinterpret_cast<void*>(&trampolineCall),
                                kMethVarargs | kMethKeywords, nullptr};

// _trampoline(original, observer, method, after=False, timed=False): the
// callable to install in place of `original`; with `method`, one that binds
// like a method; with `after`, the observer sees the result (observer(result,
// args)); with `timed`, the call of the original is timed as a loop callback
// on a loop's thread.
PyObject* trampolineFn(PyObject*, PyObject* args) {
    PyApi& py = python();
    PyObject *original = nullptr, *observer = nullptr;
    int method = 0, after = 0, timed = 0;
    if (!py.argParseTuple(args, "OOp|pp", &original, &observer, &method, &after, &timed)) return nullptr;
    PyObject* afterFlag = py.boolFromLong(after);
    PyObject* timedFlag = py.boolFromLong(timed);
    if (!g_true) g_true = py.boolFromLong(1);  // the True singleton, compared by address (a reference kept)
    PyObject* items = py.buildValue("(OOOO)", original, observer, afterFlag, timedFlag);
    py.decRef(afterFlag);
    py.decRef(timedFlag);
    if (!items) return nullptr;
    PyObject* fn = py.cfunctionNewEx(&g_trampolineCallDef, items, nullptr);
    py.decRef(items);
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
    py.clearError();  // a pending call that fails would raise in the program
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

// _exiting(status): the program is about to call os._exit(status).
PyObject* exitingFn(PyObject*, PyObject* args) {
    PyApi& py = python();
    long status = 0;
    if (!py.argParseTuple(args, "l", &status)) return nullptr;
    Observers::instance().programExits(status);
    return py.buildValue("");
}

PyMethodDef g_exitingDef{"_exiting", reinterpret_cast<void*>(&exitingFn), kMethVarargs, nullptr};
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

void Observers::afterForkInChild() {
    // A queue being written at the fork may be half-made: left as it is.
    if (!m_mutex.afterFork()) new (&m_events) std::deque<std::string>;
    m_events.clear();
    m_dropped = 0;
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

bool Observers::callInstall(const char* function, bool trackOrigins, bool unawaitedIn) {
    PyApi& py = python();
    if (!m_globals) {
        PyObject* globals = py.dictNew();
        if (!globals) return false;
        py.dictSetItemString(globals, "__builtins__", py.evalGetBuiltins());
        // The dict takes its own reference: ours is released (it leaked).
        if (PyObject* name = py.buildValue("s", "aioscope_observers")) {
            py.dictSetItemString(globals, "__name__", name);
            py.decRef(name);
        }
        PyObject* result = py.runString(kObserversSource, kFileInput, globals, globals);
        if (!result) {
            py.clearError();
            py.decRef(globals);
            return false;
        }
        py.decRef(result);
        if (PyObject* exiting = py.cfunctionNewEx(&g_exitingDef, nullptr, nullptr)) {
            py.dictSetItemString(globals, "_exiting", exiting);
            py.decRef(exiting);
        }
        m_globals = globals;  // lives on: a step in flight may still call into it
    }
    PyObject* installFn = py.dictGetItemString(m_globals, function);  // borrowed
    PyObject* emit = py.cfunctionNewEx(&g_emitDef, nullptr, nullptr);
    PyObject* handling = py.cfunctionNewEx(&g_handlingDef, nullptr, nullptr);
    PyObject* trampoline = py.cfunctionNewEx(&g_trampolineDef, nullptr, nullptr);
    PyObject* onMain = py.cfunctionNewEx(&g_onMainDef, nullptr, nullptr);
    PyObject* done = nullptr;
    if (installFn && emit && handling && trampoline && onMain) {
        // "i": Py_BuildValue makes the ints itself (PyBool_FromLong's new
        // references, passed with "O", leaked one each).
        PyObject* argsTuple =
            std::strcmp(function, "install") == 0
                ? py.buildValue("(OOOOisi)", emit, handling, trampoline, onMain, trackOrigins ? 1 : 0,
                                inheritedPytestCurrentTest().c_str(), unawaitedIn ? 1 : 0)
                : py.buildValue("(OOOOis)", emit, handling, trampoline, onMain, trackOrigins ? 1 : 0,
                                inheritedPytestCurrentTest().c_str());
        if (argsTuple) {
            done = py.call(installFn, argsTuple, nullptr);
            py.decRef(argsTuple);
        }
    }
    for (PyObject* o : {emit, handling, trampoline, onMain}) {
        if (o) py.decRef(o);
    }
    if (!done) {
        py.clearError();
        return false;
    }
    py.decRef(done);
    return true;
}

bool Observers::installUnawaited(const Layout& layout, bool trackOrigins) {
    if (m_active || m_unawaited) return true;
    // Set before any Python runs: running it may hand the GIL to another
    // installer (the audit hook's and the agent's), which must not install twice.
    m_unawaited = true;
    m_layout = layout;
    g_layout = &m_layout;
    if (!callInstall("install_unawaited", trackOrigins, false)) m_unawaited = false;
    return m_unawaited;
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
        py.clearError();
        if (handle) py.decRef(handle);
        return false;
    }
    m_layout = layout;
    g_layout = &m_layout;
    m_callbackOffset = slotOffset(handle, "_callback");
    m_argsOffset = slotOffset(handle, "_args");
    py.decRef(handle);

    bool unawaitedIn = m_unawaited.load();
    if (!callInstall("install", trackOrigins, unawaitedIn)) {
        queue("warning", "{\"message\": \"the observers could not be installed\"}");
        return false;
    }
    PyObject* globals = m_globals;
    m_begin = py.dictGetItemString(globals, "cancel_step_begin");
    m_end = py.dictGetItemString(globals, "cancel_step_end");
    m_loopStarts = py.dictGetItemString(globals, "loop_starts");
    m_active = m_begin && m_end;
    if (PyObject* uvloop = m_active ? py.importedModule("uvloop") : nullptr) {
        if (PyObject* loopClass = py.getAttrString(uvloop, "Loop")) {
            loopStarts(loopClass);
            py.decRef(loopClass);
        }
        py.clearError();
        py.decRef(uvloop);
    }
    return m_active;
}

void Observers::uninstall() {
    if (!m_active && !m_unawaited) return;
    m_active = false;
    m_unawaited = false;
    PyApi& py = python();
    if (PyObject* fn = py.dictGetItemString(m_globals, "uninstall")) {
        PyObject* none = py.buildValue("()");
        PyObject* r = none ? py.call(fn, none, nullptr) : nullptr;
        if (r) py.decRef(r);
        if (none) py.decRef(none);
        py.clearError();
    }
    // The namespace stays alive: a step in flight still calls cancel_step_end.
}

PyObject* Observers::taskOfStep(PyObject* callback, PyObject* firstArg, bool& cancellation) {
    cancellation = false;
    // Without the Task layout (3.14+ before _asyncio published it) nothing
    // is read from a task.
    if (!m_layout.asyncio.available || !callback) return nullptr;
    const auto& A = m_layout.asyncio;
    // Every callback passes here: the types and the method are recognised
    // by name once, then by address.
    const void* type = pointerAt(callback, 8);
    PyObject* task = nullptr;
    PyObject* wokenBy = nullptr;
    if (!type) return nullptr;
    if (type != m_stepType && type != m_builtinType) {
        const char* name = typeName(callback);
        if (std::strcmp(name, "TaskStepMethWrapper") == 0) {
            m_stepType = type;
        } else if (std::strcmp(name, "builtin_function_or_method") == 0) {
            m_builtinType = type;
        } else {
            return nullptr;
        }
    }
    if (type == m_stepType) {
        task = pointerAt(callback, 16);  // sw_task
    } else {
        const void* def = pointerAt(callback, 16);
        if (!def) return nullptr;
        if (def != m_wakeupDef) {
            const char* name = field<const char*>(def, 0);
            if (!name || std::strcmp(name, "task_wakeup") != 0) return nullptr;
            m_wakeupDef = def;  // _asyncio's static PyMethodDef
        }
        task = pointerAt(callback, 24);  // m_self
        wokenBy = firstArg;
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

void Observers::loopStarts(PyObject* loop) {
    if (!m_active || !m_loopStarts || !loop) return;
    PyApi& py = python();
    PyObject* argsTuple = py.buildValue("(O)", loop);
    PyObject* r = argsTuple ? py.call(m_loopStarts, argsTuple, nullptr) : nullptr;
    if (argsTuple) py.decRef(argsTuple);
    if (!r) {
        py.clearError();  // the observer's trouble is not the program's
        return;
    }
    // None: asyncio's own loop (or no loop); True/False: a foreign one,
    // observed or not.
    int observed = py.isTrue(r);
    bool foreign = std::strcmp(typeName(r), "bool") == 0;
    py.decRef(r);
    if (foreign) {
        m_foreignSeen = true;
        if (observed == 1) m_foreignObserved = true;
    }
}

PyObject* Observers::firstOf(PyObject* tuple) const {
    if (!m_active || !tuple || field<std::int64_t>(tuple, m_layout.tuple.size) < 1) return nullptr;
    return pointerAt(tuple, m_layout.tuple.items);
}

PyObject* Observers::stepBegin(PyObject* handle) {
    if (!m_active || !handle || m_callbackOffset < 0) return nullptr;
    PyObject* args = m_argsOffset >= 0 ? pointerAt(handle, m_argsOffset) : nullptr;
    PyObject* firstArg = args && field<std::int64_t>(args, 16) >= 1 ? pointerAt(args, m_layout.tuple.items) : nullptr;
    return stepBeginCall(pointerAt(handle, m_callbackOffset), firstArg);
}

PyObject* Observers::stepBeginCall(PyObject* callback, PyObject* firstArg) {
    if (!m_active) return nullptr;
    bool cancellation = false;
    PyObject* task = taskOfStep(callback, firstArg, cancellation);
    if (!task || !cancellation) return nullptr;
    PyApi& py = python();
    PyObject* argsTuple = py.buildValue("(O)", task);  // also our reference to the task
    if (!argsTuple) {
        py.clearError();
        return nullptr;
    }
    if (PyObject* r = py.call(m_begin, argsTuple, nullptr)) {
        py.decRef(r);
    } else {
        py.clearError();
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
        py.clearError();
    }
    if (failed) py.errRestore(type, value, tb);
    py.decRef(argsTuple);
}

}  // namespace aioscope::agent
