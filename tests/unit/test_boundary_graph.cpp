// The wait-for graph across tasks and threads over hand-built snapshots: the
// cross-thread cycles and what is not one (a wait someone outside the cycle
// could complete, a thread read torn), a loop blocked on itself, a starved
// pool, the JSON round trip of the new fields, and their confirmation.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <sstream>

#include "analysis/confirm.h"
#include "analysis/findings.h"
#include "model/snapshot_json.h"

using namespace aioscope;

namespace {

Task task(std::uint64_t id, const char* name, std::uint64_t loop = 0x10) {
    Task t;
    t.id = id;
    t.name = name;
    t.loop = loop;
    t.stack = std::make_shared<Stack>(Stack{{"f", "f", "/app.py", 1}});
    return t;
}

Thread thread(std::uint64_t id, const char* name) {
    Thread t;
    t.threadId = id;
    t.name = name;
    t.frames = {{"g", "g", "/app.py", 2}};
    return t;
}

ThreadWait lockWait(std::uint64_t lock, std::optional<std::uint64_t> owner) {
    ThreadWait w;
    w.kind = "lock";
    w.object = lock;
    w.objectType = "_thread.lock";
    w.owner = owner;
    return w;
}

// handler -> worker 7 (executor) -> lock held by 8 -> 8 in .result() for reload -> reload awaits handler.
Snapshot crossDeadlock() {
    Snapshot s;
    Task handler = task(0x100, "handler"), reload = task(0x200, "reload");
    Awaiting ex;
    ex.kind = "executor";
    ex.address = 0x300;
    ex.editDetail().concurrentFuture = 0x310;
    ex.editDetail().thread = 7;
    handler.awaiting = ex;
    Awaiting aw;
    aw.kind = "task";
    aw.address = aw.task.emplace(0x100);
    reload.awaiting = aw;
    Thread worker = thread(7, "asyncio_0"), refresher = thread(8, "config-refresher");
    worker.waiting = lockWait(0x400, 8);
    worker.worker = WorkerInfo{0x500, 1, 0x510, 0x310, {0x100}};
    ThreadWait r;
    r.kind = "future-result";
    r.object = 0x600;
    r.objectType = "Future";
    r.task = 0x200;
    r.loop = 0x10;
    refresher.waiting = r;
    refresher.holds = {0x400};
    Thread main = thread(9, "MainThread");
    main.loop = 0x10;
    s.threads = {worker, refresher, main};
    s.tasks = {handler, reload};
    return s;
}

std::vector<Finding> ofKind(const std::vector<Finding>& all, const std::string& kind) {
    std::vector<Finding> out;
    std::copy_if(all.begin(), all.end(), std::back_inserter(out), [&](const Finding& f) { return f.kind == kind; });
    return out;
}

}  // namespace

TEST_CASE("a cycle through tasks and threads is one cross-deadlock, step by step", "[boundary]") {
    auto found = ofKind(analyze(crossDeadlock()), "cross-deadlock");
    REQUIRE(found.size() == 1);
    const Finding& f = found[0];
    CHECK(std::set<std::uint64_t>(f.tasks.begin(), f.tasks.end()) == std::set<std::uint64_t>{0x100, 0x200});
    CHECK(std::set<std::uint64_t>(f.threads.begin(), f.threads.end()) == std::set<std::uint64_t>{7, 8});
    CHECK(isDeadlock(f));
    for (const char* step : {"waits for _thread.lock 0x400 held by thread 8", "waits in Future.result()",
                             "task 'reload'", "awaits executor work"}) {
        CHECK(f.message.find(step) != std::string::npos);
    }
}

TEST_CASE("a cycle through a thread is found however far it goes, among tasks no thread waits for", "[boundary]") {
    // reload awaits a chain of 5,000 tasks whose last awaits the handler; 20,000
    // other tasks await each other in a cycle no thread is part of (findings.h's
    // await-cycle, not this graph's).
    Snapshot s = crossDeadlock();
    std::uint64_t next = 0x100;
    for (std::uint64_t i = 0; i < 5000; ++i) {
        Task link = task(0x10000 + i * 0x100, "link");
        Awaiting aw;
        aw.kind = "task";
        aw.address = aw.task.emplace(next);
        link.awaiting = aw;
        next = link.id;
        s.tasks.push_back(link);
    }
    s.tasks[1].awaiting->address = *(s.tasks[1].awaiting->task = next);  // reload
    for (std::uint64_t i = 0; i < 20000; ++i) {
        Task other = task(0x10000000 + i * 0x100, "other");
        Awaiting aw;
        aw.kind = "task";
        aw.address = aw.task.emplace(0x10000000 + ((i + 1) % 20000) * 0x100);
        other.awaiting = aw;
        s.tasks.push_back(other);
    }
    auto found = ofKind(analyze(s), "cross-deadlock");
    REQUIRE(found.size() == 1);
    CHECK(found[0].tasks.size() == 5002);
    CHECK(std::set<std::uint64_t>(found[0].threads.begin(), found[0].threads.end()) == std::set<std::uint64_t>{7, 8});
}

TEST_CASE("no cross-deadlock when a link is missing or unreliable", "[boundary]") {
    SECTION("the lock's holder is unknown") {
        Snapshot s = crossDeadlock();
        s.threads[0].waiting->owner.reset();
        CHECK(ofKind(analyze(s), "cross-deadlock").empty());
    }
    SECTION("a thread was read torn") {
        Snapshot s = crossDeadlock();
        s.threads[1].error = "torn";
        CHECK(ofKind(analyze(s), "cross-deadlock").empty());
    }
    SECTION("the awaited future is done") {
        Snapshot s = crossDeadlock();
        s.tasks[0].awaiting->done = true;
        CHECK(ofKind(analyze(s), "cross-deadlock").empty());
    }
}

