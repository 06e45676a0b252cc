"""aioscope dump of trio programs (and anyio on trio) equals what trio reports itself.

Each fixture blocks its tasks in known places and computes the ground truth
from inside (fixtures/_trio_truth.py): the task tree from
trio.lowlevel.current_root_task(), Task.child_nurseries and
Nursery.child_tasks, stitched coroutine stacks, what each task waits on from
trio's own records. Every process is dumped twice, live and with --pause, and
both dumps are compared task by task.

trio and anyio are Debian's (tests/integration/trio_libs.py says which for
each interpreter); an interpreter that cannot import them is skipped with the
reason.
"""
import json
import os
import re
import time
from pathlib import Path

import pytest

from aio import EXIT_OK, EXIT_STUCK, KilledOnFailure, dump_tasks, fmt_stack, frames
from harness import run_aioscope
from trio_libs import library_env, pythonpath

MODES = ["live", "pause"]


class TrioSnap:
    """A fixture process, its ground truth, and a live and a paused dump."""

    def __init__(self, interp, script, path=None):
        with pythonpath(path):
            self.fx = KilledOnFailure(interp, script)
        try:
            self.dumps = {"live": dump_tasks(self.fx.pid), "pause": dump_tasks(self.fx.pid, "--pause")}
        except BaseException:
            self.fx.close()
            raise
        self.truth = self.fx.truth
        self.facts = self.truth.get("facts", {})
        self.want = {t["id"]: t for t in self.truth["tasks"]}

    def doc(self, mode):
        return self.dumps[mode][0]

    def rc(self, mode):
        return self.dumps[mode][1]

    def got(self, mode, runtime=None):
        return {t["id"]: t for t in self.doc(mode)["tasks"] if runtime is None or t["runtime"] == runtime}

    def named(self, name):
        hits = [t for t in self.truth["tasks"] if t["name"] == name]
        assert len(hits) == 1, f"{len(hits)} tasks named {name!r} in the ground truth"
        return hits[0]

    def label(self, tid):
        t = self.want.get(tid)
        return f"{t['name']}({tid})" if t else tid


def shared(interp, script, *modules):
    path, _ = library_env(interp, *modules)
    snap = TrioSnap(interp, script, path)
    try:
        yield snap
    finally:
        snap.fx.close()


def view(want, got):
    """The dumped awaiting, reduced to what the ground truth states."""
    if want is None or got is None:
        return got and {"kind": got["kind"]}
    out = {"kind": got["kind"]}
    for k in ("object", "fd"):
        if k in want:
            out[k] = got.get(k)
    if "children" in want:
        out["children"] = sorted(got.get("children") or [])
    return out


def compare(snap, mode, field, expected_of, got_of=None):
    got_of = got_of or (lambda t: t[field])
    got = snap.got(mode, "trio")
    bad = []
    for tid, want in snap.want.items():
        g = got.get(tid)
        if g is None:
            bad.append(f"{snap.label(tid)}: not in the dump")
        elif expected_of(want) != got_of(g):
            bad.append(f"{snap.label(tid)}: {field} is {got_of(g)!r}, expected {expected_of(want)!r}")
    return bad


def assert_tasks_match(snap, mode):
    """Everything the ground truth states, task by task (the trio tasks of the dump)."""
    got = snap.got(mode, "trio")
    missing = [snap.label(t) for t in set(snap.want) - set(got)]
    extra = [f"{got[t]['name']}({t})" for t in set(got) - set(snap.want)]
    assert not missing and not extra, f"missing from the dump: {missing}; not trio tasks: {extra}"
    bad = []
    for field in ("name", "runtime", "loop", "thread_id", "state"):
        bad += compare(snap, mode, field, lambda t, f=field: t[f])
    bad += compare(snap, mode, "stack", lambda t: frames(t["stack"]), lambda t: frames(t["stack"]))
    for tid, want in snap.want.items():
        g = got.get(tid)
        if g and view(want["awaiting"], g["awaiting"]) != want["awaiting"]:
            bad.append(f"{snap.label(tid)}: awaiting {g['awaiting']}, expected {want['awaiting']}")
    bad += compare(snap, mode, "awaited_by", lambda t: sorted(t["awaited_by"]), lambda t: sorted(t["awaited_by"]))
    bad += compare(snap, mode, "holds", lambda t: sorted(t["holds"]), lambda t: sorted(t["holds"]))
    bad += compare(snap, mode, "cancel_pending", lambda t: t["cancel_pending"])
    handling = set(snap.facts.get("handling_cancel", []))
    bad += compare(snap, mode, "handling_cancel", lambda t: t["id"] in handling)
    bad += compare(snap, mode, "error", lambda t: None)
    bad += compare(snap, mode, "cancel_requests", lambda t: None)
    detail = []
    for tid, want in snap.want.items():
        g = got.get(tid)
        if g and frames(g["stack"]) != frames(want["stack"]):
            detail.append(f"{snap.label(tid)}:\n    dumped:   {fmt_stack(g['stack'])}\n"
                          f"    expected: {fmt_stack(want['stack'])}")
    assert not bad, f"{len(bad)} differences:\n" + "\n".join(bad[:40]) + "\n" + "\n".join(detail[:5])


