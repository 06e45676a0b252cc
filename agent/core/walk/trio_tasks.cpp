#include "walk/trio_tasks.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <unordered_set>

#include "remote/fields.h"
#include "remote/limits.h"
#include "walk/coroutines.h"
#include "walk/trio_refs.h"
#include "walk/trio_runtime.h"
#include "walk/trio_waits.h"

namespace aioscope {

namespace {

// Waits that only whoever references the object can ever complete (set the
// Event, release the Lock...). Channels are not: their senders hold the
// shared state, not the receiving end.
bool countsReferences(const std::string& kind) {
    static const std::unordered_set<std::string> kinds{"event", "lock", "semaphore", "condition", "capacity-limiter"};
    return kinds.count(kind) != 0;
}

std::string where(const Task& t) {
    if (!t.where()) return "";
    const Frame& f = *t.where();
    return " at " + f.qualname + " (" + f.file.substr(f.file.rfind('/') + 1) + ":" +
           (f.line ? std::to_string(*f.line) : "?") + ")";
}

// What a task's wait rests on beyond the model Task.
struct Facts {
    Addr runner = 0;
    Addr coro = 0;
    Addr parentTask = 0;
    bool blocked = false;  // in wait_task_rescheduled, not scheduled to run
    Addr sleepData = 0;    // custom_sleep_data: the ParkingLot or channel it sleeps on
    Addr abortFunc = 0;
    std::int64_t counter = 0;
    CoroutineChain chain;
};

// A fact a finding rests on, to be read again after the cache is dropped.
struct Check {
    std::function<std::optional<Addr>()> read;
    Addr expected = 0;
    std::function<void()> drop;  // what to forget if it changed on the last attempt
};

class TrioReader {
public:
    TrioReader(Objects& objects, FrameWalker& frames)
        : m_objects(objects),
          m_frames(frames),
          m_layout(trioLayout()),
          m_fields(objects),
          m_locals(objects),
          m_coroutines(frames, objects),
          m_classifier(m_coroutines, m_locals, m_layout),
          m_refs(m_coroutines, m_fields, m_layout) {}

    TrioTasksResult read(const InterpreterState& interp, const std::unordered_map<std::uint64_t, WalkedStack>& stacks,
                         const std::function<void()>& forget, bool lastAttempt);

private:
    Task readTask(Addr addr, Addr runner, std::optional<std::uint64_t> thread, const InterpreterState& interp,
                  const std::unordered_map<std::uint64_t, WalkedStack>& stacks, Facts& facts);
    void describeWait(Task& t, const Facts& facts);
    std::shared_ptr<const Stack> suspendedStack(const CoroutineChain& chain);
    std::vector<Addr> enteredPrimitives(const CoroutineChain& chain);
    std::vector<Addr> tasksIn(Addr set);
    std::optional<Addr> field(Addr obj, const char* name) { return m_fields.get(obj, name); }
    bool blockedOn(Addr task, Addr sleepData);
    void addHolds(std::vector<Task>& tasks, std::vector<Facts>& facts, TrioTasksResult& out);
    void addExternalRefs(std::vector<Task>& tasks, std::vector<Facts>& facts);

