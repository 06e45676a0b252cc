"""The agent's events for the silent asyncio bugs (issue 5):
`unawaited_coroutine`, `cancellation_swallowed`, `task_exception_unretrieved`,
`task_destroyed_pending`, against the ground truth of fixtures/bugs_*.py.

Each fixture commits one bug (or, in the ok_* cases, handles cancellation
and tasks correctly) and publishes, computed inside the program, the events
that must be reported: lines from marker comments, task names and ids,
exception types, messages and tracebacks, suspended coroutine stacks.

For every case and interpreter:
- `aioscope run` (the 5 host interpreters): exactly the expected events of
  the four types, with their fields equal to the truth; the `exit` event's
  counts; `--fail-on` exits 12 when a bug occurred and with the program's
  own status when none did; the program's stdout and stderr are exactly
  those of the same program run bare (warnings, asyncio's logs, its own
  handlers);
- `aioscope attach` (all 7): the same events from the moment of attaching;
  after the detach every hook the program had is back (the same objects),
  its coroutine origin tracking depth is its own again, and its output is
  that of the bare run.

The fixtures wait until the hooks are in place before the bug (under `run`
with --wait-hooks: the agent installs them at the main thread's first safe
point after asyncio is imported, which a quick program can outrun; the test
checks they were in place before the case: installed_before_case).

Limits of 3.10 (no Task.cancelling()), documented in docs/guide.md ("Silent
asyncio bugs"), are strict xfails: known_failure().
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent_helpers import Live, host_only, out_path, wait_file
from harness import AIOSCOPE, hang_report
from zoo import ZOO

BUG_TYPES = ("unawaited_coroutine", "cancellation_swallowed", "task_exception_unretrieved", "task_destroyed_pending")
FAIL_ON = "unawaited,cancel-swallowed,unretrieved,destroyed-pending"
FAIL_ON_KIND = {"unawaited_coroutine": "unawaited", "cancellation_swallowed": "cancel-swallowed",
                "task_exception_unretrieved": "unretrieved", "task_destroyed_pending": "destroyed-pending"}
EXIT_BUG = 12
STATUS = 3  # the fixtures' own exit status: it must pass through when no bug occurred
TIMEOUT = 60


@dataclass(frozen=True)
class Case:
    fixture: str
    case: str
    track: bool = False  # --track-origins

    @property
    def id(self):
        return f"{self.case}{'+origins' if self.track else ''}"

    @property
    def options(self):
        return ["--track-origins"] if self.track else []


CASES = [
    Case("bugs_unawaited.py", "plain"),
    Case("bugs_unawaited.py", "plain", track=True),
    Case("bugs_unawaited.py", "module"),
    Case("bugs_unawaited.py", "list"),
    Case("bugs_unawaited.py", "list", track=True),
    Case("bugs_unawaited.py", "deep"),
    Case("bugs_unawaited.py", "deep", track=True),
    Case("bugs_unawaited.py", "own_origin"),
    Case("bugs_unawaited.py", "own_warnings"),
    Case("bugs_cancel.py", "base"),
    Case("bugs_cancel.py", "return"),
    Case("bugs_cancel.py", "kept"),
    Case("bugs_cancel.py", "suppress"),
    Case("bugs_cancel.py", "convert"),
    Case("bugs_cancel.py", "twice"),
    Case("bugs_cancel.py", "again"),
    Case("bugs_cancel.py", "handler_awaits"),
    Case("bugs_cancel.py", "ok_timeout"),
    Case("bugs_cancel.py", "ok_wait_for"),
    Case("bugs_cancel.py", "ok_taskgroup"),
    Case("bugs_cancel.py", "ok_cancel_await"),
    Case("bugs_cancel.py", "ok_cancel_wait"),
    Case("bugs_cancel.py", "ok_reraise"),
    Case("bugs_tasks.py", "unretrieved"),
    Case("bugs_tasks.py", "destroyed"),
    Case("bugs_tasks.py", "closed_loop"),
    Case("bugs_tasks.py", "own_handlers"),
    Case("bugs_tasks.py", "ok_plain"),
]

# 3.10 has no Task.cancelling(): a task woken by a cancelled future cannot
# tell its own cancellation from the child's it awaited (docs/guide.md,
# "Silent asyncio bugs", Limits).
LIMIT_310_CANCEL_AWAIT = (
    "limitation on 3.10 (no Task.cancelling()): a task that cancels a child and catches the child's "
    "CancelledError from `await child` is woken by a cancelled future exactly as if it had been cancelled "
    "itself (stall_hook/observers.cpp taskOfStep: wokenByCancel), so it is reported as a swallowed cancellation")


LIMIT_310_HANDLER_AWAITS = (
    "limitation on 3.10 (no Task.cancelling()): when the `except CancelledError` handler awaits, the step "
    "that ends it is an ordinary wake-up, not one that delivers a cancellation, so the swallow is never judged "
    "and not reported")


def known_failure(request, interp_version, case):
    if case.case == "ok_cancel_await" and interp_version == (3, 10):
        request.applymarker(pytest.mark.xfail(strict=True, reason=LIMIT_310_CANCEL_AWAIT))
    if case.case == "handler_awaits" and interp_version == (3, 10):
        request.applymarker(pytest.mark.xfail(strict=True, reason=LIMIT_310_HANDLER_AWAITS))


# --------------------------------------------------------------------------------------
# Running the fixtures: bare, under `run`, under `attach`. Each run is done once per
# interpreter and case and shared by the tests that judge it.

def normalized(text):
    """Output with object addresses (reprs in warnings and logs) made comparable."""
    return re.sub(r"0x[0-9a-fA-F]+", "0x...", text)


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    truth: dict
    events: list = field(default_factory=list)
    stream_rc: int = None
    stream_stderr: str = ""
    after: dict = None
    ready: dict = None
    stuck: str = ""  # attach: the target's threads when its agent did not confirm the detach


_cache = {}


def cached(key, make):
    if key not in _cache:
        _cache[key] = make()
    return _cache[key]


def fixture_args(interp, case, truth_path):
    return interp.argv(case.fixture, "--truth", interp.inside(truth_path), "--case", case.case,
                       "--exit-status", str(STATUS))


def bare(interp, case):
    def make():
        truth_path = out_path(interp, f"bare-{case.case}")
        try:
            r = subprocess.run(fixture_args(interp, case, truth_path), capture_output=True, text=True,
                               timeout=TIMEOUT)
            truth = json.loads(truth_path.read_text()) if truth_path.exists() else {}
        finally:
            truth_path.unlink(missing_ok=True)
        assert truth, f"the bare fixture wrote no truth (rc {r.returncode}): {r.stderr}"
        return Outcome(r.returncode, r.stdout, r.stderr, truth)
    return cached(("bare", interp.name, case.fixture, case.case), make)


def run_events(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def under_run(interp, case):
    def make():
        truth_path = out_path(interp, f"run-{case.case}")
        events_path = out_path(interp, f"run-{case.case}-events")
        argv = [AIOSCOPE, "run", "--quiet", "--output", events_path, "--fail-on", FAIL_ON, *case.options, "--",
                *fixture_args(interp, case, truth_path), "--wait-hooks", "10"]
        try:
            r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=TIMEOUT)
            truth = json.loads(truth_path.read_text()) if truth_path.exists() else {}
            events = run_events(events_path) if events_path.exists() else []
        finally:
            truth_path.unlink(missing_ok=True)
            events_path.unlink(missing_ok=True)
        assert truth, f"the fixture wrote no truth under run (rc {r.returncode}): {r.stderr}"
        return Outcome(r.returncode, r.stdout, r.stderr, truth, events)
    return cached(("run", interp.name, case), make)


def under_attach(interp, case):
    def make():
        ready_path = out_path(interp, f"attach-{case.case}-ready")
        result_path = out_path(interp, f"attach-{case.case}-result")
        after_path = out_path(interp, f"attach-{case.case}-after")
        stdout_path = out_path(interp, f"attach-{case.case}-stdout")
        stderr_path = out_path(interp, f"attach-{case.case}-stderr")
        files = [ready_path, result_path, after_path, stdout_path, stderr_path]
        argv = [*fixture_args(interp, case, ready_path), "--attach", interp.inside(result_path),
                interp.inside(after_path)]
        live = None
        try:
            with open(stdout_path, "w") as out, open(stderr_path, "w") as err:
                proc = subprocess.Popen(argv, stdout=out, stderr=err)
            try:
                ready = wait_file(ready_path, TIMEOUT, proc, "ready file")
                live = Live([AIOSCOPE, "attach", "--json", *case.options, proc.pid])
                try:
                    live.wait_for(lambda e: e["type"] == "hello", TIMEOUT, "hello")
                    result = wait_file(result_path, TIMEOUT, proc, "result")
                finally:
                    stream = live.stop()
                detached = bool(stream.events) and stream.events[-1]["type"] == "detached"
                # Where the agent is when it did not confirm (read before
                # the fixture gives up waiting for the hooks to go).
                stuck = "" if detached else hang_report(proc.pid)
                after = wait_file(after_path, TIMEOUT, proc, "state after the detach")
                rc = proc.wait(TIMEOUT)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            return Outcome(rc, stdout_path.read_text(), stderr_path.read_text(), result, stream.events,
                           stream.rc, stream.stderr, after, ready, stuck)
        finally:
            for p in files:
                p.unlink(missing_ok=True)
    return cached(("attach", interp.name, case), make)


# --------------------------------------------------------------------------------------
# Judging the events against the truth

def describe(e):
    t = e["type"]
    if t == "unawaited_coroutine":
        d = e.get("discarded_at") or {}
        return f"unawaited {e['coroutine']['qualname']} dropped at {d.get('function')}:{d.get('line')}"
    if t == "cancellation_swallowed":
        c = e.get("caught_at") or {}
        return (f"swallowed in task {(e.get('task') or {}).get('name')} caught at {c.get('function')}:"
                f"{c.get('line')} ({c.get('file')}), {e.get('outcome')}")
    return f"{t} task {(e.get('task') or {}).get('name')}"


def check_unawaited(e, w, bad):
    def eq(what, got, want):
        if got != want:
            bad.append(f"{describe(e)}: {what} is {got!r}, the fixture says {want!r}")

    eq("coroutine qualname", e["coroutine"]["qualname"], w["qualname"])
    eq("defined_at", e["defined_at"], w["defined_at"])
    eq("discarded_at", e["discarded_at"], w["discarded_at"])
    eq("discarding_stack[0]", (e["discarding_stack"] or [None])[0], w["discarded_at"])
    eq("task", e["task"], w["task"])
    if w["tracked"]:
        want = w["creating"]
        eq("created_at", e["created_at"], want[0])
        eq(f"creating_stack[:{len(want)}]", (e["creating_stack"] or [])[:len(want)], want)
        if w["creating_len"] is not None:
            eq("len(creating_stack)", len(e["creating_stack"] or []), w["creating_len"])
        eq("note", e.get("note"), None)
    else:
        eq("created_at", e["created_at"], None)
        eq("creating_stack", e["creating_stack"], None)
        if "--track-origins" not in (e.get("note") or ""):
            bad.append(f"{describe(e)}: no note saying where it was created is known with --track-origins")


def check_swallowed(e, w, bad):
    for k in ("task", "caught_at", "outcome", "cancel_requests", "cancel_message", "task_stack"):
        if e.get(k) != w[k]:
            bad.append(f"{describe(e)}: {k} is {e.get(k)!r}, the fixture says {w[k]!r}")


def check_fields(e, w, keys, bad):
    for k in keys:
        if e.get(k) != w[k]:
            bad.append(f"{describe(e)}: {k} is {e.get(k)!r}, the fixture says {w[k]!r}")


def matches(e, w):
    if e["type"] != w["type"]:
        return False
    if e["type"] == "unawaited_coroutine":
        return (e["coroutine"]["qualname"], e["discarded_at"]) == (w["qualname"], w["discarded_at"])
    return (e.get("task") or {}).get("id") == w["task"]["id"]


def assert_events(events, truth, where):
    got = [e for e in events if e["type"] in BUG_TYPES]
    want = truth["expected"]
    summary = "\n".join(["events:", *(f"  {describe(e)}" for e in got), "expected:",
                         *(f"  {w['type']} {w.get('qualname') or (w.get('task') or {}).get('name')}" for w in want)])
    assert Counter(e["type"] for e in got) == Counter(w["type"] for w in want), \
        f"{where}: not exactly the expected events\n{summary}"
    bad, left = [], list(got)
    for w in want:
        hit = next((e for e in left if matches(e, w)), None)
        if hit is None:
            bad.append(f"no event for {w}")
            continue
        left.remove(hit)
        if w["type"] == "unawaited_coroutine":
            check_unawaited(hit, w, bad)
        elif w["type"] == "cancellation_swallowed":
            check_swallowed(hit, w, bad)
        elif w["type"] == "task_exception_unretrieved":
            check_fields(hit, w, ("task", "exception"), bad)
        else:
            check_fields(hit, w, ("task", "stack"), bad)
    assert not bad, f"{where}:\n" + "\n".join(bad) + "\n" + summary


def version_of(truth):
    return tuple(int(x) for x in truth["version"].split(".")[:2])


def assert_premises(truth):
    """What the case relies on held. `truth` is the fixture's (version: the interpreter's)."""
    assert "error" not in truth, truth["error"]
    facts = truth["facts"]
    premises = facts.get("premises", {})
    assert all(premises.values()), f"the case did not set up what it relies on: {premises}"
    if "ended" in facts:  # ok_reraise: each victim did end cancelled
        assert set(facts["ended"].values()) == {"cancelled"}, facts
    if "first_freed" in facts:
        assert facts["first_freed"], "the first victim was not freed: the second cannot take its place"
        # The second victim at the first one's address (the observers must not
        # take it for the first): CPython 3.10-3.13 give the freed block to
        # the next task; 3.14+ do not, even after a thousand tries, so there
        # the case only checks the two events.
        if version_of(truth) < (3, 14):
            assert facts["same_address"], "the second victim is not where the first was: the case tests nothing"


def assert_same_output(got, bare_run, what, reason=False):
    """The program's output is its own. `reason`: aioscope ended with a status
    of its own (12), and says why in one line of its own after the program's
    stderr (docs/guide.md#exit-codes); nothing else of aioscope's is there."""
    stderr = got.stderr
    if reason:
        head, _, last = stderr.rstrip("\n").rpartition("\n")
        assert last.startswith("aioscope: --fail-on"), f"no reason line for exit {got.rc} {what}:\n{stderr}"
        stderr = head + "\n" if head else ""
    assert normalized(got.stdout) == normalized(bare_run.stdout), \
        f"the program's stdout differs {what}:\n--- bare\n{bare_run.stdout}\n--- {what}\n{got.stdout}"
    assert normalized(stderr) == normalized(bare_run.stderr), \
        f"the program's stderr differs {what}:\n--- bare\n{bare_run.stderr}\n--- {what}\n{stderr}"


# --------------------------------------------------------------------------------------
# aioscope run

@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request):
    return request.param


