"""Helpers for the agent's integration tests (`aioscope run`, `aioscope attach`):
running them, parsing their event streams, starting targets with extra
environment, reading a target's heartbeat and its mappings."""
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from harness import AIOSCOPE, Fixture, hang_report, kill_tree
from zoo import Interpreter

EVENT_SCHEMA = "aioscope/event/1"
AGENT_SO = "aioscope-agent.so"

# The options every test passes explicitly (they are also the defaults).
THRESHOLD_MS = 100
INTERVAL_MS = 10

# Documented exit statuses of run/attach.
EXIT_DEADLOCK = 10
EXIT_STALL = 11
EXIT_TIMEOUT = 124
EXIT_PERMISSION = 4


class Stream:
    """What one `aioscope run`/`attach` printed: its events (JSON Lines: on
    standard error for `run`, whose standard output is the program's; on
    standard output for `attach`), the other lines of that stream (GitHub
    annotations, and for run the program's own stderr lines), aioscope's
    reason line for a status of its own (`reasons`), stdout, stderr, status.
    A line that starts like an event but is not one JSON object (two lines
    glued, a line cut short) fails at once."""

    def __init__(self, argv, rc, stdout, stderr, seconds, events_on=None):
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds
        self.events_on = events_on or events_stream_of(argv)
        self.events = []
        self.other_lines = []
        self.reasons = []
        self._take(stderr if self.events_on == "stderr" else stdout)

    def take_events_file(self, text):
        """The events of a run that wrote them to a file (`--output`)
        instead of those of its stream (which then holds none)."""
        self.events = []
        self._take(text)

    def _take(self, text):
        # JSON Lines end at "\n" only: str.splitlines() would also cut at
        # U+2028 and other separators a task name may hold unescaped.
        for line in text.split("\n"):
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    raise AssertionError(f"a corrupted event line (cut short, or glued to another): {line[:300]!r}")
                assert isinstance(event, dict), line[:300]
                self.events.append(event)
            elif line.startswith("aioscope: "):
                self.reasons.append(line)
            elif line.strip():
                self.other_lines.append(line)

    def of(self, type_, pid=None):
        return [e for e in self.events if e["type"] == type_ and (pid is None or e["pid"] == pid)]

    def one(self, type_, pid=None):
        hits = self.of(type_, pid)
        assert len(hits) == 1, f"{len(hits)} {type_} events{'' if pid is None else f' from pid {pid}'}:\n{self.summary()}"
        return hits[0]

    def exit(self):
        """run's exit event: exactly one, after every event of the agents (only
        the CLI's own warnings may follow it)."""
        e = self.one("exit")
        after = self.events[self.events.index(e) + 1:]
        assert all(x["type"] == "warning" for x in after), f"events after exit:\n{self.summary()}"
        return e

    def types(self, pid=None):
        return [e["type"] for e in self.events if pid is None or e["pid"] == pid]

    def pids(self, type_="hello"):
        return [e["pid"] for e in self.of(type_)]

    def capability_states(self, name, pid=None, until=None):
        """[(index, state, reason)] of capability `name` as the hello and the
        later `capabilities` events announced it, up to event index `until`."""
        out = []
        for i, e in enumerate(self.events[:until]):
            if e["type"] in ("hello", "capabilities") and (pid is None or e["pid"] == pid):
                c = e["capabilities"][name]
                out.append((i, c["state"], c["reason"]))
        return out

    def active_before(self, name, until=None, pid=None):
        """Whether `name` was announced active before event index `until`."""
        states = self.capability_states(name, pid, until)
        return bool(states) and states[-1][1] == "active"

    def summary(self, limit=60):
        """The stream in short, for assertion messages."""
        out = []
        for e in self.events[:limit]:
            extra = ""
            if e["type"] == "stall":
                top = e["stack"][0] if e["stack"] else {}
                extra = (f" #{e['stall_id']} elapsed {e['elapsed_ms']:.1f} ms at "
                         f"{top.get('qualname')} ({top.get('file')}:{top.get('line')}) "
                         f"task {(e['task'] or {}).get('name')}")
            elif e["type"] == "stall_end":
                extra = f" #{e['stall_id']} {e['duration_ms']:.1f} ms"
            elif "message" in e:
                extra = f" {e['message']}"
            if e.get("test"):
                extra += f" [test {e['test']} {e.get('test_phase')}]"
            elif e["type"] == "snapshot":
                extra = f" {len(e['tasks'])} tasks reason={e.get('reason')}"
            elif e["type"] == "exit":
                extra = f" {e['description']}"
            out.append(f"  pid {e['pid']} {e['type']}{extra}")
        if len(self.events) > limit:
            out.append(f"  ... {len(self.events) - limit} more")
        out.append(f"  rc={self.rc} stderr={self.stderr.strip()[:500]!r}")
        return "\n".join(out)

    def assert_well_formed(self):
        bad = [e for e in self.events if e.get("schema") != EVENT_SCHEMA or not isinstance(e.get("type"), str)
               or not isinstance(e.get("pid"), int) or not isinstance(e.get("ts"), (int, float))]
        assert not bad, f"events without schema/type/pid/ts: {bad[:3]}"


