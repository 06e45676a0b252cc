"""Running one command and measuring it the way the benchmarks report it:
wall time from fork to exit (process start included), CPU time (user +
system) and peak resident memory, from the kernel's accounting of that one
child (wait4): the CPU time is what the command itself cost, whatever else
the shared machine was doing meanwhile; the wall time is what a user waits."""
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass

# The peak RSS of a child forked from this Python process would count the
# copy of this process it starts as (ru_maxrss survives exec); GNU time
# forks it from a small process and reports the child's own peak.
TIME = "/usr/bin/time"


@dataclass
class Run:
    wall: float      # seconds
    cpu: float       # seconds, user + system
    peak_mb: float   # max resident set size
    status: int      # exit status; -9 when killed after the timeout (GNU time passes the command's on)
    stdout: bytes


def measured(cmd, timeout=None):
    with tempfile.NamedTemporaryFile(prefix="aioscope-bench-", suffix=".rss") as rss:
        r = _measured([TIME, "-f", "%M", "-o", rss.name, *cmd], timeout)
        try:
            r.peak_mb = int(open(rss.name).read().split()[-1]) / 1024
        except (ValueError, IndexError):
            r.peak_mb = float("nan")
    return r


def _measured(cmd, timeout):
    t0 = time.perf_counter()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: stdout to the pipe, stdin and stderr to /dev/null
        try:
            os.setpgid(0, 0)  # its own group: a timeout kills the command too, not just `time`
            os.close(r)
            os.dup2(w, 1)
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(devnull, 2)
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    os.close(w)
    killer = threading.Timer(timeout, _kill_group, (pid,)) if timeout else None
    if killer:
        killer.start()
    chunks = []
    with os.fdopen(r, "rb") as f:
        while chunk := f.read1(1 << 20):
            chunks.append(chunk)
    # The rusage of `time` includes the command it waited for: its CPU time.
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if killer:
        killer.cancel()
    return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, os.waitstatus_to_exitcode(status),
               b"".join(chunks))


def _kill_group(pid):
    try:
        os.killpg(pid, 9)
    except ProcessLookupError:
        pass


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def quartiles(xs):
    """(first quartile, median, third quartile): a median and how far to trust it."""
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return q[0], statistics.median(xs), q[2]
