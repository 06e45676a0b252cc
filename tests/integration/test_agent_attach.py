"""`aioscope attach`: the agent loaded into a running process (PEP 768 on
3.14+, ptrace dlopen below), its stream, detaching, attaching again, and
100 attach/detach cycles, against fixtures that check themselves.

fixtures/agent_busy.py is a busy service: a ticker, self-checking work, a
250 ms stall every second (block_for(): measured by the fixture, its stacks
sampled from inside), and a heartbeat file saying how far it got, what went
wrong, and whether the agent's hooks are in. On SIGUSR1 it parks its
tasks and publishes their ground truth for a dump.
"""
import json
import os
import signal
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest

from aio import assert_awaited_by, assert_awaiting, assert_same_task_set, assert_stacks
from agent_helpers import (EXIT_PERMISSION, INTERVAL_MS, THRESHOLD_MS, BusyTarget, Live, Target, TaskView,
                           agent_mappings, aioscope_attach, describe_stall, detection_problems, diff_lists, frames,
                           judge_stalls, match_stalls, staging_leftovers,
                           out_path, read_json, short_heartbeat, thread_ids, wait_file, wait_threads)
from harness import AIOSCOPE, dump_json
from test_dump_threads import assert_matches_truth
from zoo import ZOO, usable

OPTS = ["--stall-threshold", f"{THRESHOLD_MS}ms", "--interval", f"{INTERVAL_MS}ms"]
ATTACH_SECONDS = 4



def pick_host_interp(preferred="3.12"):
    hosts = sorted((i for i in ZOO if i.root == "/"), key=lambda i: i.name != preferred)
    for it in hosts:
        if not it.unavailable():
            return it
    pytest.skip("no host CPython available: " + "; ".join(f"{i.name}: {i.unavailable()}" for i in hosts))


def version_of(truth):
    return tuple(int(x) for x in truth["version"].split(".")[:2])


# --------------------------------------------------------------------------------------
# One busy target per interpreter: attach, check it runs on, attach again, park, dump

class Session:
    """Everything done to one agent_busy.py target; the tests judge the record.
    A step that fails (the target may have died) is recorded, not raised: the
    tests that need it fail with what happened."""

    def __init__(self, interp):
        self.interp = interp
        self.target = BusyTarget(interp)
        self.version = version_of(self.target.truth)
        self.reached = set()
        self.failure = None
        self.step = "start"
        try:
            self._steps()
        except Exception as e:
            died = self.target.proc.poll()
            why = ""
            if died is not None:
                why = (f"; the target died ({signal.Signals(-died).name})" if died < 0
                       else f"; the target exited ({died})")
            self.failure = f"{self.step}: {type(e).__name__}: {e}{why}\n{self.target.stderr()}"

    def _steps(self):
        pid = self.pid = self.target.pid
        self.threads_before = thread_ids(pid)
        self.maps_before = agent_mappings(pid)
        self.hb_before = self.target.wait_heartbeat(lambda hb: hb["episodes"], 10, "a first episode")

        self.step = "first attach"
        self.first = aioscope_attach(pid, *OPTS, "--duration", f"{ATTACH_SECONDS}s")
        self.first_end = time.time()
        self.alive_after_first = self.target.alive()
        self.reached.add("first attach")
        self.step = "after the first detach"
        self.threads_after_first = wait_threads(pid, len(self.threads_before))
        self.maps_after_first = agent_mappings(pid)
        # Heartbeats written after the detach, 0.5 s apart.
        self.hb_after_first = self.target.wait_heartbeat(lambda hb: hb["time"] > self.first_end + 0.2, 10,
                                                         "a beat after the detach")
        self.hb_later = self.target.wait_heartbeat(lambda hb: hb["time"] > self.hb_after_first["time"] + 0.5, 10,
                                                   "a later beat")
        self.reached.add("after the first detach")

        self.step = "second attach"
        self.second = aioscope_attach(pid, *OPTS, "--duration", "2s")
        self.alive_after_second = self.target.alive()
        self.threads_after_second = wait_threads(pid, len(self.threads_before))
        self.maps_after_second = agent_mappings(pid)
        self.reached.add("second attach")

        self.step = "park and dump"
        self.parked_truth = self.target.park()
        self.hb_parked = self.target.heartbeat()
        self.dump = dump_json(pid)
        self.stderr = self.target.stderr()
        self.reached.add("park and dump")

    def need(self, *steps):
        missing = [x for x in steps if x not in self.reached]
        assert not missing, f"not reached: {missing}; failed at {self.failure}"

    def close(self):
        self.target.close()


