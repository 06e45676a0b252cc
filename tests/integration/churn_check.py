"""Judging a snapshot of fixtures/soak_churn.py against what it published
about itself (used by tests/integration/test_soak.py and tests/bench/soak.py).

The process changes all the time, so no two reads see the same tasks; what
must hold in every answer aioscope gives, live or paused, is:

- the core tasks and threads are there, exactly as the interpreter reported
  them (stack with lines, what they await, who awaits them, names), unless
  aioscope says that task or thread could not be read (its `error`, with a
  warning);
- every other task and thread is something this program can have: each stack,
  innermost first, only steps from a function of the fixture to one it calls
  or awaits (CALLS), and from the library into the fixture only where a task
  step or a thread starts (ENTRIES); a task named `churn-<kind>-<n>` starts
  in that kind's function; default names are `Task-<n>` with n >= 1;
- no finding (the program cannot deadlock), no task or thread twice, and
  never an empty answer: there are always tasks, and the main thread always
  has frames.

check() returns a list of problems, each one a wrong answer. Warnings and
tasks or threads marked with an `error` are counted, not judged wrong: that is
aioscope saying it could not read something.
"""
import json
import os
import re
import statistics
import subprocess
import time

from harness import AIOSCOPE, Fixture

NAME_RE = re.compile(r"(?:churn-(\w+)-(\d+)|Task-(\d+))\Z")
# Library functions that step a task's coroutine or start a thread's target,
# or await a coroutine handed to them (wait_for on 3.12+).
STEPPERS = {"_run", "run", "_bootstrap_inner", "__step", "__step_run_and_handle_result", "__wakeup",
            "run_until_complete", "run_forever", "_run_once", "wait_for"}

# Library functions that run under any frame as a side effect: weakref
# callbacks when an object dies (WeakSet._remove), finalizers, fork hooks.
SIDE_EFFECTS = {"_remove", "__del__", "_asyncgen_finalizer_hook", "_asyncgen_firstiter_hook",
                # os.fork() runs the hooks registered with os.register_at_fork
                "_releaseLock", "_acquireLock", "_afterFork", "_after_fork", "_at_fork_reinit",
                "_after_at_fork_child_reinit_locks"}


def _frames(stack):
    return [(f["function"], f["file"], f["line"]) for f in stack]


