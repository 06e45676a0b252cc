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
void walkTaskList(Objects& objects, Addr head, Collector& out, Witness* witness) {
    const Layout& L = objects.layout();
    Remote& mem = objects.mem();
    Addr prev = head;
    Addr node = mem.ptr(head, "task list head");
    if (witness) witness->expect(head, node);
    std::unordered_set<Addr> seen;
    for (std::size_t n = 0; node && node != head; ++n) {
        if (n >= limits::kMaxTasks) throw BadRead("task list longer than " + std::to_string(limits::kMaxTasks));
        if (!seen.insert(node).second) throw BadRead("task list loops");
        Block links = mem.block(node, 16, "task list node");
        // A node moved to another list while we read shows a broken back link.
        if (links.ptr(8) != prev) throw BadRead("task list changed while it was read");
        if (witness) {
            witness->expect(node, links.ptr(0));
            witness->expect(node + 8, prev);
        }
        out.add(node - static_cast<Addr>(L.asyncio.taskNode));
        prev = node;
        node = links.ptr(0);
    }
}

// The set's table and its size: a table reallocated while it was read (the
// set grew or shrank) gives slots of freed memory.
void witnessSet(Objects& objects, Addr set, Witness* witness) {
    if (!witness || !set) return;
    const Layout& L = objects.layout();
    std::uint64_t v = 0;
    for (Off off : {L.set.table, L.set.mask}) {
        if (objects.mem().tryRead(set + static_cast<Addr>(off), &v, 8)) witness->expect(set + static_cast<Addr>(off), v);
    }
}

void fromAsyncioDicts(Objects& objects, const InterpreterState& interp, Collector& out,
                      std::initializer_list<const char*> weaksets, std::initializer_list<const char*> sets,
                      Witness* witness) {
    for (const char* module : {"_asyncio", "asyncio.tasks"}) {
        auto dict = moduleDict(objects, interp, module);
        if (!dict) continue;
        for (const char* name : weaksets) {
            if (auto ws = objects.dictGet(*dict, name)) out.addAll(weakSetItems(objects, *ws, witness));
        }
        for (const char* name : sets) {
            if (auto s = objects.dictGet(*dict, name)) {
                witnessSet(objects, *s, witness);
                out.addAll(objects.setItems(*s));
            }
        }
    }
}

}  // namespace

std::vector<Addr> weakSetItems(Objects& objects, Addr weakset, Witness* witness) {
    std::vector<Addr> out;
    auto data = objects.attr(weakset, "data");
    if (!data) return out;
    witnessSet(objects, *data, witness);
    const Layout& L = objects.layout();
    Addr none = 0;
    for (Addr ref : objects.setItems(*data)) {
        std::uint64_t target = 0;
        if (!objects.mem().tryRead(ref + L.callable.weakrefObject, &target, 8) || !target) continue;
        // A dead reference points at None; remember None's address once.
        if (!none && objects.builtinTypeNameOf(target) == "NoneType") none = target;
        if (target != none) out.push_back(target);
    }
    return out;
}

TaskRegistryResult discoverTasks(Objects& objects, const InterpreterState& interp,
                                 const std::vector<ThreadState>& threads, Witness* witness) {
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
            guarded("_all_tasks", [&] { fromAsyncioDicts(objects, interp, out, {"_all_tasks"}, {}, witness); });
            break;
        case TaskRegistryModel::scheduledAndEager:
            guarded("_scheduled_tasks", [&] {
                fromAsyncioDicts(objects, interp, out, {"_scheduled_tasks"}, {"_eager_tasks"}, witness);
            });
            break;
        case TaskRegistryModel::linkedLists:
            for (const auto& t : threads) {
                guarded("a thread's task list",
                        [&] { walkTaskList(objects, t.addr + static_cast<Addr>(A.threadTasksHead), out, witness); });
            }
            guarded("the interpreter's task list",
                    [&] { walkTaskList(objects, interp.addr + static_cast<Addr>(A.interpTasksHead), out, witness); });
            guarded("tasks of other Task classes", [&] {
                auto module = objects.dictGet(interp.modules, "_asyncio");
                if (!module) return;
                Addr state = objects.mem().ptr(*module + objects.layout().module.state, "_asyncio state");
                if (!state) return;
                Addr ws = objects.mem().ptr(state + A.stateNonAsyncioTasks, "non_asyncio_tasks");
                if (ws) out.addAll(weakSetItems(objects, ws, witness));
                Addr eager = objects.mem().ptr(state + A.stateNonAsyncioEagerTasks, "non_asyncio_eager_tasks");
                witnessSet(objects, eager, witness);
                if (eager) out.addAll(objects.setItems(eager));
            });
            // The pure-Python registry, used when _asyncio is not.
            guarded("asyncio.tasks", [&] {
                fromAsyncioDicts(objects, interp, out, {"_scheduled_tasks"}, {"_eager_tasks"}, witness);
            });
            break;
    }
    return out.take();
}

}  // namespace aioscope