@pytest.fixture(scope="module")
def session(interp):
    s = Session(interp)
    try:
        yield s
    finally:
        s.close()




def test_attach_streams_hello_stalls_and_detached(session):
    session.need("first attach")
    assert session.alive_after_first, session.failure
    s, truth = session.first, session.target.truth
    s.assert_well_formed()
    assert s.rc == 0, s.summary()
    hello = s.one("hello")
    assert hello["pid"] == session.pid and s.events[0] is hello, s.summary()
    assert hello["mode"] == "attach" and hello["python"]["version"] == truth["version"]
    assert hello["options"] == {"interval_ms": INTERVAL_MS, "stall_threshold_ms": THRESHOLD_MS,
                                "snapshot_interval_ms": 0}
    # The hello does not wait for the hooks; they go in at once (the target
    # had imported asyncio long before), before any stall.
    first_stall = s.events.index(s.of("stall")[0]) if s.of("stall") else len(s.events)
    assert s.active_before("stall_detection", first_stall), s.summary()
    for name in ("unawaited_coroutine", "cancellation_swallowed", "task_exception_unretrieved",
                 "task_destroyed_pending", "snapshots"):
        assert s.capability_states(name)[-1][1] == "active", (name, s.capability_states(name))
    assert ATTACH_SECONDS <= s.seconds < ATTACH_SECONDS + 5, f"attach --duration {ATTACH_SECONDS}s took {s.seconds:.1f} s"
    assert s.events[-1]["type"] == "detached" and s.events[-1]["pid"] == session.pid, s.summary()
    assert {e["pid"] for e in s.events} == {session.pid}
    assert not s.of("error") and not s.of("warning"), s.summary()


def test_attach_stalls_are_the_fixtures_episodes(session):
    session.need("after the first detach")
    s = session.first
    episodes = session.hb_after_first["episodes"]
    stalls = s.of("stall")
    # 4 s of a 250 ms stall every second.
    assert len(stalls) >= ATTACH_SECONDS - 2, s.summary()
    pairs, lost, missed_all = match_stalls(s, episodes)
    hello_ts = s.one("hello")["ts"]
    detached_ts = s.events[-1]["ts"]
    # Any other stall is a callback the loop itself timed past the threshold
    # (the machine can make one overrun), and every such callback while
    # attached is a stall.
    problems = judge_stalls(s, session.hb_after_first["slow_callbacks"], window=(hello_ts, detached_ts - 0.05))
    assert not problems, "\n".join(problems) + "\n" + s.summary()
    # Every episode that ran entirely while attached (after the hello, with
    # room for its first sample before the detach) was reported.
    missed = [ep for ep in missed_all
              if ep["started_at"] > hello_ts and ep["started_at"] + (THRESHOLD_MS + 50) / 1000 < detached_ts]
    assert not missed, f"episodes while attached without a stall: {missed}\n{s.summary()}"
    ends = s.of("stall_end")
    assert len(ends) >= len(stalls) - 1, "only a stall still running at the detach may lack its end"
    bad = detection_problems(s)
    for st, end, ep in pairs:
        if frames(st["stack"]) != frames(ep["stack"]):
            bad.append(f"{describe_stall(st)}: stack differs from the sampled {frames(ep['stack'])[:2]}")
        task = st["task"] or {}
        if (task.get("name"), task.get("id")) != ("stall-task", ep["task_id"]):
            bad.append(f"{describe_stall(st)}: task {task.get('name')} {task.get('id')}, expected {ep['task_id']}")
        elif frames(task["stack"]) != frames(ep["task_stack"]):
            bad.append(f"{describe_stall(st)}: task stack differs")
        if (st["thread_id"], st["native_id"]) != (ep["thread_id"], ep["native_id"]):
            bad.append(f"{describe_stall(st)}: thread {st['thread_id']}/{st['native_id']}")
        # An episode under way when the agent arrived is timed from then:
        # its duration is a lower bound (at_least).
        if end is not None and not end.get("at_least") and end["duration_ms"] < ep["measured_ms"] - 0.5:
            bad.append(f"{describe_stall(st)}: lasted {end['duration_ms']:.2f} ms, shorter than the "
                       f"{ep['measured_ms']:.2f} ms the fixture slept in it")
        if "native_error" in st or not st["native_stack"]:
            bad.append(f"{describe_stall(st)}: no native stack ({st.get('native_error')})")
    assert not bad, "\n".join(bad)
    order = [e["type"] for e in s.events]
    assert order.index("detached") > max(i for i, t in enumerate(order) if t in ("stall", "stall_end"))


