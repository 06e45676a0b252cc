#!/usr/bin/env python3
"""Benchmark: a stacks-only `aioscope dump` (a process without asyncio tasks)
vs CPython's own `_remote_debugging.RemoteUnwinder` on the same 3.14 (and
3.15) process.

Starts fixtures/threads_known.py (3 threads, no asyncio) in the sid chroot,
once as it is and once with a web service's imports (`--imports`: several
hundred modules, which aioscope looks through and the peer does not) and,
interleaved, --runs times each (default 30):
  - `aioscope dump --json PID`: its read time (`duration_ms`, one cold read:
    locating nothing, reading interpreters, threads, frames, names, with
    the second looks) and the wall time of the whole command;
  - a fresh `python -c` creating `RemoteUnwinder(pid)` and calling
    `get_stack_trace()` once (the time of those two calls, measured inside),
    and the same with `all_threads=True` (aioscope reads every thread: the
    like-for-like peer), and the wall time of that whole command.
Prints medians and the ratios peer / aioscope (> 1: aioscope is faster).
The goal is a ratio of at least 1 for the read.

Usage: tests/bench/stacks_vs_unwinder.py [--runs 30] [--python 3.14,3.15]
"""
import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from harness import AIOSCOPE, Fixture  # noqa: E402
from timing import measured, median  # noqa: E402
from zoo import prepared  # noqa: E402

PEER = """
import sys, time, _remote_debugging as rd
pid = int(sys.argv[1])
t0 = time.perf_counter()
rd.RemoteUnwinder(pid).get_stack_trace()
t1 = time.perf_counter()
rd.RemoteUnwinder(pid, all_threads=True).get_stack_trace()
t2 = time.perf_counter()
print((t1 - t0) * 1000, (t2 - t1) * 1000)
"""


def bench(interp, runs, imports):
    ours, ours_wall, one, every, peer_wall = [], [], [], [], []
    with Fixture(interp, "threads_known.py", *(["--imports"] if imports else [])) as fx:
        modules = fx.truth["modules"]
        pid = str(fx.pid)
        for _ in range(runs):
            r = measured([str(AIOSCOPE), "dump", "--json", pid])
            assert r.status == 0, r.status
            doc = json.loads(r.stdout)
            assert len(doc["threads"]) == 3 and all(t["frames"] for t in doc["threads"]), doc["threads"]
            ours.append(doc["duration_ms"])
            ours_wall.append(r.wall * 1000)
            p = measured(["chroot", interp.root, interp.python, "-c", PEER, pid])
            if p.status != 0:
                return None
            a, b = map(float, p.stdout.split())
            one.append(a)
            every.append(b)
            peer_wall.append(p.wall * 1000)
    return modules, median(ours), median(ours_wall), median(one), median(every), median(peer_wall)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--python", default="3.14,3.15")
    args = ap.parse_args()
    print(f"{'python':<7} {'modules':>7} {'aioscope read ms':>16} {'peer ms':>8} {'ratio':>6} {'peer all_threads ms':>19}"
          f" {'ratio':>6} {'aioscope wall ms':>16} {'peer wall ms':>12} {'ratio':>6}")
    for interp in prepared(args.python, width=7):
        for imports in (False, True):
            got = bench(interp, args.runs, imports)
            if got is None:
                print(f"{interp.name:<7} peer failed")
                continue
            modules, ours, ours_wall, one, every, peer_wall = got
            print(f"{interp.name:<7} {modules:7} {ours:16.2f} {one:8.2f} {one / ours:5.2f}x {every:19.2f} {every / ours:5.2f}x"
                  f" {ours_wall:16.1f} {peer_wall:12.1f} {peer_wall / ours_wall:5.2f}x")
    print(f"Medians of --runs ({args.runs}), interleaved, same process (3 threads, no asyncio; modules = "
          "len(sys.modules), the second row with a service's imports). read = "
          "aioscope's duration_ms (a cold read, second looks included); peer = RemoteUnwinder(pid) + "
          "get_stack_trace() timed inside a fresh interpreter (first thread only), all_threads = every "
          "thread, as aioscope reads. wall = the whole command, process start included. ratio = peer / "
          "aioscope: above 1, aioscope is faster.")


if __name__ == "__main__":
    main()
