#include "walk/trio_tasks.h"

#include <algorithm>
#include <tuple>
#include <unordered_set>

#include "remote/limits.h"
#include "walk/trio_reader.h"

namespace aioscope {

namespace trio {

std::string where(const Task& t) {
    if (!t.where()) return "";
    const Frame& f = *t.where();
    return " at " + f.qualname + " (" + f.file.substr(f.file.rfind('/') + 1) + ":" +
           (f.line ? std::to_string(*f.line) : "?") + ")";
}

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
    for (auto it = chain.links.rbegin(); it != chain.links.rend(); ++it)
        key.emplace_back(it->frame.code, it->frame.lasti);
    auto& slot = m_stacks[key];
    if (!slot) {
        auto stack = std::make_shared<Stack>();
        for (auto it = chain.links.rbegin(); it != chain.links.rend(); ++it)
            stack->push_back(m_frames.describe(it->frame));
        slot = std::move(stack);
    }
    return slot;
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
    if (target) a.editDetail().fd = target->fd;
    if (a.kind == "nursery" && object) {
        if (auto children = field(object, m_layout.nurseryChildren)) {
            for (Addr c : tasksIn(*children)) a.children.push_back(c);
            std::sort(a.children.begin(), a.children.end());
        }
    }
    t.awaiting = std::move(a);
}

Task TrioReader::readTask(Addr addr, Addr runner, std::optional<std::uint64_t> thread, const InterpreterState& interp,
                          const std::unordered_map<std::uint64_t, WalkedStack>& stacks, Facts& facts) {
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
    if (!facts.coro)
        t.error =
            std::string("the task has no '") + m_layout.taskCoro + "' (aioscope knows " + m_layout.describes + ")";
    if (auto n = field(addr, m_layout.taskCounter)) facts.counter = m_objects.integer(*n).value_or(0);
    if (auto nursery = field(addr, m_layout.taskParentNursery);
        nursery && m_fields.isInstanceOf(*nursery, m_classes.nursery)) {
        facts.parentTask = field(*nursery, m_layout.nurseryParentTask).value_or(0);
    }
    bool scheduled = field(addr, m_layout.taskNextSendFn).has_value();
    facts.sleepData = field(addr, m_layout.taskSleepData).value_or(0);
    facts.abortFunc = field(addr, m_layout.taskAbortFunc).value_or(0);
    if (auto status = field(addr, m_layout.taskCancelStatus)) {
        if (auto cancelled = field(*status, m_layout.cancelStatusCancelled)) {
            t.cancelPending = m_objects.integer(*cancelled).value_or(0) == 1;
        }
    }

    facts.chain = m_coroutines.follow(facts.coro);
    if (facts.chain.error) t.error = facts.chain.error;
    if (!facts.coro) return t;
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
    } else {
        t.stack = suspendedStack(facts.chain);
        // Scheduled to run (woken, or never started), or passing a checkpoint
        // (rescheduled at once): it waits on nothing.
        facts.blocked = !scheduled && inTrap(facts.chain);
        if (facts.blocked) describeWait(t, facts);
    }
    for (const auto& link : facts.chain.links) {
        Addr exc = m_objects.mem().ptr(link.gen + L.gen.excValue, "gi_exc_state");
        if (exc && m_fields.isInstanceOf(exc, m_classes.cancelled)) t.handlingCancel = true;
    }
    return t;
}

TrioTasksResult TrioReader::read(const InterpreterState& interp, const std::vector<ThreadState>& threads,
                                 const std::unordered_map<std::uint64_t, WalkedStack>& stacks,
                                 const std::function<void()>& forget, bool lastAttempt) {
    TrioTasksResult out;
    TrioRuntime rt = findTrio(m_fields, m_frames, m_locals, m_layout, interp, threads, stacks);
    out.warnings = rt.warnings;
    out.torn = rt.torn;
    if (!rt.classes) return out;
    m_classes = *rt.classes;
    m_classifier.setLibraryDirs(rt.libraryDirs);

    std::vector<Task> tasks;
    std::vector<Facts> facts;
    for (auto [runner, thread] : rt.runners) {
        auto set = field(runner, m_layout.runnerTasks);
        if (!set) {
            out.warnings.push_back("trio run " + hexAddr(runner) + ": its Runner has no '" + m_layout.runnerTasks +
                                   "' (aioscope knows " + m_layout.describes + "): its tasks are not shown");
            continue;
        }
        auto items = m_objects.setItems(*set);
        if (tasks.size() + items.size() > limits::kMaxTasks) throw BadRead("implausibly many trio tasks");
        auto& living = m_living[runner];
        std::size_t first = tasks.size();
        std::size_t unreadable = 0;
        for (Addr addr : items) {
            // A set read while trio resized it holds stale slots.
            if (!m_fields.isInstanceOf(addr, m_classes.task)) {
                ++unreadable;
                continue;
            }
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
        if (unreadable) {
            out.torn = true;
            out.warnings.push_back("trio run " + hexAddr(runner) + ": " + std::to_string(unreadable) +
                                   " entries of its task set changed while read");
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
    confirmCycles(tasks, facts);
    addExternalRefs(tasks, facts, out);

    confirm(forget, lastAttempt, out);
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

}  // namespace trio

TrioTasksResult readTrioTasks(Objects& objects, FrameWalker& frames, const InterpreterState& interp,
                              const std::vector<ThreadState>& threads,
                              const std::unordered_map<std::uint64_t, WalkedStack>& stacks,
                              const std::function<void()>& forget, bool lastAttempt) {
    trio::TrioReader reader(objects, frames);
    try {
        return reader.read(interp, threads, stacks, forget, lastAttempt);
    } catch (const BadRead& e) {
        TrioTasksResult out;
        out.torn = true;
        out.warnings.push_back(std::string("trio tasks: incomplete read: ") + e.what());
        return out;
    }
}

}  // namespace aioscope
