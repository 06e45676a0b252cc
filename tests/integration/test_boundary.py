"""Across the sync/async boundary (fixtures/aio_boundary.py): pool workers and
the tasks awaiting their work, threads blocked in threading primitives with
the objects and holders, and the findings of the wait-for graph spanning
tasks and threads, on every zoo interpreter.

What is expected comes from inside each fixture: the thread idents, the
_WorkItem and its Future found in the worker's own frames, the objects each
thread blocks on and holds, the findings the shape builds (none for the clean
twins).
"""
import pytest

from aio import EXIT_OK, EXIT_STUCK, Snap, assert_same_task_set, assert_stacks

CASES = ["shapes", "cross", "cross-event", "cross-clean", "loop-self", "loop-clean", "abba", "starved", "starved-clean"]
CLEAN = ["shapes", "cross-clean", "loop-clean", "starved-clean"]
BOUNDARY_KINDS = {"cross-deadlock", "thread-deadlock", "loop-blocked-forever", "executor-starved"}


@pytest.fixture(scope="module")
def snaps(interp):
    cache = {}

    def get(case):
        if case not in cache:
            try:
                cache[case] = Snap(interp, "aio_boundary.py", "--variant", case)
            except Exception as e:
                cache[case] = e
        if isinstance(cache[case], Exception):
            raise cache[case]
        return cache[case]

    yield get
    for s in cache.values():
        if isinstance(s, Snap):
            s.close()


def threads_of(snap):
    return {t["thread_id"]: t for t in snap.doc["threads"]}


def expected_wait(fact):
    w = fact.get("wait")
    if not w:
        return None
    return {k: w.get(k) for k in ("kind", "object", "owner", "thread", "task", "queued", "loop", "futures")
            if w.get(k) not in (None, False, [])}


def dumped_wait(t):
    w = t["waiting"]
    if not w:
        return None
    return {k: w.get(k) for k in ("kind", "object", "owner", "thread", "task", "queued", "loop", "futures")
            if w.get(k) not in (None, False, [], "")}


