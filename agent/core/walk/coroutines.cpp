#include "walk/coroutines.h"

#include "remote/limits.h"

namespace aioscope {

namespace {

constexpr std::size_t kMaxSlots = 4096;

bool isGenerator(const std::string& type) {
    return type == "coroutine" || type == "generator" || type == "async_generator";
}

// Objects that stand for a generator: what `coro.__await__()`, `agen.asend()`
// and `agen.athrow()` return. Their first field is the generator.
bool isWrapper(const std::string& type) {
    return type == "coroutine_wrapper" || type == "async_generator_asend" || type == "async_generator_athrow";
}

}  // namespace

bool handlingCancelledError(Objects& objects, const CoroutineChain& chain) {
    const Layout& L = objects.layout();
    for (const auto& link : chain.links) {
        Addr exc = objects.mem().ptr(link.gen + L.gen.excValue, "gi_exc_state");
        if (exc && objects.isInstance(exc, "CancelledError")) return true;
    }
    return false;
}

Addr CoroutineWalker::unwrap(Addr obj) {
    for (int i = 0; obj && i < 4; ++i) {
        const std::string& type = m_objects.typeNameOf(obj);
        if (isGenerator(type)) return obj;
        if (!isWrapper(type)) return 0;
        obj = m_objects.mem().ptr(obj + m_objects.layout().callable.wrapped, "wrapped generator");
    }
    return 0;
}

std::optional<ChainLink> CoroutineWalker::link(Addr gen) {
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    ChainLink l;
    l.gen = gen;
    if (L.gen.frameEmbedded) {
        l.state = mem.get<std::int8_t>(gen + L.gen.frameState, "generator state");
        l.frame = m_frames.read(gen + static_cast<Addr>(L.gen.frame));
    } else {
        Addr frame = mem.ptr(gen + L.gen.frame, "gi_frame");
        if (!frame) return std::nullopt;  // finished
        l.frame = m_frames.read(frame);
        l.state = l.frame.state;
    }
    if (l.state < L.frameState.created || l.state > L.frameState.executing) return std::nullopt;
    return l;
}

std::vector<Addr> CoroutineWalker::slots(Addr from, Addr to) {
    if (to <= from || (to - from) / 8 > kMaxSlots || (from & 7)) return {};
    std::vector<Addr> out((to - from) / 8);
    m_objects.mem().read(from, out.data(), out.size() * 8, "frame slots");
    return out;
}

std::vector<Addr> CoroutineWalker::frameSlots(const RawFrame& f) { return slots(f.locals, f.stackTop); }

std::vector<Addr> CoroutineWalker::stackSlots(const RawFrame& f) { return slots(f.stackBase, f.stackTop); }

Addr CoroutineWalker::awaitee(const ChainLink& l) {
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    const RawFrame& f = l.frame;
    switch (L.yieldFrom) {
        case YieldFromModel::opcode310: {
            if (l.state != L.frameState.suspended || f.lasti < 0) return 0;
            const CodeInfo& code = m_frames.codes().get(f.code);
            if (!code.bytecode) return 0;
            auto op = mem.get<std::uint8_t>(code.bytecode + 2 * static_cast<Addr>(f.lasti + 1), "next opcode");
            if (op != L.opcodes.yieldFrom) return 0;
            break;
        }
        case YieldFromModel::resume311: {
            if (l.state != L.frameState.suspended) return 0;
            auto next = mem.get<std::uint16_t>(f.instr + 2, "next code unit");
            int op = next & 0xff, arg = next >> 8;
            if ((op != L.opcodes.resume && op != L.opcodes.resumeAlt) || arg < 2) return 0;
            break;
        }
        case YieldFromModel::frameState:
            if (l.state < L.frameState.yieldFromFirst || l.state > L.frameState.yieldFromLast) return 0;
            break;
    }
    Addr slot = f.stackTop + 8 * static_cast<std::int64_t>(L.awaiteeSlot);
    if (slot < f.stackBase || slot >= f.stackTop) throw BadRead("awaited value outside the frame's stack");
    Addr value = mem.ptr(slot, "awaited value");
    if ((value & L.stackRefTagMask) == 3) return 0;  // a tagged int, not an object
    return value & ~L.stackRefTagMask;
}

CoroutineChain CoroutineWalker::follow(Addr coroutine) {
    CoroutineChain chain;
    std::unordered_set<Addr> seen;
    Addr obj = coroutine;
    try {
        while (obj) {
            if (chain.links.size() >= limits::kMaxChain) throw BadRead("coroutine chain too deep");
            Addr gen = unwrap(obj);
            if (!gen) {
                chain.awaited = obj;
                break;
            }
            if (!seen.insert(gen).second) throw BadRead("coroutine chain loops");
            auto l = link(gen);
            if (!l) break;  // finished
            chain.links.push_back(*l);
            if (l->state == m_objects.layout().frameState.executing) {
                chain.executing = true;
                break;
            }
            obj = awaitee(*l);
        }
    } catch (const BadRead& e) {
        chain.error = e.what();
    }
    return chain;
}

}  // namespace aioscope
