#include "render/tasks_text.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <unordered_map>

#include "analysis/findings.h"
#include "render/frames_text.h"
#include "render/terminal_safe.h"

namespace aioscope::cli {

namespace {

// How much of one untrusted string a line shows (a 10,000-character task
// name is cut, with the number of bytes left out).
constexpr std::size_t kNameChars = 200;
constexpr std::size_t kMessageChars = 4000;
// Tree shape limits: past kMaxIndent levels a line is not indented further
// (it says how deep it is instead); a chain of tasks each awaiting the next
// that is longer than 2 * kChainKeep + 1 shows its kChainKeep outermost and
// innermost tasks and one line saying how many are folded between them.
constexpr std::size_t kMaxIndent = 24;
constexpr std::size_t kChainKeep = 8;

std::string hex(std::uint64_t a) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(a));
    return buf;
}

std::string safe(const std::string& s, std::size_t maxChars = kNameChars) { return terminalSafe(s, maxChars); }

std::string lineText(const Frame& f) { return f.line ? std::to_string(*f.line) : std::string("?"); }

// A quoted name; built by appending (GCC 12 -O3 -Wrestrict false positive,
// GCC bug 105329, on `"'" + std::string`).
std::string quoted(const std::string& name) {
    std::string s = "'";
    s += safe(name);
    s += '\'';
    return s;
}

class Index {
public:
    explicit Index(const Snapshot& snap) {
        m_byId.reserve(snap.tasks.size());
        for (const auto& t : snap.tasks) m_byId.emplace(t.id, &t);
        for (const auto& t : snap.threads) m_threads[t.threadId] = &t;
        for (const auto& t : snap.tasks) {
            for (auto lock : t.holds) m_holders[lock].push_back(&t);
        }
    }
    const Task* task(std::uint64_t id) const {
        auto it = m_byId.find(id);
        return it == m_byId.end() ? nullptr : it->second;
    }
    std::string threadName(std::uint64_t id) const {
        auto it = m_threads.find(id);
        return it != m_threads.end() && it->second->name ? " \"" + safe(*it->second->name) + "\"" : "";
    }
    const Thread* thread(std::uint64_t id) const {
        auto it = m_threads.find(id);
        return it == m_threads.end() ? nullptr : it->second;
    }
    const std::vector<const Task*>& holders(std::uint64_t lock) const {
        static const std::vector<const Task*> kNone;
        auto it = m_holders.find(lock);
        return it == m_holders.end() ? kNone : it->second;
    }

private:
    std::unordered_map<std::uint64_t, const Task*> m_byId;
    std::unordered_map<std::uint64_t, std::vector<const Task*>> m_holders;
    std::unordered_map<std::uint64_t, const Thread*> m_threads;
};

std::string taskLabel(const Index& idx, std::uint64_t id) {
    const Task* t = idx.task(id);
    return t ? quoted(t->name) : hex(id);
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
    const Awaiting::Detail& d = a.detail();
    if ((k == "wait-readable" || k == "wait-writable") && d.fd) {
        return "waits until fd " + std::to_string(*d.fd) + (k == "wait-readable" ? " is readable" : " is writable");
    }
    if (k == "to-thread") return "waits for its worker thread";
    if (k == "executor" && (d.concurrentFuture || d.thread)) {
        std::string text = "awaits executor work (future " + hex(d.concurrentFuture.value_or(a.address)) + ")";
        if (!d.thread) return text + ", not started: queued behind the pool's busy workers";
        return text + " running in thread " + std::to_string(*d.thread) + idx.threadName(*d.thread);
    }
    std::string text = "waits on " + (a.object    ? safe(a.objectType) + " " + hex(*a.object)
                                      : a.address ? safe(k) + " " + hex(a.address)
                                                  : safe(k));
    if (k == "lock" || k == "semaphore") {
        const auto& holders = idx.holders(a.object.value_or(0));
        if (holders.empty() && t.runtime == "trio") {
            // trio records a Lock's owner (an owner that finished is a finding);
            // semaphores and anyio's primitives record none.
        } else if (holders.empty()) {
            text += " (holder unknown: not acquired with `async with` by a task)";
        } else {
            text += " held by";
            // A semaphore can have many holders: name a few.
            constexpr std::size_t kShown = 5;
            for (std::size_t i = 0; i < holders.size() && i < kShown; ++i) text += (i ? ", " : " ") + quoted(holders[i]->name);
            if (holders.size() > kShown) text += " and " + std::to_string(holders.size() - kShown) + " more";
        }
    } else if (k != "future" && (a.object || a.address)) {
        std::string type = a.objectType;
        std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::tolower(c); });
        if (type != k) text += " [" + safe(k) + "]";
    }
    return text;
}

