"""The agent's stall detection in trio programs (issue 11): a task step past
the threshold is a stall, against trio_stalls.py's own ground truth.

trio_stalls.py blocks one task step 5 x 300 ms in block_for() (time.sleep),
measuring each block and sampling the blocked stack itself; its --yielding
twin does the same work in 30 ms slices with a checkpoint between them. The
program never imports asyncio (the truth says so): the agent registers its
trio instrument when the program imports trio (docs/how-it-works.md, trio).

Under `run` on the host interpreters that have trio (or get Debian's from
trio_libs); skipped with the reason elsewhere. Also: the same program under
`attach` (the instrument goes into the run in progress; on all seven
interpreters, the chroot's 3.14 and 3.15 with sid's trio), and with --anyio
(anyio imports asyncio first, then runs trio: no import of trio is seen
before the hooks are in). Every stall names the trio task the fixture
itself saw blocking.
"""
import json
import os
import subprocess

import pytest

from agent_helpers import EXIT_STALL, INTERVAL_MS, THRESHOLD_MS, Stream, attach_until_exit, frames, host_only, \
    match_stalls, out_path, read_json
from harness import AIOSCOPE
from trio_libs import library_env

OPTS = ["--stall-threshold", f"{THRESHOLD_MS}ms", "--interval", f"{INTERVAL_MS}ms"]
EPISODES = 5
BLOCK_MS = 300.0
# A busy slice of 30 ms that the machine makes last this long is a real stall.
OVERRUN_MS = THRESHOLD_MS - 2.0


class TrioRun:
    def __init__(self, interp, yielding, anyio=False):
        host_only(interp)
        path, _ = library_env(interp, *(("trio", "anyio") if anyio else ("trio",)))
        env = dict(os.environ, **({"PYTHONPATH": path} if path else {}))
        stem = "trio_stalls" + ("_yielding" if yielding else "") + ("_anyio" if anyio else "")
        truth_path, events_path = out_path(interp, stem), out_path(interp, stem + "-events")
        argv = [AIOSCOPE, "run", "--quiet", "--output", events_path, *OPTS, "--fail-on", "stall", "--",
                *interp.argv("trio_stalls.py", "--truth", truth_path, "--episodes", str(EPISODES),
                             "--block", str(BLOCK_MS / 1000), *(["--yielding"] if yielding else []),
                             *(["--anyio", "--wait-hook", "10"] if anyio else []))]
        try:
            r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, env=env)
            self.stream = Stream(argv, r.returncode, r.stdout, r.stderr, 0)
            self.stream.events = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
            self.truth = read_json(truth_path)
        finally:
            truth_path.unlink(missing_ok=True)
            events_path.unlink(missing_ok=True)
        assert "error" not in self.truth, f"fixture: {self.truth['error']}"
        if anyio:
            assert self.truth["asyncio_imported"], "anyio did not import asyncio: not the mixed program meant"
            assert self.truth["hooked_before_start"], "the agent's trio instrument never came within 10 s"
        else:
            assert not self.truth["asyncio_imported"], "the trio fixture imported asyncio: it tests a mixed program"


@pytest.fixture(scope="module")
def trio_run(interp):
    return TrioRun(interp, yielding=False)


@pytest.fixture(scope="module")
def trio_anyio(interp):
    return TrioRun(interp, yielding=False, anyio=True)


@pytest.fixture(scope="module")
def trio_twin(interp):
    return TrioRun(interp, yielding=True)


def final_state(s, name):
    states = s.capability_states(name)
    assert states, s.summary()
    return states[-1][1], states[-1][2]


def test_trio_stall_detection_is_active(trio_run):
    s = trio_run.stream
    state, reason = final_state(s, "stall_detection")
    assert state == "active" and "trio" in reason, (state, reason)
    # asyncio's checks do not apply to a trio program: said so.
    for name in ("cancellation_swallowed", "task_exception_unretrieved", "task_destroyed_pending"):
        state, reason = final_state(s, name)
        assert state == "inactive" and "trio" in reason, (name, state, reason)


