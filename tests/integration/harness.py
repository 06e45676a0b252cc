"""Starting fixtures, waiting for their ground truth, and running aioscope."""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from zoo import Interpreter

ROOT = Path(__file__).resolve().parents[2]
AIOSCOPE = Path(os.environ.get("AIOSCOPE_BIN", ROOT / "build" / "aioscope"))


def run_aioscope(*args, timeout=60, **kw):
    return subprocess.run([str(AIOSCOPE), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


def children(pid):
    """The child processes of `pid` (started by any of its threads)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def descendants(pid, cap):
    """`pid` and its descendants, parents first, at most `cap` of them."""
    found, todo = [], [pid]
    while todo and len(found) < cap:
        p = todo.pop(0)
        if p not in found:
            found.append(p)
            todo += children(p)
    return found


def hang_report(pid):
    """What a process that did not finish in time, and its descendants, are
    doing: each thread's state, kernel wait and tracer, and the Python
    stacks as aioscope reads them from outside (a hang must say where it is,
    or it cannot be fixed from a CI log)."""
    lines = []
    for p in descendants(pid, 50):
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        lines.append(f"pid {p}: {cmd[:300]}")
        for task in sorted(Path(f"/proc/{p}/task").glob("*")):
            try:
                status = dict(l.split(":", 1) for l in (task / "status").read_text().splitlines() if ":" in l)
                wchan = (task / "wchan").read_text()
                syscall = (task / "syscall").read_text().split()[0] if (task / "syscall").exists() else "?"
            except (OSError, IndexError):
                continue
            lines.append(f"  tid {task.name} {status.get('Name', '').strip()!r}: {status.get('State', '').strip()}, "
                         f"wchan {wchan or '-'}, syscall {syscall}, tracer {status.get('TracerPid', '').strip()}")
            try:
                kernel = (task / "stack").read_text().split("\n")[:6]
                lines.append("    kernel: " + " < ".join(f.split(" ", 1)[-1] for f in kernel if f))
            except OSError:
                pass
        if "python" in cmd and "aioscope" not in cmd.split(" ")[0]:
            try:
                r = run_aioscope("dump", p, timeout=20)
                lines.append("  " + (r.stdout + r.stderr).strip().replace("\n", "\n  ")[:4000])
            except subprocess.TimeoutExpired:
                lines.append("  (aioscope dump did not finish in 20 s)")
            lines.append(native_stacks(p))
    return "\n".join(lines)


def native_stacks(pid):
    """Every thread's native stack by gdb (tests/run installs it), for the
    agent's own threads, which no Python stack shows."""
    gdb = shutil.which("gdb")
    if not gdb:
        return "  (no gdb: native stacks not shown)"
    try:
        r = subprocess.run([gdb, "-p", str(pid), "-batch", "-nx", "-ex", "thread apply all bt 25"],
                           capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "  (gdb did not finish in 60 s)"
    keep = [l[:200] for l in r.stdout.splitlines() if l.startswith(("Thread ", "#"))]
    return "  " + "\n  ".join(keep)[:12000]


def kill_tree(proc):
    """SIGKILL a process and its descendants (a hung `run` leaves its program
    behind otherwise), and reap the process."""
    for p in descendants(proc.pid, 200):
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    proc.wait()


def dump_json(pid, *extra):
    r = run_aioscope("dump", "--json", *extra, pid)
    assert r.returncode == 0, f"dump failed ({r.returncode}): {r.stderr}"
    return json.loads(r.stdout)


class Fixture:
    """A fixture process under one interpreter, with its published ground truth."""

    def __init__(self, interp: Interpreter, script: str, *args: str, truth_timeout=60):
        self.interp = interp
        out_dir = interp.fixture_dir() / "out"
        out_dir.mkdir(exist_ok=True)
        self.truth_path = out_dir / f"{Path(script).stem}-{interp.name}-{os.getpid()}-{time.monotonic_ns()}.json"
        self.truth_path.unlink(missing_ok=True)
        cmd = interp.argv(script, "--truth", interp.inside(self.truth_path), *args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.truth = self._wait_truth(truth_timeout)

    def _wait_truth(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"fixture exited early ({self.proc.returncode}): {self.stderr()}")
            if self.truth_path.exists():
                truth = json.loads(self.truth_path.read_text())
                if "error" in truth:
                    raise AssertionError(f"fixture could not settle: {truth['error']}")
                self._wait_gone(truth.get("observer_native_id"), deadline)
                return truth
            time.sleep(0.05)
        raise AssertionError(f"no ground truth from {self.interp.name} within {timeout}s")

    def stderr(self):
        """What the fixture wrote to stderr (read once it has exited)."""
        return self.proc.stderr.read()

    def _wait_gone(self, tid, deadline):
        # The observer thread exits right after writing; the dump must not see it.
        while tid and Path(f"/proc/{self.pid}/task/{tid}").exists():
            if time.monotonic() > deadline:
                raise AssertionError("observer thread did not exit")
            time.sleep(0.01)

    def alive(self):
        return self.proc.poll() is None

    def state(self):
        """The kernel's one-letter process state (S sleeping, R running, t traced...)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        return stat[stat.rindex(")") + 2]

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.truth_path.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
