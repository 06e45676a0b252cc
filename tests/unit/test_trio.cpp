// The pieces the trio reader is built from, over hand-built objects: slot
// attributes found through the class's member descriptors (and hostile ones
// rejected), locals by name, the "nobody else can complete this wait"
// reference count, the analysis of trio nursery edges, and the snapshot's
// runtime field.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "analysis/findings.h"
#include "fake_memory.h"
#include "fake_python.h"
#include "layout/tables.h"
#include "layout/trio_layout.h"
#include "model/snapshot_json.h"
#include "remote/fields.h"
#include "walk/coroutines.h"
#include "walk/locals.h"
#include "walk/trio_refs.h"

using namespace aioscope;
using aioscope::test::FakeMemory;
using aioscope::test::FakePython;

namespace {

constexpr int kObjectEx = 16;  // Py_T_OBJECT_EX

struct World {
    explicit World(Layout layout)
        : L(std::move(layout)),
          py(mem, L),
          remote(mem),
          objects(remote, L),
          codes(objects),
          frames(codes, objects),
          coroutines(frames, objects),
          fields(objects) {
        descrType = py.type("member_descriptor", 0);
        cellType = py.type("cell", 0);
        functionType = py.type("function", 0);
        noneType = py.type("NoneType", 0);
        none = py.object(noneType, 16);
    }
    Layout L;
    FakeMemory mem;
    FakePython py;
    Remote remote;
    Objects objects;
    CodeReader codes;
    FrameWalker frames;
    CoroutineWalker coroutines;
    Fields fields;
    Addr descrType, cellType, functionType, noneType, none;

    Addr at(Off off) const { return static_cast<Addr>(off); }

    // A class whose __dict__ maps each name to a member descriptor for `offset`.
    Addr slotClass(const char* name, std::int64_t basicsize,
                   const std::vector<std::pair<const char*, std::int64_t>>& slots, Addr base = 0, int kind = kObjectEx,
                   Addr descrOwner = 0) {
        Addr cls = py.type(name, 0, base);
        mem.put<std::int64_t>(cls + at(L.type.basicsize), basicsize);
        std::vector<FakePython::Entry> entries;
        for (const auto& [slot, offset] : slots) {
            Addr def = mem.alloc(40);
            mem.put<Addr>(def, py.cString(slot));
            mem.put<std::int32_t>(def + at(L.member.defType), kind);
            mem.put<std::int64_t>(def + at(L.member.defOffset), offset);
            Addr descr = py.object(descrType, 64);
            mem.put<Addr>(descr + at(L.member.descrType), descrOwner ? descrOwner : cls);
            mem.put<Addr>(descr + at(L.member.descrMember), def);
            entries.push_back({py.str(slot), descr});
        }
        mem.put<Addr>(cls + at(L.type.dict), py.dict(py.dictKeys(entries, true)));
        return cls;
    }

    Addr withRefcount(Addr obj, std::int64_t rc) {
        mem.put<std::int64_t>(obj, rc);
        return obj;
    }
    Addr cell(Addr contents, std::int64_t rc) {
        Addr c = py.object(cellType, 24);
        mem.put<Addr>(c + at(L.callable.cellRef), contents);
        return withRefcount(c, rc);
    }
    Addr function(Addr closure, std::int64_t rc) {
        Addr f = py.object(functionType, 160);
        mem.put<Addr>(f + at(L.callable.closure), closure);
        return withRefcount(f, rc);
    }
    // A suspended frame whose locals and value stack are `slots`.
    CoroutineChain chainOver(const std::vector<Addr>& slots) {
        Addr base = mem.alloc(8 * slots.size() + 8);
        for (std::size_t i = 0; i < slots.size(); ++i) mem.put<Addr>(base + 8 * i, slots[i]);
        ChainLink link;
        link.frame.locals = base;
        link.frame.stackBase = base;
        link.frame.stackTop = base + 8 * slots.size();
        link.state = L.frameState.suspended;
        CoroutineChain chain;
        chain.links.push_back(link);
        return chain;
    }
};

}  // namespace

