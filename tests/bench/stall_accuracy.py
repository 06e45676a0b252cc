#!/usr/bin/env python3
"""Benchmark: how accurately the agent reports event-loop stalls.

Runs fixtures/bench_stalls.py under `aioscope run` (threshold 100 ms) at
sampling intervals of 10 ms and 5 ms on each available host interpreter,
and compares the stall events with the episodes the fixture timed itself:
  detection  elapsed_ms when reported - threshold (goal: <= one interval)
  duration   |stall_end duration_ms - measured| (goal: <= two intervals)
  false      stalls reported that match no episode (busy-but-yielding and
             back-to-back short callbacks must give none)

Usage: tests/bench/stall_accuracy.py [--python 3.12,3.13] [--intervals 10,5]
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from harness import AIOSCOPE  # noqa: E402
from zoo import FIXTURES, ZOO  # noqa: E402

THRESHOLD_MS = 100


def measure(interp, interval_ms):
    with tempfile.TemporaryDirectory() as d:
        truth = Path(d) / "truth.json"
        cmd = [str(AIOSCOPE), "run", "--json", "--stall-threshold", f"{THRESHOLD_MS}ms", "--interval",
               f"{interval_ms}ms", "--", interp.python, str(FIXTURES / "bench_stalls.py"), "--truth", str(truth)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
        episodes = json.loads(truth.read_text())["episodes_ms"]
    events = [json.loads(line) for line in out.splitlines()]
    stalls = {e["stall_id"]: e for e in events if e["type"] == "stall"}
    ends = {e["stall_id"]: e for e in events if e["type"] == "stall_end"}
    durations = [ends[i]["duration_ms"] for i in sorted(ends)]
    detection = [stalls[i]["elapsed_ms"] - THRESHOLD_MS for i in sorted(stalls) if stalls[i]["captured"]]
    # Episodes and stalls happen in the same order; extra stalls are false.
    errors = [abs(a - b) for a, b in zip(durations, episodes)]
    return len(episodes), len(stalls), detection, errors, max(0, len(stalls) - len(episodes))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default="3.10,3.11,3.12,3.13")
    ap.add_argument("--intervals", default="10,5")
    args = ap.parse_args()
    print(f"{'python':<8} {'interval':>8} {'episodes':>8} {'stalls':>6} {'detect max ms':>13} "
          f"{'duration err max ms':>19} {'false':>5}")
    for interp in ZOO:
        if interp.name not in args.python.split(",") or interp.root != "/":
            continue
        why = interp.unavailable()
        if why:
            print(f"{interp.name:<8} skipped: {why}")
            continue
        for interval in (int(i) for i in args.intervals.split(",")):
            n, found, detection, errors, false = measure(interp, interval)
            print(f"{interp.name:<8} {interval:>6}ms {n:>8} {found:>6} {max(detection, default=0):13.1f} "
                  f"{max(errors, default=0):19.1f} {false:>5}")
    print(f"threshold {THRESHOLD_MS} ms; goals: detection <= one interval, duration error <= two intervals, "
          "no false stalls")


if __name__ == "__main__":
    main()