def test_run_reports_exactly_the_bug(interp, case, request):
    host_only(interp)
    r = under_run(interp, case)
    truth = r.truth
    known_failure(request, version_of(truth), case)
    assert_premises(truth)
    assert truth["installed_before_case"], f"the hooks never appeared within 10 s (waited {truth['waited_for_hooks']})"
    hello = [e for e in r.events if e["type"] == "hello"]
    assert len(hello) == 1 and hello[0]["pid"] == truth["pid"] and hello[0]["mode"] == "run", r.events[:3]
    assert_events(r.events, truth, f"run {case.id} on {interp.name}")
    # CPython's origin tracking: on only with --track-origins (or the program's own).
    if case.track:
        assert truth["origin_depth_during"] > 0, "--track-origins did not turn coroutine origin tracking on"
    else:
        assert truth["origin_depth_during"] == 0, "origin tracking turned on behind the program's back"
    last = r.events[-1]
    assert last["type"] == "exit" and last["status"] == STATUS, r.events[-3:]
    counts = Counter(e["type"] for e in r.events if e["type"] in BUG_TYPES)
    assert last["bugs"] == {t: counts.get(t, 0) for t in BUG_TYPES}, last
    want_rc = EXIT_BUG if truth["expected"] else STATUS
    assert r.rc == want_rc, f"--fail-on {FAIL_ON}: exit {r.rc}, expected {want_rc}\n{r.stderr}"
    assert not [e for e in r.events if e["type"] in ("warning", "error")], r.events


