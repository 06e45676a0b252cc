"""`aioscope run`: the agent preloaded into a program, its event stream, and
CI mode, against the fixtures' own ground truth.

The fixtures block their event loop on purpose in agent_common.block_for()
and measure it themselves (time.monotonic() around time.sleep()); a sampler
thread records, while the loop is blocked, what the interpreter itself says
its stack and the running task's stack are (sys._current_frames()). They
wait for the agent's hooks (agent_common.hooked()) before stalling, so every
deliberate stall is one the agent can see.

`run` is tested with the host's interpreters (the chroot's cannot see the
host's agent library or socket; `attach` covers them).
"""
import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from aio import assert_awaited_by, assert_awaiting, assert_same_task_set, assert_stacks
from agent_helpers import (EXIT_DEADLOCK, EXIT_STALL, EXIT_TIMEOUT, INTERVAL_MS, THRESHOLD_MS, Live, TaskView,
                           aioscope_run, by_id, describe_stall, detection_problems, diff_lists, frames, host_only,
                           judge_stalls, match_stalls,
                           out_path, pid_gone, read_json, snapshot_read_after, wait_file)
from harness import AIOSCOPE, run_aioscope
from zoo import ZOO

EPISODES = 5
OPTS = ["--stall-threshold", f"{THRESHOLD_MS}ms", "--interval", f"{INTERVAL_MS}ms"]



def host_interp(preferred="3.12"):
    """One host interpreter for the tests of behaviour that is the CLI's own."""
    hosts = [i for i in ZOO if i.root == "/"]
    for it in sorted(hosts, key=lambda i: i.name != preferred):
        if not it.unavailable():
            return it
    pytest.skip("no host CPython available: " + "; ".join(f"{i.name}: {i.unavailable()}" for i in hosts))


def strip_ansi(text):
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# --------------------------------------------------------------------------------------
# agent_stalls.py: five deliberate stalls among busy-but-yielding and back-to-back work

class StallRun:
    def __init__(self, interp, tmp):
        host_only(interp)
        truth_path = out_path(interp, "agent_stalls")
        self.output = tmp / "events.jsonl"
        env = dict(os.environ, GITHUB_ACTIONS="true")
        self.stream = aioscope_run(
            interp.argv("agent_stalls.py", "--truth", truth_path, "--episodes", str(EPISODES)),
            *OPTS, "--fail-on", "stall", "--output", self.output, env=env)
        self.truth = read_json(truth_path)
        truth_path.unlink()
        assert "error" not in self.truth, f"fixture: {self.truth['error']}"
        self.pid = self.truth["pid"]
        self.episodes = self.truth["episodes"]


@pytest.fixture(scope="module")
def stall_run(interp, tmp_path_factory):
    return StallRun(interp, tmp_path_factory.mktemp(f"stalls-{interp.name}"))


def test_run_hello_and_exit(stall_run):
    s, truth = stall_run.stream, stall_run.truth
    s.assert_well_formed()
    hello = s.one("hello")
    assert hello["pid"] == stall_run.pid, s.summary()
    assert s.types(stall_run.pid)[0] == "hello", "the agent's first event is its hello"
    assert hello["mode"] == "run"
    assert hello["python"]["version"] == truth["version"]
    assert hello["options"] == {"interval_ms": INTERVAL_MS, "stall_threshold_ms": THRESHOLD_MS,
                                "snapshot_interval_ms": 0}
    assert hello["agent_version"]
    assert truth["hooked_before_start"], "the agent's hooks never went in"
    first_stall = s.events.index(s.of("stall")[0]) if s.of("stall") else len(s.events)
    assert s.active_before("stall_detection", first_stall), \
        f"stall detection never reported active before the first stall:\n{s.summary()}"
    # Hello comes first, before the program imported asyncio: pending then.
    assert hello["capabilities"]["stall_detection"]["state"] in ("pending", "active"), hello
    assert s.one("goodbye", stall_run.pid)
    last = s.exit()
    assert last["pid"] == stall_run.pid and s.events[-1] is last, s.summary()
    assert last["status"] == 0 and last["signal"] is None and not last["timed_out"]
    assert last["stalls"] == len(s.of("stall")) >= EPISODES and last["deadlocks"] == 0
    assert s.rc == EXIT_STALL, f"--fail-on stall with stalls: {s.rc}\n{s.summary()}"


