#include "walk/boundary.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <set>

#include "walk/python_facts.h"

namespace aioscope {

namespace {

constexpr std::size_t kMaxDequeItems = 4096;

struct Node {
    bool thread = false;
    std::uint64_t id = 0;
};
constexpr std::size_t kMaxCallbacks = 256;

struct KnownWait {
    const char* file;      // suffix of co_filename
    const char* function;  // co_name (3.10 has no co_qualname)
    const char* kind;      // refined by the class of `self`
};

// Library functions a thread blocks in on behalf of its caller. Event.wait
// waits in Condition.wait, Queue.get in Condition.wait, Future.result in
// Condition.wait: the outermost of the innermost run of these names it.
constexpr std::array kKnownWaits{
    KnownWait{"/threading.py", "wait", "condition"},
    KnownWait{"/threading.py", "wait_for", "condition"},
    KnownWait{"/threading.py", "acquire", "semaphore"},
    KnownWait{"/threading.py", "join", "join"},
    KnownWait{"/threading.py", "_wait_for_tstate_lock", "join"},
    KnownWait{"/queue.py", "get", "queue-get"},
    KnownWait{"/queue.py", "put", "queue-put"},
    KnownWait{"/queue.py", "join", "queue-join"},
    KnownWait{"/concurrent/futures/_base.py", "result", "future-result"},
    KnownWait{"/concurrent/futures/_base.py", "exception", "future-result"},
    KnownWait{"/concurrent/futures/_base.py", "wait", "futures-wait"},
    KnownWait{"/concurrent/futures/_base.py", "as_completed", "futures-wait"},
};

bool isLibrary(const std::string& file) {
    return file.ends_with("/threading.py") || file.ends_with("/queue.py") ||
           file.ends_with("/concurrent/futures/_base.py");
}

std::string refine(const std::string& kind, const std::string& selfType) {
    if (kind == "condition" && selfType == "Event") return "event";
    if (kind == "condition" && selfType == "Barrier") return "barrier";
    return kind;
}

}  // namespace

Addr BoundaryReader::self(const RawFrame& frame) {
    Addr v = 0;
    if (!m_objects.mem().tryRead(frame.locals, &v, 8)) return 0;
    v &= ~m_objects.layout().stackRefTagMask;
    if (v && m_objects.builtinTypeNameOf(v) == "cell") v = m_objects.mem().ptr(v + m_objects.layout().callable.cellRef, "cell");
    return v;
}

bool BoundaryReader::isLock(Addr obj) { return obj && m_objects.builtinTypeNameOf(obj) == "_thread.lock"; }
bool BoundaryReader::isRLock(Addr obj) { return obj && m_objects.builtinTypeNameOf(obj) == "_thread.RLock"; }

bool BoundaryReader::lockTaken(Addr lock) {
    const Layout& L = m_objects.layout();
    if (L.threading.lockLocked == kAbsent) return false;
    return (m_objects.mem().get<std::uint8_t>(lock + L.threading.lockLocked, "lock state") & L.threading.lockLockedMask) != 0;
}

std::optional<std::uint64_t> BoundaryReader::rlockOwner(Addr lock) {
    const Layout& L = m_objects.layout();
    if (L.threading.rlockOwner == kAbsent) return std::nullopt;
    auto owner = m_objects.mem().get<std::uint64_t>(lock + L.threading.rlockOwner, "rlock owner");
    if (!owner) return std::nullopt;
    return owner;
}

std::vector<Addr> BoundaryReader::closureObjects(Addr function) {
    const Layout& L = m_objects.layout();
    std::vector<Addr> out;
    if (!function || m_objects.builtinTypeNameOf(function) != "function") return out;
    Addr closure = m_objects.mem().ptr(function + L.callable.closure, "func_closure");
    if (!closure) return out;
    for (Addr cell : m_objects.tupleItems(closure)) {
        if (m_objects.builtinTypeNameOf(cell) != "cell") continue;
        if (Addr v = m_objects.mem().ptr(cell + L.callable.cellRef, "cell contents")) out.push_back(v);
    }
    return out;
}

std::optional<Addr> BoundaryReader::concurrentOf(Addr future) {
    if (!m_classes.cfFuture) return std::nullopt;
    for (Addr cb : m_wakers.callbacks(future)) {
        if (m_wakers.functionName(cb) != "_call_check_cancel") continue;
        for (Addr obj : closureObjects(cb)) {
            if (m_fields.isInstanceOf(obj, m_classes.cfFuture)) return obj;
        }
    }
    return std::nullopt;
}

std::optional<Addr> BoundaryReader::asyncioOf(Addr cf) {
    auto list = m_fields.get(cf, "_done_callbacks");
    if (!list || m_objects.builtinTypeNameOf(*list) != "list") return std::nullopt;
    auto cbs = m_objects.listItems(*list);
    if (cbs.size() > kMaxCallbacks) cbs.resize(kMaxCallbacks);
    for (Addr cb : cbs) {
        std::string name = m_wakers.functionName(cb);
        if (name != "_call_check_cancel" && name != "_call_set_state") continue;
        for (Addr obj : closureObjects(cb)) {
            if (m_objects.isInstance(obj, "_asyncio.Future", true)) return obj;
        }
    }
    return std::nullopt;
}

std::vector<Addr> BoundaryReader::dequeItems(Addr deque) {
    const auto& D = m_objects.layout().deque;
    Remote& mem = m_objects.mem();
    auto n = mem.get<std::int64_t>(deque + D.size, "deque size");
    if (n < 0 || static_cast<std::size_t>(n) > kMaxDequeItems) throw BadRead("implausible deque size");
    Addr block = mem.ptr(deque + D.leftblock, "deque leftblock");
    auto index = mem.get<std::int64_t>(deque + D.leftindex, "deque leftindex");
    if (index < 0 || index >= D.blockLen) throw BadRead("implausible deque index");
    std::vector<Addr> out;
    for (std::int64_t i = 0; i < n; ++i) {
        if (!block) throw BadRead("deque block missing");
        out.push_back(mem.ptr(block + D.blockData + 8 * index, "deque item"));
        if (++index == D.blockLen) {
            block = mem.ptr(block + D.rightlink, "deque rightlink");
            index = 0;
        }
    }
    return out;
}

std::vector<Addr> BoundaryReader::simpleQueueItems(Addr queue) {
    const auto& Q = m_objects.layout().simpleQueue;
    Remote& mem = m_objects.mem();
    std::vector<Addr> out;
    if (Q.list != kAbsent) {
        Addr list = mem.ptr(queue + Q.list, "SimpleQueue list");
        auto pos = mem.get<std::int64_t>(queue + Q.listPos, "SimpleQueue position");
        auto items = list ? m_objects.listItems(list) : std::vector<Addr>{};
        if (pos < 0 || static_cast<std::size_t>(pos) > items.size()) throw BadRead("implausible SimpleQueue position");
        out.assign(items.begin() + pos, items.end());
    } else if (Q.ringItems != kAbsent) {
        auto get = mem.get<std::int64_t>(queue + Q.ringGet, "SimpleQueue get index");
        Addr items = mem.ptr(queue + Q.ringItems, "SimpleQueue items");
        auto cap = mem.get<std::int64_t>(queue + Q.ringCap, "SimpleQueue capacity");
        auto n = mem.get<std::int64_t>(queue + Q.ringCount, "SimpleQueue count");
        if (cap <= 0 || cap > (1 << 24) || n < 0 || n > cap || get < 0 || get >= cap || (n && !items)) {
            throw BadRead("implausible SimpleQueue ring");
        }
        for (std::int64_t i = 0; i < n && out.size() < kMaxDequeItems; ++i) {
            out.push_back(mem.ptr(items + 8 * static_cast<Addr>((get + i) % cap), "SimpleQueue item"));
        }
    }
    if (out.size() > kMaxDequeItems) out.resize(kMaxDequeItems);
    return out;
}

// run_coroutine_threadsafe schedules a `callback` closure over the future it
// returns with call_soon_threadsafe: while it is in the loop's ready queue,
// the coroutine has not started.
bool BoundaryReader::startQueued(Addr loop, Addr cf) {
    auto ready = m_fields.get(loop, "_ready");
    if (!ready || m_objects.builtinTypeNameOf(*ready) != "collections.deque") return false;
    for (Addr handle : dequeItems(*ready)) {
        auto cb = m_fields.get(handle, "_callback");
        if (!cb || m_wakers.functionName(*cb) != "callback") continue;
        auto objs = closureObjects(*cb);
        if (std::find(objs.begin(), objs.end(), cf) != objs.end()) return true;
    }
    return false;
}

std::optional<ThreadWait> BoundaryReader::knownWait(const std::vector<RawFrame>& raws) {
    const KnownWait* known = nullptr;
    const RawFrame* at = nullptr;
    for (const auto& raw : raws) {
        const CodeInfo& code = m_frames.codes().get(raw.code);
        if (!isLibrary(code.filename)) break;
        for (const auto& k : kKnownWaits) {
            if (code.name == k.function && code.filename.ends_with(k.file)) {
                known = &k;
                at = &raw;
            }
        }
    }
    if (!known) return std::nullopt;
    ThreadWait w;
    w.kind = known->kind;
    Addr s = self(*at);
    if (!s) return std::nullopt;
    std::string type = m_objects.typeNameOf(s);
    w.kind = refine(w.kind, type);
    if (w.kind == "semaphore" && type != "Semaphore" && type != "BoundedSemaphore") return std::nullopt;
    if (w.kind == "futures-wait") {
        const std::string& ct = m_objects.builtinTypeNameOf(s);
        if (ct == "set" || ct == "frozenset") w.futures = m_objects.setItems(s);
        else if (ct == "list") w.futures = m_objects.listItems(s);
        else if (ct == "tuple") w.futures = m_objects.tupleItems(s);
        std::sort(w.futures.begin(), w.futures.end());
        return w;
    }
    w.object = s;
    w.objectType = type;
    if (w.kind == "join") {
        if (auto ident = m_fields.get(s, "_ident")) {
            if (auto v = m_objects.integer(*ident); v && *v > 0) w.thread = static_cast<std::uint64_t>(*v);
        }
    } else if (w.kind == "future-result") {
        if (auto fut = asyncioOf(s)) {
            w.task = *fut;
            w.loop = m_objects.mem().ptr(*fut + m_objects.layout().asyncio.futLoop, "fut_loop");
        }
    }
    return w;
}

std::optional<ThreadWait> BoundaryReader::lockWait(const Thread& t, const RawFrame& frame) {
    const Layout& L = m_objects.layout();
    const CodeInfo& code = m_frames.codes().get(frame.code);
    if (isLibrary(code.filename) || code.filename.ends_with("/concurrent/futures/thread.py")) return std::nullopt;
    // A thread that has the GIL is running Python code, not blocked in an acquire.
    if (t.holdsGil) return std::nullopt;
    std::set<Addr> candidates;
    for (const auto& name : m_locals.names(frame.code)) {
        if (auto v = m_locals.get(frame, name)) candidates.insert(*v);
    }
    // `with self._lock:` and `with LOCK:` name the lock in co_names.
    Addr s = self(frame);
    Addr globals = L.frame.globals != kAbsent ? m_objects.mem().ptr(frame.addr + L.frame.globals, "f_globals") : 0;
    Addr names = m_objects.mem().ptr(frame.code + L.code.names, "co_names");
    for (Addr item : names ? m_objects.tupleItems(names) : std::vector<Addr>{}) {
        auto name = m_objects.str(item, 256);
        if (!name) continue;
        if (s && m_objects.isPythonClass(m_objects.typeOf(s))) {
            if (auto v = m_fields.get(s, *name)) candidates.insert(*v);
        }
        if (globals && m_objects.builtinTypeNameOf(globals) == "dict") {
            if (auto v = m_objects.dictGet(globals, *name)) candidates.insert(*v);
        }
    }
    std::optional<ThreadWait> found;
    for (Addr c : candidates) {
        ThreadWait w;
        if (isLock(c)) {
            if (!lockTaken(c) || std::count(t.holds.begin(), t.holds.end(), c)) continue;
            w.kind = "lock";
        } else if (isRLock(c)) {
            auto owner = rlockOwner(c);
            if (!owner || *owner == t.threadId) continue;
            w.kind = "rlock";
            w.owner = owner;
        } else {
            continue;
        }
        if (found) return std::nullopt;  // two taken locks: which one is unknown
        w.object = c;
        w.objectType = m_objects.typeNameOf(c);
        found = std::move(w);
    }
    return found;
}

std::vector<Addr> BoundaryReader::heldLocks(const std::vector<RawFrame>& raws) {
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    std::vector<Addr> held;
    auto add = [&](Addr lock) {
        if ((isLock(lock) || isRLock(lock)) && std::find(held.begin(), held.end(), lock) == held.end()) held.push_back(lock);
    };
    for (const auto& raw : raws) {
        auto slots = m_live.slots(raw);
        for (std::size_t i = 0; i < slots.size(); ++i) {
            if (L.stackRefTagMask && (slots[i] & L.stackRefTagMask) == 3) continue;  // a tagged int
            Addr v = slots[i] & ~L.stackRefTagMask;
            if (!v) continue;
            Addr next = i + 1 < slots.size() ? slots[i + 1] & ~L.stackRefTagMask : 0;
            const std::string& type = m_objects.builtinTypeNameOf(v);
            if (type == "builtin_function_or_method") {
                // 3.10-3.13: `with lock:` keeps the bound lock.__exit__.
                Addr def = mem.ptr(v + L.callable.cfuncDef, "m_ml");
                Addr namePtr = def ? mem.ptr(def, "ml_name") : 0;
                char name[9] = {};
                if (namePtr && mem.tryRead(namePtr, name, sizeof name) && std::memcmp(name, "__exit__", 9) == 0) {
                    add(mem.ptr(v + L.callable.cfuncSelf, "m_self"));
                }
            } else if (type == "method_descriptor") {
                // 3.14+: the unbound __exit__ and the lock in the next slot.
                Addr name = mem.ptr(v + L.callable.descrName, "d_name");
                if (m_objects.str(name, 16) == "__exit__") add(next);
            } else if (type == "method" || type == "function") {
                // `with condition:` holds the Condition's lock.
                Addr func = type == "method" ? mem.ptr(v + L.callable.methodFunc, "im_func") : v;
                Addr obj = type == "method" ? mem.ptr(v + L.callable.methodSelf, "im_self") : next;
                if (m_wakers.functionName(func) == "__exit__" && m_fields.isInstanceOf(obj, m_classes.condition)) {
                    if (auto lock = m_fields.get(obj, "_lock")) add(*lock);
                }
            }
        }
    }
    return held;
}

void BoundaryReader::readThread(Thread& t, const WalkedStack& stack) {
    std::vector<RawFrame>& raws = m_raws[t.threadId];
    raws.clear();
    for (const auto& wf : stack.frames) raws.push_back(m_frames.read(wf.addr));
    std::vector<Addr> held = heldLocks(raws);
    // A lock `with` left on a stack is held only while it is taken: by this
    // thread, for an RLock that says who owns it.
    std::erase_if(held, [&](Addr lock) {
        if (isRLock(lock)) return rlockOwner(lock) != t.threadId;
        return !lockTaken(lock);
    });
    t.holds = held;

    std::optional<WorkerInfo> worker;
    Addr anyioQueue = 0;
    for (const auto& raw : raws) {
        const CodeInfo& code = m_frames.codes().get(raw.code);
        if (code.filename.ends_with("/asyncio/base_events.py") && code.name == "run_forever") {
            if (Addr loop = self(raw)) t.loop = loop;
        }
        // anyio's own worker threads (to_thread.run_sync on asyncio, which
        // Starlette and FastAPI run sync endpoints with): WorkerThread.run
        // holds the asyncio future its caller awaits as `future`.
        if (code.filename.ends_with("/anyio/_backends/_asyncio.py") && code.name == "run") {
            Addr s = self(raw);
            if (s && m_objects.typeNameOf(s) == "WorkerThread") {
                if (!worker) worker.emplace();
                worker->executor = m_fields.get(s, "workers").value_or(0);  // the loop's set of workers
                worker->workItem = m_locals.get(raw, "item");
                worker->future = m_locals.get(raw, "future");
                anyioQueue = m_fields.get(s, "queue").value_or(0);
            }
            continue;
        }
        if (!code.filename.ends_with("/concurrent/futures/thread.py")) continue;
        if (code.name == "_worker") {
            if (!worker) worker.emplace();
            if (auto ref = m_locals.get(raw, "executor_reference"); ref && m_objects.builtinTypeNameOf(*ref) == "weakref.ReferenceType") {
                worker->executor = m_objects.mem().ptr(*ref + m_objects.layout().callable.weakrefObject, "wr_object");
            } else if (auto ref2 = ref) {
                worker->executor = m_objects.mem().ptr(*ref2 + m_objects.layout().callable.weakrefObject, "wr_object");
            }
            if (worker->executor && m_objects.typeNameOf(worker->executor) == "NoneType") worker->executor = 0;
            if (worker->executor) {
                if (auto n = m_fields.get(worker->executor, "_max_workers")) worker->maxWorkers = m_objects.integer(*n);
            }
        } else if (code.name == "run") {
            Addr item = self(raw);
            if (item && m_objects.typeNameOf(item) == "_WorkItem") {
                if (!worker) worker.emplace();
                worker->workItem = item;
                worker->future = m_fields.get(item, "future");
            }
        }
    }
    if (auto w = knownWait(raws)) {
        // An anyio worker waiting for its next item is idle (its locals
        // still name the last one).
        if (worker && anyioQueue && w->kind == "queue-get" && w->object == anyioQueue) {
            worker->workItem.reset();
            worker->future.reset();
        } else {
            t.waiting = std::move(w);
        }
    } else if (!raws.empty() && !(worker && !worker->workItem)) {
        t.waiting = lockWait(t, raws.front());
    }
    t.worker = worker;
}

// Strong references in these slots, by object; a cell only this holder
// references counts as its content.
void BoundaryReader::countSlots(const std::vector<Addr>& slots, std::unordered_map<Addr, std::int64_t>& out) {
    const Layout& L = m_objects.layout();
    std::unordered_map<Addr, std::int64_t> direct;
    for (Addr v : slots) {
        // 3.14+: a tagged stack reference is borrowed and owns no count.
        if (v && !(v & L.stackRefTagMask)) ++direct[v];
    }
    for (const auto& [v, n] : direct) {
        out[v] += n;
        if (m_objects.builtinTypeNameOf(v) != "cell") continue;
        auto rc = m_objects.mem().get<std::int64_t>(v, "cell refcount");
        if (rc == n) {
            if (Addr inner = m_objects.mem().ptr(v + L.callable.cellRef, "cell contents")) ++out[inner];
        }
    }
}

void BoundaryReader::referencedBy(std::vector<Thread*>& threads, std::vector<Task*>& tasks) {
    const Layout& L = m_objects.layout();
    // What the waiting tasks wait on, where others' references are counted.
    std::unordered_map<Addr, std::vector<Task*>> waited;
    for (Task* t : tasks) {
        const auto& a = t->awaiting;
        if (t->runtime != "asyncio" || t->error || !a || a->done || !a->externalRefs || *a->externalRefs <= 0) continue;
        if (a->kind == "lock" || a->kind == "semaphore" || a->kind == "executor") continue;  // they have holders
        waited[a->object ? *a->object : a->address].push_back(t);
    }
    if (waited.empty() || L.asyncio.taskCoro == kAbsent) return;
    // Per holder (task or thread), its frames' references to those objects.
    std::unordered_map<Addr, std::vector<std::pair<Node, std::int64_t>>> holders;
    auto collect = [&](Node who, const std::vector<Addr>& slots) {
        std::unordered_map<Addr, std::int64_t> counts;
        countSlots(slots, counts);
        for (const auto& [obj, n] : counts) {
            if (waited.count(obj)) holders[obj].push_back({who, n});
        }
    };
    for (Task* t : tasks) {
        if (t->runtime != "asyncio" || t->state != TaskState::pending) continue;
        Addr coro = m_objects.mem().ptr(t->id + L.asyncio.taskCoro, "task_coro");
        auto chain = m_coroutines.follow(coro);
        if (chain.error) throw BadRead("task " + hexAddr(t->id) + ": " + *chain.error);
        std::vector<Addr> slots;
        for (const auto& link : chain.links) {
            if (link.state == L.frameState.executing) continue;  // its frames are its thread's
            auto s = m_coroutines.frameSlots(link.frame);
            slots.insert(slots.end(), s.begin(), s.end());
        }
        collect({false, t->id}, slots);
    }
    for (Thread* t : threads) {
        auto it = m_raws.find(t->threadId);
        if (it == m_raws.end()) continue;
        std::vector<Addr> slots;
        for (const auto& raw : it->second) {
            std::size_t n = m_locals.names(raw.code).size();
            std::vector<Addr> locals(n);
            if (n && !m_objects.mem().tryRead(raw.locals, locals.data(), n * 8)) throw BadRead("frame locals unreadable");
            slots.insert(slots.end(), locals.begin(), locals.end());
            auto live = m_live.slots(raw);
            slots.insert(slots.end(), live.begin(), live.end());
        }
        collect({true, t->threadId}, slots);
    }
    for (const auto& [obj, waiters] : waited) {
        for (Task* t : waiters) {
            std::int64_t sum = 0;
            Awaiting::ReferencedBy by;
            for (const auto& [who, n] : holders[obj]) {
                if (!who.thread && who.id == t->id) continue;  // its own: not external
                sum += n;
                (who.thread ? by.threads : by.tasks).push_back(who.id);
            }
            if (sum == *t->awaiting->externalRefs) t->awaiting->editDetail().referencedBy = std::move(by);
        }
    }
}

void BoundaryReader::read(const InterpreterState& interp, const std::unordered_map<std::uint64_t, WalkedStack>& stacks,
                          std::vector<Thread*>& threads, std::vector<Task*>& tasks, std::vector<std::string>& warnings) {
    if (auto base = moduleDict(m_objects, interp, "concurrent.futures._base")) {
        if (auto cls = m_objects.dictGet(*base, "Future")) m_classes.cfFuture = *cls;
    }
    if (auto threading = moduleDict(m_objects, interp, "threading")) {
        if (auto cls = m_objects.dictGet(*threading, "Condition")) m_classes.condition = *cls;
    }
    for (Thread* t : threads) {
        auto it = stacks.find(t->threadId);
        if (it == stacks.end() || it->second.error) continue;
        try {
            readThread(*t, it->second);
        } catch (const BadRead& e) {
            t->waiting.reset();
            t->worker.reset();
            t->holds.clear();
            t->loop.reset();
            warnings.push_back("thread " + std::to_string(t->threadId) + ": what it waits on could not be read: " + e.what());
        }
    }
    // Lock owners from the `with` blocks of the other threads.
    for (Thread* t : threads) {
        if (!t->waiting || t->waiting->kind != "lock") continue;
        for (Thread* h : threads) {
            if (h != t && std::count(h->holds.begin(), h->holds.end(), t->waiting->object)) t->waiting->owner = h->threadId;
        }
    }
    // A coroutine started with run_coroutine_threadsafe whose start is still
    // queued on a loop some thread here runs.
    for (Thread* t : threads) {
        if (!t->waiting || t->waiting->kind != "future-result" || t->waiting->task) continue;
        for (Thread* l : threads) {
            if (!l->loop) continue;
            try {
                if (startQueued(*l->loop, t->waiting->object)) {
                    t->waiting->queued = true;
                    t->waiting->loop = l->loop;
                }
            } catch (const BadRead& e) {
                warnings.push_back("event loop " + hexAddr(*l->loop) + ": its ready queue could not be read: " + e.what());
            }
        }
    }
    // Work not started yet: in the work queue of a pool some worker serves.
    std::unordered_map<Addr, Addr> queuedIn;  // concurrent future -> executor
    std::set<Addr> executors;
    for (Thread* t : threads) {
        if (t->worker && t->worker->executor) executors.insert(t->worker->executor);
    }
    for (Addr executor : executors) {
        try {
            auto q = m_fields.get(executor, "_work_queue");
            if (!q || m_objects.builtinTypeNameOf(*q) != "_queue.SimpleQueue") continue;
            for (Addr item : simpleQueueItems(*q)) {
                if (item && m_objects.typeNameOf(item) == "_WorkItem") {
                    if (auto f = m_fields.get(item, "future")) queuedIn[*f] = executor;
                }
            }
        } catch (const BadRead& e) {
            warnings.push_back("thread pool " + hexAddr(executor) + ": its work queue could not be read: " + e.what());
        }
    }
    // Tasks awaiting executor futures, and the workers running them.
    for (Task* task : tasks) {
        if (!task->awaiting || task->awaiting->done || !task->awaiting->address || task->runtime != "asyncio") continue;
        Awaiting& a = *task->awaiting;
        if (a.kind != "future" && a.kind != "executor") continue;
        for (Thread* t : threads) {
            if (t->worker && t->worker->workItem && t->worker->future == a.address) {
                a.kind = "executor";
                a.editDetail().thread = t->threadId;
                t->worker->awaitedBy.push_back(task->id);
            }
        }
        if (a.detail().thread) continue;
        try {
            auto cf = concurrentOf(a.address);
            if (!cf) continue;
            a.editDetail().concurrentFuture = *cf;
            a.kind = "executor";
            for (Thread* t : threads) {
                if (t->worker && t->worker->future == *cf) {
                    a.editDetail().thread = t->threadId;
                    t->worker->awaitedBy.push_back(task->id);
                }
            }
            if (auto q = queuedIn.find(*cf); q != queuedIn.end() && !a.detail().thread) a.editDetail().executor = q->second;
        } catch (const BadRead& e) {
            warnings.push_back("task " + hexAddr(task->id) + ": its executor future could not be read: " + e.what());
        }
    }
    // Only a cycle through a blocked thread uses it: with no thread blocked,
    // the tasks' chains are not followed a second time.
    bool threadBlocked = std::any_of(threads.begin(), threads.end(), [](const Thread* t) { return t->waiting.has_value(); });
    if (!threadBlocked) return;
    try {
        referencedBy(threads, tasks);
    } catch (const BadRead& e) {
        for (Task* t : tasks) {
            if (t->awaiting && t->awaiting->detail().referencedBy) t->awaiting->editDetail().referencedBy.reset();
        }
        warnings.push_back(std::string("who references what tasks wait on could not be read: ") + e.what());
    }
}

}  // namespace aioscope
