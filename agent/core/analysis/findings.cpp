#include "analysis/findings.h"

#include "analysis/boundary_graph.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <unordered_map>

namespace aioscope {

namespace {

struct Edge {
    std::uint64_t to;
    std::optional<std::uint64_t> lock;  // set when the wait is for a lock `to` holds
};

using Graph = std::unordered_map<std::uint64_t, std::vector<Edge>>;

std::string hex(std::uint64_t a) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(a));
    return buf;
}

std::string where(const Task& t) {
    if (!t.where()) return "";
    const Frame& f = *t.where();
    std::string file = f.file.substr(f.file.rfind('/') + 1);
    return " at " + f.qualname + " (" + file + ":" + (f.line ? std::to_string(*f.line) : "?") + ")";
}

std::string label(const Task& t) { return "'" + t.name + "'"; }

bool isLockKind(const std::string& k) { return k == "lock" || k == "semaphore"; }

// A trio task is awaited by its nursery's parent while the parent still runs
// the nursery's body too; it waits for the child only in the nursery's exit.
// (The trio reader sorts a nursery's children.)
bool blocksOn(const Task& waiter, const Task& t) {
    if (waiter.runtime != "trio") return true;
    const auto& a = waiter.awaiting;
    return a && a->kind == "nursery" && std::binary_search(a->children.begin(), a->children.end(), t.id);
}

// Who waits for whom: awaiting a task, being among a task's awaited_by, and
// waiting for a lock another task holds.
Graph waitForGraph(const Snapshot& snap, const std::unordered_map<std::uint64_t, const Task*>& byId) {
    Graph g;
    auto add = [&](std::uint64_t from, Edge e) { g[from].push_back(e); };
    std::unordered_map<std::uint64_t, std::vector<std::uint64_t>> holders;
    // A task that could not be read consistently proves nothing: no edge
    // from or to it. Nor does a wait that is over (the future completed).
    auto usable = [](const Task& t) { return t.state == TaskState::pending && !t.error; };
    for (const auto& t : snap.tasks) {
        if (t.error) continue;
        for (auto lock : t.holds) holders[lock].push_back(t.id);
    }
    for (const auto& t : snap.tasks) {
        if (!usable(t) || (t.awaiting && t.awaiting->done)) continue;
        if (t.awaiting && t.awaiting->task && byId.count(*t.awaiting->task) && usable(*byId.at(*t.awaiting->task))) {
            add(t.id, {*t.awaiting->task, {}});
        }
        for (auto waiter : t.awaitedBy) {
            auto w = byId.find(waiter);
            if (w != byId.end() && usable(*w->second) && !(w->second->awaiting && w->second->awaiting->done) &&
                blocksOn(*w->second, t)) {
                add(waiter, {t.id, {}});
            }
        }
        if (t.awaiting && isLockKind(t.awaiting->kind) && t.awaiting->object) {
            auto h = holders.find(*t.awaiting->object);
            // A semaphore held by several tasks is released by any of them:
            // only a single holder makes the wait a definite edge.
            if (h != holders.end() && h->second.size() == 1) add(t.id, {h->second.front(), *t.awaiting->object});
        }
    }
    // The same wait is often seen from both ends (awaiting and awaited_by).
    for (auto& [from, edges] : g) {
        auto key = [](const Edge& e) { return std::make_pair(e.to, e.lock.value_or(0)); };
        std::sort(edges.begin(), edges.end(), [&](const Edge& a, const Edge& b) { return key(a) < key(b); });
        edges.erase(std::unique(edges.begin(), edges.end(), [&](const Edge& a, const Edge& b) { return key(a) == key(b); }),
                    edges.end());
    }
    return g;
}

