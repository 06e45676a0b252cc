"""The agent under uvloop (issue 11): stalls, the silent bugs, honest
capabilities, and a real application (uvicorn + FastAPI), against the
fixtures' own ground truth.

uvloop runs its callbacks in its own Cython handles; the agent times them at
the handles' context entry and exit (docs/how-it-works.md, "uvloop"). Only
Debian's python3.11 has uvloop (python3-uvloop): every test here runs
there, and is skipped, with the reason, when it or the package cannot be
had.

- uvloop_stalls.py blocks its loop 5 x 300 ms in block_for(), measuring each
  block and sampling the blocked stacks itself; its --yielding twin does the
  same work in 30 ms slices with a yield between them. uvloop's debug mode
  times every ready callback (the same log record as asyncio's): the ground
  truth for any callback the machine made overrun.
- The silent-bug fixtures run with --loop uvloop: the cases of the events
  that are active under uvloop must be reported exactly; swallowed
  cancellations are not traced there, so the capability says inactive and
  `--fail-on cancel-swallowed` exits 13 instead of passing.
- foreign_loop.py runs a homemade loop no agent can time: inactive, 13.
- uvicorn_app.py: a FastAPI endpoint blocks the loop under local load.
"""
import json
import subprocess
from collections import Counter

import pytest

from agent_helpers import (EXIT_STALL, INTERVAL_MS, THRESHOLD_MS, Stream, attach_until_exit, describe_stall,
                           detection_problems, frames, judge_stalls, match_stalls, out_path, read_json)
from harness import AIOSCOPE
from zoo import ZOO, usable
import test_silent_bugs as bugs

DEBIAN = "3.11-debian"
OPTS = ["--stall-threshold", f"{THRESHOLD_MS}ms", "--interval", f"{INTERVAL_MS}ms"]
EPISODES = 5
BLOCK_MS = 300.0
EXIT_NOT_ACTIVE = 13


def with_module(module, package):
    """Debian's python3.11, prepared, if it can import `module`; else skip, saying why."""
    interp = usable(next(i for i in ZOO if i.name == DEBIAN))
    probe = subprocess.run([interp.argv("_version.py")[0], "-c", f"import {module}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{module} unavailable for {DEBIAN}: {probe.stderr.strip().splitlines()[-1:]} "
                    f"(tests/zoo/provision.sh installs {package})")
    return interp


def run_quiet(interp, stem, script, *args, options=(), timeout=120):
    """`aioscope run -q -o FILE [options] -- python3.11 script args`: the Stream, with
    the events from FILE (the program's stdout and stderr stay its own)."""
    events_path = out_path(interp, stem + "-events")
    argv = [AIOSCOPE, "run", "--quiet", "--output", events_path, *options, "--", *interp.argv(script, *args)]
    try:
        r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
        s = Stream(argv, r.returncode, r.stdout, r.stderr, 0)
        s.events = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()] \
            if events_path.exists() else []
    finally:
        events_path.unlink(missing_ok=True)
    return s


def final_capability(s, name, pid=None):
    states = s.capability_states(name, pid)
    assert states, f"no hello or capabilities event:\n{s.summary()}"
    return states[-1][1], states[-1][2]


# --------------------------------------------------------------------------------------
# Stalls: uvloop_stalls.py and its busy-but-yielding twin

class UvloopRun:
    def __init__(self, yielding):
        interp = with_module("uvloop", "python3-uvloop")
        stem = "uvloop_stalls" + ("_yielding" if yielding else "")
        truth_path = out_path(interp, stem)
        try:
            self.stream = run_quiet(interp, stem, "uvloop_stalls.py", "--truth", truth_path,
                                    "--episodes", str(EPISODES), "--block", str(BLOCK_MS / 1000),
                                    *(["--yielding"] if yielding else []), options=[*OPTS, "--fail-on", "stall"])
            self.truth = read_json(truth_path)
        finally:
            truth_path.unlink(missing_ok=True)
        assert "error" not in self.truth, f"fixture: {self.truth['error']}"
        assert self.truth["loop_class"] == "uvloop.Loop", self.truth["loop_class"]
        assert self.truth["hooked_before_start"], "the agent never hooked asyncio before the loop started"
        self.episodes = self.truth["episodes"]


@pytest.fixture(scope="module")
def stalls():
    return UvloopRun(yielding=False)


@pytest.fixture(scope="module")
def twin():
    return UvloopRun(yielding=True)


