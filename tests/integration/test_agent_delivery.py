"""The stream between the agent and the CLI: the target never waits on the
CLI, nothing is lost silently, nothing is corrupted, and the program's own
output is untouched (docs/guide.md#where-events-go, docs/security.md).

- A CLI stopped with SIGSTOP (attach with snapshots every 20 ms, and run):
  the program finishes main() and exits in time; the agent's bounded exit
  flush is all it waits.
- A CLI stopped long enough for the agent's queue to fill: the agent drops
  whole events, counts them, and says so with a `dropped` event when the CLI
  reads again; every line is still one whole event.
- Short programs under `run` while a CPU hog holds both cores: every agent
  that hooked asyncio delivers its hello (the fixture waits for the hook, so
  one certainly runs), no line is corrupted, and the program's stdout (and,
  with -q -o, its stderr) is byte-identical to a bare run.
  tests/bench/stream_under_load.py does the same 1,000 times.
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent_helpers import INTERVAL_MS, THRESHOLD_MS, Live, Stream, Target, host_only, out_path
from harness import AIOSCOPE
from zoo import ZOO

OPTS = ["--stall-threshold", f"{THRESHOLD_MS}ms", "--interval", f"{INTERVAL_MS}ms"]
# The agent's exit flush waits at most 2.5 s for a CLI that does not read;
# the rest is the interpreter's own shutdown on a busy machine.
EXIT_WITHIN_S = 5.0


def wait_path(path, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        assert time.monotonic() < deadline, f"no {path} within {timeout}s"
        assert proc is None or proc.poll() is None or Path(path).exists(), f"the process exited ({proc.returncode})"
        time.sleep(0.02)
    return json.loads(Path(path).read_text())


def gone_or_zombie(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def exited_at(pid, proc=None, timeout=30):
    """When the process ended (it may be a zombie of a stopped parent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return time.time()
        if proc is None and gone_or_zombie(pid):
            return time.time()
        time.sleep(0.01)
    return None


def test_stopped_attach_does_not_hold_the_target(interp):
    """attach --snapshot-every 20ms, then SIGSTOP aioscope: the program still
    finishes main() and exits within EXIT_WITHIN_S (it used to hang in
    shutdown, its agent blocked in a send)."""
    truth_path = out_path(interp, "agent_exit")
    ready_path = out_path(interp, "agent_exit-ready")
    target = subprocess.Popen(interp.argv("agent_exit.py", "--truth", interp.inside(truth_path), "--seconds", "4",
                                          "--ready", interp.inside(ready_path)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    live = None
    stopped = False
    try:
        wait_path(ready_path, 30, target)
        live = Live([AIOSCOPE, "attach", "--json", *OPTS, "--snapshot-every", "20ms", target.pid])
        try:
            live.wait_for(lambda e: e["type"] == "hello", 30, "hello")
        except AssertionError:
            s = live.stop()
            live = None
            raise AssertionError(f"no hello: {s.summary()}\ntarget: {target.poll()}")
        live.wait_for(lambda e: e["type"] == "snapshot", 10, "a snapshot")
        os.kill(live.proc.pid, signal.SIGSTOP)
        stopped = True
        truth = wait_path(truth_path, 30, target)
        end = exited_at(target.pid, target, timeout=30)
        assert end is not None, "the program never exited while aioscope was stopped"
        took = end - truth["main_returned_at"]
        assert took < EXIT_WITHIN_S, f"the program took {took:.1f} s to exit after main() returned"
        assert target.returncode == 0, target.stderr.read()
    finally:
        if live:
            if stopped:
                os.kill(live.proc.pid, signal.SIGCONT)
            s = live.stop()
        if target.poll() is None:
            target.kill()
            target.wait()
        truth_path.unlink(missing_ok=True)
        ready_path.unlink(missing_ok=True)
    s.assert_well_formed()
    assert s.rc == 0, s.summary()


def test_stopped_run_does_not_hold_the_program(interp):
    host_only(interp)
    truth_path = out_path(interp, "agent_exit")
    live = Live([AIOSCOPE, "run", "--json", *OPTS, "--snapshot-every", "20ms", "--",
                 *interp.argv("agent_exit.py", "--truth", truth_path, "--seconds", "4")])
    stopped = False
    try:
        hello = live.wait_for(lambda e: e["type"] == "hello", 30, "hello")
        live.wait_for(lambda e: e["type"] == "snapshot", 10, "a snapshot")
        os.kill(live.proc.pid, signal.SIGSTOP)
        stopped = True
        truth = wait_path(truth_path, 30)
        end = exited_at(hello["pid"], timeout=30)
        assert end is not None, "the program never exited while aioscope was stopped"
        took = end - truth["main_returned_at"]
        assert took < EXIT_WITHIN_S, f"the program took {took:.1f} s to exit after main() returned"
        os.kill(live.proc.pid, signal.SIGCONT)
        stopped = False
        live.proc.wait(timeout=30)
    finally:
        if stopped:
            os.kill(live.proc.pid, signal.SIGCONT)
        s = live.stop()
        truth_path.unlink(missing_ok=True)
    s.assert_well_formed()
    assert s.exit()["status"] == 0 and s.rc == 0, s.summary()


def test_dropped_events_are_counted_and_reported():
    """2,000 tasks, a snapshot every 20 ms (megabytes a second), aioscope
    stopped for 3 s: the agent's queue fills and it drops whole events. Once
    aioscope reads again, a `dropped` event says how many and since when; no
    line is cut or glued (Stream would fail on one)."""
    interp = next((i for i in ZOO if i.root == "/" and not i.unavailable()), None)
    if interp is None:
        pytest.skip("no host CPython available")
    with Target(interp, "aio_many.py", "--tasks", "2000") as target:
        live = Live([AIOSCOPE, "attach", "--json", *OPTS, "--snapshot-every", "20ms", target.pid])
        try:
            live.wait_for(lambda e: e["type"] == "snapshot", 30, "a snapshot")
            os.kill(live.proc.pid, signal.SIGSTOP)
            time.sleep(3)
            stopped_at = time.time()
            os.kill(live.proc.pid, signal.SIGCONT)
            dropped = live.wait_for(lambda e: e["type"] == "dropped", 30, "a dropped event")
            later = live.wait_for(lambda e: e["type"] == "snapshot" and e["ts"] > dropped["ts"], 30,
                                  "a snapshot after the drop")
        finally:
            s = live.stop()
        assert target.alive(), "the target died"
    s.assert_well_formed()
    assert dropped["pid"] == target.pid and dropped["count"] > 0, dropped
    assert dropped["since"] <= stopped_at <= dropped["ts"] + 1, dropped
    assert len(later["tasks"]) == 2001, "the snapshots after the drop are whole"
    assert s.rc == 0, s.summary()


# --------------------------------------------------------------------------------------
# Short programs under a CPU hog

RUNS = 20           # per host interpreter (the benchmark does 1,000)
QUIET_RUNS = 5      # of which with -q -o FILE: then stderr too is the program's alone


@pytest.fixture
def cpu_hog():
    """One busy process per core, for as long as the test runs."""
    hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(os.cpu_count() or 2)]
    yield
    for h in hogs:
        h.kill()
        h.wait()


def bare_run(interp, tmp):
    truth = tmp / "bare-truth.json"
    r = subprocess.run(interp.argv("stream_short.py", "--truth", truth), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout, r.stderr


def short_under_run(interp, tmp, i, quiet):
    """One `aioscope run` of stream_short.py: (problems, stream)."""
    truth_path = tmp / f"truth-{i}.json"
    events_path = tmp / f"events-{i}.jsonl"
    opts = ["-q", "-o", events_path] if quiet else ["--json"]
    argv = [AIOSCOPE, "run", *opts, "--", *interp.argv("stream_short.py", "--truth", truth_path)]
    r = subprocess.run([str(a) for a in argv], capture_output=True, timeout=120)
    problems = []
    try:
        truth = json.loads(truth_path.read_text())
    except (OSError, ValueError) as e:
        return [f"run {i}: no truth ({e}); rc {r.returncode}, stderr {r.stderr[-500:]!r}"], None, r
    try:
        if quiet:
            text = events_path.read_text()
            s = Stream(argv, r.returncode, r.stdout.decode(), "", 0, events_on="stderr")
            s.events = [json.loads(l) for l in text.splitlines()]
        else:
            s = Stream(argv, r.returncode, r.stdout.decode(), r.stderr.decode(), 0)
    except (AssertionError, ValueError) as e:
        return [f"run {i}: corrupted stream: {e}"], None, r
    if not truth["hooked"]:
        problems.append(f"run {i}: the agent never hooked asyncio (premise)")
    hellos = s.of("hello", truth["pid"])
    if len(hellos) != 1:
        problems.append(f"run {i}: {len(hellos)} hellos from pid {truth['pid']} (lost)")
    if len(s.of("goodbye", truth["pid"])) != 1:
        problems.append(f"run {i}: no goodbye")
    exits = s.of("exit")
    if len(exits) != 1 or exits[0]["status"] != 0 or s.events[-1] is not exits[0]:
        problems.append(f"run {i}: exit event {exits}")
    if r.returncode != 0:
        problems.append(f"run {i}: rc {r.returncode}")
    return problems, s, r


def short_programs_batch(interp, tmp_path, out, err):
    problems = []
    for i in range(RUNS):
        quiet = i < QUIET_RUNS
        found, s, r = short_under_run(interp, tmp_path, i, quiet)
        problems += found
        if r.stdout != out:
            problems.append(f"run {i}: stdout differs from the bare run: {r.stdout[-200:]!r}")
        if quiet:
            if r.stderr != err:
                problems.append(f"run {i} (-q -o): stderr differs from the bare run: {r.stderr[-300:]!r}")
        elif s is not None:
            # The program's own stderr lines, in order, whole, among the events.
            own = "".join(l + "\n" for l in r.stderr.decode().splitlines() if not l.startswith("{"))
            if own != err.decode():
                problems.append(f"run {i}: the program's stderr lines differ: {own[-300:]!r}")
    return problems


def test_run_short_programs_under_a_cpu_hog(interp, cpu_hog, tmp_path):
    host_only(interp)
    out, err = bare_run(interp, tmp_path)
    problems = short_programs_batch(interp, tmp_path, out, err)
    assert not problems, "\n".join(problems[:20])
