"""Helpers for the asyncio integration tests: dumps that may carry findings,
comparison of dumped tasks with the ground truth a fixture computed."""
import json

import pytest

from harness import Fixture, run_aioscope

# `aioscope dump` exits 10 when a task can never finish (await-cycle,
# lock-deadlock, orphaned-wait findings), 0 otherwise.
EXIT_OK = 0
EXIT_STUCK = 10
STUCK_KINDS = {"await-cycle", "lock-deadlock", "orphaned-wait"}


def dump_tasks(pid, *extra, timeout=120):
    """(document, exit code) of `aioscope dump --json`; any other exit fails."""
    r = run_aioscope("dump", "--json", *extra, pid, timeout=timeout)
    assert r.returncode in (EXIT_OK, EXIT_STUCK), f"dump failed ({r.returncode}): {r.stderr}"
    return json.loads(r.stdout), r.returncode


class KilledOnFailure(Fixture):
    """A Fixture whose process does not outlive a failure to publish its truth."""

    def _wait_truth(self, timeout):
        try:
            return super()._wait_truth(timeout)
        except BaseException:
            self.close()
            raise


class Snap:
    """A fixture process, its ground truth and one dump of it."""

    def __init__(self, interp, script, *args, truth_timeout=60, dump_timeout=120):
        self.interp = interp
        self.fx = KilledOnFailure(interp, script, *args, truth_timeout=truth_timeout)
        try:
            self.doc, self.rc = dump_tasks(self.fx.pid, timeout=dump_timeout)
        except BaseException:
            self.fx.close()
            raise
        self.truth = self.fx.truth
        self.facts = self.truth.get("facts", {})
        self.want = {t["id"]: t for t in self.truth["tasks"]}
        self.got = {t["id"]: t for t in self.doc["tasks"]}

    def close(self):
        self.fx.close()

    def name(self, tid):
        t = self.want.get(tid) or self.got.get(tid)
        return f"{t['name']}({tid})" if t else tid

    def named(self, name):
        hits = [t for t in self.truth["tasks"] if t["name"] == name]
        assert len(hits) == 1, f"{len(hits)} tasks named {name!r} in the ground truth"
        return hits[0]

    def findings(self, kind=None):
        return [f for f in self.doc["findings"] if kind is None or f["kind"] == kind]


def shared_snap(interp, script, *args, **kw):
    """Generator for a module-scoped pytest fixture: one process and dump per interpreter."""
    snap = Snap(interp, script, *args, **kw)
    try:
        yield snap
    finally:
        snap.close()


def frames(stack):
    return [(f["function"], f["qualname"], f["file"], f["line"]) for f in stack]


def fmt_stack(stack):
    return "\n      ".join(f"{f['qualname']} ({f['file']}:{f['line']})" for f in stack) or "(empty)"


def assert_same_task_set(snap):
    want, got = set(snap.want), set(snap.got)
    missing = [snap.name(t) for t in want - got]
    extra = [snap.name(t) for t in got - want]
    assert not missing and not extra, f"tasks missing from the dump: {missing}; not in asyncio.all_tasks(): {extra}"
    names = {tid: (snap.got[tid]["name"], snap.want[tid]["name"]) for tid in want}
    wrong = {tid: n for tid, n in names.items() if n[0] != n[1]}
    assert not wrong, f"task names (dumped, expected): {wrong}"


def mismatches(snap, field, expected_of, got_of=None, only=None):
    """Per-task differences in one field, over every task of the ground truth."""
    got_of = got_of or (lambda t: t[field])
    out = []
    for tid, want in snap.want.items():
        if only is not None and not only(want):
            continue
        got = snap.got.get(tid)
        if got is None:
            out.append(f"{snap.name(tid)}: not in the dump")
            continue
        e, g = expected_of(want), got_of(got)
        if e != g:
            out.append(f"{snap.name(tid)}: {field} is {g!r}, expected {e!r}")
    return out


