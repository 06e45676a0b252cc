"""aioscope's findings (await-cycle, lock-deadlock, orphaned-wait,
cancel-ignored) on fixtures that build each bug, and on their clean twins,
which must produce no finding and exit 0.

What is expected is computed from the ground truth: cycles from the
awaited-by edges and lock waits the fixture observed (strongly connected
components), orphans and swallowed cancellations from the facts each fixture
records as it builds them.
"""
import pytest

from aio import (EXIT_OK, EXIT_STUCK, STUCK_KINDS, Snap, assert_awaited_by, assert_call_graph_agrees, assert_awaiting, assert_same_task_set,
                 assert_stacks, cycles, mismatches, version, wait_graph)

CASES = {
    "lock-deadlock": ("aio_deadlock_locks.py", "deadlock"),
    "lock-self": ("aio_deadlock_locks.py", "self"),
    "semaphore-deadlock": ("aio_deadlock_locks.py", "semaphore"),
    "lock-clean": ("aio_deadlock_locks.py", "clean"),
    "cycle": ("aio_await_cycle.py", "cycle"),
    "cycle-clean": ("aio_await_cycle.py", "clean"),
    "orphan": ("aio_orphan.py", "orphan"),
    "orphan-clean": ("aio_orphan.py", "clean"),
    "cancel-ignored": ("aio_cancel_ignored.py", "ignored"),
    "cancel-clean": ("aio_cancel_ignored.py", "clean"),
}
CLEAN = [c for c in CASES if c.endswith("clean")]



@pytest.fixture(scope="module")
def snaps(interp):
    """One process and dump per case, started on first use, per interpreter."""
    cache = {}

    def get(case):
        if case not in cache:
            script, variant = CASES[case]
            try:
                cache[case] = Snap(interp, script, "--variant", variant)
            except Exception as e:  # the next tests of this case fail at once, the same way
                cache[case] = e
        if isinstance(cache[case], Exception):
            raise cache[case]
        return cache[case]

    yield get
    for s in cache.values():
        if isinstance(s, Snap):
            s.close()


def expected_findings(snap):
    """{(kind, tasks, objects)} the ground truth calls for."""
    out = set()
    waits = {t["id"]: t["awaiting"] for t in snap.truth["tasks"]}
    holders = {}
    for t in snap.truth["tasks"]:
        for lock in t["holds"]:
            holders.setdefault(lock, set()).add(t["id"])
    for scc in cycles(wait_graph(snap)):
        locks = set()
        for tid in scc:
            a = waits[tid]
            if a and a["kind"] in ("lock", "semaphore") and holders.get(a.get("object"), set()) & scc:
                locks.add(a["object"])
        out.add(("lock-deadlock" if locks else "await-cycle", frozenset(scc), frozenset(locks)))
    for task, obj in snap.facts.get("orphans", []):
        out.add(("orphaned-wait", frozenset([task]), frozenset([obj])))
    for task in snap.facts.get("cancel_ignored", []):
        out.add(("cancel-ignored", frozenset([task]), frozenset()))
    return out


def dumped_findings(snap):
    return {(f["kind"], frozenset(f["tasks"]), frozenset(f["objects"])) for f in snap.doc["findings"]}


def describe(snap, findings):
    return sorted(f"{k} tasks={sorted(snap.name(t) for t in ts)} objects={sorted(os)}" for k, ts, os in findings)


@pytest.mark.parametrize("case", list(CASES))
def test_tasks_match_truth(snaps, case):
    """The fixtures behind the findings are dumped exactly like the others."""
    snap = snaps(case)
    assert_same_task_set(snap)
    assert_stacks(snap)
    assert_awaiting(snap)
    assert_call_graph_agrees(snap)
    assert_awaited_by(snap)
    handling = set(snap.facts.get("handling_cancel", []))
    bad = mismatches(snap, "holds", lambda t: t["holds"], lambda t: sorted(t["holds"]))
    bad += mismatches(snap, "cancel_requests", lambda t: t["cancel_requests"])
    bad += mismatches(snap, "cancel_pending", lambda t: t["cancel_pending"])
    bad += mismatches(snap, "handling_cancel", lambda t: t["id"] in handling)
    bad += mismatches(snap, "state", lambda t: t["state"])
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("case", list(CASES))
def test_findings_exactly_as_built(snaps, case, request):
    snap = snaps(case)
    expected = expected_findings(snap)
    if case == "cancel-ignored" and version(snap) < (3, 11):
        pytest.skip(f"cancel-ignored unavailable on CPython {snap.truth['version']}: Task.cancelling() does "
                    f"not exist, a swallowed cancel leaves no trace")
    got = dumped_findings(snap)
    assert got == expected, f"dumped {describe(snap, got)}\nexpected {describe(snap, expected)}"