# --- trio_tasks.py: every kind of wait, the nursery tree, two runs --------------------

@pytest.fixture(scope="module")
def trio_tasks(interp):
    yield from shared(interp, "trio_tasks.py", "trio")


@pytest.mark.parametrize("mode", MODES)
def test_trio_tasks_match_trio(trio_tasks, mode):
    assert_tasks_match(trio_tasks, mode)


def test_trio_tasks_cover_every_wait(trio_tasks):
    """The fixture really blocks in each kind of wait, as trio itself reports."""
    kinds = {t["awaiting"]["kind"] for t in trio_tasks.truth["tasks"] if t["awaiting"]}
    assert kinds >= {"sleep", "event", "lock", "semaphore", "condition", "capacity-limiter", "parking-lot",
                     "channel-send", "channel-receive", "wait-readable", "wait-writable", "nursery", "to-thread",
                     "wait_task_rescheduled"}, kinds
    assert len(trio_tasks.truth["runs"]) == 2
    running = [t for t in trio_tasks.truth["tasks"] if t["state"] == "running"]
    assert [t["name"] for t in running] == ["__main__.second"]
    assert {"sync_c", "sync_b", "blocks_thread"} <= {f["function"] for f in running[0]["stack"]}
    assert trio_tasks.named("shielded-parent")["cancel_pending"]
    assert trio_tasks.facts["handling_cancel"] == [trio_tasks.named("handling-cancel")["id"]]
    assert trio_tasks.named("lock-holder")["holds"] and trio_tasks.named("limiter-holder")["holds"]


@pytest.mark.parametrize("mode", MODES)
def test_trio_tasks_no_findings(trio_tasks, mode):
    doc = trio_tasks.doc(mode)
    assert doc["findings"] == [], doc["findings"]
    assert doc["warnings"] == []
    assert trio_tasks.rc(mode) == EXIT_OK


def test_trio_text_tree_and_table(trio_tasks):
    pid = trio_tasks.fx.pid
    text = run_aioscope("dump", pid)
    assert text.returncode == EXIT_OK, text.stderr
    for run in trio_tasks.truth["runs"]:
        assert f"trio.run {run}" in text.stdout
    # Every task once in the trees; identical siblings are coalesced as "× N".
    shown = 0
    for line in text.stdout.splitlines():
        if "Task '" in line:
            many = re.search(r"× (\d+) Task", line)
            shown += int(many.group(1)) if many else 1
    assert shown == len(trio_tasks.truth["tasks"])
    assert f"Task 'starter' {trio_tasks.named('starter')['id']}  awaits nursery of 1 tasks" in text.stdout
    assert "waits on Lock " + trio_tasks.named("lock-waiter")["awaiting"]["object"] + " held by 'lock-holder'" \
        in text.stdout
    reader = trio_tasks.named("socket-reader")["awaiting"]
    assert f"waits until fd {reader['fd']} is readable" in text.stdout
    table = run_aioscope("dump", "--table", pid)
    assert table.returncode == EXIT_OK, table.stderr
    rows = [line for line in table.stdout.splitlines() if line.startswith("0x")]
    assert sorted(r.split()[0] for r in rows) == sorted(trio_tasks.want)
    # WHERE names the program's own frame, not trio's internals.
    sleeper = next(r for r in rows if r.split()[0] == trio_tasks.named("sleeper")["id"])
    assert "sleeper (trio_tasks.py:" in sleeper


def test_trio_json_renders_back(trio_tasks, tmp_path):
    saved = tmp_path / "snap.json"
    saved.write_text(json.dumps(trio_tasks.doc("live")))
    text = run_aioscope("render", saved)
    assert text.returncode == 0, text.stderr
    assert "trio.run " in text.stdout
    # A snapshot written before tasks had a runtime reads as asyncio's.
    doc = trio_tasks.doc("live")
    for t in doc["tasks"]:
        del t["runtime"]
    saved.write_text(json.dumps(doc))
    old = run_aioscope("render", saved)
    assert old.returncode == 0, old.stderr
    assert "Event loop " in old.stdout and "trio.run " not in old.stdout


