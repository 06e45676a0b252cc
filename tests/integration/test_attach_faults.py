"""Fault injection: `aioscope attach` killed at every phase of an attach, by
every signal a user or the system sends it, on every interpreter. The target
must never crash nor hang (it finishes its own work, checks it and exits 0),
aioscope must exit with the documented status, and no staging folder may be
left behind (right away for the signals aioscope catches; for SIGKILL at the
next aioscope's start, which removes folders of dead aioscopes).

The target (fixtures/attach_wedged.py --state work: short bursts of checked
work every 10 ms) runs with tests/support/slow_agent.so preloaded: when the
agent starts its thread it writes a mark file and sleeps 300 ms, so "inside
the injected call" (the ptrace stub, or the PEP 768 loader on 3.14+) is a
moment the test can hit every time.

Phases: right after the start (checks, staging), once the staging folder
exists, inside the call (at the mark, plus 0-450 ms: also the agent
connecting), while streaming (after hello). Signals: SIGKILL, SIGINT,
SIGTERM, SIGHUP, SIGPIPE, and SIGSTOP followed 300 ms later by SIGKILL.

The suite runs 12 cases per interpreter (all 24 phase/signal pairs across
the zoo); AIOSCOPE_FAULT_RUNS=100 runs 100 per interpreter:
    AIOSCOPE_FAULT_RUNS=100 python3 -m pytest tests/integration/test_attach_faults.py
"""
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent_helpers import Live, Target, aioscope_attach, out_path, read_json, staging_leftovers
from harness import AIOSCOPE
from zoo import ZOO

SLOW_AGENT = Path(AIOSCOPE).parent / "tests" / "slow_agent.so"
PHASES = ["start", "staged", "inside", "streaming"]
SIGNALS = ["KILL", "INT", "TERM", "HUP", "PIPE", "STOP+KILL"]
CASES = [(p, s) for p in PHASES for s in SIGNALS]
RUNS = int(os.environ.get("AIOSCOPE_FAULT_RUNS", "12"))
SLOW_MS = 300

EXIT_INTERRUPTED = 130
EXIT_OUTPUT_FAILED = 14


class SlowTarget(Target):
    """attach_wedged.py --state work with slow_agent.so preloaded (inside a
    chroot, set by `env` there: the host's chroot command must not see it)."""

    def __init__(self, interp, preload_inside, mark_inside, release_inside, result_inside, files):
        self.interp = interp
        self.stderr_path = out_path(interp, "attach_faults-stderr")
        self.truth_path = out_path(interp, "attach_faults")
        self.extra_files = [self.stderr_path, *files]
        cmd = interp.argv("attach_wedged.py", "--truth", interp.inside(self.truth_path), "--state", "work",
                          "--release", release_inside, "--result", result_inside)
        slow = {"AIOSCOPE_TEST_SLOW_AGENT_MS": str(SLOW_MS), "AIOSCOPE_TEST_SLOW_MARK": mark_inside}
        env = dict(os.environ, **slow)
        if interp.root == "/":
            env["LD_PRELOAD"] = preload_inside
        else:
            cmd = cmd[:2] + ["/usr/bin/env", f"LD_PRELOAD={preload_inside}"] + cmd[2:]
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        self.pid = self.proc.pid
        try:
            self.truth = self._wait_truth(60)
        except BaseException:
            self.close()
            raise


def tracers(pid):
    """TracerPid of every thread of the process."""
    out = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if line.startswith("TracerPid:"):
                    out.add(int(line.split()[1]))
        except FileNotFoundError:
            pass
    return out


def wait_until(predicate, timeout, what, step=0.001):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"never saw {what} within {timeout} s")


def read_mark(path):
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def want_signal(sig):
    return signal.SIGKILL if sig == "STOP+KILL" else getattr(signal, f"SIG{sig}")


def send(cli, sig):
    if sig == "STOP+KILL":
        cli.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        cli.proc.send_signal(signal.SIGKILL)
    else:
        cli.proc.send_signal(getattr(signal, f"SIG{sig}"))