def test_uvloop_stall_detection_is_active_and_says_uvloop(stalls):
    s = stalls.stream
    s.assert_well_formed()
    first = s.events.index(s.of("stall")[0]) if s.of("stall") else len(s.events)
    assert s.active_before("stall_detection", first), f"not active before the first stall:\n{s.summary()}"
    state, reason = final_capability(s, "stall_detection")
    assert state == "active" and "uvloop" in reason, (state, reason)
    # Not traced under uvloop: said so, never "active".
    state, reason = final_capability(s, "cancellation_swallowed")
    assert state == "inactive" and "uvloop" in reason, (state, reason)
    for name in ("unawaited_coroutine", "task_exception_unretrieved", "task_destroyed_pending", "snapshots"):
        assert final_capability(s, name)[0] == "active", (name, final_capability(s, name))


def test_uvloop_five_stalls_exit_11(stalls):
    s = stalls.stream
    last = s.exit()
    assert last["stalls"] == len(s.of("stall")) and len(s.of("stall_end")) == len(s.of("stall")), s.summary()
    pairs, lost, missed = match_stalls(s, stalls.episodes)
    assert not missed, f"episodes without a stall: {[e['index'] for e in missed]}\n{s.summary()}"
    assert len(pairs) == EPISODES
    # Every stall (the episodes and any other) is a callback uvloop itself
    # timed past the threshold, with the same duration, and every such
    # callback is a stall.
    problems = judge_stalls(s, stalls.truth["slow_callbacks"])
    assert not problems, "\n".join(problems) + "\n" + s.summary()
    assert s.rc == EXIT_STALL, f"--fail-on stall with stalls: {s.rc}\n{s.stderr}"


def test_uvloop_stall_timing(stalls):
    """Reported within threshold + one interval (median, detection_problems);
    each duration within two intervals of the block the fixture measured."""
    s = stalls.stream
    pairs, _, _ = match_stalls(s, stalls.episodes)
    bad = detection_problems(s)
    for st, end, ep in pairs:
        if end is None:
            bad.append(f"stall #{st['stall_id']} has no stall_end")
            continue
        err = end["duration_ms"] - ep["measured_ms"]
        if not -0.5 <= err <= 2 * INTERVAL_MS:
            bad.append(f"stall #{st['stall_id']} lasted {end['duration_ms']:.2f} ms, the fixture measured "
                       f"{ep['measured_ms']:.2f} ms")
        if abs(st["started_at"] - ep["started_at"]) > 2 * INTERVAL_MS / 1000:
            bad.append(f"stall #{st['stall_id']} started {(st['started_at'] - ep['started_at']) * 1000:.1f} ms "
                       "away from the block")
    assert not bad, "\n".join(bad) + "\n" + s.summary()


def test_uvloop_stall_names_the_blocking_function_and_task(stalls):
    s = stalls.stream
    pairs, _, _ = match_stalls(s, stalls.episodes)
    assert pairs, s.summary()
    for st, end, ep in pairs:
        assert st["captured"], describe_stall(st)
        assert st["stack"][0]["function"] == "block_for", describe_stall(st)
        assert frames(st["stack"]) == frames(ep["stack"]), "the loop thread's stack differs from the sampled one"
        assert (st["thread_id"], st["native_id"]) == (ep["thread_id"], ep["native_id"])
        task = st["task"]
        assert task is not None, describe_stall(st)
        assert (task["name"], task["id"]) == ("stall-task", ep["task_id"])
        assert task["state"] == "running"
        assert frames(task["stack"]) == frames(ep["task_stack"]), "the running task's stitched stack"


def test_uvloop_busy_but_yielding_twin_has_no_stall(twin):
    s, stats = twin.stream, twin.truth["stats"]
    # The twin's premise: as much work as the blocks, in slices that yield.
    assert stats["busy_steps"] >= EPISODES * BLOCK_MS / twin.truth["options"]["busy_ms"], stats
    problems = judge_stalls(s, twin.truth["slow_callbacks"])
    assert not problems, "\n".join(problems) + "\n" + s.summary()
    overruns = [c for c in twin.truth["slow_callbacks"] if c["duration_ms"] >= THRESHOLD_MS]
    if not overruns:
        assert not s.of("stall"), s.summary()
        assert s.rc == 0, f"no stall, yet exit {s.rc}: {s.stderr}"
    assert final_capability(s, "stall_detection")[0] == "active"


