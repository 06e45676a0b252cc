#include "render/tasks_text.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <unordered_map>

#include "analysis/findings.h"

namespace aioscope::cli {

namespace {

std::string hex(std::uint64_t a) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(a));
    return buf;
}

std::string frameText(const Frame& f, const Style& st) {
    return st.bold(f.qualname) + " " +
           st.dim("(" + f.file + ":" + (f.line ? std::to_string(*f.line) : std::string("?")) + ")");
}

class Index {
public:
    explicit Index(const Snapshot& snap) {
        for (const auto& t : snap.tasks) m_byId[t.id] = &t;
        for (const auto& t : snap.tasks) {
            for (auto lock : t.holds) m_holders[lock].push_back(&t);
        }
    }
    const Task* task(std::uint64_t id) const {
        auto it = m_byId.find(id);
        return it == m_byId.end() ? nullptr : it->second;
    }
    const std::vector<const Task*>& holders(std::uint64_t lock) const {
        static const std::vector<const Task*> kNone;
        auto it = m_holders.find(lock);
        return it == m_holders.end() ? kNone : it->second;
    }

private:
    std::unordered_map<std::uint64_t, const Task*> m_byId;
    std::unordered_map<std::uint64_t, std::vector<const Task*>> m_holders;
};

std::string taskLabel(const Index& idx, std::uint64_t id) {
    const Task* t = idx.task(id);
    return t ? "'" + t->name + "'" : hex(id);
}

std::string waitText(const Index& idx, const Task& t) {
    if (t.state == TaskState::running) return "running (it has the event loop)";
    if (!t.awaiting) return "ready to run";
    const Awaiting& a = *t.awaiting;
    const std::string& k = a.kind;
    if (k == "task") return "awaits task " + taskLabel(idx, a.task.value_or(a.address));
    if (k == "gather") return "awaits gather of " + std::to_string(a.children.size());
    if (k == "taskgroup") return "awaits TaskGroup of " + std::to_string(a.children.size()) + " tasks";
    if (k == "sleep") return "sleeping";
    if (k == "nursery") return "awaits nursery of " + std::to_string(a.children.size()) + " tasks";
    if ((k == "wait-readable" || k == "wait-writable") && a.fd) {
        return "waits until fd " + std::to_string(*a.fd) + (k == "wait-readable" ? " is readable" : " is writable");
    }
    if (k == "to-thread") return "waits for its worker thread";
    std::string text = "waits on " + (a.object    ? a.objectType + " " + hex(*a.object)
                                      : a.address ? k + " " + hex(a.address)
                                                  : k);
    if (k == "lock" || k == "semaphore") {
        const auto& holders = idx.holders(a.object.value_or(0));
        if (holders.empty() && t.runtime == "trio") {
            // trio records a Lock's owner (an owner that finished is a finding);
            // semaphores and anyio's primitives record none.
        } else if (holders.empty()) {
            text += " (holder unknown: not acquired with `async with` by a task)";
        } else {
            text += " held by";
            for (std::size_t i = 0; i < holders.size(); ++i) text += (i ? ", '" : " '") + holders[i]->name + "'";
        }
    } else if (k != "future" && (a.object || a.address)) {
        std::string type = a.objectType;
        std::transform(type.begin(), type.end(), type.begin(), ::tolower);
        if (type != k) text += " [" + k + "]";
    }
    return text;
}

// Tasks at one level of the tree that render identically are shown once.
bool sameShape(const Task& a, const Task& b) {
    bool sameStack = a.stack == b.stack || a.frames() == b.frames();
    auto kind = [](const Task& t) { return t.awaiting ? t.awaiting->kind : std::string(); };
    return sameStack && a.state == b.state && kind(a) == kind(b) && a.holds.empty() && b.holds.empty();
}

class TreePrinter {
public:
    TreePrinter(const Snapshot& snap, std::ostream& out, const Style& st) : m_snap(snap), m_idx(snap), m_out(out), m_st(st) {
        for (const auto& t : snap.tasks) {
            for (auto w : t.awaitedBy) {
                if (m_idx.task(w)) m_children[w].push_back(&t);
            }
        }
        for (const auto& f : snap.findings) m_flagged.insert(f.tasks.begin(), f.tasks.end());
    }

