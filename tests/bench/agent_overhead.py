#!/usr/bin/env python3
"""Benchmark: what the agent costs a busy asyncio program.

Runs fixtures/bench_queues.py (1,000 tasks passing messages through queues)
three ways, interleaved, --runs times each, on each available host
interpreter, with 100 messages in flight (several per task step) and with 1
(one event-loop callback per message, the worst case for the agent's
callback hook):
  bare        python bench_queues.py
  agent       aioscope run --quiet --interval 10ms -- python bench_queues.py  (100 Hz)
  debug mode  PYTHONASYNCIODEBUG=1 python bench_queues.py  (asyncio's own debug mode)
and prints median throughputs and their ratios to bare. Goal: < 1% loss with
the agent.

Usage: tests/bench/agent_overhead.py [--runs 5] [--seconds 3] [--python 3.12,3.13]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from harness import AIOSCOPE  # noqa: E402
from zoo import FIXTURES, ZOO  # noqa: E402


def throughput(cmd, env=None):
    with tempfile.TemporaryDirectory() as d:
        truth = Path(d) / "out.json"
        subprocess.run([*cmd, "--truth", str(truth)], check=True, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        return json.loads(truth.read_text())["messages_per_second"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--python", default="3.10,3.11,3.12,3.13")
    args = ap.parse_args()
    print(f"{'python':<8} {'in flight':>9} {'bare msg/s':>11} {'agent msg/s':>12} {'agent/bare':>11} "
          f"{'debug msg/s':>12} {'debug/bare':>11}")
    for interp in ZOO:
        if interp.name not in args.python.split(",") or interp.root != "/":
            continue
        why = interp.unavailable()
        if why:
            print(f"{interp.name:<8} skipped: {why}")
            continue
        for inflight in (100, 1):
            workload = [interp.python, str(FIXTURES / "bench_queues.py"), "--seconds", str(args.seconds),
                        "--in-flight", str(inflight)]
            debug_env = dict(os.environ, PYTHONASYNCIODEBUG="1")
            bare, agent, debug = [], [], []
            for _ in range(args.runs):  # interleaved: drift in machine load hits all three alike
                bare.append(throughput(workload))
                agent.append(throughput([str(AIOSCOPE), "run", "--quiet", "--interval", "10ms", "--", *workload]))
                debug.append(throughput(workload, debug_env))
            b, a, d = statistics.median(bare), statistics.median(agent), statistics.median(debug)
            print(f"{interp.name:<8} {inflight:9} {b:11.0f} {a:12.0f} {a / b:10.3f}x {d:12.0f} {d / b:10.3f}x")
    print("median of --runs interleaved runs; agent = aioscope run at 100 Hz with stall detection active")


if __name__ == "__main__":
    main()