TEST_CASE("slot attributes come from the class's member descriptors", "[trio][fields]") {
    World w(staticLayout(12).value());
    Addr base = w.slotClass("Base", 40, {{"coro", 16}});
    Addr task = w.slotClass("Task", 48, {{"name", 24}, {"custom_sleep_data", 32}}, base);
    Addr obj = w.py.object(task, 48);
    Addr name = w.py.str("worker");
    w.mem.put<Addr>(obj + 24, name);
    w.mem.put<Addr>(obj + 16, w.py.str("a coroutine"));
    w.mem.put<Addr>(obj + 32, w.none);
    CHECK(w.fields.slotOffset(task, "name") == 24);
    CHECK(w.fields.slotOffset(task, "coro") == 16);  // inherited from the base
    CHECK(w.fields.get(obj, "name") == name);
    CHECK(w.objects.str(*w.fields.get(obj, "coro")) == "a coroutine");
    CHECK_FALSE(w.fields.get(obj, "custom_sleep_data"));  // None reads as unset
    CHECK_FALSE(w.fields.slotOffset(task, "missing"));
    CHECK(w.fields.isInstanceOf(obj, base));
    CHECK_FALSE(w.fields.isInstanceOf(obj, w.descrType));
}

TEST_CASE("hostile member descriptors are not slots", "[trio][fields][negative]") {
    World w(staticLayout(12).value());
    // Past the instance's size, misaligned, inside the header, of a non-object kind.
    Addr cls = w.slotClass("Hostile", 48, {{"past", 48}, {"odd", 20}, {"header", 8}, {"huge", 1ll << 40}});
    for (const char* name : {"past", "odd", "header", "huge"}) CHECK_FALSE(w.fields.slotOffset(cls, name));
    Addr ints = w.slotClass("Ints", 48, {{"n", 16}}, 0, /*Py_T_INT*/ 1);
    CHECK_FALSE(w.fields.slotOffset(ints, "n"));
    // A descriptor claiming another class's slot.
    Addr other = w.py.type("Other", 0);
    Addr foreign = w.slotClass("Foreign", 48, {{"x", 16}}, 0, kObjectEx, other);
    CHECK_FALSE(w.fields.slotOffset(foreign, "x"));
    // A class that is its own base: the lookup ends.
    Addr loop = w.slotClass("Loop", 48, {});
    w.mem.put<Addr>(loop + w.at(w.L.type.base), loop);
    CHECK_FALSE(w.fields.slotOffset(loop, "anything"));
    CHECK(w.fields.isSubclass(loop, loop));
    CHECK_FALSE(w.fields.isSubclass(loop, other));
}

TEST_CASE("locals by name, through cells", "[trio][locals]") {
    World w(staticLayout(12).value());
    Addr codeType = w.py.type("code", 0);
    Addr code = w.py.object(codeType, 256);
    w.mem.put<Addr>(code + w.at(w.L.code.localsplusNames),
                    w.py.tuple({w.py.str("self"), w.py.str("fd"), w.py.str("runner")}));
    Addr self = w.py.str("the event");
    Addr runner = w.py.str("the runner");
    Addr slots = w.mem.alloc(32);
    w.mem.put<Addr>(slots, w.cell(self, 2));  // captured by a closure: a cell
    w.mem.put<Addr>(slots + 8, 0);            // unset
    w.mem.put<Addr>(slots + 16, runner);
    RawFrame frame;
    frame.code = code;
    frame.locals = slots;
    FrameLocals locals(w.objects);
    REQUIRE(locals.available());
    CHECK(locals.get(frame, "self") == self);
    CHECK(locals.get(frame, "runner") == runner);
    CHECK_FALSE(locals.get(frame, "fd"));
    CHECK_FALSE(locals.get(frame, "nothing"));
}

TEST_CASE("3.10 locals: an argument moved into its cell", "[trio][locals]") {
    World w(staticLayout(10).value());
    Addr codeType = w.py.type("code", 0);
    Addr code = w.py.object(codeType, 256);
    w.mem.put<Addr>(code + w.at(w.L.code.varnames), w.py.tuple({w.py.str("self"), w.py.str("task")}));
    w.mem.put<Addr>(code + w.at(w.L.code.cellvars), w.py.tuple({w.py.str("self")}));
    w.mem.put<Addr>(code + w.at(w.L.code.freevars), w.py.tuple({}));
    Addr self = w.py.str("the event");
    Addr slots = w.mem.alloc(32);
    w.mem.put<Addr>(slots, 0);  // the argument's own slot, emptied
    w.mem.put<Addr>(slots + 16, w.cell(self, 1));
    RawFrame frame;
    frame.code = code;
    frame.locals = slots;
    FrameLocals locals(w.objects);
    CHECK(locals.names(code) == std::vector<std::string>{"self", "task", "self"});
    CHECK(locals.get(frame, "self") == self);
}