    void loop(const std::vector<const Task*>& tasks) {
        std::vector<const Task*> roots;
        for (const Task* t : tasks) {
            bool awaited = std::any_of(t->awaitedBy.begin(), t->awaitedBy.end(), [&](auto w) { return m_idx.task(w); });
            if (!awaited) roots.push_back(t);
        }
        printLevel(roots, "");
        // Tasks only reachable through a cycle have no root.
        std::vector<const Task*> rest;
        for (const Task* t : tasks) {
            if (!m_printed.count(t->id)) rest.push_back(t);
        }
        if (!rest.empty()) {
            m_out << m_st.red("  (awaiting each other, no root:)") << "\n";
            printLevel({rest.front()}, "");
        }
    }

private:
    void printLevel(const std::vector<const Task*>& level, const std::string& indent) {
        std::vector<std::pair<const Task*, std::size_t>> groups;
        for (const Task* t : level) {
            auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& p) {
                return m_children[p.first->id].empty() && m_children[t->id].empty() && sameShape(*p.first, *t) &&
                       !m_flagged.count(t->id);
            });
            if (g != groups.end()) {
                ++g->second;
                m_printed.insert(t->id);
            } else {
                groups.emplace_back(t, 1);
            }
        }
        for (std::size_t i = 0; i < groups.size(); ++i) {
            bool last = i + 1 == groups.size();
            print(*groups[i].first, groups[i].second, indent, last);
        }
    }

    void print(const Task& t, std::size_t count, const std::string& indent, bool last) {
        bool again = !m_printed.insert(t.id).second;
        std::string branch = last ? "└─ " : "├─ ";
        std::string cont = indent + (last ? "   " : "│  ");
        std::string head = "Task '" + t.name + "' " + m_st.dim(hex(t.id));
        if (count > 1) head = m_st.yellow("× " + std::to_string(count)) + " " + head + m_st.dim(" and identical");
        m_out << indent << branch << (m_flagged.count(t.id) ? m_st.red(head) : m_st.cyan(head));
        if (again) {
            m_out << m_st.dim(" (shown above)") << "\n";
            return;
        }
        m_out << "  " << waitText(m_idx, t) << "\n";
        for (const auto& f : t.frames()) m_out << cont << "    " << frameText(f, m_st) << "\n";
        if (t.error) m_out << cont << "    " << m_st.red("stack incomplete: " + *t.error) << "\n";
        if (!t.holds.empty()) {
            std::string held;
            for (auto h : t.holds) held += (held.empty() ? "" : ", ") + hex(h);
            m_out << cont << "    " << m_st.yellow("holds lock " + held) << "\n";
        }
        printLevel(m_children[t.id], cont);
    }

    const Snapshot& m_snap;
    Index m_idx;
    std::ostream& m_out;
    const Style& m_st;
    std::unordered_map<std::uint64_t, std::vector<const Task*>> m_children;
    std::set<std::uint64_t> m_printed;
    std::set<std::uint64_t> m_flagged;
};

std::string threadLabel(const Snapshot& snap, std::optional<std::uint64_t> tid) {
    if (!tid) return "no running loop";
    for (const auto& t : snap.threads) {
        if (t.threadId == *tid) return "thread " + std::to_string(*tid) + (t.name ? " \"" + *t.name + "\"" : "");
    }
    return "thread " + std::to_string(*tid);
}

}  // namespace

std::string describeWait(const Snapshot& snap, const Task& t) { return waitText(Index(snap), t); }

void renderFindings(const Snapshot& snap, std::ostream& out, const Style& st) {
    for (const auto& f : snap.findings) {
        std::string tag = isDeadlock(f) ? "DEADLOCK" : "WARNING";
        out << st.red(st.bold(tag + " " + f.kind) + ": " + f.message) << "\n";
    }
}

void renderTaskTrees(const Snapshot& snap, std::ostream& out, const Style& st) {
    if (snap.tasks.empty()) return;
    // One tree per event loop, in the order loops first appear.
    std::vector<std::uint64_t> loops;
    std::map<std::uint64_t, std::vector<const Task*>> byLoop;
    for (const auto& t : snap.tasks) {
        if (!byLoop.count(t.loop)) loops.push_back(t.loop);
        byLoop[t.loop].push_back(&t);
    }
    TreePrinter printer(snap, out, st);
    for (auto loop : loops) {
        const auto& tasks = byLoop[loop];
        std::string kind = tasks.front()->runtime == "trio" ? "trio.run " : "Event loop ";
        out << "\n"
            << st.bold(kind + hex(loop) + " (" + threadLabel(snap, tasks.front()->threadId) + "), " +
                       std::to_string(tasks.size()) + (tasks.size() == 1 ? " task" : " tasks"))
            << "\n";
        printer.loop(tasks);
    }
}

void renderTaskTable(const Snapshot& snap, std::ostream& out, const Style& st) {
    Index idx(snap);
    char line[512];
    std::snprintf(line, sizeof line, "%-16s %-24s %-8s %-16s %-44s %s", "TASK", "NAME", "STATE", "THREAD", "WAITS ON",
                  "WHERE");
    out << st.bold(line) << "\n";
    for (const auto& t : snap.tasks) {
        std::string name = t.name.size() > 24 ? t.name.substr(0, 23) + "…" : t.name;
        std::string wait = waitText(idx, t);
        if (wait.size() > 44) wait = wait.substr(0, 43) + "…";
        std::string where;
        if (t.where()) {
            const Frame& f = *t.where();
            where = f.qualname + " (" + f.file.substr(f.file.rfind('/') + 1) + ":" +
                    (f.line ? std::to_string(*f.line) : "?") + ")";
        }
        std::snprintf(line, sizeof line, "%-16s %-24s %-8s %-16s %-44s %s", hex(t.id).c_str(), name.c_str(),
                      taskStateName(t.state), t.threadId ? std::to_string(*t.threadId).c_str() : "-", wait.c_str(),
                      where.c_str());
        out << line << "\n";
    }
}

}  // namespace aioscope::cli
