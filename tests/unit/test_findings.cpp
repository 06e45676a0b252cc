// The analyses over hand-built snapshots: cycles (every cycle of a group of
// tasks, a task waiting for itself), orphaned waits, ignored cancellations,
// what does not count as evidence (tasks read torn, waits already over), and
// the confirmation of findings by a second read.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "analysis/confirm.h"
#include "analysis/findings.h"

using namespace aioscope;

namespace {

Task task(std::uint64_t id, const char* name) {
    Task t;
    t.id = id;
    t.name = name;
    t.stack = std::make_shared<Stack>(Stack{{"f", "f", "/app.py", 1}});
    return t;
}

Awaiting awaitsTask(std::uint64_t other) {
    Awaiting a;
    a.kind = "task";
    a.address = other;
    a.task = other;
    return a;
}

Awaiting orphanEvent(std::uint64_t event) {
    Awaiting a;
    a.kind = "event";
    a.address = 0x900;
    a.object = event;
    a.objectType = "Event";
    a.externalRefs = 0;
    return a;
}

std::set<std::set<std::uint64_t>> cyclesOf(const std::vector<Finding>& findings) {
    std::set<std::set<std::uint64_t>> out;
    for (const auto& f : findings) {
        if (f.kind == "await-cycle") out.insert({f.tasks.begin(), f.tasks.end()});
    }
    return out;
}

}  // namespace

TEST_CASE("two cycles sharing a task are two findings", "[findings]") {
    // A awaits B, B gathers A and C, C awaits D, D awaits B (test_tools).
    Snapshot s;
    Task a = task(1, "A"), b = task(2, "B"), c = task(3, "C"), d = task(4, "D");
    a.awaiting = awaitsTask(2);
    c.awaiting = awaitsTask(4);
    d.awaiting = awaitsTask(2);
    b.awaiting = Awaiting{"gather", 0x50, "_GatheringFuture"};
    a.awaitedBy = {2};
    c.awaitedBy = {2};
    s.tasks = {a, b, c, d};
    auto findings = analyze(s);
    CHECK(cyclesOf(findings) == std::set<std::set<std::uint64_t>>{{1, 2}, {2, 3, 4}});
    CHECK(std::all_of(findings.begin(), findings.end(), isDeadlock));
}

TEST_CASE("a task that gathers itself is a deadlock of one", "[findings]") {
    Snapshot s;
    Task t = task(7, "S");
    t.awaiting = Awaiting{"gather", 0x70, "_GatheringFuture"};
    t.awaitedBy = {7};
    s.tasks = {t};
    auto findings = analyze(s);
    REQUIRE(findings.size() == 1);
    CHECK(findings[0].kind == "await-cycle");
    CHECK(findings[0].tasks == std::vector<std::uint64_t>{7});
}

TEST_CASE("what was not read consistently, or is over, is no evidence", "[findings]") {
    Snapshot s;
    Task a = task(1, "A"), b = task(2, "B");
    a.awaiting = awaitsTask(2);
    b.awaiting = awaitsTask(1);
    Task orphan = task(3, "orphan");
    orphan.awaiting = orphanEvent(0x800);
    Task cancelled = task(4, "cancelled");
    cancelled.cancelRequests = 1;
    cancelled.awaiting = orphanEvent(0x801);
    cancelled.awaiting->externalRefs = 1;
    s.tasks = {a, b, orphan, cancelled};
    auto all = analyze(s);
    REQUIRE(all.size() == 3);

    SECTION("a torn task takes no part") {
        s.tasks[1].error = "it changed while it was read";
        s.tasks[2].error = "it changed while it was read";
        s.tasks[3].error = "it changed while it was read";
        CHECK(analyze(s).empty());
    }
    SECTION("a wait that is over") {
        s.tasks[0].awaiting->done = true;
        s.tasks[2].awaiting->done = true;
        s.tasks[3].awaiting->done = true;
        CHECK(analyze(s).empty());
    }
}

TEST_CASE("only findings seen by both reads are confirmed", "[findings][confirm]") {
    Snapshot first, second;
    Finding cycle{"await-cycle", {1, 2}, {}, "Await cycle: 'A' awaits 'B', 'B' awaits 'A'"};
    Finding cycleOtherStart{"await-cycle", {2, 1}, {}, "Await cycle: 'B' awaits 'A', 'A' awaits 'B'"};
    Finding orphan{"orphaned-wait", {3}, {0x800}, "orphan"};
    Finding gone{"orphaned-wait", {4}, {0x801}, "went away"};
    first.findings = {cycle, orphan, gone};
    second.findings = {cycleOtherStart, Finding{"orphaned-wait", {3}, {0x999}, "another object"}};
    confirmFindings(first, second);
    REQUIRE(second.findings.size() == 1);
    CHECK(second.findings[0].kind == "await-cycle");
    REQUIRE(second.warnings.size() == 1);
    CHECK(second.warnings[0].find("3 findings were seen in only one of two reads") == 0);

    Snapshot again = first;
    confirmFindings(first, again);
    CHECK(again.findings.size() == 3);
    CHECK(again.warnings.empty());
}
