// Frame walking over hand-built frames and code objects: C entry frames and
// incomplete frames are skipped, lines come from each code's table, and a
// torn or looping chain ends the walk with an error instead of hanging.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "fake_memory.h"
#include "fake_python.h"
#include "layout/tables.h"
#include "mem/page_cache.h"
#include "remote/objects.h"
#include "test_data.h"
#include "walk/code.h"
#include "walk/frames.h"

using namespace aioscope;
using aioscope::test::FakeMemory;
using aioscope::test::FakePython;
using aioscope::test::recordedLayout;
using Bytes = std::vector<std::uint8_t>;

namespace {

constexpr Addr kUnmapped = 0xdead0000;
// Frame owners. 3 is FRAME_OWNED_BY_CSTACK on 3.12/3.13 and
// FRAME_OWNED_BY_INTERPRETER on 3.14+, where CSTACK is 4: none is shown.
constexpr std::uint8_t kOwnedByThread = 0, kOwnedByGenerator = 1, kOwnedByCStack = 3, kOwnedByCStack314 = 4;

// Location table (3.11+): unit 0 on the first line (RESUME), units 1-2 one
// line down, units 3-4 another line down (code 11: one-line form, delta 1).
const Bytes kLocations = {0x80, 0x00, 0xd9, 0x00, 0x04, 0xd9, 0x00, 0x04};
// PEP 626 table (3.10): bytes 0-3 on firstLine + 1, bytes 4-7 on firstLine + 2.
const Bytes kPep626 = {4, 1, 4, 1};

struct World {
    // `cached`: the walker reads through a page cache fetching a page per
    // miss, as a dump's does.
    explicit World(Layout layout, bool cached = false)
        : L(std::move(layout)), py(mem, L), cache(mem, 4096, 1),
          remote(cached ? static_cast<MemoryReader&>(cache) : mem), objects(remote, L), codes(objects),
          walker(codes, objects), codeType(py.type("code", 0)), frameType(py.type("frame", 0)) {}
    Layout L;
    FakeMemory mem;
    FakePython py;
    PageCache cache;
    Remote remote;
    Objects objects;
    CodeReader codes;
    FrameWalker walker;
    Addr codeType, frameType;

    Addr at(Off off) const { return static_cast<Addr>(off); }

    Addr code(const char* name, const char* qualname, int firstLine, std::int32_t firstTraceable = 0) {
        bool pep626 = L.lineTable == LineTableFormat::pep626;
        Addr c = py.object(codeType, static_cast<std::size_t>(L.code.size) + 64);
        mem.put<Addr>(c + at(L.code.name), py.str(name));
        mem.put<Addr>(c + at(L.code.filename), py.str("/app/tasks.py"));
        if (L.code.qualname != kAbsent) mem.put<Addr>(c + at(L.code.qualname), py.str(qualname));
        mem.put<std::int32_t>(c + at(L.code.firstlineno), firstLine);
        if (L.code.firstTraceable != kAbsent) mem.put<std::int32_t>(c + at(L.code.firstTraceable), firstTraceable);
        mem.put<Addr>(c + at(L.code.linetable), py.bytes(pep626 ? kPep626 : kLocations));
        if (pep626) mem.put<Addr>(c + at(L.code.coCode), py.bytes(Bytes(16, 0)));
        return c;
    }

    // A _PyInterpreterFrame (3.11+) at `f` executing code unit `unit` of `c`.
    void iframe(Addr f, Addr c, int unit, std::uint8_t owner, Addr previous, Addr codeTag = 0) {
        mem.put<Addr>(f + at(L.frame.code), c | codeTag);
        mem.put<Addr>(f + at(L.frame.previous), previous);
        mem.put<Addr>(f + at(L.frame.instr), c + at(L.code.codeAdaptive) + 2 * static_cast<Addr>(unit));
        mem.put<std::uint8_t>(f + at(L.frame.owner), owner);
    }
    Addr iframe(Addr c, int unit, std::uint8_t owner, Addr previous) {
        Addr f = mem.alloc(static_cast<std::size_t>(L.frame.size));
        iframe(f, c, unit, owner, previous);
        return f;
    }
};

std::vector<Frame> framesOf(const WalkedStack& s) {
    std::vector<Frame> out;
    for (const auto& f : s.frames) out.push_back(f.frame);
    return out;
}

}  // namespace

