#include "walk/task_registry.h"

#include <unordered_set>

#include "remote/limits.h"
#include "walk/python_facts.h"

namespace aioscope {

namespace {

class Collector {
public:
    void add(Addr a) {
        if (a && m_seen.insert(a).second) m_out.tasks.push_back(a);
    }
    void addAll(const std::vector<Addr>& v) {
        for (Addr a : v) add(a);
    }
    void warn(std::string w) { m_out.warnings.push_back(std::move(w)); }
    TaskRegistryResult take() { return std::move(m_out); }

private:
    std::unordered_set<Addr> m_seen;
    TaskRegistryResult m_out;
};

// A circular list threaded through TaskObj.task_node, headed by a sentinel.
void walkTaskList(Objects& objects, Addr head, Collector& out) {
    const Layout& L = objects.layout();
    Remote& mem = objects.mem();
    Addr prev = head;
    Addr node = mem.ptr(head, "task list head");
    std::unordered_set<Addr> seen;
    for (std::size_t n = 0; node && node != head; ++n) {
        if (n >= limits::kMaxTasks) throw BadRead("task list longer than " + std::to_string(limits::kMaxTasks));
        if (!seen.insert(node).second) throw BadRead("task list loops");
        Block links = mem.block(node, 16, "task list node");
        // A node moved to another list while we read shows a broken back link.
        if (links.ptr(8) != prev) throw BadRead("task list changed while it was read");
        out.add(node - static_cast<Addr>(L.asyncio.taskNode));
        prev = node;
        node = links.ptr(0);
    }
}

void fromAsyncioDicts(Objects& objects, const InterpreterState& interp, Collector& out,
                      std::initializer_list<const char*> weaksets, std::initializer_list<const char*> sets) {
    for (const char* module : {"_asyncio", "asyncio.tasks"}) {
        auto dict = moduleDict(objects, interp, module);
        if (!dict) continue;
        for (const char* name : weaksets) {
            if (auto ws = objects.dictGet(*dict, name)) out.addAll(weakSetItems(objects, *ws));
        }
        for (const char* name : sets) {
            if (auto s = objects.dictGet(*dict, name)) out.addAll(objects.setItems(*s));
        }
    }
}

}  // namespace

std::vector<Addr> weakSetItems(Objects& objects, Addr weakset) {
    std::vector<Addr> out;
    auto data = objects.attr(weakset, "data");
    if (!data) return out;
    const Layout& L = objects.layout();
    Addr none = 0;
    for (Addr ref : objects.setItems(*data)) {
        std::uint64_t target = 0;
        if (!objects.mem().tryRead(ref + L.callable.weakrefObject, &target, 8) || !target) continue;
        // A dead reference points at None; remember None's address once.
        if (!none && objects.typeNameOf(target) == "NoneType") none = target;
        if (target != none) out.push_back(target);
    }
    return out;
}

TaskRegistryResult discoverTasks(Objects& objects, const InterpreterState& interp,
                                 const std::vector<ThreadState>& threads) {
    const auto& A = objects.layout().asyncio;
    Collector out;
    auto guarded = [&](const char* what, auto&& fn) {
        try {
            fn();
        } catch (const BadRead& e) {
            out.warn(std::string(what) + ": " + e.what());
        }
    };
    switch (A.registry) {
        case TaskRegistryModel::allTasksWeakSet:
            guarded("_all_tasks", [&] { fromAsyncioDicts(objects, interp, out, {"_all_tasks"}, {}); });
            break;
        case TaskRegistryModel::scheduledAndEager:
            guarded("_scheduled_tasks", [&] {
                fromAsyncioDicts(objects, interp, out, {"_scheduled_tasks"}, {"_eager_tasks"});
            });
            break;
        case TaskRegistryModel::linkedLists:
            for (const auto& t : threads) {
                guarded("a thread's task list",
                        [&] { walkTaskList(objects, t.addr + static_cast<Addr>(A.threadTasksHead), out); });
            }
            guarded("the interpreter's task list",
                    [&] { walkTaskList(objects, interp.addr + static_cast<Addr>(A.interpTasksHead), out); });
            guarded("tasks of other Task classes", [&] {
                auto module = objects.dictGet(interp.modules, "_asyncio");
                if (!module) return;
                Addr state = objects.mem().ptr(*module + objects.layout().module.state, "_asyncio state");
                if (!state) return;
                Addr ws = objects.mem().ptr(state + A.stateNonAsyncioTasks, "non_asyncio_tasks");
                if (ws) out.addAll(weakSetItems(objects, ws));
                Addr eager = objects.mem().ptr(state + A.stateNonAsyncioEagerTasks, "non_asyncio_eager_tasks");
                if (eager) out.addAll(objects.setItems(eager));
            });
            // The pure-Python registry, used when _asyncio is not.
            guarded("asyncio.tasks", [&] {
                fromAsyncioDicts(objects, interp, out, {"_scheduled_tasks"}, {"_eager_tasks"});
            });
            break;
    }
    return out.take();
}

}  // namespace aioscope