def test_target_runs_on_after_detach(session):
    session.need("after the first detach", "second attach", "park and dump")
    assert session.alive_after_first and session.alive_after_second, session.stderr
    assert session.maps_before == set(), "the agent was loaded before the first attach"
    before, after, later = session.hb_before, session.hb_after_first, session.hb_later
    assert not after["hooked"] and not later["hooked"], "the hooks are still in after the detach"
    assert later["ticks"] > after["ticks"] > before["ticks"], (short_heartbeat(after), short_heartbeat(later))
    assert later["work_done"] > after["work_done"] > before["work_done"]
    assert len(later["episodes"]) > len(before["episodes"]) or later["episodes"][-1] != before["episodes"][-1]
    for hb in (after, later, session.hb_parked):
        assert hb["work_errors"] == [] and hb["loop_errors"] == [], short_heartbeat(hb)
        assert hb["work_started"] - hb["work_done"] <= 1, short_heartbeat(hb)
    assert session.threads_after_first == session.threads_before, \
        "the agent's thread must exit on detach (threads before/after)"


def test_target_logged_nothing(session):
    session.need("park and dump")
    assert session.stderr == "", session.stderr


def test_attach_twice_loads_the_agent_once(session):
    session.need("second attach")
    s = session.second
    assert len(session.maps_after_first) == 1, session.maps_after_first
    assert session.maps_after_second == session.maps_after_first, "a second copy of the agent was loaded"
    assert s.rc == 0, s.summary()
    hello = s.one("hello")
    assert hello["pid"] == session.pid and hello["mode"] == "attach"
    assert s.events[-1]["type"] == "detached", s.summary()
    assert session.threads_after_second == session.threads_before


def test_dump_after_detach_matches_truth(session):
    session.need("park and dump")
    truth, dump = session.parked_truth, session.dump
    assert session.hb_parked["parked"]
    view = TaskView(truth, dump["tasks"])
    assert_same_task_set(view)
    assert_stacks(view)
    assert_awaiting(view)
    assert_awaited_by(view)
    # No Python thread state of the agent's is left behind either.
    assert_matches_truth(dump, truth)
    assert dump["warnings"] == [] and dump["findings"] == []


# --------------------------------------------------------------------------------------
# A snapshot on request (SIGUSR1 to aioscope) against dump and truth

def test_attach_snapshot_on_request_equals_dump_and_truth(interp):
    # --tick: a plain callback every 250 ms gives PEP 768 (3.14+) a safe point
    # (rarely enough that the main thread is almost never caught holding the GIL).
    # "Almost": a snapshot and a dump that straddle a tick differ in the main
    # thread's innermost frames or GIL, so up to three rounds (SIGUSR1, then a
    # dump); a real difference between the two readers shows in every one.
    rounds = []
    with Target(interp, "agent_parked.py", "--tick", "0.25") as target:
        pid = target.pid
        live = Live([AIOSCOPE, "attach", "--json", *OPTS, pid])
        try:
            live.wait_for(lambda e: e["type"] == "hello", 30, "hello")
            # The hello does not wait for the hooks; the dump is compared with
            # the program as it runs once they are in.
            live.wait_for(lambda e: e["type"] == "capabilities"
                          and e["capabilities"]["stall_detection"]["state"] == "active", 30, "hooks installed")
            for _ in range(3):
                os.kill(live.proc.pid, signal.SIGUSR1)
                snap = live.wait_for(lambda e: e["type"] == "snapshot" and all(e is not r[0] for r in rounds), 10,
                                     "a snapshot on SIGUSR1")
                dump = dump_json(pid)
                bad = diff_lists(snap["tasks"], dump["tasks"], "id", "task")
                bad += diff_lists(snap["threads"], dump["threads"], "thread_id", "thread")
                rounds.append((snap, bad))
                if not bad:
                    break
        finally:
            s = live.stop()
        assert s.rc == 0 and s.events[-1]["type"] == "detached", s.summary()
        assert len(s.of("snapshot")) == len(rounds) and snap["pid"] == pid
        assert s.one("hello")["options"]["snapshot_interval_ms"] == 0
        assert not bad, "snapshot (first) and dump (second) differ in every round:\n" + "\n--\n".join(
            "\n".join(b[:20]) for _, b in rounds)
        if len(rounds) > 1:  # said in the run's warnings summary: which differences went away
            warnings.warn(f"{interp.name}: the snapshot matched the dump in round {len(rounds)}; before: "
                          + " | ".join("; ".join(b[:5]) for _, b in rounds[:-1]))
        assert snap["findings"] == dump["findings"] and snap["warnings"] == []
        view = TaskView(target.truth, snap["tasks"])
        assert_same_task_set(view)
        assert_stacks(view)
        assert_awaiting(view)
        assert_awaited_by(view)
        assert target.alive()