def test_run_stalls_pair_with_their_ends(stall_run):
    s = stall_run.stream
    stalls, ends = s.of("stall"), s.of("stall_end")
    ids = [x["stall_id"] for x in stalls]
    # Every deliberate episode, and any callback the machine made overrun
    # (judged in test_run_no_stall_for_busy_or_back_to_back_work).
    assert len(stalls) >= EPISODES and len(ends) == len(stalls), s.summary()
    assert len(set(ids)) == len(ids), f"stall ids repeat: {ids}"
    assert sorted(ids) == sorted(x["stall_id"] for x in ends), s.summary()
    order = {id(e): i for i, e in enumerate(s.events)}
    for st in stalls:
        end = next(x for x in ends if x["stall_id"] == st["stall_id"])
        assert order[id(st)] < order[id(end)], f"stall #{st['stall_id']} ended before it was reported"
        assert (end["thread_id"], end["native_id"], end["pid"]) == (st["thread_id"], st["native_id"], st["pid"])
        assert abs(end["started_at"] - st["started_at"]) < 0.001


def test_run_stalls_are_the_fixtures_episodes(stall_run):
    """Each episode is a stall: where it blocked, which task. (Other stalls are
    judged against asyncio's own timing in test_run_no_stall_for_busy_or_back_to_back_work.)"""
    s = stall_run.stream
    pairs, lost, missed = match_stalls(s, stall_run.episodes)
    assert not missed, f"episodes without a stall: {[e['index'] for e in missed]}\n{s.summary()}"
    for st, end, ep in pairs:
        assert st["captured"], describe_stall(st)
        top = st["stack"][0]
        assert (top["function"], top["file"], top["line"]) == (
            ep["stack"][0]["function"], ep["stack"][0]["file"], ep["stack"][0]["line"]), describe_stall(st)
        assert frames(st["stack"]) == frames(ep["stack"]), "the loop thread's stack differs from the sampled one"
        assert st["thread_id"] == ep["thread_id"] and st["native_id"] == ep["native_id"]
        task = st["task"]
        assert task is not None, describe_stall(st)
        assert (task["name"], task["id"]) == (ep["task"], ep["task_id"]) == ("stall-task", ep["task_id"])
        assert task["state"] == "running"
        assert frames(task["stack"]) == frames(ep["task_stack"]), "the running task's stitched stack"


def test_run_stall_timing(stall_run):
    s = stall_run.stream
    pairs, _, _ = match_stalls(s, stall_run.episodes)
    assert len(pairs) == EPISODES, s.summary()
    bad = detection_problems(s)
    for st, end, ep in pairs:
        if end is None:
            bad.append(f"stall #{st['stall_id']} has no stall_end")
        elif end["duration_ms"] < ep["measured_ms"] - 0.5:
            bad.append(f"stall #{st['stall_id']} lasted {end['duration_ms']:.2f} ms, shorter than the "
                       f"{ep['measured_ms']:.2f} ms the fixture slept in it")
    # Durations against asyncio's own timing of each callback.
    bad += judge_stalls(s, stall_run.truth["slow_callbacks"])
    assert not bad, "\n".join(bad)


def test_run_no_stall_for_busy_or_back_to_back_work(stall_run):
    """Busy steps (30 ms) and bursts of back-to-back callbacks (8 x 40 ms) are
    not stalls, unless the machine made one callback overrun the threshold:
    every stall is a callback asyncio itself timed past it, and every such
    callback is a stall."""
    stats, s = stall_run.truth["stats"], stall_run.stream
    # The fixture's premises: the busy and burst work ran, a burst as a whole
    # blocked the loop past the threshold.
    assert stats["busy_steps"] > 10 and stats["burst_callbacks"] >= EPISODES * 8 and stats["ticks"] > 0, stats
    assert stats["burst_total_max_ms"] > THRESHOLD_MS, stats
    problems = judge_stalls(s, stall_run.truth["slow_callbacks"])
    assert not problems, "\n".join(problems) + "\n" + s.summary()


# What time.sleep() waits in: select() up to 3.10, clock_nanosleep() after.
SLEEP_SYSCALL = re.compile(r"(clock_nanosleep|nanosleep|select)\b")


def test_run_stall_native_stack(stall_run):
    """The CLI's native stack of the blocked loop thread: inside libc's sleep
    for the episodes; any other captured stall has one too, unless its
    callback ended before the CLI could stop the thread."""
    pairs, _, _ = match_stalls(stall_run.stream, stall_run.episodes)
    deliberate = {st["stall_id"] for st, _, _ in pairs}
    for st in stall_run.stream.of("stall"):
        if st["stall_id"] not in deliberate:
            assert "native_error" not in st or "had ended" in st["native_error"], describe_stall(st)
            assert st.get("native_error") or st["native_stack"], describe_stall(st)
            continue
        assert "native_error" not in st, describe_stall(st) + ": " + st["native_error"]
        fns = [f["function"] for f in st["native_stack"]]
        assert fns, describe_stall(st)
        top = st["native_stack"][0]
        assert SLEEP_SYSCALL.search(top["function"]) and "/libc.so" in top["module"], \
            f"{describe_stall(st)}: native {fns[:6]}"
        assert all(set(f) >= {"address", "function", "offset", "module", "file", "line"}
                   for f in st["native_stack"])