def test_trio_step_past_the_threshold_is_a_stall(trio_run):
    s, episodes = trio_run.stream, trio_run.truth["episodes"]
    pairs, lost, missed = match_stalls(s, episodes)
    assert not missed, f"blocks without a stall: {[e['index'] for e in missed]}\n{s.summary()}"
    slices = trio_run.truth["stats"]["busy_max_ms"]
    assert not lost or slices >= OVERRUN_MS, f"stalls no block explains:\n{s.summary()}"
    bad = []
    for st, end, ep in pairs:
        if not THRESHOLD_MS <= st["elapsed_ms"] <= THRESHOLD_MS + INTERVAL_MS + 40:  # 40: the VM's stolen CPU
            bad.append(f"stall #{st['stall_id']} reported at {st['elapsed_ms']:.1f} ms")
        # The step goes on a little after the block (to its next checkpoint):
        # longer when the VM steals the CPU just then.
        if end is None or not -0.5 <= end["duration_ms"] - ep["measured_ms"] <= 2 * INTERVAL_MS + 40:
            bad.append(f"stall #{st['stall_id']}: {end and end['duration_ms']} ms, measured {ep['measured_ms']:.2f}")
        assert st["captured"] and st["stack"][0]["function"] == "block_for", st["stack"][:2]
        assert frames(st["stack"]) == frames(ep["stack"]), "the trio thread's stack differs from the sampled one"
        assert (st["thread_id"], st["native_id"]) == (ep["thread_id"], ep["native_id"])
        assert_names_the_task(st, ep)
    median = sorted(st["elapsed_ms"] for st, _, _ in pairs)[len(pairs) // 2]
    if median > THRESHOLD_MS + INTERVAL_MS + 5:
        bad.append(f"median detection at {median:.1f} ms")
    assert not bad, "\n".join(bad) + "\n" + s.summary()
    assert s.rc == EXIT_STALL, f"exit {s.rc}: {s.stderr}"


def assert_names_the_task(st, ep):
    """The stall names the trio task the fixture saw blocking, with its frames
    down to the task's own coroutine."""
    task = st["task"]
    assert task and task["runtime"] == "trio" and task["name"] == ep["task"], (task, ep["task"])
    assert task["thread_id"] == ep["thread_id"] and task["state"] == "running", task
    names = [f["function"] for f in task["stack"]]
    assert names[0] == "block_for" and names[-1] == "stalls" and "unrolled_run" not in names, names


def test_trio_after_asyncio_anyio_stalls_are_detected(trio_anyio):
    """anyio imported first (asyncio with it), then trio.run under
    anyio.run(backend="trio"): every block is a stall naming its task."""
    s, episodes = trio_anyio.stream, trio_anyio.truth["episodes"]
    pairs, lost, missed = match_stalls(s, episodes)
    assert not missed, f"blocks without a stall: {[e['index'] for e in missed]}\n{s.summary()}"
    assert not lost or trio_anyio.truth["stats"]["busy_max_ms"] >= OVERRUN_MS, f"stalls no block explains:\n{s.summary()}"
    for st, end, ep in pairs:
        assert st["captured"] and st["stack"][0]["function"] == "block_for", st["stack"][:2]
        assert end is not None and -0.5 <= end["duration_ms"] - ep["measured_ms"] <= 2 * INTERVAL_MS, (end, ep)
        assert_names_the_task(st, ep)
    assert final_state(s, "stall_detection")[0] == "active"
    assert s.rc == EXIT_STALL, f"exit {s.rc}: {s.stderr}"


def test_trio_stalls_under_attach(interp):
    """Attached to a trio program already running: the instrument goes into
    the run in progress (on trio's thread, not the installer's), and every
    block after it is in is a stall naming its task."""
    path, _ = library_env(interp, "trio")  # attach: the chroot's interpreters too
    env = dict(os.environ, **({"PYTHONPATH": path} if path else {}))
    # --wait-hook: TRUTH.ready once trio runs, then up to 30 s for the instrument.
    s, truth = attach_until_exit(interp, "trio_stalls.py", "trio_stalls_attach", "--episodes", str(EPISODES),
                                 "--block", str(BLOCK_MS / 1000), "--wait-hook", "30", options=OPTS, env=env)
    assert "error" not in truth, truth["error"]
    assert truth["hooked_before_start"], "the agent's trio instrument never came within 30 s"
    state, reason = final_state(s, "stall_detection")
    assert state == "active" and "trio" in reason, (state, reason)
    pairs, lost, missed = match_stalls(s, truth["episodes"])
    assert not missed, f"blocks without a stall: {[e['index'] for e in missed]}\n{s.summary()}"
    assert not lost or truth["stats"]["busy_max_ms"] >= OVERRUN_MS, f"stalls no block explains:\n{s.summary()}"
    for st, end, ep in pairs:
        assert st["captured"] and st["stack"][0]["function"] == "block_for", st["stack"][:2]
        assert end is not None and -0.5 <= end["duration_ms"] - ep["measured_ms"] <= 2 * INTERVAL_MS, (end, ep)
        assert_names_the_task(st, ep)


def test_trio_attach_reports_the_step_under_way(interp):
    """A trio step already blocked when `attach` arrives: reported while it
    lasts, naming the trio task, as at least as long, then its end."""
    from test_agent_stall_capture import assert_stall_under_way_at_attach
    path, _ = library_env(interp, "trio")  # attach: the chroot's interpreters too
    env = dict(os.environ, **({"PYTHONPATH": path} if path else {}))
    assert_stall_under_way_at_attach(interp, "--loop", "trio", env=env)


def test_trio_busy_but_yielding_has_no_stall(trio_twin):
    s, stats = trio_twin.stream, trio_twin.truth["stats"]
    assert stats["busy_steps"] >= EPISODES * BLOCK_MS / trio_twin.truth["options"]["busy_ms"], stats
    if stats["busy_max_ms"] < OVERRUN_MS:
        assert not s.of("stall"), s.summary()
        assert s.rc == 0, f"exit {s.rc}: {s.stderr}"
    assert final_state(s, "stall_detection")[0] == "active"


# --------------------------------------------------------------------------------------
# trio's silent failure: a coroutine never awaited (CPython only warns)

@pytest.mark.parametrize("clean", [False, True], ids=["dropped", "clean"])
def test_trio_never_awaited_coroutine_is_reported(interp, clean):
    """trio_unawaited.py drops trio.sleep(0) without await in task "dropper"
    (warnings ignored by the program): one unawaited_coroutine naming the
    coroutine, the line and the trio task; --fail-on unawaited exits 12. Its
    clean twin: none, exit 0. The capability is active, saying trio."""
    host_only(interp)
    path, _ = library_env(interp, "trio")
    env = dict(os.environ, **({"PYTHONPATH": path} if path else {}))
    stem = "trio_unawaited" + ("_clean" if clean else "")
    truth_path, events_path = out_path(interp, stem), out_path(interp, stem + "-events")
    argv = [AIOSCOPE, "run", "--quiet", "--output", events_path, "--fail-on", "unawaited", "--",
            *interp.argv("trio_unawaited.py", "--truth", truth_path, *(["--clean"] if clean else []))]
    try:
        r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, env=env)
        s = Stream(argv, r.returncode, r.stdout, r.stderr, 0)
        s.events = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
        truth = read_json(truth_path)
    finally:
        truth_path.unlink(missing_ok=True)
        events_path.unlink(missing_ok=True)
    assert not truth["asyncio_imported"], "the trio fixture imported asyncio"
    state, reason = final_state(s, "unawaited_coroutine")
    assert state == "active" and "trio" in reason, (state, reason)
    found = s.of("unawaited_coroutine")
    if clean:
        assert not found, s.summary()
        assert s.rc == 0, f"exit {s.rc}: {s.stderr}"
        return
    assert len(found) == 1, [(f["coroutine"], f["discarded_at"], f["discarding_stack"][:3]) for f in found]
    e = found[0]
    assert e["coroutine"]["qualname"] == truth["qualname"], e["coroutine"]
    assert (e["discarded_at"]["function"], e["discarded_at"]["line"]) == (truth["function"], truth["line"]), e
    assert e["task"] and e["task"]["name"] == truth["task"], e["task"]
    assert s.rc == 12, f"exit {s.rc}: {s.stderr}"