def test_run_leaves_the_programs_output_alone(interp, case):
    host_only(interp)
    r, b = under_run(interp, case), bare(interp, case)
    assert b.rc == STATUS, b.stderr
    assert r.rc in (STATUS, EXIT_BUG), r.stderr
    assert_same_output(r, b, f"under `aioscope run {' '.join(case.options)}`", reason=r.rc == EXIT_BUG)


# --------------------------------------------------------------------------------------
# aioscope attach

def test_attach_reports_exactly_the_bug(interp, case, request):
    a = under_attach(interp, case)
    truth = a.truth
    known_failure(request, version_of(a.ready), case)
    assert_premises(truth)
    assert a.stream_rc == 0, f"attach exited {a.stream_rc}: {a.stream_stderr}"
    hello = [e for e in a.events if e["type"] == "hello"]
    assert len(hello) == 1 and hello[0]["pid"] == truth["pid"] and hello[0]["mode"] == "attach", a.events[:3]
    assert a.events[-1]["type"] == "detached", f"{a.events[-3:]}\n{a.stream_stderr}\n{a.stuck}"
    assert_events(a.events, truth, f"attach {case.id} on {interp.name}")
    if case.track:
        assert truth["origin_depth_during"] > 0, "--track-origins did not turn coroutine origin tracking on"
    else:
        assert truth["origin_depth_during"] == truth["origin_depth_before"] == 0
    assert not [e for e in a.events if e["type"] in ("warning", "error")], a.events


def test_attach_then_detach_leaves_the_program_as_it_was(interp, case):
    a, b = under_attach(interp, case), bare(interp, case)
    after = a.after
    assert after["hooks_gone"], f"aioscope's hooks are still in place after the detach: {after}\n{a.stuck}"
    assert all(after["identical"].values()), f"not the program's own objects after the detach: {after['identical']}"
    assert after["origin_depth"] == a.truth["program_origin_depth"], \
        f"coroutine origin tracking depth {after['origin_depth']} after the detach, the program's own is " \
        f"{a.truth['program_origin_depth']}"
    assert after["tracer"] == "None", f"a trace function was left behind: {after['tracer']}"
    assert a.rc == STATUS, a.stderr
    assert_same_output(a, b, f"with `aioscope attach {' '.join(case.options)}`")