TEST_CASE("an Event only the cycle references closes it; one referenced elsewhere does not", "[boundary]") {
    Snapshot s = crossDeadlock();
    Awaiting ev;
    ev.kind = "event";
    ev.address = 0x700;
    ev.object = 0x710;
    ev.objectType = "Event";
    ev.externalRefs = 2;
    ev.editDetail().referencedBy = Awaiting::ReferencedBy{{0x100}, {8}};
    s.tasks[1].awaiting = ev;
    CHECK(ofKind(analyze(s), "cross-deadlock").size() == 1);
    // The MainThread (not blocked) references it too: it could set it.
    s.tasks[1].awaiting->editDetail().referencedBy->threads.push_back(9);
    CHECK(ofKind(analyze(s), "cross-deadlock").empty());
    // Unknown referrers: no edge at all.
    s.tasks[1].awaiting->editDetail().referencedBy.reset();
    CHECK(ofKind(analyze(s), "cross-deadlock").empty());
}

TEST_CASE("a loop's thread waiting for a coroutine queued on its own loop", "[boundary]") {
    Snapshot s;
    Thread main = thread(9, "MainThread");
    main.loop = 0x10;
    ThreadWait w;
    w.kind = "future-result";
    w.object = 0x600;
    w.objectType = "Future";
    w.queued = true;
    w.loop = 0x10;
    main.waiting = w;
    s.threads = {main};
    auto found = ofKind(analyze(s), "loop-blocked-forever");
    REQUIRE(found.size() == 1);
    CHECK(found[0].threads == std::vector<std::uint64_t>{9});
    // The same wait for a coroutine queued on another thread's loop is not stuck by itself.
    s.threads[0].waiting->loop = 0x20;
    CHECK(analyze(s).empty());
}

TEST_CASE("two threads taking two locks in opposite orders", "[boundary]") {
    Snapshot s;
    Thread a = thread(1, "ab"), b = thread(2, "ba");
    a.waiting = lockWait(0xb, 2);
    a.holds = {0xa};
    b.waiting = lockWait(0xa, 1);
    b.holds = {0xb};
    s.threads = {a, b};
    auto found = ofKind(analyze(s), "thread-deadlock");
    REQUIRE(found.size() == 1);
    CHECK(std::set<std::uint64_t>(found[0].objects.begin(), found[0].objects.end()) == std::set<std::uint64_t>{0xa, 0xb});
}

TEST_CASE("a pool whose workers are all blocked, with work queued behind them", "[boundary]") {
    Snapshot s;
    for (std::uint64_t id : {1, 2}) {
        Thread w = thread(id, "busy");
        w.worker = WorkerInfo{0x500, 2, 0x510 + id, 0x520 + id, {}};
        w.waiting = ThreadWait{"event", 0x900, "Event"};
        s.threads.push_back(w);
    }
    Task q = task(0x100, "queued");
    Awaiting ex;
    ex.kind = "executor";
    ex.address = 0x300;
    ex.editDetail().concurrentFuture = 0x310;
    ex.editDetail().executor = 0x500;
    q.awaiting = ex;
    s.tasks = {q};
    auto found = ofKind(analyze(s), "executor-starved");
    REQUIRE(found.size() == 1);
    CHECK(found[0].tasks == std::vector<std::uint64_t>{0x100});
    CHECK(found[0].objects == std::vector<std::uint64_t>{0x500});
    // A worker that is running (not blocked in a known wait): no finding.
    s.threads[1].waiting.reset();
    CHECK(ofKind(analyze(s), "executor-starved").empty());
    // Or a pool with room for another worker.
    s.threads[1].waiting = ThreadWait{"event", 0x900, "Event"};
    for (auto& t : s.threads) t.worker->maxWorkers = 3;
    CHECK(ofKind(analyze(s), "executor-starved").empty());
}

TEST_CASE("the new fields survive a JSON round trip", "[boundary]") {
    Snapshot s = crossDeadlock();
    s.python.version = "3.12.1";
    s.tasks[0].awaiting->editDetail().referencedBy = Awaiting::ReferencedBy{{0x200}, {8}};
    s.tasks[0].awaiting->editDetail().executor = 0x500;
    s.findings = analyze(s);
    std::ostringstream out;
    writeJson(s, out);
    Snapshot back = snapshotFromJson(nlohmann::json::parse(out.str()));
    REQUIRE(back.threads.size() == s.threads.size());
    for (std::size_t i = 0; i < s.threads.size(); ++i) {
        CHECK(back.threads[i].waiting == s.threads[i].waiting);
        CHECK(back.threads[i].worker == s.threads[i].worker);
        CHECK(back.threads[i].holds == s.threads[i].holds);
        CHECK(back.threads[i].loop == s.threads[i].loop);
    }
    CHECK(back.tasks[0].awaiting == s.tasks[0].awaiting);
    REQUIRE(back.findings.size() == s.findings.size());
    CHECK(back.findings[0].threads == s.findings[0].threads);
}

TEST_CASE("a cross-deadlock seen in one read only is not reported", "[boundary]") {
    Snapshot first = crossDeadlock(), second = crossDeadlock();
    first.findings = analyze(first);
    second.threads[1].holds.clear();  // the refresher released the lock meanwhile
    second.threads[0].waiting->owner.reset();
    second.findings = analyze(second);
    confirmFindings(first, second);
    CHECK(second.findings.empty());
    CHECK_FALSE(second.warnings.empty());
}