def test_run_github_annotations(stall_run):
    s = stall_run.stream
    notes = [re.fullmatch(r"::error file=([^,]*),line=(\d+),title=([^:]*)::(.*)", line) for line in s.other_lines]
    assert all(notes), f"stdout lines that are neither events nor annotations: {s.other_lines}"
    assert len(notes) == len(s.of("stall")), s.other_lines
    for ep in stall_run.episodes:
        top = ep["stack"][0]
        assert any((m.group(1), int(m.group(2))) == (top["file"], top["line"]) and top["qualname"] in m.group(4)
                   for m in notes), (top, s.other_lines)


def test_run_output_file_has_every_event(stall_run):
    lines = stall_run.output.read_text().splitlines()
    assert [json.loads(x) for x in lines] == stall_run.stream.events


# --------------------------------------------------------------------------------------
# agent_clean.py: the same busy work, no stall

def test_run_stall_just_before_exit_keeps_its_end():
    """The program's last callback blocks 2.3 s, then the program exits at
    once. With a 2 s interval the stall is seen while it runs (threshold +
    interval < 2.3 s) but no later tick is likely to fall in the few ms
    before the interpreter finalizes: only the exit path can report the end."""
    interp = host_interp()
    truth_path = out_path(interp, "agent_stalls")
    s = aioscope_run(interp.argv("agent_stalls.py", "--truth", truth_path, "--episodes", "1", "--bursts", "0",
                                 "--busy-ms", "1", "--block", "2.3"),
                     "--stall-threshold", "100ms", "--interval", "2s")
    truth = read_json(truth_path)
    truth_path.unlink()
    (ep,) = truth["episodes"]
    assert len(s.of("stall")) == 1 and s.of("stall")[0]["captured"], s.summary()
    assert s.one("goodbye"), s.summary()
    end = s.one("stall_end")
    assert end["stall_id"] == s.of("stall")[0]["stall_id"]
    assert end["duration_ms"] >= ep["measured_ms"] - 0.5
    problems = judge_stalls(s, truth["slow_callbacks"])
    assert not problems, "\n".join(problems) + "\n" + s.summary()


def test_run_clean_program_has_no_stalls(interp):
    host_only(interp)
    truth_path = out_path(interp, "agent_clean")
    s = aioscope_run(interp.argv("agent_clean.py", "--truth", truth_path, "--bursts", "3"),
                     *OPTS, "--fail-on", "stall")
    truth = read_json(truth_path)
    truth_path.unlink()
    stats = truth["stats"]
    assert truth["hooked_before_start"] and truth["hooked_at_end"], "the agent's hooks never went in"
    assert stats["burst_total_max_ms"] > THRESHOLD_MS and stats["burst_callbacks"] == 3 * 8, stats
    assert s.one("hello")["pid"] == truth["pid"]
    # No stall at all, unless the machine itself made a callback overrun the
    # threshold (asyncio timed it): then exactly those.
    problems = judge_stalls(s, truth["slow_callbacks"])
    assert not problems, "\n".join(problems) + "\n" + s.summary()
    stalls = len(s.of("stall"))
    assert s.exit()["stalls"] == stalls == len(s.of("stall_end"))
    want = EXIT_STALL if stalls else 0
    assert s.rc == want, f"--fail-on stall with {stalls} stalls: {s.rc}\n{s.summary()}"


def test_run_short_programs_end_cleanly(interp):
    """A program that ends while the agent is still starting, many times over:
    it must always end as it would alone (this raced into an abort at exit),
    and its agent must still be heard: hello, goodbye, exit."""
    host_only(interp)
    for i in range(15):
        r = run_aioscope("run", "--json", "--", *interp.argv("agent_short.py"), timeout=30)
        # Its standard output is its own, byte for byte; events are on stderr.
        assert r.returncode == 0 and r.stdout == "done\n", f"run #{i + 1}: rc {r.returncode}\n{r.stdout}\n{r.stderr}"
        events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
        ends = [e for e in events if e["type"] == "exit"]
        assert len(ends) == 1 and ends[0]["status"] == 0 and ends[0]["signal"] is None, events
        types = [e["type"] for e in events if e["pid"] == ends[0]["pid"]]
        assert types[0] == "hello" and "goodbye" in types, types
        others = [e for e in events if e["type"] in ("warning", "error")]
        assert not others, others