TEST_CASE("3.12 frames: C entry frames skipped, lines from each code", "[frames]") {
    World w(staticLayout(12).value());
    Addr outer = w.code("main", "main", 20);
    Addr inner = w.code("step", "Worker.step", 40);
    Addr f3 = w.iframe(outer, 1, kOwnedByThread, 0);
    Addr f2 = w.iframe(outer, 0, kOwnedByCStack, f3);  // the C stack's entry frame
    Addr f1 = w.iframe(inner, 3, kOwnedByThread, f2);

    WalkedStack s = w.walker.walk(f1);
    CHECK_FALSE(s.error.has_value());
    CHECK_FALSE(s.truncated);
    CHECK(framesOf(s) == std::vector<Frame>{{"step", "Worker.step", "/app/tasks.py", 42},
                                            {"main", "main", "/app/tasks.py", 21}});
    REQUIRE(s.frames.size() == 2);
    CHECK(s.frames[0].addr == f1);
    CHECK(s.frames[1].addr == f3);
    CHECK(s.frames[1].gen == 0);
}

TEST_CASE("a generator's frame knows its generator", "[frames]") {
    World w(staticLayout(12).value());
    Addr c = w.code("coro", "coro", 5);
    Addr gen = w.py.object(w.py.type("coroutine", 0), 200);
    Addr embedded = gen + w.at(w.L.gen.frame);  // gi_iframe lives inside the object
    w.iframe(embedded, c, 4, kOwnedByGenerator, 0);
    WalkedStack s = w.walker.walk(embedded);
    REQUIRE(s.frames.size() == 1);
    CHECK(s.frames[0].gen == gen);
    CHECK(s.frames[0].frame.line == 7);
}

TEST_CASE("frames still in their prologue are hidden", "[frames]") {
    World w(staticLayout(12).value());
    Addr c = w.code("f", "f", 1, 2);  // _co_firsttraceable = 2
    Addr early = w.iframe(c, 1, kOwnedByThread, 0);
    CHECK(w.walker.walk(early).frames.empty());
    Addr later = w.iframe(c, 2, kOwnedByThread, 0);
    CHECK(w.walker.walk(later).frames.size() == 1);
}

TEST_CASE("3.14 frames: tagged code references and the wider frame", "[frames]") {
    World w(recordedLayout(14));
    Addr c = w.code("handler", "Server.handler", 100);
    Addr f2 = w.iframe(c, 1, kOwnedByThread, 0);
    Addr f1 = w.mem.alloc(static_cast<std::size_t>(w.L.frame.size));
    w.iframe(f1, c, 4, kOwnedByThread, f2, 1);  // _PyStackRef with a tag bit
    Addr shim = w.iframe(c, 0, kOwnedByCStack, f1);
    Addr entry = w.iframe(c, 0, kOwnedByCStack314, shim);
    WalkedStack s = w.walker.walk(entry);
    CHECK_FALSE(s.error.has_value());
    CHECK(framesOf(s) == std::vector<Frame>{{"handler", "Server.handler", "/app/tasks.py", 102},
                                            {"handler", "Server.handler", "/app/tasks.py", 101}});
}

