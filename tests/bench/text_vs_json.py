#!/usr/bin/env python3
"""Benchmark: text output against JSON output of the same dump, on the
shapes that once made the text renderer quadratic or recursive:

  - 100,000 tasks in 5,000 distinct stacks (fixtures/aio_many_stacks.py):
    siblings are grouped by stack;
  - an await chain 100,000 tasks deep (fixtures/aio_deep_chain.py): the
    chain is folded.

For each, against the same process in the same run: `aioscope dump` (text)
and `aioscope dump --json` (the peer: the same read, every task written
out), medians of --runs; then `aioscope render` of the saved JSON against
Python's json.load of it (a peer that only parses). Prints times,
output sizes and the ratio text / JSON (before the fix: 15.1 s against
1.6 s, a ratio of 9.4, for the 5,000 stacks; a crash for the chain).

Usage: tests/bench/text_vs_json.py [--interp 3.12] [--runs 3]   (as root, after cli/build.sh)
"""
import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from harness import AIOSCOPE, Fixture  # noqa: E402
from timing import measured, median  # noqa: E402
from zoo import ZOO  # noqa: E402

SCENARIOS = [
    ("100,000 tasks, 5,000 stacks", "aio_many_stacks.py", ["--tasks", "100000", "--stacks", "5000"]),
    ("await chain 100,000 deep", "aio_deep_chain.py", ["--depth", "100000"]),
]


def timed(cmd):
    r = measured(cmd, timeout=600)
    if r.status not in (0, 10):
        raise SystemExit(f"{' '.join(map(str, cmd))} exited {r.status}")
    return r


def median_run(cmd, runs):
    rs = [timed(cmd) for _ in range(runs)]
    return median([r.wall for r in rs]), len(rs[-1].stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--interp", default="3.12")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    interp = next(i for i in ZOO if i.name == args.interp)
    why = interp.unavailable()
    if why:
        raise SystemExit(f"CPython {interp.name} unavailable: {why}")
    interp.prepare()
    print(f"CPython {interp.name}, medians of {args.runs} runs\n")
    print(f"{'scenario':30} {'text':>8} {'JSON':>8} {'text/JSON':>9} {'text size':>10} {'JSON size':>10}"
          f" {'render':>8} {'json.load':>9}")
    for title, script, fargs in SCENARIOS:
        with Fixture(interp, script, *fargs, truth_timeout=300) as fx:
            text_t, text_size = median_run([str(AIOSCOPE), "dump", "--color", "never", str(fx.pid)], args.runs)
            json_t, json_size = median_run([str(AIOSCOPE), "dump", "--json", str(fx.pid)], args.runs)
            with tempfile.NamedTemporaryFile(suffix=".json") as saved:
                saved.write(timed([str(AIOSCOPE), "dump", "--json", str(fx.pid)]).stdout)
                saved.flush()
                render_t, _ = median_run([str(AIOSCOPE), "render", "--color", "never", saved.name], args.runs)
                parse_t, _ = median_run(["/usr/bin/python3", "-c", "import json, sys; json.load(open(sys.argv[1]))",
                                         saved.name], 1)
        print(f"{title:30} {text_t:7.2f}s {json_t:7.2f}s {text_t / json_t:9.2f} {text_size / 1e6:8.1f}MB "
              f"{json_size / 1e6:8.1f}MB {render_t:7.2f}s {parse_t:8.2f}s")


if __name__ == "__main__":
    main()
