#!/usr/bin/env python3
"""Benchmark: how soon `aioscope attach` gets the agent's hello, per
interpreter and per state of the target (fixtures/attach_wedged.py): an
event loop wedged in threading.Lock.acquire, in time.sleep, in a blocking
socket.recv, a service idle in epoll, a loop running bytecode, one working
in bursts, one inside a long C call that holds the GIL (sum over a range).

For each (interpreter, state) a fresh target is started --runs times;
"first" is the attach that loads the agent, "again" a second attach to the
same target (the agent is already loaded). Printed: the median milliseconds
from starting `aioscope attach` to its hello line. The goal is under 500 ms
in every cell. On 3.14+ the peer in the same run is CPython's own
sys.remote_exec (PEP 768): the time until a script it queued has run,
"never" when it had not after 5 s (a process that runs no bytecode).

Usage: tests/bench/attach_latency.py [--runs N] [--only 3.12,3.14] [--states lock,idle]
(as root, after cli/build.sh)
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from harness import AIOSCOPE  # noqa: E402
from zoo import prepared  # noqa: E402

STATES = ["lock", "sleep", "recv", "idle", "spin", "work", "cspin"]
PEER_WAIT_S = 5.0


class Target:
    def __init__(self, interp, state, work):
        self.truth = work / f"truth-{time.monotonic_ns()}"
        cmd = interp.argv("attach_wedged.py", "--truth", interp.inside(self.truth), "--state", state,
                          "--release", interp.inside(work / "never"), "--result", interp.inside(work / "result"),
                          "--seconds", "3600")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not self.truth.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{interp.name} {state}: the fixture did not start")
            time.sleep(0.02)
        time.sleep(0.3)  # into its wedge

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.truth.unlink(missing_ok=True)


def hello_ms(pid):
    """Milliseconds from starting attach to its hello line (None: no hello)."""
    t0 = time.perf_counter()
    cli = subprocess.Popen([str(AIOSCOPE), "attach", "--json", str(pid)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    took = None
    for line in cli.stdout:
        if line.startswith("{") and json.loads(line).get("type") == "hello":
            took = (time.perf_counter() - t0) * 1000
            break
    cli.send_signal(signal.SIGINT)
    try:
        cli.wait(30)
    except subprocess.TimeoutExpired:
        cli.kill()
        cli.wait()
    return took


PEER = """
import sys
sys.remote_exec(int(sys.argv[1]), sys.argv[2])
"""


def peer_ms(interp, pid, work):
    """CPython's own PEP 768: until the queued script has written its file."""
    done = work / f"peer-{time.monotonic_ns()}"
    script = work / f"peer-{time.monotonic_ns()}.py"
    script.write_text(f"open({interp.inside(done)!r}, 'w').close()\n")
    t0 = time.perf_counter()
    r = subprocess.run(interp.argv("_version.py")[:-1] + ["-c", PEER, str(pid), interp.inside(script)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    while time.perf_counter() - t0 < PEER_WAIT_S:
        if done.exists():
            return (time.perf_counter() - t0) * 1000
        time.sleep(0.002)
    return float("inf")


def fmt(v):
    if v is None:
        return "fail"
    return "never" if v == float("inf") else f"{v:.0f}"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--states", default=",".join(STATES))
    a = ap.parse_args()
    states = a.states.split(",")
    print(f"median ms from `aioscope attach` to hello ({a.runs} fresh targets each); goal < 500")
    print(f"{'python':12} {'state':6} {'first':>7} {'again':>7} {'peer':>7}   (peer: sys.remote_exec on 3.14+)")
    for interp in prepared(a.only, width=12):
        (interp.fixture_dir() / "out").mkdir(exist_ok=True)  # gitignored: absent in a fresh checkout
        work = Path(tempfile.mkdtemp(prefix="attach-bench-", dir=interp.fixture_dir() / "out"))
        for state in states:
            first, again, peer = [], [], []
            for _ in range(a.runs):
                t = Target(interp, state, work)
                try:
                    first.append(hello_ms(t.proc.pid))
                    again.append(hello_ms(t.proc.pid))
                finally:
                    t.close()
                if interp.name in ("3.14", "3.15"):
                    t = Target(interp, state, work)
                    try:
                        peer.append(peer_ms(interp, t.proc.pid, work))
                    finally:
                        t.close()
            print(f"{interp.name:12} {state:6} {fmt(median(first)):>7} {fmt(median(again)):>7} "
                  f"{fmt(median(peer)) if peer else '-':>7}", flush=True)
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
