#include "analysis/boundary_graph.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace aioscope {

namespace {

struct Node {
    bool thread = false;
    std::uint64_t id = 0;
    auto operator<=>(const Node&) const = default;
};

struct Edge {
    Node to;
    std::string how;  // "<from> <how> <to>", for the message
    std::optional<std::uint64_t> object;
};

std::string hex(std::uint64_t a) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(a));
    return buf;
}

std::string where(const Stack& frames) {
    if (frames.empty()) return "";
    const Frame& f = frames.front();
    return " at " + f.qualname + " (" + f.file.substr(f.file.rfind('/') + 1) + ":" +
           (f.line ? std::to_string(*f.line) : "?") + ")";
}

struct NodeHash {
    std::size_t operator()(const Node& n) const {
        std::uint64_t h = n.id * 0x9E3779B97F4A7C15ull ^ (n.thread ? 1 : 0);
        return static_cast<std::size_t>(h ^ (h >> 29));
    }
};

class Graph {
public:
    // Every deadlock reported here is a cycle through a thread, and whether
    // a node is stuck depends only on what it waits for, directly or not: the
    // graph holds the waiting threads and what they reach, nothing else. A
    // dump of 100,000 tasks where no thread waits builds no graph at all.
    explicit Graph(const Snapshot& snap) : m_snap(snap) {
        for (const auto& t : snap.threads) m_threads[t.threadId] = &t;
        std::vector<Node> todo;
        for (const auto& t : snap.threads) {
            if (t.loop && t.waiting && !t.error) m_blockedLoops[*t.loop] = t.threadId;
            if (t.waiting && !t.error) todo.push_back({true, t.threadId});
        }
        if (todo.empty()) return;
        for (const auto& t : snap.tasks) {
            m_tasks[t.id] = &t;
            if (!t.error) for (auto lock : t.holds) m_holders[lock].push_back(t.id);
        }
        std::unordered_set<Node, NodeHash> seen(todo.begin(), todo.end());
        auto reach = [&](const Node& n) {
            if (seen.insert(n).second) todo.push_back(n);
        };
        while (!todo.empty()) {
            Node n = todo.back();
            todo.pop_back();
            if (n.thread) {
                edgesOfThread(n.id);
            } else {
                edgesOfTask(n.id);
            }
            if (auto e = m_edges.find(n); e != m_edges.end()) {
                for (const Edge& x : e->second) reach(x.to);
            }
            if (auto a = m_any.find(n); a != m_any.end()) {
                for (const Node& x : a->second.first) reach(x);
            }
        }
    }

    std::string label(const Node& n) const {
        if (n.thread) {
            const Thread* t = m_threads.at(n.id);
            return "thread " + std::to_string(n.id) + (t->name ? " \"" + *t->name + "\"" : "");
        }
        return "task '" + m_tasks.at(n.id)->name + "'";
    }
    std::string whereOf(const Node& n) const {
        return n.thread ? where(m_threads.at(n.id)->frames) : where(m_tasks.at(n.id)->frames());
    }
    const std::map<Node, std::vector<Edge>>& edges() const { return m_edges; }
    const std::map<Node, std::pair<std::vector<Node>, std::string>>& anyOf() const { return m_any; }
    const Thread* thread(std::uint64_t id) const {
        auto it = m_threads.find(id);
        return it == m_threads.end() ? nullptr : it->second;
    }

private:
    bool usableTask(std::uint64_t id) const {
        auto it = m_tasks.find(id);
        return it != m_tasks.end() && it->second->state == TaskState::pending && !it->second->error &&
               !(it->second->awaiting && it->second->awaiting->done);
    }
    bool usableThread(std::uint64_t id) const {
        auto it = m_threads.find(id);
        return it != m_threads.end() && !it->second->error;
    }
    // The first edge between two nodes is kept. Looked up in a hash set: a
    // task gathering 100,000 children has that many edges, and scanning them
    // for each new one was quadratic (minutes for a 100,000-task dump).
    void add(Node from, Node to, std::string how, std::optional<std::uint64_t> object = {}) {
        if (!m_linked.insert(EdgeKey{from, to}).second) return;
        m_edges[from].push_back({to, std::move(how), object});
    }

