"""The agent never rewrites the interpreter's version buffer while anything
may read it.

Py_GetVersion() formats its text into a static buffer at every call, and
glibc's snprintf first writes a NUL at the buffer's start; Py_Initialize
copies that buffer into sys.version (strlen, then a second pass). An agent
thread calling it while the program started once gave a fixture a
sys.version beginning with NUL (CI, `aioscope run`, 3.10: its ground truth's
"version" was "\\u0000.10.13"). The agent may call it only in its library
constructor: on the main thread, before the interpreter is initialized.

tests/support/version_spy.so, preloaded after the agent, stands in for
Py_GetVersion (the agent looks it up with dlsym(RTLD_DEFAULT), which finds a
preloaded library's definition before libpython's) and logs each call made
from the agent's code: on which thread, and whether the interpreter was
initialized then. It can stand in only where Py_GetVersion is libpython's
(a shared build); Debian's static python3.11 defines it in the executable,
which is searched first.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

from agent_helpers import host_only, out_path, read_json
from harness import AIOSCOPE
from zoo import python_version

SPY = Path(AIOSCOPE).parent / "tests" / "version_spy.so"


def shared_libpython(interp):
    """Whether the executable takes Py_GetVersion from libpython (Debian's
    python3.11 says Py_ENABLE_SHARED, but its executable links it in)."""
    r = subprocess.run(["ldd", interp.python], capture_output=True, text=True, check=True)
    return "libpython" in r.stdout


def test_run_calls_py_getversion_only_before_the_interpreter_starts(interp):
    host_only(interp)
    if not SPY.exists():
        pytest.skip(f"{SPY} not built (cli/build.sh builds it with the tests)")
    if not shared_libpython(interp):
        pytest.skip(f"CPython {interp.name} defines Py_GetVersion in its executable: no preloaded library can "
                    "stand in for it")
    log = out_path(interp, "version_spy")
    truth_path = out_path(interp, "version_spy-truth")
    events_path = out_path(interp, "version_spy-events")
    env = dict(os.environ, LD_PRELOAD=str(SPY), AIOSCOPE_TEST_VERSION_SPY=str(log))
    argv = [AIOSCOPE, "run", "--quiet", "--output", events_path, "--",
            *interp.argv("bugs_unawaited.py", "--truth", interp.inside(truth_path), "--case", "plain",
                         "--wait-hooks", "10")]
    try:
        r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60, env=env)
        truth = read_json(truth_path)
        events = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
        calls = log.read_text().split("\n")[:-1] if log.exists() else []
    finally:
        for p in (log, truth_path, events_path):
            p.unlink(missing_ok=True)
    assert r.returncode in (0, 12), r.stderr
    # The spy stood in (the agent takes the version text once, in its
    # constructor): otherwise this test would prove nothing.
    assert calls, "the agent's Py_GetVersion calls never reached the spy"
    assert all(c == "1 0" for c in calls), \
        f"the agent called Py_GetVersion off the main thread or after Py_Initialize ('main initialized'): {calls}"
    version = python_version(interp)
    assert truth["version"] == version, f"the program's sys.version says {truth['version']!r}, not {version!r}"
    hello = [e for e in events if e["type"] == "hello"]
    assert len(hello) == 1 and hello[0]["python"]["version"] == version, hello