def test_attach_to_an_idle_program(interp):
    """Every task parked, the loop asleep in epoll for an hour: the typical hung service."""
    with Target(interp, "agent_parked.py") as target:
        s = aioscope_attach(target.pid, *OPTS, "--duration", "1s")
        assert s.rc == 0, s.summary()
        assert s.one("hello")["pid"] == target.pid
        assert s.events[-1]["type"] == "detached", s.summary()
        assert len(agent_mappings(target.pid)) == 1
        assert target.alive()


def attach_until_exit(interp, reap, timeout=20):
    with Target(interp, "agent_parked.py", "--tick", "0.25", "--exit-after", "2") as target:
        if reap:  # like a shell or a supervisor, the parent reaps the program as soon as it ends
            threading.Thread(target=target.proc.wait, daemon=True).start()
        s = aioscope_attach(target.pid, *OPTS, timeout=timeout)
        assert target.proc.wait(10) == 0, f"the program ended with {target.proc.returncode}: {target.stderr()}"
        assert s.rc == 0, s.summary()
        assert s.one("hello")["pid"] == target.pid
        assert s.one("goodbye")["pid"] == target.pid
        last = s.events[-1]
        assert last["type"] == "exit" and last["pid"] == target.pid and last["status"] is None, s.summary()


def test_attach_until_the_target_exits(interp):
    """No --duration: the stream ends when the program does, with the agent's
    goodbye and the CLI's exit event."""
    attach_until_exit(interp, reap=True)


def test_attach_ends_when_the_target_is_a_zombie():
    # The program ends about 2 s after the attach; 8 s is plenty to notice.
    attach_until_exit(pick_host_interp(), reap=False, timeout=8)


def test_a_detach_the_program_keeps_waiting_is_said_and_done_later():
    """The agent takes the GIL to remove its hooks. A program holds it in
    one long C call (libc's sleep through ctypes.PyDLL) when Ctrl-C
    detaches: attach says the detach is unconfirmed (never a silent exit 0
    with the hooks in place), and the agent removes them by itself once the
    call returns."""
    interp = pick_host_interp()
    hold_s = 10  # longer than attach waits for the confirmation (5 s)
    hold, result = out_path(interp, "gil-held-hold"), out_path(interp, "gil-held-result")
    with Target(interp, "attach_gil_held.py", "--hold", hold, "--result", result, "--seconds", str(hold_s),
                files=(hold, result)) as target:
        hooked, holding = (Path(f"{target.truth_path}.{s}") for s in ("hooked", "holding"))
        target.extra_files += [hooked, holding]
        live = Live([AIOSCOPE, "attach", "--json", *OPTS, target.pid])
        try:
            live.wait_for(lambda e: e["type"] == "hello", 30, "hello")
            wait_file(hooked, 30, target.proc, "hooks")
            hold.write_text("")
            wait_file(holding, 30, target.proc, "GIL hold")
            t0 = time.monotonic()
        finally:
            s = live.stop()
        took = time.monotonic() - t0
        assert s.rc == 0, s.summary()
        types = [e["type"] for e in s.events]
        assert "detached" not in types, s.summary()
        unconfirmed = [e for e in s.events if e["type"] == "warning" and "did not confirm its detach" in e["message"]]
        assert len(unconfirmed) == 1, s.summary()
        assert took < hold_s, f"attach ended {took:.1f} s after Ctrl-C: it waited for the GIL itself"
        assert target.proc.wait(60) == 0, target.stderr()
        r = json.loads(result.read_text())
        assert r["held_s"] >= hold_s - 0.5, r
        assert r["hooks_gone_after_s"] is not None, f"the hooks stayed after the GIL was free: {r}"