# --------------------------------------------------------------------------------------
# Snapshots against `aioscope dump` and the ground truth

def assert_snapshot_is_dump(snap, dump):
    bad = diff_lists(snap["tasks"], dump["tasks"], "id", "task")
    bad += diff_lists(snap["threads"], dump["threads"], "thread_id", "thread")
    assert not bad, "the agent's snapshot (first) and aioscope dump (second) differ:\n" + "\n".join(bad[:20])
    assert by_id(snap["tasks"], "id") == by_id(dump["tasks"], "id")
    assert snap["findings"] == dump["findings"]
    assert snap["warnings"] == [] and dump["warnings"] == []


def assert_snapshot_is_truth(snap, truth):
    view = TaskView(truth, snap["tasks"])
    assert_same_task_set(view)
    assert_stacks(view)
    assert_awaiting(view)
    assert_awaited_by(view)


def test_run_snapshot_every_equals_dump_and_truth(interp):
    host_only(interp)
    truth_path = out_path(interp, "agent_parked")
    live = Live([AIOSCOPE, "run", "--json", *OPTS, "--snapshot-every", "300ms", "--",
                 *interp.argv("agent_parked.py", "--truth", truth_path)])
    try:
        truth = wait_file(truth_path, 30, live.proc, "truth")
        assert "error" not in truth, truth["error"]
        pid = truth["pid"]
        while Path(f"/proc/{pid}/task/{truth['observer_native_id']}").exists():
            time.sleep(0.01)
        settled = time.time()
        snap = live.wait_for(snapshot_read_after(settled), 10, "snapshot after settling")
        r = run_aioscope("dump", "--json", pid)
        assert r.returncode == 0, r.stderr
        dump = json.loads(r.stdout)
        later = live.wait_for(lambda e: e["type"] == "snapshot" and e["ts"] > snap["ts"], 10, "a later snapshot")
    finally:
        s = live.stop()
        truth_path.unlink(missing_ok=True)
    hello = s.one("hello")
    assert hello["pid"] == pid and hello["options"]["snapshot_interval_ms"] == 300
    assert snap["pid"] == pid and "reason" not in snap
    assert_snapshot_is_dump(snap, dump)
    assert_snapshot_is_dump(later, dump)
    assert_snapshot_is_truth(snap, truth)
    # Ctrl-C reaches the program: it ends, and so does run.
    assert s.exit()["pid"] == pid, s.summary()
    assert pid_gone(pid)


# --------------------------------------------------------------------------------------
# CI mode

def test_run_fail_on_deadlock(interp):
    host_only(interp)
    truth_path = out_path(interp, "agent_deadlock")
    s = aioscope_run(interp.argv("agent_deadlock.py", "--truth", truth_path, "--variant", "deadlock",
                                 "--seconds", "1.5"),
                     *OPTS, "--snapshot-every", "250ms", "--fail-on", "deadlock")
    truth = read_json(truth_path)
    truth_path.unlink()
    ids = {t["name"]: t["id"] for t in truth["tasks"]}
    found = [f for e in s.of("snapshot") for f in e["findings"] if f["kind"] == "lock-deadlock"]
    assert found, f"no snapshot found the deadlock:\n{s.summary()}"
    assert all(set(f["tasks"]) == {ids["lock-ab"], ids["lock-ba"]} for f in found), found
    assert set(found[0]["objects"]) == {l for t in truth["tasks"] for l in t["holds"]}
    last = s.exit()
    assert last["status"] == 0 and last["deadlocks"] >= 1, s.summary()
    assert s.rc == EXIT_DEADLOCK, s.summary()


def test_run_status_passes_through_without_a_fail_on_condition():
    interp = host_interp()
    truth_path = out_path(interp, "agent_deadlock")
    s = aioscope_run(interp.argv("agent_deadlock.py", "--truth", truth_path, "--variant", "clean",
                                 "--seconds", "1.2", "--exit-status", "3"),
                     *OPTS, "--snapshot-every", "250ms", "--fail-on", "stall,deadlock")
    truth_path.unlink(missing_ok=True)
    snaps = s.of("snapshot")
    assert len(snaps) >= 3, f"too few snapshots to judge:\n{s.summary()}"
    assert not [f for e in snaps for f in e["findings"]], [e["findings"] for e in snaps]
    assert not s.of("stall")
    assert s.exit()["status"] == 3 and s.exit()["deadlocks"] == 0
    assert s.rc == 3, s.summary()


