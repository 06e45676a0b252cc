// Following coroutine chains over hand-built 3.13 coroutines: wrappers are
// recognised by their real types only, a chain deeper than the cap keeps its
// innermost links, and links that cannot belong together end the walk with
// an error instead of splicing two moments.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "fake_memory.h"
#include "fake_python.h"
#include "remote/limits.h"
#include "remote/witness.h"
#include "test_data.h"
#include "walk/code.h"
#include "walk/coroutines.h"
#include "walk/frames.h"

using namespace aioscope;
using aioscope::test::FakeMemory;
using aioscope::test::FakePython;
using aioscope::test::recordedLayout;
using Bytes = std::vector<std::uint8_t>;

namespace {

const Bytes kLocations = {0x80, 0x00, 0xd9, 0x00, 0x04, 0xd9, 0x00, 0x04};
constexpr std::uint8_t kOwnedByGenerator = 1;

struct World {
    World()
        : L(recordedLayout(13)), py(mem, L), remote(mem), objects(remote, L), codes(objects), frames(codes, objects),
          walker(frames, objects), codeType(py.type("code", 0)), coroType(py.type("coroutine", 0)),
          agenType(py.type("async_generator", 0)), code(makeCode()) {}
    Layout L;
    FakeMemory mem;
    FakePython py;
    Remote remote;
    Objects objects;
    CodeReader codes;
    FrameWalker frames;
    CoroutineWalker walker;
    Addr codeType, coroType, agenType, code;

    Addr at(Off off) const { return static_cast<Addr>(off); }

    Addr makeCode() {
        Addr c = py.object(codeType, static_cast<std::size_t>(L.code.size) + 64);
        mem.put<Addr>(c + at(L.code.name), py.str("step"));
        mem.put<Addr>(c + at(L.code.filename), py.str("/app/steps.py"));
        mem.put<Addr>(c + at(L.code.qualname), py.str("step"));
        mem.put<std::int32_t>(c + at(L.code.firstlineno), 10);
        mem.put<Addr>(c + at(L.code.linetable), py.bytes(kLocations));
        return c;
    }

    // A coroutine (or async generator) suspended in `await awaited`, or in
    // another state when awaited is 0.
    Addr gen(Addr awaited, std::int8_t state, Addr type = 0) {
        Addr g = py.object(type ? type : coroType, static_cast<std::size_t>(L.gen.frame + L.frame.size) + 64);
        mem.put<std::int8_t>(g + at(L.gen.frameState), state);
        Addr f = g + at(L.gen.frame);
        mem.put<Addr>(f + at(L.frame.code), code);
        mem.put<Addr>(f + at(L.frame.instr), code + at(L.code.codeAdaptive) + 6);
        mem.put<std::uint8_t>(f + at(L.frame.owner), kOwnedByGenerator);
        mem.put<Addr>(f + at(L.frame.localsplus), awaited);   // no locals: the value stack starts here
        mem.put<std::int32_t>(f + at(L.frame.stack), 1);      // one value on it
        return g;
    }
    Addr awaiting(Addr awaited) { return gen(awaited, static_cast<std::int8_t>(L.frameState.yieldFromFirst)); }
};

}  // namespace

TEST_CASE("a chain deeper than the cap keeps its innermost links", "[coroutines]") {
    World w;
    Addr bottom = w.py.object(w.py.type("Sleeper", 0), 32);
    std::size_t depth = limits::kMaxChain + 10;
    std::vector<Addr> gens(depth);
    Addr next = bottom;
    for (std::size_t i = depth; i-- > 0;) next = gens[i] = w.awaiting(next);
    CoroutineChain chain = w.walker.follow(gens[0]);
    REQUIRE_FALSE(chain.error.has_value());
    CHECK(chain.links.size() == limits::kMaxChain);
    CHECK(chain.omitted == 10);
    CHECK(chain.links.front().gen == gens[10]);
    CHECK(chain.links.back().gen == gens[depth - 1]);
    CHECK(chain.awaited == bottom);
}