// Strongly connected components that contain a cycle (Tarjan's algorithm,
// iterative: an await chain 100,000 tasks long must not exhaust the stack).
std::vector<std::vector<std::uint64_t>> cycles(const Graph& g) {
    struct Node {
        int index = -1;
        int low = 0;
        bool onStack = false;
    };
    std::unordered_map<std::uint64_t, Node> nodes;
    nodes.reserve(g.size() * 2);
    std::vector<std::uint64_t> stack;
    std::vector<std::vector<std::uint64_t>> out;
    static const std::vector<Edge> kNoEdges;
    auto edgesOf = [&](std::uint64_t v) -> const std::vector<Edge>& {
        auto it = g.find(v);
        return it == g.end() ? kNoEdges : it->second;
    };
    int next = 0;
    struct Visit {
        std::uint64_t v;
        std::size_t edge;
    };
    for (const auto& [root, rootEdges] : g) {
        if (nodes[root].index >= 0) continue;
        std::vector<Visit> calls{{root, 0}};
        nodes[root] = {next, next, true};
        ++next;
        stack.push_back(root);
        while (!calls.empty()) {
            Visit& call = calls.back();
            const auto& edges = edgesOf(call.v);
            if (call.edge < edges.size()) {
                std::uint64_t w = edges[call.edge++].to;
                Node& nw = nodes[w];
                if (nw.index < 0) {
                    nw = {next, next, true};
                    ++next;
                    stack.push_back(w);
                    calls.push_back({w, 0});
                } else if (nw.onStack) {
                    Node& nv = nodes[call.v];
                    nv.low = std::min(nv.low, nw.index);
                }
                continue;
            }
            std::uint64_t v = call.v;
            calls.pop_back();
            Node& nv = nodes[v];
            if (!calls.empty()) {
                Node& parent = nodes[calls.back().v];
                parent.low = std::min(parent.low, nv.low);
            }
            if (nv.low != nv.index) continue;
            std::vector<std::uint64_t> scc;
            std::uint64_t w;
            do {
                w = stack.back();
                stack.pop_back();
                nodes[w].onStack = false;
                scc.push_back(w);
            } while (w != v);
            const auto& vEdges = edgesOf(v);
            bool selfLoop = std::any_of(vEdges.begin(), vEdges.end(), [&](const Edge& e) { return e.to == v; });
            if (scc.size() > 1 || selfLoop) out.push_back(std::move(scc));
        }
    }
    return out;
}

// The cycles through one component, in wait-for order: one per back edge of
// a depth-first search from its smallest task (as asyncio's own `pstree`
// finds them), so two cycles that share a task are two findings. Bounded:
// a component of thousands of tasks does not enumerate every cycle.
constexpr std::size_t kMaxCyclesPerComponent = 64;

std::vector<std::vector<std::pair<std::uint64_t, Edge>>> cyclePaths(const Graph& g,
                                                                     const std::vector<std::uint64_t>& scc) {
    std::set<std::uint64_t> members(scc.begin(), scc.end());
    std::vector<std::vector<std::pair<std::uint64_t, Edge>>> out;
    std::set<std::vector<std::uint64_t>> seen;
    std::set<std::uint64_t> done;
    std::unordered_map<std::uint64_t, std::size_t> onPath;  // task -> its position in path
    struct Step {
        std::uint64_t v;
        std::size_t edge;
    };
    std::vector<Step> path;
    std::vector<Edge> via;  // via[i]: the edge from path[i] to path[i + 1]
    std::uint64_t start = *std::min_element(scc.begin(), scc.end());
    path.push_back({start, 0});
    onPath[start] = 0;
    while (!path.empty() && out.size() < kMaxCyclesPerComponent) {
        Step& top = path.back();
        const auto& edges = g.at(top.v);
        if (top.edge == edges.size()) {
            done.insert(top.v);
            onPath.erase(top.v);
            path.pop_back();
            if (!via.empty()) via.pop_back();
            continue;
        }
        const Edge& e = edges[top.edge++];
        if (!members.count(e.to)) continue;
        if (auto at = onPath.find(e.to); at != onPath.end()) {
            std::vector<std::pair<std::uint64_t, Edge>> cycle;
            for (std::size_t i = at->second; i + 1 < path.size(); ++i) cycle.emplace_back(path[i].v, via[i]);
            cycle.emplace_back(top.v, e);
            // The same cycle met from another edge: keep it once.
            std::vector<std::uint64_t> key;
            for (const auto& [v, edge] : cycle) key.push_back(v);
            std::rotate(key.begin(), std::min_element(key.begin(), key.end()), key.end());
            if (seen.insert(key).second) out.push_back(std::move(cycle));
        } else if (!done.count(e.to)) {
            onPath[e.to] = path.size();
            via.push_back(e);
            path.push_back({e.to, 0});
        }
    }
    for (auto& cycle : out) {
        // Start each at its smallest task, as before.
        auto first = std::min_element(cycle.begin(), cycle.end(),
                                      [](const auto& a, const auto& b) { return a.first < b.first; });
        std::rotate(cycle.begin(), first, cycle.end());
    }
    return out;
}