TEST_CASE("references only the waiting task holds are discounted", "[trio][refs]") {
    World w(staticLayout(12).value());
    Addr eventType = w.py.type("Event", 0);
    OwnedReferences refs(w.coroutines, w.fields, trioLayout());
    // Event.wait's shape: the event in a local and in the cell its abort
    // callback captured; the callback in a local and in the task's _abort_func.
    auto build = [&](std::int64_t eventRc, std::int64_t cellRc, std::int64_t fnRc) {
        Addr ev = w.withRefcount(w.py.object(eventType, 32), eventRc);
        Addr cell = w.cell(ev, cellRc);
        Addr closure = w.withRefcount(w.py.tuple({cell}), 1);
        Addr fn = w.function(closure, fnRc);
        return std::make_tuple(ev, w.chainOver({ev, cell, fn}), fn);
    };
    SECTION("nothing else references it") {
        auto [ev, chain, fn] = build(2, 2, 2);
        CHECK(refs.external(chain, ev, {fn}) == 0);
    }
    SECTION("one more reference to the event") {
        auto [ev, chain, fn] = build(3, 2, 2);
        CHECK(refs.external(chain, ev, {fn}) == 1);
    }
    SECTION("the cell is shared with a closure elsewhere") {
        auto [ev, chain, fn] = build(2, 3, 2);
        CHECK(refs.external(chain, ev, {fn}) == 1);
    }
    SECTION("the callback is referenced elsewhere: its cell is reachable") {
        auto [ev, chain, fn] = build(2, 2, 3);
        CHECK(refs.external(chain, ev, {fn}) == 1);
    }
    SECTION("without the task's own reference to its callback") {
        auto [ev, chain, fn] = build(2, 2, 2);
        CHECK(refs.external(chain, ev, {}) == 1);
    }
    SECTION("a weakly referenced event is not judged") {
        Addr weakType = w.py.type("Event", 0);
        w.mem.put<std::int64_t>(weakType + w.at(w.L.type.weaklistoffset), 24);
        Addr ev = w.withRefcount(w.py.object(weakType, 32), 1);
        w.mem.put<Addr>(ev + 24, w.py.str("a weakref"));
        CHECK_FALSE(refs.external(w.chainOver({ev}), ev, {}));
        w.mem.put<Addr>(ev + 24, 0);
        CHECK(refs.external(w.chainOver({ev}), ev, {}) == 0);
    }
    SECTION("an immortal object is not judged") {
        Addr ev = w.withRefcount(w.py.object(eventType, 32), 1ll << 32);
        CHECK_FALSE(refs.external(w.chainOver({ev}), ev, {}));
    }
    SECTION("a container holding itself ends the search") {
        Addr ev = w.withRefcount(w.py.object(eventType, 32), 2);
        Addr list = w.withRefcount(w.py.list({ev, 0}), 2);
        Addr array = w.remote.ptr(list + w.at(w.L.list.items), "list items");
        w.mem.put<Addr>(array + 8, list);
        CHECK(refs.external(w.chainOver({list}), ev, {}) == 1);
    }
}

namespace {

Task trioTask(std::uint64_t id, const char* name) {
    Task t;
    t.id = id;
    t.name = name;
    t.runtime = "trio";
    t.loop = 0x100;
    return t;
}

}  // namespace

TEST_CASE("a trio parent waits for its children only in its nursery's exit", "[trio][findings]") {
    Snapshot snap;
    Task parent = trioTask(0x10, "parent");
    parent.holds = {0x50};
    Task child = trioTask(0x20, "child");
    child.awaitedBy = {0x10};
    child.awaiting = Awaiting{.kind = "lock", .address = 0x60, .object = 0x50, .objectType = "Lock"};
    SECTION("still in the nursery's body (sleeping): it may release the lock") {
        parent.awaiting = Awaiting{.kind = "sleep"};
        snap.tasks = {parent, child};
        CHECK(analyze(snap).empty());
    }
    SECTION("in the nursery's __aexit__, waiting for the child that waits for its lock") {
        parent.awaiting = Awaiting{.kind = "nursery", .address = 0x70, .object = 0x70, .children = {0x20}};
        snap.tasks = {parent, child};
        auto found = analyze(snap);
        REQUIRE(found.size() == 1);
        CHECK(found[0].kind == "lock-deadlock");
        CHECK(found[0].objects == std::vector<std::uint64_t>{0x50});
    }
    SECTION("asyncio tasks keep their awaited-by edges as before") {
        parent.runtime = child.runtime = "asyncio";
        parent.awaiting = Awaiting{.kind = "sleep"};
        snap.tasks = {parent, child};
        CHECK(analyze(snap).size() == 1);
    }
    Finding abandoned{.kind = "abandoned-lock"};
    CHECK(isDeadlock(abandoned));
}