    Objects& m_objects;
    FrameWalker& m_frames;
    const TrioLayout& m_layout;
    Fields m_fields;
    FrameLocals m_locals;
    CoroutineWalker m_coroutines;
    TrioWaitClassifier m_classifier;
    OwnedReferences m_refs;
    TrioClasses m_classes;
    std::map<Addr, std::set<Addr>> m_living;  // runner -> its tasks
    std::vector<Check> m_checks;
    std::map<std::vector<std::pair<Addr, std::int64_t>>, std::shared_ptr<const Stack>> m_stacks;
};

std::vector<Addr> TrioReader::tasksIn(Addr set) {
    std::vector<Addr> out;
    for (Addr item : m_objects.setItems(set)) {
        if (m_fields.isInstanceOf(item, m_classes.task)) out.push_back(item);
    }
    return out;
}

std::shared_ptr<const Stack> TrioReader::suspendedStack(const CoroutineChain& chain) {
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

bool TrioReader::blockedOn(Addr task, Addr sleepData) {
    return !field(task, m_layout.taskNextSendFn) && field(task, m_layout.taskSleepData).value_or(0) == sleepData;
}

// `async with primitive:` keeps primitive.__aexit__ on the value stack of
// every frame suspended inside the block (3.14+: the function and `self` in
// two slots).
std::vector<Addr> TrioReader::enteredPrimitives(const CoroutineChain& chain) {
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    auto isExit = [&](Addr fn) {
        if (!fn || m_objects.typeNameOf(fn) != "function") return false;
        Addr code = mem.ptr(fn + L.callable.code, "func_code");
        if (!code || m_objects.typeNameOf(code) != "code") return false;
        const CodeInfo& info = m_frames.codes().get(code);
        return info.name == m_layout.aexitFunction && info.filename.ends_with(m_layout.aexitFile);
    };
    std::vector<Addr> out;
    for (const auto& link : chain.links) {
        if (link.state == L.frameState.executing) continue;
        auto slots = m_coroutines.stackSlots(link.frame);
        for (std::size_t i = 0; i < slots.size(); ++i) {
            Addr v = slots[i] & ~L.stackRefTagMask;
            if (!v || (slots[i] & L.stackRefTagMask) == 3) continue;
            const std::string& type = m_objects.typeNameOf(v);
            if (type == "method" && isExit(mem.ptr(v + L.callable.methodFunc, "im_func"))) {
                out.push_back(mem.ptr(v + L.callable.methodSelf, "im_self"));
            } else if (type == "function" && isExit(v) && i + 1 < slots.size()) {
                out.push_back(slots[i + 1] & ~L.stackRefTagMask);
            }
        }
    }
    return out;
}

void TrioReader::describeWait(Task& t, const Facts& facts) {
    auto target = m_classifier.classify(facts.chain);
    Awaiting a;
    a.kind = target ? target->kind : "other";
    Addr object = target ? target->object : 0;
    // custom_sleep_data is trio's own record of what the task sleeps on.
    a.address = facts.sleepData ? facts.sleepData : object;
    if (a.address) a.type = m_objects.typeNameOf(a.address);
    if (object) {
        a.object = object;
        a.objectType = m_objects.typeNameOf(object);
    }
    if (target) a.fd = target->fd;
    if (a.kind == "nursery" && object) {
        if (auto children = field(object, m_layout.nurseryChildren)) {
            for (Addr c : tasksIn(*children)) a.children.push_back(c);
            std::sort(a.children.begin(), a.children.end());
        }
    }
    t.awaiting = std::move(a);
}

Task TrioReader::readTask(Addr addr, Addr runner, std::optional<std::uint64_t> thread,
                          const InterpreterState& interp, const std::unordered_map<std::uint64_t, WalkedStack>& stacks,
                          Facts& facts) {
    const Layout& L = m_objects.layout();
    Task t;
    t.id = addr;
    t.runtime = "trio";
    t.interpreterId = interp.id;
    t.loop = runner;
    t.threadId = thread;
    if (auto name = field(addr, m_layout.taskName)) t.name = m_objects.str(*name, 1024).value_or("");
    facts.runner = runner;
    facts.coro = field(addr, m_layout.taskCoro).value_or(0);
    if (auto n = field(addr, m_layout.taskCounter)) facts.counter = m_objects.integer(*n).value_or(0);
    if (auto nursery = field(addr, m_layout.taskParentNursery); nursery && m_fields.isInstanceOf(*nursery, m_classes.nursery)) {
        facts.parentTask = field(*nursery, m_layout.nurseryParentTask).value_or(0);
    }
    facts.blocked = !field(addr, m_layout.taskNextSendFn);
    facts.sleepData = field(addr, m_layout.taskSleepData).value_or(0);
    facts.abortFunc = field(addr, m_layout.taskAbortFunc).value_or(0);
    if (auto status = field(addr, m_layout.taskCancelStatus)) {
        if (auto cancelled = field(*status, m_layout.cancelStatusCancelled)) {
            t.cancelPending = m_objects.integer(*cancelled).value_or(0) == 1;
        }
    }

    facts.chain = m_coroutines.follow(facts.coro);
    if (facts.chain.error) t.error = facts.chain.error;
    if (facts.chain.executing) {
        // Running: its frames are live on the thread, from the innermost down
        // to the task's own coroutine.
        t.state = TaskState::running;
        auto stack = std::make_shared<Stack>();
        for (const auto& [tid, walked] : stacks) {
            auto own = std::find_if(walked.frames.begin(), walked.frames.end(),
                                    [&](const WalkedFrame& f) { return f.gen == facts.coro; });
            if (own == walked.frames.end()) continue;
            for (auto it = walked.frames.begin(); it <= own; ++it) stack->push_back(it->frame);
            t.threadId = tid;
            break;
        }
        t.stack = std::move(stack);
        facts.blocked = false;
    } else {
        t.stack = suspendedStack(facts.chain);
        // Scheduled to run (woken, or never started): it waits on nothing.
        if (facts.blocked) describeWait(t, facts);
    }
    for (const auto& link : facts.chain.links) {
        Addr exc = m_objects.mem().ptr(link.gen + L.gen.excValue, "gi_exc_state");
        if (exc && m_fields.isInstanceOf(exc, m_classes.cancelled)) t.handlingCancel = true;
    }
    return t;
}

// Who holds which lock, from trio's own records: a Lock's owner task and a
// CapacityLimiter's borrowers. (A Semaphore records no holder: none is shown.)
// A lock whose owner has finished can never be released.
void TrioReader::addHolds(std::vector<Task>& tasks, std::vector<Facts>& facts, TrioTasksResult& out) {
    std::unordered_map<Addr, std::size_t> index;
    for (std::size_t i = 0; i < tasks.size(); ++i) index[tasks[i].id] = i;
    std::set<Addr> primitives;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        if (tasks[i].awaiting && tasks[i].awaiting->object) primitives.insert(*tasks[i].awaiting->object);
        if (tasks[i].state != TaskState::running) {
            for (Addr p : enteredPrimitives(facts[i].chain)) primitives.insert(p);
        }
    }
    std::map<Addr, std::vector<std::size_t>> waiters;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        const auto& a = tasks[i].awaiting;
        if (a && a->object && a->kind == "lock") waiters[*a->object].push_back(i);
    }
    for (Addr p : primitives) {
        if (m_classes.lockImpl && m_fields.isInstanceOf(p, m_classes.lockImpl)) {
            auto owner = field(p, m_layout.lockOwner);
            if (!owner || !m_fields.isInstanceOf(*owner, m_classes.task)) continue;
            Addr o = *owner;
            if (auto it = index.find(o); it != index.end()) {
                Task& holder = tasks[it->second];
                holder.holds.push_back(p);
                if (!waiters.count(p)) continue;
                // A deadlock may rest on this: confirm the owner on a second read.
                m_checks.push_back({[this, p] { return field(p, m_layout.lockOwner); }, o, [&holder, p] {
                                        std::erase(holder.holds, p);
                                    }});
                continue;
            }
            bool living = std::any_of(m_living.begin(), m_living.end(), [&](const auto& r) { return r.second.count(o); });
            auto w = waiters.find(p);
            if (living || w == waiters.end()) continue;
            // Owned by a task that is no longer running: nobody can release it.
            std::string ownerName = m_objects.str(field(o, m_layout.taskName).value_or(0), 1024).value_or("?");
            for (std::size_t i : w->second) {
                const Task& t = tasks[i];
                Finding f;
                f.kind = "abandoned-lock";
                f.tasks = {t.id};
                f.objects = {p};
                f.message = "Task '" + t.name + "' waits" + where(t) + " for " + m_objects.typeNameOf(p) + " " +
                            hexAddr(p) + " whose owner, task '" + ownerName + "' (" + hexAddr(o) +
                            "), has finished without releasing it: nothing can ever release it.";
                out.findings.push_back(std::move(f));
                std::size_t n = out.findings.size() - 1;
                Addr runner = facts[i].runner, task = t.id, lot = facts[i].sleepData;
                auto dropFinding = [&out, n] { out.findings[n].kind.clear(); };
                m_checks.push_back({[this, p] { return field(p, m_layout.lockOwner); }, o, dropFinding});
                m_checks.push_back({[this, runner, o]() -> std::optional<Addr> {
                                        auto set = field(runner, m_layout.runnerTasks);
                                        auto items = set ? m_objects.setItems(*set) : std::vector<Addr>{};
                                        return std::find(items.begin(), items.end(), o) != items.end();
                                    },
                                    0, dropFinding});
                m_checks.push_back({[this, task, lot]() -> std::optional<Addr> { return blockedOn(task, lot); }, 1,
                                    dropFinding});
            }
        } else if (m_classes.capacityLimiter && m_fields.isInstanceOf(p, m_classes.capacityLimiter)) {
            auto borrowers = field(p, m_layout.limiterBorrowers);
            if (!borrowers) continue;
            for (Addr b : m_objects.setItems(*borrowers)) {
                if (auto it = index.find(b); it != index.end()) tasks[it->second].holds.push_back(p);
            }
        }
    }
    for (auto& t : tasks) std::sort(t.holds.begin(), t.holds.end());
}

void TrioReader::addExternalRefs(std::vector<Task>& tasks, std::vector<Facts>& facts) {
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        Task& t = tasks[i];
        if (!t.awaiting || !t.awaiting->object || !countsReferences(t.awaiting->kind)) continue;
        Addr object = *t.awaiting->object, coro = facts[i].coro, abort = facts[i].abortFunc, task = t.id;
        Addr lot = facts[i].sleepData;
        t.awaiting->externalRefs = m_refs.external(facts[i].chain, object, {abort});
        if (!t.awaiting->externalRefs || *t.awaiting->externalRefs > 0) continue;
        // "Nobody can ever set it" rests on counts that a live process may
        // change at any moment: the same counts, read again, must agree.
        auto drop = [&t] { t.awaiting->externalRefs.reset(); };
        m_checks.push_back({[this, coro, object, abort]() -> std::optional<Addr> {
                                auto chain = m_coroutines.follow(coro);
                                if (chain.error) return std::nullopt;
                                auto n = m_refs.external(chain, object, {abort});
                                return n ? std::optional<Addr>(static_cast<Addr>(*n)) : std::nullopt;
                            },
                            0, drop});
        m_checks.push_back({[this, task, lot]() -> std::optional<Addr> { return blockedOn(task, lot); }, 1, drop});
    }
}

