"""`run` in CI (docs/guide.md#ci-mode-run): what it checks by itself, and
that every status of its own comes with one line saying why.

- `--fail-on deadlock` without --snapshot-every: run asks the agents for
  snapshots itself, shows only those that found a deadlock, and fails with 10;
  on a program without one it shows none and passes the program's status.
- Every status of aioscope's own (9, 10, 11, 12, 13, 124, 130) comes with one
  line `aioscope: ...` on stderr, even with -q; the program's own status
  passes through with no line of aioscope's.
- `--fail-on X` where X was not active in a process that reported: 13.
- GitHub annotations for each event kind with a place in the code: at the
  program's own frames (not the standard library's), each against the
  event's own frames (judged against the fixtures' ground truth elsewhere).
- The --timeout snapshot of a hang with no asyncio shows its threads on a
  terminal; the timeout warning is about the program's pid.
"""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent_helpers import EXIT_DEADLOCK, EXIT_STALL, EXIT_TIMEOUT, INTERVAL_MS, THRESHOLD_MS, Live, aioscope_run, \
    out_path, read_json, run_argv
from harness import AIOSCOPE, hang_report, kill_tree
from test_agent_run import host_interp, run_on_pty, strip_ansi

OPTS = ["--stall-threshold", f"{THRESHOLD_MS}ms", "--interval", f"{INTERVAL_MS}ms"]
EXIT_NOT_OBSERVED, EXIT_BUG, EXIT_NOT_ACTIVE, EXIT_INTERRUPTED = 9, 12, 13, 130
# A program that does nothing for a minute (unless interrupted).
SLEEPS_A_MINUTE = "import asyncio; asyncio.run(asyncio.sleep(60))"
# The same minute in 50 ms naps. asyncio.run's SIGINT handler sets no wakeup
# fd: a SIGINT that lands after the loop's last bytecode and before it
# enters epoll_wait is handled only when epoll_wait returns (a minute later
# in one sleep, without any agent: CPython's race, not the one tested).
NAPS_A_MINUTE = ("import asyncio\n"
                 "async def main():\n"
                 "    for _ in range(1200):\n"
                 "        await asyncio.sleep(0.05)\n"
                 "asyncio.run(main())\n")
# CPython itself drops a KeyboardInterrupt that its handler raises inside
# importlib's module-lock weakref callback, with this on stderr.
DROPPED_BY_IMPORTLIB = re.compile(r"Exception ignored in: <function _get_module_lock\.<locals>\.cb[^\n]*\n"
                                  r"(?:[^\n]*\n)*?KeyboardInterrupt")
ANNOTATION = re.compile(r"::error file=([^,]*),line=(\d+),title=([^:]*)::(.*)")


def reason_only(s, code, *words):
    """Status `code` and, on stderr, exactly one line of aioscope's saying why."""
    assert s.rc == code, s.summary()
    lines = [l for l in s.stderr.splitlines() if l.startswith("aioscope: ")]
    assert len(lines) == 1, f"expected one reason line: {s.stderr[-2000:]!r}"
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def deadlock_run(variant, *options, status=0, seconds="2.5", env=None):
    interp = host_interp()
    truth_path = out_path(interp, "agent_deadlock")
    s = aioscope_run(interp.argv("agent_deadlock.py", "--truth", truth_path, "--variant", variant, "--seconds",
                                 seconds, "--exit-status", str(status)), *OPTS, *options, env=env)
    truth = read_json(truth_path)
    truth_path.unlink()
    return s, truth


def test_fail_on_deadlock_checks_by_itself():
    s, truth = deadlock_run("deadlock", "--fail-on", "deadlock")
    ids = {t["name"]: t["id"] for t in truth["tasks"]}
    snaps = s.of("snapshot")
    assert snaps and all(e["reason"] == "deadlock-check" for e in snaps), s.summary()
    found = [f for e in snaps for f in e["findings"] if f["kind"] == "lock-deadlock"]
    assert found and all(set(f["tasks"]) == {ids["lock-ab"], ids["lock-ba"]} for f in found), found
    assert len(snaps) == 1, "the same deadlock is shown once, not at every check"
    assert s.exit()["deadlocks"] == 1 and s.exit()["status"] == 0
    reason_only(s, EXIT_DEADLOCK, "--fail-on deadlock")


