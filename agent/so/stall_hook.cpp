#include "stall_hook.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "callout.h"
#include "context_run_hook.h"
#include "observers.h"
#include "pyapi.h"

namespace aioscope::agent {

namespace {

// Every wrapper of ours calls what it wrapped, for the life of the process:
// a wrapper installed later by someone else may still call ours after we
// detach, and we may attach again over theirs (ours, theirs, ours: each
// calls its own original, so the chain ends). A single "latest original"
// for all of ours recursed there, in every callback, until RecursionError.
//
// The method descriptor (the fast path, our first install) has no place
// for its original: it is this, set once. Later installs are builtin
// functions whose `self` is what they wrapped.
PyObject* g_descriptorOriginal = nullptr;
PyObject* g_descriptor = nullptr;  // ours, once made
PyObject* g_wrapper = nullptr;     // ours now in place, as Handle._run returns it
PyObject* g_wrapped = nullptr;     // what g_wrapper wrapped: put back on uninstall

// The handle our wrapper runs innermost on this thread: ours called again
// for it (through someone else's wrapper between two of ours) passes the
// call on without timing it twice. Keyed by the handle: a nested loop
// (nest_asyncio) runs other handles inside a callback.
thread_local PyObject* t_running = nullptr;

struct Running {
    explicit Running(PyObject* handle) : previous(t_running) { t_running = handle; }
    ~Running() { t_running = previous; }
    PyObject* previous;
};

PyObject* runVectorcall(PyObject* original, PyObject* const* args, std::size_t nargs, PyObject* kwnames) {
    PyObject* handle = nargs ? args[0] : nullptr;
    if (handle && handle == t_running) return callOutVector(python().vectorcall, original, args, nargs, kwnames);
    Running running(handle);
    auto& hook = StallHook::instance();
    auto& observers = Observers::instance();
    PyObject* cancelStep = observers.active() && handle ? observers.stepBegin(handle) : nullptr;
    int slot = hook.enter();
    hook.markHandleRun();
    PyObject* result = callOutVector(python().vectorcall, original, args, nargs, kwnames);
    hook.leave(slot);
    if (cancelStep) observers.stepEnd(cancelStep, result == nullptr);
    return result;
}

PyObject* runTuple(PyObject* original, PyObject* args, PyObject* kwargs) {
    auto& observers = Observers::instance();
    PyObject* handle = observers.firstOf(args);
    if (handle && handle == t_running) return callOutTuple(original, args, kwargs);
    Running running(handle);
    auto& hook = StallHook::instance();
    PyObject* cancelStep = observers.active() ? observers.stepBegin(handle) : nullptr;
    int slot = hook.enter();
    hook.markHandleRun();
    PyObject* result = callOutTuple(original, args, kwargs);
    hook.leave(slot);
    if (cancelStep) observers.stepEnd(cancelStep, result == nullptr);
    return result;
}

// How the method descriptor calls the original with a vector:
// PyObject_Vectorcall (3.11+), or 3.10's _PyFunction_Vectorcall when the
// original is a Python function (it is, unless someone wrapped it first).
VectorcallFn g_callOriginal = nullptr;

// The wrapper as a method descriptor of Handle (the usual install): `self`
// is the handle. The interpreter calls a method descriptor without creating
// a bound method object first (the instancemethod above costs one per
// callback), and specializes the call site for it.
PyObject* runMethod(PyObject* self, PyObject* const* args, std::ptrdiff_t nargs, PyObject* kwnames) {
    auto& hook = StallHook::instance();
    auto& observers = Observers::instance();
    PyApi& py = python();
    std::ptrdiff_t nkw = kwnames ? py.tupleSize(kwnames) : 0;
    if (nkw < 0) return nullptr;
    // The original's arguments: self, then ours (none, from asyncio).
    constexpr std::ptrdiff_t kOnStack = 8;
    PyObject* onStack[kOnStack + 1];
    std::vector<PyObject*> onHeap;
    PyObject** all = onStack;
    if (nargs + nkw > kOnStack) {
        onHeap.resize(static_cast<std::size_t>(nargs + nkw + 1));
        all = onHeap.data();
    }
    all[0] = self;
    for (std::ptrdiff_t i = 0; i < nargs + nkw; ++i) all[i + 1] = args[i];
    auto count = static_cast<std::size_t>(nargs + 1);
    if (self == t_running) return callOutVector(g_callOriginal, g_descriptorOriginal, all, count, kwnames);
    Running running(self);
    PyObject* cancelStep = observers.active() ? observers.stepBegin(self) : nullptr;
    int slot = hook.enter();
    hook.markHandleRun();
    PyObject* result = callOutVector(g_callOriginal, g_descriptorOriginal, all, count, kwnames);
    hook.leave(slot);
    if (cancelStep) observers.stepEnd(cancelStep, result == nullptr);
    return result;
}

PyMethodDef g_vectorcallDef{"_run", reinterpret_cast<void*>(&runVectorcall), kMethFastcall | kMethKeywords,
                            "asyncio Handle._run, timed by aioscope"};
PyMethodDef g_tupleDef{"_run", reinterpret_cast<void*>(&runTuple), kMethVarargs | kMethKeywords,
                       "asyncio Handle._run, timed by aioscope"};
PyMethodDef g_methodDef{"_run", reinterpret_cast<void*>(&runMethod), kMethFastcall | kMethKeywords,
                        "asyncio Handle._run, timed by aioscope"};

const char* typeName(PyObject* obj) {
    const void* type = *reinterpret_cast<void* const*>(reinterpret_cast<const char*>(obj) + 8);
    return type ? *reinterpret_cast<const char* const*>(static_cast<const char*>(type) + 24) : "";
}

// The method descriptor wrapping `original` (made once, for the first
// original it can wrap), or null where it cannot be made.
PyObject* methodWrapper(PyObject* handle, PyObject* original) {
    PyApi& py = python();
    if (g_descriptor) return g_descriptorOriginal == original ? g_descriptor : nullptr;
    if (!py.descrNewMethod || !py.tupleSize) return nullptr;
    if (py.vectorcall) {
        g_callOriginal = py.vectorcall;
    } else if (py.functionVectorcall && std::strcmp(typeName(original), "function") == 0) {
        g_callOriginal = py.functionVectorcall;
    } else {
        return nullptr;
    }
    PyObject* descr = py.descrNewMethod(handle, &g_methodDef);
    if (!descr) {
        py.clearError();
        return nullptr;
    }
    // Both live for the process (set before the descriptor is installed).
    g_descriptor = descr;
    g_descriptorOriginal = original;
    py.incRef(original);
    return g_descriptor;
}

// A new reference to our wrapper of `original`: the descriptor when it
// wraps exactly that, else a builtin function whose `self` is `original`.
PyObject* wrapperOf(PyObject* handle, PyObject* original) {
    PyApi& py = python();
    if (PyObject* descr = methodWrapper(handle, original)) {
        py.incRef(descr);
        return descr;
    }
    PyMethodDef* def = py.vectorcall ? &g_vectorcallDef : &g_tupleDef;
    return py.cfunctionNewEx(def, original, nullptr);
}

PyObject* handleClass() {
    PyApi& py = python();
    PyObject* events = py.importedModule("asyncio.events");
    if (!events) return nullptr;
    PyObject* handle = py.getAttrString(events, "Handle");
    py.decRef(events);
    if (!handle) py.clearError();
    return handle;
}

}  // namespace

std::int64_t monotonicNs() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

StallHook& StallHook::instance() {
    static StallHook* hook = new StallHook;  // never destroyed: see Agent::instance()
    return *hook;
}

bool StallHook::install(std::int64_t thresholdNs, bool loopsWatched) {
    m_thresholdNs = thresholdNs;
    // enable() (trio) may have turned timing on already: Handle._run still
    // needs its wrapper.
    if (m_installed && (m_wrapped || timingAsyncioCallbacks())) return true;
    PyApi& py = python();
    PyObject* handle = handleClass();
    if (!handle) return false;
    // The cheap way: at Context.run, which Handle._run calls, on the threads
    // where a loop runs (which the wrapper of _set_running_loop tells).
    if (!m_wrapped && loopsWatched && patchContextRun().empty()) {
        py.decRef(handle);
        forgetLoopThreads();
        timeAsyncioCallbacks(true);
        m_installedAtNs = monotonicNs();
        m_installed = true;
        return true;
    }
    PyObject* current = py.getAttrString(handle, "_run");
    if (!current) {
        py.clearError();
        py.decRef(handle);
        return false;
    }
    if (current == g_wrapper) {  // still in place from an earlier session
        py.decRef(current);
        py.decRef(handle);
        m_installedAtNs = monotonicNs();
        m_wrapped = true;
        m_installed = true;
        return true;
    }
    PyObject* func = wrapperOf(handle, current);
    PyObject* method = nullptr;
    if (func && func == g_descriptor) {
        method = func;  // Handle._run returns the descriptor itself
        py.incRef(method);
    } else if (func) {
        method = py.instanceMethodNew(func);
    }
    if (!method || py.setAttrString(handle, "_run", method) != 0) {
        py.clearError();
        if (func) py.decRef(func);
        if (method) py.decRef(method);
        py.decRef(current);
        py.decRef(handle);
        return false;
    }
    if (g_wrapper) py.decRef(g_wrapper);
    if (g_wrapped) py.decRef(g_wrapped);
    g_wrapper = func;      // keeps ours
    g_wrapped = current;   // keeps the reference getAttrString gave us
    py.decRef(method);
    py.decRef(handle);
    m_installedAtNs = monotonicNs();
    m_wrapped = true;
    m_installed = true;
    return true;
}

void StallHook::enable(std::int64_t thresholdNs) {
    m_thresholdNs = thresholdNs;
    if (m_installed) return;
    m_installedAtNs = monotonicNs();
    m_installed = true;
}

void StallHook::uninstall() {
    if (!m_installed) return;
    m_installed = false;
    timeAsyncioCallbacks(false);
    if (!m_wrapped) return;
    m_wrapped = false;
    PyApi& py = python();
    PyObject* handle = handleClass();
    if (!handle) return;
    PyObject* current = py.getAttrString(handle, "_run");
    if (!current) py.clearError();
    // Someone may have wrapped ours meanwhile: leave theirs in place.
    if (current == g_wrapper && py.setAttrString(handle, "_run", g_wrapped) != 0) py.clearError();
    if (current) py.decRef(current);
    py.decRef(handle);
}

void StallHook::afterForkInChild() {
    int mine = t_hooks.slot;
    for (int i = 0; i < kSlots; ++i) {
        if (i == mine) {
            m_slots[i].nativeId = static_cast<std::int32_t>(syscall(SYS_gettid));
            // A callback that forked is the parent's: its rest in the child
            // is not timed (a pool worker forked there runs its whole life
            // inside it and never returns to the loop: a false stall).
            if (m_slots[i].depth.load() > 0) {
                m_forkedSeq = m_slots[i].seq.load();
                m_forkedThread = static_cast<std::uint64_t>(pthread_self());
            }
            m_slots[i].depth = 0;
        } else {
            m_slots[i].depth = 0;
            m_slots[i].threadId = 0;
        }
    }
    m_ringRead = m_ringWrite.load();
}

bool StallHook::insideForkedCallback(std::uint64_t tid) {
    if (!tid || tid != m_forkedThread.load(std::memory_order_acquire)) return false;
    for (auto& s : m_slots) {
        if (s.threadId.load(std::memory_order_acquire) == tid) return s.seq.load(std::memory_order_acquire) == m_forkedSeq;
    }
    return false;
}

int StallHook::ownSlot(ThreadHooks& thread) {
    int& mine = thread.slot;
    if (mine == -2) {
        mine = -1;
        auto self = static_cast<std::uint64_t>(pthread_self());
        for (int i = 0; i < kSlots; ++i) {
            std::uint64_t expected = 0;
            if (m_slots[i].threadId.compare_exchange_strong(expected, self)) {
                m_slots[i].nativeId = static_cast<std::int32_t>(syscall(SYS_gettid));
                mine = i;
                break;
            }
        }
    }
    return mine;
}

// A slot's seq, depth and start are written by its own thread only: plain
// stores (ordered on x86 and by `release` elsewhere) are enough for the
// sampler's reads, and cost less than a locked read-modify-write each.
int StallHook::enter(ThreadHooks& thread, bool* outermost) {
    if (!m_installed.load(std::memory_order_relaxed)) return -1;
    int mine = ownSlot(thread);
    if (mine < 0) return -1;
    LoopSlot& s = m_slots[mine];
    int depth = s.depth.load(std::memory_order_relaxed);
    if (outermost) *outermost = depth == 0;
    if (depth == 0) {
        s.startNs.store(monotonicNs(), std::memory_order_relaxed);
        s.seq.store(s.seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    s.depth.store(depth + 1, std::memory_order_release);
    return mine;
}

void StallHook::recordIfLong(int slot, std::int64_t start, std::int64_t end) {
    if (end - start < m_thresholdNs.load(std::memory_order_relaxed)) return;
    std::uint64_t idx = m_ringWrite.fetch_add(1, std::memory_order_acq_rel);
    m_ring[idx % kRing].value = {slot, m_slots[slot].seq.load(std::memory_order_relaxed), start, end};
    m_ring[idx % kRing].ready.store(idx + 1, std::memory_order_release);
}

void StallHook::leave(int slot) {
    if (slot < 0) return;
    LoopSlot& s = m_slots[slot];
    int depth = s.depth.load(std::memory_order_relaxed);
    if (depth <= 0) return;  // reset by a fork meanwhile
    if (depth == 1) {
        std::int64_t start = s.startNs.load(std::memory_order_relaxed);
        std::int64_t end = monotonicNs();
        s.depth.store(0, std::memory_order_release);
        recordIfLong(slot, start, end);
        return;
    }
    s.depth.store(depth - 1, std::memory_order_release);
}

bool StallHook::enterNested() {
    if (!m_installed.load(std::memory_order_relaxed)) return false;
    int mine = ownSlot(t_hooks);
    if (mine < 0) return false;
    LoopSlot& s = m_slots[mine];
    std::int64_t now = monotonicNs();
    if (s.depth.load(std::memory_order_relaxed) > 0) recordIfLong(mine, s.startNs.load(std::memory_order_relaxed), now);
    s.startNs.store(now, std::memory_order_relaxed);
    s.subject.store(0, std::memory_order_relaxed);
    s.seq.fetch_add(1, std::memory_order_release);
    s.depth.fetch_add(1, std::memory_order_release);
    return true;
}

void StallHook::setSubject(std::uint64_t subject) {
    int mine = t_hooks.slot;
    if (mine >= 0) m_slots[mine].subject.store(subject, std::memory_order_release);
}

void StallHook::leaveNested() {
    int mine = t_hooks.slot;
    if (mine < 0) return;
    LoopSlot& s = m_slots[mine];
    if (s.depth.load(std::memory_order_relaxed) <= 0) return;
    std::int64_t now = monotonicNs();
    recordIfLong(mine, s.startNs.load(std::memory_order_relaxed), now);
    if (s.depth.load(std::memory_order_relaxed) > 1) {
        // Back in the handle around it: a new stretch, then one level less.
        s.startNs.store(now, std::memory_order_relaxed);
        s.subject.store(0, std::memory_order_relaxed);
        s.seq.fetch_add(1, std::memory_order_release);
    }
    s.depth.fetch_sub(1, std::memory_order_acq_rel);
}

std::vector<LongCallback> StallHook::drainLong() {
    std::vector<LongCallback> out;
    std::uint64_t written = m_ringWrite.load(std::memory_order_acquire);
    if (written - m_ringRead > kRing) m_ringRead = written - kRing;  // overwritten: skip
    while (m_ringRead < written) {
        const Entry& e = m_ring[m_ringRead % kRing];
        if (e.ready.load(std::memory_order_acquire) != m_ringRead + 1) break;  // not published yet
        out.push_back(e.value);
        ++m_ringRead;
    }
    return out;
}

}  // namespace aioscope::agent
