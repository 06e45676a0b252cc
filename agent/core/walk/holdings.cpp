#include "walk/holdings.h"

#include <algorithm>
#include <unordered_map>

namespace aioscope {

namespace {
bool isLocksMethod(const CodeInfo& info, const char* name) {
    return info.name == name && info.filename.ends_with("/asyncio/locks.py");
}
}  // namespace

bool Holdings::isLockExit(Addr function) {
    if (!function || m_objects.builtinTypeNameOf(function) != "function") return false;
    Addr code = m_objects.mem().ptr(function + m_objects.layout().callable.code, "func_code");
    if (!code || m_objects.builtinTypeNameOf(code) != "code") return false;
    return isLocksMethod(m_walker.frames().codes().get(code), "__aexit__");
}

std::vector<Addr> Holdings::heldLocks(const CoroutineChain& chain) {
    const Layout& L = m_objects.layout();
    // Every `async with lock` leaves one lock.__aexit__ on a stack, including
    // the one still waiting in lock.__aenter__: count both, then subtract the
    // pending ones (a task re-entering a lock it holds still holds it once).
    std::vector<std::pair<Addr, int>> counts;
    auto add = [&](Addr lock, int n) {
        if (!lock) return;
        auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == lock; });
        if (it == counts.end()) {
            counts.emplace_back(lock, n);
        } else {
            it->second += n;
        }
    };
    // Condition.wait releases the lock while it waits: not held either.
    for (const auto& link : chain.links) {
        const CodeInfo& code = m_walker.frames().codes().get(link.frame.code);
        if (!isLocksMethod(code, "__aenter__") && !isLocksMethod(code, "wait")) continue;
        Addr self = 0;
        if (!m_objects.mem().tryRead(link.frame.locals, &self, 8)) continue;
        self &= ~L.stackRefTagMask;
        if (code.name == "wait" && m_objects.typeNameOf(self) != "Condition") continue;
        add(self, -1);
    }
    for (const auto& link : chain.links) {
        if (link.state == L.frameState.executing) continue;  // its stack pointer is not saved
        auto slots = m_walker.stackSlots(link.frame);
        for (std::size_t i = 0; i < slots.size(); ++i) {
            Addr v = slots[i] & ~L.stackRefTagMask;
            if (!v || (slots[i] & L.stackRefTagMask) == 3) continue;
            const std::string& type = m_objects.builtinTypeNameOf(v);
            if (type == "method") {
                // 3.10-3.13: `async with` keeps the bound method lock.__aexit__.
                Addr func = m_objects.mem().ptr(v + L.callable.methodFunc, "im_func");
                if (isLockExit(func)) add(m_objects.mem().ptr(v + L.callable.methodSelf, "im_self"), 1);
            } else if (type == "function" && isLockExit(v) && i + 1 < slots.size()) {
                // 3.14+: the function and `self` in two slots.
                add(slots[i + 1] & ~L.stackRefTagMask, 1);
            }
        }
    }
    std::vector<Addr> held;
    for (const auto& [lock, n] : counts) {
        if (n > 0) held.push_back(lock);
    }
    return held;
}

std::optional<std::int64_t> Holdings::refcount(Addr obj) {
    auto rc = m_objects.mem().get<std::int64_t>(obj, "refcount");
    // 3.12+ immortal objects have a huge count; anything near it is not a
    // count of references.
    if (rc <= 0 || rc > (std::int64_t{1} << 31)) return std::nullopt;
    return rc;
}

std::int64_t Holdings::referencesFromChain(const CoroutineChain& chain, Addr obj) {
    const Layout& L = m_objects.layout();
    // Every strong reference the chain's frames hold, by object.
    std::unordered_map<Addr, std::int64_t> owned;
    for (const auto& link : chain.links) {
        if (link.state == L.frameState.executing) continue;
        for (Addr slot : m_walker.frameSlots(link.frame)) {
            // 3.14+: a tagged stack reference is borrowed and owns no count.
            if (slot && !(slot & L.stackRefTagMask)) ++owned[slot];
        }
    }
    std::int64_t n = 0;
    for (const auto& [holder, count] : owned) {
        if (holder == obj) {
            n += count;
            continue;
        }
        // A cell or container that only the chain holds counts as the chain:
        // `futs = [fut]; await futs[0]` is still held by nobody else.
        auto rc = refcount(holder);
        if (!rc || *rc != count) continue;
        const std::string& type = m_objects.builtinTypeNameOf(holder);
        std::vector<Addr> inside;
        if (type == "cell") {
            inside = {m_objects.mem().ptr(holder + L.callable.cellRef, "cell")};
        } else if (type == "list") {
            inside = m_objects.listItems(holder);
        } else if (type == "tuple") {
            inside = m_objects.tupleItems(holder);
        } else if (type == "set") {
            inside = m_objects.setItems(holder);
        } else if (type == "dict") {
            for (const auto& [k, v] : m_objects.dictItems(holder)) inside.insert(inside.end(), {k, v});
        }
        n += std::count(inside.begin(), inside.end(), obj);
    }
    if (chain.awaited && m_objects.builtinTypeNameOf(chain.awaited) == "_asyncio.FutureIter" &&
        m_objects.mem().ptr(chain.awaited + L.asyncio.futureIterFuture, "FutureIter") == obj) {
        ++n;
    }
    return n;
}

}  // namespace aioscope
