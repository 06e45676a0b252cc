"""`aioscope attach` to a process in every state a user finds a hung program
in (fixtures/attach_wedged.py): an event loop wedged in
threading.Lock.acquire (a futex wait), in time.sleep, in a blocking
socket.recv, a service idle in epoll, a loop busy running bytecode; each
with a helper thread blocked in its own system call. The agent must say
hello, the target must run on untouched, and, once released, finish its
own work and check it (the lock acquired, the sleep as long as asked, the
exact bytes received, the server still answering) and exit 0.

How fast hello comes is measured by tests/bench/attach_latency.py, not here.
"""
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from agent_helpers import (EXIT_PERMISSION, Live, Target, agent_mappings, aioscope_attach, out_path, read_json,
                           staging_leftovers)
from harness import AIOSCOPE
from zoo import ZOO, usable

EXIT_NO_PROCESS = 3
EXIT_EXITED = 7
EXIT_OUTPUT_FAILED = 14

STATES = ["lock", "sleep", "recv", "idle", "spin"]


def wait_state(pid, want, timeout=10.0):
    """Until the main thread has shown `want` (S: blocked, R: running) for a
    while, so the attach finds it in that state."""
    deadline = time.monotonic() + timeout
    stable = 0
    while time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
        stable = stable + 1 if stat[stat.rindex(")") + 2] == want else 0
        if stable >= 5:
            return
        time.sleep(0.02)
    raise AssertionError(f"the target's main thread never settled in state {want}")


def reserve(interp, stem):
    """A fresh path for the fixture: (as it names it, as we see it)."""
    p = out_path(interp, stem)
    return interp.inside(p), p


@pytest.mark.parametrize("state", STATES)
def test_attach_in_every_state(interp, state):
    release_inside, release = reserve(interp, "attach_wedged-release")
    result_inside, result = reserve(interp, "attach_wedged-result")
    with Target(interp, "attach_wedged.py", "--state", state, "--release", release_inside,
                "--result", result_inside, "--seconds", "3", files=(release, result)) as target:
        wait_state(target.pid, "R" if state == "spin" else "S")
        s = aioscope_attach(target.pid, "--duration", "0.3s", timeout=60)
        assert s.rc == 0, s.summary()
        hello = s.one("hello")
        assert hello["pid"] == target.pid and s.events[0] is hello, s.summary()
        assert s.events[-1]["type"] == "detached", s.summary()
        assert len(agent_mappings(target.pid)) == 1
        assert target.alive(), f"the target died: {target.stderr()}"
        release.write_text("go")
        assert target.proc.wait(timeout=30) == 0, target.stderr()
        done = read_json(result, "result")
        assert done["ok"], done["errors"]
        assert target.stderr() == ""


def host_interp(preferred="3.12"):
    hosts = sorted((i for i in ZOO if i.root == "/"), key=lambda i: i.name != preferred)
    for it in hosts:
        if not it.unavailable():
            return usable(it)
    pytest.skip("no host CPython available: " + "; ".join(f"{i.name}: {i.unavailable()}" for i in hosts))


def test_target_exiting_during_attach_leaves_nothing(interp):
    """The target ends at a different moment of each attach (before the
    staging, during the injection, while streaming): aioscope says so or
    streams until the end, never a false "did not connect", and leaves no
    staging folder."""
    tmp_dir = "/tmp" if interp.root == "/" else f"{interp.root}/tmp"
    outcomes = []
    for delay in (0.0, 0.05, 0.1, 0.2, 0.35):
        release_inside, release = reserve(interp, "attach_wedged-release")
        result_inside, result = reserve(interp, "attach_wedged-result")
        with Target(interp, "attach_wedged.py", "--state", "sleep", "--seconds", "0.4", "--release",
                    release_inside, "--result", result_inside, files=(release, result)) as target:
            time.sleep(delay)
            s = aioscope_attach(target.pid, timeout=60)
            assert target.proc.wait(timeout=30) == 0, target.stderr()
            outcomes.append(s.rc)
            assert s.rc in (0, EXIT_NO_PROCESS, EXIT_EXITED), s.summary()
            assert s.rc != 0 or s.events[-1]["type"] == "exit", s.summary()
            assert "did not connect" not in s.stderr, s.stderr
            assert not staging_leftovers(tmp_dir), f"left after an attach that ended with {s.rc}"
    print(f"{interp.name}: exit statuses {outcomes}")


