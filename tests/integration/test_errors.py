"""Bad input: one clear line on stderr and a distinct, documented exit code."""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness import AIOSCOPE, Fixture, run_aioscope
from zoo import PYENV_ROOT

EXIT = {"usage": 2, "no_such_process": 3, "permission_denied": 4, "not_python": 5,
        "unsupported_version": 6, "process_exited": 7, "bad_input": 8}


def assert_one_line_error(r, code, *words):
    assert r.returncode == code, f"exit {r.returncode}, expected {code}: {r.stderr}"
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {r.stderr!r}"
    assert lines[0].startswith("aioscope: ")
    for w in words:
        assert w in lines[0]


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_dead_pid():
    assert_one_line_error(run_aioscope("dump", dead_pid()), EXIT["no_such_process"], "no process")


def test_not_a_python_process():
    p = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.1)
        assert_one_line_error(run_aioscope("dump", p.pid), EXIT["not_python"], "not a CPython process", "sleep")
    finally:
        p.kill()
        p.wait()


def test_zombie_has_exited():
    p = subprocess.Popen(["sleep", "60"])
    os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{p.pid}/stat").read_text().split(") ")[1][0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        assert_one_line_error(run_aioscope("dump", p.pid), EXIT["process_exited"], "exited")
    finally:
        p.wait()


@pytest.mark.parametrize("version", ["2.7.18", "3.6.15", "3.9.18"])
def test_unsupported_versions(version):
    minor = ".".join(version.split(".")[:2])
    python = PYENV_ROOT / "versions" / version / "bin" / f"python{minor}"
    if not python.exists():
        pytest.skip(f"CPython {version} unavailable: not found at {python}")
    p = subprocess.Popen([str(python), "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)
        assert_one_line_error(run_aioscope("dump", p.pid), EXIT["unsupported_version"],
                              f"Python {minor} is not supported", "3.10 to 3.15")
    finally:
        p.kill()
        p.wait()


@pytest.fixture
def unprivileged_aioscope(tmp_path):
    """aioscope copied where an unprivileged user can run it."""
    if os.geteuid() != 0:
        pytest.skip("permission test needs root to switch to an unprivileged user")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) not installed")
    tmp_path.chmod(0o755)
    exe = tmp_path / "aioscope"
    shutil.copy(AIOSCOPE, exe)
    exe.chmod(0o755)
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(exe)]


@pytest.mark.parametrize("extra", [[], ["--pause"]], ids=["read", "pause"])
def test_permission_denied_explains_what_to_do(unprivileged_aioscope, interp, extra):
    with Fixture(interp, "threads_known.py") as fx:
        r = subprocess.run([*unprivileged_aioscope, "dump", *extra, str(fx.pid)],
                           capture_output=True, text=True, timeout=60)
        assert_one_line_error(r, EXIT["permission_denied"], "permission denied", "CAP_SYS_PTRACE",
                              "same user")
        assert fx.alive()


def test_process_exiting_during_reads_never_crashes(interp):
    """Hammer a process whose threads churn until it exits: every answer is
    a snapshot (possibly with warnings) or a clean error."""
    with Fixture(interp, "churn.py", "--seconds", "2") as fx:
        outcomes = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for extra in ([], ["--pause"]):
                t0 = time.monotonic()
                r = run_aioscope("dump", "--json", *extra, fx.pid, timeout=20)
                assert time.monotonic() - t0 < 10, "a dump must never hang"
                assert r.returncode in (0, EXIT["no_such_process"], EXIT["process_exited"]), r.stderr
                assert "internal error" not in r.stderr
                if r.returncode:
                    assert len(r.stderr.strip().splitlines()) == 1
                outcomes.append(r.returncode)
            if not fx.alive() or outcomes[-1] != 0:
                break
        fx.proc.wait(timeout=10)
        assert outcomes.count(0) >= 2, "the live process should have been read"
        r = run_aioscope("dump", fx.pid)
        assert r.returncode in (EXIT["no_such_process"], EXIT["process_exited"])


def test_render_rejects_garbage(tmp_path):
    r = run_aioscope("render", "-", input="this is not json")
    assert_one_line_error(r, EXIT["bad_input"], "not valid JSON")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "aioscope/snapshot/1", "pid": 1, "python": {"version": "3.12.1"}, "threads": 7}')
    assert_one_line_error(run_aioscope("render", bad), EXIT["bad_input"], "threads")
    other = tmp_path / "other.json"
    other.write_text('{"schema": "something/else"}')
    assert_one_line_error(run_aioscope("render", other), EXIT["bad_input"], "something/else")
    assert_one_line_error(run_aioscope("render", tmp_path / "missing.json"), EXIT["bad_input"], "cannot open")


def test_usage_errors():
    assert_one_line_error(run_aioscope("dump", "not-a-pid"), EXIT["usage"])
    r = run_aioscope()
    assert r.returncode == EXIT["usage"]