def test_fail_on_deadlock_shows_nothing_without_one():
    s, _ = deadlock_run("clean", "--fail-on", "deadlock", status=3)
    assert not s.of("snapshot"), "the CLI's own checks are shown only when they find something"
    assert s.exit()["deadlocks"] == 0
    assert s.rc == 3 and not [l for l in s.stderr.splitlines() if l.startswith("aioscope: ")], s.summary()


def test_reasons_with_quiet(tmp_path):
    interp = host_interp()
    truth_path = out_path(interp, "agent_stalls")
    events = tmp_path / "events.jsonl"
    r = subprocess.run([str(AIOSCOPE), "run", "-q", "-o", str(events), *OPTS, "--fail-on", "stall", "--",
                        *interp.argv("agent_stalls.py", "--truth", truth_path, "--episodes", "1", "--bursts", "0")],
                       capture_output=True, text=True, timeout=120)
    truth_path.unlink(missing_ok=True)
    stalls = [e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "stall"]
    assert r.returncode == EXIT_STALL and stalls, r.stderr
    assert r.stderr == f"aioscope: --fail-on stall: the event loop stalled {len(stalls)} " \
                       f"time{'s' if len(stalls) > 1 else ''}\n", r.stderr
    # Nothing observed (9), timed out (124): one line each, even with -q.
    r = subprocess.run([str(AIOSCOPE), "run", "-q", "--fail-on", "stall", "--", "sh", "-c", "exit 0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == EXIT_NOT_OBSERVED and r.stderr.startswith("aioscope: --fail-on: nothing was checked") \
        and r.stderr.count("\n") == 1, r.stderr
    r = subprocess.run([str(AIOSCOPE), "run", "-q", "--timeout", "1s", "--", "sleep", "30"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == EXIT_TIMEOUT and r.stderr == \
        "aioscope: the program ran longer than --timeout 1s: it was dumped and stopped\n", r.stderr
    # The program's own status: its own business, no line of ours.
    r = subprocess.run([str(AIOSCOPE), "run", "-q", "--", "sh", "-c", "echo mine >&2; exit 5"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 5 and r.stderr == "mine\n", r.stderr
    r = subprocess.run([str(AIOSCOPE), "run", "-q", "--", "sh", "-c", "kill -KILL $$"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 128 + signal.SIGKILL and r.stderr == \
        "aioscope: the program was killed by signal 9 (Killed)\n", r.stderr


def test_interrupted_run_is_130():
    interp = host_interp()
    live = Live([AIOSCOPE, "run", "--json", "--", interp.python, "-c", SLEEPS_A_MINUTE])
    live.wait_for(lambda e: e["type"] == "hello", 30, "hello")
    s = live.stop()
    line = reason_only(s, EXIT_INTERRUPTED, "interrupted by SIGINT")
    assert s.exit()["pid"] != live.proc.pid and "the program ended" in line, s.summary()


def test_ctrl_c_in_the_programs_first_moments_is_never_lost(interp):
    """Ctrl-C that lands while the agent does its own Python work on the
    main thread (installing: importing asyncio, running its observers'
    code) is the program's: the KeyboardInterrupt the program's handler
    raised there must reach the program. It was dropped with the agent's
    own errors, and the program slept on (about half the runs whose SIGINT
    came within 0.15 s of the agent's hello, on every interpreter).
    CPython loses some on its own, without any agent (about 1 in 100 under
    load): one raised in importlib's module-lock callback is dropped with
    "Exception ignored" (a round that says so is not the agent's), and one
    that lands just before the loop enters epoll_wait waits for it to
    return (the program naps 50 ms at a time, so that costs 50 ms)."""
    rounds = 16
    cpythons = []  # rounds whose interrupt CPython dropped in importlib (it said so)
    for i in range(rounds):
        delay = 0.15 * i / rounds  # spread over the agent's first moments
        live = Live([*run_argv(interp), "run", "--json", "--", interp.python, "-c", NAPS_A_MINUTE],
                    events_on="stderr")
        try:
            live.wait_for(lambda e: e["type"] == "hello", 30, "hello")
            time.sleep(delay)
            live.proc.send_signal(signal.SIGINT)
            try:
                live.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                said = "".join(live._lines)
                if DROPPED_BY_IMPORTLIB.search(said):
                    cpythons.append(i)
                    continue
                raise AssertionError(f"round {i}: SIGINT {delay * 1000:.0f} ms after the hello, and the run "
                                     f"did not end in 20 s:\n{hang_report(live.proc.pid)}\n{said[-2000:]}") from None
        finally:
            if live.proc.poll() is None:
                kill_tree(live.proc)
        try:
            reason_only(live.stop(), EXIT_INTERRUPTED, "interrupted by SIGINT")
        except AssertionError as e:
            raise AssertionError(f"round {i} (SIGINT {delay * 1000:.0f} ms after the hello): {e}") from None
    # A few such rounds are CPython's (as often without the agent); most
    # rounds must have tested the agent.
    assert len(cpythons) <= 2, f"rounds {cpythons}: KeyboardInterrupt dropped in importlib's callback"


def test_the_agents_threads_leave_the_programs_signals_to_it(interp):
    """A signal sent to the process goes to a thread that does not block it,
    and CPython handles it only on the main thread: one that landed on an
    agent thread waited until the main thread took the GIL again (asleep in
    epoll_wait: up to a minute, the rest of the hangs above). Every thread
    of the agent blocks them all."""
    live = Live([*run_argv(interp), "run", "--json", "--", interp.python, "-c", SLEEPS_A_MINUTE],
                events_on="stderr")
    try:
        live.wait_for(lambda e: e["type"] == "hello", 30, "hello")
        pid = live.events[0]["pid"]
        time.sleep(0.5)  # installed by now: every thread the agent starts has started
        threads = {}
        for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
            fields = dict(line.split(":\t", 1) for line in (task / "status").read_text().splitlines() if ":\t" in line)
            threads[int(task.name)] = int(fields["SigBlk"], 16)
    finally:
        live.stop()
    agents = {tid: mask for tid, mask in threads.items() if tid != pid}  # the program has only its main thread
    assert agents, f"no agent thread in {threads}"
    wanted = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM, signal.SIGCHLD, signal.SIGUSR1,
              signal.SIGPIPE, signal.SIGWINCH]
    for tid, mask in agents.items():
        open_ = [s.name for s in wanted if not mask >> (s - 1) & 1]
        assert not open_, f"agent thread {tid} of pid {pid} does not block {open_} (SigBlk {mask:016x})"
    assert not threads[pid] >> (signal.SIGINT - 1) & 1, "the program's main thread must keep SIGINT"


def test_ctrl_c_ends_a_run_whose_reader_stopped_reading():
    """Events on a pipe nobody reads fill it and block run's write: Ctrl-C
    must still reach the program and end run (it blocked in the write,
    retried after the signal, and never forwarded it)."""
    interp = host_interp()
    # The program's own stderr goes elsewhere: on the shared, full pipe its
    # KeyboardInterrupt traceback would block the program itself.
    p = subprocess.Popen([str(AIOSCOPE), "run", "--json", "--snapshot-every", "20ms", "--", "/bin/sh", "-c",
                          'exec "$@" 2>/dev/null', "sh", interp.python, "-c",
                          "import asyncio; asyncio.run(asyncio.sleep(120))"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(5)  # snapshots fill the 64 KiB pipe within a second
        assert p.poll() is None, "run ended by itself"
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=30)
        rest = p.stderr.read().decode(errors="replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc in (EXIT_INTERRUPTED, 14), (rc, rest[-500:])
    assert "interrupted by SIGINT" in rest or "nobody was reading" in rest, rest[-500:]


def test_fail_on_what_was_not_active_is_13(tmp_path):
    """A Python program whose asyncio cannot be imported (a module of its own
    shadows it): the agent's stall hook and silent-bug observers never become
    active, so --fail-on stall or unawaited could not be checked. Snapshots
    were possible: --fail-on deadlock could."""
    interp = host_interp()
    shadow = tmp_path / "asyncio"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('no asyncio in this program')\n")
    # Long enough for the hello, which this agent sends after trying for 2 s.
    prog = ["env", f"PYTHONPATH={tmp_path}", interp.python, "-c", "import time; time.sleep(3)"]
    s = aioscope_run(prog, "--fail-on", "stall")
    assert s.one("hello")["stall_detection"] != "active", s.summary()
    reason_only(s, EXIT_NOT_ACTIVE, "--fail-on stall could not be checked", f"pid {s.one('hello')['pid']}")
    s = aioscope_run(prog, "--fail-on", "unawaited")
    reason_only(s, EXIT_NOT_ACTIVE, "--fail-on unawaited could not be checked")
    s = aioscope_run(prog, "--fail-on", "deadlock")
    assert s.rc == 0, s.summary()


# --------------------------------------------------------------------------------------
# GitHub annotations

def annotations(s):
    """(file, line, title, message) of each annotation (on stderr with run,
    among the program's own stderr lines)."""
    out = []
    for line in s.other_lines:
        if line.startswith("::"):
            m = ANNOTATION.fullmatch(line)
            assert m, f"a malformed annotation: {line!r}"
            out.append((m.group(1), int(m.group(2)), m.group(3), m.group(4)))
    return out


def own_frames(frames):
    return [(f["file"], f["line"]) for f in frames or [] if "/lib/python3." not in f["file"]]


GITHUB = dict(os.environ, GITHUB_ACTIONS="true")


@pytest.mark.parametrize("fixture, case, kind, title", [
    ("bugs_unawaited.py", "plain", "unawaited_coroutine", "coroutine never awaited"),
    ("bugs_cancel.py", "base", "cancellation_swallowed", "CancelledError swallowed"),
    ("bugs_tasks.py", "unretrieved", "task_exception_unretrieved", "task exception never retrieved"),
    ("bugs_tasks.py", "closed_loop", "task_destroyed_pending", "pending task destroyed"),
])
def test_annotations_for_silent_bugs(fixture, case, kind, title):
    interp = host_interp()
    truth_path = out_path(interp, f"annotate-{case}")
    s = aioscope_run(interp.argv(fixture, "--truth", truth_path, "--case", case, "--wait-hooks", "10"),
                     "--track-origins", env=GITHUB)
    truth_path.unlink(missing_ok=True)
    events = s.of(kind)
    assert events, s.summary()
    notes = [n for n in annotations(s) if n[2] == title]
    assert len(notes) == len(events), (notes, s.summary())
    for e, (file, line, _, message) in zip(events, notes):
        if kind == "unawaited_coroutine":
            frames = [e["created_at"], *(e["discarding_stack"] or [])]
            assert e["coroutine"]["qualname"] in message
        elif kind == "cancellation_swallowed":
            frames = [e["caught_at"]]
        elif kind == "task_exception_unretrieved":
            frames = e["exception"]["traceback"]
            assert e["exception"]["type"] in message
        else:
            frames = e["stack"]
        assert (file, line) == own_frames(frames)[0], (file, line, frames)


def test_annotations_for_deadlocks():
    s, truth = deadlock_run("deadlock", "--fail-on", "deadlock", "--snapshot-every", "250ms", env=GITHUB)
    notes = [n for n in annotations(s) if n[2] == "asyncio deadlock (lock-deadlock)"]
    assert len(notes) == 1, "one annotation per deadlock, however many snapshots show it"
    file, line, _, message = notes[0]
    snap = next(e for e in s.of("snapshot") if e["findings"])
    finding = next(f for f in snap["findings"] if f["kind"] == "lock-deadlock")
    task = next(t for t in snap["tasks"] if t["id"] == finding["tasks"][0])
    assert (file, line) == own_frames(task["stack"])[0] and file.endswith("agent_deadlock.py"), (file, line)
    assert finding["message"] in message


# --------------------------------------------------------------------------------------
# The watchdog's dump

def test_timeout_of_a_hang_without_asyncio_on_a_terminal():
    interp = host_interp()
    prog = "import time\ndef wedged():\n    time.sleep(60)\nwedged()\n"
    rc, out = run_on_pty([AIOSCOPE, "run", "--timeout", "2s", "--", interp.python, "-c", prog])
    text = strip_ansi(out).replace("\r", "")
    assert rc == EXIT_TIMEOUT, text
    assert "0 tasks · 1 threads (timeout)" in text, text
    assert "Thread " in text and "wedged (<string>:3)" in text and "<module> (<string>:4)" in text, text


def test_timeout_warning_is_about_the_program():
    interp = host_interp()
    s = aioscope_run([interp.python, "-c", "import time; time.sleep(60)"], "--timeout", "1s")
    warning = next(w for w in s.of("warning") if w["message"].startswith("timeout after 1s"))
    assert warning["pid"] == s.exit()["pid"] == s.one("hello")["pid"], s.summary()
    snap = next(e for e in s.of("snapshot") if e.get("reason") == "timeout")
    assert snap["pid"] == warning["pid"] and snap["threads"], s.summary()
