// Unit tests of the viewer's pure logic: node --test tests/viewer/
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const A = require("./load_viewer.js");

const EV = "aioscope/event/1";
const frame = (fn, file, line) => ({ function: fn, qualname: fn, file, line });
const ev = (type, ts, more) => Object.assign({ schema: EV, type, ts, pid: 42 }, more);

function task(id, name, more) {
  return Object.assign({ id, name, state: "pending", loop: "0xloop", thread_id: 1, stack: [frame("work", "/app/w.py", 3)],
    awaiting: { kind: "sleep" }, awaited_by: [], holds: [], error: null }, more);
}

function snapshot(tasks, findings) {
  return { schema: "aioscope/snapshot/1", pid: 7, captured_at: 1000, python: { version: "3.12.1" }, threads: [], tasks, findings: findings || [], warnings: [] };
}

test("printable escapes control and bidi characters and caps the length", () => {
  assert.equal(A.dom.printable("a\u001b[31mb\u202ec\n"), "a\\x1b[31mb\\u202ec\\x0a");
  assert.equal(A.dom.printable("x".repeat(10000), 100).length, 101);
  assert.equal(A.dom.printable(null), "");
  // Idempotent: what it returns has nothing left to escape.
  const once = A.dom.printable("\u0000\u2028z");
  assert.equal(A.dom.printable(once), once);
});

test("load: a snapshot, a JSON Lines stream with a cut-off last line, junk", () => {
  const [s] = A.load.parse("snap.json", JSON.stringify(snapshot([])));
  assert.equal(s.kind, "snapshot");
  const lines = [ev("hello", 1), ev("stall", 2, { stall_id: 1 }), "not json", JSON.stringify({ schema: "other" })]
    .map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join("\n") + '\n{"schema": "aioscope/ev';
  const [e] = A.load.parse("s.jsonl", lines);
  assert.equal(e.kind, "events");
  assert.equal(e.events.length, 2);
  assert.equal(e.skipped, 3);
  assert.match(e.errors.join("; "), /line 3 is not JSON/);
  assert.match(e.errors.join("; "), /last line is cut off/);
  assert.equal(A.load.parse("x", "hello").pop().kind, "error");
  assert.match(A.load.parse("x", '{"schema": "nope"}').pop().errors[0], /schema nope/);
});

test("load: the data embedded in a report's HTML", () => {
  const data = { format: "aioscope/report/1", sources: [{ name: "a", kind: "snapshot", doc: snapshot([task("0x1", "</script>")]) }] };
  const html = "<!DOCTYPE html><html><body>\x3cscript type=\"application/json\" id=\"aioscope-data\">" +
    JSON.stringify(data).replace(/</g, "\\u003c") + "\x3c/script></body></html>";
  const [s] = A.load.parse("report.html", html);
  assert.equal(s.kind, "snapshot");
  assert.equal(s.doc.tasks[0].name, "</script>");
});

test("packed: references, shapes, and __proto__ as an ordinary key", () => {
  const packed = {
    packed: "aioscope/packed/1",
    shapes: [["file", "line"], ["__proto__", "stack"], ["polluted"]],
    table: [[2, "/app/long/path.py", 3], [0, [1, 0], [1, 0]]],
    root: [0, [3, [4, true], [1, 1]], [3, null, [1, 1]], [0, 0, 1]],
  };
  const out = A.packed.unpack(packed);
  assert.deepEqual(out[0].stack, [{ file: "/app/long/path.py", line: 3 }, { file: "/app/long/path.py", line: 3 }]);
  assert.equal(Object.getPrototypeOf(out[0]), Object.prototype);
  assert.deepEqual(Object.keys(out[0]), ["__proto__", "stack"]);
  assert.equal({}.polluted, undefined);
  assert.deepEqual(out[2], [0, 1]);
  assert.throws(() => A.packed.unpack(Object.assign({}, packed, { root: [1, 5] })), /bad reference/);
});

test("model: stalls paired with their ends, capabilities, dropped events, unknown types kept", () => {
  const m = A.model.build([{ name: "s", kind: "events", events: [
    ev("hello", 1, { mode: "run", options: { stall_threshold_ms: 100 }, python: { version: "3.13.0" },
      capabilities: { stall_detection: { state: "pending", reason: "waiting for asyncio" }, snapshots: { state: "active" } } }),
    ev("capabilities", 1.5, { capabilities: { stall_detection: { state: "active" } } }),
    ev("stall", 2.2, { stall_id: 1, native_id: 9, started_at: 2, elapsed_ms: 150, stack: [frame("block", "/app/b.py", 5)], test: "tests/test_x.py::test_y", test_phase: "call" }),
    ev("stall_end", 2.5, { stall_id: 1, native_id: 9, started_at: 2, duration_ms: 480 }),
    ev("stall", 3.2, { stall_id: 2, native_id: 9, started_at: 3, elapsed_ms: 120 }),
    ev("dropped", 4, { count: 17, since: 3.5 }),
    ev("cancellation_swallowed", 4.5, { task: { id: "0x1", name: "w" }, caught_at: frame("loop", "/app/c.py", 8) }),
    ev("some_future_event", 5, { message: "hi" }),
  ] }]);
  const p = m.processes[0];
  assert.equal(m.stalls.length, 2);
  assert.equal(m.stalls[0].duration, 480);
  assert.equal(m.stalls[0].exact, true);
  assert.equal(m.stalls[1].duration, 120);
  assert.equal(m.stalls[1].exact, false);
  assert.equal(m.stalls[0].ev.test, "tests/test_x.py::test_y");
  assert.equal(p.capabilities.stall_detection.state, "active");
  assert.equal(p.dropped, 17);
  assert.equal(m.bugs.length, 1);
  assert.ok(m.messages.some((x) => x.type === "some_future_event"));
  assert.equal(m.t0, 1);
});

