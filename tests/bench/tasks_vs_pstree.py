#!/usr/bin/env python3
"""Benchmark: `aioscope dump` vs CPython's own `python -m asyncio pstree` on
the same 3.14 (and 3.15) process with 1k, 10k and 100k tasks.

For each size, starts fixtures/aio_bench.py in the sid chroot and times, in
the same run against the same process:
  - `aioscope dump PID` (text: trees, identical tasks coalesced),
  - `aioscope dump --json PID` (every task written out), with its peak RSS,
  - `pythonX.Y -m asyncio pstree PID` (killed after --timeout seconds).
Prints medians and the ratio pstree / aioscope.

Usage: tests/bench/tasks_vs_pstree.py [--sizes 1000,10000,100000] [--runs 3] [--timeout 120]
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from harness import AIOSCOPE, Fixture  # noqa: E402
from zoo import ZOO  # noqa: E402


def timed(cmd, timeout):
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout}s"
    elapsed = time.perf_counter() - t0
    if r.returncode not in (0, 10):
        return None, (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1][:120]
    return elapsed, r.stdout


def peak_rss_mb(cmd):
    """Peak resident memory of one run, from the kernel's accounting of the child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    return int(r.stderr.strip().splitlines()[-1]) / 1024 if r.stderr.strip() else float(before) / 1024


def median(xs):
    return statistics.median(xs) if xs else None


def bench(interp, n, runs, timeout):
    with Fixture(interp, "aio_bench.py", "--tasks", str(n), truth_timeout=300) as fx:
        pid = str(fx.pid)
        text, js, reads = [], [], []
        for _ in range(runs):
            t, _ = timed([str(AIOSCOPE), "dump", pid], timeout)
            text.append(t)
            t, out = timed([str(AIOSCOPE), "dump", "--json", pid], timeout)
            js.append(t)
            doc = json.loads(out)
            assert len(doc["tasks"]) == fx.truth["tasks"], (len(doc["tasks"]), fx.truth["tasks"])
            reads.append(doc["duration_ms"] / 1000)
        rss = peak_rss_mb([str(AIOSCOPE), "dump", "--json", pid])
        peer, peer_err = [], None
        for _ in range(runs):
            t, out = timed(["chroot", interp.root, interp.python, "-m", "asyncio", "pstree", pid], timeout)
            if t is None:
                peer_err = out
                break
            peer.append(t)
    return median(text), median(js), median(reads), rss, median(peer), peer_err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--python", default="3.14,3.15")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'python':<7} {'tasks':>7} {'dump s':>8} {'--json s':>9} {'read s':>8} {'peak MB':>8} "
          f"{'pstree s':>9} {'pstree/dump':>12}")
    for interp in ZOO:
        if interp.name not in args.python.split(","):
            continue
        why = interp.unavailable()
        if why:
            print(f"{interp.name:<7} skipped: {why}")
            continue
        interp.prepare()
        for n in sizes:
            text, js, read, rss, peer, err = bench(interp, n, args.runs, args.timeout)
            ratio = f"{peer / text:11.1f}x" if peer else "   (failed)"
            peer_s = f"{peer:9.2f}" if peer else f"{'-':>9}"
            print(f"{interp.name:<7} {n:>7} {text:8.2f} {js:9.2f} {read:8.3f} {rss:8.0f} {peer_s} {ratio}"
                  + (f"  pstree: {err}" if err else ""))
    print("dump = `aioscope dump PID` wall time (text); --json = every task as JSON; read = time aioscope "
          "spent reading the process; peak MB = max RSS of `dump --json`; pstree = `python -m asyncio "
          "pstree PID` wall time, same interpreter, same process. Medians of --runs.")


if __name__ == "__main__":
    main()