def test_a_stall_in_the_targets_last_moments_comes_before_its_exit(interp):
    """The target's last step blocks 120 ms, then the program ends: the CLI
    may still be naming the stall's native frames when the process is gone.
    The stall, its end and the agent's goodbye all come before the exit,
    which counts the stall (CI once saw the exit first, the stall after it)."""
    release_inside, release = reserve(interp, "attach_wedged-release")
    result_inside, result = reserve(interp, "attach_wedged-result")
    with Target(interp, "attach_wedged.py", "--state", "work", "--last-wedge", "0.12", "--release", release_inside,
                "--result", result_inside, files=(release, result)) as target:
        live = Live([AIOSCOPE, "attach", "--json", target.pid])
        try:
            live.wait_for(lambda e: e["type"] == "hello", 30, "hello")
            time.sleep(0.3)  # the fixture wants ten rounds of work first
            release.write_text("go")
            assert target.proc.wait(timeout=30) == 0, target.stderr()
            live.proc.wait(timeout=30)
        finally:
            s = live.stop()
        assert read_json(result, "result")["ok"], read_json(result, "result")
    assert s.rc == 0, s.summary()
    types = [e["type"] for e in s.events]
    assert types[-1] == "exit" and types.count("exit") == 1, s.summary()
    assert "goodbye" in types and "stall" in types, s.summary()
    last = max(i for i, t in enumerate(types) if t == "stall")
    assert s.events[last]["stack"][0]["qualname"] == "work", s.summary()
    ends = [i for i, e in enumerate(s.events) if e["type"] == "stall_end"
            and e["stall_id"] == s.events[last]["stall_id"]]
    assert ends and ends[0] < types.index("goodbye"), s.summary()
    assert s.events[-1]["stalls"] == types.count("stall"), s.summary()


def test_attach_into_a_closed_pipe():
    """`aioscope attach PID | head -1`: once head has gone, the next write
    fails; aioscope stops, detaches, removes its folder and exits 14."""
    interp = host_interp()
    release_inside, release = reserve(interp, "attach_wedged-release")
    result_inside, result = reserve(interp, "attach_wedged-result")
    with Target(interp, "attach_wedged.py", "--state", "idle", "--release", release_inside,
                "--result", result_inside, files=(release, result)) as target:
        cli = subprocess.Popen([str(AIOSCOPE), "attach", "--json", "--duration", "0.5s", str(target.pid)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = cli.stdout.readline()
        cli.stdout.close()  # like head -1
        rc = cli.wait(timeout=30)
        stderr = cli.stderr.read()
        assert '"type": "hello"' in first.replace('":"', '": "') or '"hello"' in first, first
        assert rc == EXIT_OUTPUT_FAILED, (rc, stderr)
        assert stderr.startswith("aioscope: ") and stderr.count("\n") == 1, stderr
        assert not staging_leftovers("/tmp")
        assert target.alive()
        release.write_text("go")
        assert target.proc.wait(timeout=30) == 0, target.stderr()
        assert read_json(result, "result")["ok"]


def test_attach_to_a_traced_process_names_the_tracer():
    """A process already under strace: ptrace refuses a second tracer, even
    to root. aioscope says who holds it (exit 4), not "run as root"."""
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    interp = host_interp()
    release_inside, release = reserve(interp, "attach_wedged-release")
    result_inside, result = reserve(interp, "attach_wedged-result")
    with Target(interp, "attach_wedged.py", "--state", "idle", "--release", release_inside,
                "--result", result_inside, files=(release, result)) as target:
        strace = subprocess.Popen(["strace", "-f", "-qq", "-o", "/dev/null", "-p", str(target.pid)],
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while f"TracerPid:\t{strace.pid}" not in Path(f"/proc/{target.pid}/status").read_text():
                assert time.monotonic() < deadline, "strace did not attach"
                time.sleep(0.02)
            s = aioscope_attach(target.pid, "--duration", "0.3s", timeout=60)
            assert s.rc == EXIT_PERMISSION, s.summary()
            assert f"already traced by process {strace.pid} (strace)" in s.stderr, s.stderr
            assert s.stderr.count("\n") == 1 and "run aioscope as" not in s.stderr, s.stderr
            assert not staging_leftovers("/tmp")
        finally:
            strace.terminate()
            strace.wait(10)
        assert target.alive()
        release.write_text("go")
        assert target.proc.wait(timeout=30) == 0, target.stderr()
