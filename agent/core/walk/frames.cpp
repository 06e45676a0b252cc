#include "walk/frames.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_set>

namespace aioscope {

std::optional<FrameWalker::Link> FrameWalker::link(const Block& b) const {
    const Layout& L = m_objects.layout();
    Link k;
    k.previous = b.ptr(L.frame.previous);
    if (L.frameModel == FrameModel::frameObject) {
        if (m_objects.builtinTypeName(b.ptr(L.object.type)) != "frame") return std::nullopt;
        k.code = b.ptr(L.frame.code);
        return k;
    }
    k.owner = b.at<std::uint8_t>(L.frame.owner);
    k.entry = L.firstEntryOwner >= 0 && k.owner >= L.firstEntryOwner;
    k.code = b.ptr(L.frame.code) & ~L.stackRefTagMask;
    return k;
}

RawFrame FrameWalker::read(Addr addr) {
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    RawFrame raw;
    raw.addr = addr;
    if (addr % 8) throw BadRead("frame link to a misaligned address " + hexAddr(addr));
    Block b = mem.block(addr, static_cast<std::size_t>(L.frame.size), "frame");
    std::optional<Link> k = link(b);
    if (!k) throw BadRead("not a frame object at " + hexAddr(addr));
    raw.previous = k->previous;

    if (L.frameModel == FrameModel::frameObject) {
        raw.code = k->code;
        raw.lasti = b.at<std::int32_t>(L.frame.instr);
        raw.gen = b.ptr(L.frame.gen);
        raw.state = b.at<std::int8_t>(L.frame.state);
        raw.locals = addr + static_cast<Addr>(L.frame.localsplus);
        raw.stackBase = b.ptr(L.frame.valueStack);
        raw.stackTop = raw.stackBase + 8 * static_cast<Addr>(std::max(0, b.at<std::int32_t>(L.frame.stack)));
        return raw;
    }

    if (k->entry) {
        raw.hidden = true;
        return raw;
    }
    raw.code = k->code;
    if (k->owner == L.frame.ownerGenerator) raw.gen = addr - static_cast<Addr>(L.gen.frame);
    const CodeInfo& code = m_codes.get(raw.code);
    raw.instr = b.ptr(L.frame.instr);
    // Subtracted unsigned (wrapping): a torn instruction pointer can be
    // anything, and a signed overflow would be undefined (found by fuzz_memory).
    raw.lasti = static_cast<std::int64_t>(raw.instr - code.bytecode) / 2;
    raw.locals = addr + static_cast<Addr>(L.frame.localsplus);
    raw.stackBase = raw.locals + 8 * static_cast<Addr>(code.nlocalsplus);
    if (L.stackModel == StackModel::stackPointer) {
        raw.stackTop = b.ptr(L.frame.stack);
    } else {
        raw.stackTop = raw.locals + 8 * static_cast<Addr>(std::max(0, b.at<std::int32_t>(L.frame.stack)));
    }
    // CPython's _PyFrame_IsIncomplete: a frame still in its prologue (or an
    // interpreter shim such as _Py_InitCleanup) is not shown in tracebacks.
    if (k->owner != L.frame.ownerGenerator && raw.lasti < code.firstTraceable) raw.hidden = true;
    return raw;
}

namespace {

// Frames beyond the cap are only counted: following `previous` links, with
// Brent's cycle check instead of a set, up to this many.
constexpr std::size_t kMaxCounted = std::size_t{1} << 20;

// Frames whose code objects are fetched together before the walk.
constexpr std::size_t kPrefetchFrames = 256;
// What of a name, file name or line table is fetched with it: its header and
// (for most) all of its characters, on the same page.
constexpr std::size_t kPrefetchObject = 64;

}  // namespace

// Brings the pages the walk will read into the page cache in two batches
// (the code objects of the frames, then their names and line tables)
// instead of a page per miss: a stack's code objects and strings are
// scattered over as many pages as there are frames. Nothing is decided
// here: what does not read, or makes no sense, is met again by the walk.
// The chase and the batches stop where the walk will (a frame that is not
// one, a code object that is not one): a torn link costs a page or two,
// not a batch over whatever it points at.
void FrameWalker::prefetch(Addr first, std::size_t maxFrames) {
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    std::size_t frameSize = static_cast<std::size_t>(L.frame.size);
    std::vector<Addr> codes;
    std::unordered_set<Addr> seen;
    Addr addr = first;
    for (std::size_t n = 0; addr && n < std::min(maxFrames, kPrefetchFrames) && seen.insert(addr).second; ++n) {
        Block b(frameSize);
        if (addr % 8 || !mem.tryRead(addr, b.data(), frameSize)) break;
        std::optional<Link> k = link(b);
        if (!k) break;
        if (!k->entry) {
            if (!k->code || k->code % 8) break;
            if (!m_codes.known(k->code) && std::find(codes.begin(), codes.end(), k->code) == codes.end()) {
                codes.push_back(k->code);
            }
        }
        addr = k->previous;
    }
    if (codes.empty()) return;
    std::size_t size = static_cast<std::size_t>(L.code.size);
    std::vector<std::uint8_t> blocks(codes.size() * size);
    std::vector<MemoryReader::Request> requests;
    for (std::size_t i = 0; i < codes.size(); ++i) requests.push_back({codes[i], blocks.data() + i * size, size});
    mem.reader().readMany(requests);
    std::vector<Addr> objects;
    for (std::size_t i = 0; i < codes.size(); ++i) {
        const std::uint8_t* block = blocks.data() + i * size;
        Addr type = 0;
        std::memcpy(&type, block + L.object.type, 8);
        // Codes are in the order the walk meets them: it ends at this one.
        if (requests[i].result != ReadResult::ok || !m_codes.isCodeType(type)) break;
        for (Off off : {L.code.name, L.code.filename, L.code.qualname, L.code.linetable}) {
            if (off == kAbsent) continue;
            Addr p = 0;
            std::memcpy(&p, block + static_cast<std::size_t>(off), 8);
            if (p) objects.push_back(p);
        }
    }
    std::sort(objects.begin(), objects.end());
    objects.erase(std::unique(objects.begin(), objects.end()), objects.end());
    m_objects.prefetch(objects, 0, kPrefetchObject);
}

WalkedStack FrameWalker::walk(Addr first, std::size_t maxFrames, bool facts) {
    const Layout& L = m_objects.layout();
    WalkedStack out;
    std::unordered_set<Addr> seen;
    Addr addr = first;
    try {
        prefetch(first, maxFrames);
    } catch (const BadRead&) {
        // Decides nothing: the walk meets the same memory.
    }
    try {
        while (addr) {
            if (out.frames.size() >= maxFrames) break;
            if (!seen.insert(addr).second) throw BadRead("frame chain loops at " + hexAddr(addr));
            RawFrame raw = read(addr);
            if (facts) {
                WalkedStack::FrameFacts f;
                f.link.expect(addr + static_cast<Addr>(L.frame.previous), raw.previous);
                // A C entry frame or shim: only its link matters.
                if (raw.hidden && L.instrModel != InstrModel::lastiIndex) {
                    out.facts.push_back(std::move(f));
                    out.chain.emplace_back(addr, out.frames.size());
                    addr = raw.previous;
                    continue;
                }
                Addr codeAt = addr + static_cast<Addr>(L.frame.code);
                std::uint64_t code = 0;
                if (m_objects.mem().tryRead(codeAt, &code, 8)) f.link.expect(codeAt, code);
                if (L.instrModel == InstrModel::lastiIndex) {
                    // 3.10: heap frame objects, reused once freed: still a
                    // frame, still running.
                    f.link.expectAlive(addr);
                    f.link.expect(addr + static_cast<Addr>(L.frame.state), static_cast<std::uint8_t>(raw.state), 1);
                    f.instr.expect(addr + static_cast<Addr>(L.frame.instr), static_cast<std::uint32_t>(raw.lasti), 4);
                } else {
                    f.instr.expect(addr + static_cast<Addr>(L.frame.instr), raw.instr);
                }
                out.facts.push_back(std::move(f));
            }
            out.chain.emplace_back(addr, out.frames.size());
            if (!raw.hidden) out.frames.push_back({describe(raw), raw.addr, raw.gen});
            addr = raw.previous;
        }
        if (addr) {
            out.truncated = true;
            // Count what is left; a frame of the C stack or a shim is not one.
            Addr power = addr;
            std::size_t lam = 1, steps = 0;
            while (addr && steps < kMaxCounted) {
                ++steps;
                if (L.frame.owner != kAbsent && L.firstEntryOwner >= 0) {
                    std::uint8_t owner = 0;
                    if (!m_objects.mem().tryRead(addr + static_cast<Addr>(L.frame.owner), &owner, 1)) break;
                    if (owner < L.firstEntryOwner) ++out.omitted;
                } else {
                    ++out.omitted;
                }
                std::uint64_t prev = 0;
                if (!m_objects.mem().tryRead(addr + static_cast<Addr>(L.frame.previous), &prev, 8)) break;
                addr = prev;
                if (addr == power) break;  // a loop: stop counting
                if (steps == lam) {
                    power = addr;
                    lam *= 2;
                }
            }
        }
    } catch (const BadRead& e) {
        out.error = e.what();
    }
    return out;
}

}  // namespace aioscope