def test_uvloop_stalls_under_attach():
    """Attached to a program that has uvloop loaded already (it says it is
    ready once it has, and starts its loop when the agent's hook is in): the
    agent patches uvloop when its hooks go in."""
    interp = with_module("uvloop", "python3-uvloop")
    s, truth = attach_until_exit(interp, "uvloop_stalls.py", "uvloop_stalls_attach", "--episodes", str(EPISODES),
                                 "--hook-timeout", "30", "--ready", options=OPTS)
    assert "error" not in truth and truth["hooked_before_start"], truth.get("error")
    state, reason = final_capability(s, "stall_detection")
    assert state == "active" and "uvloop" in reason, (state, reason)
    pairs, lost, missed = match_stalls(s, truth["episodes"])
    assert not missed, f"episodes without a stall: {[e['index'] for e in missed]}\n{s.summary()}"
    problems = judge_stalls(s, truth["slow_callbacks"])
    assert not problems, "\n".join(problems) + "\n" + s.summary()
    for st, end, ep in pairs:
        assert st["stack"][0]["function"] == "block_for" and (st["task"] or {}).get("name") == "stall-task", \
            describe_stall(st)
        assert end is not None and -0.5 <= end["duration_ms"] - ep["measured_ms"] <= 2 * INTERVAL_MS


def test_uvloop_blocking_protocol_callback_is_a_stall():
    """data_received called by libuv itself (no asyncio Handle around it)
    blocks the loop: uvloop runs it in the protocol's context, entered and
    left through the same calls the agent times, so each block is a stall
    with the protocol's frame, timed as the fixture measured it."""
    interp = with_module("uvloop", "python3-uvloop")
    truth_path = out_path(interp, "uvloop_protocol")
    try:
        s = run_quiet(interp, "uvloop_protocol", "uvloop_protocol.py", "--truth", truth_path, "--episodes", "3",
                      options=[*OPTS, "--fail-on", "stall"])
        truth = read_json(truth_path)
    finally:
        truth_path.unlink(missing_ok=True)
    assert "error" not in truth, truth["error"]
    assert truth["loop_class"] == "uvloop.Loop" and truth["hooked_before_start"], truth
    assert len(truth["episodes"]) == 3 and truth["pongs"] > 0, truth
    pairs, lost, missed = match_stalls(s, truth["episodes"])
    assert not missed, f"blocks without a stall: {[e['index'] for e in missed]}\n{s.summary()}"
    for st, end, ep in pairs:
        names = [f["function"] for f in st["stack"]]
        assert names[:2] == ["block_for", "data_received"], describe_stall(st)
        assert frames(st["stack"]) == frames(ep["stack"]), (st["stack"][:3], ep["stack"][:3])
        assert (st["thread_id"], st["native_id"]) == (ep["thread_id"], ep["native_id"])
        assert THRESHOLD_MS <= st["elapsed_ms"] <= THRESHOLD_MS + INTERVAL_MS + 40, describe_stall(st)
        assert end is not None and -0.5 <= end["duration_ms"] - ep["measured_ms"] <= 2 * INTERVAL_MS, (end, ep)
    # Other stalls: only from a ping or a short callback the machine stretched
    # past the threshold (none measured here): none expected.
    assert not lost, f"stalls no block explains:\n{s.summary()}"
    assert s.rc == EXIT_STALL, f"exit {s.rc}\n{s.stderr}"


def test_uvloop_attach_reports_the_stall_under_way():
    """uvloop's loop already blocked in a callback when `attach` arrives (its
    handles have no Python frame: the callback is the frame asyncio.run's
    runner called into uvloop for): reported while it lasts, with its task,
    as at least as long, then its end (as on asyncio's own loop)."""
    from test_agent_stall_capture import assert_stall_under_way_at_attach
    assert_stall_under_way_at_attach(with_module("uvloop", "python3-uvloop"), "--loop", "uvloop")


# --------------------------------------------------------------------------------------
# Silent bugs under uvloop

UVLOOP_CASES = [c for c in bugs.CASES if c.fixture != "bugs_cancel.py"]
CANCEL_CASES = [bugs.Case("bugs_cancel.py", "base"), bugs.Case("bugs_cancel.py", "ok_reraise")]


def bug_run(case, fail_on):
    interp = with_module("uvloop", "python3-uvloop")
    truth_path = out_path(interp, f"uvloop-{case.case}")
    try:
        s = run_quiet(interp, f"uvloop-{case.case}", case.fixture, "--truth", interp.inside(truth_path),
                      "--case", case.case, "--exit-status", str(bugs.STATUS), "--loop", "uvloop",
                      "--wait-hooks", "10", options=["--fail-on", fail_on, *case.options])
        truth = json.loads(truth_path.read_text()) if truth_path.exists() else {}
    finally:
        truth_path.unlink(missing_ok=True)
    assert truth, f"the fixture wrote no truth (rc {s.rc}): {s.stderr}"
    return s, truth


