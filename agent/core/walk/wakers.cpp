#include "walk/wakers.h"

#include <algorithm>
#include <cstring>

namespace aioscope {

namespace {
constexpr int kMaxDepth = 6;  // futures chained through callbacks (gather of gathers...)
constexpr std::size_t kMaxCallbacks = 4096;
}  // namespace

std::vector<Addr> Wakers::callbacks(Addr future) {
    const auto& A = m_objects.layout().asyncio;
    std::vector<Addr> out;
    Addr cb0 = m_objects.mem().ptr(future + A.futCallback0, "fut_callback0");
    if (cb0) out.push_back(cb0);
    Addr list = m_objects.mem().ptr(future + A.futCallbacks, "fut_callbacks");
    if (list) {
        auto entries = m_objects.listItems(list);
        if (entries.size() > kMaxCallbacks) entries.resize(kMaxCallbacks);
        for (Addr pair : entries) {  // (callback, context) tuples
            auto items = m_objects.tupleItems(pair);
            if (!items.empty() && items[0]) out.push_back(items[0]);
        }
    }
    return out;
}

std::string Wakers::functionName(Addr callable) {
    if (!callable || m_objects.builtinTypeNameOf(callable) != "function") return "";
    Addr code = m_objects.mem().ptr(callable + m_objects.layout().callable.code, "func_code");
    if (!code || m_objects.builtinTypeNameOf(code) != "code") return "";
    return m_objects.str(m_objects.mem().ptr(code + m_objects.layout().code.name, "co_name"), 256).value_or("");
}

void Wakers::fromObject(Addr obj, int depth, Found& out, bool wakes) {
    if (!obj) return;
    if (m_objects.isInstance(obj, "_asyncio.Task", true)) {
        out.all.push_back(obj);
        if (wakes) out.woken.push_back(obj);
    } else if (m_objects.isInstance(obj, "_asyncio.Future", true)) {
        const Found& via = collect(obj, depth + 1);
        out.all.insert(out.all.end(), via.all.begin(), via.all.end());
        out.woken.insert(out.woken.end(), via.woken.begin(), via.woken.end());
    }
}

void Wakers::fromCallable(Addr cb, int depth, Found& out) {
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    const std::string& type = m_objects.builtinTypeNameOf(cb);
    if (type == "builtin_function_or_method") {
        Addr def = mem.ptr(cb + L.callable.cfuncDef, "m_ml");
        Addr namePtr = def ? mem.ptr(def, "ml_name") : 0;
        char name[12] = {};
        if (namePtr && mem.tryRead(namePtr, name, sizeof name) && std::memcmp(name, "task_wakeup", 12) == 0) {
            Addr task = mem.ptr(cb + L.callable.cfuncSelf, "m_self");
            if (m_objects.isInstance(task, "_asyncio.Task", true)) fromObject(task, depth, out, true);
        }
    } else if (type == "method") {
        Addr self = mem.ptr(cb + L.callable.methodSelf, "im_self");
        if (self && m_objects.typeNameOf(self) == "TaskGroup") {
            if (auto parent = m_objects.attr(self, "_parent_task")) fromObject(*parent, depth, out, true);
        } else {
            fromObject(self, depth, out, false);
        }
    } else if (type == "functools.partial") {
        for (Addr arg : m_objects.tupleItems(mem.ptr(cb + L.callable.partialArgs, "partial args"))) {
            fromObject(arg, depth, out, false);
        }
    } else if (type == "function") {
        for (Addr cell : m_objects.tupleItems(mem.ptr(cb + L.callable.closure, "func_closure"))) {
            if (m_objects.builtinTypeNameOf(cell) != "cell") continue;
            fromObject(mem.ptr(cell + L.callable.cellRef, "cell contents"), depth, out, false);
        }
    }
}

const Wakers::Found& Wakers::collect(Addr future, int depth) {
    static const Found kNone;
    if (auto it = m_cache.find(future); it != m_cache.end()) return it->second;
    // Beyond the depth bound, or back at a future being expanded: no answer
    // from here (not cached, so a shallower visit can still find one).
    if (depth > kMaxDepth || std::find(m_inProgress.begin(), m_inProgress.end(), future) != m_inProgress.end()) {
        return kNone;
    }
    return m_cache.emplace(future, expand(future, depth)).first->second;
}

Wakers::Found Wakers::expand(Addr future, int depth) {
    m_inProgress.push_back(future);
    // Popped however this ends: a torn read must not leave it "in progress".
    struct Pop {
        std::vector<Addr>& v;
        ~Pop() { v.pop_back(); }
    } pop{m_inProgress};
    const auto& A = m_objects.layout().asyncio;
    Found out;
    for (Addr cb : callbacks(future)) fromCallable(cb, depth, out);
    if (A.futAwaitedBy != kAbsent) {
        Addr by = m_objects.mem().ptr(future + A.futAwaitedBy, "awaited_by");
        if (by) {
            auto isSet = m_objects.mem().get<std::uint8_t>(future + A.futAwaitedByIsSet, "awaited_by_is_set");
            if (isSet) {
                for (Addr w : m_objects.setItems(by)) fromObject(w, depth, out, true);
            } else {
                fromObject(by, depth, out, true);
            }
        }
    }
    for (auto* v : {&out.all, &out.woken}) {
        std::sort(v->begin(), v->end());
        v->erase(std::unique(v->begin(), v->end()), v->end());
    }
    return out;
}

std::vector<Addr> Wakers::awaitersOf(Addr future) {
    // Asked once per task, and a task is never expanded on the way to
    // another's awaiters (only plain futures are): not memoized.
    Found own;
    auto cached = m_cache.find(future);
    if (cached == m_cache.end()) own = expand(future, 0);
    const Found& found = cached == m_cache.end() ? own : cached->second;
    std::vector<Addr> out = found.all;
    // Itself only if a wake-up names it: it gathers or waits for itself.
    if (!std::binary_search(found.woken.begin(), found.woken.end(), future)) std::erase(out, future);
    return out;
}

}  // namespace aioscope