TEST_CASE("a trio task's summary frame is the program's, not trio's", "[trio][model]") {
    Task t = trioTask(1, "t");
    auto stack = std::make_shared<Stack>(Stack{
        {"_async_yield", "_async_yield", "/venv/lib/python3.11/site-packages/trio/_core/_traps.py", 21},
        {"wait", "Event.wait", "/venv/lib/python3.11/site-packages/anyio/_backends/_trio.py", 741},
        {"worker", "worker", "/srv/trio/app.py", 7},  // a program in a directory named trio
    });
    t.stack = stack;
    REQUIRE(t.where());
    CHECK(t.where()->function == "worker");
    t.runtime = "asyncio";
    CHECK(t.where()->function == "_async_yield");
    // trio's own system tasks: their outermost frame says what they are.
    t.runtime = "trio";
    stack->pop_back();
    CHECK(t.where()->function == "wait");
    t.stack.reset();
    CHECK(t.where() == nullptr);
}

TEST_CASE("runtime and fd survive JSON; old snapshots read as asyncio", "[trio][snapshot_json]") {
    Snapshot s;
    s.pid = 1;
    s.python.version = "3.11.2";
    Task t = trioTask(0x7f00, "reader");
    t.awaiting = Awaiting{.kind = "wait-readable", .address = 0x7f10, .type = "socket"};
    t.awaiting->editDetail().fd = 7;
    s.tasks = {t};
    auto doc = toJson(s);
    CHECK(doc["tasks"][0]["runtime"] == "trio");
    CHECK(doc["tasks"][0]["awaiting"]["fd"] == 7);
    Snapshot back = snapshotFromJson(doc);
    CHECK(back.tasks[0].runtime == "trio");
    CHECK(back.tasks[0].awaiting->detail().fd == 7);
    doc["tasks"][0].erase("runtime");
    doc["tasks"][0]["awaiting"].erase("fd");
    Snapshot old = snapshotFromJson(doc);
    CHECK(old.tasks[0].runtime == "asyncio");
    CHECK_FALSE(old.tasks[0].awaiting->detail().fd);
}

TEST_CASE("layout facts the trio reader needs, as measured on the zoo", "[trio][layout]") {
    // co_localsplusnames at 96 on 3.11-3.15; co_varnames/co_cellvars at
    // 72/88 on 3.10; the thread-local dicts at 48 (3.10-3.12) and 40 (3.13+).
    CHECK(staticLayout(10)->code.varnames == 72);
    CHECK(staticLayout(10)->code.cellvars == 88);
    CHECK(staticLayout(10)->threadLocal.dicts == 48);
    for (int minor : {11, 12, 13, 14, 15}) {
        CHECK(staticLayout(minor)->code.localsplusNames == 96);
        CHECK(staticLayout(minor)->threadLocal.dicts == (minor <= 12 ? 48 : 40));
    }
    // A thread's own dict: localobject.key and localdummy.localdict (at 16)
    // before 3.13; PyThreadState.threading_local_key since (288, 328 on 3.15).
    for (int minor : {10, 11, 12}) {
        CHECK(staticLayout(minor)->threadLocal.key == 16);
        CHECK(staticLayout(minor)->threadLocal.dummyDict == 16);
        CHECK(staticLayout(minor)->threadLocal.threadKey == kAbsent);
    }
    CHECK(staticLayout(13)->threadLocal.threadKey == 288);
    CHECK(staticLayout(14)->threadLocal.threadKey == 288);
    CHECK(staticLayout(15)->threadLocal.threadKey == 328);
    Layout L = staticLayout(12).value();
    CHECK(L.type.dict == 264);
    CHECK(L.type.weaklistoffset == 208);
    CHECK(L.member.descrMember == 40);
}