class Judge:
    def __init__(self, truth):
        self.truth = truth
        self.file = truth["fixture_file"]
        self.calls = {k: set(v) for k, v in truth["calls"].items()}
        self.task_entries = set(truth["entries"]["tasks"])
        self.thread_entries = set(truth["entries"]["threads"])
        self.kinds = truth["kinds"]
        self.core = {t["id"]: t for t in truth["tasks"]}
        self.core_threads = {t["thread_id"]: t for t in truth["threads"]}

    # --- stacks ---------------------------------------------------------------
    def _mine(self, frame):
        return frame["file"] == self.file

    def stack_problem(self, stack, entries):
        """Why this stack (innermost first) cannot occur in the fixture, or None."""
        for inner, outer in zip(stack, stack[1:]):
            if not self._mine(inner) and inner["function"] in SIDE_EFFECTS:
                continue
            if self._mine(outer):
                if inner["function"] not in self.calls.get(outer["function"], ()):
                    return f"{outer['function']} never calls or awaits {inner['function']}"
            elif self._mine(inner):
                if outer["function"] not in STEPPERS or inner["function"] not in entries:
                    return f"library function {outer['function']} never calls {inner['function']}"
        return None

    def task_stack_problem(self, task):
        stack = task["stack"]
        if not stack:
            return None
        p = self.stack_problem(stack, self.task_entries)
        if p:
            return p
        outer = stack[-1]
        if task["state"] == "pending" and self._mine(outer) and outer["function"] not in self.task_entries:
            return f"a pending task whose coroutine is {outer['function']}, which no task starts in"
        return None

    # --- names ----------------------------------------------------------------
    def name_problem(self, task):
        name = task["name"]
        if task["id"] in self.core:
            return None  # compared exactly
        if task["id"] == self.truth["driver_task"]:
            return None if name == "soak-driver" else f"the driver task named {name!r}"
        m = NAME_RE.match(name)
        if not m:
            return f"name {name!r} is none the program gives"
        kind, _, number = m.groups()
        if kind is not None:
            if kind not in self.kinds:
                return f"name {name!r}: no such kind"
            entry = self.kinds[kind]
            mine = [f for f in task["stack"] if self._mine(f)]
            if mine and task["state"] == "pending" and mine[-1]["function"] != entry:
                return f"task {name!r} starts in {mine[-1]['function']}, not {entry}"
        elif int(number) < 1:
            return f"name {name!r}: tasks are numbered from 1"
        return None

    # --- the whole answer -------------------------------------------------------
    def check(self, doc):
        """Wrong answers in one snapshot (a dump document or a snapshot event)."""
        bad = []
        tasks = doc.get("tasks") or []
        threads = doc.get("threads") or []
        if doc.get("findings"):
            bad.append("findings: " + "; ".join(f["message"] for f in doc["findings"])[:300])
        ids = [t["id"] for t in tasks]
        if len(ids) != len(set(ids)):
            bad.append("a task listed twice")
        tids = [(t["interpreter_id"], t["thread_id"]) for t in threads]
        if len(tids) != len(set(tids)):
            bad.append("a thread listed twice")
        if not tasks:
            bad.append("no tasks at all")
        main = [t for t in threads if t["thread_id"] == self.truth["main_thread_id"]]
        if not main:
            bad.append("the main thread is missing")
        elif not main[0]["frames"] and not main[0]["error"]:
            bad.append("the main thread has no frames and no error")
        got = {t["id"]: t for t in tasks}
        for tid, want in self.core.items():
            t = got.get(tid)
            if t is None:
                bad.append(f"core task {want['name']} missing")
                continue
            if t.get("error"):
                continue  # said it could not read it
            if t["name"] != want["name"]:
                bad.append(f"core task {want['name']} named {t['name']!r}")
            if _frames(t["stack"]) != _frames(want["stack"]):
                bad.append(f"core task {want['name']} stack " +
                           " < ".join(f["function"] for f in t["stack"]))
            a = t["awaiting"]
            w = want["awaiting"]
            if w and (a is None or a["kind"] != w["kind"] or
                      any(a.get(k) != w[k] for k in ("object", "task") if k in w) or
                      ("children" in w and sorted(a.get("children") or []) != w["children"])):
                bad.append(f"core task {want['name']} awaiting {a}, expected {w}")
            if sorted(t["awaited_by"]) != sorted(want["awaited_by"]):
                bad.append(f"core task {want['name']} awaited by {t['awaited_by']}, expected {want['awaited_by']}")
            if t["state"] != "pending":
                bad.append(f"core task {want['name']} is {t['state']}")
        for t in tasks:
            if t["id"] in self.core or t.get("error"):
                continue
            for p in (self.name_problem(t), self.task_stack_problem(t)):
                if p:
                    bad.append(f"task {t['name']!r}: {p}: " + " < ".join(f["function"] for f in t["stack"]))
            if t["state"] == "pending" and t["awaiting"] and t["awaiting"]["kind"] == "gather" \
                    and not t["awaiting"]["children"]:
                bad.append(f"task {t['name']!r} awaits a gather of nothing")
        by_thread = {}
        for t in threads:
            by_thread[t["thread_id"]] = t
            if t.get("error"):
                continue
            p = self.stack_problem(t["frames"], self.thread_entries | self.task_entries)
            if p:
                bad.append(f"thread {t['name']!r}: {p}: " + " < ".join(f["function"] for f in t["frames"]))
        # Names are judged unless aioscope said it could not read them.
        names_read = not any(w.startswith("thread names unavailable") for w in doc.get("warnings") or [])
        for tid, want in self.core_threads.items():
            t = by_thread.get(tid)
            if t is None:
                bad.append(f"core thread {want['name']} missing")
            elif names_read and t["name"] != want["name"] or not names_read and t["name"] is not None:
                bad.append(f"core thread {want['name']} named {t['name']!r}")
            elif not t.get("error") and _frames(t["frames"]) != _frames(want["frames"]):
                bad.append(f"core thread {want['name']} shown as {t['name']!r}: " +
                           " < ".join(f["function"] for f in t["frames"]))
        running = {}
        for t in tasks:
            if t["state"] == "running" and not t.get("error"):
                running.setdefault(t["thread_id"], []).append(t["name"])
        for th, names in running.items():
            if len(names) > 1:
                bad.append(f"{len(names)} tasks running at once on thread {th}: {names}")
        return bad

    @staticmethod
    def torn(doc):
        """How many tasks and threads the snapshot says it could not read."""
        return sum(1 for t in doc.get("tasks") or [] if t.get("error")) + \
            sum(1 for t in doc.get("threads") or [] if t.get("error"))


# --- the soak itself (tests/bench/soak.py, test_soak.py) ---------------------------------

ATTACH_SECONDS = 1.0
SNAPSHOT_EVERY_MS = 50