    void edgesOfTask(std::uint64_t id) {
        if (!usableTask(id)) return;
        const Task& t = *m_tasks.at(id);
        if (t.runtime != "asyncio") return;
        Node from{false, t.id};
        const Awaiting* a = t.awaiting ? &*t.awaiting : nullptr;
        if (a && a->task && usableTask(*a->task)) add(from, {false, *a->task}, "awaits");
        if (a && (a->kind == "gather" || a->kind == "taskgroup")) {
            for (auto c : a->children) {
                if (usableTask(c)) add(from, {false, c}, "awaits");
            }
        }
        if (a && (a->kind == "lock" || a->kind == "semaphore") && a->object) {
            auto h = m_holders.find(*a->object);
            if (h != m_holders.end() && h->second.size() == 1 && usableTask(h->second.front())) {
                add(from, {false, h->second.front()}, "waits for asyncio lock " + hex(*a->object) + " held by",
                    *a->object);
            }
        }
        const Awaiting::Detail* d = a ? &a->detail() : nullptr;
        if (a && a->kind == "executor" && d->thread && usableThread(*d->thread)) {
            add(from, {true, *d->thread}, "awaits executor work (future " + hex(d->concurrentFuture.value_or(0)) +
                                              ") running in", d->concurrentFuture);
        }
        // Only these tasks and threads reference what it waits on: one of
        // them must complete it.
        if (a && d->referencedBy && a->kind != "executor") {
            std::vector<Node> setters;
            for (auto by : d->referencedBy->tasks) setters.push_back({false, by});
            for (auto by : d->referencedBy->threads) setters.push_back({true, by});
            bool known = !setters.empty() && std::all_of(setters.begin(), setters.end(), [&](const Node& n) {
                return n.thread ? usableThread(n.id) : m_tasks.count(n.id) != 0;
            });
            std::string what = a->object ? a->objectType + " " + hex(*a->object) : a->type + " " + hex(a->address);
            if (known) m_any[from] = {setters, "waits on " + what + ", which only these reference:"};
        }
        if (auto b = m_blockedLoops.find(t.loop); b != m_blockedLoops.end() && usableThread(b->second)) {
            add(from, {true, b->second}, "needs its event loop, whose thread is blocked:");
        }
    }

    void edgesOfThread(std::uint64_t id) {
        auto it = m_threads.find(id);
        if (it == m_threads.end()) return;
        const Thread& t = *it->second;
        if (!t.waiting || t.error) return;
        const ThreadWait& w = *t.waiting;
        Node from{true, t.threadId};
        std::string what = w.objectType + " " + hex(w.object);
        if ((w.kind == "lock" || w.kind == "rlock") && w.owner && *w.owner != t.threadId && usableThread(*w.owner)) {
            add(from, {true, *w.owner}, "waits for " + what + " held by", w.object);
        } else if (w.kind == "join" && w.thread && usableThread(*w.thread)) {
            add(from, {true, *w.thread}, "waits in join() for");
        } else if (w.kind == "future-result" && w.task && usableTask(*w.task)) {
            add(from, {false, *w.task}, "waits in Future.result() (" + hex(w.object) + ") for", w.object);
        } else if (w.kind == "future-result" && w.queued && w.loop) {
            for (const auto& l : m_snap.threads) {
                if (l.loop == w.loop && !l.error) {
                    add(from, {true, l.threadId},
                        "waits in Future.result() (" + hex(w.object) +
                            ") for a coroutine whose start is queued on the event loop of",
                        w.object);
                }
            }
        }
    }

    struct EdgeKey {
        Node from, to;
        bool operator==(const EdgeKey&) const = default;
    };
    struct EdgeKeyHash {
        std::size_t operator()(const EdgeKey& k) const {
            std::uint64_t h = k.from.id * 0x9E3779B97F4A7C15ull ^ k.to.id * 0xC2B2AE3D27D4EB4Full ^
                              (k.from.thread ? 1 : 0) ^ (k.to.thread ? 2 : 0);
            return static_cast<std::size_t>(h ^ (h >> 29));
        }
    };

    const Snapshot& m_snap;
    std::unordered_set<EdgeKey, EdgeKeyHash> m_linked;
    std::unordered_map<std::uint64_t, const Task*> m_tasks;
    std::unordered_map<std::uint64_t, const Thread*> m_threads;
    std::map<std::uint64_t, std::uint64_t> m_blockedLoops;  // loop -> its thread, blocked in a synchronous wait
    std::unordered_map<std::uint64_t, std::vector<std::uint64_t>> m_holders;  // asyncio lock -> tasks holding it
    std::map<Node, std::vector<Edge>> m_edges;
    std::map<Node, std::pair<std::vector<Node>, std::string>> m_any;
};

