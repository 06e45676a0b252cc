#include "stall_hook.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "observers.h"
#include "pyapi.h"

namespace aioscope::agent {

namespace {

// The original Handle._run, kept for the life of the process: a wrapper
// installed later by someone else may still call ours after we detach.
PyObject* g_original = nullptr;
PyObject* g_wrapper = nullptr;  // our builtin function, as Handle._run returns it
thread_local int t_slot = -2;   // -2: not looked up yet, -1: no slot free

PyObject* runVectorcall(PyObject*, PyObject* const* args, std::size_t nargs, PyObject* kwnames) {
    auto& hook = StallHook::instance();
    auto& observers = Observers::instance();
    PyObject* cancelStep = observers.active() && nargs ? observers.stepBegin(args[0]) : nullptr;
    int slot = hook.enter();
    PyObject* result = python().vectorcall(g_original, args, nargs, kwnames);
    hook.leave(slot);
    if (cancelStep) observers.stepEnd(cancelStep, result == nullptr);
    return result;
}

PyObject* runTuple(PyObject*, PyObject* args, PyObject* kwargs) {
    auto& hook = StallHook::instance();
    auto& observers = Observers::instance();
    PyObject* cancelStep = observers.active() ? observers.stepBegin(observers.firstOf(args)) : nullptr;
    int slot = hook.enter();
    PyObject* result = python().call(g_original, args, kwargs);
    hook.leave(slot);
    if (cancelStep) observers.stepEnd(cancelStep, result == nullptr);
    return result;
}

PyMethodDef g_vectorcallDef{"_run", reinterpret_cast<void*>(&runVectorcall), kMethFastcall | kMethKeywords,
                            "asyncio Handle._run, timed by aioscope"};
PyMethodDef g_tupleDef{"_run", reinterpret_cast<void*>(&runTuple), kMethVarargs | kMethKeywords,
                       "asyncio Handle._run, timed by aioscope"};

PyObject* handleClass() {
    PyApi& py = python();
    PyObject* events = py.importedModule("asyncio.events");
    if (!events) return nullptr;
    PyObject* handle = py.getAttrString(events, "Handle");
    py.decRef(events);
    if (!handle) py.errClear();
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

bool StallHook::install(std::int64_t thresholdNs) {
    m_thresholdNs = thresholdNs;
    if (m_installed) return true;
    PyApi& py = python();
    PyObject* handle = handleClass();
    if (!handle) return false;
    PyObject* current = py.getAttrString(handle, "_run");
    if (!current) {
        py.errClear();
        py.decRef(handle);
        return false;
    }
    if (current == g_wrapper) {  // still in place from an earlier session
        py.decRef(current);
        py.decRef(handle);
        m_installed = true;
        return true;
    }
    PyMethodDef* def = py.vectorcall ? &g_vectorcallDef : &g_tupleDef;
    PyObject* func = py.cfunctionNewEx(def, nullptr, nullptr);
    PyObject* method = func ? py.instanceMethodNew(func) : nullptr;
    if (!method || py.setAttrString(handle, "_run", method) != 0) {
        py.errClear();
        if (func) py.decRef(func);
        if (method) py.decRef(method);
        py.decRef(current);
        py.decRef(handle);
        return false;
    }
    if (g_original) py.decRef(g_original);
    g_original = current;  // keeps the reference getAttrString gave us
    if (g_wrapper) py.decRef(g_wrapper);
    g_wrapper = func;      // keeps ours
    py.decRef(method);
    py.decRef(handle);
    m_installed = true;
    return true;
}

void StallHook::uninstall() {
    if (!m_installed) return;
    m_installed = false;
    PyApi& py = python();
    PyObject* handle = handleClass();
    if (!handle) return;
    PyObject* current = py.getAttrString(handle, "_run");
    if (!current) py.errClear();
    // Someone may have wrapped ours meanwhile: leave theirs in place.
    if (current == g_wrapper && py.setAttrString(handle, "_run", g_original) != 0) py.errClear();
    if (current) py.decRef(current);
    py.decRef(handle);
}

void StallHook::afterForkInChild() {
    for (int i = 0; i < kSlots; ++i) {
        if (i == t_slot) {
            m_slots[i].nativeId = static_cast<std::int32_t>(syscall(SYS_gettid));
        } else {
            m_slots[i].depth = 0;
            m_slots[i].threadId = 0;
        }
    }
    m_ringRead = m_ringWrite.load();
}

int StallHook::enter() {
    if (!m_installed) return -1;
    if (t_slot == -2) {
        t_slot = -1;
        auto self = static_cast<std::uint64_t>(pthread_self());
        for (int i = 0; i < kSlots; ++i) {
            std::uint64_t expected = 0;
            if (m_slots[i].threadId.compare_exchange_strong(expected, self)) {
                m_slots[i].nativeId = static_cast<std::int32_t>(syscall(SYS_gettid));
                t_slot = i;
                break;
            }
        }
    }
    if (t_slot < 0) return -1;
    LoopSlot& s = m_slots[t_slot];
    if (s.depth.load(std::memory_order_relaxed) == 0) {
        s.startNs.store(monotonicNs(), std::memory_order_relaxed);
        s.seq.fetch_add(1, std::memory_order_release);
    }
    s.depth.fetch_add(1, std::memory_order_release);
    return t_slot;
}

void StallHook::leave(int slot) {
    if (slot < 0) return;
    LoopSlot& s = m_slots[slot];
    if (s.depth.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    std::int64_t end = monotonicNs();
    std::int64_t start = s.startNs.load(std::memory_order_relaxed);
    if (end - start < m_thresholdNs.load(std::memory_order_relaxed)) return;
    std::uint64_t idx = m_ringWrite.fetch_add(1, std::memory_order_acq_rel);
    m_ring[idx % kRing].value = {slot, s.seq.load(std::memory_order_relaxed), start, end};
    m_ring[idx % kRing].ready.store(idx + 1, std::memory_order_release);
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
