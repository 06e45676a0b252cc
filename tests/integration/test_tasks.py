"""aioscope dump of asyncio tasks equals what the interpreter reports itself.

Each fixture blocks its tasks in known places and computes the ground truth
from inside (fixtures/_truth.py AsyncTruth): asyncio.all_tasks(), stitched
coroutine stacks, the running task's live frames, awaited-by edges. One
process and one dump per interpreter serve all the tests of a fixture.
"""
import pytest

from aio import (assert_awaited_by, assert_awaiting, assert_call_graph_agrees, assert_same_task_set, assert_stacks,
                 awaiting_view, frames, mismatches, shared_snap, version)


# --- aio_shapes.py: every shape of coroutine chain -------------------------------------

@pytest.fixture(scope="module")
def shapes(interp):
    yield from shared_snap(interp, "aio_shapes.py")


def test_shapes_task_set(shapes):
    assert_same_task_set(shapes)
    finished = shapes.facts.get("finished_task")
    if finished:
        assert finished not in shapes.got, "an eager task that finished in its first step is listed"


SHAPES = {
    # shape -> (first CPython with it, task names that show it)
    "deep-chain": ((3, 10), ["deep"]),
    "task-awaits-task": ((3, 10), ["chain-top", "chain-middle", "chain-leaf"]),
    "gather": ((3, 10), ["gatherer", "gather-child-task"]),
    "nested-gather": ((3, 10), ["nested-gatherer"]),
    "taskgroup": ((3, 11), ["tg-in-exit", "tg-in-body", "tg-exit-child-0", "tg-body-child-0"]),
    "eager": ((3, 12), ["eager-suspended"]),
    "eager_start": ((3, 14), ["eager-start-kw"]),
    "async-generator": ((3, 10), ["agen-consumer", "agen-body-blocks", "agen-athrow", "agen-asend"]),
    "yield-from": ((3, 10), ["legacy-yield-from"]),
    "await-wrapper": ((3, 10), ["await-wrapper"]),
    "recursion": ((3, 10), ["recursion"]),
    "methods": ((3, 10), ["methods", "closure"]),
    "wait": ((3, 10), ["waits-for-two", "wait-a", "wait-b"]),
    "wait_for": ((3, 10), ["waits-for-one", "wait_for-inner"]),
    "shield": ((3, 10), ["shielded", "shield-inner"]),
    "second-loop": ((3, 10), ["second-leaf", "second-awaits-leaf", "second-rec", "second-sleep"]),
    "subclass": ((3, 10), ["task-subclass"]),
    "stopped-loop": ((3, 10), ["stopped-loop-leaf", "stopped-loop-rec", "stopped-loop-late"]),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_shape_matches_truth(shapes, shape):
    first, names = SHAPES[shape]
    if version(shapes) < first:
        pytest.skip(f"shape {shape} unavailable: CPython {shapes.truth['version']} predates "
                    f"{first[0]}.{first[1]}")
    for name in names:
        want = shapes.named(name)
        got = shapes.got.get(want["id"])
        assert got is not None, f"task {name} missing from the dump"
        assert frames(got["stack"]) == frames(want["stack"]), f"stack of {name}"
        assert sorted(got["awaited_by"]) == sorted(want["awaited_by"]), f"awaited_by of {name}"
        assert awaiting_view(want["awaiting"], got["awaiting"]) == want["awaiting"], \
            f"awaiting of {name}: {got['awaiting']}"


def test_shapes_stacks(shapes):
    assert_stacks(shapes)


def test_shapes_threads_loops_states(shapes):
    bad = mismatches(shapes, "thread_id", lambda t: t["thread_id"])
    bad += mismatches(shapes, "loop", lambda t: t["loop"])
    bad += mismatches(shapes, "state", lambda t: t["state"])
    bad += mismatches(shapes, "interpreter_id", lambda t: 0)
    bad += mismatches(shapes, "error", lambda t: None)
    assert not bad, "\n".join(bad)
    # Two loops running on two threads, and one that no thread runs.
    assert len(shapes.truth["loops"]) == 3
    assert set(shapes.truth["loops"].values()) == {t["thread_id"] for t in shapes.doc["tasks"]}
    assert None in set(shapes.truth["loops"].values())


def test_shapes_awaiting(shapes):
    assert_awaiting(shapes)
    assert all(t["awaiting"] for t in shapes.truth["tasks"]), "the fixture states every task's wait"


def test_shapes_awaited_by(shapes):
    assert_awaited_by(shapes)


def test_shapes_call_graph_cross_check(shapes):
    """3.14+: asyncio.capture_call_graph() agrees with the ground truth, and so the dump."""
    if version(shapes) < (3, 14):
        pytest.skip(f"asyncio.capture_call_graph unavailable: CPython {shapes.truth['version']}")
    assert all(t["call_graph_awaited_by"] is not None for t in shapes.truth["tasks"])
    assert_call_graph_agrees(shapes)
    assert_awaited_by(shapes)


def test_shapes_cancel_and_holds(shapes):
    bad = mismatches(shapes, "cancel_requests", lambda t: t["cancel_requests"])
    bad += mismatches(shapes, "cancel_pending", lambda t: t["cancel_pending"])
    bad += mismatches(shapes, "handling_cancel", lambda t: False)
    bad += mismatches(shapes, "holds", lambda t: t["holds"], lambda t: sorted(t["holds"]))
    assert not bad, "\n".join(bad)


def test_shapes_have_no_findings(shapes):
    assert shapes.doc["findings"] == []
    assert shapes.rc == 0
    assert shapes.doc["warnings"] == []


# --- aio_primitives.py: what a task waits on, and what it holds ------------------------------

@pytest.fixture(scope="module")
def primitives(interp):
    yield from shared_snap(interp, "aio_primitives.py")


# task name in the fixture -> first CPython that has the primitive
PRIMITIVES = {"lock": (3, 10), "semaphore": (3, 10), "condition": (3, 10), "condition-wait_for": (3, 10),
              "barrier": (3, 11), "queue-get": (3, 10), "queue-put": (3, 10), "queue-join": (3, 10),
              "executor": (3, 10), "future": (3, 10), "lock-holder": (3, 10), "semaphore-holder": (3, 10)}


def test_primitives_task_set_and_stacks(primitives):
    assert_same_task_set(primitives)
    assert_stacks(primitives)
    assert_call_graph_agrees(primitives)
    assert_awaited_by(primitives)


@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_primitive_wait(primitives, name, request):
    if version(primitives) < PRIMITIVES[name]:
        pytest.skip(f"asyncio primitive {name} unavailable: CPython {primitives.truth['version']}")
    want = primitives.named(name)
    got = primitives.got.get(want["id"])
    assert got is not None, f"task {name} missing from the dump"
    assert got["state"] == "pending"
    assert frames(got["stack"]) == frames(want["stack"])
    assert awaiting_view(want["awaiting"], got["awaiting"]) == want["awaiting"], \
        f"{name} awaits {got['awaiting']}"
    assert sorted(got["holds"]) == want["holds"], f"{name} holds {got['holds']}"


def test_primitives_have_no_findings(primitives):
    assert primitives.doc["findings"] == []
    assert primitives.rc == 0


# --- aio_many.py: ten thousand tasks ------------------------------------------------------

@pytest.fixture(scope="module")
def many(interp):
    yield from shared_snap(interp, "aio_many.py", "--tasks", "10000", truth_timeout=120)


def test_many_every_task_and_stack(many):
    assert many.facts["tasks"] == 10000
    assert len(many.truth["tasks"]) == 10001  # and main
    want = {(t["id"], t["name"], tuple(frames(t["stack"]))) for t in many.truth["tasks"]}
    got = {(t["id"], t["name"], tuple(frames(t["stack"]))) for t in many.doc["tasks"]}
    missing, extra = want - got, got - want
    assert not missing and not extra, \
        f"{len(missing)} (id, name, stack) expected but not dumped, e.g. {sorted(missing)[:2]}; " \
        f"{len(extra)} dumped but not expected, e.g. {sorted(extra)[:2]}"
    # The four code paths give four distinct stacks (and main's).
    assert len({s for _, _, s in want}) == 5


def test_many_awaiting(many):
    assert_awaiting(many)
    assert many.doc["findings"] == [] and many.rc == 0


# --- aio_running.py: a task blocking its loop ------------------------------------------------

@pytest.fixture(scope="module")
def running(interp):
    yield from shared_snap(interp, "aio_running.py")


def test_running_tasks_state_and_live_stack(running):
    assert_same_task_set(running)
    for name in ("blocker", "sleeper"):
        want = running.named(name)
        assert want["state"] == "running"
        got = running.got[want["id"]]
        assert got["state"] == "running", f"{name} is {got['state']}"
        assert frames(got["stack"]) == frames(want["stack"]), f"live stack of {name}"
        # Sync frames under the coroutine are part of it.
        assert {"sync_c", "sync_b", "sync_a", "block_here"} <= {f["function"] for f in got["stack"]} or \
            {"nap_deeper", "nap"} <= {f["function"] for f in got["stack"]}
        assert got["thread_id"] == want["thread_id"]
        assert got["awaiting"] is None


def test_running_fixture_others_suspended(running):
    assert_stacks(running)
    assert_awaiting(running)
    assert_call_graph_agrees(running)
    assert_awaited_by(running)
    bad = mismatches(running, "state", lambda t: t["state"])
    bad += mismatches(running, "thread_id", lambda t: t["thread_id"])
    bad += mismatches(running, "cancel_requests", lambda t: t["cancel_requests"])
    bad += mismatches(running, "cancel_pending", lambda t: t["cancel_pending"])
    assert not bad, "\n".join(bad)
    assert running.doc["findings"] == [] and running.rc == 0


def test_running_task_holds_its_lock(running):
    """A task blocking its loop inside `async with lock` holds the lock others wait for."""
    if version(running) < (3, 12):
        pytest.skip(f"holds of a running task unavailable on CPython {running.truth['version']}: before 3.12 a "
                    "frame awaiting a coroutine does not save its stack pointer")
    want = running.named("blocker")
    assert want["holds"], "the fixture entered the lock"
    assert sorted(running.got[want["id"]]["holds"]) == want["holds"]


# --- real libraries: Debian's python3.11 with python3-aiohttp, -uvloop, -anyio ------------------

LIBRARY_INTERPRETER = "3.11-debian"
LIBRARIES = {"aiohttp": "aio_aiohttp.py", "uvloop": "aio_uvloop.py", "anyio": "aio_anyio.py"}


@pytest.fixture(scope="module", params=list(LIBRARIES))
def library(interp, request):
    lib = request.param
    if interp.name != LIBRARY_INTERPRETER:
        pytest.skip(f"{lib} fixture unavailable on CPython {interp.name}: the Debian python3-{lib} package "
                    f"is installed for {LIBRARY_INTERPRETER} only")
    import subprocess
    probe = subprocess.run(interp.argv("_version.py")[:1] + ["-c", f"import {lib}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{lib} unavailable for {interp.name}: {probe.stderr.strip().splitlines()[-1:]}"
                    f" (tests/zoo/provision.sh installs python3-{lib})")
    yield from shared_snap(interp, LIBRARIES[lib])


def test_library_tasks_equal_all_tasks(library):
    assert_same_task_set(library)
    assert len(library.truth["tasks"]) >= 5


def test_library_stacks(library):
    assert_stacks(library)


def test_library_threads_loops_states(library):
    bad = mismatches(library, "thread_id", lambda t: t["thread_id"])
    bad += mismatches(library, "loop", lambda t: t["loop"])
    bad += mismatches(library, "state", lambda t: t["state"])
    bad += mismatches(library, "error", lambda t: None)
    assert not bad, "\n".join(bad)


def test_library_awaiting_and_awaited_by(library):
    # What the fixture states (its own primitives, tasks awaiting tasks) must
    # hold exactly; the libraries' private futures are not stated.
    assert_awaiting(library, only=lambda t: t["awaiting"] is not None)
    bad = []
    for t in library.truth["tasks"]:
        missing = set(t["awaited_by"]) - set(library.got[t["id"]]["awaited_by"])
        if missing:
            bad.append(f"{t['name']}: awaited by {sorted(missing)} per the ground truth, not in the dump")
    assert not bad, "\n".join(bad)
    bad = mismatches(library, "holds", lambda t: t["holds"], lambda t: sorted(t["holds"]))
    assert not bad, "\n".join(bad)
    assert library.doc["findings"] == [] and library.rc == 0