@pytest.mark.parametrize("case", CASES)
def test_threads_wait_and_hold_as_built(snaps, case):
    snap = snaps(case)
    got = threads_of(snap)
    bad = []
    for ident, fact in snap.facts["threads"].items():
        t = got.get(int(ident))
        if t is None:
            bad.append(f"thread {ident}: not in the dump")
            continue
        label = f"thread {ident} {t['name']!r}"
        if dumped_wait(t) != expected_wait(fact):
            bad.append(f"{label}: waiting {dumped_wait(t)}, expected {expected_wait(fact)}")
        if sorted(t["holds"]) != sorted(fact.get("holds", [])):
            bad.append(f"{label}: holds {t['holds']}, expected {fact.get('holds', [])}")
        if "loop" in fact and t["loop"] != fact["loop"]:
            bad.append(f"{label}: runs loop {t['loop']}, expected {fact['loop']}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("case", ["shapes", "cross", "starved-clean"])
def test_workers_and_the_tasks_awaiting_them(snaps, case):
    snap = snaps(case)
    got = threads_of(snap)
    bad = []
    workers = {ident: f for ident, f in snap.facts["threads"].items() if "work_item" in f}
    assert workers, "the fixture runs executor work"
    for ident, fact in workers.items():
        w = got[int(ident)]["worker"]
        want = {"executor": fact["executor"], "work_item": fact["work_item"], "future": fact["future"],
                "awaited_by": fact["awaited_by"]}
        have = w and {k: (sorted(w[k]) if k == "awaited_by" else w[k]) for k in want}
        if have != want:
            bad.append(f"thread {ident}: worker {have}, expected {want}")
        for task in fact["awaited_by"]:
            a = snap.got[task]["awaiting"]
            if not a or (a["kind"], a.get("concurrent_future"), a.get("thread")) != ("executor", fact["future"], int(ident)):
                bad.append(f"{snap.name(task)}: awaiting {a}, expected executor {fact['future']} in thread {ident}")
    for executor, idents in snap.facts.get("idle_workers", {}).items():
        for ident in idents:
            w = got[ident]["worker"]
            if not w or w["executor"] != executor or w["work_item"] is not None:
                bad.append(f"idle thread {ident}: worker {w}, expected idle in {executor}")
    assert not bad, "\n".join(bad)


def test_queued_work_names_its_pool(snaps):
    snap = snaps("starved")
    queued = snap.facts["queued"]
    assert queued
    for task, pool in queued.items():
        a = snap.got[task]["awaiting"]
        assert a["kind"] == "executor" and a["executor"] == pool and a["thread"] is None, a


def test_who_can_set_the_event(snaps):
    """reload's Event is referenced only by the handler's frames and the
    refresher thread's: the dump says so (this closes the cycle)."""
    snap = snaps("cross-event")
    f = snap.facts["findings"][0]
    reload_id = next(t["id"] for t in snap.truth["tasks"] if t["name"] == "reload")
    handler = [t for t in f["tasks"] if t != reload_id]
    refresher = [t for t in f["threads"] if "work_item" not in snap.facts["threads"][str(t)]]
    a = snap.got[reload_id]["awaiting"]
    assert a["kind"] == "event", a
    assert a["referenced_by"] == {"tasks": handler, "threads": refresher}, a


@pytest.mark.parametrize("case", CASES)
def test_tasks_match_truth(snaps, case):
    snap = snaps(case)
    assert_same_task_set(snap)
    assert_stacks(snap)


@pytest.mark.parametrize("case", CASES)
def test_findings_exactly_as_built(snaps, case):
    snap = snaps(case)
    want = {(f["kind"], frozenset(f["tasks"]), frozenset(f["threads"])) for f in snap.facts["findings"]}
    got = {(f["kind"], frozenset(f["tasks"]), frozenset(f.get("threads", []))) for f in snap.doc["findings"]}
    assert got == want, f"dumped {got}\nexpected {want}\n{[f['message'] for f in snap.doc['findings']]}"
    assert snap.rc == (EXIT_STUCK if want else EXIT_OK)
    assert snap.doc["warnings"] == [], snap.doc["warnings"]
    if case in CLEAN:
        assert want == set() and snap.doc["findings"] == []
    for f in snap.doc["findings"]:
        if f["kind"] in BOUNDARY_KINDS:
            # Named step by step: every thread and task in the cycle is in the message.
            for ident in f["threads"]:
                assert str(ident) in f["message"], f["message"]


# --- a FastAPI sync endpoint in anyio's thread pool: Debian's python3.11 with python3-fastapi ---

FASTAPI_INTERPRETER = "3.11-debian"


@pytest.fixture(scope="module")
def fastapi_snap(interp):
    if interp.name != FASTAPI_INTERPRETER:
        pytest.skip(f"FastAPI fixture unavailable on CPython {interp.name}: the Debian python3-fastapi package "
                    f"is installed for {FASTAPI_INTERPRETER} only")
    import subprocess
    probe = subprocess.run(interp.argv("_version.py")[:1] + ["-c", "import fastapi"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"fastapi unavailable for {interp.name}: {probe.stderr.strip().splitlines()[-1:]}")
    snap = Snap(interp, "aio_fastapi.py")
    yield snap
    snap.close()


def test_fastapi_sync_endpoint_names_its_worker_and_lock(fastapi_snap):
    snap = fastapi_snap
    got = threads_of(snap)
    bad = []
    for ident, fact in snap.facts["threads"].items():
        t = got[int(ident)]
        if dumped_wait(t) != expected_wait(fact):
            bad.append(f"thread {ident}: waiting {dumped_wait(t)}, expected {expected_wait(fact)}")
        if sorted(t["holds"]) != sorted(fact.get("holds", [])):
            bad.append(f"thread {ident}: holds {t['holds']}, expected {fact.get('holds', [])}")
        if "future" in fact:
            w = t["worker"]
            if not w or w["future"] != fact["future"] or sorted(w["awaited_by"]) != fact["awaited_by"]:
                bad.append(f"thread {ident}: worker {w}, expected future {fact['future']} awaited by {fact['awaited_by']}")
            for task in fact["awaited_by"]:
                a = snap.got[task]["awaiting"]
                if not a or a["kind"] != "executor" or a["thread"] != int(ident) or a["address"] != fact["future"]:
                    bad.append(f"{snap.name(task)}: awaiting {a}, expected the worker {ident}")
    # The /health request's worker went back to the pool: idle, folded.
    idle = [t for t in snap.doc["threads"] if t["worker"] and t["worker"]["work_item"] is None]
    if not idle:
        bad.append("no idle anyio worker (the /health request's)")
    assert not bad, "\n".join(bad)
    assert_same_task_set(snap)
    assert snap.doc["findings"] == [] and snap.rc == EXIT_OK


# --- the agent's stall event says what a blocked loop thread waits for ---------------------

def test_stall_event_names_the_sync_wait(interp):
    """`run` on the loop-self shape: the loop's thread blocks in
    run_coroutine_threadsafe(...).result() on its own loop; the stall event
    names that wait (the Future, queued on the blocked loop)."""
    from agent_helpers import out_path, read_json, run_in
    interp.prepare()
    truth_path = out_path(interp, "aio_boundary-stall")
    s = run_in(interp, "aio_boundary.py", "--truth", interp.inside(truth_path), "--variant", "loop-self",
               options=("--stall-threshold", "200ms", "--interval", "100ms", "--timeout", "6s"))
    truth = read_json(truth_path)
    truth_path.unlink()
    stalls = [e for e in s.events if e["type"] == "stall" and e["captured"]]
    assert stalls, s.summary()
    fact = truth["facts"]["threads"][str(truth["facts"]["loop_thread"])]["wait"]
    named = [e["waiting"] for e in stalls if e.get("waiting")]
    assert named, s.summary()
    w = named[-1]
    assert (w["kind"], w["object"], w["queued"], w["loop"]) == (fact["kind"], fact["object"], True, fact["loop"]), w