// Identical siblings are those that render identically: same stack, state
// and kind of wait, no children and no locks held. Grouped through a hash
// of that shape, so a level of 100,000 tasks is grouped in linear time.
struct Shape {
    std::size_t hash;
    const Task* task;
};

std::size_t mix(std::size_t h, std::size_t v) { return h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)); }

bool sameShape(const Task& a, const Task& b) {
    bool sameStack = a.stack == b.stack || a.frames() == b.frames();
    auto kind = [](const Task& t) { return t.awaiting ? t.awaiting->kind : std::string(); };
    return sameStack && a.state == b.state && kind(a) == kind(b);
}

enum class Seen : std::uint8_t { no, printed, folded };

// One printed line of the tree: a group of identical tasks, or the marker
// of a folded chain (then `task` is where the chain resumes).
struct Item {
    std::uint32_t task;
    std::size_t count = 1;   // group size; for a fold, how many tasks are folded
    std::size_t flagged = 0; // fold only: folded tasks that are in findings
    bool fold = false;
};

class TreePrinter {
public:
    TreePrinter(const Snapshot& snap, std::ostream& out, const Style& st)
        : m_snap(snap), m_idx(snap), m_out(out), m_st(st), m_children(snap.tasks.size()),
          m_seen(snap.tasks.size(), Seen::no), m_flagged(snap.tasks.size(), false), m_inChain(snap.tasks.size(), false) {
        std::unordered_map<std::uint64_t, std::uint32_t> pos;
        pos.reserve(snap.tasks.size());
        for (std::uint32_t i = 0; i < snap.tasks.size(); ++i) pos.emplace(snap.tasks[i].id, i);
        for (std::uint32_t i = 0; i < snap.tasks.size(); ++i) {
            for (auto w : snap.tasks[i].awaitedBy) {
                if (auto it = pos.find(w); it != pos.end()) m_children[it->second].push_back(i);
            }
        }
        for (const auto& f : snap.findings) {
            for (auto id : f.tasks) {
                if (auto it = pos.find(id); it != pos.end()) m_flagged[it->second] = true;
            }
        }
        m_awaited.assign(snap.tasks.size(), false);
        for (const auto& kids : m_children) {
            for (auto k : kids) m_awaited[k] = true;
        }
    }

    void loop(const std::vector<std::uint32_t>& tasks) {
        std::vector<std::uint32_t> roots;
        for (auto t : tasks) {
            if (!m_awaited[t]) roots.push_back(t);
        }
        printTree(group(roots));
        // Tasks only reachable through a cycle have no root: each cycle from
        // its first task not shown yet.
        bool header = false;
        for (auto t : tasks) {
            if (m_seen[t] != Seen::no) continue;
            if (!header) m_out << m_st.red("  (awaiting each other, no root:)") << "\n";
            header = true;
            printTree({Item{t}});
        }
    }

private:
    const Task& task(std::uint32_t i) const { return m_snap.tasks[i]; }

    bool groupable(std::uint32_t i) const {
        return m_children[i].empty() && task(i).holds.empty() && !m_flagged[i];
    }

    std::size_t shapeHash(const Task& t) {
        const Stack* s = &t.frames();
        auto it = m_stackHash.find(s);
        std::size_t h;
        if (it != m_stackHash.end()) {
            h = it->second;
        } else {
            h = s->size();
            std::hash<std::string> hs;
            for (const auto& f : *s) h = mix(mix(mix(h, hs(f.qualname)), hs(f.file)), f.line ? static_cast<std::size_t>(*f.line) + 1 : 0);
            m_stackHash.emplace(s, h);
        }
        h = mix(h, static_cast<std::size_t>(t.state));
        return mix(h, std::hash<std::string>()(t.awaiting ? t.awaiting->kind : std::string()));
    }

    std::vector<Item> group(const std::vector<std::uint32_t>& level) {
        std::vector<Item> items;
        items.reserve(level.size());
        std::unordered_multimap<std::size_t, std::size_t> byShape;  // shape hash -> index in items
        for (auto t : level) {
            if (!groupable(t) || m_seen[t] != Seen::no) {
                items.push_back(Item{t});
                continue;
            }
            std::size_t h = shapeHash(task(t));
            bool joined = false;
            auto [lo, hi] = byShape.equal_range(h);
            for (auto it = lo; it != hi; ++it) {
                Item& g = items[it->second];
                if (sameShape(task(g.task), task(t))) {
                    ++g.count;
                    m_seen[t] = Seen::printed;
                    joined = true;
                    break;
                }
            }
            if (!joined) {
                byShape.emplace(h, items.size());
                items.push_back(Item{t});
            }
        }
        return items;
    }

