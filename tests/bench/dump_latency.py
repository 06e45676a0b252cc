#!/usr/bin/env python3
"""Benchmark: how long `aioscope dump` takes on each zoo interpreter.

For every available interpreter, starts fixtures/threads_known.py (3 threads)
and dumps it N times. Prints the median wall time of the whole command and the
median time aioscope spent reading (its own duration_ms, one cold read in a
fresh process). Where a peer exists
in the same interpreter, CPython 3.14+'s own `_remote_debugging.RemoteUnwinder
(pid, all_threads=True).get_stack_trace()`, it is timed against the same
process in the same run and the ratio is printed.

Usage: tests/bench/dump_latency.py [--runs N]   (as root, after tests/run or cli/build.sh)
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

# One cold read per process, like one `aioscope dump`: the peer is timed from
# creating its unwinder to having all stacks, in a fresh interpreter each run.
PEER = """
import sys, time, _remote_debugging as rd
t0 = time.perf_counter()
rd.RemoteUnwinder(int(sys.argv[1]), all_threads=True).get_stack_trace()
print((time.perf_counter() - t0) * 1000)
"""


def median_dump(pid, runs):
    wall, read = [], []
    for _ in range(runs):
        r = measured([str(AIOSCOPE), "dump", "--json", str(pid)])
        assert r.status == 0, r.status
        wall.append(r.wall * 1000)
        read.append(json.loads(r.stdout)["duration_ms"])
    return median(wall), median(read)


def peer(interp, pid, runs):
    if interp.name not in ("3.14", "3.15"):
        return None
    cmd = ["chroot", interp.root, interp.python, "-c", PEER, str(pid)]
    times = []
    for _ in range(runs):
        r = measured(cmd)
        if r.status != 0:
            return None
        times.append(float(r.stdout))
    return median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    print(f"{'python':<12} {'dump wall ms':>13} {'dump read ms':>13} {'peer read ms':>13} {'peer/aioscope':>14}")
    for interp in prepared(width=12):
        with Fixture(interp, "threads_known.py") as fx:
            wall, read = median_dump(fx.pid, args.runs)
            p = peer(interp, fx.pid, args.runs)
        ratio = f"{p / read:13.1f}x" if p else f"{'(no peer)':>14}"
        peer_s = f"{p:13.2f}" if p else f"{'-':>13}"
        print(f"{interp.name:<12} {wall:13.2f} {read:13.2f} {peer_s} {ratio}")
    print("peer = CPython's _remote_debugging.RemoteUnwinder(pid, all_threads=True).get_stack_trace(),"
          " run in the same interpreter against the same process")


if __name__ == "__main__":
    main()
