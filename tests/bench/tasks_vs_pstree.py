#!/usr/bin/env python3
"""Benchmark: `aioscope dump` vs CPython's own `python -m asyncio pstree` and
`python -m asyncio ps` on the same 3.14 (and 3.15) process.

For each size (default 10,000 tasks), starts fixtures/aio_bench.py in the sid
chroot and times, in the same run against the same process, interleaved,
--runs times each (default 5):
  - `aioscope dump PID` (text: trees, identical tasks coalesced) vs `pstree`,
  - `aioscope dump --json PID` (every task written out) vs `pstree`,
  - `aioscope dump --table PID` (one line per task) vs `ps` (the same).
Wall time includes process start (each command is a fresh process, as a
user runs it). Prints medians and the ratios peer / aioscope, for wall time
and, because the machine may be shared, for CPU time (user + system of each
command alone, from wait4); the goal is >= 25x in wall time. The JSON's task
count is checked against the fixture's own count.

Usage: tests/bench/tasks_vs_pstree.py [--sizes 10000] [--runs 5] [--timeout 120] [--python 3.14,3.15]
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

GOAL = 25


def bench(interp, n, runs, timeout):
    forms = {"text": [], "json": [], "table": []}
    peers = {"pstree": [], "ps": []}
    errors = {}
    with Fixture(interp, "aio_bench.py", "--tasks", str(n), truth_timeout=300) as fx:
        pid = str(fx.pid)
        cmds = {
            "text": [str(AIOSCOPE), "dump", pid],
            "json": [str(AIOSCOPE), "dump", "--json", pid],
            "table": [str(AIOSCOPE), "dump", "--table", pid],
            "pstree": ["chroot", interp.root, interp.python, "-m", "asyncio", "pstree", pid],
            "ps": ["chroot", interp.root, interp.python, "-m", "asyncio", "ps", pid],
        }
        for _ in range(runs):
            for name, cmd in cmds.items():
                if name in errors:
                    continue
                r = measured(cmd, timeout)
                if r.status not in (0, 10):
                    errors[name] = "timed out" if r.status == -9 else f"exit {r.status}"
                    continue
                if name == "json":
                    doc = json.loads(r.stdout)
                    assert len(doc["tasks"]) == fx.truth["tasks"], (len(doc["tasks"]), fx.truth["tasks"])
                r.stdout = b""  # only the times are kept
                (forms if name in forms else peers)[name].append(r)
    return forms, peers, errors


def summary(rs):
    return median([r.wall for r in rs]), median([r.cpu for r in rs]), max((r.peak_mb for r in rs), default=None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--python", default="3.14,3.15")
    args = ap.parse_args()
    print(f"{'python':<7} {'tasks':>7} {'form':<6} {'aioscope s':>10} {'cpu s':>7} {'peak MB':>8} {'peer':<7}"
          f" {'peer s':>7} {'cpu s':>7} {'wall ratio':>11} {'cpu ratio':>10}")
    for interp in prepared(args.python, width=7):
        for n in (int(s) for s in args.sizes.split(",")):
            forms, peers, errors = bench(interp, n, args.runs, args.timeout)
            for form, peer in (("text", "pstree"), ("json", "pstree"), ("table", "ps")):
                wall, cpu, peak = summary(forms[form])
                pwall, pcpu, _ = summary(peers[peer])
                if wall is None:
                    print(f"{interp.name:<7} {n:>7} {form:<6} failed: {errors.get(form)}")
                    continue
                if pwall is None:
                    print(f"{interp.name:<7} {n:>7} {form:<6} {wall:10.3f} {cpu:7.3f} {peak:8.0f} {peer:<7}"
                          f" failed: {errors.get(peer)}")
                    continue
                ratio = pwall / wall
                print(f"{interp.name:<7} {n:>7} {form:<6} {wall:10.3f} {cpu:7.3f} {peak:8.0f} {peer:<7} {pwall:7.2f}"
                      f" {pcpu:7.2f} {ratio:10.1f}x {pcpu / cpu:9.1f}x" + ("" if ratio >= GOAL else "  (goal 25x)"))
    print(f"Medians of --runs ({args.runs}), interleaved, same process. aioscope/peer s = wall time of the whole "
          "command, process start included; cpu s = its user + system time (wait4); peak MB = max RSS of "
          "aioscope. Peers: `python -m asyncio pstree` (text, json), `python -m asyncio ps` (table), same "
          "interpreter. On a shared machine the wall ratio moves with the load; the cpu ratio much less.")


if __name__ == "__main__":
    main()