def events_stream_of(argv):
    """Where a command's events are: `run` writes them to standard error."""
    return "stderr" if "run" in [str(a) for a in argv[1:2]] else "stdout"


def run_stream(argv, timeout=120, env=None, **kw):
    t0 = time.monotonic()
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=env, **kw)
    return Stream(argv, r.returncode, r.stdout, r.stderr, time.monotonic() - t0)


def aioscope_run(program, *options, timeout=120, env=None, json_=True):
    """`aioscope run [options] -- program...` to completion."""
    argv = [AIOSCOPE, "run", *(["--json"] if json_ else []), *options, "--", *program]
    return run_stream(argv, timeout=timeout, env=env)


def aioscope_attach(pid, *options, timeout=120, env=None):
    argv = [AIOSCOPE, "attach", "--json", *options, pid]
    return run_stream(argv, timeout=timeout, env=env)


def run_argv(interp):
    """How to start `aioscope run` so that the program under `interp` can
    reach its agent: the host's binary for a host interpreter; inside a
    chroot, a copy of aioscope and its agent placed there (the chroot sees
    neither the host's files nor the host's socket), with the host libraries
    the chroot lacks beside it."""
    if interp.root == "/":
        return [str(AIOSCOPE)]
    bin_dir = interp.fixture_dir() / ".aioscope-bin"
    lib_dir = bin_dir / "lib"
    lib_dir.mkdir(parents=True, exist_ok=True)
    for name in ("aioscope", AGENT_SO):
        shutil.copy2(Path(AIOSCOPE).parent / name, bin_dir / name)
    ldd = subprocess.run(["ldd", str(AIOSCOPE)], capture_output=True, text=True, check=True).stdout
    for line in ldd.splitlines():
        parts = line.split("=>")
        if len(parts) != 2 or not parts[1].strip().startswith("/"):
            continue
        lib = Path(parts[1].split()[0])
        if not any((Path(interp.root) / d.lstrip("/") / lib.name).exists()
                   for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu")):
            shutil.copy2(lib, lib_dir / lib.name)
    return ["chroot", interp.root, "env", f"LD_LIBRARY_PATH={interp.inside(lib_dir)}",
            interp.inside(bin_dir / "aioscope")]


def other_agent_env(interp, agent_so):
    """The environment that makes `aioscope run` load another build of the
    agent (a benchmark's before and after), copied where the interpreter,
    and so `run` in a chroot, can see it."""
    so = interp.fixture_dir() / "out" / "compare-agent.so"
    so.parent.mkdir(exist_ok=True)
    so.write_bytes(Path(agent_so).read_bytes())
    return dict(os.environ, AIOSCOPE_AGENT_SO=interp.inside(so))


def inner_argv(interp, script, *args):
    """A fixture's command line as seen where run_argv(interp) runs it."""
    argv = interp.argv(script, *args)
    return argv[2:] if interp.root != "/" else argv


def bench_run(interp, script, *args, aioscope=None, env=None, prefix=(), timeout=300):
    """A benchmark's one process: `script args --truth F`, bare or (with the
    options in `aioscope`) under `aioscope run`, where the interpreter lives;
    its truth. Under `run`, the agent must have said stall detection was
    active: a cost measured with the hooks out would be no cost at all."""
    out = interp.fixture_dir() / "out"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as d:
        truth, events = Path(d) / "out.json", Path(d) / "events.jsonl"
        cmd = [*inner_argv(interp, script, *args), "--truth", interp.inside(truth)]
        if aioscope is not None:
            cmd = run_to_file_argv(interp, events, aioscope, cmd)
        elif interp.root != "/":
            cmd = ["chroot", interp.root, *cmd]
        subprocess.run([*prefix, *cmd], check=True, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=timeout)
        if aioscope is not None:
            said = Stream(cmd, 0, "", "", 0)
            said.take_events_file(events.read_text())
            if not said.active_before("stall_detection"):
                raise RuntimeError(f"the agent did not time the callbacks of {' '.join(map(str, cmd))}:\n"
                                   f"{said.summary()}")
        return json.loads(truth.read_text())


def run_to_file_argv(interp, events_path, options, program):
    """`aioscope run [options] -- program` where the interpreter lives
    (run_argv), its events written to `events_path`."""
    return [*run_argv(interp), "run", "--quiet", "--output", interp.inside(events_path), *options, "--", *program]


def run_in(interp, script, *script_args, options=(), timeout=120):
    """`aioscope run [options] -- <interp> <fixture> args` where the
    interpreter lives (run_argv), events to a file; the Stream of it."""
    events_path = out_path(interp, Path(script).stem + "-events")
    argv = run_to_file_argv(interp, events_path, options, inner_argv(interp, script, *script_args))
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            report = hang_report(proc.pid)
            events = events_path.read_text()[-3000:] if events_path.exists() else "(no events file)"
            kill_tree(proc)
            raise AssertionError(f"`aioscope run` did not finish in {timeout} s: {' '.join(map(str, argv))}\n"
                                 f"{report}\nlast events:\n{events}") from None
        s = Stream(argv, proc.returncode, out, err, time.monotonic() - t0)
        s.take_events_file(events_path.read_text() if events_path.exists() else "")
    finally:
        events_path.unlink(missing_ok=True)
    return s


def host_only(interp):
    """`run` is tested with the host's interpreters: the agent and the CLI's
    socket are paths of the host, which a chroot does not see."""
    if interp.root != "/":
        pytest.skip(f"CPython {interp.name} unavailable for `aioscope run`: it lives in the chroot {interp.root}, "
                    "where the host's agent library and event socket do not exist (attach covers it)")


def fixture_cmd(interp: Interpreter, script, *args):
    return interp.argv(script, *args)


def out_path(interp: Interpreter, stem):
    """A fresh file in the fixtures' out/ directory (as seen from here)."""
    d = interp.fixture_dir() / "out"
    d.mkdir(exist_ok=True)
    p = d / f"{stem}-{interp.name}-{os.getpid()}-{time.monotonic_ns()}.json"
    p.unlink(missing_ok=True)
    return p


def read_json(path, what="truth"):
    p = Path(path)
    assert p.exists(), f"the fixture wrote no {what} ({p})"
    return json.loads(p.read_text())


def wait_file(path, timeout, proc=None, what="file"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(path).exists():
            return json.loads(Path(path).read_text())
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}) before writing its {what}")
        time.sleep(0.05)
    raise AssertionError(f"no {what} at {path} within {timeout}s")


