#!/usr/bin/env python3
"""Benchmark: what the agent adds to each event-loop callback, in ns.

Runs fixtures/bench_chain.py (a chain of empty callbacks: the main thread's
CPU time per callback, best of 150 batches of 10,000) bare, bare with one
more thread that only sleeps (what any second thread costs: the C library
and the interpreter leave their single-threaded fast paths; the agent's own
thread costs that too, and a program with a thread already pays it), and
under `aioscope run` at 100 Hz and 1 kHz (and, with --compare-agent, the
same with another build of the agent), interleaved round by round, on each
available interpreter. Every run is started with address-space layout
randomisation off (`setarch -R`): where code and data land moves a chain
callback of ~2 us by tens of ns from one process to the next, more than
the effect measured; with a fixed layout the rounds agree to a few ns.
What remains is the machine's own drift, which the interleaving shares out.

Prints, per interpreter, the bare cost per callback and, for each way, the
median over the rounds of (that run - the bare run of the same round) with
the interquartile range, in ns and as a share of the bare callback. The
whole-program view (a busy program's throughput) is agent_overhead.py.

Usage: tests/bench/callback_cost.py [--runs 9] [--python 3.12,3.13] [--compare-agent OTHER/aioscope-agent.so]
"""
import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from agent_helpers import bench_run, other_agent_env  # noqa: E402
from timing import quartiles  # noqa: E402
from zoo import prepared  # noqa: E402


def per_callback(interp, batches, env=None, aioscope=None, extra=()):
    """ns of the main thread's CPU per callback, in one process."""
    truth = bench_run(interp, "bench_chain.py", "--batches", str(batches), *extra, aioscope=aioscope, env=env,
                      prefix=["setarch", "-R"])
    return truth["ns_per_callback"]


def cell(added, bare):
    q1, m, q3 = quartiles(added)
    return f"{m:+7.0f} [{q1:+5.0f} {q3:+5.0f}] {100 * m / bare:+5.1f}%"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--batches", type=int, default=150)
    ap.add_argument("--python", default="3.10,3.11,3.11-debian,3.12,3.13,3.14,3.15")
    ap.add_argument("--compare-agent", metavar="SO", help="also with this build of aioscope-agent.so")
    args = ap.parse_args()
    ways = [("idle thread", None, False), ("100 Hz", ["--interval", "10ms"], False),
            ("1 kHz", ["--interval", "1ms"], False)]
    if args.compare_agent:
        ways += [("100 Hz*", ["--interval", "10ms"], True), ("1 kHz*", ["--interval", "1ms"], True)]
    print(f"{'python':<11} {'bare ns':>8}  " + "  ".join(f"{w[0] + ' ns [IQR] share':<29}" for w in ways))
    for interp in prepared(args.python, width=11):
        compare_env = other_agent_env(interp, args.compare_agent) if args.compare_agent else None
        bare, added = [], {w[0]: [] for w in ways}
        for _ in range(args.runs):
            b = per_callback(interp, args.batches)
            bare.append(b)
            for name, options, other in ways:
                extra = ["--idle-thread"] if options is None else []
                added[name].append(per_callback(interp, args.batches, env=compare_env if other else None,
                                                aioscope=options, extra=extra) - b)
        b = statistics.median(bare)
        print(f"{interp.name:<11} {b:8.0f}  " + "  ".join(f"{cell(added[w[0]], b):<29}" for w in ways), flush=True)
    if args.compare_agent:
        print(f"* with {args.compare_agent}")
    print(f"ns added per callback: median of {args.runs} interleaved rounds of (that run - the bare run of the "
          "round), interquartile range in brackets, and as a share of the bare callback")


if __name__ == "__main__":
    main()
