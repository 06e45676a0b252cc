// The deadlocks trio's own records make certain, and the second read that
// confirms every fact one rests on before it is reported.
#include <algorithm>
#include <unordered_set>

#include "walk/trio_reader.h"

#include <unordered_set>

namespace aioscope::trio {

namespace {

// Waits that only whoever references the object can ever complete (set the
// Event, release the Lock...). Channels are not: their senders hold the
// shared state, not the receiving end.
bool countsReferences(const std::string& kind) {
    static const std::unordered_set<std::string> kinds{"event", "lock", "semaphore", "condition", "capacity-limiter"};
    return kinds.count(kind) != 0;
}

// Which nodes lie on a cycle of the graph (Tarjan's strongly connected
// components, iterative: a chain of 100,000 tasks must not exhaust the stack).
std::vector<bool> onCycles(const std::vector<std::vector<std::size_t>>& next) {
    std::size_t n = next.size();
    std::vector<int> index(n, -1), low(n, 0);
    std::vector<bool> onStack(n, false), out(n, false);
    std::vector<std::size_t> stack;
    std::vector<std::pair<std::size_t, std::size_t>> calls;
    int counter = 0;
    for (std::size_t root = 0; root < n; ++root) {
        if (index[root] >= 0) continue;
        calls.push_back({root, 0});
        index[root] = low[root] = counter++;
        stack.push_back(root);
        onStack[root] = true;
        while (!calls.empty()) {
            auto& [v, edge] = calls.back();
            if (edge < next[v].size()) {
                std::size_t w = next[v][edge++];
                if (index[w] < 0) {
                    index[w] = low[w] = counter++;
                    stack.push_back(w);
                    onStack[w] = true;
                    calls.push_back({w, 0});
                } else if (onStack[w]) {
                    low[v] = std::min(low[v], index[w]);
                }
                continue;
            }
            std::size_t done = v;
            calls.pop_back();
            if (!calls.empty()) low[calls.back().first] = std::min(low[calls.back().first], low[done]);
            if (low[done] != index[done]) continue;
            std::vector<std::size_t> scc;
            std::size_t w;
            do {
                w = stack.back();
                stack.pop_back();
                onStack[w] = false;
                scc.push_back(w);
            } while (w != done);
            bool self = std::find(next[done].begin(), next[done].end(), done) != next[done].end();
            if (scc.size() > 1 || self) {
                for (std::size_t x : scc) out[x] = true;
            }
        }
    }
    return out;
}

}  // namespace

// Suspended where wait_task_rescheduled yields its trap to the run loop.
bool TrioReader::inTrap(const CoroutineChain& chain) {
    if (chain.links.empty() || chain.executing) return false;
    const RawFrame& frame = chain.links.back().frame;
    const CodeInfo& code = m_frames.codes().get(frame.code);
    const auto& names = m_layout.trapFunctions;
    if (std::find(names.begin(), names.end(), code.name) == names.end() || !code.filename.ends_with(m_layout.trapFile)) {
        return false;
    }
    auto trap = m_locals.get(frame, m_layout.trapLocal);
    return trap && m_objects.typeNameOf(*trap) == m_layout.trapClass;
}

// Still blocked in the same wait: not scheduled, in the trap, asleep on the same object.
bool TrioReader::blockedOn(Addr task, Addr coro, Addr sleepData) {
    if (field(task, m_layout.taskNextSendFn) || field(task, m_layout.taskSleepData).value_or(0) != sleepData) {
        return false;
    }
    auto chain = m_coroutines.follow(coro);
    return !chain.error && inTrap(chain);
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

// Who holds which lock, from trio's own records: a Lock's owner task and a
// CapacityLimiter's borrowers. (A Semaphore records no holder: none is shown.)
// A lock whose owner has finished can never be released.
void TrioReader::addHolds(std::vector<Task>& tasks, std::vector<Facts>& facts, TrioTasksResult& out) {
    std::unordered_map<Addr, std::size_t> index;
    for (std::size_t i = 0; i < tasks.size(); ++i) index[tasks[i].id] = i;
    std::set<Addr> primitives;
    std::map<Addr, std::vector<std::size_t>> waiters;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        const auto& a = tasks[i].awaiting;
        if (a && a->object) primitives.insert(*a->object);
        if (a && a->object && a->kind == "lock") waiters[*a->object].push_back(i);
        if (tasks[i].state == TaskState::running) continue;
        try {
            for (Addr p : enteredPrimitives(facts[i].chain)) primitives.insert(p);
        } catch (const BadRead& e) {
            out.torn = true;
            out.warnings.push_back("locks held by trio task " + hexAddr(tasks[i].id) + ": " + e.what());
        }
    }
    for (Addr p : primitives) {
        try {
            if (m_classes.lockImpl && m_fields.isInstanceOf(p, m_classes.lockImpl)) {
                auto owner = field(p, m_layout.lockOwner);
                if (!owner || !m_fields.isInstanceOf(*owner, m_classes.task)) continue;
                // Its waiters are parked in its ParkingLot. One that is not was
                // read while being woken (trio clears custom_sleep_data when it
                // reschedules a task): it waits on nothing, or, read torn, on
                // nothing the analysis may rely on.
                auto w = waiters.find(p);
                if (w != waiters.end()) {
                    Addr lot = field(p, m_layout.lockLot).value_or(0);
                    std::erase_if(w->second, [&](std::size_t i) {
                        if (lot && facts[i].sleepData == lot) return false;
                        auto& a = tasks[i].awaiting;
                        if (!facts[i].sleepData) {
                            a.reset();
                        } else {
                            a->object.reset();
                            a->objectType.clear();
                            out.torn = true;
                        }
                        return true;
                    });
                    if (w->second.empty()) w = waiters.end();
                }
                if (auto it = index.find(*owner); it != index.end()) {
                    tasks[it->second].holds.push_back(p);
                    if (w != waiters.end()) {
                        for (std::size_t i : w->second) m_lockEdges.push_back({i, p, it->second});
                    }
                } else if (w != waiters.end()) {
                    for (std::size_t i : w->second) abandoned(tasks, facts, out, i, p, *owner);
                }
            } else if (m_classes.capacityLimiter && m_fields.isInstanceOf(p, m_classes.capacityLimiter)) {
                auto borrowers = field(p, m_layout.limiterBorrowers);
                if (!borrowers) continue;
                for (Addr b : m_objects.setItems(*borrowers)) {
                    if (auto it = index.find(b); it != index.end()) tasks[it->second].holds.push_back(p);
                }
            }
        } catch (const BadRead& e) {
            out.torn = true;  // changed while read (a torn pointer): the next attempt sees it whole
            out.warnings.push_back("trio primitive " + hexAddr(p) + ": " + e.what());
        }
    }
    for (auto& t : tasks) std::sort(t.holds.begin(), t.holds.end());
}

void TrioReader::abandoned(std::vector<Task>& tasks, std::vector<Facts>& facts, TrioTasksResult& out, std::size_t i,
                           Addr lock, Addr owner) {
    bool living = std::any_of(m_living.begin(), m_living.end(), [&](const auto& r) { return r.second.count(owner); });
    if (living) return;  // a task of this run that could not be read: not judged
    const Task& t = tasks[i];
    std::string ownerName = m_objects.str(field(owner, m_layout.taskName).value_or(0), 1024).value_or("?");
    Finding f;
    f.kind = "abandoned-lock";
    f.tasks = {t.id};
    f.objects = {lock};
    f.message = "Task '" + t.name + "' waits" + where(t) + " for " + m_objects.typeNameOf(lock) + " " + hexAddr(lock) +
                " whose owner, task '" + ownerName + "' (" + hexAddr(owner) +
                "), has finished without releasing it: nothing can ever release it.";
    out.findings.push_back(std::move(f));
    std::size_t n = out.findings.size() - 1;
    Addr runner = facts[i].runner, task = t.id, coro = facts[i].coro, lot = facts[i].sleepData;
    auto drop = [&out, n] { out.findings[n].kind.clear(); };
    m_checks.push_back({[this, lock] { return field(lock, m_layout.lockOwner); }, owner, drop});
    m_checks.push_back({[this, runner, owner]() -> std::optional<Addr> {
                            auto set = field(runner, m_layout.runnerTasks);
                            auto items = set ? m_objects.setItems(*set) : std::vector<Addr>{};
                            return std::find(items.begin(), items.end(), owner) != items.end();
                        },
                        0, drop});
    m_checks.push_back(
        {[this, task, coro, lot]() -> std::optional<Addr> { return blockedOn(task, coro, lot); }, 1, drop});
}

// The lock waits that close a cycle (through other lock waits, or a parent
// waiting in its nursery's exit for its children) are what a lock-deadlock
// finding will rest on: each is read again before it is believed.
void TrioReader::confirmCycles(std::vector<Task>& tasks, std::vector<Facts>& facts) {
    std::vector<std::vector<std::size_t>> next(tasks.size());
    std::unordered_map<Addr, std::size_t> index;
    for (std::size_t i = 0; i < tasks.size(); ++i) index[tasks[i].id] = i;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        const auto& a = tasks[i].awaiting;
        if (!a || a->kind != "nursery") continue;
        for (Addr c : a->children) {
            if (auto it = index.find(c); it != index.end()) next[i].push_back(it->second);
        }
    }
    for (const auto& e : m_lockEdges) next[e.waiter].push_back(e.owner);
    auto cyclic = onCycles(next);
    // A parent on a cycle is still in its nursery's exit.
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        if (!cyclic[i] || next[i].empty() || !tasks[i].awaiting || tasks[i].awaiting->kind != "nursery") continue;
        Addr task = tasks[i].id, coro = facts[i].coro, lot = facts[i].sleepData;
        Task* parent = &tasks[i];
        m_checks.push_back({[this, task, coro, lot]() -> std::optional<Addr> { return blockedOn(task, coro, lot); }, 1,
                            [parent] { parent->awaiting->children.clear(); }});
    }
    for (const auto& e : m_lockEdges) {
        if (!cyclic[e.waiter] || !cyclic[e.owner]) continue;
        Task& holder = tasks[e.owner];
        Addr lock = e.lock, ownerId = holder.id, task = tasks[e.waiter].id, lot = facts[e.waiter].sleepData;
        Addr coro = facts[e.waiter].coro;
        auto drop = [&holder, lock] { std::erase(holder.holds, lock); };
        m_checks.push_back({[this, lock] { return field(lock, m_layout.lockOwner); }, ownerId, drop});
        m_checks.push_back(
            {[this, task, coro, lot]() -> std::optional<Addr> { return blockedOn(task, coro, lot); }, 1, drop});
    }
}

