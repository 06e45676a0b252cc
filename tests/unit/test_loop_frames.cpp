// Where a callback begins in a loop thread's stack, and whether a later read
// during the same callback is still in the step an earlier one saw (how a
// stall whose task let go just before the read at the crossing keeps it).
#include <catch2/catch.hpp>

#include "loop_frames.h"

using namespace aioscope;
using aioscope::agent::handleRunFrame;
using aioscope::agent::sameStep;
using Report = aioscope::SnapshotReader::ThreadReport;

namespace {

const char* kEvents = "/usr/lib/python3.11/asyncio/events.py";
const char* kBase = "/usr/lib/python3.11/asyncio/base_events.py";
const char* kRunners = "/usr/lib/python3.11/asyncio/runners.py";

struct F {
    const char* function;
    const char* qualname;
    const char* file;
    std::uint64_t addr;
};

// Innermost first, as the reader gives them.
Report report(std::initializer_list<F> frames) {
    Report r;
    for (const auto& f : frames) {
        r.thread.frames.push_back(Frame{f.function, f.qualname, f.file, 1});
        r.frameAddrs.push_back(f.addr);
    }
    return r;
}

// The loop around every step: Handle._run, called by the loop's own frames.
const F kRun{"_run", "Handle._run", kEvents, 0x500};
const F kOnce{"_run_once", "BaseEventLoop._run_once", kBase, 0x400};
const F kForever{"run_forever", "BaseEventLoop.run_forever", kBase, 0x300};
const F kMain{"<module>", "<module>", "app.py", 0x100};

}  // namespace

TEST_CASE("handleRunFrame is the outermost Handle._run, or under uvloop the frame the runner's loop called") {
    auto r = report({{"spin", "spin", "app.py", 0x700}, {"step", "step", "app.py", 0x600}, kRun, kOnce, kForever, kMain});
    CHECK(handleRunFrame(r) == 2u);
    auto nested = report({{"inner", "inner", "app.py", 0x900}, kRun, kOnce, {"outer", "outer", "app.py", 0x600},
                          {"_run", "Handle._run", kEvents, 0x550}, kOnce, kMain});
    CHECK(handleRunFrame(nested) == 4u);
    auto uv = report({{"spin", "spin", "app.py", 0x700}, {"handler", "handler", "app.py", 0x600},
                      {"run", "Runner.run", kRunners, 0x200}, kMain});
    CHECK(handleRunFrame(uv) == 1u);
    CHECK_FALSE(handleRunFrame(report({{"main", "main", "app.py", 0x100}})));
}

TEST_CASE("sameStep: the same frames from the outermost down to the step's body") {
    auto atSample = report({{"spin_until", "spin_until", "app.py", 0x800}, {"edge_step", "edge_step", "app.py", 0x700},
                            {"edge_task", "edge_task", "app.py", 0xc0de}, kRun, kOnce, kForever, kMain});
    SECTION("deeper or shallower inside the same body") {
        auto later = report({{"edge_step", "edge_step", "app.py", 0x700}, {"edge_task", "edge_task", "app.py", 0xc0de},
                             kRun, kOnce, kForever, kMain});
        CHECK(sameStep(atSample, later));
        auto deeper = report({{"monotonic", "monotonic", "x.py", 0x900}, {"spin_until", "spin_until", "app.py", 0x800},
                              {"edge_step", "edge_step", "app.py", 0x700}, {"edge_task", "edge_task", "app.py", 0xc0de},
                              kRun, kOnce, kForever, kMain});
        CHECK(sameStep(atSample, deeper));
    }
    SECTION("the body has returned: only Handle._run and the loop are left") {
        CHECK_FALSE(sameStep(atSample, report({kRun, kOnce, kForever, kMain})));
    }
    SECTION("another coroutine's body at that depth") {
        auto other = report({{"other_task", "other_task", "app.py", 0xbeef}, kRun, kOnce, kForever, kMain});
        CHECK_FALSE(sameStep(atSample, other));
    }
    SECTION("a frame at the same address running other code (3.11+ reuses frame slots)") {
        auto reused = report({{"cleanup", "cleanup", "app.py", 0xc0de}, kRun, kOnce, kForever, kMain});
        CHECK_FALSE(sameStep(atSample, reused));
    }
    SECTION("a different Handle._run frame (another callback at the same place)") {
        auto again = report({{"edge_task", "edge_task", "app.py", 0xc0de}, {"_run", "Handle._run", kEvents, 0x510},
                             kOnce, kForever, kMain});
        CHECK_FALSE(sameStep(atSample, again));
    }
    SECTION("no loop in the earlier read: nothing to match") {
        CHECK_FALSE(sameStep(report({{"main", "main", "app.py", 0x100}}), atSample));
    }
}

TEST_CASE("sameStep in a nested loop compares the innermost step") {
    auto sample = report({{"inner_task", "inner_task", "app.py", 0xa00}, {"_run", "Handle._run", kEvents, 0x900},
                          kOnce, {"outer_cb", "outer_cb", "app.py", 0x600}, kRun, kOnce, kMain});
    auto sameInner = report({{"sleepy", "sleepy", "app.py", 0xb00}, {"inner_task", "inner_task", "app.py", 0xa00},
                             {"_run", "Handle._run", kEvents, 0x900}, kOnce, {"outer_cb", "outer_cb", "app.py", 0x600},
                             kRun, kOnce, kMain});
    CHECK(sameStep(sample, sameInner));
    // The outer callback is the same; the inner step is another one.
    auto nextInner = report({{"next_task", "next_task", "app.py", 0xa80}, {"_run", "Handle._run", kEvents, 0x900},
                             kOnce, {"outer_cb", "outer_cb", "app.py", 0x600}, kRun, kOnce, kMain});
    CHECK_FALSE(sameStep(sample, nextInner));
}

TEST_CASE("inStepBody: a callback's Python body is under way") {
    using aioscope::agent::inStepBody;
    CHECK(inStepBody(report({{"spin", "spin", "app.py", 0x700}, kRun, kOnce, kForever, kMain})));
    // The body returned (or a C callback): Handle._run is innermost.
    CHECK_FALSE(inStepBody(report({kRun, kOnce, kForever, kMain})));
    // Between callbacks, in the loop's own code.
    CHECK_FALSE(inStepBody(report({{"select", "EpollSelector.select", "/usr/lib/python3.11/selectors.py", 0x480},
                                   kOnce, kForever, kMain})));
    // uvloop: the frame its runner's loop called.
    CHECK(inStepBody(report({{"handler", "handler", "app.py", 0x600}, {"run", "Runner.run", kRunners, 0x200}, kMain})));
    CHECK_FALSE(inStepBody(report({{"run", "Runner.run", kRunners, 0x200}, kMain})));
}