Finding cycleFinding(const std::vector<std::pair<std::uint64_t, Edge>>& path,
                     const std::unordered_map<std::uint64_t, const Task*>& byId) {
    Finding f;
    bool lock = std::any_of(path.begin(), path.end(), [](const auto& p) { return p.second.lock.has_value(); });
    f.kind = lock ? "lock-deadlock" : "await-cycle";
    std::string chain;
    for (const auto& [from, edge] : path) {
        const Task& t = *byId.at(from);
        f.tasks.push_back(from);
        if (!chain.empty()) chain += ", ";
        if (edge.lock) {
            f.objects.push_back(*edge.lock);
            chain += label(t) + " waits for lock " + hex(*edge.lock) + " held by " + label(*byId.at(edge.to));
        } else {
            chain += label(t) + " awaits " + label(*byId.at(edge.to));
        }
    }
    if (lock) {
        f.message = path.size() == 1 ? label(*byId.at(path[0].first)) + " waits for a lock it already holds"
                                     : "Deadlock: " + chain + ".";
        if (path.size() == 1) f.message += " (asyncio.Lock is not reentrant)" + where(*byId.at(path[0].first)) + ".";
    } else {
        f.message = "Await cycle: " + chain + "; none of them can ever finish.";
    }
    return f;
}

}  // namespace

bool isDeadlock(const Finding& f) {
    return f.kind == "await-cycle" || f.kind == "lock-deadlock" || f.kind == "orphaned-wait" ||
           f.kind == "abandoned-lock" || f.kind == "cross-deadlock" || f.kind == "thread-deadlock" ||
           f.kind == "loop-blocked-forever" || f.kind == "executor-starved";
}

std::vector<Finding> analyze(const Snapshot& snap) {
    std::vector<Finding> out;
    std::unordered_map<std::uint64_t, const Task*> byId;
    for (const auto& t : snap.tasks) byId[t.id] = &t;

    Graph g = waitForGraph(snap, byId);
    std::set<std::uint64_t> deadlocked;
    for (const auto& scc : cycles(g)) {
        for (const auto& path : cyclePaths(g, scc)) {
            Finding f = cycleFinding(path, byId);
            deadlocked.insert(f.tasks.begin(), f.tasks.end());
            out.push_back(std::move(f));
        }
    }

    for (const auto& t : snap.tasks) {
        if (t.state != TaskState::pending || t.error || !t.awaiting || deadlocked.count(t.id)) continue;
        const Awaiting& a = *t.awaiting;
        if (a.done) continue;
        if (a.externalRefs && *a.externalRefs <= 0) {
            Finding f;
            f.kind = "orphaned-wait";
            f.tasks = {t.id};
            std::string what = a.object ? a.objectType + " " + hex(*a.object) : a.type + " " + hex(a.address);
            f.objects = {a.object ? *a.object : a.address};
            f.message = "Task " + label(t) + " waits" + where(t) + " on " + what +
                        " that nothing outside the task references: no other task, callback or handle can "
                        "ever complete it.";
            out.push_back(std::move(f));
        }
    }

    for (const auto& t : snap.tasks) {
        if (t.state != TaskState::pending || t.error || !t.cancelRequests || *t.cancelRequests <= 0) continue;
        if (t.cancelPending || t.handlingCancel) continue;
        // cancel() cancelled what it waited on: the CancelledError arrives
        // at its next step. Only a wait still going on was ignored.
        if (!t.awaiting || t.awaiting->done) continue;
        Finding f;
        f.kind = "cancel-ignored";
        f.tasks = {t.id};
        f.message = "Task " + label(t) + " was asked to cancel " + std::to_string(*t.cancelRequests) +
                    (*t.cancelRequests == 1 ? " time" : " times") + " but is still waiting" + where(t) +
                    ": its CancelledError was caught and not re-raised (and Task.uncancel() was not called).";
        out.push_back(std::move(f));
    }

    auto boundary = analyzeBoundary(snap);
    out.insert(out.end(), std::make_move_iterator(boundary.begin()), std::make_move_iterator(boundary.end()));
    return out;
}

}  // namespace aioscope