@pytest.mark.parametrize("case", list(CASES))
def test_no_unexpected_findings_and_exit_code(snaps, case):
    snap = snaps(case)
    expected = expected_findings(snap)
    extra = dumped_findings(snap) - expected
    assert not extra, f"findings the ground truth does not call for: {describe(snap, extra)}"
    stuck = any(f["kind"] in STUCK_KINDS for f in snap.doc["findings"])
    assert snap.rc == (EXIT_STUCK if stuck else EXIT_OK)
    if case in CLEAN:
        assert expected == set()
        assert snap.doc["findings"] == [] and snap.rc == EXIT_OK


def test_clean_twins_are_really_clean(snaps):
    """The clean twins build no bug: nothing for the ground truth to expect."""
    for case in CLEAN:
        assert expected_findings(snaps(case)) == set(), case


@pytest.mark.parametrize("case", ["lock-deadlock", "lock-self", "semaphore-deadlock", "cycle"])
def test_deadlock_findings_name_tasks_and_locks(snaps, case):
    snap = snaps(case)
    assert snap.rc == EXIT_STUCK
    expected = expected_findings(snap)
    assert expected, "the fixture built a deadlock the ground truth must see"
    if "cycles_built" in snap.facts:
        assert len(expected) == snap.facts["cycles_built"], describe(snap, expected)
    for kind, tasks, objects in expected:
        hits = [f for f in snap.doc["findings"] if f["kind"] == kind and set(f["tasks"]) == tasks]
        assert len(hits) == 1, f"{kind} over {sorted(snap.name(t) for t in tasks)}: {snap.doc['findings']}"
        f = hits[0]
        assert set(f["objects"]) == objects
        for t in tasks:
            assert f"'{snap.want[t]['name']}'" in f["message"], f["message"]
        for o in objects:
            assert o in f["message"] or len(tasks) == 1, f["message"]
    if case == "lock-deadlock":
        # Both tasks and both locks, as the fixture built them.
        (kind, tasks, objects), = expected
        assert objects == set(snap.facts["locks"].values())
        assert {snap.want[t]["name"] for t in tasks} == {"lock-ab", "lock-ba"}


ORPHANS = ["orphan-event", "orphan-future", "orphan-queue", "orphan-dropped-list", "orphan-list-in-frame"]


@pytest.mark.parametrize("name", ORPHANS)
def test_orphaned_wait(snaps, name, request):
    snap = snaps("orphan")
    task = snap.named(name)
    pairs = {tuple(p) for p in snap.facts["orphans"] if p[0] == task["id"]}
    assert len(pairs) == 1, "the fixture records what the task waits on"
    (tid, obj), = pairs
    hits = [f for f in snap.findings("orphaned-wait") if f["tasks"] == [tid]]
    assert len(hits) == 1, f"no orphaned-wait for {name}; awaiting: {snap.got[tid]['awaiting']}"
    assert hits[0]["objects"] == [obj]
    assert f"'{name}'" in hits[0]["message"]
    assert snap.got[tid]["awaiting"]["external_refs"] == 0
    assert snap.rc == EXIT_STUCK


@pytest.mark.parametrize("name", ["swallow-cancelled", "swallow-base"])
def test_cancel_ignored(snaps, name):
    snap = snaps("cancel-ignored")
    task = snap.named(name)
    assert task["id"] in snap.facts["cancel_ignored"], "the fixture saw its task swallow the cancel"
    if version(snap) < (3, 11):
        assert snap.got[task["id"]]["cancel_requests"] is None
        pytest.skip(f"cancel-ignored unavailable on CPython {snap.truth['version']}: Task.cancelling() does "
                    f"not exist")
    assert task["cancel_requests"] == 1
    hits = [f for f in snap.findings("cancel-ignored") if f["tasks"] == [task["id"]]]
    assert len(hits) == 1, snap.doc["findings"]
    assert f"'{name}'" in hits[0]["message"]
    # Swallowing a cancel is a smell, not a hang: the exit code stays 0.
    assert snap.rc == EXIT_OK