def test_run_deadlock_is_not_a_failure_unless_asked():
    interp = host_interp()
    truth_path = out_path(interp, "agent_deadlock")
    s = aioscope_run(interp.argv("agent_deadlock.py", "--truth", truth_path, "--variant", "deadlock",
                                 "--seconds", "1.2", "--exit-status", "5"),
                     *OPTS, "--snapshot-every", "250ms", "--fail-on", "stall")
    truth_path.unlink(missing_ok=True)
    assert s.exit()["deadlocks"] >= 1, "the deadlock was not seen: the test proves nothing"
    assert s.rc == 5, s.summary()


@pytest.mark.parametrize("fail_on, expected", [("stall,deadlock", EXIT_DEADLOCK), ("stall", EXIT_STALL),
                                               ("deadlock", EXIT_DEADLOCK)])
def test_run_deadlock_wins_over_stall(fail_on, expected):
    interp = host_interp()
    truth_path = out_path(interp, "agent_deadlock")
    s = aioscope_run(interp.argv("agent_deadlock.py", "--truth", truth_path, "--variant", "deadlock",
                                 "--seconds", "1.5", "--block", "0.3", "--exit-status", "0"),
                     *OPTS, "--snapshot-every", "250ms", "--fail-on", fail_on)
    truth_path.unlink(missing_ok=True)
    last = s.exit()
    assert last["stalls"] == 1 and last["deadlocks"] >= 1, s.summary()
    assert s.rc == expected, s.summary()


def test_run_signal_death_is_128_plus_signal():
    s = aioscope_run(["sh", "-c", "kill -TERM $$"])
    assert s.exit()["signal"] == signal.SIGTERM and s.exit()["status"] is None, s.summary()
    assert s.rc == 128 + signal.SIGTERM


def test_run_fail_on_without_any_agent_is_not_a_pass():
    """Nothing was observed (no Python ran): --fail-on must not report success."""
    s = aioscope_run(["sh", "-c", "exit 0"], "--fail-on", "stall,deadlock")
    assert not s.of("hello") and s.exit()["status"] == 0
    assert any("no agent reported" in w["message"] for w in s.of("warning")), s.summary()
    assert s.rc == 9, s.summary()
    plain = aioscope_run(["sh", "-c", "exit 0"])
    assert plain.rc == 0, "without --fail-on the program's status passes through"


def test_run_missing_program_is_a_usage_error():
    s = aioscope_run(["/nonexistent/aioscope-test-program"])
    assert s.rc == 2 and s.stderr.startswith("aioscope: ") and "nonexistent" in s.stderr, s.summary()


def test_run_unknown_fail_on_is_a_usage_error():
    s = aioscope_run(["true"], "--fail-on", "stalls")
    assert s.rc == 2 and s.stderr.startswith("aioscope: ") and "stalls" in s.stderr
    assert s.stderr.count("\n") == 1, s.stderr


def hung_tasks_check(s, truth):
    snaps = [e for e in s.of("snapshot") if e.get("reason") == "timeout"]
    assert len(snaps) == 1, f"{len(snaps)} snapshots with reason timeout:\n{s.summary()}"
    snap = snaps[0]
    assert snap["pid"] == truth["pid"]
    view = TaskView(truth, snap["tasks"])
    assert_same_task_set(view)
    assert_stacks(view)
    return snap


def test_run_timeout_dumps_and_stops_a_hung_program(interp):
    host_only(interp)
    truth_path = out_path(interp, "agent_parked")
    s = aioscope_run(interp.argv("agent_parked.py", "--truth", truth_path), *OPTS, "--timeout", "3s")
    truth = read_json(truth_path)
    truth_path.unlink()
    assert s.one("hello")["pid"] == truth["pid"]
    assert len([e for e in s.of("snapshot") if e.get("reason") == "timeout"]) == 1, s.summary()
    hung_tasks_check(s, truth)
    last = s.exit()
    assert last["timed_out"], s.summary()
    assert last["signal"] == signal.SIGTERM, "a Python program stops on SIGTERM"
    assert pid_gone(truth["pid"], 1), "the program is still there"
    assert 3 <= s.seconds < 10, f"run took {s.seconds:.1f} s with --timeout 3s"
    assert s.rc == EXIT_TIMEOUT, s.summary()


def test_run_timeout_kills_a_program_ignoring_sigterm():
    interp = host_interp()
    truth_path = out_path(interp, "agent_parked")
    s = aioscope_run(interp.argv("agent_parked.py", "--truth", truth_path, "--ignore-sigterm"),
                     *OPTS, "--timeout", "2s")
    truth = read_json(truth_path)
    truth_path.unlink()
    hung_tasks_check(s, truth)
    assert s.exit()["signal"] == signal.SIGKILL, s.summary()
    assert pid_gone(truth["pid"], 1)
    assert 2 + 3 <= s.seconds < 12, f"SIGKILL comes 3 s after SIGTERM; run took {s.seconds:.1f} s"
    assert s.rc == EXIT_TIMEOUT


