#!/usr/bin/env python3
"""Benchmark: `aioscope dump` of 100,000 asyncio tasks, time and peak memory,
in every form (text, --json, --table), on the same 3.14 (and 3.15) process.

Starts fixtures/aio_bench.py --tasks 100000 in the sid chroot and runs each
form --runs times (default 5), interleaved. Prints the median wall time of
the whole command (process start included), its median CPU time (user +
system, from wait4: what it cost whatever else the machine did), the median
read time aioscope reports, and the largest peak RSS of any run, against the
goals: under 1 s and under 100 MB. With --peer, `python -m asyncio pstree`
is tried once on the same process (it fails on 3.14 with "Task list appears
corrupted" at this size, or times out).

Usage: tests/bench/tasks_100k.py [--tasks 100000] [--runs 5] [--python 3.14,3.15] [--peer]
"""
import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from harness import AIOSCOPE, Fixture  # noqa: E402
from timing import measured, median  # noqa: E402
from zoo import prepared  # noqa: E402

FORMS = {"text": [], "json": ["--json"], "table": ["--table"]}


def read_ms(form, out):
    if form == "json":
        return json.loads(out)["duration_ms"]
    m = re.search(rb"read in ([0-9.]+) ms", out)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--python", default="3.14,3.15")
    ap.add_argument("--peer", action="store_true")
    args = ap.parse_args()
    print(f"{'python':<7} {'tasks':>7} {'form':<6} {'wall s':>7} {'cpu s':>7} {'read s':>7} {'peak MB':>8}  goals")
    for interp in prepared(args.python, width=7):
        with Fixture(interp, "aio_bench.py", "--tasks", str(args.tasks), truth_timeout=600) as fx:
            pid = str(fx.pid)
            runs = {form: [] for form in FORMS}
            for _ in range(args.runs):
                for form, flags in FORMS.items():
                    r = measured([str(AIOSCOPE), "dump", *flags, pid], timeout=120)
                    assert r.status in (0, 10), (form, r.status)
                    if form == "json":
                        n = len(json.loads(r.stdout)["tasks"])
                        assert n == fx.truth["tasks"], (n, fx.truth["tasks"])
                    runs[form].append((r, read_ms(form, r.stdout)))
            for form, rs in runs.items():
                wall = median([r.wall for r, _ in rs])
                cpu = median([r.cpu for r, _ in rs])
                read = median([ms for _, ms in rs])
                peak = max(r.peak_mb for r, _ in rs)
                verdict = ("ok" if wall < 1 else "SLOW") + " / " + ("ok" if peak < 100 else "BIG")
                print(f"{interp.name:<7} {fx.truth['tasks']:>7} {form:<6} {wall:7.2f} {cpu:7.2f}"
                      f" {read / 1000 if read else float('nan'):7.2f} {peak:8.0f}  {verdict}")
            if args.peer:
                r = measured(["chroot", interp.root, interp.python, "-m", "asyncio", "pstree", pid], timeout=300)
                print(f"{interp.name:<7} pstree: {'exit %d' % r.status if r.status else 'ok'} after {r.wall:.1f} s")
    print(f"Medians of --runs ({args.runs}), interleaved, same process; peak MB = the largest max RSS of any "
          "run. wall = the whole command, process start included; cpu = its user + system time (wait4); "
          "read = the time aioscope reports for reading the process. Goals: wall < 1 s, peak < 100 MB.")


if __name__ == "__main__":
    main()