@pytest.mark.parametrize("case", UVLOOP_CASES, ids=[c.id for c in UVLOOP_CASES])
def test_uvloop_reports_exactly_the_bug(case):
    fail_on = "unawaited,unretrieved,destroyed-pending"
    s, truth = bug_run(case, fail_on)
    bugs.assert_premises(truth)
    assert truth["facts"]["loop"] == "uvloop"
    assert truth["installed_before_case"], "the hooks never appeared within 10 s"
    bugs.assert_events(s.events, truth, f"run {case.id} on uvloop")
    last = s.events[-1]
    assert last["type"] == "exit" and last["status"] == bugs.STATUS, s.events[-3:]
    counts = Counter(e["type"] for e in s.events if e["type"] in bugs.BUG_TYPES)
    assert last["bugs"] == {t: counts.get(t, 0) for t in bugs.BUG_TYPES}, last
    want_rc = bugs.EXIT_BUG if truth["expected"] else bugs.STATUS
    assert s.rc == want_rc, f"--fail-on {fail_on}: exit {s.rc}, expected {want_rc}\n{s.stderr}"


@pytest.mark.parametrize("case", CANCEL_CASES, ids=[c.id for c in CANCEL_CASES])
def test_uvloop_swallowed_cancellations_are_said_unchecked(case):
    """Not traced under uvloop: inactive with the reason, and --fail-on exits
    13 whether or not the program swallowed one (never a pass)."""
    s, truth = bug_run(case, "cancel-swallowed")
    bugs.assert_premises(truth)
    state, reason = final_capability(s, "cancellation_swallowed", truth["pid"])
    assert state == "inactive" and "uvloop" in reason, (state, reason)
    assert not s.of("cancellation_swallowed"), s.summary()
    assert s.rc == EXIT_NOT_ACTIVE, f"exit {s.rc}\n{s.stderr}"
    assert "cancel-swallowed could not be checked" in s.stderr, s.stderr


# --------------------------------------------------------------------------------------
# A loop no agent can time

def test_unknown_loop_class_is_inactive_and_fail_on_stall_exits_13():
    interp = usable(next(i for i in ZOO if i.name == DEBIAN))
    truth_path = out_path(interp, "foreign_loop")
    try:
        s = run_quiet(interp, "foreign_loop", "foreign_loop.py", "--truth", truth_path,
                      options=[*OPTS, "--fail-on", "stall"])
        truth = read_json(truth_path)
    finally:
        truth_path.unlink(missing_ok=True)
    assert truth["hooked"] and truth["blocks_ms"] and truth["blocks_ms"][0] >= 290, truth
    state, reason = final_capability(s, "stall_detection", truth["pid"])
    assert state == "inactive" and truth["loop_class"] in reason, (state, reason)
    assert not s.of("stall"), "a stall from a loop whose callbacks cannot be timed"
    assert s.rc == EXIT_NOT_ACTIVE, f"exit {s.rc}\n{s.stderr}"
    assert "--fail-on stall could not be checked" in s.stderr and truth["loop_class"] in s.stderr, s.stderr


# --------------------------------------------------------------------------------------
# uvicorn + FastAPI

def test_uvicorn_fastapi_blocking_endpoint_is_a_stall():
    interp = with_module("uvicorn, fastapi", "python3-uvicorn and python3-fastapi")
    truth_path = out_path(interp, "uvicorn_app")
    try:
        s = run_quiet(interp, "uvicorn_app", "uvicorn_app.py", "--truth", truth_path,
                      options=[*OPTS, "--fail-on", "stall"])
        truth = read_json(truth_path)
    finally:
        truth_path.unlink(missing_ok=True)
    assert not truth["errors"] and truth["ok"] == 300, truth
    assert truth["loop_class"] == "uvloop.Loop", truth["loop_class"]
    blocks = truth["blocks"]
    assert len(blocks) == 3, blocks
    pairs, lost, missed = match_stalls(s, blocks)
    assert not missed, f"blocking requests without a stall: {missed}\n{s.summary()}"
    for st, end, block in pairs:
        top = st["stack"][0]
        assert (top["function"], top["file"].endswith("uvicorn_app.py"), top["line"]) == \
            ("block_endpoint", True, block["line"]), describe_stall(st)
        assert st["task"] and (st["task"]["name"], st["task"]["id"]) == (block["task"], block["task_id"])
        assert st["task"]["stack"][0]["function"] == "block_endpoint"
        assert end is not None and -0.5 <= end["duration_ms"] - block["measured_ms"] <= 2 * INTERVAL_MS, \
            (end, block)
    assert not lost or all(st["elapsed_ms"] >= THRESHOLD_MS for st in lost)
    assert s.rc == EXIT_STALL, f"exit {s.rc}\n{s.stderr}"
