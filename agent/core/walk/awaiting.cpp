#include "walk/awaiting.h"

#include <array>

namespace aioscope {

namespace {

struct KnownWait {
    const char* file;      // suffix of co_filename
    const char* function;  // co_name
    const char* kind;
};

// asyncio functions that wait on a plain Future on behalf of their caller.
// Matched on file and co_name, which exist in every version (3.10 has no
// co_qualname); the `self` argument tells Lock from Semaphore and so on.
constexpr std::array kKnownWaits{
    KnownWait{"/asyncio/tasks.py", "sleep", "sleep"},
    KnownWait{"/asyncio/tasks.py", "wait_for", "wait_for"},
    KnownWait{"/asyncio/tasks.py", "_wait", "wait"},
    KnownWait{"/asyncio/tasks.py", "_wait_for_one", "as_completed"},
    KnownWait{"/asyncio/tasks.py", "_wait_one", "as_completed"},
    KnownWait{"/asyncio/locks.py", "wait", "event"},      // Event.wait, Condition.wait, Barrier.wait
    KnownWait{"/asyncio/locks.py", "wait_for", "condition"},
    KnownWait{"/asyncio/locks.py", "acquire", "lock"},    // Lock, Semaphore, BoundedSemaphore
    KnownWait{"/asyncio/locks.py", "_block", "barrier"},
    KnownWait{"/asyncio/queues.py", "get", "queue-get"},
    KnownWait{"/asyncio/queues.py", "put", "queue-put"},
    KnownWait{"/asyncio/queues.py", "join", "queue-join"},
    KnownWait{"/asyncio/taskgroups.py", "_aexit", "taskgroup"},
    KnownWait{"/asyncio/taskgroups.py", "__aexit__", "taskgroup"},
    KnownWait{"/asyncio/timeouts.py", "__aexit__", "timeout"},
    KnownWait{"/asyncio/threads.py", "to_thread", "executor"},
    KnownWait{"/asyncio/streams.py", "_wait_for_data", "stream-read"},
    KnownWait{"/asyncio/streams.py", "_drain_helper", "stream-drain"},
    KnownWait{"/asyncio/streams.py", "drain", "stream-drain"},
    KnownWait{"/asyncio/base_subprocess.py", "_wait", "subprocess"},
    KnownWait{"/asyncio/subprocess.py", "wait", "subprocess"},
    KnownWait{"/asyncio/subprocess.py", "communicate", "subprocess"},
    KnownWait{"/asyncio/selector_events.py", "sock_recv", "socket"},
    KnownWait{"/asyncio/selector_events.py", "sock_recv_into", "socket"},
    KnownWait{"/asyncio/selector_events.py", "sock_accept", "socket"},
    KnownWait{"/asyncio/selector_events.py", "sock_connect", "socket"},
    KnownWait{"/asyncio/selector_events.py", "sock_sendall", "socket"},
    KnownWait{"/asyncio/base_events.py", "run_in_executor", "executor"},
    KnownWait{"/asyncio/base_events.py", "serve_forever", "server"},
    KnownWait{"/asyncio/staggered.py", "staggered_race", "staggered"},
    // anyio's task group on asyncio waits for its tasks with asyncio.wait.
    KnownWait{"/anyio/_backends/_asyncio.py", "__aexit__", "taskgroup"},
};

bool isAnyioAsyncio(const std::string& file) { return file.ends_with("/anyio/_backends/_asyncio.py"); }

// Refines the generic kind with the class of the object waited on.
std::string refine(const std::string& kind, const std::string& selfType) {
    if (kind == "event" && selfType == "Condition") return "condition";
    if (kind == "event" && selfType == "Barrier") return "barrier";
    if (kind == "lock" && (selfType == "Semaphore" || selfType == "BoundedSemaphore")) return "semaphore";
    return kind;
}

}  // namespace

Addr AwaitClassifier::firstArgument(const RawFrame& frame) {
    Addr v = 0;
    if (!m_objects.mem().tryRead(frame.locals, &v, 8)) return 0;
    v &= ~m_objects.layout().stackRefTagMask;
    // A captured `self` lives in a cell.
    if (v && m_objects.builtinTypeNameOf(v) == "cell") v = m_objects.mem().ptr(v + m_objects.layout().callable.cellRef, "cell");
    return v;
}

std::vector<Addr> AwaitClassifier::containerItems(Addr obj) {
    if (!obj) return {};
    const std::string& type = m_objects.builtinTypeNameOf(obj);
    if (type == "list") return m_objects.listItems(obj);
    if (type == "tuple") return m_objects.tupleItems(obj);
    if (type == "set" || type == "frozenset") return m_objects.setItems(obj);
    return {};
}

void AwaitClassifier::byFrame(const CoroutineChain& chain, AwaitTarget& t) {
    // asyncio's own frames sit innermost, and one asyncio wait is often built
    // on another (Barrier.wait on a Condition, Queue.join on an Event): the
    // outermost known wait of that innermost run of asyncio frames names it.
    const ChainLink* match = nullptr;
    const KnownWait* known = nullptr;
    for (auto it = chain.links.rbegin(); it != chain.links.rend(); ++it) {
        const CodeInfo& code = m_walker.frames().codes().get(it->frame.code);
        if (code.filename.find("/asyncio/") == std::string::npos && !isAnyioAsyncio(code.filename)) break;
        for (const auto& k : kKnownWaits) {
            if (code.name == k.function && code.filename.ends_with(k.file)) {
                match = &*it;
                known = &k;
                break;
            }
        }
    }
    if (!match) return;
    t.kind = known->kind;
    Addr self = firstArgument(match->frame);
    if (self) {
        t.object = self;
        t.objectType = m_objects.typeNameOf(self);
        t.kind = refine(t.kind, t.objectType);
    }
    if (t.kind == "taskgroup" && self) {
        if (auto tasks = m_objects.attr(self, "_tasks")) t.children = containerItems(*tasks);
        // anyio's TaskGroup keeps its tasks in its cancel scope.
        auto scope = t.children.empty() ? m_objects.attr(self, "cancel_scope") : std::nullopt;
        if (auto tasks = scope ? m_objects.attr(*scope, "_tasks") : std::nullopt) t.children = containerItems(*tasks);
    } else if (t.kind == "wait" && self) {
        t.children = containerItems(self);  // _wait(fs, ...): the futures
        t.object = 0;
        t.objectType.clear();
    } else if (t.kind == "wait_for") {
        // 3.10/3.11 wait for a private future; the awaited one is the argument.
        if (isFuture(self)) t.children = {self};
        t.object = 0;
        t.objectType.clear();
    } else if (t.kind == "sleep" || t.kind == "executor" || t.kind == "staggered") {
        t.object = 0;  // the first argument is a number or a callable, not a waited object
        t.objectType.clear();
    }
}

std::optional<AwaitTarget> AwaitClassifier::classify(const CoroutineChain& chain, Addr futWaiter, Witness* witness) {
    const auto& A = m_objects.layout().asyncio;
    AwaitTarget t;
    Addr future = 0;
    if (chain.awaited) {
        const std::string& type = m_objects.builtinTypeNameOf(chain.awaited);
        if (type == "_asyncio.FutureIter") {
            Addr at = chain.awaited + static_cast<Addr>(A.futureIterFuture);
            future = m_objects.mem().ptr(at, "FutureIter");
            if (witness) witness->expect(at, future);
            // A FutureIter gives up its future once it completes, and a freed
            // one is kept on a free list linked through that same field.
            if (!future || !isFuture(future) || !m_objects.alive(future)) {
                throw BadRead("awaits a FutureIter that is no longer iterating a future");
            }
        } else if (isFuture(chain.awaited)) {
            future = chain.awaited;
        } else {
            t.kind = "other";
            t.address = chain.awaited;
            t.type = m_objects.typeNameOf(chain.awaited);
            return t;
        }
        // While its coroutine is suspended on a future, the task records
        // that same future (task_fut_waiter) until it resumes.
        if (future != futWaiter) throw BadRead("the task waits on another future than its coroutine awaits");
    } else if (futWaiter) {
        future = futWaiter;
    }
    if (!future) {
        // Not waiting on anything: a bare `yield` (asyncio.sleep(0)) or a task
        // scheduled to run.
        if (!chain.links.empty()) {
            const CodeInfo& code = m_walker.frames().codes().get(chain.links.back().frame.code);
            if (code.name == "__sleep0") {
                t.kind = "sleep";
                return t;
            }
        }
        return std::nullopt;
    }
    t.address = future;
    t.type = m_objects.typeNameOf(future);
    if (witness) witness->expect(future + static_cast<Addr>(m_objects.layout().object.type), m_objects.typeOf(future));
    Addr stateAt = future + static_cast<Addr>(A.futState);
    auto state = m_objects.mem().get<std::int32_t>(stateAt, "future state");
    if (witness) witness->expect(stateAt, static_cast<std::uint32_t>(state), 4);
    if (state < 0 || state > 2) throw BadRead("future state " + std::to_string(state));
    t.done = state != 0;
    if (isTask(future)) {
        t.kind = "task";
        t.task = future;
        return t;
    }
    if (t.type == "_GatheringFuture") {
        t.kind = "gather";
        if (auto children = m_objects.attr(future, "_children")) t.children = containerItems(*children);
        // gather() of nothing returns a plain finished future, never this.
        if (t.children.empty()) throw BadRead("a gather with no children");
        for (Addr c : t.children) {
            if (!m_objects.alive(c)) throw BadRead("a gather child was freed");
        }
        return t;
    }
    t.kind = "future";
    byFrame(chain, t);
    return t;
}

}  // namespace aioscope
