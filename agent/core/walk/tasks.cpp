#include "walk/tasks.h"

#include <algorithm>
#include <unordered_set>

#include "walk/running.h"
#include "walk/thread_stack.h"
#include "walk/task_registry.h"

namespace aioscope {

namespace {

// Kinds where the waited-on object can only be completed by whoever holds it.
bool countsReferences(const std::string& kind) {
    static const std::unordered_set<std::string> kinds{
        "future", "event", "condition", "lock", "semaphore", "barrier", "queue-get", "queue-put", "queue-join"};
    return kinds.count(kind) != 0;
}

// A task name is text the program gave; a name read from reused memory can
// be anything, a kilobyte of binary included: cap what is shown.
constexpr std::size_t kMaxNameChars = 1024;

}  // namespace

struct TaskWalker::Context {
    const InterpreterState& interp;
    const std::vector<ThreadState>& threads;
    RunningLoops loops;
    Wakers wakers;
};

TaskWalker::TaskWalker(Objects& objects, FrameWalker& frames, MemoryReader& fresh, pid_t pid)
    : m_objects(objects),
      m_frames(frames),
      m_fresh(fresh),
      m_coroutines(frames, objects),
      m_classifier(m_coroutines),
      m_holdings(m_coroutines),
      m_pid(pid) {}

std::string TaskWalker::taskName(Addr nameObj, Witness& w) {
    if (!nameObj) throw BadRead("the task has no name (not initialised yet, or freed)");
    w.expectAlive(nameObj);
    w.expect(nameObj + static_cast<Addr>(m_objects.layout().object.type), m_objects.typeOf(nameObj));
    if (auto s = m_objects.exactStr(nameObj, kMaxNameChars)) {
        // Its text may come from a page cached before this str was made
        // (memory of a freed one): the bytes are part of what is re-read.
        const Layout& L = m_objects.layout();
        Remote& mem = m_objects.mem();
        auto length = mem.get<std::int64_t>(nameObj + L.unicode.length, "str length");
        auto state = mem.get<std::uint32_t>(nameObj + L.unicode.state, "str state");
        w.expect(nameObj + static_cast<Addr>(L.unicode.length), static_cast<std::uint64_t>(length));
        unsigned kind = (state >> 2) & 7;
        bool ascii = (state >> 6) & 1;
        if ((state >> 5) & 1) {  // compact: the text follows the header
            Addr data = nameObj + static_cast<Addr>(ascii ? L.unicode.asciiData : L.unicode.compactData);
            std::size_t bytes = std::min<std::size_t>(static_cast<std::size_t>(length), kMaxNameChars) * kind;
            for (std::size_t off = 0; off < bytes; off += 8) {
                std::uint64_t word = 0;
                std::size_t n = std::min<std::size_t>(8, bytes - off);
                mem.read(data + off, &word, n, "str data");
                w.expect(data + off, word, static_cast<std::uint8_t>(n == 8 ? 8 : n >= 4 ? 4 : n >= 2 ? 2 : 1));
                if (n != 8 && n != 4 && n != 2 && n != 1) {
                    // An odd tail: compare it byte by byte.
                    for (std::size_t k = 0; k < n; ++k) w.expect(data + off + k, (word >> (8 * k)) & 0xff, 1);
                }
            }
        }
        return *s;
    }
    // 3.12+ names tasks lazily: an int N stands for "Task-N", N counting from 1.
    if (m_objects.isExactInt(nameObj)) {
        auto n = m_objects.integer(nameObj);
        if (n && *n >= 1) return "Task-" + std::to_string(*n);
        throw BadRead("the task's number is " + (n ? std::to_string(*n) : std::string("unreadable")));
    }
    throw BadRead("the task's name is neither a str nor an int (freed or reused memory)");
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
    // A completed future has already woken its task: nothing to count.
    if (t.done || !countsReferences(t.kind)) return std::nullopt;
    Addr waited = t.object ? t.object : t.address;
    if (!waited) return std::nullopt;
    auto rc = m_holdings.refcount(waited);
    if (!rc) return std::nullopt;
    std::int64_t own = m_holdings.referencesFromChain(chain, waited);
    if (waited == futWaiter) ++own;  // the task's own record of what it waits on
    return *rc - own;
}

// The running task's frames are live on its thread: that thread's stack,
// read now (the thread moves on while the rest is read), from the innermost
// frame down to the frame of the task's coroutine (matched by address, so a
// recursive coroutine is not cut short). False if the coroutine is not on it.
bool TaskWalker::runningStack(Addr gen, std::uint64_t threadId, Context& ctx, Task& t, Witness& w) {
    const Layout& L = m_objects.layout();
    auto ts = std::find_if(ctx.threads.begin(), ctx.threads.end(),
                           [&](const ThreadState& s) { return s.threadId == threadId; });
    if (ts == ctx.threads.end()) return false;
    Witness frames;
    WalkedStack walked = readThreadStack(m_frames, m_objects.mem(), m_fresh, L, ts->addr, 0, &frames).stack;
    if (walked.error) return false;
    auto own = std::find_if(walked.frames.begin(), walked.frames.end(),
                            [&](const WalkedFrame& f) { return f.gen == gen; });
    if (own == walked.frames.end()) return false;
    w.append(frames);
    auto stack = std::make_shared<Stack>();
    for (auto it = walked.frames.begin(); it <= own; ++it) stack->push_back(it->frame);
    t.stack = std::move(stack);
    t.threadId = threadId;
    // Frames that called deeper saved their stacks: what they hold is
    // readable; the innermost frame's is not.
    if (L.callerStackSaved) {
        CoroutineChain callers;
        for (auto it = walked.frames.begin() + 1; it <= own; ++it) {
            callers.links.push_back({it->gen, m_frames.read(it->addr), L.frameState.suspended});
        }
        t.holds = m_holdings.heldLocks(callers);
    }
    return true;
}

void TaskWalker::fillTask(Addr addr, Context& ctx, Attempt& out) {
    const Layout& L = m_objects.layout();
    const auto& A = L.asyncio;
    Witness& w = out.witness;
    // Pure-Python tasks are not read; a class defined in Python that merely
    // calls itself "_asyncio.Task" is not a Task.
    if (!m_objects.isInstance(addr, "_asyncio.Task", true) || !m_objects.alive(addr)) return;
    Block b = m_objects.mem().block(addr, static_cast<std::size_t>(A.taskSize), "task");
    auto state = b.at<std::int32_t>(A.futState);
    if (state < 0 || state > 2) throw BadRead("task state " + std::to_string(state));
    if (state != 0) return;  // finished: asyncio.all_tasks() omits it too

    auto field = [&](Off off) {
        w.expect(addr + static_cast<Addr>(off), b.ptr(off));
        return b.ptr(off);
    };
    w.expectAlive(addr);
    w.expect(addr + static_cast<Addr>(L.object.type), b.ptr(L.object.type));
    w.expect(addr + static_cast<Addr>(A.futState), static_cast<std::uint32_t>(state), 4);

    Task t;
    t.id = addr;
    t.interpreterId = ctx.interp.id;
    t.loop = field(A.futLoop);
    Addr coro = field(A.taskCoro);
    Addr futWaiter = field(A.taskFutWaiter);
    if (auto it = ctx.loops.threadOfLoop.find(t.loop); it != ctx.loops.threadOfLoop.end()) t.threadId = it->second;
    if (A.taskNumCancels != kAbsent) t.cancelRequests = b.at<std::int32_t>(A.taskNumCancels);
    t.cancelPending = A.taskMustCancelBit ? (b.at<std::uint8_t>(A.taskMustCancel) & A.taskMustCancelBit) != 0
                                          : b.at<std::int32_t>(A.taskMustCancel) != 0;
    t.stack = std::make_shared<Stack>();
    // Should the rest tear, what is known so far is kept with the problem.
    auto torn = [&](std::string why) {
        out.problem = std::move(why);
        out.task = std::move(t);
    };
    try {
        t.name = taskName(field(A.taskName), w);
    } catch (const BadRead& e) {
        torn(e.what());
        return;
    }

    CoroutineChain chain = m_coroutines.follow(coro, &w);
    t.omittedFrames = chain.omitted;
    t.stack = suspendedStack(chain);
    if (chain.error) {
        torn(*chain.error);
        return;
    }
    if (chain.executing) {
        t.state = TaskState::running;
        Addr gen = m_coroutines.unwrap(coro);
        std::optional<std::uint64_t> thread = t.threadId;
        if (!thread) {
            for (const auto& [tid, task] : ctx.loops.taskOfThread) {
                if (task == addr) thread = tid;
            }
        }
        bool found = thread && runningStack(gen, *thread, ctx, t, w);
        if (!found) {
            // Its loop is unknown or moved: look for the coroutine on every thread.
            for (const auto& ts : ctx.threads) {
                if (ts.threadId != thread.value_or(0) && runningStack(gen, ts.threadId, ctx, t, w)) {
                    found = true;
                    break;
                }
            }
        }
        if (!found) {
            torn("its coroutine runs, but on no thread's stack as read");
            return;
        }
        t.omittedFrames = 0;
    } else {
        if (chain.links.empty() && !chain.idleWrapper && !chain.awaited && m_coroutines.unwrap(coro)) {
            torn("a pending task whose coroutine has finished");
            return;
        }
        std::optional<AwaitTarget> target;
        try {
            target = m_classifier.classify(chain, futWaiter, &w);
        } catch (const BadRead& e) {
            torn(e.what());
            return;
        }
        try {
            if (target) {
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
                a.done = target->done;
                t.awaiting = std::move(a);
            }
            t.holds = m_holdings.heldLocks(chain);
        } catch (const BadRead& e) {
            torn(e.what());
            return;
        }
    }
    try {
        t.handlingCancel = handlingCancelledError(m_objects, chain);
        // Who awaits it: its done-callbacks, which change as awaiters come
        // and go, so they are part of what is looked at again.
        Addr cb0At = addr + static_cast<Addr>(A.futCallback0);
        Addr cbsAt = addr + static_cast<Addr>(A.futCallbacks);
        w.expect(cb0At, m_objects.mem().ptr(cb0At, "fut_callback0"));
        Addr cbs = m_objects.mem().ptr(cbsAt, "fut_callbacks");
        w.expect(cbsAt, cbs);
        if (cbs) {
            for (Off off : {L.list.size, L.list.items}) {
                Addr at = cbs + static_cast<Addr>(off);
                w.expect(at, m_objects.mem().ptr(at, "callbacks list"));
            }
        }
        t.awaitedBy = ctx.wakers.awaitersOf(addr);
    } catch (const BadRead& e) {
        torn(e.what());
        return;
    }
    out.task = std::move(t);
}

TaskWalker::Attempt TaskWalker::readTask(Addr addr, Context& ctx) {
    Attempt out;
    try {
        fillTask(addr, ctx, out);
    } catch (const BadRead& e) {
        out.problem = e.what();
    }
    return out;
}

std::optional<Task> TaskWalker::readRunning(const InterpreterState& interp, const std::vector<ThreadState>& threads,
                                            std::uint64_t threadId) {
    if (!m_objects.layout().asyncio.available) return std::nullopt;
    Context ctx{interp, threads, readRunningLoops(m_objects, interp, threads, m_pid), Wakers(m_objects)};
    auto it = ctx.loops.taskOfThread.find(threadId);
    if (it == ctx.loops.taskOfThread.end()) {
        if (auto why = ctx.loops.taskUnknown.find(threadId); why != ctx.loops.taskUnknown.end()) throw BadRead(why->second);
        return std::nullopt;
    }
    Attempt a = readTask(it->second, ctx);
    if (a.problem && !a.task) throw BadRead("its running task did not read: " + *a.problem);
    if (a.problem) a.task->error = *a.problem;
    return a.task;
}

TasksResult TaskWalker::read(const InterpreterState& interp, const std::vector<ThreadState>& threads) {
    TasksResult out;
    if (!m_objects.layout().asyncio.available) return out;
    m_stacks.clear();
    // The registry changes with every task created or finished: read it
    // until it reads whole and the same twice.
    TaskRegistryResult registry;
    for (int i = 0; i < kRegistryAttempts; ++i) {
        Witness w;
        registry = discoverTasks(m_objects, interp, threads, &w);
        if (registry.warnings.empty() && w.holds(m_fresh)) break;
        if (registry.warnings.empty()) registry.warnings.push_back("the task registry kept changing while it was read");
        m_objects.mem().reader().forget();
    }
    for (auto& w : registry.warnings) out.warnings.push_back("asyncio tasks incomplete: " + w);
    out.torn = !registry.warnings.empty();
    if (registry.tasks.empty()) return out;
    Context ctx{interp, threads, readRunningLoops(m_objects, interp, threads, m_pid), Wakers(m_objects)};
    // Each task's record sits where the snapshot will keep it (a dump of
    // 100,000 tasks holds them once, not once here and once in the result);
    // beside it, what its consistency is judged by.
    std::vector<Task> tasks(registry.tasks.size());
    struct Check {
        bool present = false;                // false: not (or no longer) a pending task
        // Why it is not consistent: rare, so out of line (one of these per
        // task is held through the read).
        std::unique_ptr<std::string> problem;
        Witness witness;
        void fail(std::string why) { problem = std::make_unique<std::string>(std::move(why)); }
    };
    std::vector<Check> checks(registry.tasks.size());
    auto store = [&](std::size_t i, Attempt&& a) {
        checks[i].present = a.task.has_value();
        if (a.task) tasks[i] = std::move(*a.task);
        checks[i].problem.reset();
        if (a.problem) checks[i].fail(std::move(*a.problem));
        checks[i].witness = std::move(a.witness);
    };
    // The second look: every value each task was built from, re-read in one
    // batch straight from the target, for every kLookEvery tasks as soon as
    // they are read (the values of a task that held are then dropped: a dump
    // of 100,000 tasks would otherwise keep millions of them).
    std::size_t looked = 0;
    auto secondLook = [&](std::size_t end) {
        std::vector<std::size_t> check;
        std::vector<const Witness*> ws;
        for (std::size_t i = looked; i < end; ++i) {
            if (checks[i].present && !checks[i].problem) {
                check.push_back(i);
                ws.push_back(&checks[i].witness);
            }
        }
        auto holds = Witness::check(m_fresh, ws);
        for (std::size_t k = 0; k < check.size(); ++k) {
            if (!holds[k]) {
                checks[check[k]].fail("it changed while it was read");
            } else {
                checks[check[k]].witness.release();
            }
        }
        looked = end;
    };
    for (std::size_t i = 0; i < registry.tasks.size(); ++i) {
        if (i && i % kLookEvery == 0) secondLook(i);
        // Pages cached long ago are stale on a busy process: keep them young
        // (the second look catches the rest, but each catch is a re-read).
        if (i && i % kFreshEvery == 0) {
            m_objects.mem().reader().forget();
            ctx.wakers.clear();
        }
        store(i, readTask(registry.tasks[i], ctx));
    }
    secondLook(tasks.size());
    // What changed is read again as it is now (no page read before may
    // serve it), and looked at again at once.
    auto reread = [&](std::size_t i) {
        for (int round = 0; round < kRereads; ++round) {
            // The pages it was read from are stale: drop them (and, should
            // the task be unreadable as a whole, everything).
            if (checks[i].witness.size() && round == 0) {
                checks[i].witness.forgetPages(m_objects.mem().reader());
            } else {
                m_objects.mem().reader().forget();
            }
            ctx.wakers.clear();
            if (round == 0) ctx.loops = readRunningLoops(m_objects, interp, threads, m_pid);
            store(i, readTask(registry.tasks[i], ctx));
            ++out.rereads;
            if (!checks[i].present) return;  // finished meanwhile: left out
            if (!checks[i].problem && checks[i].witness.holds(m_fresh)) return;
            if (!checks[i].problem) checks[i].fail("it changed while it was read");
        }
    };
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        if (checks[i].problem) reread(i);
    }
    // A loop runs one task at a time: two seen running on one thread were
    // read at different moments.
    for (int round = 0; round < kRereads; ++round) {
        std::map<std::uint64_t, std::vector<std::size_t>> runningOn;
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            const Task& t = tasks[i];
            if (checks[i].present && !checks[i].problem && t.state == TaskState::running && t.threadId) {
                runningOn[*t.threadId].push_back(i);
            }
        }
        bool conflict = false;
        for (const auto& [thread, which] : runningOn) {
            if (which.size() < 2) continue;
            conflict = true;
            for (std::size_t i : which) reread(i);
        }
        if (!conflict) break;
        if (round + 1 == kRereads) {
            for (const auto& [thread, which] : runningOn) {
                if (which.size() < 2) continue;
                for (std::size_t i : which) checks[i].fail("it and another task seemed to run at once on its thread");
            }
        }
    }

    // Kept in place: the records of tasks that are gone close up.
    std::size_t kept = 0;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        Check& c = checks[i];
        if (c.problem) {
            out.torn = true;
            std::string what = "task " + hexAddr(registry.tasks[i]);
            if (c.present && !tasks[i].name.empty()) what += " '" + tasks[i].name + "'";
            out.warnings.push_back(what + " could not be read consistently: " + *c.problem);
            if (!c.present) continue;  // nothing about it is known
            tasks[i].error = *c.problem;
            // Only what was read before the tear: no guess about what it awaits.
            tasks[i].awaiting.reset();
            tasks[i].holds.clear();
        }
        if (!c.present) continue;
        if (kept != i) tasks[kept] = std::move(tasks[i]);
        ++kept;
    }
    tasks.erase(tasks.begin() + static_cast<std::ptrdiff_t>(kept), tasks.end());
    checks = std::vector<Check>();
    out.tasks = std::move(tasks);
    // Only awaiters that are tasks of this snapshot.
    std::unordered_set<Addr> ids;
    for (const auto& t : out.tasks) ids.insert(t.id);
    for (auto& t : out.tasks) std::erase_if(t.awaitedBy, [&](Addr w) { return !ids.count(w); });
    return out;
}

}  // namespace aioscope
