#include "context_run_hook.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "callout.h"
#include "observers.h"
#include "stall_hook.h"

namespace aioscope::agent {

namespace {

std::atomic<FastKeywordsFn> g_contextRun{nullptr};  // CPython's, kept for the process
std::atomic<bool> g_asyncio{false};
// Bumped at each install (a thread's role learnt in an earlier session is
// stale) and by every recheck: each thread asks again at its next call.
std::atomic<std::uint32_t> g_epoch{1};
// The epoch the current session began with.
std::atomic<std::uint32_t> g_sessionEpoch{1};
// Loops found running by a recheck on threads the wrapper of
// _set_running_loop had not marked: how many, and the threads of the last
// kUnseenKept (start n in slot n % kUnseenKept). Written under the GIL only,
// so one writer at a time; the count is stored after its slot.
std::atomic<std::uint32_t> g_unseenStarts{0};
std::atomic<std::uint64_t> g_unseenThreads[kUnseenKept];

bool askRunningLoop() {
    PyApi& py = python();
    PyObject* events = py.importedModule("asyncio.events");
    if (!events) return false;
    PyObject* fn = py.getAttrString(events, "_get_running_loop");
    py.decRef(events);
    PyObject* noArgs = fn ? py.buildValue("()") : nullptr;
    PyObject* loop = noArgs ? py.call(fn, noArgs, nullptr) : nullptr;
    bool running = loop && loop != py.none();
    for (PyObject* o : {fn, noArgs, loop}) {
        if (o) py.decRef(o);
    }
    if (!loop) py.clearError();
    return running;
}

PyObject* callOriginal(PyObject* self, PyObject* const* args, std::ptrdiff_t nargs, PyObject* kwnames) {
    return callOutMethod(g_contextRun.load(std::memory_order_relaxed), self, args, nargs, kwnames);
}

bool isLoopThread(ThreadHooks& thread) {
    std::uint32_t epoch = g_epoch.load(std::memory_order_relaxed);
    if (thread.loopEpoch != epoch) {
        bool was = thread.loop;
        bool learntThisSession = thread.loopEpoch >= g_sessionEpoch.load(std::memory_order_relaxed);
        thread.loop = askRunningLoop();
        thread.loopEpoch = epoch;
        if (thread.loop && !was && learntThisSession) {
            // A loop started here without our wrapper of _set_running_loop
            // (something replaced it, or called a reference taken before):
            // its callbacks until now went untimed.
            std::uint32_t n = g_unseenStarts.load(std::memory_order_relaxed);
            g_unseenThreads[n % kUnseenKept].store(static_cast<std::uint64_t>(pthread_self()),
                                                   std::memory_order_relaxed);
            g_unseenStarts.store(n + 1, std::memory_order_release);
        }
    }
    return thread.loop;
}

// The wrapper in Context's method table.
PyObject* contextRun(PyObject* self, PyObject* const* args, std::ptrdiff_t nargs, PyObject* kwnames) {
    ThreadHooks& thread = t_hooks;
    auto& hook = StallHook::instance();
    if (thread.uvloop) {
        bool timed = hook.enterNested();
        PyObject* r = callOriginal(self, args, nargs, kwnames);
        if (timed) hook.leaveNested();
        return r;
    }
    if (!g_asyncio.load(std::memory_order_relaxed) || !isLoopThread(thread)) {
        return callOriginal(self, args, nargs, kwnames);
    }
    bool outermost = false;
    int slot = hook.enter(thread, &outermost);
    if (slot < 0) return callOriginal(self, args, nargs, kwnames);
    hook.markHandleRun();
    // A task step whose cancellation is to be traced: args are the step's
    // callback and its first argument (the future that woke the task).
    auto& observers = Observers::instance();
    PyObject* cancelStep = outermost && observers.active() && nargs >= 1
                               ? observers.stepBeginCall(args[0], nargs >= 2 ? args[1] : nullptr)
                               : nullptr;
    PyObject* result = callOriginal(self, args, nargs, kwnames);
    hook.leave(slot);
    if (cancelStep) observers.stepEnd(cancelStep, result == nullptr);
    return result;
}

// The protection of the mapping holding `addr`, from /proc/self/maps; -1 if not found.
int protectionOf(std::uintptr_t addr) {
    FILE* maps = std::fopen("/proc/self/maps", "re");
    if (!maps) return -1;
    char line[512];
    int prot = -1;
    while (std::fgets(line, sizeof line, maps)) {
        unsigned long start = 0, end = 0;
        char perms[5] = {};
        if (std::sscanf(line, "%lx-%lx %4s", &start, &end, perms) != 3) continue;
        if (addr < start || addr >= end) continue;
        prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
               (perms[2] == 'x' ? PROT_EXEC : 0);
        break;
    }
    std::fclose(maps);
    return prot;
}

}  // namespace

std::string patchContextRun() {
    if (g_contextRun.load()) return "";
    PyApi& py = python();
    PyObject* module = py.importedModule("_contextvars");
    PyObject* type = module ? py.getAttrString(module, "Context") : nullptr;
    PyObject* descr = type ? py.getAttrString(type, "run") : nullptr;
    if (!descr) py.clearError();
    for (PyObject* o : {module, type}) {
        if (o) py.decRef(o);
    }
    if (!descr) return "contextvars.Context.run was not found";
    std::string why;
    // PyMethodDescrObject: PyDescr_COMMON (object head, d_type, d_name,
    // d_qualname), then d_method, the PyMethodDef {ml_name, ml_meth, ml_flags, ...}.
    const void* type_ = *reinterpret_cast<void* const*>(reinterpret_cast<const char*>(descr) + 8);
    const char* typeName = type_ ? *reinterpret_cast<const char* const*>(reinterpret_cast<const char*>(type_) + 24) : "";
    auto* def = std::strcmp(typeName, "method_descriptor") == 0
                    ? *reinterpret_cast<char**>(reinterpret_cast<char*>(descr) + 40)
                    : nullptr;
    const char* name = def ? *reinterpret_cast<const char**>(def) : nullptr;
    int flags = def ? *reinterpret_cast<int*>(def + 16) : 0;
    if (!def || !name || std::strcmp(name, "run") != 0 || flags != (kMethFastcall | kMethKeywords)) {
        why = "contextvars.Context.run is not the method this agent knows";
    } else {
        auto** slot = reinterpret_cast<void**>(def + 8);
        auto original = reinterpret_cast<FastKeywordsFn>(*slot);
        long page = sysconf(_SC_PAGESIZE);
        auto pageStart = reinterpret_cast<std::uintptr_t>(slot) & ~static_cast<std::uintptr_t>(page - 1);
        int prot = protectionOf(reinterpret_cast<std::uintptr_t>(slot));
        bool writable = prot >= 0 && (prot & PROT_WRITE);
        if (prot < 0 || (!writable && mprotect(reinterpret_cast<void*>(pageStart), page, prot | PROT_WRITE) != 0)) {
            why = "CPython's method table for Context could not be written";
        } else {
            g_contextRun.store(original);
            __atomic_store_n(slot, reinterpret_cast<void*>(&contextRun), __ATOMIC_RELEASE);
            if (!writable) mprotect(reinterpret_cast<void*>(pageStart), page, prot);
        }
    }
    py.decRef(descr);
    return why;
}

void timeAsyncioCallbacks(bool on) { g_asyncio.store(on); }
bool timingAsyncioCallbacks() { return g_asyncio.load(); }

void markLoopThread(bool running) {
    ThreadHooks& thread = t_hooks;
    thread.loopEpoch = g_epoch.load(std::memory_order_relaxed);
    thread.loop = running;
}

void forgetLoopThreads() { g_sessionEpoch.store(g_epoch.fetch_add(1) + 1); }

void recheckLoopThreads() { g_epoch.fetch_add(1); }

std::uint32_t unseenLoopStarts(std::uint32_t since, std::vector<std::uint64_t>* threads) {
    std::uint32_t n = g_unseenStarts.load(std::memory_order_acquire);
    if (threads) {
        // Unsigned differences: the count may wrap.
        std::uint32_t first = n - since > kUnseenKept ? n - kUnseenKept : since;
        for (std::uint32_t i = first; i != n; ++i) {
            threads->push_back(g_unseenThreads[i % kUnseenKept].load(std::memory_order_relaxed));
        }
    }
    return n;
}

bool onLoopThread() { return isLoopThread(t_hooks); }

void markUvloopThread() { t_hooks.uvloop = true; }

}  // namespace aioscope::agent