// Nodes that can never go on (a greatest fixpoint): one waits for each of its
// edges, so it is stuck when one of them leads to a stuck node; a wait that
// any of several could complete is stuck when all of them are.
// Computed with a worklist (a node is judged again only when one it waits for
// is found not stuck): linear in the graph, where repeated passes over all
// nodes were quadratic on a chain (100,000 tasks each awaiting the next).
std::set<Node> stuckForever(const Graph& g) {
    std::set<Node> s;
    for (const auto& [n, e] : g.edges()) s.insert(n);
    for (const auto& [n, a] : g.anyOf()) s.insert(n);
    std::map<Node, std::vector<Node>> dependents;  // who waits on each node
    for (const auto& [n, es] : g.edges()) {
        for (const auto& e : es) dependents[e.to].push_back(n);
    }
    for (const auto& [n, a] : g.anyOf()) {
        for (const auto& x : a.first) dependents[x].push_back(n);
    }
    auto stuck = [&](const Node& n) {
        if (auto e = g.edges().find(n); e != g.edges().end()) {
            if (std::any_of(e->second.begin(), e->second.end(), [&](const Edge& x) { return s.count(x.to) != 0; })) {
                return true;
            }
        }
        if (auto a = g.anyOf().find(n); a != g.anyOf().end()) {
            return std::all_of(a->second.first.begin(), a->second.first.end(),
                               [&](const Node& x) { return s.count(x) != 0; });
        }
        return false;
    };
    std::vector<Node> work(s.begin(), s.end());
    while (!work.empty()) {
        Node n = work.back();
        work.pop_back();
        if (!s.count(n) || stuck(n)) continue;
        s.erase(n);
        if (auto d = dependents.find(n); d != dependents.end()) {
            for (const Node& p : d->second) {
                if (s.count(p)) work.push_back(p);
            }
        }
    }
    return s;
}

constexpr std::size_t kMaxFindings = 64;

// What each stuck node waits for among the stuck: its edges, and for a wait
// only some tasks and threads could complete, each of them.
std::map<Node, std::vector<Edge>> stuckEdges(const Graph& g, const std::set<Node>& stuck) {
    std::map<Node, std::vector<Edge>> out;
    for (const Node& n : stuck) {
        auto& v = out[n];
        if (auto e = g.edges().find(n); e != g.edges().end()) {
            for (const auto& x : e->second) {
                if (stuck.count(x.to)) v.push_back(x);
            }
        }
        if (auto a = g.anyOf().find(n); a != g.anyOf().end()) {
            std::string all;
            for (const auto& m : a->second.first) all += (all.empty() ? " " : ", ") + g.label(m);
            for (const auto& m : a->second.first) {
                if (stuck.count(m)) v.push_back({m, a->second.second + all + "; among them", {}});
            }
        }
    }
    return out;
}

// The shortest cycle back to `start`, as (node, edge taken) steps.
std::optional<std::vector<std::pair<Node, const Edge*>>> cycleFrom(const std::map<Node, std::vector<Edge>>& edges,
                                                                   Node start) {
    std::map<Node, std::pair<Node, const Edge*>> parent;
    std::deque<Node> todo{start};
    std::set<Node> seen{start};
    while (!todo.empty()) {
        Node v = todo.front();
        todo.pop_front();
        auto it = edges.find(v);
        if (it == edges.end()) continue;
        for (const auto& e : it->second) {
            if (e.to == start) {
                std::vector<std::pair<Node, const Edge*>> path{{v, &e}};
                for (Node at = v; !(at == start);) {
                    auto p = parent.at(at);
                    path.push_back(p);
                    at = p.first;
                }
                std::reverse(path.begin(), path.end());
                return path;
            }
            if (seen.insert(e.to).second) {
                parent[e.to] = {v, &e};
                todo.push_back(e.to);
            }
        }
    }
    return std::nullopt;
}

}  // namespace