TEST_CASE("wrappers are followed only when the interpreter defines them", "[coroutines]") {
    World w;
    Addr inner = w.awaiting(w.py.object(w.py.type("Sleeper", 0), 32));
    const Off state = w.L.callable.asendState;

    SECTION("a real asend running its generator") {
        Addr agen = w.gen(w.py.object(w.py.type("Sleeper", 0), 32),
                          static_cast<std::int8_t>(w.L.frameState.yieldFromFirst), w.agenType);
        Addr asend = w.py.object(w.py.type("async_generator_asend", tpflags::kImmutableType), 48);
        w.mem.put<Addr>(asend + w.at(w.L.callable.wrapped), agen);
        w.mem.put<std::int32_t>(asend + w.at(state), 1);  // AWAITABLE_STATE_ITER
        CoroutineChain chain = w.walker.follow(w.awaiting(asend));
        REQUIRE_FALSE(chain.error.has_value());
        REQUIRE(chain.links.size() == 2);
        CHECK(chain.links.back().gen == agen);

        SECTION("anext(agen, default) wraps the asend") {
            Addr anext = w.py.object(w.py.type("anext_awaitable", 0), 32);
            w.mem.put<Addr>(anext + w.at(w.L.callable.wrapped), asend);
            CoroutineChain c = w.walker.follow(anext);  // a task's own coroutine
            REQUIRE(c.links.size() == 1);
            CHECK(c.links.front().gen == agen);
        }
        SECTION("not started: it stands for nothing yet") {
            w.mem.put<std::int32_t>(asend + w.at(state), 0);
            CoroutineChain c = w.walker.follow(asend);
            CHECK(c.links.empty());
            CHECK(c.idleWrapper);
            CoroutineChain awaited = w.walker.follow(w.awaiting(asend));
            CHECK(awaited.error.has_value());  // nothing awaits a step that is not running
        }
    }
    SECTION("a class defined in Python that takes the name is not followed") {
        Addr decoy = w.py.object(w.py.type("async_generator_asend", tpflags::kHeapType), 48);
        w.mem.put<Addr>(decoy + w.at(w.L.callable.wrapped), inner);
        w.mem.put<std::int32_t>(decoy + w.at(state), 1);
        CoroutineChain chain = w.walker.follow(w.awaiting(decoy));
        REQUIRE_FALSE(chain.error.has_value());
        CHECK(chain.links.size() == 1);
        CHECK(chain.awaited == decoy);
    }
}

TEST_CASE("links that cannot belong together end the chain with an error", "[coroutines]") {
    World w;
    Addr bottom = w.py.object(w.py.type("Sleeper", 0), 32);

    SECTION("the awaited coroutine was freed") {
        Addr inner = w.awaiting(bottom);
        w.mem.put<std::uint64_t>(inner, 0x00007f0012345678);  // an allocator link where the count was
        CHECK(w.walker.follow(w.awaiting(inner)).error.has_value());
    }
    SECTION("the awaited coroutine has not started") {
        Addr inner = w.gen(0, static_cast<std::int8_t>(w.L.frameState.created));
        CHECK(w.walker.follow(w.awaiting(inner)).error.has_value());
    }
    SECTION("the awaited coroutine runs while its awaiter is suspended") {
        Addr inner = w.gen(0, static_cast<std::int8_t>(w.L.frameState.executing));
        CHECK(w.walker.follow(w.awaiting(inner)).error.has_value());
    }
    SECTION("a frame that its generator does not own") {
        Addr inner = w.awaiting(bottom);
        w.mem.put<std::uint8_t>(inner + w.at(w.L.gen.frame) + w.at(w.L.frame.owner), 0);
        CHECK(w.walker.follow(w.awaiting(inner)).error.has_value());
    }
    SECTION("a loop") {
        Addr a = w.awaiting(0);
        Addr b = w.awaiting(a);
        w.mem.put<Addr>(a + w.at(w.L.gen.frame) + w.at(w.L.frame.localsplus), b);
        CHECK(w.walker.follow(a).error.has_value());
    }
    SECTION("a running task's chain is fine") {
        Addr top = w.gen(0, static_cast<std::int8_t>(w.L.frameState.executing));
        CoroutineChain chain = w.walker.follow(top);
        CHECK_FALSE(chain.error.has_value());
        CHECK(chain.executing);
    }
}

TEST_CASE("a witness tells whether what a record was built from still holds", "[witness]") {
    FakeMemory mem;
    Addr a = mem.alloc(64);
    mem.put<std::uint64_t>(a, 1);            // a reference count
    mem.put<std::uint64_t>(a + 8, 0x1234);
    mem.put<std::uint8_t>(a + 16, 0xfe);
    Witness w;
    w.expect(a + 8, 0x1234);
    w.expect(a + 16, 0xfe, 1);
    w.expectAlive(a);
    CHECK(w.holds(mem));
    mem.put<std::uint64_t>(a, 7);  // counts move: still alive
    CHECK(w.holds(mem));
    mem.put<std::uint8_t>(a + 17, 0x55);  // beyond the one byte looked at
    CHECK(w.holds(mem));
    mem.put<std::uint8_t>(a + 16, 0);
    CHECK_FALSE(w.holds(mem));
    mem.put<std::uint8_t>(a + 16, 0xfe);
    mem.put<std::uint64_t>(a, 0);  // freed
    CHECK_FALSE(w.holds(mem));

    Witness other;
    other.expect(0xdead0000, 1);  // unmapped: not holding
    std::vector<const Witness*> both{&w, &other};
    mem.put<std::uint64_t>(a, 1);
    CHECK(Witness::check(mem, both) == std::vector<bool>{true, false});
}