void TrioReader::addExternalRefs(std::vector<Task>& tasks, std::vector<Facts>& facts, TrioTasksResult& out) {
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        Task& t = tasks[i];
        if (!t.awaiting || !t.awaiting->object || !countsReferences(t.awaiting->kind)) continue;
        Addr object = *t.awaiting->object, coro = facts[i].coro, abort = facts[i].abortFunc, task = t.id;
        Addr lot = facts[i].sleepData;
        try {
            t.awaiting->externalRefs = m_refs.external(facts[i].chain, object, {abort});
        } catch (const BadRead& e) {
            out.torn = true;
            out.warnings.push_back("references to " + hexAddr(object) + ": " + e.what());
            continue;
        }
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
        m_checks.push_back(
            {[this, task, coro, lot]() -> std::optional<Addr> { return blockedOn(task, coro, lot); }, 1, drop});
    }
}

// Reads every check again, the cache dropped first: what changed was read
// between two steps of a task and is not believed.
void TrioReader::confirm(const std::function<void()>& forget, bool lastAttempt, TrioTasksResult& out) {
    if (m_checks.empty()) return;
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
        out.warnings.push_back(
            "trio: the process changed while a deadlock was being confirmed; "
            "what could not be read twice alike is not reported");
    }
}

}  // namespace aioscope::trio