class Tally:
    def __init__(self, mode):
        self.mode = mode
        self.n = 0
        self.wrong = 0
        self.false = 0
        self.crash = 0
        self.torn = 0
        self.warned = 0
        self.tasks = []
        self.read_ms = []
        self.attempts = []
        self.examples = {"wrong": [], "false": [], "crash": []}

    def note(self, kind, text, keep=None, doc=None):
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples[kind]) < 5:
            self.examples[kind].append(text[:600])
        if keep is not None and doc is not None:
            n = getattr(self, kind)
            if n <= 20:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{self.mode}-{kind}-{n}.json").write_text(json.dumps(doc))

    def judge(self, judge, doc, rc=0, keep=None):
        self.n += 1
        self.tasks.append(len(doc.get("tasks") or []))
        if doc.get("duration_ms") is not None:
            self.read_ms.append(doc["duration_ms"])
        self.attempts.append(doc.get("attempts", 1))
        self.torn += Judge.torn(doc)
        if doc.get("warnings"):
            self.warned += 1
        if doc.get("findings") or rc == 10:
            self.note("false", "; ".join(f["message"] for f in doc.get("findings") or []) or "exit 10", keep, doc)
        problems = [p for p in judge.check(doc) if not p.startswith("findings:")]
        if problems:
            self.note("wrong", " | ".join(problems[:4]), keep, doc)

    def row(self, interp):
        med = lambda xs: f"{statistics.median(xs):.0f}" if xs else "-"  # noqa: E731
        medf = lambda xs: f"{statistics.median(xs):.1f}" if xs else "-"  # noqa: E731
        return (f"{interp:<12} {self.mode:<7} {self.n:>6} {self.wrong:>6} {self.false:>6} {self.crash:>6} "
                f"{self.torn:>6} {self.warned:>7} {med(self.tasks):>7} {medf(self.read_ms):>8} "
                f"{max(self.attempts) if self.attempts else '-':>4}")


def dump(pid, *extra, timeout=60):
    try:
        r = subprocess.run([str(AIOSCOPE), "dump", "--json", *extra, str(pid)], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    if r.returncode not in (0, 10):
        return None, f"exit {r.returncode}: {r.stderr.strip()[:300]}"
    try:
        return (json.loads(r.stdout), r.returncode), None
    except ValueError as e:
        return None, f"unparsable output ({e}): {r.stdout[:200]!r}"


def attach(pid, timeout=60):
    argv = [str(AIOSCOPE), "attach", str(pid), "--json", "--duration", f"{ATTACH_SECONDS}s",
            "--snapshot-every", f"{SNAPSHOT_EVERY_MS}ms"]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    if r.returncode != 0:
        return None, f"exit {r.returncode}: {r.stderr.strip()[:300]}"
    events = []
    for line in r.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            return None, f"unparsable event line {line[:200]!r}"
    return [e for e in events if e.get("type") == "snapshot"], None


def soak(interp, dumps, paused, attaches, rate=10000, keep=None, log=print, linger=None):
    """Runs the soak on one (usable) interpreter; returns (tallies, stats).
    linger: seconds the churn's sleeping tasks sleep (soak_churn.py --linger)."""
    stats_path = interp.fixture_dir() / "out" / f"soak-stats-{interp.name}-{os.getpid()}.json"
    stats_path.unlink(missing_ok=True)
    live, pause, agent = Tally("live"), Tally("paused"), Tally("attach")
    more = ["--linger", str(linger)] if linger is not None else []
    with Fixture(interp, "soak_churn.py", "--rate", str(rate), "--stats", interp.inside(stats_path), *more) as fx:
        judge = Judge(fx.truth)
        time.sleep(1.0)  # let the churn reach its rate
        every_paused = max(1, dumps // paused) if paused else 0
        every_attach = max(1, dumps // attaches) if attaches else 0
        done_paused = done_attach = 0
        for i in range(dumps):
            if not fx.alive():
                live.note("crash", f"the target died: {fx.stderr()[-500:]}")
                break
            got, err = dump(fx.pid)
            if err:
                live.n += 1
                live.note("crash", err)
            else:
                live.judge(judge, got[0], got[1], keep)
            if every_paused and i % every_paused == 0 and done_paused < paused:
                done_paused += 1
                got, err = dump(fx.pid, "--pause")
                if err:
                    pause.n += 1
                    pause.note("crash", err)
                else:
                    pause.judge(judge, got[0], got[1], keep)
            if every_attach and i % every_attach == 0 and done_attach < attaches:
                done_attach += 1
                snaps, err = attach(fx.pid)
                if err:
                    agent.n += 1
                    agent.note("crash", err)
                else:
                    for s in snaps:
                        agent.judge(judge, s, 0, keep)
                    if not snaps:
                        agent.n += 1
                        agent.note("crash", "attach streamed no snapshot")
            if log and (i + 1) % 100 == 0:
                log(f"  {interp.name}: {i + 1}/{dumps} live dumps, {live.wrong} wrong, {live.false} false, "
                    f"{live.crash} crash; paused {pause.wrong}/{pause.false}/{pause.crash}; "
                    f"attach {agent.wrong}/{agent.false}/{agent.crash}")
        alive = fx.alive()
        if not alive:
            for t in (live, pause, agent):
                t.note("crash", "the target died: " + fx.stderr()[-500:])
                break
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    stats_path.unlink(missing_ok=True)
    if stats.get("hung_children"):
        # Nothing but the agent runs code in the target's children.
        agent.note("crash", f"{stats['hung_children']} of the target's forked children hung until killed")
    return [live, pause, agent], stats