def test_attach_again_over_another_tools_wrapper(interp):
    """Another tool wraps Handle._run and _set_running_loop while aioscope is attached; aioscope
    detaches (leaving the tool's wrapper, which calls aioscope's) and
    attaches again over it. Every callback runs once, through the tool's
    wrapper once, without error (before, aioscope's two wrappers shared one
    "original" and every callback recursed until RecursionError; so did a
    loop's start), and the second attach reports the program's stall."""
    go, result = out_path(interp, "foreign-wrapper-go"), out_path(interp, "foreign-wrapper-result")
    with Target(interp, "attach_foreign_wrapper.py", "--go", interp.inside(go), "--result", interp.inside(result),
                files=(go, result)) as target:
        marks = {m: Path(f"{target.truth_path}.{m}") for m in ("wrapped", "kept", "rehooked")}
        target.extra_files += list(marks.values())
        first = Live([AIOSCOPE, "attach", "--json", *OPTS, target.pid])
        try:
            first.wait_for(lambda e: e["type"] == "hello", 30, "hello")
            wait_file(marks["wrapped"], 30, target.proc, "the tool's wrapper")
        finally:
            s1 = first.stop()
        assert s1.rc == 0 and s1.events[-1]["type"] == "detached", s1.summary()
        go.write_text("")
        wait_file(marks["kept"], 30, target.proc, "the check of the tool's wrapper")
        assert read_json(marks["kept"], "kept")["kept"] is True, "the detach removed the tool's wrapper"
        second = Live([AIOSCOPE, "attach", "--json", *OPTS, target.pid])
        try:
            second.wait_for(lambda e: e["type"] == "hello", 30, "hello")
            wait_file(result, 60, target.proc, "result")
        finally:
            s2 = second.stop()
        assert target.proc.wait(30) == 0, target.stderr()
        r = read_json(result, "result")
        assert r["errors"] == [], r
        assert (r["ran"], r["seen_by_wrapper"]) == (50, 50), r
        assert r["second_loop_before"]["error"] is None and r["second_loop_before"]["set_calls"] >= 2, r
        assert r["second_loop"] == r["second_loop_before"], r
        assert r["stall_s"] >= 0.29, f"premise: the blocking callback ran {r['stall_s']} s"
        stalls = [e for e in s2.events if e["type"] == "stall_end" and e["duration_ms"] >= 250]
        assert len(stalls) == 1, s2.summary()
        assert target.stderr() == ""


@pytest.mark.parametrize("what, status", [("no such pid", 3), ("not python", 5)])
def test_attach_errors(what, status):
    proc = subprocess.Popen(["sleep", "60"]) if what == "not python" else None
    try:
        pid = proc.pid if proc else 4194304 + 1  # above the kernel's pid_max limit
        s = aioscope_attach(pid, *OPTS, "--duration", "1s")
        assert s.rc == status, s.summary()
        assert s.stderr.startswith("aioscope: ") and s.stderr.count("\n") == 1, s.stderr
        assert s.events == []
        if proc:
            assert agent_mappings(proc.pid) == set() and proc.poll() is None
    finally:
        if proc:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------------------
# PEP 768 refused

def tmp_entries(pid):
    """aioscope's folders left in the target's /tmp (those of aioscopes still
    running, such as other tests', do not count)."""
    return staging_leftovers(f"/proc/{pid}/root/tmp")


def test_attach_refused_when_remote_debug_disabled(interp):
    with Target(interp, "agent_parked.py", env={"PYTHON_DISABLE_REMOTE_DEBUG": "1"}) as target:
        if version_of(target.truth) < (3, 14):
            pytest.skip(f"CPython {interp.name}: PYTHON_DISABLE_REMOTE_DEBUG is a 3.14+ (PEP 768) setting; "
                        "below 3.14 attach uses ptrace")
        staged_before = tmp_entries(target.pid)
        s = aioscope_attach(target.pid, *OPTS, "--duration", "2s")
        assert s.rc == EXIT_PERMISSION, s.summary()
        lines = s.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("aioscope: "), s.stderr
        assert "PYTHON_DISABLE_REMOTE_DEBUG" in lines[0]
        assert not s.of("hello"), s.summary()
        assert agent_mappings(target.pid) == set(), "the agent was loaded anyway"
        assert tmp_entries(target.pid) == staged_before, "files left in the target's /tmp"
        assert target.alive() and target.stderr() == ""


# --------------------------------------------------------------------------------------
# 100 attach/detach cycles

