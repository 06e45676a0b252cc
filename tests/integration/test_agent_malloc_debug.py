"""The agent's work inside the program, under CPython's debug memory
allocator (PYTHONMALLOC=debug).

Its hooks guard every PyMem/PyObject block with pad bytes checked at free,
fill freed blocks and check them when reused, and abort the program on an
allocator call without the GIL: an extra decref (a use after free), a write
past a block, an API call from one of the agent's threads without the GIL
end in "Debug memory block at address ..." or "Fatal Python error". Once, a
program's own string began with NUL under `aioscope run`
(test_agent_version_buffer.py has the cause that was found); these runs are
the cheap, strong detector for the rest of that family.

Each scenario exercises one part of the agent inside the program, under
`aioscope run` or `aioscope attach` (installer thread, GIL gate, uninstall):
the warning trampoline, origin tracking through a pending call, the
Context.run hook with cancellation tracing and _handling(), the
exception-handler trampoline at shutdown, stall sampling, a fork. The
program must end with its own status and its own ground truth, and print
nothing of the hooks. A canary (a write one byte past a block) proves the
hooks are on in each interpreter: without it the test could not fail.
"""
import os
import re
import signal
import subprocess

import pytest

from agent_helpers import Live, host_only, out_path, read_json, wait_file
from harness import AIOSCOPE
from trio_libs import library_env

HOOKS = re.compile(r"Debug memory block|Fatal Python error|bad ID|bad leading pad|bad trailing pad|"
                   r"without holding the GIL|freed memory")
DEBUG = {"PYTHONMALLOC": "debug"}
STATUS = 3  # the bugs fixtures' own exit status (--exit-status)
OPTS = ["--stall-threshold", "100ms", "--interval", "10ms"]

# (name, aioscope run options, fixture and its arguments, the program's own
# exit status, the libraries it needs)
RUN = [
    ("unawaited: own warnings", [], ["bugs_unawaited.py", "--case", "own_warnings", "--exit-status", str(STATUS),
                                     "--wait-hooks", "10"], STATUS, ()),
    ("unawaited: origins", ["--track-origins"], ["bugs_unawaited.py", "--case", "deep", "--exit-status",
                                                 str(STATUS), "--wait-hooks", "10"], STATUS, ()),
    ("cancellation swallowed", [], ["bugs_cancel.py", "--case", "kept", "--exit-status", str(STATUS),
                                    "--wait-hooks", "10"], STATUS, ()),
    ("task destroyed pending", [], ["bugs_tasks.py", "--case", "destroyed", "--exit-status", str(STATUS),
                                    "--wait-hooks", "10"], STATUS, ()),
    ("stalls", OPTS, ["agent_stalls.py", "--episodes", "2"], 0, ()),
    ("fork", OPTS, ["agent_fork.py"], 0, ()),
    # uvloop's context GOT wrappers and its Loop's exception handler observed.
    ("uvloop", OPTS, ["bugs_tasks.py", "--case", "destroyed", "--loop", "uvloop", "--exit-status", str(STATUS),
                      "--wait-hooks", "10"], STATUS, ("uvloop",)),
    # trio's instrument (C step hooks), installed from the import audit event.
    ("trio", OPTS, ["trio_stalls.py", "--episodes", "2"], 0, ("trio",)),
]

# Writes one byte past the end of a PyObject_Malloc block (a bytes object's
# terminating NUL is inside the block, the byte after it is the first pad
# byte), then frees the block: the debug hooks must catch it.
CANARY = ("import ctypes, sys\n"
          "b = bytes(range(40))  # made at run time: a constant would outlive `del b`\n"
          "ctypes.memset(id(b) + sys.getsizeof(b), 0x41, 1)\n"
          "del b\n")


def hooks_said(text):
    return [line for line in text.splitlines() if HOOKS.search(line)]


@pytest.fixture
def debug_interp(interp):
    host_only(interp)
    r = subprocess.run([interp.python, "-c", CANARY], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, **DEBUG))
    if not hooks_said(r.stderr):
        pytest.fail(f"the debug allocator's hooks did not catch the canary on {interp.name} (exit {r.returncode}): "
                    f"{r.stderr[-2000:]}")
    return interp


@pytest.mark.parametrize("name,options,program,status,needs", RUN, ids=[r[0] for r in RUN])
def test_run_under_the_debug_allocator(debug_interp, name, options, program, status, needs):
    interp = debug_interp
    env = dict(os.environ, **DEBUG)
    if needs:
        path, _ = library_env(interp, *needs)  # skips, saying why, where they cannot be had
        if path:
            env["PYTHONPATH"] = path
    truth_path = out_path(interp, "malloc_debug")
    events_path = out_path(interp, "malloc_debug-events")
    argv = [AIOSCOPE, "run", "--quiet", "--output", events_path, *options, "--",
            *interp.argv(program[0], "--truth", interp.inside(truth_path), *program[1:])]
    try:
        r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, env=env)
        truth = read_json(truth_path) if truth_path.exists() else None
    finally:
        truth_path.unlink(missing_ok=True)
        events_path.unlink(missing_ok=True)
    said = hooks_said(r.stdout + r.stderr)
    assert not said, f"{name} on {interp.name}: the debug allocator's hooks spoke:\n" + "\n".join(said[:40]) + \
        f"\n--- stderr\n{r.stderr[-4000:]}"
    assert r.returncode == status, f"{name}: exit {r.returncode}, the program's own is {status}\n{r.stderr[-4000:]}"
    assert truth is not None and "error" not in truth, f"{name}: no ground truth: {truth}\n{r.stderr[-4000:]}"
    facts = truth.get("facts")
    premises = facts.get("premises", {}) if isinstance(facts, dict) else {}
    assert all(premises.values()), f"{name}: the case did not set up what it relies on: {premises}"
    if "child_status" in truth:  # the fork: its child ran under the same hooks
        assert truth["child_status"] == 0, f"{name}: the forked child exited {truth['child_status']}"


def test_attach_and_detach_under_the_debug_allocator(debug_interp):
    interp = debug_interp
    ready_path = out_path(interp, "malloc_debug-ready")
    result_path = out_path(interp, "malloc_debug-result")
    after_path = out_path(interp, "malloc_debug-after")
    stderr_path = out_path(interp, "malloc_debug-stderr")
    argv = interp.argv("bugs_cancel.py", "--truth", interp.inside(ready_path), "--case", "kept", "--exit-status",
                       str(STATUS), "--attach", interp.inside(result_path), interp.inside(after_path))
    try:
        with open(stderr_path, "w") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ, **DEBUG))
        try:
            wait_file(ready_path, 60, proc, "ready file")
            live = Live([AIOSCOPE, "attach", "--json", proc.pid])
            try:
                live.wait_for(lambda e: e["type"] == "hello", 60, "hello")
                result = wait_file(result_path, 60, proc, "result")
            finally:
                stream = live.stop()
            after = wait_file(after_path, 60, proc, "state after the detach")
            rc = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        stderr = stderr_path.read_text()
    finally:
        for p in (ready_path, result_path, after_path, stderr_path):
            p.unlink(missing_ok=True)
    said = hooks_said(stderr)
    assert not said, f"attach on {interp.name}: the debug allocator's hooks spoke:\n" + "\n".join(said[:40]) + \
        f"\n--- stderr\n{stderr[-4000:]}"
    assert stream.rc == 0, f"attach exited {stream.rc}: {stream.stderr}"
    assert rc == STATUS, f"the program exited {rc}, its own status is {STATUS}\n{stderr[-4000:]}"
    assert "error" not in result and after["hooks_gone"], (result.get("error"), after)