def test_run_timeout_reads_from_outside_without_an_agent():
    """The program runs without the agent (LD_PRELOAD dropped by env): the
    watchdog's dump is read from outside."""
    interp = host_interp()
    truth_path = out_path(interp, "agent_parked")
    s = aioscope_run(["env", "-u", "LD_PRELOAD", *interp.argv("agent_parked.py", "--truth", truth_path)],
                     *OPTS, "--timeout", "3s")
    truth = read_json(truth_path)
    truth_path.unlink()
    assert not s.of("hello"), "the agent was not supposed to load"
    snap = hung_tasks_check(s, truth)
    assert snap["findings"] == [] and s.exit()["timed_out"]
    assert pid_gone(truth["pid"], 1)
    assert s.rc == EXIT_TIMEOUT, s.summary()


# --------------------------------------------------------------------------------------
# Text mode on a terminal

def run_on_pty(argv, timeout=60):
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(a) for a in argv], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    return proc.returncode, out.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def pty_run():
    interp = host_interp()
    truth_path = out_path(interp, "agent_stalls")
    rc, out = run_on_pty([AIOSCOPE, "run", *OPTS, "--snapshot-every", "700ms", "--",
                          *interp.argv("agent_stalls.py", "--truth", truth_path, "--episodes", "2")])
    truth = read_json(truth_path)
    truth_path.unlink()
    return rc, out, truth


def test_run_text_mode_on_a_terminal(pty_run):
    rc, out, truth = pty_run
    text = strip_ansi(out)
    assert rc == 0, out
    assert "\x1b[" in out, "colours on a terminal by default"
    assert not [l for l in text.splitlines() if l.lstrip().startswith("{")], "JSON on a terminal without --json"
    assert "aioscope: " not in text, text
    pid = truth["pid"]
    top = truth["episodes"][0]["stack"][0]
    for want in (f"pid {pid}", f"CPython {truth['version']}", "STALL #1", "STALL #2", "in task 'stall-task'",
                 f"{top['qualname']} ({top['file']}:{top['line']})", "stall #1 ended after",
                 "stall #2 ended after", f"snapshot · pid {pid}", "Task 'stall-task'", "exited"):
        assert want in text, f"{want!r} missing from:\n{text}"


def test_run_text_hello_line_reads_well(pty_run):
    rc, out, truth = pty_run
    hello = next(l for l in strip_ansi(out).splitlines() if f"pid {truth['pid']} · CPython" in l)
    assert "runed" not in hello and "agent loaded at start" in hello, hello


def test_run_json_flag_on_a_terminal():
    rc, out = run_on_pty([AIOSCOPE, "run", "--json", "--", "sh", "-c", "exit 4"])
    lines = [l for l in out.replace("\r", "").splitlines() if l.strip()]
    events = [json.loads(l) for l in lines]
    assert [e["type"] for e in events if e["type"] != "warning"] == ["exit"], events
    assert events[0]["type"] == "exit" and events[0]["status"] == 4
    assert rc == 4


# --------------------------------------------------------------------------------------
# Programs that reach Python through exec, pytest, fork

def test_run_through_a_shell_exec(interp):
    host_only(interp)
    truth_path = out_path(interp, "agent_stalls")
    # Two bursts: the program lingers 0.5 s after its last stall (see
    # test_run_stall_just_before_exit_keeps_its_end for what happens otherwise).
    cmd = " ".join(f"'{a}'" for a in interp.argv("agent_stalls.py", "--truth", truth_path, "--episodes", "2",
                                                  "--bursts", "2"))
    s = aioscope_run(["sh", "-c", f"exec {cmd}"], *OPTS)
    truth = read_json(truth_path)
    truth_path.unlink()
    assert s.one("hello")["pid"] == truth["pid"], s.summary()
    pairs, lost, missed = match_stalls(s, truth["episodes"], pid=truth["pid"])
    assert len(pairs) == 2 and not missed, s.summary()
    problems = judge_stalls(s, truth["slow_callbacks"], pid=truth["pid"])
    assert not problems, "\n".join(problems) + "\n" + s.summary()
    for st, end, ep in pairs:
        assert frames(st["stack"]) == frames(ep["stack"]) and st["task"]["name"] == "stall-task"
        assert end is not None
    assert s.exit()["pid"] == truth["pid"] and s.rc == 0