# --- trio_deadlock.py: deadlocks trio's state makes certain, and look-alikes that are not --------

@pytest.fixture(scope="module")
def trio_deadlock(interp):
    yield from shared(interp, "trio_deadlock.py", "trio")


def finding_set(findings):
    return sorted((f["kind"], tuple(sorted(f["tasks"])), tuple(sorted(f["objects"]))) for f in findings)


@pytest.mark.parametrize("mode", MODES)
def test_trio_deadlocks_found(trio_deadlock, mode):
    want = finding_set(trio_deadlock.truth["findings"])
    got = finding_set(trio_deadlock.doc(mode)["findings"])
    assert got == want, "\n".join(f["message"] for f in trio_deadlock.doc(mode)["findings"])
    assert trio_deadlock.rc(mode) == EXIT_STUCK
    assert trio_deadlock.doc(mode)["warnings"] == []


@pytest.mark.parametrize("mode", MODES)
def test_trio_deadlock_fixture_tasks_match(trio_deadlock, mode):
    assert_tasks_match(trio_deadlock, mode)


def test_trio_deadlock_messages(trio_deadlock):
    findings = trio_deadlock.doc("live")["findings"]
    by_kind = {f["kind"]: f["message"] for f in findings}
    if "abandoned_lock" in trio_deadlock.facts:  # trio >= 0.25 raises instead of deadlocking
        assert "abandoned-lock" not in by_kind
    else:
        assert "has finished without releasing it" in by_kind["abandoned-lock"]
        assert "'lock-orphan-owner'" in by_kind["abandoned-lock"]
    # Findings name where the program waits, not trio's internals.
    assert "_async_yield" not in " ".join(by_kind.values())
    text = run_aioscope("dump", trio_deadlock.fx.pid)
    assert text.returncode == EXIT_STUCK
    assert "DEADLOCK lock-deadlock" in text.stdout and "DEADLOCK orphaned-wait" in text.stdout
    assert ("DEADLOCK abandoned-lock" in text.stdout) == ("abandoned_lock" not in trio_deadlock.facts)


# --- trio_guest.py: a guest run on an asyncio loop -----------------------------------

@pytest.fixture(scope="module")
def trio_guest(interp):
    yield from shared(interp, "trio_guest.py", "trio")


@pytest.mark.parametrize("mode", MODES)
def test_trio_guest_run_found_with_its_thread(trio_guest, mode):
    """No trio.run frame: the run is found through trio's run context, on the loop's thread."""
    assert_tasks_match(trio_guest, mode)
    assert {t["thread_id"] for t in trio_guest.truth["tasks"]} == {trio_guest.facts["host_thread"]}
    host = [t for t in trio_guest.doc(mode)["tasks"] if t["runtime"] == "asyncio"]
    assert [t["name"] for t in host] == ["Task-1"] and host[0]["thread_id"] == trio_guest.facts["host_thread"]
    assert trio_guest.doc(mode)["findings"] == [] and trio_guest.rc(mode) == EXIT_OK
    assert trio_guest.doc(mode)["warnings"] == []


# --- trio_anyio.py: anyio on the trio backend ----------------------------------------

@pytest.fixture(scope="module")
def trio_anyio(interp):
    yield from shared(interp, "trio_anyio.py", "trio", "anyio")


@pytest.mark.parametrize("mode", MODES)
def test_anyio_on_trio_matches_trio(trio_anyio, mode):
    assert_tasks_match(trio_anyio, mode)
    assert trio_anyio.doc(mode)["findings"] == [] and trio_anyio.rc(mode) == EXIT_OK
    assert trio_anyio.doc(mode)["warnings"] == []


def test_anyio_on_trio_covers_its_primitives(trio_anyio):
    kinds = {t["awaiting"]["kind"] for t in trio_anyio.truth["tasks"] if t["awaiting"]}
    assert kinds >= {"sleep", "event", "lock", "channel-receive", "channel-send", "nursery", "to-thread"}, kinds
    # Task groups are nurseries: the host over its children, nested groups under their host.
    host = trio_anyio.named("nested-host")
    children = [t["name"] for t in trio_anyio.truth["tasks"] if host["id"] in t["awaited_by"]]
    assert sorted(children) == ["nested-child", "nested-sleeper"]