    // The children a task's line is followed by; a long chain of single
    // awaits starting at it is folded (computed once per chain: every task
    // of the chain is marked, so the whole tree is printed in linear time).
    std::vector<Item> childrenOf(std::uint32_t t) {
        if (auto fold = m_foldAfter.find(t); fold != m_foldAfter.end()) return {fold->second};
        if (!m_inChain[t]) markChain(t);
        if (auto fold = m_foldAfter.find(t); fold != m_foldAfter.end()) return {fold->second};
        return group(m_children[t]);
    }

    void markChain(std::uint32_t start) {
        std::vector<std::uint32_t> chain{start};
        m_inChain[start] = true;
        for (;;) {
            const auto& kids = m_children[chain.back()];
            if (kids.size() != 1) break;
            std::uint32_t next = kids.front();
            if (m_inChain[next] || m_seen[next] != Seen::no) break;
            m_inChain[next] = true;
            chain.push_back(next);
        }
        if (chain.size() <= 2 * kChainKeep + 1) return;
        std::size_t first = kChainKeep, resume = chain.size() - kChainKeep;
        Item fold{chain[resume], resume - first, 0, true};
        for (std::size_t i = first; i < resume; ++i) {
            m_seen[chain[i]] = Seen::folded;
            fold.flagged += m_flagged[chain[i]];
        }
        m_foldAfter.emplace(chain[first - 1], fold);
    }

    struct Level {
        std::vector<Item> items;
        std::size_t next = 0;
        std::string indent;  // what precedes this level's lines (capped)
        std::size_t depth = 0;
    };

    // Depth-first, with an explicit stack: a chain 100,000 tasks deep must
    // not exhaust the C++ stack.
    void printTree(std::vector<Item> roots) {
        std::vector<Level> stack;
        stack.push_back({std::move(roots), 0, "", 0});
        while (!stack.empty()) {
            Level& level = stack.back();
            if (level.next == level.items.size()) {
                stack.pop_back();
                continue;
            }
            Item item = level.items[level.next++];
            bool last = level.next == level.items.size();
            std::size_t depth = level.depth;
            std::string branch = last ? "└─ " : "├─ ";
            if (depth > kMaxIndent) branch += m_st.dim("[+" + std::to_string(depth - kMaxIndent) + "] ");
            std::string cont = level.indent;
            if (depth < kMaxIndent) cont += last ? "   " : "│  ";
            m_out << level.indent << branch;
            // `level` is not used below: pushing may move it.
            if (item.fold) {
                printFold(item);
                stack.push_back({{Item{item.task}}, 0, std::move(cont), depth + 1});
                continue;
            }
            if (!printTask(item, cont)) continue;
            std::vector<Item> kids = childrenOf(item.task);
            if (!kids.empty()) stack.push_back({std::move(kids), 0, std::move(cont), depth + 1});
        }
    }

    void printFold(const Item& fold) {
        std::string text = "… " + std::to_string(fold.count) + " tasks folded, each awaiting the next";
        if (fold.flagged) text += " (" + std::to_string(fold.flagged) + " of them in findings)";
        text += " (--json or --table lists every task)";
        m_out << m_st.yellow(text) << "\n";
    }

    // False when the task was shown before (its children are not repeated).
    bool printTask(const Item& item, const std::string& cont) {
        const Task& t = task(item.task);
        Seen before = m_seen[item.task];
        bool again = before != Seen::no && item.count == 1;
        m_seen[item.task] = Seen::printed;
        std::string head = "Task " + quoted(t.name) + " " + m_st.dim(hex(t.id));
        if (item.count > 1) head = m_st.yellow("× " + std::to_string(item.count)) + " " + head + m_st.dim(" and identical");
        m_out << (m_flagged[item.task] ? m_st.red(head) : m_st.cyan(head));
        if (again) {
            m_out << m_st.dim(before == Seen::folded ? " (in a folded chain above)" : " (shown above)") << "\n";
            if (before == Seen::folded) m_seen[item.task] = Seen::folded;
            return false;
        }
        m_out << "  " << waitText(m_idx, t) << "\n";
        renderFrames(m_out, t.frames(), cont + "    ", m_st);
        if (t.awaiting && t.awaiting->kind == "executor" && t.awaiting->detail().thread) {
            if (const Thread* th = m_idx.thread(*t.awaiting->detail().thread)) {
                m_out << cont << "    "
                      << m_st.dim("\u21b3 in thread " + std::to_string(th->threadId) + m_idx.threadName(th->threadId) + ":")
                      << "\n";
                renderFrames(m_out, th->frames, cont + "      ", m_st);
            }
        }
        if (t.omittedFrames) m_out << cont << "    " << m_st.dim("\u2026 " + std::to_string(t.omittedFrames) + " frames omitted") << "\n";
        if (t.error) m_out << cont << "    " << m_st.red("could not be read consistently: " + safe(*t.error, kMessageChars)) << "\n";
        if (!t.holds.empty()) {
            std::string held;
            for (auto h : t.holds) held += (held.empty() ? "" : ", ") + hex(h);
            m_out << cont << "    " << m_st.yellow("holds lock " + held) << "\n";
        }
        return true;
    }

