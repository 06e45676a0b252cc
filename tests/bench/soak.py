#!/usr/bin/env python3
"""Soak: aioscope against a process that never stops changing, on every zoo
interpreter, counting wrong answers, false findings and crashes.

For each available interpreter, starts fixtures/soak_churn.py (about 10,000
asyncio tasks a second, short-lived threads, some running their own loop,
forked children, around a core of tasks and threads blocked in known places),
then runs, interleaved:

- N live `aioscope dump --json` (default 1,000),
- N `aioscope dump --pause --json` (default: as many as live dumps),
- M `aioscope attach --snapshot-every 50ms --duration 1s --json` sessions
  (default 20, about 20 snapshots each),

and judges every answer with tests/integration/churn_check.py against what the
process published about itself (the core exactly, and what the churn can
produce at all). Live answers are also compared with paused ones: the number
of tasks each sees, and how many had to report something unreadable.

Counted per interpreter and mode:
  wrong     answers that claim something untrue (missing core task, a stack
            spliced from two moments, a name the program never gives, a
            task listed twice, an empty answer, ...) without saying so;
  false     findings (the program cannot deadlock) or exit status 10;
  crash     aioscope exiting otherwise than 0/10, killed, hanging past the
            timeout, or the target dying;
  torn      tasks/threads aioscope marked as unreadable (an `error`, with a
            warning): not wrong, but counted;
  warned    answers with warnings.
The goal is 0 wrong, 0 false, 0 crash. Exit status 1 if any was seen.

Usage: tests/bench/soak.py [--dumps N] [--paused N] [--attaches M] [--rate R] [--linger S]
                           [--only 3.12,3.14] [--keep DIR]   (as root, after cli/build.sh)
"""
import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from churn_check import soak  # noqa: E402
from zoo import prepared  # noqa: E402

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dumps", type=int, default=1000, help="live dumps per interpreter (default 1000)")
    ap.add_argument("--paused", type=int, default=None, help="paused dumps per interpreter (default: --dumps)")
    ap.add_argument("--attaches", type=int, default=20, help="attach sessions per interpreter (default 20)")
    ap.add_argument("--rate", type=float, default=10000, help="tasks the target creates per second")
    ap.add_argument("--linger", type=float, help="seconds the churn's sleeping tasks sleep (0.8: about a "
                    "thousand tasks alive at once; default: a millisecond, about twenty)")
    ap.add_argument("--only", help="comma-separated interpreter names, e.g. 3.12,3.14")
    ap.add_argument("--keep", type=Path, help="write the first wrong/false answers here as JSON")
    args = ap.parse_args()
    paused = args.dumps if args.paused is None else args.paused
    rows, failed = [], False
    for interp in prepared(args.only, width=12, report=rows.append):
        t0 = time.monotonic()
        tallies, stats = soak(interp, args.dumps, paused, args.attaches, args.rate,
                              args.keep / interp.name if args.keep else None, linger=args.linger)
        secs = time.monotonic() - t0
        churn = ""
        if stats.get("elapsed"):
            churn = (f"  churn: {stats['tasks'] / stats['elapsed']:.0f} tasks/s, "
                     f"{stats['threads'] / stats['elapsed']:.0f} threads/s, {stats['forks']} forks "
                     f"({stats.get('hung_children', 0)} hung), "
                     f"over {secs:.0f} s")
        for t in tallies:
            rows.append(t.row(interp.name))
            failed |= bool(t.wrong or t.false or t.crash)
            for kind, ex in t.examples.items():
                for e in ex[:3]:
                    rows.append(f"    {t.mode} {kind}: {e}")
        if churn:
            rows.append(churn)
        print("\n".join(rows[-(len(tallies) + 10):]), flush=True)
    print()
    print(f"{'python':<12} {'mode':<7} {'n':>6} {'wrong':>6} {'false':>6} {'crash':>6} {'torn':>6} "
          f"{'warned':>7} {'tasks':>7} {'read ms':>8} {'att':>4}")
    for r in rows:
        print(r)
    print("n: answers judged (dumps, or snapshots streamed by attach); tasks: median tasks per answer; "
          "read ms: median duration_ms; att: most read attempts in one answer")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