std::vector<Finding> analyzeBoundary(const Snapshot& snap) {
    std::vector<Finding> out;
    Graph g(snap);
    std::set<Node> stuck = stuckForever(g);
    auto edges = stuckEdges(g, stuck);
    // Cycles through each thread; cycles that share a node are one deadlock
    // (a wait several could complete has one cycle per way out): explained
    // by its longest cycle, naming every task and thread of all of them.
    struct Group {
        std::set<Node> nodes;
        std::vector<std::pair<Node, const Edge*>> longest;
    };
    std::vector<Group> groups;
    for (const auto& t : snap.threads) {
        if (!stuck.count({true, t.threadId})) continue;
        auto cycle = cycleFrom(edges, {true, t.threadId});
        if (!cycle) continue;
        std::set<Node> nodes;
        for (const auto& [n, e] : *cycle) nodes.insert(n);
        Group merged{nodes, *cycle};
        for (auto it = groups.begin(); it != groups.end();) {
            bool shares = std::any_of(it->nodes.begin(), it->nodes.end(), [&](const Node& n) { return nodes.count(n); });
            if (!shares) {
                ++it;
                continue;
            }
            merged.nodes.insert(it->nodes.begin(), it->nodes.end());
            if (it->longest.size() > merged.longest.size()) merged.longest = it->longest;
            it = groups.erase(it);
        }
        groups.push_back(std::move(merged));
    }
    for (const auto& group : groups) {
        if (out.size() >= kMaxFindings) break;
        const auto& cycle = group.longest;
        bool tasks = std::any_of(group.nodes.begin(), group.nodes.end(), [](const Node& n) { return !n.thread; });
        // A loop's thread waiting on its own loop (directly, or for one of its tasks).
        bool ownLoop = false;
        for (const auto& [n, e] : cycle) {
            const Thread* th = n.thread ? g.thread(n.id) : nullptr;
            if (th && th->loop && th->waiting && th->waiting->loop == th->loop) ownLoop = true;
        }
        Finding f;
        f.kind = ownLoop ? "loop-blocked-forever" : tasks ? "cross-deadlock" : "thread-deadlock";
        std::string chain;
        for (const auto& [n, e] : cycle) {
            if (e->object) f.objects.push_back(*e->object);
            if (!chain.empty()) chain += "; ";
            chain += g.label(n) + g.whereOf(n) + " " + e->how + " " + (e->to == n ? "its own thread" : g.label(e->to));
        }
        // In wait-for order, then the rest of the group.
        for (const auto& [n, e] : cycle) (n.thread ? f.threads : f.tasks).push_back(n.id);
        for (const Node& n : group.nodes) {
            auto& v = n.thread ? f.threads : f.tasks;
            if (std::find(v.begin(), v.end(), n.id) == v.end()) v.push_back(n.id);
        }
        if (f.kind == "loop-blocked-forever") {
            f.message = "An event loop's thread is blocked in a wait only that loop could complete: " + chain +
                        ". The loop runs nothing until it returns, which it never will.";
        } else if (f.kind == "cross-deadlock") {
            f.message = "Deadlock across tasks and threads: " + chain + ".";
        } else {
            f.message = "Deadlock between threads: " + chain + ".";
        }
        out.push_back(std::move(f));
    }

    // Pools whose every worker is blocked while tasks wait for work queued
    // behind them.
    std::map<std::uint64_t, std::vector<const Thread*>> pools;
    for (const auto& t : snap.threads) {
        if (t.worker && t.worker->executor && !t.error) pools[t.worker->executor].push_back(&t);
    }
    for (const auto& [executor, workers] : pools) {
        auto max = workers.front()->worker->maxWorkers;
        bool allBlocked = std::all_of(workers.begin(), workers.end(),
                                      [](const Thread* w) { return w->worker->workItem && w->waiting; });
        if (!max || static_cast<std::int64_t>(workers.size()) < *max || !allBlocked) continue;
        Finding f;
        f.kind = "executor-starved";
        f.objects = {executor};
        std::string queued;
        for (const auto& t : snap.tasks) {
            const Awaiting* a = t.awaiting ? &*t.awaiting : nullptr;
            if (t.state != TaskState::pending || t.error || !a || a->done || a->detail().executor != executor) continue;
            f.tasks.push_back(t.id);
            queued += (queued.empty() ? "'" : ", '") + t.name + "'";
        }
        if (f.tasks.empty()) continue;
        std::string busy;
        for (const Thread* w : workers) {
            f.threads.push_back(w->threadId);
            busy += (busy.empty() ? "" : "; ") + g.label({true, w->threadId}) + where(w->frames) + " waits [" +
                    w->waiting->kind + "] on " + w->waiting->objectType + " " + hex(w->waiting->object);
        }
        f.message = "Thread pool " + hex(executor) + " is starved: all " + std::to_string(workers.size()) +
                    " workers are blocked (" + busy + "), and task" + (f.tasks.size() == 1 ? " " : "s ") + queued +
                    " await" + (f.tasks.size() == 1 ? "s" : "") + " work queued behind them.";
        out.push_back(std::move(f));
    }
    return out;
}

}  // namespace aioscope