CYCLES = 100
CYCLE_INTERPS = [i for i in ZOO if i.name in ("3.12", "3.14")]


@pytest.fixture(params=CYCLE_INTERPS, ids=[i.name for i in CYCLE_INTERPS])
def cycle_interp(request):
    return usable(request.param)


def test_attach_detach_cycles(cycle_interp):
    target = BusyTarget(cycle_interp)
    try:
        pid = target.pid
        threads_before = thread_ids(pid)
        hb_before = target.heartbeat()
        t0 = time.monotonic()
        for n in range(1, CYCLES + 1):
            s = aioscope_attach(pid, *OPTS, "--duration", "0.3s", timeout=60)
            ok = (s.rc == 0 and [e["type"] for e in s.events].count("hello") == 1
                  and s.events[-1]["type"] == "detached")
            assert ok, f"attach #{n} of {CYCLES} after {time.monotonic() - t0:.1f} s:\n{s.summary()}"
            assert target.alive(), f"the target died at attach #{n}: {target.stderr()}"
        elapsed = time.monotonic() - t0
        maps = agent_mappings(pid)
        threads_after = wait_threads(pid, len(threads_before))
        end = time.time()
        hb = target.wait_heartbeat(lambda b: b["time"] > end + 0.2, 10, "a beat after the cycles")
        later = target.wait_heartbeat(lambda b: b["time"] > hb["time"] + 0.3, 10, "a later beat")
        assert len(maps) == 1, f"agent mappings after {CYCLES} attaches: {maps}"
        assert threads_after == threads_before, "a thread of aioscope's stayed in the target"
        assert later["ticks"] > hb["ticks"] > hb_before["ticks"], "the target stopped ticking"
        assert later["work_done"] > hb_before["work_done"]
        assert later["work_errors"] == [] and later["loop_errors"] == [], short_heartbeat(later)
        assert later["work_started"] - later["work_done"] <= 1
        assert not later["hooked"], "the hooks are still in after the last detach"
        assert target.stderr() == ""
        print(f"{CYCLES} attach/detach cycles on {cycle_interp.name} in {elapsed:.1f} s")
    finally:
        target.close()