# ---------------------------------------------------------------------------
# Targets for attach

class Target(Fixture):
    """A fixture process for attach: like harness.Fixture, with extra
    environment, stderr kept in a file (a long run must not fill a pipe, and
    what it logged is checked), killed if it fails to publish its truth."""

    def __init__(self, interp, script, *args, env=None, truth_timeout=60, files=()):
        self.interp = interp
        self.stderr_path = out_path(interp, Path(script).stem + "-stderr")
        self.truth_path = out_path(interp, Path(script).stem)
        self.extra_files = [self.stderr_path, *files]
        cmd = interp.argv(script, "--truth", interp.inside(self.truth_path), *args)
        # glibc's fatal messages (heap corruption) go to /dev/tty unless this
        # is set: a target that aborts must say why in its stderr.
        full_env = dict(os.environ, LIBC_FATAL_STDERR_="1", **(env or {}))
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=full_env)
        self.pid = self.proc.pid
        try:
            self.truth = self._wait_truth(truth_timeout)
        except BaseException:
            self.close()
            raise

    def stderr(self):
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def file(self, stem):
        """A path for the fixture to write: (as the fixture names it, as we see it)."""
        p = out_path(self.interp, stem)
        self.extra_files.append(p)
        return self.interp.inside(p), p

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        for p in [self.truth_path, *self.extra_files]:
            p.unlink(missing_ok=True)