def one_case(target, tmp_dir, mark, phase, sig, rng):
    """One attach killed at `phase` by `sig`; returns a description of what went wrong, or None."""
    before = set(os.listdir(tmp_dir))
    # Left by an earlier SIGKILLed case and not yet removed (this aioscope
    # may be stopped before it gets to that): counted at the end instead.
    stale_before = staging_leftovers(tmp_dir)
    mark_before = read_mark(mark)
    cli = Live([AIOSCOPE, "attach", "--json", target.pid])
    waited = None
    try:
        if phase == "start":
            time.sleep(rng.uniform(0, 0.02))
        elif phase == "staged":
            wait_until(lambda: any(n.startswith("aioscope-stage-") for n in set(os.listdir(tmp_dir)) - before)
                       or cli.proc.poll() is not None, 20, "the staging folder")
        elif phase == "inside":
            wait_until(lambda: read_mark(mark) != mark_before or cli.proc.poll() is not None, 20,
                       "the agent starting (the mark)")
            time.sleep(rng.uniform(0, 0.45))
        elif phase == "streaming":
            cli.wait_for(lambda e: e["type"] == "hello", 20, "hello")
            time.sleep(rng.uniform(0, 0.2))
    except AssertionError as e:
        waited = str(e)
    try:
        send(cli, sig)
        try:
            rc = cli.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            return "aioscope did not end within 20 s of the signal"
    finally:
        stream = cli.stop(timeout=5)
    if waited:
        return f"{waited}; aioscope's events {stream.types()}, stderr {stream.stderr.strip()!r}"
    hello = bool(stream.of("hello"))
    if sig in ("KILL", "STOP+KILL"):
        want = -signal.SIGKILL
    elif sig == "PIPE":
        want = EXIT_OUTPUT_FAILED if hello else EXIT_INTERRUPTED
    else:
        want = 0 if hello else EXIT_INTERRUPTED
    problems = []
    if phase == "start" and rc == -want_signal(sig) and not hello:
        want = rc  # the signal came before aioscope could catch it: nothing was created yet
    if rc != want:
        problems.append(f"exit status {rc}, expected {want} (hello: {hello}); stderr {stream.stderr.strip()!r}")
    if "did not connect" in stream.stderr:
        problems.append(f"a false report: {stream.stderr.strip()!r}")
    if not target.alive():
        problems.append(f"the target died ({target.proc.returncode}): {target.stderr()}")
        return "; ".join(problems)
    # Released by the kernel (SIGKILL) or by aioscope itself.
    try:
        wait_until(lambda: not (tracers(target.pid) - {0}), 2, "the target untraced", step=0.01)
    except AssertionError as e:
        problems.append(str(e))
    left = staging_leftovers(tmp_dir) - stale_before
    if sig not in ("KILL", "STOP+KILL") and left:
        problems.append(f"left in the target's /tmp: {left}")
    return "; ".join(problems) or None


@pytest.fixture(scope="module")
def slow_agent():
    if not SLOW_AGENT.exists():
        pytest.skip(f"{SLOW_AGENT} not built (cli/build.sh builds it with the tests)")
    return SLOW_AGENT


def test_killing_attach_at_every_phase(interp, slow_agent):
    offset = [i.name for i in ZOO].index(interp.name) * RUNS
    cases = [CASES[(offset + n) % len(CASES)] for n in range(RUNS)]
    preload = interp.fixture_dir() / "out" / f"slow_agent-{os.getpid()}.so"
    preload.parent.mkdir(exist_ok=True)
    shutil.copyfile(slow_agent, preload)
    mark = out_path(interp, "attach_faults-mark")
    release = out_path(interp, "attach_faults-release")
    result = out_path(interp, "attach_faults-result")
    rng = random.Random(f"faults-{interp.name}")
    tmp_dir = f"{interp.root.rstrip('/')}/tmp" if interp.root != "/" else "/tmp"
    with SlowTarget(interp, interp.inside(preload), interp.inside(mark), interp.inside(release),
                    interp.inside(result), files=(mark, release, result, preload)) as target:
        failures = []
        for n, (phase, sig) in enumerate(cases):
            problem = one_case(target, tmp_dir, mark, phase, sig, rng)
            if problem:
                failures.append(f"#{n} {sig} at {phase}: {problem}")
            if not target.alive():
                break
        # One more attach to the end: it also removes what SIGKILLed ones left.
        s = aioscope_attach(target.pid, "--duration", "0.3s", timeout=60)
        if s.rc != 0 or not s.of("hello"):
            failures.append(f"the attach after the faults failed: {s.summary()}")
        leftovers = staging_leftovers(tmp_dir) | staging_leftovers("/tmp")
        if leftovers:
            failures.append(f"staging folders left: {leftovers}")
        release.write_text("go")
        rc = target.proc.wait(timeout=60)
        if rc != 0:
            failures.append(f"the target ended with {rc}: {target.stderr()}")
        else:
            done = read_json(result, "result")
            if not done["ok"]:
                failures.append(f"the target's own check failed: {done['errors']}")
        stderr = target.stderr()
        if stderr:
            failures.append(f"the target wrote to stderr: {stderr}")
        print(f"{len(cases)} faults on {interp.name}: {len(failures)} problems")
        assert not failures, "\n".join(failures)