def test_run_through_a_shell_child():
    """sh runs python as a child (no exec): the agent reports from python's
    pid, the shell gets none, and the shell's status is run's."""
    interp = host_interp()
    truth_path = out_path(interp, "agent_stalls")
    cmd = " ".join(f"'{a}'" for a in interp.argv("agent_stalls.py", "--truth", truth_path, "--episodes", "1",
                                                  "--bursts", "1"))
    s = aioscope_run(["sh", "-c", f"{cmd}; exit 7"], *OPTS)
    truth = read_json(truth_path)
    truth_path.unlink()
    hello = s.one("hello")
    assert hello["pid"] == truth["pid"] != s.exit()["pid"], s.summary()
    assert {st["pid"] for st in s.of("stall")} == {truth["pid"]}, s.summary()
    problems = judge_stalls(s, truth["slow_callbacks"])
    assert not problems, "\n".join(problems) + "\n" + s.summary()
    assert s.exit()["status"] == 7 and s.rc == 7


DEBIAN_PYTHON = "/usr/bin/python3.11"


@pytest.mark.parametrize("launcher", ["pytest-3", "python3.11 -m pytest"])
def test_run_pytest_asyncio_suite(launcher, tmp_path):
    """Debian's pytest with pytest-asyncio, run under `aioscope run`."""
    if not Path(DEBIAN_PYTHON).exists():
        pytest.skip(f"CPython 3.11-debian unavailable: {DEBIAN_PYTHON} not found")
    probe = subprocess.run([DEBIAN_PYTHON, "-c", "import pytest, pytest_asyncio"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("pytest-asyncio unavailable for Debian's python3.11 (apt install python3-pytest-asyncio)")
    prog = ["/usr/bin/pytest-3"] if launcher == "pytest-3" else [DEBIAN_PYTHON, "-m", "pytest"]
    if not Path(prog[0]).exists():
        pytest.skip(f"{prog[0]} unavailable (apt install python3-pytest)")
    fixtures = Path(__file__).resolve().parents[2] / "fixtures"
    truth_path = tmp_path / "truth.json"
    events = tmp_path / "events.jsonl"
    env = dict(os.environ, AGENT_PYTEST_TRUTH=str(truth_path))
    # Events to a file: the program's own output shares stdout with run's.
    s = aioscope_run([*prog, "-q", "-p", "no:cacheprovider", "--rootdir", tmp_path,
                      fixtures / "agent_pytest_case.py"], *OPTS, "--quiet", "--output", events,
                     env=env, json_=False, timeout=120)
    s.events = [json.loads(l) for l in events.read_text().splitlines()]
    truth = read_json(truth_path)
    assert "3 passed" in s.stdout, s.stdout + s.stderr
    assert '"schema"' not in s.stdout, "--quiet printed events"
    assert truth["hooked"], "the agent's hooks never went in"
    hello = s.one("hello")
    assert hello["pid"] == truth["pid"] and hello["python"]["version"] == truth["version"]
    pairs, lost, missed = match_stalls(s, truth["episodes"])
    assert len(pairs) == 1 and not missed, s.summary()
    problems = judge_stalls(s, truth["slow_callbacks"])
    assert not problems, "\n".join(problems) + "\n" + s.summary()
    st, end, ep = pairs[0]
    assert frames(st["stack"]) == frames(ep["stack"])
    assert st["stack"][0]["function"] == "block_for"
    assert st["stack"][1]["function"] == "test_blocks_the_loop"
    assert (st["task"]["name"], st["task"]["id"]) == (ep["task"], ep["task_id"])
    assert end is not None and end["duration_ms"] >= ep["measured_ms"] - 0.5
    assert s.rc == 0


class ForkRun:
    """`aioscope run` of a forking fixture; its truth and its child's."""

    def __init__(self, interp, script="agent_fork.py"):
        host_only(interp)
        truth_path = out_path(interp, Path(script).stem)
        child_path = Path(str(truth_path) + ".child")
        self.stream = aioscope_run(interp.argv(script, "--truth", truth_path), *OPTS)
        self.truth = read_json(truth_path)
        self.child = read_json(child_path, "child truth")
        truth_path.unlink()
        child_path.unlink()
        for t in (self.truth, self.child):
            errors = [e["error"] for e in t.get("episodes", []) if "error" in e]
            assert not errors, errors


@pytest.fixture(scope="module")
def fork_run(interp):
    return ForkRun(interp)


def test_run_fork_child_gets_its_own_hello_and_parent_keeps_streaming(fork_run):
    s, truth, child = fork_run.stream, fork_run.truth, fork_run.child
    parent, kid = truth["pid"], truth["child_pid"]
    assert child["pid"] == kid and truth["child_status"] == 0 and truth["hooked"]
    assert sorted(s.pids("hello")) == sorted([parent, kid]), s.summary()
    assert s.one("hello", kid)["mode"] == "run"
    order = [(e["type"], e["pid"]) for e in s.events]
    assert order.index(("hello", parent)) < order.index(("hello", kid))
    p_pairs, p_lost, p_missed = match_stalls(s, truth["episodes"], pid=parent)
    c_pairs, c_lost, c_missed = match_stalls(s, child["episodes"], pid=kid)
    assert len(p_pairs) == 2 and not p_missed, s.summary()
    assert len(c_pairs) == 1 and not c_missed, s.summary()
    problems = (judge_stalls(s, truth["slow_callbacks"], pid=parent)
                + judge_stalls(s, child["slow_callbacks"], pid=kid))
    assert not problems, "\n".join(problems) + "\n" + s.summary()
    for st, end, ep in p_pairs + c_pairs:
        assert st["task"]["name"] == ep["task"], describe_stall(st)
        assert frames(st["stack"]) == frames(ep["stack"]), describe_stall(st)
        assert end is not None and end["duration_ms"] >= ep["measured_ms"] - 0.5
    # The parent's last stall comes after the child is gone.
    after = next(st for st, _, ep in p_pairs if ep["task"] == "parent-after")
    last_child = max(i for i, e in enumerate(s.events) if e["pid"] == kid)
    assert s.events.index(after) > last_child
    assert s.exit()["pid"] == parent and s.rc == 0


def test_run_fork_child_making_its_loop_slowly_is_no_stall(interp):
    """The child's session begins while its asyncio.run() is still making
    the loop (slow, as on a starved machine): no loop runs, so no stall; its
    one real stall afterwards is reported. (A slow loop creation used to be
    taken for a callback under way: a false stall at `new_event_loop`.)"""
    run = ForkRun(interp, "agent_fork_slow_setup.py")
    s, truth, child = run.stream, run.truth, run.child
    kid = truth["child_pid"]
    assert truth["hooked"] and truth["child_status"] == 0 and child["pid"] == kid
    assert child["setup_ended_at"] - child["setup_started_at"] >= 0.5
    assert s.one("hello", kid)["mode"] == "run", s.summary()
    pairs, lost, missed = match_stalls(s, child["episodes"], pid=kid)
    assert not lost, "stalls that are no episode:\n" + "\n".join(describe_stall(st) for st in lost) + "\n" + s.summary()
    assert len(pairs) == 1 and not missed, s.summary()
    st = pairs[0][0]
    assert st["task"]["name"] == "child-stall", describe_stall(st)


def test_run_fork_pool_workers_are_no_stalls(interp):
    """Workers of a fork-based process pool are forked inside the parent's
    callback and live inside it (waiting for work, working 0.4 s an item)
    without ever running a loop: none of them is reported as a stall (each
    once was, 100 ms after its fork, failing --fail-on stall). Each still
    says hello, and goodbye on its os._exit."""
    host_only(interp)
    truth_path = out_path(interp, "agent_fork_pool")
    try:
        s = aioscope_run(interp.argv("agent_fork_pool.py", "--truth", truth_path), *OPTS)
        truth = read_json(truth_path)
    finally:
        truth_path.unlink(missing_ok=True)
    assert truth["results"] == [0, 2, 4, 6]
    workers = set(truth["workers"])
    assert workers and workers <= set(s.pids("hello")), s.summary()
    in_workers = [e for e in s.events if e["pid"] in workers and e["type"] in ("stall", "stall_end")]
    assert not in_workers, "\n".join(describe_stall(e) for e in in_workers if e["type"] == "stall") + "\n" + s.summary()
    for pid in workers:
        assert any(e["type"] == "goodbye" and "os._exit" in e["message"] for e in s.of("goodbye", pid)), s.summary()


def test_run_fork_child_stall_names_the_childs_thread(fork_run):
    s, child = fork_run.stream, fork_run.child
    kid = fork_run.truth["child_pid"]
    pairs, _, _ = match_stalls(s, child["episodes"], pid=kid)
    assert len(pairs) == 1, s.summary()
    st, end, ep = pairs[0]
    assert st["native_id"] == ep["native_id"] == kid, f"stall native_id {st['native_id']}, child {kid}"
    assert end["native_id"] == kid
    assert "native_error" not in st
    fns = [f["function"] for f in st["native_stack"]]
    assert fns and SLEEP_SYSCALL.search(fns[0]), f"the child blocks in time.sleep; native {fns[:5]}"