test("model: an old hello without capabilities still says whether stall detection was active", () => {
  const m = A.model.build([{ name: "s", kind: "events", events: [ev("hello", 1, { stall_detection: "waiting for asyncio" })] }]);
  assert.equal(m.processes[0].capabilities.stall_detection.state, "pending");
});

test("forest: roots, children, identical siblings folded, flagged tasks never folded", () => {
  const tasks = [task("0xr", "root", { awaiting: { kind: "gather", children: [] } })];
  for (let i = 0; i < 50; i++) tasks.push(task("0xc" + i, "child-" + i, { awaited_by: ["0xr"] }));
  tasks.push(task("0xd", "different", { awaited_by: ["0xr"], stack: [frame("other", "/app/o.py", 1)] }));
  tasks.push(task("0xf", "flagged", { awaited_by: ["0xr"] }));
  const snap = A.model.build([{ name: "x", kind: "snapshot", doc: snapshot(tasks, [{ kind: "orphaned-wait", tasks: ["0xf"] }]) }]).snapshots[0];
  const ix = A.forest.index(snap);
  const loops = A.forest.loops(ix);
  assert.equal(loops.length, 1);
  assert.deepEqual(loops[0].roots.map((t) => t.name), ["root"]);
  const groups = A.forest.group(ix, A.forest.childrenOf(ix, loops[0].roots[0]), null);
  assert.deepEqual(groups.map((g) => [g.task.name, g.count]), [["child-0", 50], ["different", 1], ["flagged", 1]]);
});

test("forest: tasks awaiting each other have no root and get one, marked", () => {
  const snap = A.model.build([{ name: "x", kind: "snapshot", doc: snapshot([
    task("0xa", "a", { awaited_by: ["0xb"], awaiting: { kind: "task", task: "0xb" } }),
    task("0xb", "b", { awaited_by: ["0xa"], awaiting: { kind: "task", task: "0xa" } }),
  ]) }]).snapshots[0];
  const ix = A.forest.index(snap);
  const [l] = A.forest.loops(ix);
  assert.equal(l.roots.length, 0);
  assert.equal(l.cycleRoots.length, 1);
  assert.equal(A.forest.waitText(ix, ix.byId.get("0xa")), "awaits task 'b'");
});

test("forest: a filter keeps matches and every task above them", () => {
  const snap = A.model.build([{ name: "x", kind: "snapshot", doc: snapshot([
    task("0x1", "top"), task("0x2", "middle", { awaited_by: ["0x1"] }),
    task("0x3", "needle", { awaited_by: ["0x2"], stack: [frame("find_me", "/app/hay.py", 4)] }), task("0x4", "other"),
  ]) }]).snapshots[0];
  const ix = A.forest.index(snap);
  const f = A.forest.filter(ix, "file:hay.py");
  assert.equal(f.matched, 1);
  assert.deepEqual([...f.keep].sort(), ["0x1", "0x2", "0x3"]);
  assert.equal(A.forest.filter(ix, "state:pending find_me").matched, 1);
  assert.equal(A.forest.filter(ix, ""), null);
});

test("forest: who holds the lock a task waits for", () => {
  const snap = A.model.build([{ name: "x", kind: "snapshot", doc: snapshot([
    task("0x1", "ab", { holds: ["0xA"], awaiting: { kind: "lock", object: "0xB", object_type: "Lock" } }),
    task("0x2", "ba", { holds: ["0xB"], awaiting: { kind: "lock", object: "0xA", object_type: "Lock" } }),
  ]) }]).snapshots[0];
  const ix = A.forest.index(snap);
  assert.equal(A.forest.waitText(ix, ix.byId.get("0x1")), "waits on Lock 0xB held by 'ba'");
});

