#include "walk/interpreters.h"

#include <unordered_set>

#include "remote/limits.h"

namespace aioscope {

namespace {

Addr gilHolder(Remote& mem, const Layout& L, Addr runtime, Addr interp) {
    Addr gil = 0;
    if (L.gilModel == GilModel::inRuntime) {
        gil = runtime + static_cast<Addr>(L.runtime.gil);
    } else {
        gil = mem.ptr(interp + L.interp.cevalGil, "interp->ceval.gil");
    }
    if (!gil) return 0;
    auto locked = mem.get<std::int32_t>(gil + L.gil.locked, "gil locked");
    return locked ? mem.ptr(gil + L.gil.lastHolder, "gil holder") : 0;
}

}  // namespace

std::vector<InterpreterState> readInterpreters(Remote& mem, const Layout& L, Addr runtime) {
    std::vector<InterpreterState> out;
    std::unordered_set<Addr> seen;
    Addr interp = mem.ptr(runtime + L.runtime.interpretersHead, "interpreters head");
    while (interp) {
        if (out.size() >= limits::kMaxInterpreters) throw BadRead("too many interpreters");
        if (!seen.insert(interp).second) throw BadRead("interpreter list loops");
        InterpreterState s;
        s.addr = interp;
        s.id = mem.get<std::int64_t>(interp + L.interp.id, "interpreter id");
        s.sysdict = mem.ptr(interp + L.interp.sysdict, "sysdict");
        s.modules = mem.ptr(interp + L.interp.modules, "sys.modules");
        s.gilHolder = gilHolder(mem, L, runtime, interp);
        if (L.interp.threadsMain != kAbsent) s.threadsMain = mem.ptr(interp + L.interp.threadsMain, "threads.main");
        out.push_back(s);
        interp = mem.ptr(interp + L.interp.next, "interpreter next");
    }
    return out;
}

std::vector<ThreadState> readThreads(Remote& mem, const Layout& L, const InterpreterState& interp,
                                     Witness* witness) {
    std::vector<ThreadState> out;
    std::unordered_set<Addr> seen;
    Addr headAt = interp.addr + static_cast<Addr>(L.interp.threadsHead);
    Addr ts = mem.ptr(headAt, "threads head");
    if (witness) witness->expect(headAt, ts);
    bool sawMain = false;
    while (ts) {
        if (seen.size() >= limits::kMaxThreads) throw BadRead("too many threads");
        if (!seen.insert(ts).second) throw BadRead("thread list loops");
        Block b = mem.block(ts, static_cast<std::size_t>(L.thread.size), "thread state");
        if (L.thread.interp != kAbsent) {
            Addr owner = b.ptr(L.thread.interp);
            if (owner != interp.addr) throw BadRead("thread state " + hexAddr(ts) + " is not its interpreter's (freed)");
            if (witness) witness->expect(ts + static_cast<Addr>(L.thread.interp), owner);
        }
        if (witness) witness->expect(ts + static_cast<Addr>(L.thread.next), b.ptr(L.thread.next));
        sawMain = sawMain || ts == interp.threadsMain;
        ThreadState t;
        t.addr = ts;
        t.threadId = b.ptr(L.thread.threadId);
        if (L.thread.nativeThreadId != kAbsent) t.nativeId = b.at<std::int64_t>(L.thread.nativeThreadId);
        t.dict = b.ptr(L.thread.dict);
        if (L.currentFrame == CurrentFrameModel::direct) {
            t.currentFrame = b.ptr(L.thread.currentFrame);
        } else if (Addr cframe = b.ptr(L.thread.cframe)) {
            // cframe lives on the thread's C stack; it may be gone by now.
            std::uint64_t frame = 0;
            if (!mem.tryRead(cframe + L.thread.cframeCurrentFrame, &frame, sizeof frame)) {
                throw BadRead("thread cframe unreadable");
            }
            t.currentFrame = frame;
        }
        if (witness) witness->expect(ts + static_cast<Addr>(L.thread.threadId), t.threadId);
        if (t.threadId) out.push_back(t);
        ts = b.ptr(L.thread.next);
    }
    if (interp.threadsMain && !sawMain) throw BadRead("the thread list read lacks the main thread");
    // 3.10/3.11 give a thread state the id of the thread that creates it,
    // until the new thread starts and sets its own: the creator appears
    // twice. The older state (later in the newest-first list) is the thread.
    std::unordered_set<std::uint64_t> ids;
    for (auto it = out.rbegin(); it != out.rend(); ++it) {
        if (!ids.insert(it->threadId).second) it->threadId = 0;
    }
    std::erase_if(out, [](const ThreadState& t) { return t.threadId == 0; });
    return out;
}

Addr readCurrentFrame(Remote& mem, const Layout& L, Addr tstate) {
    if (L.currentFrame == CurrentFrameModel::direct) return mem.ptr(tstate + L.thread.currentFrame, "current frame");
    Addr cframe = mem.ptr(tstate + L.thread.cframe, "cframe");
    if (!cframe) return 0;
    std::uint64_t frame = 0;
    if (!mem.tryRead(cframe + L.thread.cframeCurrentFrame, &frame, sizeof frame)) {
        throw BadRead("thread cframe unreadable");
    }
    return frame;
}

std::vector<ThreadState> readThreadsConsistent(Remote& mem, MemoryReader& fresh, const Layout& L,
                                               const InterpreterState& interp, int attempts) {
    std::string why = "the thread list kept changing while it was read";
    for (int i = 0; i < attempts; ++i) {
        Witness w;
        try {
            auto threads = readThreads(mem, L, interp, &w);
            if (w.holds(fresh)) return threads;
        } catch (const BadRead& e) {
            why = e.what();
        }
        // Read it straight from the target next time, not from cached pages.
        mem.reader().forget();
    }
    throw BadRead(why);
}

}  // namespace aioscope
