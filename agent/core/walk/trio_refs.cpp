#include "walk/trio_refs.h"

#include <algorithm>
#include <deque>
#include <unordered_map>

namespace aioscope {

namespace {
constexpr std::size_t kMaxNodes = 512;
constexpr int kMaxDepth = 4;
constexpr std::size_t kMaxItems = 64;
}  // namespace

std::optional<std::int64_t> OwnedReferences::refcount(Addr obj) {
    std::int64_t rc = 0;
    if (!m_walker.objects().mem().tryRead(obj, &rc, sizeof rc)) return std::nullopt;
    // 3.12+ immortal objects carry a huge count that counts nothing.
    if (rc <= 0 || rc > (std::int64_t{1} << 31)) return std::nullopt;
    return rc;
}

// The strong references an object holds that can lead back to the waited-on
// object without going through anyone else's state.
std::vector<Addr> OwnedReferences::edges(Addr obj) {
    Objects& objects = m_walker.objects();
    const Layout& L = objects.layout();
    Remote& mem = objects.mem();
    const std::string& type = objects.typeNameOf(obj);
    std::vector<Addr> out;
    if (type == "cell") {
        out.push_back(mem.ptr(obj + L.callable.cellRef, "cell contents"));
    } else if (type == "function") {
        out.push_back(mem.ptr(obj + L.callable.closure, "func_closure"));
    } else if (type == "method") {
        out.push_back(mem.ptr(obj + L.callable.methodFunc, "im_func"));
        out.push_back(mem.ptr(obj + L.callable.methodSelf, "im_self"));
    } else if (type == "tuple" || type == "list") {
        // Only small containers are followed: look at the size before reading the items.
        Off size = type == "tuple" ? L.tuple.size : L.list.size;
        auto n = mem.get<std::int64_t>(obj + static_cast<Addr>(size), "container size");
        if (n < 0 || static_cast<std::size_t>(n) > kMaxItems) return out;
        out = type == "tuple" ? objects.tupleItems(obj) : objects.listItems(obj);
    } else if (type == m_layout.trapClass) {
        if (auto abort = m_fields.get(obj, m_layout.trapAbort)) out.push_back(*abort);
    }
    std::erase(out, Addr{0});
    return out;
}

std::optional<std::int64_t> OwnedReferences::external(const CoroutineChain& chain, Addr obj,
                                                      const std::vector<Addr>& taskRefs) {
    const Layout& L = m_walker.objects().layout();
    if (m_fields.hasWeakReferences(obj)) return std::nullopt;
    auto total = refcount(obj);
    if (!total) return std::nullopt;

    // References straight from the task: its frames' slots, its own fields.
    std::unordered_map<Addr, std::int64_t> fromTask;
    for (const auto& link : chain.links) {
        if (link.state == L.frameState.executing) return std::nullopt;  // live frames save no stack pointer
        for (Addr slot : m_walker.frameSlots(link.frame)) {
            // 3.14+: a tagged stack reference is borrowed and owns no count.
            if (slot && !(slot & L.stackRefTagMask)) ++fromTask[slot];
        }
    }
    for (Addr r : taskRefs) {
        if (r) ++fromTask[r];
    }

    // The objects reachable from there, a few steps deep, with their edges.
    std::unordered_map<Addr, std::vector<Addr>> graph;
    std::deque<std::pair<Addr, int>> todo;
    for (const auto& [o, n] : fromTask) todo.emplace_back(o, 0);
    while (!todo.empty() && graph.size() < kMaxNodes) {
        auto [o, depth] = todo.front();
        todo.pop_front();
        if (o == obj || graph.count(o)) continue;
        auto& out = graph[o];
        if (depth >= kMaxDepth) continue;
        out = edges(o);
        for (Addr next : out) todo.emplace_back(next, depth + 1);
    }

    // Who references each node, and how often.
    std::unordered_map<Addr, std::vector<std::pair<Addr, std::int64_t>>> inbound;
    for (const auto& [o, out] : graph) {
        std::unordered_map<Addr, std::int64_t> counts;
        for (Addr t : out) ++counts[t];
        for (const auto& [t, n] : counts) inbound[t].emplace_back(o, n);
    }
    // Assume every node is the task's own, then drop those referenced from
    // elsewhere until nothing changes: what remains is referenced only by
    // the task and by each other.
    std::unordered_map<Addr, std::optional<std::int64_t>> counts;
    std::unordered_map<Addr, bool> owned;
    for (const auto& [o, out] : graph) {
        counts[o] = refcount(o);
        owned[o] = counts[o].has_value();
    }
    auto referencesTo = [&](Addr target) {
        std::int64_t n = 0;
        if (auto it = fromTask.find(target); it != fromTask.end()) n += it->second;
        if (auto it = inbound.find(target); it != inbound.end()) {
            for (const auto& [parent, k] : it->second) {
                if (auto p = owned.find(parent); p != owned.end() && p->second) n += k;
            }
        }
        return n;
    };
    for (bool changed = true; changed;) {
        changed = false;
        for (auto& [o, isOwned] : owned) {
            if (isOwned && *counts[o] != referencesTo(o)) {
                isOwned = false;
                changed = true;
            }
        }
    }
    return *total - referencesTo(obj);
}

}  // namespace aioscope
