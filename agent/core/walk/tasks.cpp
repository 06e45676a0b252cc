#include "walk/tasks.h"

#include <algorithm>
#include <unordered_set>

#include "walk/running.h"
#include "walk/task_registry.h"

namespace aioscope {

namespace {

// Kinds where the waited-on object can only be completed by whoever holds it.
bool countsReferences(const std::string& kind) {
    static const std::unordered_set<std::string> kinds{
        "future", "event", "condition", "lock", "semaphore", "barrier", "queue-get", "queue-put", "queue-join"};
    return kinds.count(kind) != 0;
}

}  // namespace

struct TaskWalker::Context {
    const InterpreterState& interp;
    RunningLoops loops;
    const std::unordered_map<std::uint64_t, WalkedStack>& stacks;
    Wakers wakers;
};

TaskWalker::TaskWalker(Objects& objects, FrameWalker& frames, pid_t pid)
    : m_objects(objects),
      m_frames(frames),
      m_coroutines(frames, objects),
      m_classifier(m_coroutines),
      m_holdings(m_coroutines),
      m_pid(pid) {}

std::string TaskWalker::taskName(Addr nameObj) {
    if (auto s = m_objects.str(nameObj, 1024)) return *s;
    // 3.12+ names tasks lazily: an int N stands for "Task-N".
    if (auto n = m_objects.integer(nameObj)) return "Task-" + std::to_string(*n);
    return "";
}

std::shared_ptr<const Stack> TaskWalker::suspendedStack(const CoroutineChain& chain) {
    std::vector<std::pair<Addr, std::int64_t>> key;
    key.reserve(chain.links.size());
    for (auto it = chain.links.rbegin(); it != chain.links.rend(); ++it) key.emplace_back(it->frame.code, it->frame.lasti);
    auto& slot = m_stacks[key];
    if (!slot) {
        auto stack = std::make_shared<Stack>();
        for (auto it = chain.links.rbegin(); it != chain.links.rend(); ++it) stack->push_back(m_frames.describe(it->frame));
        slot = std::move(stack);
    }
    return slot;
}

std::optional<std::int64_t> TaskWalker::externalRefs(const CoroutineChain& chain, const AwaitTarget& t,
                                                     Addr futWaiter) {
    if (!countsReferences(t.kind)) return std::nullopt;
    Addr waited = t.object ? t.object : t.address;
    if (!waited) return std::nullopt;
    auto rc = m_holdings.refcount(waited);
    if (!rc) return std::nullopt;
    std::int64_t own = m_holdings.referencesFromChain(chain, waited);
    if (waited == futWaiter) ++own;  // the task's own record of what it waits on
    return *rc - own;
}

std::optional<Task> TaskWalker::readTask(Addr addr, Context& ctx) {
    const Layout& L = m_objects.layout();
    const auto& A = L.asyncio;
    if (!m_objects.isInstance(addr, "_asyncio.Task")) return std::nullopt;  // pure-Python tasks: not read
    Block b = m_objects.mem().block(addr, static_cast<std::size_t>(A.taskSize), "task");
    auto state = b.at<std::int32_t>(A.futState);
    if (state < 0 || state > 2) throw BadRead("task state " + std::to_string(state));
    if (state != 0) return std::nullopt;  // finished: asyncio.all_tasks() omits it too

    Task t;
    t.id = addr;
    t.interpreterId = ctx.interp.id;
    t.name = taskName(b.ptr(A.taskName));
    t.loop = b.ptr(A.futLoop);
    if (auto it = ctx.loops.threadOfLoop.find(t.loop); it != ctx.loops.threadOfLoop.end()) t.threadId = it->second;
    if (A.taskNumCancels != kAbsent) t.cancelRequests = b.at<std::int32_t>(A.taskNumCancels);
    t.cancelPending = A.taskMustCancelBit ? (b.at<std::uint8_t>(A.taskMustCancel) & A.taskMustCancelBit) != 0
                                          : b.at<std::int32_t>(A.taskMustCancel) != 0;
    Addr coro = b.ptr(A.taskCoro);
    Addr futWaiter = b.ptr(A.taskFutWaiter);

    CoroutineChain chain = m_coroutines.follow(coro);
    if (chain.error) t.error = chain.error;
    bool running = chain.executing;
    if (t.threadId) {
        auto rt = ctx.loops.taskOfThread.find(*t.threadId);
        running = running || (rt != ctx.loops.taskOfThread.end() && rt->second == addr);
    }
    if (running) {
        t.state = TaskState::running;
        // Its frames are live on the thread running the loop: take them from
        // the innermost down to the task's own coroutine.
        auto stack = std::make_shared<Stack>();
        for (const auto& [tid, walked] : ctx.stacks) {
            auto own = std::find_if(walked.frames.begin(), walked.frames.end(),
                                    [&](const WalkedFrame& f) { return f.gen == coro; });
            if (own == walked.frames.end()) continue;
            for (auto it = walked.frames.begin(); it <= own; ++it) stack->push_back(it->frame);
            if (!t.threadId) t.threadId = tid;
            // Frames that called deeper saved their stacks: what they hold is
            // readable; the innermost frame's is not.
            if (L.callerStackSaved) {
                CoroutineChain callers;
                for (auto it = walked.frames.begin() + 1; it <= own; ++it) {
                    callers.links.push_back({it->gen, m_frames.read(it->addr), L.frameState.suspended});
                }
                t.holds = m_holdings.heldLocks(callers);
            }
            break;
        }
        t.stack = std::move(stack);
    } else {
        t.stack = suspendedStack(chain);
        if (auto target = m_classifier.classify(chain, futWaiter)) {
            Awaiting a;
            a.kind = target->kind;
            a.address = target->address;
            a.type = target->type;
            if (target->object) {
                a.object = target->object;
                a.objectType = target->objectType;
            }
            if (target->task) a.task = target->task;
            a.children = target->children;
            a.externalRefs = externalRefs(chain, *target, futWaiter);
            t.awaiting = std::move(a);
        }
        t.holds = m_holdings.heldLocks(chain);
    }
    t.handlingCancel = handlingCancelledError(m_objects, chain);
    return t;
}

std::optional<Task> TaskWalker::readRunning(const InterpreterState& interp, const std::vector<ThreadState>& threads,
                                            const std::unordered_map<std::uint64_t, WalkedStack>& stacks,
                                            std::uint64_t threadId) {
    if (!m_objects.layout().asyncio.available) return std::nullopt;
    Context ctx{interp, readRunningLoops(m_objects, interp, threads, m_pid), stacks, Wakers(m_objects)};
    auto it = ctx.loops.taskOfThread.find(threadId);
    if (it == ctx.loops.taskOfThread.end()) return std::nullopt;
    return readTask(it->second, ctx);
}

TasksResult TaskWalker::read(const InterpreterState& interp, const std::vector<ThreadState>& threads,
                             const std::unordered_map<std::uint64_t, WalkedStack>& stacks) {
    TasksResult out;
    if (!m_objects.layout().asyncio.available) return out;
    m_stacks.clear();
    auto registry = discoverTasks(m_objects, interp, threads);
    out.warnings = registry.warnings;
    if (registry.tasks.empty()) return out;
    Context ctx{interp, readRunningLoops(m_objects, interp, threads, m_pid), stacks, Wakers(m_objects)};
    out.tasks.reserve(registry.tasks.size());
    for (Addr addr : registry.tasks) {
        try {
            if (auto t = readTask(addr, ctx)) {
                if (t->error) out.torn = true;
                out.tasks.push_back(std::move(*t));
            }
        } catch (const BadRead& e) {
            out.torn = true;
            out.warnings.push_back("task " + hexAddr(addr) + ": " + e.what());
        }
    }
    std::unordered_set<Addr> ids;
    for (const auto& t : out.tasks) ids.insert(t.id);
    for (auto& t : out.tasks) {
        try {
            for (Addr w : ctx.wakers.awaitersOf(t.id)) {
                if (ids.count(w)) t.awaitedBy.push_back(w);
            }
        } catch (const BadRead& e) {
            out.torn = true;
            out.warnings.push_back("awaiters of task " + hexAddr(t.id) + ": " + e.what());
        }
    }
    return out;
}

}  // namespace aioscope