test("forest: trio waits say what trio records, and no holder is invented", () => {
  const snap = A.model.build([{ name: "x", kind: "snapshot", doc: snapshot([
    task("0x1", "parent", { runtime: "trio", awaiting: { kind: "nursery", object: "0xN", children: ["0x2", "0x3"] } }),
    task("0x2", "reader", { runtime: "trio", awaited_by: ["0x1"], awaiting: { kind: "wait-readable", object: "0xS", fd: 7 } }),
    task("0x3", "sem", { runtime: "trio", awaited_by: ["0x1"], awaiting: { kind: "semaphore", object: "0xM", object_type: "Semaphore" } }),
  ]) }]).snapshots[0];
  const ix = A.forest.index(snap);
  assert.equal(A.forest.waitText(ix, ix.byId.get("0x1")), "awaits nursery of 2 tasks");
  assert.equal(A.forest.waitText(ix, ix.byId.get("0x2")), "waits until fd 7 is readable");
  assert.equal(A.forest.waitText(ix, ix.byId.get("0x3")), "waits on Semaphore 0xM");
  assert.deepEqual(A.forest.childrenOf(ix, ix.byId.get("0x1")).map((t) => t.name).sort(), ["reader", "sem"]);
});

test("flame: Python frames outermost first, then the native frames above the eval loop", () => {
  const stall = { ev: { stack: [frame("block", "/app/b.py", 5), frame("main", "/app/m.py", 1)], native_stack: [
    { function: "clock_nanosleep", module: "/lib/libc.so.6" }, { function: "time_sleep", module: "/lib/libpython3.12.so" },
    { function: "cfunction_vectorcall_O", module: "/lib/libpython3.12.so" }, { function: "_PyEval_EvalFrameDefault", module: "/lib/libpython3.12.so" },
    { function: "main", module: "/usr/bin/python3" }] } };
  assert.deepEqual(A.flame.stallPath(stall).map((f) => f.name), ["main", "block", "time_sleep", "clock_nanosleep"]);
  assert.equal(A.flame.stallPath({ ev: { captured: false } })[0].name, "(ended before its stack could be read)");
  const stalls = [
    { idx: 0, duration: 300, ev: { stack: [frame("a", "/x.py", 1), frame("main", "/m.py", 1)] } },
    { idx: 1, duration: 100, ev: { stack: [frame("b", "/x.py", 2), frame("main", "/m.py", 1)] } },
    { idx: 2, duration: 200, ev: { stack: [frame("a", "/x.py", 1), frame("main", "/m.py", 1)] } },
  ];
  const root = A.flame.build(stalls, (s) => s.duration);
  assert.equal(root.value, 600);
  const main = root.children[0];
  assert.deepEqual(main.children.map((c) => [c.frame.name, c.value, c.stalls]), [["a", 500, [0, 2]], ["b", 100, [1]]]);
  assert.equal(A.flame.find(root, main.children[1].key), main.children[1]);
});

test("overview: deadlocks first, then checks that were not active, then stalls and bugs", () => {
  require("../../viewer/js/views/overview.js");
  const m = A.model.build([
    { name: "s", kind: "events", events: [
      ev("hello", 1, { capabilities: { stall_detection: { state: "inactive", reason: "uvloop" }, task_destroyed_pending: { state: "active" } } }),
      ev("stall", 2.2, { stall_id: 1, native_id: 9, started_at: 2, elapsed_ms: 150, stack: [frame("block", "/app/b.py", 5)] }),
      ev("task_destroyed_pending", 3, { task: { id: "0x1", name: "lost" }, stack: [] }),
    ] },
    { name: "d", kind: "snapshot", doc: snapshot([task("0xa", "a")], [{ kind: "await-cycle", tasks: ["0xa"], message: "stuck" }]) },
  ]);
  const app = { href: (view, params) => "#" + view + (params ? "?" + new URLSearchParams(params) : "") };
  const list = A.views.overview.problems(m, app);
  assert.deepEqual(list.map((p) => p.label.split(" \u00b7 ")[0]), ["Deadlock", "Not checked", "Stall", "Pending task destroyed"]);
  assert.match(list[1].text, /uvloop/);
  assert.equal(list[0].href, "#tasks?snap=0&finding=0");
});

test("overview: a check that missed part of the run is no clean pass", () => {
  require("../../viewer/js/views/overview.js");
  const m = A.model.build([{ name: "s", kind: "events", events: [
    ev("hello", 1, { capabilities: { stall_detection: { state: "active" } } }),
    ev("warning", 2, { message: "an event loop started on thread 7 ...", capability_gap: "stall_detection", thread_id: 7 }),
    ev("warning", 3, { message: "a plain warning" }),
  ] }]);
  assert.equal(m.processes[0].gaps.stall_detection.message, "an event loop started on thread 7 ...");
  const app = { href: (view, params) => "#" + view + (params ? "?" + new URLSearchParams(params) : "") };
  const list = A.views.overview.problems(m, app);
  assert.deepEqual(list.map((p) => p.label), ["Not checked for part of the run \u00b7 " + A.model.capabilityLabel("stall_detection"), "Warnings \u00b7 2"]);
  assert.match(list[0].text, /thread 7/);
  assert.equal(m.messages.length, 2);  // both warnings stay in the events view
});