    const Snapshot& m_snap;
    Index m_idx;
    std::ostream& m_out;
    const Style& m_st;
    std::vector<std::vector<std::uint32_t>> m_children;  // by position in snap.tasks: the tasks it awaits
    std::vector<Seen> m_seen;
    std::vector<bool> m_flagged;
    std::vector<bool> m_inChain;
    std::vector<bool> m_awaited;
    std::unordered_map<std::uint32_t, Item> m_foldAfter;
    std::unordered_map<const Stack*, std::size_t> m_stackHash;
};

std::string threadLabel(const std::unordered_map<std::uint64_t, const Thread*>& threads,
                        std::optional<std::uint64_t> tid) {
    if (!tid) return "no running loop";
    auto it = threads.find(*tid);
    const Thread* t = it == threads.end() ? nullptr : it->second;
    return "thread " + std::to_string(*tid) + (t && t->name ? " \"" + safe(*t->name) + "\"" : "");
}

}  // namespace

std::string describeWait(const Snapshot& snap, const Task& t) { return waitText(Index(snap), t); }

void renderFindings(const Snapshot& snap, std::ostream& out, const Style& st) {
    for (const auto& f : snap.findings) {
        std::string tag = isDeadlock(f) ? "DEADLOCK" : "WARNING";
        out << st.red(st.bold(tag + " " + safe(f.kind)) + ": " + safe(f.message, kMessageChars)) << "\n";
    }
}

void renderTaskTrees(const Snapshot& snap, std::ostream& out, const Style& st) {
    if (snap.tasks.empty()) return;
    // One tree per event loop, in the order loops first appear.
    std::vector<std::uint64_t> loops;
    std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> byLoop;
    for (std::uint32_t i = 0; i < snap.tasks.size(); ++i) {
        auto [it, fresh] = byLoop.try_emplace(snap.tasks[i].loop);
        if (fresh) loops.push_back(snap.tasks[i].loop);
        it->second.push_back(i);
    }
    std::unordered_map<std::uint64_t, const Thread*> threads;
    for (const auto& t : snap.threads) threads.try_emplace(t.threadId, &t);
    TreePrinter printer(snap, out, st);
    for (auto loop : loops) {
        const auto& tasks = byLoop[loop];
        std::string kind = snap.tasks[tasks.front()].runtime == "trio" ? "trio.run " : "Event loop ";
        out << "\n"
            << st.bold(kind + hex(loop) + " (" + threadLabel(threads, snap.tasks[tasks.front()].threadId) + "), " +
                       std::to_string(tasks.size()) + (tasks.size() == 1 ? " task" : " tasks"))
            << "\n";
        printer.loop(tasks);
    }
}

void renderTaskTable(const Snapshot& snap, std::ostream& out, const Style& st) {
    Index idx(snap);
    auto row = [&](std::string id, std::string name, std::string state, std::string thread, std::string wait,
                   std::string where) {
        return fitColumn(id, 16) + " " + fitColumn(name, 24) + " " + fitColumn(state, 8) + " " + fitColumn(thread, 16) +
               " " + fitColumn(wait, 44) + " " + where;
    };
    out << st.bold(row("TASK", "NAME", "STATE", "THREAD", "WAITS ON", "WHERE")) << "\n";
    for (const auto& t : snap.tasks) {
        std::string where;
        if (t.where()) {
            const Frame& f = *t.where();
            where = safe(f.qualname) + " (" + safe(f.file.substr(f.file.rfind('/') + 1)) + ":" + lineText(f) + ")";
        }
        out << row(hex(t.id), safe(t.name, 24), taskStateName(t.state), t.threadId ? std::to_string(*t.threadId) : "-",
                   waitText(idx, t), where)
            << "\n";
    }
}

}  // namespace aioscope::cli