# --- aio_anyio.py: anyio task groups on asyncio, as a tree --------------------------------

@pytest.fixture(scope="module")
def anyio_asyncio(interp):
    yield from shared(interp, "aio_anyio.py", "anyio")


def test_anyio_on_asyncio_task_groups_are_a_tree(anyio_asyncio):
    """Each host waits in its task group's __aexit__ for exactly its children."""
    got = anyio_asyncio.got("live")
    hosts = {}
    for t in anyio_asyncio.truth["tasks"]:
        for parent in t["awaited_by"]:
            hosts.setdefault(parent, []).append(t["id"])
    assert len(hosts) == 2, "the fixture has a task group inside a task group"
    for host, children in hosts.items():
        a = got[host]["awaiting"]
        assert a and a["kind"] == "taskgroup", f"{anyio_asyncio.label(host)} awaits {a}"
        assert sorted(a["children"]) == sorted(children)
        for c in children:
            assert got[c]["awaited_by"] == [host], f"{anyio_asyncio.label(c)}: {got[c]['awaited_by']}"
        assert got[host]["runtime"] == "asyncio"


# --- the agent's snapshots: the same trio tasks, read from inside the process -------------

def test_agent_snapshot_has_trio_tasks_and_deadlocks(interp):
    """`aioscope run --snapshot-every`: the agent reads its own process with the
    same reader, so its snapshots carry the trio tasks and findings too."""
    from agent_helpers import Live, host_only, out_path, snapshot_read_after, wait_file
    from harness import AIOSCOPE
    host_only(interp)
    path, _ = library_env(interp, "trio")
    truth_path = out_path(interp, "trio_deadlock")
    env = dict(os.environ, PYTHONPATH=path) if path else None
    live = Live([AIOSCOPE, "run", "--json", "--snapshot-every", "300ms", "--",
                 *interp.argv("trio_deadlock.py", "--truth", interp.inside(truth_path))], env=env)
    try:
        truth = wait_file(truth_path, 60, live.proc, "truth")
        assert "error" not in truth, truth["error"]
        pid = truth["pid"]
        while Path(f"/proc/{pid}/task/{truth['observer_native_id']}").exists():
            time.sleep(0.01)
        settled = time.time()
        snap = live.wait_for(snapshot_read_after(settled), 20, "snapshot after settling")
    finally:
        live.stop()
        truth_path.unlink(missing_ok=True)
    want = {t["id"]: t for t in truth["tasks"]}
    got = {t["id"]: t for t in snap["tasks"] if t["runtime"] == "trio"}
    assert set(got) == set(want)
    bad = [f"{w['name']}: {got[tid]['awaiting']} / {got[tid]['awaited_by']}" for tid, w in want.items()
           if view(w["awaiting"], got[tid]["awaiting"]) != w["awaiting"]
           or sorted(got[tid]["awaited_by"]) != sorted(w["awaited_by"])
           or frames(got[tid]["stack"]) != frames(w["stack"])]
    assert not bad, "\n".join(bad)
    assert finding_set(snap["findings"]) == finding_set(truth["findings"]), snap["findings"]


# --- the HTML report of a trio snapshot -------------------------------------------------

def test_report_shows_trio_runs_and_findings(tmp_path):
    """`aioscope report` of a trio dump: the viewer's task view draws the
    nursery tree under its trio.run and lists the findings (headless Chromium)."""
    from browser import chromium_path, dump_dom
    from zoo import ZOO, usable
    if not chromium_path():
        pytest.skip("chromium is not installed (tests/viewer/setup.sh installs Debian's chromium)")
    interp = usable(next(z for z in ZOO if z.name == "3.11-debian"))
    snap = TrioSnap(interp, "trio_deadlock.py", library_env(interp, "trio")[0])
    try:
        saved = tmp_path / "trio.json"
        saved.write_text(json.dumps(snap.doc("live")))
    finally:
        snap.fx.close()
    out = tmp_path / "report.html"
    r = run_aioscope("report", saved, "-o", out)
    assert r.returncode == 0, r.stderr
    dom = dump_dom(out.resolve().as_uri() + "#tasks")
    assert "trio.run " + snap.truth["runs"][0] in dom
    for name in ("cycle-a", "cycle-b", "exit-parent", "exit-child", "orphan-waiter"):
        assert f">{name}<" in dom, name
    assert "awaits nursery of 1 tasks" in dom
    for kind in {f["kind"] for f in snap.truth["findings"]}:
        assert kind in dom, kind
