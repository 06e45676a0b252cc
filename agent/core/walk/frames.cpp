#include "walk/frames.h"

#include <algorithm>
#include <unordered_set>

namespace aioscope {

RawFrame FrameWalker::read(Addr addr) {
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    RawFrame raw;
    raw.addr = addr;
    Block b = mem.block(addr, static_cast<std::size_t>(L.frame.size), "frame");
    raw.previous = b.ptr(L.frame.previous);

    if (L.frameModel == FrameModel::frameObject) {
        if (m_objects.typeName(b.ptr(L.object.type)) != "frame") throw BadRead("not a frame object at " + hexAddr(addr));
        raw.code = b.ptr(L.frame.code);
        raw.lasti = b.at<std::int32_t>(L.frame.instr);
        raw.gen = b.ptr(L.frame.gen);
        raw.state = b.at<std::int8_t>(L.frame.state);
        raw.locals = addr + static_cast<Addr>(L.frame.localsplus);
        raw.stackBase = b.ptr(L.frame.valueStack);
        raw.stackTop = raw.stackBase + 8 * static_cast<Addr>(std::max(0, b.at<std::int32_t>(L.frame.stack)));
        return raw;
    }

    auto owner = b.at<std::uint8_t>(L.frame.owner);
    if (L.firstEntryOwner >= 0 && owner >= L.firstEntryOwner) {
        raw.hidden = true;
        return raw;
    }
    raw.code = b.ptr(L.frame.code) & ~L.stackRefTagMask;
    if (owner == L.frame.ownerGenerator) raw.gen = addr - static_cast<Addr>(L.gen.frame);
    const CodeInfo& code = m_codes.get(raw.code);
    raw.instr = b.ptr(L.frame.instr);
    raw.lasti = (static_cast<std::int64_t>(raw.instr) - static_cast<std::int64_t>(code.bytecode)) / 2;
    raw.locals = addr + static_cast<Addr>(L.frame.localsplus);
    raw.stackBase = raw.locals + 8 * static_cast<Addr>(code.nlocalsplus);
    if (L.stackModel == StackModel::stackPointer) {
        raw.stackTop = b.ptr(L.frame.stack);
    } else {
        raw.stackTop = raw.locals + 8 * static_cast<Addr>(std::max(0, b.at<std::int32_t>(L.frame.stack)));
    }
    // CPython's _PyFrame_IsIncomplete: a frame still in its prologue (or an
    // interpreter shim such as _Py_InitCleanup) is not shown in tracebacks.
    if (owner != L.frame.ownerGenerator && raw.lasti < code.firstTraceable) raw.hidden = true;
    return raw;
}

WalkedStack FrameWalker::walk(Addr first, std::size_t maxFrames) {
    WalkedStack out;
    std::unordered_set<Addr> seen;
    std::size_t steps = 0;
    try {
        for (Addr addr = first; addr; ++steps) {
            if (steps >= maxFrames) {
                out.truncated = true;
                break;
            }
            if (!seen.insert(addr).second) throw BadRead("frame chain loops at " + hexAddr(addr));
            RawFrame raw = read(addr);
            if (!raw.hidden) out.frames.push_back({describe(raw), raw.addr, raw.gen});
            addr = raw.previous;
        }
    } catch (const BadRead& e) {
        out.error = e.what();
    }
    return out;
}

}  // namespace aioscope
