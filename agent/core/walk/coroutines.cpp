#include "walk/coroutines.h"

#include "remote/limits.h"

namespace aioscope {

namespace {

constexpr std::size_t kMaxSlots = 4096;
// Links followed at most, beyond the kMaxChain kept: a chain this deep is
// reported as unreadable rather than walked for ever.
constexpr std::size_t kMaxWalked = std::size_t{1} << 20;
// AwaitableState of async_generator_asend/athrow: running its generator.
constexpr std::int32_t kAwaitableIter = 1;

bool isGenerator(const std::string& type) {
    return type == "coroutine" || type == "generator" || type == "async_generator";
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

Addr CoroutineWalker::unwrap(Addr obj, bool* idle, Witness* witness) {
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    for (int i = 0; obj && i < 4; ++i) {
        const std::string& type = m_objects.builtinTypeNameOf(obj);
        // What it is decides how it is followed: part of the second look.
        if (witness) witness->expect(obj + static_cast<Addr>(L.object.type), m_objects.typeOf(obj));
        if (isGenerator(type)) return obj;
        Addr wrappedAt = obj + static_cast<Addr>(L.callable.wrapped);
        if (type == "async_generator_asend" || type == "async_generator_athrow") {
            // Only while it runs its generator does it stand for it; before
            // (or after) that, the generator may be doing anything else.
            Addr stateAt = obj + static_cast<Addr>(type == "async_generator_asend" ? L.callable.asendState
                                                                                  : L.callable.athrowState);
            auto state = mem.get<std::int32_t>(stateAt, "awaitable state");
            if (witness) witness->expect(stateAt, static_cast<std::uint32_t>(state), 4);
            if (state != kAwaitableIter) {
                if (idle) *idle = true;
                return 0;
            }
        } else if (type != "coroutine_wrapper" && type != "anext_awaitable") {
            return 0;
        }
        obj = mem.ptr(wrappedAt, "wrapped generator");
        if (witness) witness->expect(wrappedAt, obj);
    }
    return 0;
}

std::optional<ChainLink> CoroutineWalker::link(Addr gen, Witness* witness) {
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    if (!m_objects.alive(gen)) throw BadRead("coroutine " + hexAddr(gen) + " was freed");
    ChainLink l;
    l.gen = gen;
    if (L.gen.frameEmbedded) {
        Addr stateAt = gen + static_cast<Addr>(L.gen.frameState);
        l.state = mem.get<std::int8_t>(stateAt, "generator state");
        if (witness) witness->expect(stateAt, static_cast<std::uint8_t>(l.state), 1);
        if (l.state < L.frameState.created || l.state > L.frameState.executing) return std::nullopt;  // finished
        l.frame = m_frames.read(gen + static_cast<Addr>(L.gen.frame));
        // A generator's embedded frame is owned by it; anything else is
        // memory that has become something else.
        if (l.frame.gen != gen) throw BadRead("coroutine " + hexAddr(gen) + " does not own its frame");
    } else {
        Addr frameAt = gen + static_cast<Addr>(L.gen.frame);
        Addr frame = mem.ptr(frameAt, "gi_frame");
        if (witness) witness->expect(frameAt, frame);
        if (!frame) return std::nullopt;  // finished
        l.frame = m_frames.read(frame);
        if (l.frame.gen != gen) throw BadRead("frame " + hexAddr(frame) + " is not its coroutine's");
        l.state = l.frame.state;
        if (witness) {
            witness->expect(frame + static_cast<Addr>(L.frame.state), static_cast<std::uint8_t>(l.state), 1);
        }
        if (l.state < L.frameState.created || l.state > L.frameState.executing) return std::nullopt;
    }
    if (witness) {
        Addr f = l.frame.addr;
        // Its code: a frame read from a page cached before it was reused
        // would name another function.
        std::uint64_t code = 0;
        if (mem.tryRead(f + static_cast<Addr>(L.frame.code), &code, 8)) witness->expect(f + static_cast<Addr>(L.frame.code), code);
        if (L.instrModel == InstrModel::lastiIndex) {
            witness->expect(f + static_cast<Addr>(L.frame.instr), static_cast<std::uint32_t>(l.frame.lasti), 4);
        } else {
            witness->expect(f + static_cast<Addr>(L.frame.instr), l.frame.instr);
        }
        if (L.stackModel == StackModel::stackPointer) {
            witness->expect(f + static_cast<Addr>(L.frame.stack), l.frame.stackTop);
        } else {
            std::int32_t depth = 0;
            if (mem.tryRead(f + static_cast<Addr>(L.frame.stack), &depth, 4)) {
                witness->expect(f + static_cast<Addr>(L.frame.stack), static_cast<std::uint32_t>(depth), 4);
            }
        }
    }
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

Addr CoroutineWalker::awaitee(const ChainLink& l, Witness* witness) {
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
    if (witness) witness->expect(slot, value);
    if ((value & L.stackRefTagMask) == 3) return 0;  // a tagged int, not an object
    return value & ~L.stackRefTagMask;
}

CoroutineChain CoroutineWalker::follow(Addr coroutine, Witness* witness) {
    const Layout& L = m_objects.layout();
    CoroutineChain chain;
    Addr obj = coroutine;
    // Brent's cycle check on the generators met: no set to grow with depth.
    Addr power = 0;
    std::size_t lam = 1, sincePower = 0, walked = 0;
    try {
        while (obj) {
            if (walked >= kMaxWalked) throw BadRead("coroutine chain deeper than " + std::to_string(kMaxWalked));
            bool idle = false;
            Addr gen = unwrap(obj, &idle, witness);
            if (!gen) {
                if (!idle) {
                    chain.awaited = obj;
                } else if (chain.links.empty()) {
                    chain.idleWrapper = true;
                } else {
                    // A frame suspended on an asend/athrow has started it,
                    // and is woken when it finishes.
                    throw BadRead("awaits an async generator step that is not running");
                }
                break;
            }
            if (gen == power) throw BadRead("coroutine chain loops");
            if (++sincePower == lam) {
                power = gen;
                lam *= 2;
                sincePower = 0;
            }
            auto l = link(gen, witness);
            if (!l) {
                // Finished: only the task's own coroutine can be, on its way
                // out; an awaited one that finished has already woken its awaiter.
                if (walked > 0) throw BadRead("an awaited coroutine has finished");
                break;
            }
            if (walked > 0 && l->state == L.frameState.created) {
                throw BadRead("an awaited coroutine has not started");
            }
            ++walked;
            bool executing = l->state == L.frameState.executing;
            if (executing && walked > 1) {
                // Its awaiter is suspended: they were read at different moments.
                throw BadRead("a suspended coroutine awaits a running one");
            }
            chain.links.push_back(*l);
            if (chain.links.size() > limits::kMaxChain) {
                chain.links.pop_front();
                ++chain.omitted;
            }
            if (executing) {
                chain.executing = true;
                break;
            }
            obj = awaitee(chain.links.back(), witness);
        }
    } catch (const BadRead& e) {
        chain.error = e.what();
    }
    return chain;
}

}  // namespace aioscope
