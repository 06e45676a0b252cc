#!/usr/bin/env python3
"""Benchmark: what the agent costs a busy asyncio program.

Runs fixtures/bench_queues.py (1,000 tasks passing messages through queues)
four ways, interleaved, --runs times each, on each available host
interpreter, with 100 messages in flight (several per task step) and with 1
(one event-loop callback per message, the worst case for the agent's
callback hook):
  bare        python bench_queues.py
  agent       aioscope run -o events --interval 10ms -- python bench_queues.py  (100 Hz):
              sampling, the stall hook and the silent-bug observers
  origins     the same with --track-origins (where every coroutine was created)
  debug mode  PYTHONASYNCIODEBUG=1 python bench_queues.py  (asyncio's own debug mode)
and prints median throughputs and their ratios to bare. Goals: < 1% loss with
the agent, < 2% with the observers' hooks.

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


def throughput(cmd, env=None, aioscope=None):
    """Messages per second of one run; under `aioscope run` (its options in
    `aioscope`) also checks the agent really observed it."""
    with tempfile.TemporaryDirectory() as d:
        truth, events = Path(d) / "out.json", Path(d) / "events.jsonl"
        if aioscope is not None:
            cmd = [str(AIOSCOPE), "run", "-o", str(events), *aioscope, "--", *cmd]
        subprocess.run([*cmd, "--truth", str(truth)], check=True, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        if aioscope is not None:
            hello = [e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "hello"]
            if not hello or hello[0]["stall_detection"] != "active":
                sys.exit(f"the agent did not observe {' '.join(cmd)}: {hello}")
        return json.loads(truth.read_text())["messages_per_second"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--python", default="3.10,3.11,3.12,3.13")
    args = ap.parse_args()
    print(f"{'python':<8} {'in flight':>9} {'bare msg/s':>11} {'agent/bare':>11} {'origins/bare':>13} "
          f"{'debug/bare':>11}")
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
            run = ["--interval", "10ms"]
            bare, agent, origins, debug = [], [], [], []
            for _ in range(args.runs):  # interleaved: drift in machine load hits all four alike
                bare.append(throughput(workload))
                agent.append(throughput(workload, aioscope=run))
                origins.append(throughput(workload, aioscope=[*run, "--track-origins"]))
                debug.append(throughput(workload, debug_env))
            b, a, o, d = (statistics.median(x) for x in (bare, agent, origins, debug))
            print(f"{interp.name:<8} {inflight:9} {b:11.0f} {a / b:10.3f}x {o / b:12.3f}x {d / b:10.3f}x")
    print("median of --runs interleaved runs; agent = aioscope run at 100 Hz with stall detection and the "
          "observers active; debug = PYTHONASYNCIODEBUG=1")


if __name__ == "__main__":
    main()
