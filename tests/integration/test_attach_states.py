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
import time
from pathlib import Path

import pytest

from agent_helpers import Target, agent_mappings, aioscope_attach, out_path, read_json

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