TrioTasksResult TrioReader::read(const InterpreterState& interp,
                                 const std::unordered_map<std::uint64_t, WalkedStack>& stacks,
                                 const std::function<void()>& forget, bool lastAttempt) {
    TrioTasksResult out;
    TrioRuntime rt = findTrio(m_fields, m_frames, m_locals, m_layout, interp, stacks);
    out.warnings = rt.warnings;
    if (!rt.classes) return out;
    m_classes = *rt.classes;
    m_classifier.setLibraryDirs(rt.libraryDirs);

    std::vector<Task> tasks;
    std::vector<Facts> facts;
    for (auto [runner, thread] : rt.runners) {
        auto set = field(runner, m_layout.runnerTasks);
        if (!set) continue;  // trio.run is starting or has finished
        auto items = m_objects.setItems(*set);
        if (tasks.size() + items.size() > limits::kMaxTasks) throw BadRead("implausibly many trio tasks");
        auto& living = m_living[runner];
        std::size_t first = tasks.size();
        for (Addr addr : items) {
            if (!m_fields.isInstanceOf(addr, m_classes.task)) throw BadRead("a trio runner's task set holds a non-Task");
            living.insert(addr);
            Facts f;
            try {
                tasks.push_back(readTask(addr, runner, thread, interp, stacks, f));
                facts.push_back(std::move(f));
            } catch (const BadRead& e) {
                out.torn = true;
                out.warnings.push_back("trio task " + hexAddr(addr) + ": " + e.what());
            }
        }
        // A guest run has no trio.run frame: its running task names its thread.
        if (!thread) {
            for (std::size_t i = first; i < tasks.size(); ++i) {
                if (tasks[i].state == TaskState::running) thread = tasks[i].threadId;
            }
            for (std::size_t i = first; i < tasks.size(); ++i) tasks[i].threadId = thread;
        }
    }
    for (const auto& t : tasks) {
        if (t.error) out.torn = true;
    }

    // The nursery tree: each task is awaited by its nursery's parent task.
    std::unordered_set<Addr> ids;
    for (const auto& t : tasks) ids.insert(t.id);
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        if (ids.count(facts[i].parentTask)) tasks[i].awaitedBy.push_back(facts[i].parentTask);
    }
    addHolds(tasks, facts, out);
    addExternalRefs(tasks, facts);

    if (!m_checks.empty()) {
        forget();
        bool changed = false;
        for (auto& c : m_checks) {
            std::optional<Addr> now;
            try {
                now = c.read();
            } catch (const BadRead&) {
            }
            if (now == c.expected) continue;
            changed = true;
            if (lastAttempt) c.drop();
        }
        if (changed && !lastAttempt) out.torn = true;
        if (changed && lastAttempt) {
            out.warnings.push_back("trio: the process changed while a deadlock was being confirmed; "
                                   "what could not be read twice alike is not reported");
        }
    }
    std::erase_if(out.findings, [](const Finding& f) { return f.kind.empty(); });

    // Creation order: the root first, then as the program spawned them.
    std::vector<std::size_t> order(tasks.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return std::tie(facts[a].runner, facts[a].counter) < std::tie(facts[b].runner, facts[b].counter);
    });
    out.tasks.reserve(tasks.size());
    for (std::size_t i : order) out.tasks.push_back(std::move(tasks[i]));
    return out;
}

}  // namespace

TrioTasksResult readTrioTasks(Objects& objects, FrameWalker& frames, const InterpreterState& interp,
                              const std::unordered_map<std::uint64_t, WalkedStack>& stacks,
                              const std::function<void()>& forget, bool lastAttempt) {
    TrioReader reader(objects, frames);
    try {
        return reader.read(interp, stacks, forget, lastAttempt);
    } catch (const BadRead& e) {
        TrioTasksResult out;
        out.torn = true;
        out.warnings.push_back(std::string("trio tasks: incomplete read: ") + e.what());
        return out;
    }
}

}  // namespace aioscope