TEST_CASE("3.10 frame objects", "[frames]") {
    World w(staticLayout(10).value());
    Addr c = w.code("legacy", "legacy", 10);
    auto frameObject = [&](std::int32_t lasti, Addr back) {
        Addr f = w.py.object(w.frameType, static_cast<std::size_t>(w.L.frame.size));
        w.mem.put<Addr>(f + w.at(w.L.frame.previous), back);
        w.mem.put<Addr>(f + w.at(w.L.frame.code), c);
        w.mem.put<std::int32_t>(f + w.at(w.L.frame.instr), lasti);
        return f;
    };
    Addr outer = frameObject(-1, 0);  // not started: co_firstlineno
    Addr inner = frameObject(3, outer);  // f_lasti 3 = byte 6
    CHECK(framesOf(w.walker.walk(inner)) == std::vector<Frame>{{"legacy", "legacy", "/app/tasks.py", 12},
                                                              {"legacy", "legacy", "/app/tasks.py", 10}});

    Addr notAFrame = w.py.str("x");
    WalkedStack s = w.walker.walk(frameObject(0, notAFrame));
    CHECK(s.frames.size() == 1);
    CHECK(s.error.has_value());
}

TEST_CASE("broken chains end the walk with an error", "[frames]") {
    World w(staticLayout(12).value());
    Addr c = w.code("f", "f", 1);

    SECTION("a loop") {
        Addr a = w.mem.alloc(80), b = w.mem.alloc(80);
        w.iframe(a, c, 1, kOwnedByThread, b);
        w.iframe(b, c, 3, kOwnedByThread, a);
        WalkedStack s = w.walker.walk(a);
        REQUIRE(s.error.has_value());
        CHECK(s.error->find("loops") != std::string::npos);
        CHECK(s.frames.size() == 2);
    }
    SECTION("a loop through hidden frames only") {
        Addr a = w.mem.alloc(80);
        w.iframe(a, c, 0, kOwnedByCStack, a);
        WalkedStack s = w.walker.walk(a);
        CHECK(s.error.has_value());
        CHECK(s.frames.empty());
    }
    SECTION("a torn previous pointer") {
        Addr a = w.iframe(c, 1, kOwnedByThread, kUnmapped);
        WalkedStack s = w.walker.walk(a);
        CHECK(s.error.has_value());
        CHECK(s.frames.size() == 1);
    }
    SECTION("a code pointer that is not a code object") {
        Addr a = w.mem.alloc(80);
        w.iframe(a, w.py.str("code"), 1, kOwnedByThread, 0);
        WalkedStack s = w.walker.walk(a);
        CHECK(s.error.has_value());
        CHECK(s.frames.empty());
    }
    SECTION("more frames than allowed") {
        Addr f3 = w.iframe(c, 1, kOwnedByThread, 0);
        Addr f2 = w.iframe(c, 1, kOwnedByThread, f3);
        Addr f1 = w.iframe(c, 1, kOwnedByThread, f2);
        WalkedStack s = w.walker.walk(f1, 2);
        CHECK(s.truncated);
        CHECK_FALSE(s.error.has_value());
        REQUIRE(s.frames.size() == 2);
        CHECK(s.frames[0].addr == f1);  // the innermost are kept
        CHECK(s.omitted == 1);
    }
}

TEST_CASE("code objects are read once and checked", "[frames][code]") {
    World w(staticLayout(12).value());
    Addr c = w.code("f", "Q.f", 7, 1);
    const CodeInfo& info = w.codes.get(c);
    CHECK(info.name == "f");
    CHECK(info.qualname == "Q.f");
    CHECK(info.filename == "/app/tasks.py");
    CHECK(info.firstLine == 7);
    CHECK(info.firstTraceable == 1);
    CHECK(info.lineTable == kLocations);
    CHECK(info.bytecode == c + 192);
    CHECK(w.codes.line(info, -1) == 7);
    CHECK(w.codes.line(info, 0) == 7);
    CHECK(w.codes.line(info, 4) == 9);
    CHECK(w.codes.line(info, 5) == std::nullopt);

    CHECK_THROWS_AS(w.codes.get(0), BadRead);
    CHECK_THROWS_AS(w.codes.get(kUnmapped), BadRead);
    CHECK_THROWS_AS(w.codes.get(w.py.str("code")), BadRead);
    Addr nameless = w.code("g", "g", 1);
    w.mem.put<Addr>(nameless + 120, 0);
    CHECK_THROWS_AS(w.codes.get(nameless), BadRead);
}