def assert_stacks(snap, only=None):
    bad = []
    for tid, want in snap.want.items():
        if only is not None and not only(want):
            continue
        got = snap.got.get(tid)
        if got is None:
            bad.append(f"{snap.name(tid)}: not in the dump")
        elif frames(got["stack"]) != frames(want["stack"]):
            bad.append(f"{snap.name(tid)}:\n    dumped:   {fmt_stack(got['stack'])}\n"
                       f"    expected: {fmt_stack(want['stack'])}")
    assert not bad, f"{len(bad)} task stacks differ:\n" + "\n".join(bad[:20])


def awaiting_view(want_awaiting, got_awaiting):
    """The dumped awaiting, reduced to the fields the ground truth states."""
    if got_awaiting is None or want_awaiting is None:
        return got_awaiting and {"kind": got_awaiting["kind"]}
    view = {"kind": got_awaiting["kind"]}
    for k in ("object", "task", "address"):
        if k in want_awaiting:
            view[k] = got_awaiting.get(k)
    if "children" in want_awaiting:
        view["children"] = sorted(got_awaiting.get("children") or [])
    return view


def assert_awaiting(snap, only=None):
    bad = []
    for tid, want in snap.want.items():
        if only is not None and not only(want):
            continue
        got = snap.got.get(tid)
        if got is None:
            bad.append(f"{snap.name(tid)}: not in the dump")
            continue
        w = want["awaiting"]
        g = awaiting_view(w, got["awaiting"])
        if w != g:
            bad.append(f"{snap.name(tid)}: awaiting {g}, expected {w} (full: {got['awaiting']})")
    assert not bad, f"{len(bad)} tasks wait on something else:\n" + "\n".join(bad[:30])


def assert_awaited_by(snap, only=None):
    bad = mismatches(snap, "awaited_by", lambda t: sorted(t["awaited_by"]),
                     lambda t: sorted(t["awaited_by"]), only)
    assert not bad, f"{len(bad)} awaited_by differ:\n" + "\n".join(bad[:30])


def assert_call_graph_agrees(snap):
    """3.14+: the awaited-by edges of the ground truth are those
    asyncio.capture_call_graph() reports (a check of the truth itself)."""
    bad = [f"{t['name']}: capture_call_graph {t['call_graph_awaited_by']}, edges {t['awaited_by']}"
           for t in snap.truth["tasks"]
           if t["call_graph_awaited_by"] is not None and sorted(t["call_graph_awaited_by"]) != sorted(t["awaited_by"])]
    assert not bad, "ground truth disagrees with capture_call_graph:\n" + "\n".join(bad)


def xfail_if(request, condition, reason):
    """A known aioscope bug on some interpreters only: strict xfail there, a real test elsewhere."""
    if condition:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def version(interp_or_snap):
    """(major, minor) of the interpreter, from the fixture's own sys.version."""
    v = interp_or_snap.truth["version"]
    return tuple(int(x) for x in v.split(".")[:2])


def wait_graph(snap):
    """Who waits for whom according to the ground truth: awaited-by edges
    (parent -> child) and lock waits (waiter -> the single holder)."""
    g = {tid: set() for tid in snap.want}
    holders = {}
    for t in snap.want.values():
        for lock in t["holds"]:
            holders.setdefault(lock, []).append(t["id"])
    for t in snap.want.values():
        for parent in t["awaited_by"]:
            g[parent].add(t["id"])
        a = t["awaiting"]
        if a and a["kind"] in ("lock", "semaphore") and len(holders.get(a.get("object"), [])) == 1:
            g[t["id"]].add(holders[a["object"]][0])
    return g


def cycles(graph):
    """Strongly connected components that contain a cycle, as sets."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = set()
            while True:
                w = stack.pop()
                on.discard(w)
                scc.add(w)
                if w == v:
                    break
            if len(scc) > 1 or v in graph.get(v, ()):
                out.append(frozenset(scc))

    for v in list(graph):
        if v not in index:
            visit(v)
    return set(out)
