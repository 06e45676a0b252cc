#!/usr/bin/env python3
"""Benchmark: what the agent costs a busy asyncio program.

Runs fixtures/bench_queues.py (1,000 tasks passing messages through queues),
on asyncio's loop and, where the interpreter has them, on uvloop's and in
trio (bench_queues_trio.py, memory channels; debug mode means nothing there),
on each available interpreter (the chroot's 3.14/3.15 too: aioscope and its
agent are copied in), with 100 messages in flight (several per task step)
and with 1 (one event-loop callback per message, the worst case for the
agent's callback hook), these ways, interleaved round by round (drift in the
machine's load hits all alike):
  bare        python bench_queues.py
  100 Hz      aioscope run -o events --interval 10ms -- python bench_queues.py
              (the default: sampling, the stall hook and the silent-bug observers)
  1 kHz       the same with --interval 1ms
  origins     100 Hz with --track-origins (where every coroutine was created; --origins)
  debug mode  PYTHONASYNCIODEBUG=1 python bench_queues.py (asyncio's own; --debug)

Each cell is the median over the rounds of (throughput of that run) /
(throughput of the bare run of the same round), with, in brackets, the
interquartile range of those ratios: how much to trust the median.
Throughput is counted two ways: messages per wall second (what a user
sees; on a shared machine it swings with whatever else runs) and messages
per CPU second of the whole process, every thread included (the agent's
own thread too; steadier, since the CPU the machine lends elsewhere does
not count). Goal: a loss < 1% (ratio > 0.99) with the agent at 100 Hz and
at 1 kHz.

Usage: tests/bench/agent_overhead.py [--runs 9] [--seconds 2] [--python 3.12,3.14]
                                     [--loops asyncio,uvloop,trio] [--in-flight 1,100] [--origins] [--debug]
                                     [--compare-agent OTHER/aioscope-agent.so]
"""
import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from agent_helpers import bench_run, other_agent_env  # noqa: E402
from timing import quartiles  # noqa: E402
from zoo import prepared  # noqa: E402


def throughput(interp, program, env=None, aioscope=None):
    """(messages per wall second, per CPU second) of one run; under
    `aioscope run` (its options in `aioscope`) the agent must have timed it."""
    t = bench_run(interp, *program, aioscope=aioscope, env=env, timeout=120)
    return t["messages_per_second"], t.get("messages_per_cpu_second", float("nan"))


def has(interp, module):
    cmd = [interp.python, "-c", f"import {module}"]
    if interp.root != "/":
        cmd = ["chroot", interp.root, *cmd]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def cell(ratios):
    """median [q1-q3] of paired ratios"""
    xs = [r for r in ratios if r == r]
    if not xs:
        return f"{'-':>21}"
    q1, m, q3 = quartiles(xs)
    return f"{m:6.3f} [{q1:.3f}-{q3:.3f}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--python", default="3.10,3.11,3.11-debian,3.12,3.13,3.14,3.15")
    ap.add_argument("--loops", default="asyncio,uvloop,trio", help="uvloop and trio where the interpreter has them")
    ap.add_argument("--in-flight", default="1,100")
    ap.add_argument("--origins", action="store_true", help="also --track-origins at 100 Hz")
    ap.add_argument("--debug", action="store_true", help="also PYTHONASYNCIODEBUG=1 (asyncio's debug mode)")
    ap.add_argument("--compare-agent", metavar="SO", help="also at 100 Hz and 1 kHz with this build of "
                    "aioscope-agent.so (another version's: before/after in the same run)")
    args = ap.parse_args()
    ways = [("100 Hz", ["--interval", "10ms"], None), ("1 kHz", ["--interval", "1ms"], None)]
    if args.compare_agent:
        ways += [("100 Hz*", ["--interval", "10ms"], "compare"), ("1 kHz*", ["--interval", "1ms"], "compare")]
    if args.origins:
        ways.append(("origins", ["--interval", "10ms", "--track-origins"], None))
    if args.debug:
        ways.append(("debug", None, dict(os.environ, PYTHONASYNCIODEBUG="1")))
    head = f"{'python':<11} {'loop':<7} {'flight':>6} {'what':<8} {'bare msg/s':>10}"
    print(f"{head} {'wall ratio [IQR]':>21} {'CPU ratio [IQR]':>21}")
    for interp in prepared(args.python, width=11):
        if args.compare_agent:
            compare_env = other_agent_env(interp, args.compare_agent)
        loops = [lp for lp in args.loops.split(",") if lp == "asyncio" or has(interp, lp)]
        for loop in loops:
            for inflight in map(int, args.in_flight.split(",")):
                script = "bench_queues_trio.py" if loop == "trio" else "bench_queues.py"
                program = [script, "--seconds", str(args.seconds), "--in-flight", str(inflight), "--loop", loop]
                todo = [w for w in ways if loop != "trio" or w[0] not in ("origins", "debug")]
                bare, ratios = [], {w[0]: ([], []) for w in todo}
                for _ in range(args.runs):
                    b = throughput(interp, program)
                    bare.append(b)
                    for name, options, env in todo:
                        t = throughput(interp, program, env=compare_env if env == "compare" else env,
                                       aioscope=options)
                        ratios[name][0].append(t[0] / b[0])
                        ratios[name][1].append(t[1] / b[1])
                for name, (wall, cpu) in ratios.items():
                    b = statistics.median(x[0] for x in bare)
                    print(f"{interp.name:<11} {loop:<7} {inflight:6} {name:<8} {b:10.0f} {cell(wall)} {cell(cpu)}",
                          flush=True)
    if args.compare_agent:
        print(f"* with {args.compare_agent}")
    print(f"ratio = throughput / that of the bare run of the same round (median of {args.runs} interleaved rounds, "
          "interquartile range in brackets); > 1 - 0.01 is the goal")


if __name__ == "__main__":
    main()
