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
        out.push_back(s);
        interp = mem.ptr(interp + L.interp.next, "interpreter next");
    }
    return out;
}

std::vector<ThreadState> readThreads(Remote& mem, const Layout& L, const InterpreterState& interp) {
    std::vector<ThreadState> out;
    std::unordered_set<Addr> seen;
    Addr ts = mem.ptr(interp.addr + L.interp.threadsHead, "threads head");
    while (ts) {
        if (out.size() >= limits::kMaxThreads) throw BadRead("too many threads");
        if (!seen.insert(ts).second) throw BadRead("thread list loops");
        Block b = mem.block(ts, static_cast<std::size_t>(L.thread.size), "thread state");
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
        out.push_back(t);
        ts = b.ptr(L.thread.next);
    }
    return out;
}

}  // namespace aioscope
