#include "walk/trio_runtime.h"

#include "walk/python_facts.h"

namespace aioscope {

namespace {

constexpr std::size_t kMaxRunners = 256;

Addr classOf(Objects& objects, const InterpreterState& interp, const TrioClass& c) {
    auto dict = moduleDict(objects, interp, c.module);
    if (!dict) return 0;
    auto cls = objects.dictGet(*dict, c.name);
    if (!cls) return 0;
    // A class is an instance of `type` (or of a metaclass deriving from it).
    return objects.isInstance(*cls, "type") ? *cls : 0;
}

// Which thread each per-thread dict of a threading.local belongs to.
std::unordered_map<Addr, std::uint64_t> threadOfLocalDict(Objects& objects, Addr local, Addr dicts,
                                                          const std::vector<ThreadState>& threads) {
    const Layout& L = objects.layout();
    Remote& mem = objects.mem();
    std::unordered_map<Addr, std::uint64_t> out;
    if (L.threadLocal.key != kAbsent && L.threadLocal.dummyDict != kAbsent) {
        Addr key = mem.ptr(local + L.threadLocal.key, "thread-local key");
        if (!key || !objects.str(key, 256)) return out;
        for (const auto& ts : threads) {
            for (const auto& [k, dummy] : ts.dict ? objects.dictItems(ts.dict) : std::vector<std::pair<Addr, Addr>>{}) {
                if (k != key || objects.typeNameOf(dummy) != "_thread._localdummy") continue;
                out[mem.ptr(dummy + L.threadLocal.dummyDict, "localdummy dict")] = ts.threadId;
            }
        }
    } else if (L.threadLocal.threadKey != kAbsent) {
        std::unordered_map<Addr, Addr> dictOfKey;
        for (const auto& [k, v] : objects.dictItems(dicts)) dictOfKey[k] = v;
        for (const auto& ts : threads) {
            Addr k = mem.ptr(ts.addr + L.threadLocal.threadKey, "threading_local_key");
            if (!k || objects.typeNameOf(k) != "_thread._localdummy") continue;
            if (auto it = dictOfKey.find(k); it != dictOfKey.end()) out[it->second] = ts.threadId;
        }
    }
    return out;
}

}  // namespace

TrioRuntime findTrio(Fields& fields, FrameWalker& frames, FrameLocals& locals, const TrioLayout& layout,
                     const InterpreterState& interp, const std::vector<ThreadState>& threads,
                     const std::unordered_map<std::uint64_t, WalkedStack>& stacks) {
    Objects& objects = fields.objects();
    const Layout& L = objects.layout();
    TrioRuntime out;
    auto runDict = moduleDict(objects, interp, layout.runModule);
    if (!runDict) return out;  // trio not imported: no trio tasks, nothing to say

    TrioClasses c;
    c.runner = classOf(objects, interp, layout.runner);
    c.task = classOf(objects, interp, layout.task);
    c.nursery = classOf(objects, interp, layout.nursery);
    if (!c.runner || !c.task || !c.nursery) {
        out.warnings.push_back(std::string("trio tasks unavailable: ") + layout.runModule +
                               " has no Runner, Task or Nursery class (aioscope knows " + layout.describes + ")");
        return out;
    }
    c.cancelStatus = classOf(objects, interp, layout.cancelStatus);
    c.lockImpl = classOf(objects, interp, layout.lockImpl);
    c.capacityLimiter = classOf(objects, interp, layout.capacityLimiter);
    c.cancelled = classOf(objects, interp, layout.cancelled);
    if (auto run = objects.dictGet(*runDict, layout.runFunction); run && objects.typeNameOf(*run) == "function") {
        Addr code = objects.mem().ptr(*run + L.callable.code, "func_code");
        if (code && objects.typeNameOf(code) == "code") c.runCode = code;
    }
    if (auto ctx = objects.dictGet(*runDict, layout.runContext); ctx && objects.isInstance(*ctx, "_thread._local")) {
        c.runContext = *ctx;
    }
    out.classes = c;
    for (const char* package : layout.libraryPackages) {
        auto dict = moduleDict(objects, interp, package);
        auto file = dict ? objects.dictGet(*dict, "__file__") : std::nullopt;
        auto path = file ? objects.str(*file, 4096) : std::nullopt;
        if (path && path->rfind('/') != std::string::npos)
            out.libraryDirs.push_back(path->substr(0, path->rfind('/') + 1));
    }

    auto add = [&](Addr runner, std::optional<std::uint64_t> thread) {
        if (!fields.isInstanceOf(runner, c.runner)) return;
        if (out.runners.size() >= kMaxRunners && !out.runners.count(runner)) return;
        auto& slot = out.runners[runner];
        if (thread) slot = thread;
    };

    if (!(c.runCode && locals.available()) && !(c.runContext && L.threadLocal.dicts != kAbsent)) {
        out.warnings.push_back("trio tasks unavailable: neither trio.run's frames nor its run context can be read "
                               "with this interpreter's layout");
        return out;
    }
    // trio.run(...) on a thread: its frame holds the runner.
    if (c.runCode && locals.available()) {
        for (const auto& [tid, walked] : stacks) {
            for (const auto& f : walked.frames) {
                if (f.frame.function != layout.runFunction || !f.frame.file.ends_with(layout.runFile)) continue;
                RawFrame raw = frames.read(f.addr);
                if (raw.code != c.runCode) continue;
                if (auto runner = locals.get(raw, layout.runRunnerLocal)) add(*runner, tid);
            }
        }
    }
    // Every thread's run context, including guest runs driven by another loop.
    if (c.runContext && L.threadLocal.dicts != kAbsent) {
        Addr dicts = objects.mem().ptr(c.runContext + L.threadLocal.dicts, "thread-local dicts");
        // trio sets and deletes the running task in these dicts at every step.
        try {
            if (dicts && objects.typeNameOf(dicts) == "dict") {
                auto owners = threadOfLocalDict(objects, c.runContext, dicts, threads);
                for (const auto& [key, perThread] : objects.dictItems(dicts)) {
                    if (objects.typeNameOf(perThread) != "dict") continue;
                    auto runner = objects.dictGet(perThread, layout.runContextRunner);
                    if (!runner) continue;
                    auto owner = owners.find(perThread);
                    add(*runner, owner == owners.end() ? std::nullopt : std::optional<std::uint64_t>(owner->second));
                }
            }
        } catch (const BadRead& e) {
            out.torn = true;
            out.warnings.push_back(std::string("trio's run context changed while read (a run without a trio.run "
                                               "frame may be missing): ") +
                                   e.what());
        }
    }
    return out;
}

}  // namespace aioscope