class BusyTarget(Target):
    """fixtures/agent_busy.py: a busy service with a heartbeat file; parks on SIGUSR1."""

    def __init__(self, interp, *args, env=None):
        self.interp = interp
        hb_inside, self.heartbeat_path = self._reserve(interp, "agent_busy-heartbeat")
        pt_inside, self.parked_truth_path = self._reserve(interp, "agent_busy-parked")
        super().__init__(interp, "agent_busy.py", "--heartbeat", hb_inside, "--parked-truth", pt_inside,
                         *args, env=env, files=(self.heartbeat_path, self.parked_truth_path))

    @staticmethod
    def _reserve(interp, stem):
        p = out_path(interp, stem)
        return interp.inside(p), p

    def heartbeat(self):
        for _ in range(50):  # replaced atomically; may be absent for an instant on the first write
            try:
                return json.loads(self.heartbeat_path.read_text())
            except FileNotFoundError:
                time.sleep(0.02)
        raise AssertionError("no heartbeat file")

    def wait_heartbeat(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        hb = self.heartbeat()
        while not predicate(hb):
            if time.monotonic() > deadline:
                raise AssertionError(f"heartbeat never showed {what}: {short_heartbeat(hb)}")
            assert self.alive(), f"the target died: {self.stderr()}"
            time.sleep(0.05)
            hb = self.heartbeat()
        return hb

    def park(self, timeout=30):
        """SIGUSR1, then the ground truth of its parked tasks."""
        os.kill(self.pid, signal.SIGUSR1)
        truth = wait_file(self.parked_truth_path, timeout, self.proc, "parked truth")
        if "error" in truth:
            raise AssertionError(f"fixture could not settle: {truth['error']}")
        Fixture._wait_gone(self, truth.get("observer_native_id"), time.monotonic() + timeout)
        return truth


def short_heartbeat(hb):
    return {k: v for k, v in hb.items() if k != "episodes"} | {"episodes": len(hb.get("episodes", []))}


# ---------------------------------------------------------------------------
# /proc

def agent_mappings(pid):
    """Distinct paths of the agent library mapped in the process (deleted or not)."""
    paths = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6:
            path = parts[5].removesuffix(" (deleted)")
            if path.endswith("/" + AGENT_SO):
                paths.add(path)
    return paths


STAGING_PREFIXES = ("aioscope-stage-", "aioscope-new-")


def staging_leftovers(tmp_dir):
    """aioscope's staging folders in `tmp_dir` that no running aioscope owns:
    each holds an flock on its folder while it lives, so a folder whose lock
    is free was left behind. Folders of aioscopes still running (other tests,
    other users of the machine) are not leftovers."""
    out = set()
    try:
        names = os.listdir(tmp_dir)
    except FileNotFoundError:
        return out
    for name in names:
        if not name.startswith(STAGING_PREFIXES):
            continue
        try:
            fd = os.open(os.path.join(tmp_dir, name), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its aioscope is running
        else:
            # A folder just created (before its owner locks it) is named
            # aioscope-new-*: give it a moment before calling it left over.
            if name.startswith("aioscope-new-") and time.time() - os.fstat(fd).st_ctime < 10:
                continue
            out.add(name)
        finally:
            os.close(fd)
    return out


def thread_ids(pid):
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


def wait_threads(pid, want, timeout=5.0):
    """Waits until the process has exactly `want` threads; returns what it has at the end."""
    deadline = time.monotonic() + timeout
    tids = thread_ids(pid)
    while len(tids) != want and time.monotonic() < deadline:
        time.sleep(0.05)
        tids = thread_ids(pid)
    return tids


def thread_names(pid):
    out = {}
    for tid in thread_ids(pid):
        try:
            out[tid] = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except FileNotFoundError:
            pass
    return out


def pid_gone(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat[stat.rindex(")") + 2] == "Z":  # a zombie: ended, not reaped by its parent yet
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------
# Stalls against a fixture's episodes

def match_stalls(stream, episodes, pid=None, slack_s=0.08):
    """Pairs each stall with the fixture's episode that started closest to it
    (within slack_s). Returns ([(stall, stall_end or None, episode)], unmatched
    stalls, unmatched episodes)."""
    stalls = stream.of("stall", pid)
    ends = {e["stall_id"]: e for e in stream.of("stall_end", pid)}
    pairs, lost, used = [], [], set()
    for s in stalls:
        best = min(((abs(s["started_at"] - ep["started_at"]), i) for i, ep in enumerate(episodes)
                    if i not in used), default=None)
        if best is None or best[0] > slack_s:
            lost.append(s)
            continue
        used.add(best[1])
        pairs.append((s, ends.get(s["stall_id"]), episodes[best[1]]))
    missed = [ep for i, ep in enumerate(episodes) if i not in used]
    return pairs, lost, missed


# How far asyncio's own start of a slow callback (the log record's time minus
# its duration, agent_common.SlowCallbacks) may be from the stall's: the log
# record is made a little after the callback returns, later if the machine
# preempts the loop thread just then. Slow callbacks are >= 80 ms long, so
# their starts are at least that far apart and the pairing is unambiguous.
SLOW_MATCH_S = 0.05
# The agent times the callback inside asyncio's own timing of it.
SLOW_DURATION_BELOW_MS = 10.0
SLOW_DURATION_ABOVE_MS = 1.0
# A callback this close to the threshold may fall either side of it.
THRESHOLD_MARGIN_MS = 2.0


def judge_stalls(stream, slow, pid=None, window=None):
    """Every stall (and its stall_end) against the callbacks the program's
    loop itself timed at 80 ms or more (`slow`, the fixture's truth). Returns
    the problems: a stall no such callback explains, or one under the
    threshold; a duration that disagrees with asyncio's; a callback over the
    threshold that no stall reported (only those inside `window`, Unix
    seconds, when given: an attach sees only its own time).

    A stall marked `at_least` (its callback began before the agent could time
    it: an attach landing in the middle of one) starts at a bound no earlier
    than the truth: it belongs to the callback running then, and its
    duration is at most asyncio's (never more); an exact stall must agree."""
    problems, used = [], set()
    ends = {e["stall_id"]: e for e in stream.of("stall_end", pid)}
    for st in stream.of("stall", pid):
        bound = st.get("at_least") is True

        def distance(c):
            if not bound:
                return abs(st["started_at"] - c["started_at"])
            # The callback running at the bound (it began at or before it).
            end_s = c["started_at"] + c["duration_ms"] / 1000
            return 0.0 if c["started_at"] - SLOW_MATCH_S <= st["started_at"] <= end_s else float("inf")

        best = min(((distance(c), i) for i, c in enumerate(slow) if i not in used), default=None)
        if best is None or best[0] > SLOW_MATCH_S:
            problems.append(f"{describe_stall(st)}: asyncio timed no callback of 80 ms or more "
                            f"{'running' if bound else 'starting'} then")
            continue
        used.add(best[1])
        c = slow[best[1]]
        if c["duration_ms"] < THRESHOLD_MS - THRESHOLD_MARGIN_MS:
            problems.append(f"{describe_stall(st)}: asyncio timed that callback at {c['duration_ms']:.1f} ms, "
                            f"under the {THRESHOLD_MS} ms threshold")
        end = ends.get(st["stall_id"])
        if end is None:
            continue
        low = 0.0 if bound else c["duration_ms"] - SLOW_DURATION_BELOW_MS
        if end.get("at_least") is not st.get("at_least"):
            problems.append(f"{describe_stall(st)}: its stall_end says at_least={end.get('at_least')}")
        if not low <= end["duration_ms"] <= c["duration_ms"] + SLOW_DURATION_ABOVE_MS:
            problems.append(f"{describe_stall(st)}: lasted {end['duration_ms']:.2f} ms"
                            f"{' (a lower bound)' if bound else ''}, asyncio timed "
                            f"{c['duration_ms']:.2f} ms ({c['handle']})")
    for i, c in enumerate(slow):
        if i in used or c["duration_ms"] < THRESHOLD_MS + THRESHOLD_MARGIN_MS:
            continue
        if window and not (window[0] <= c["started_at"] and c["started_at"] + c["duration_ms"] / 1000 <= window[1]):
            continue
        problems.append(f"no stall for {c['handle']}: asyncio timed it at {c['duration_ms']:.1f} ms, "
                        f"started at {c['started_at']:.3f}")
    return problems


def detection_problems(stream, pid=None, interval_ms=INTERVAL_MS, slack_ms=5.0):
    """A stall is reported once its callback has run past the threshold, while
    it still runs when it was captured; typically (the median) at the agent's
    first tick after that. Single reports can be later on a machine whose
    hypervisor or neighbours take the CPU for tens of milliseconds:
    benchmarks/stall_accuracy.py measures the distribution."""
    problems = []
    ends = {e["stall_id"]: e for e in stream.of("stall_end", pid)}
    elapsed = []
    for st in stream.of("stall", pid):
        if st["elapsed_ms"] < THRESHOLD_MS:
            problems.append(f"{describe_stall(st)}: reported before the threshold")
        end = ends.get(st["stall_id"])
        if st["captured"]:
            elapsed.append(st["elapsed_ms"])
            if end is not None and st["elapsed_ms"] > end["duration_ms"] + 0.5:
                problems.append(f"{describe_stall(st)}: captured after its callback ended "
                                f"({end['duration_ms']:.1f} ms)")
    if elapsed:
        elapsed.sort()
        median = elapsed[len(elapsed) // 2]
        if median > THRESHOLD_MS + interval_ms + slack_ms:
            problems.append(f"median detection at {median:.1f} ms, more than one interval past the threshold: "
                            f"{elapsed}")
    return problems


def describe_stall(s):
    top = s["stack"][0] if s["stack"] else {}
    return (f"stall #{s['stall_id']} pid {s['pid']} elapsed {s['elapsed_ms']:.1f} ms at "
            f"{top.get('qualname')} ({top.get('file')}:{top.get('line')}), task {(s['task'] or {}).get('name')}, "
            f"{len(s.get('native_stack') or [])} native frames, native_error {s.get('native_error')!r}, "
            f"stopped {s.get('native_stopped_ms')} ms {s.get('native_delay_ms')} ms after the report"
            f"{', at_least' if s.get('at_least') else ''}")


def frames(stack):
    return [(f["function"], f["qualname"], f["file"], f["line"]) for f in stack or []]


# ---------------------------------------------------------------------------
# A run or attach read while it streams

class Live:
    """`aioscope run`/`attach` in the background; its events are collected as
    they arrive. stop() sends SIGINT (run passes it on to the program,
    attach detaches) and returns the whole Stream."""

    def __init__(self, argv, env=None, events_on=None):
        self.argv = [str(a) for a in argv]
        self._t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.events_on = events_on or events_stream_of(self.argv)
        self._events_pipe = self.proc.stderr if self.events_on == "stderr" else self.proc.stdout
        self._other_pipe = self.proc.stdout if self.events_on == "stderr" else self.proc.stderr
        self._other = []
        self._other_reader = threading.Thread(target=lambda: self._other.append(self._other_pipe.read()),
                                              daemon=True)
        self._other_reader.start()
        self.events = []
        self._lines = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self._events_pipe:
            with self._cond:
                self._lines.append(line)
                if line.startswith("{"):
                    self.events.append(json.loads(line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate, timeout, what):
        """The first event satisfying predicate (waiting up to timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for e in self.events[seen:]:
                    if predicate(e):
                        return e
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    types = [e["type"] for e in self.events]
                    raise AssertionError(f"no {what} within {timeout}s (events so far: {types})\n"
                                         f"{self._why_not()}")
                self._cond.wait(min(left, 0.1))

    def _why_not(self):
        """What the command said, if it ended; where it waits, if not."""
        if self.proc.poll() is None:
            return hang_report(self.proc.pid)
        self._other_reader.join(timeout=2)
        said = "".join(self._other) + "".join(line for line in self._lines if not line.startswith("{"))
        return f"it ended with status {self.proc.returncode}, saying: {said[-2000:]!r}"

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        self._other_reader.join(timeout=5)
        other = "".join(self._other)
        events = "".join(self._lines)
        stdout, stderr = (other, events) if self.events_on == "stderr" else (events, other)
        return Stream(self.argv, self.proc.returncode, stdout, stderr, time.monotonic() - self._t0)


def attach_until_exit(interp, script, stem, *args, options=(), env=None, exit_timeout=90):
    """`aioscope attach --json [options]` to fixture `script` (--truth TRUTH,
    then `args`), started here, for the whole of its run: attached once the
    fixture has written TRUTH.ready (an attach that came sooner could find
    the interpreter not yet up; the fixture must be asked for that file),
    detached after it exited 0 by itself. Returns (the attach's Stream, the
    fixture's truth); removes both files."""
    truth_path = out_path(interp, stem)
    ready = Path(str(truth_path) + ".ready")
    proc = subprocess.Popen([str(a) for a in interp.argv(script, "--truth", interp.inside(truth_path), *args)],
                            env=env)
    live = None
    try:
        wait_file(ready, 30, proc, "ready file")
        live = Live([AIOSCOPE, "attach", "--json", *options, proc.pid])
        live.wait_for(lambda e: e["type"] == "hello", 30, "hello")
        assert proc.wait(exit_timeout) == 0
        s = live.stop()
        truth = read_json(truth_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if live is not None and live.proc.poll() is None:
            live.stop()
        truth_path.unlink(missing_ok=True)
        ready.unlink(missing_ok=True)
    return s, truth


# ---------------------------------------------------------------------------
# Tasks of a snapshot against a fixture's AsyncTruth (the shape aio.py expects)

class TaskView:
    def __init__(self, truth, tasks):
        self.truth = truth
        self.facts = truth.get("facts", {})
        self.want = {t["id"]: t for t in truth["tasks"]}
        self.got = {t["id"]: t for t in tasks}

    def name(self, tid):
        t = self.want.get(tid) or self.got.get(tid)
        return f"{t['name']}({tid})" if t else tid


def by_id(items, key):
    return sorted(items, key=lambda x: str(x[key]))


def diff_lists(got, want, key, label):
    """Readable differences between two lists of dicts keyed by `key`."""
    g = {str(x[key]): x for x in got}
    w = {str(x[key]): x for x in want}
    out = [f"{label} {k}: only in the first: {g[k]}" for k in g.keys() - w.keys()]
    out += [f"{label} {k}: only in the second: {w[k]}" for k in w.keys() - g.keys()]
    for k in g.keys() & w.keys():
        if g[k] != w[k]:
            fields = {f: (g[k].get(f), w[k].get(f)) for f in set(g[k]) | set(w[k]) if g[k].get(f) != w[k].get(f)}
            out.append(f"{label} {k} ({g[k].get('name')}): {fields}")
    return out


def snapshot_read_after(t):
    """A predicate for Live.wait_for: a snapshot whose read began after Unix
    time t (its ts is when it was sent; on a loaded machine a read begun
    before t may be sent after it, and shows the state before t)."""
    return lambda e: e["type"] == "snapshot" and e["ts"] - e.get("duration_ms", 0) / 1000 > t