def probes_of(path, want, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= want:
            return [json.loads(x) for x in lines]
        assert proc.poll() is None, f"the program ended ({proc.returncode}) before its probe {want}"
        time.sleep(0.05)
    raise AssertionError(f"the program answered {len(lines)} probes of {want} within {timeout}s")


def test_attach_leaves_the_programs_allocator_as_it_was(interp):
    """Snapshots of 10,000 tasks are megabytes of model and JSON. glibc maps
    a block that large itself and, when it is freed, raises the process's
    mmap threshold (and its trim threshold with it): an agent that mallocs
    its snapshots changes where the program's own large allocations come
    from, and leaves the free top of its thread's arena resident (about
    10 MB). The fixture probes a malloc of 4 MiB on its loop before the
    attach and one of 5 MiB after the detach (its first probe raised the
    threshold a little past 4 MiB): glibc must still map it, and the
    program's anonymous memory must be about what it was."""
    probes = out_path(interp, "malloc-probes")
    with Target(interp, "agent_malloc_probe.py", "--probes", interp.inside(probes), files=(probes,)) as target:
        before = probes_of(probes, 1, target.proc)[0]
        if not before["mapped"]:
            pytest.fail(f"{interp.name}: a malloc of 4 MiB is not mapped before the attach (the interpreter raised "
                        "glibc's threshold itself): the probe cannot judge the agent")
        s = aioscope_attach(target.pid, "--snapshot-every", "500ms", "--duration", "3s")
        assert s.rc == 0, s.summary()
        snapshots = s.of("snapshot")
        assert snapshots and all(len(x["tasks"]) >= target.truth["tasks"] for x in snapshots), s.summary()
        target.proc.send_signal(signal.SIGUSR1)
        after = probes_of(probes, 2, target.proc)[1]
        assert after["mapped"], (f"after {len(snapshots)} snapshots of {target.truth['tasks']} tasks, "
                                 "a malloc of 5 MiB is not mapped: the agent raised glibc's mmap threshold")
        grown = (after["rss_anon_kb"] - before["rss_anon_kb"]) / 1024
        assert grown < 4, f"the program's anonymous memory grew by {grown:.1f} MB over the attach"


def test_attach_to_a_child_forked_inside_a_callback_of_an_attached_loop(interp):
    """A child forked inside a callback while its parent was attached lives
    on under the agent's wrappers of that callback (their C frames stay on
    its stack). Attach to it must work: attach refuses a thread running the
    agent's own code, but a thread whose agent frames are only calls out to
    the program's Python code (agent/so/callout.h) is at a safe point.
    (Refused before: "no thread of the target reached a safe point".)"""
    truth_path = out_path(interp, "agent_fork_in_callback")
    ready_path, fork_path, child_path = (truth_path.with_name(truth_path.name + s)
                                         for s in (".ready", ".fork", ".child"))
    for p in (ready_path, fork_path, child_path):
        p.unlink(missing_ok=True)
    proc = subprocess.Popen(interp.argv("agent_fork_in_callback.py", "--truth", interp.inside(truth_path)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    child = None
    parent_live = None
    try:
        wait_file(ready_path, 60, proc, "readiness")
        parent_live = Live([AIOSCOPE, "attach", "--json", *OPTS, proc.pid])
        parent_live.wait_for(lambda e: e["type"] == "capabilities"
                             and e["capabilities"]["stall_detection"]["state"] == "active", 30, "hooks installed")
        fork_path.write_text("fork")
        child = wait_file(child_path, 30, proc, "the child")["pid"]
        s = aioscope_attach(child, *OPTS, "--snapshot-every", "100ms", "--duration", "2s", timeout=60)
    finally:
        parent = parent_live.stop() if parent_live else None
        if child:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()
        proc.wait(timeout=10)
        for p in (truth_path, ready_path, fork_path, child_path):
            p.unlink(missing_ok=True)
    assert parent.rc == 0, parent.summary()
    assert s.rc == 0, s.summary()
    assert s.one("hello")["pid"] == child, s.summary()
    snaps = [e for e in s.of("snapshot") if e["pid"] == child]
    assert snaps, s.summary()
    main = [t for t in snaps[-1]["threads"] if t["frames"]]
    names = [f["function"] for t in main for f in t["frames"]]
    assert "child_waits" in names and "fork_here" in names, names


def test_children_forked_under_an_attached_agent_all_end(interp):
    """A program forking short-lived children while attached: each child
    inherits the agent (dormant: the CLI takes only the attached process),
    whose os._exit watch runs as the child ends, and ends.
    (A child once hung there for ever, waiting for a lock the parent's
    session thread held at the fork, on a busy machine: the soak found it.
    The fork is a race this test runs often, beside two CPU hogs that keep
    the agent's thread off the CPU; tests/unit/test_fork_safe.cpp checks the
    locks' reset deterministically.)"""
    truth_path = out_path(interp, "agent_fork_storm")
    stderr_path = out_path(interp, "agent_fork_storm-stderr")
    hogs = [subprocess.Popen(["/usr/bin/python3", "-c", "while True: pass"]) for _ in range(2)]
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(interp.argv("agent_fork_storm.py", "--truth", interp.inside(truth_path),
                                            "--seconds", "2"),
                                stdout=subprocess.DEVNULL, stderr=err,
                                env=dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning"))
    ready_path = truth_path.with_name(truth_path.name + ".ready")
    try:
        wait_file(ready_path, 60, proc, "readiness")
        s = aioscope_attach(proc.pid, *OPTS, "--snapshot-every", "20ms", "--duration", "3s", timeout=60)
        assert s.rc == 0, s.summary()
        truth = wait_file(truth_path, 40, proc, "the fork storm's truth")
    finally:
        for p in hogs:
            p.kill()
            p.wait()
        proc.kill()
        proc.wait(timeout=10)
        truth_path.unlink(missing_ok=True)
        ready_path.unlink(missing_ok=True)
    stderr = stderr_path.read_text()
    stderr_path.unlink(missing_ok=True)
    assert "error" not in truth, truth["error"]
    assert truth["agent_seen"], "the agent's thread never appeared"
    stacks = "\n".join(f"child {pid}:\n{where}" for pid, where in truth.get("hung_stacks", {}).items())
    assert truth["hung"] == [], (f"{len(truth['hung'])} of {truth['forks']} children hung: {stderr[-2000:]}\n"
                                 f"where they were:\n{stacks}")
    assert truth["forks"] >= 20, truth
    # No child tried to join the session.
    refused = [e for e in s.events if e["type"] == "warning" and "refused a connection" in e.get("message", "")]
    assert not refused, refused[:3]
