#include "walk/running.h"

#include "walk/python_facts.h"

namespace aioscope {

namespace {

constexpr const char* kRunningLoopKey = "__asyncio_running_event_loop__";

Addr notNone(Objects& objects, Addr obj) {
    return obj && objects.builtinTypeNameOf(obj) != "NoneType" ? obj : 0;
}

Addr runningLoop(Objects& objects, const ThreadState& t, pid_t pid) {
    const Layout& L = objects.layout();
    switch (L.asyncio.runningLoop) {
        case RunningLoopModel::threadDictHolder: {
            auto holder = t.dict ? objects.dictGet(t.dict, kRunningLoopKey) : std::nullopt;
            if (!holder) return 0;
            // The holder records the pid that set it: a forked child inherits
            // its parent's holder, which does not mean a running loop.
            auto holderPid = objects.mem().get<std::int32_t>(*holder + L.asyncio.runningLoopHolderLoop + 8, "rl_pid");
            if (holderPid != pid) return 0;
            return notNone(objects, objects.mem().ptr(*holder + L.asyncio.runningLoopHolderLoop, "rl_loop"));
        }
        case RunningLoopModel::threadDictLoop: {
            auto loop = t.dict ? objects.dictGet(t.dict, kRunningLoopKey) : std::nullopt;
            return loop ? notNone(objects, *loop) : 0;
        }
        case RunningLoopModel::threadStateField:
            return notNone(objects, objects.mem().ptr(t.addr + L.asyncio.threadRunningLoop, "running loop"));
    }
    return 0;
}

}  // namespace

RunningLoops readRunningLoops(Objects& objects, const InterpreterState& interp,
                              const std::vector<ThreadState>& threads, pid_t pid) {
    const Layout& L = objects.layout();
    RunningLoops out;
    // A thread starting or ending while it is read has a dict being built or
    // torn down: it runs no loop anyone can see, so it is skipped.
    for (const auto& t : threads) {
        try {
            if (Addr loop = runningLoop(objects, t, pid)) {
                out.threadOfLoop[loop] = t.threadId;
                out.loopOfThread[t.threadId] = loop;
            }
        } catch (const BadRead& e) {
            out.taskUnknown[t.threadId] = std::string("its running loop did not read: ") + e.what();
        }
    }
    if (L.asyncio.threadRunningTask != kAbsent) {
        for (const auto& t : threads) {
            std::uint64_t task = 0;
            try {
                if (!objects.mem().tryRead(t.addr + L.asyncio.threadRunningTask, &task, 8)) {
                    out.taskUnknown[t.threadId] = "its thread state's running task did not read";
                } else if ((task = notNone(objects, task))) {
                    out.taskOfThread[t.threadId] = task;
                }
            } catch (const BadRead& e) {
                out.taskUnknown[t.threadId] = std::string("its running task did not read: ") + e.what();
            }
        }
        return out;
    }
    try {
        auto dict = moduleDict(objects, interp, "_asyncio");
        auto current = dict ? objects.dictGet(*dict, "_current_tasks") : std::nullopt;
        if (!current) return out;
        for (const auto& [loop, task] : objects.dictItems(*current)) {
            auto it = out.threadOfLoop.find(loop);
            if (it != out.threadOfLoop.end()) out.taskOfThread[it->second] = task;
        }
    } catch (const BadRead& e) {
        // Which task runs is then learnt from its coroutine's state alone
        // (a full read); a thread's own report says it is unknown.
        for (const auto& [tid, loop] : out.loopOfThread) {
            out.taskUnknown.emplace(tid, std::string("asyncio's _current_tasks did not read: ") + e.what());
        }
    }
    return out;
}

}  // namespace aioscope