TEST_CASE("a stack's code objects and their strings are fetched in two batches", "[frames][prefetch]") {
    World w(staticLayout(12).value(), true);
    // Six frames in one chunk of the thread's data stack, each running its own code.
    constexpr int kFrames = 6;
    std::size_t frameSize = static_cast<std::size_t>(w.L.frame.size);
    Addr chunk = w.mem.alloc(frameSize * kFrames);
    Addr previous = 0;
    std::vector<Frame> expected;
    for (int i = kFrames - 1; i >= 0; --i) {
        std::string n = "f" + std::to_string(i);
        Addr f = chunk + static_cast<Addr>(i) * frameSize;
        w.iframe(f, w.code(n.c_str(), ("Q." + n).c_str(), 10 * i), 1, kOwnedByThread, previous);
        previous = f;
        expected.insert(expected.begin(), Frame{n, "Q." + n, "/app/tasks.py", 10 * i + 1});
    }
    w.mem.resetCounts();
    WalkedStack s = w.walker.walk(chunk);
    CHECK_FALSE(s.error.has_value());
    CHECK(framesOf(s) == expected);
    // Code objects, then names, file names and line tables: one batch each
    // (read one page per miss, they would be 6 + 6 * 4 calls).
    CHECK(w.mem.readManyCalls() == 2);

    SECTION("a code pointer into nothing: the walk says so, as without the batches") {
        w.cache.clear();
        w.codes.clear();
        w.mem.put<Addr>(chunk + 2 * frameSize + w.at(w.L.frame.code), kUnmapped);
        WalkedStack torn = w.walker.walk(chunk);
        REQUIRE(torn.error.has_value());
        CHECK(torn.frames.size() == 2);
    }

    // Frames 3 to 5 given code objects of their own, whose addresses (and
    // their names') the walk must never read when it ends before them.
    auto unreachedCodes = [&] {
        std::vector<Addr> out;
        for (int i = 3; i < kFrames; ++i) {
            Addr c = w.code("late", "Q.late", 1);
            Addr name = w.py.str(("late" + std::to_string(i)).c_str());
            w.mem.put<Addr>(c + w.at(w.L.code.name), name);
            w.mem.put<Addr>(chunk + static_cast<Addr>(i) * frameSize + w.at(w.L.frame.code), c);
            out.push_back(c);
            out.push_back(name);
        }
        return out;
    };
    auto neverRead = [&](const std::vector<Addr>& addrs) {
        for (auto [addr, len] : w.mem.reads()) {
            for (Addr a : addrs) CHECK_FALSE((addr <= a && a < addr + len));
        }
    };

    SECTION("a code pointer to something else: the batches stop where the walk does") {
        w.cache.clear();
        w.codes.clear();
        w.mem.put<Addr>(chunk + 2 * frameSize + w.at(w.L.frame.code), w.py.str("not code"));
        std::vector<Addr> unreached = unreachedCodes();
        w.mem.resetCounts();
        WalkedStack torn = w.walker.walk(chunk);
        REQUIRE(torn.error.has_value());
        CHECK(torn.frames.size() == 2);
        // The code objects past it are read in the batch (the chase cannot
        // know), their names are not.
        neverRead({unreached[1], unreached[3], unreached[5]});
    }

    SECTION("a link that is not a frame's address ends the chase and the walk there") {
        w.cache.clear();
        w.codes.clear();
        std::vector<Addr> unreached = unreachedCodes();
        // A well-formed frame, at an address no frame can have.
        Addr odd = w.mem.alloc(frameSize + 8) + 3;
        w.iframe(odd, unreached[0], 1, kOwnedByThread, chunk + 4 * frameSize);
        w.mem.put<Addr>(chunk + 1 * frameSize + w.at(w.L.frame.previous), odd);
        w.mem.resetCounts();
        WalkedStack torn = w.walker.walk(chunk);
        REQUIRE(torn.error.has_value());
        CHECK(torn.frames.size() == 2);
        neverRead(unreached);
    }
}
